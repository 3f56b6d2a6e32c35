"""grad, value_and_grad, vjp and stop_gradient on plain Python functions of primitives."""
import numpy as np
import pytest

import purenet as pn
from purenet import ops
from purenet.errors import ShapeError
from purenet.ops import primitive
from purenet.ops.core import ACTIVE, Traced, TracingError
from purenet.testing import check_grads
from purenet.tree import tree_leaves, tree_map


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def central_differences(f, x, eps=1e-6):
    """d f / d x element by element, for a scalar function of one array."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += eps
        down[i] -= eps
        g[i] = (float(f(up)) - float(f(down))) / (2 * eps)
    return g


def sigmoid(z):
    return 1.0 / (1.0 + ops.exp(-z))


def mse(pred, target):
    return ops.mean((pred - target) ** 2)


# --- composed functions -------------------------------------------------------------

def test_grad_of_a_composed_loss_matches_central_differences():
    x, y, w = randn(5, 3), randn(5, 2, seed=1), randn(3, 2, seed=2)

    def loss(w):
        return mse(sigmoid(x @ w), y)

    g = pn.grad(loss)(w)
    assert type(g) is np.ndarray and g.shape == w.shape
    np.testing.assert_allclose(g, central_differences(loss, w), rtol=1e-6, atol=1e-9)
    # and by hand: dL/dW = x^T [2 (s - y) / n * s (1 - s)]
    s = 1 / (1 + np.exp(-(x @ w)))
    np.testing.assert_allclose(g, x.T @ (2 * (s - y) / y.size * s * (1 - s)), rtol=1e-12)


def test_value_and_grad_returns_the_plain_value():
    x, y, w = randn(5, 3), randn(5, 2, seed=1), randn(3, 2, seed=2)
    value, g = pn.value_and_grad(lambda w: mse(sigmoid(x @ w), y))(w)
    assert type(value) is not Traced and np.shape(value) == ()
    np.testing.assert_allclose(value, np.mean((1 / (1 + np.exp(-(x @ w))) - y) ** 2))
    np.testing.assert_allclose(g, pn.grad(lambda w: mse(sigmoid(x @ w), y))(w))


def test_python_float_argument():
    assert pn.grad(lambda x: (4 * x + 3) ** 2)(2.0) == 88.0
    value, g = pn.value_and_grad(lambda x: (4 * x + 3) ** 2)(-1.0)
    assert value == 1.0 and g == -8.0


def test_float32_gradients_stay_float32():
    x, y = randn(5, 3).astype(np.float32), randn(5, 2, seed=1).astype(np.float32)
    w = randn(3, 2, seed=2).astype(np.float32)
    g = pn.grad(lambda w: mse(sigmoid(x @ w), y))(w)
    assert g.dtype == np.float32


# --- trees and argnums --------------------------------------------------------------

def two_layer_loss(params, x, y):
    h = ops.tanh(x @ params["layers"][0]["W"] + params["layers"][0]["b"])
    out = h @ params["layers"][1]["W"] + params["layers"][1]["b"]
    return mse(out * params["scale"][0], y)


def make_params():
    return {"layers": [{"W": randn(3, 4, seed=1), "b": randn(4, seed=2)},
                       {"W": randn(4, 2, seed=3), "b": randn(2, seed=4)}],
            "scale": (np.array(1.5),)}


def test_tree_argument_gives_a_gradient_tree_of_the_same_structure():
    params, x, y = make_params(), randn(6, 3), randn(6, 2, seed=5)
    g = pn.grad(two_layer_loss)(params, x, y)
    assert isinstance(g, dict) and set(g) == {"layers", "scale"}
    assert isinstance(g["layers"], list) and len(g["layers"]) == 2
    assert isinstance(g["scale"], tuple) and len(g["scale"]) == 1
    assert pn.tree.tree_structure_equal(g, params)
    check_grads(two_layer_loss, params, x, y)
    # one leaf against central differences, moving only that leaf
    w0 = params["layers"][0]["W"]

    def loss_of_w0(w):
        p = tree_map(lambda a: a, params)
        p["layers"][0]["W"] = w
        return two_layer_loss(p, x, y)

    np.testing.assert_allclose(g["layers"][0]["W"], central_differences(loss_of_w0, w0),
                               rtol=1e-6, atol=1e-9)


def f3(x, y, z):
    return ops.sum(x * y) + ops.sum(z ** 2)


def test_argnums_int_and_tuple():
    x, y, z = randn(3), randn(3, seed=1), randn(2, seed=2)
    np.testing.assert_allclose(pn.grad(f3)(x, y, z), y)
    np.testing.assert_allclose(pn.grad(f3, argnums=1)(x, y, z), x)
    np.testing.assert_allclose(pn.grad(f3, argnums=-1)(x, y, z), 2 * z)
    gx, gz = pn.grad(f3, argnums=(0, 2))(x, y, z)
    np.testing.assert_allclose(gx, y)
    np.testing.assert_allclose(gz, 2 * z)
    (g1,) = pn.grad(f3, argnums=(1,))(x, y, z)
    np.testing.assert_allclose(g1, x)
    value, (gy, gx) = pn.value_and_grad(f3, argnums=(1, 0))(x, y, z)
    np.testing.assert_allclose(value, x @ y + z @ z)
    np.testing.assert_allclose(gy, x)
    np.testing.assert_allclose(gx, y)


def test_argnums_out_of_range_is_a_type_error():
    with pytest.raises(TypeError, match="argnums"):
        pn.grad(f3, argnums=3)(randn(3), randn(3), randn(2))


def test_keyword_arguments_are_passed_and_not_differentiated():
    g = pn.grad(lambda x, *, scale: ops.sum(x * scale))(randn(3), scale=np.full(3, 2.0))
    np.testing.assert_array_equal(g, [2.0, 2.0, 2.0])


# --- has_aux ------------------------------------------------------------------------

def test_has_aux_returns_aux_untraced():
    x = randn(4)

    def f(x):
        y = x * 3.0
        return ops.sum(y ** 2), {"y": y, "n": 4, "parts": [y[0], "label"]}

    g, aux = pn.grad(f, has_aux=True)(x)
    np.testing.assert_allclose(g, 18 * x)
    assert type(aux["y"]) is np.ndarray and type(aux["parts"][0]) is not Traced
    np.testing.assert_allclose(aux["y"], 3 * x)
    assert aux["n"] == 4 and aux["parts"][1] == "label"
    (value, aux2), g2 = pn.value_and_grad(f, has_aux=True)(x)
    np.testing.assert_allclose(value, np.sum((3 * x) ** 2))
    np.testing.assert_allclose(g2, g)
    assert type(aux2["y"]) is np.ndarray


def test_has_aux_needs_a_pair():
    with pytest.raises(TypeError, match="aux"):
        pn.grad(lambda x: ops.sum(x), has_aux=True)(randn(3))


# --- fan-out and constants ----------------------------------------------------------

def test_a_value_used_twice_accumulates_both_contributions():
    x = randn(5)
    np.testing.assert_allclose(pn.grad(lambda x: ops.sum(x * x + x))(x), 2 * x + 1)
    np.testing.assert_allclose(pn.grad(lambda x: ops.sum(x * x * x))(x), 3 * x ** 2)

    def diamond(x):
        e = ops.exp(x)
        return ops.sum(e * e + e)

    np.testing.assert_allclose(pn.grad(diamond)(x), 2 * np.exp(2 * x) + np.exp(x))
    # the same argument passed in two places of a tree
    g = pn.grad(lambda p: ops.sum(p[0] * p[1]))([x, x])
    np.testing.assert_allclose(g[0], x)
    np.testing.assert_allclose(g[1], x)


def test_a_constant_branch_adds_nothing():
    x, c = randn(3), randn(3, seed=1)
    g = pn.grad(lambda x: ops.sum(x) + ops.sum(ops.exp(c) * c))(x)
    np.testing.assert_array_equal(g, np.ones(3))


@pytest.mark.parametrize("f", [
    lambda x: ops.sum(np.ones(3)), lambda x: 3.0, lambda x: np.float32(2.0),
    lambda x: ops.sum(pn.stop_gradient(x)),
], ids=["constant array", "python float", "numpy scalar", "stopped"])
def test_output_independent_of_the_argument_gives_zeros(f):
    x = randn(2, 3)
    g = pn.grad(f)(x)
    assert type(g) is np.ndarray and g.shape == x.shape and g.dtype == x.dtype
    np.testing.assert_array_equal(g, np.zeros((2, 3)))


def test_unused_float_leaves_get_zeros():
    params = {"used": randn(3), "unused": randn(2, 2, seed=1)}
    g = pn.grad(lambda p: ops.sum(p["used"] ** 2))(params)
    np.testing.assert_allclose(g["used"], 2 * params["used"])
    np.testing.assert_array_equal(g["unused"], np.zeros((2, 2)))


def test_stop_gradient_makes_a_constant():
    x = randn(4)
    np.testing.assert_allclose(pn.grad(lambda x: ops.sum(x * pn.stop_gradient(x)))(x), x)
    tree = pn.stop_gradient({"a": [np.ones(2)], "b": None})
    assert type(tree["a"][0]) is np.ndarray and tree["b"] is None


def test_non_float_leaves_pass_through_with_none_gradients():
    seen = {}

    def f(p):
        seen.update(ids=type(p["ids"]), mask=type(p["mask"]), w=type(p["w"]))
        rows = p["w"][p["ids"]]
        return ops.sum(ops.where(p["mask"], rows, 0.0))

    params = {"w": randn(4, 2), "ids": np.array([0, 2, 2]), "mask": np.array([True, False]),
              "nothing": None, "count": 3}
    g = pn.grad(f)(params)
    assert seen == {"ids": np.ndarray, "mask": np.ndarray, "w": Traced}
    assert g["ids"] is None and g["mask"] is None and g["nothing"] is None and g["count"] is None
    np.testing.assert_array_equal(g["w"], [[1.0, 0.0], [0.0, 0.0], [2.0, 0.0], [0.0, 0.0]])
    assert pn.grad(lambda x, n: ops.sum(x) * 1.0, argnums=1)(randn(2), np.arange(3)) is None


# --- errors -------------------------------------------------------------------------

def test_non_scalar_output_is_a_helpful_type_error():
    def loss_per_example(x):
        return x * 2.0

    with pytest.raises(TypeError, match=r"loss_per_example must return a float scalar.*\(3,\)"
                                        r".*vjp"):
        pn.grad(loss_per_example)(randn(3))
    with pytest.raises(TypeError, match="float scalar"):
        pn.grad(lambda x: 3)(randn(3))
    with pytest.raises(TypeError, match="has_aux"):
        pn.grad(lambda x: (3.0, 1))(randn(3))


def test_returning_value_and_aux_without_has_aux_suggests_has_aux():
    with pytest.raises(TypeError, match="has_aux"):
        pn.grad(lambda x: (ops.sum(x), {"n": 1}))(randn(3))


@pytest.mark.parametrize("bad", ["weights", object(), {"w": np.ones(2), "name": "dense"}],
                         ids=["string", "object", "string in a tree"])
def test_argument_that_is_not_an_array_is_a_type_error_naming_it(bad):
    with pytest.raises(TypeError, match="argument 1") as info:
        pn.grad(lambda x, p: ops.sum(x), argnums=1)(randn(2), bad)
    assert not isinstance(info.value, TracingError)
    if isinstance(bad, dict):
        assert "name" in str(info.value) and "str" in str(info.value)
    # the same argument is fine when it is not differentiated
    pn.grad(lambda x, p: ops.sum(x))(randn(2), bad)


def test_grad_of_grad_is_a_tracing_error():
    f = lambda x: ops.sum(x ** 3)                      # noqa: E731
    with pytest.raises(TracingError, match="higher-order"):
        pn.grad(lambda x: ops.sum(pn.grad(f)(x)))(randn(3))
    # an inner grad closing over the outer traced value
    with pytest.raises(TracingError):
        pn.grad(lambda x: ops.sum(pn.grad(lambda y: ops.sum(x * y))(np.ones(3))))(randn(3))
    assert ACTIVE == []


@pytest.mark.parametrize("convert", [
    np.asarray, np.array, float, lambda t: np.asarray(t, dtype=np.float32),
    lambda t: np.concatenate([t, t]),
], ids=["asarray", "array", "float", "asarray float32", "np.concatenate"])
def test_converting_a_traced_value_is_a_tracing_error(convert):
    with pytest.raises(TracingError, match="stop_gradient"):
        pn.grad(lambda x: ops.sum(x) * convert(x))(np.array([2.0]))
    assert ACTIVE == []


def test_numpy_functions_with_a_primitive_work_on_traced_values():
    x = np.array([0.5, 1.0, 2.0])
    g = pn.grad(lambda v: np.sum(np.exp(v)) + np.mean(np.ones(3) * v) + np.max(v, axis=0))(x)
    np.testing.assert_allclose(g, np.exp(x) + 1 / 3 + np.array([0.0, 0.0, 1.0]))
    g = pn.grad(lambda v: np.sum(v, dtype=np.float32))(x)
    np.testing.assert_array_equal(g, np.ones(3))


def test_numpy_functions_without_a_primitive_are_tracing_errors():
    with pytest.raises(TracingError):
        pn.grad(lambda v: ops.sum(np.sin(v)))(np.ones(3))
    with pytest.raises(TracingError):
        pn.grad(lambda v: v.sum(out=np.zeros(())))(np.ones(3))


def test_a_traced_value_kept_past_its_grad_is_a_tracing_error():
    kept = []
    pn.grad(lambda x: (kept.append(x), ops.sum(x))[1])(randn(3))
    with pytest.raises(TracingError):
        kept[0] * 2.0


def test_an_error_inside_the_function_leaves_no_trace_active():
    def f(x):
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        pn.grad(f)(randn(3))
    assert ACTIVE == []


# --- vjp ----------------------------------------------------------------------------

def test_vjp_with_tuple_outputs_and_none_cotangents():
    a, b = randn(3), randn(3, seed=1)
    out, pullback = pn.vjp(lambda a, b: (a * b, a + b), a, b)
    assert isinstance(out, tuple) and all(type(o) is np.ndarray for o in out)
    np.testing.assert_allclose(out[0], a * b)
    u, v = randn(3, seed=2), randn(3, seed=3)
    ga, gb = pullback((u, None))
    np.testing.assert_allclose(ga, u * b)
    np.testing.assert_allclose(gb, u * a)
    ga, gb = pullback((None, v))
    np.testing.assert_allclose(ga, v)
    np.testing.assert_allclose(gb, v)
    ga, gb = pullback((None, None))
    np.testing.assert_array_equal(ga, np.zeros(3))
    np.testing.assert_array_equal(gb, np.zeros(3))
    ga, gb = pullback((u, v))
    np.testing.assert_allclose(ga, u * b + v)
    np.testing.assert_allclose(gb, u * a + v)


def test_vjp_pullback_can_be_called_twice():
    x, w = randn(4, 3), randn(3, 2, seed=1)
    out, pullback = pn.vjp(lambda x, w: sigmoid(x @ w), x, w)
    u = randn(4, 2, seed=2)
    first = pullback(u)
    second = pullback(u)
    for a, b in zip(tree_leaves(first), tree_leaves(second)):
        np.testing.assert_array_equal(a, b)
    doubled = pullback(2 * u)
    for a, b in zip(tree_leaves(first), tree_leaves(doubled)):
        np.testing.assert_allclose(2 * a, b)
    assert not any(type(g) is Traced for g in tree_leaves(first))


def test_vjp_of_trees_and_constant_outputs():
    params = {"w": randn(2, 2), "ids": np.array([1, 0])}
    out, pullback = pn.vjp(lambda p: {"y": p["w"][p["ids"]], "const": np.ones(2)}, params)
    (g,) = pullback({"y": np.ones((2, 2)), "const": np.ones(2)})
    np.testing.assert_array_equal(g["w"], np.ones((2, 2)))
    assert g["ids"] is None
    np.testing.assert_array_equal(out["const"], np.ones(2))


def test_vjp_cotangent_errors():
    _, pullback = pn.vjp(lambda a: (a, a * 2.0), randn(3))
    with pytest.raises(TypeError, match="shape"):
        pullback((np.ones(4), None))
    with pytest.raises(TypeError, match="structure"):
        pullback((np.ones(3),))


def test_vjp_dict_cotangent_is_matched_by_key():
    x = np.ones(2)
    _, pullback = pn.vjp(lambda a: {"a": a, "b": 2.0 * a}, x)
    (g,) = pullback({"b": np.ones(2), "a": np.zeros(2)})
    np.testing.assert_allclose(g, [2.0, 2.0])


# --- user-defined primitives --------------------------------------------------------

@primitive
def cube(x):
    def backward(g):
        # d x^3 / dx = 3 x^2
        return (3 * x ** 2 * g,)

    return x ** 3, backward


def test_a_user_primitive_works_under_grad():
    x = randn(2, 3)
    np.testing.assert_allclose(pn.grad(lambda x: ops.sum(cube(x)))(x), 3 * x ** 2)
    np.testing.assert_allclose(pn.grad(lambda x: ops.sum(cube(ops.exp(x)) * 2.0))(x),
                               6 * np.exp(3 * x))
    check_grads(cube, x)
    assert type(cube(x)) is np.ndarray         # on plain arrays: just the forward


def test_a_broadcast_gradient_returned_in_the_output_shape_is_summed_back():
    @primitive
    def plus_row(x, b):
        return x + b, lambda g: (g, g)

    gb = pn.grad(lambda b: ops.sum(plus_row(np.ones((4, 3)), b) * 2.0))(np.zeros(3))
    np.testing.assert_array_equal(gb, [8.0, 8.0, 8.0])


def test_a_wrong_shaped_gradient_is_a_shape_error_naming_the_primitive():
    @primitive
    def sloppy_double(x):
        return 2 * x, lambda g: (2 * g[:-1],)

    with pytest.raises(ShapeError, match=r"sloppy_double.*argument 0.*\(3,\)"):
        pn.grad(lambda x: ops.sum(sloppy_double(x)))(randn(4))


def test_a_backward_with_the_wrong_number_of_gradients_is_a_shape_error():
    @primitive
    def forgetful_mul(a, b):
        return a * b, lambda g: (g * b,)

    with pytest.raises(ShapeError, match="forgetful_mul.*2 gradient"):
        pn.grad(lambda a: ops.sum(forgetful_mul(a, np.ones(3))))(randn(3))


@primitive
def sin_cos(x):
    seen = sin_cos.seen

    def backward(gs):
        gsin, gcos = gs
        seen.append((gsin is None, gcos is None))
        g = np.zeros_like(x)
        if gsin is not None:
            g = g + gsin * np.cos(x)
        if gcos is not None:
            g = g - gcos * np.sin(x)
        return (g,)

    return (np.sin(x), np.cos(x)), backward


sin_cos.seen = []


def test_a_multi_output_user_primitive():
    x = randn(5)
    sin_cos.seen.clear()
    g = pn.grad(lambda x: ops.sum(sin_cos(x)[0]))(x)
    np.testing.assert_allclose(g, np.cos(x))
    g = pn.grad(lambda x: ops.sum(sin_cos(x)[1] * 2.0))(x)
    np.testing.assert_allclose(g, -2 * np.sin(x))
    g = pn.grad(lambda x: ops.sum(sin_cos(x)[0] * sin_cos(x)[1]))(x)
    np.testing.assert_allclose(g, np.cos(2 * x))
    assert sin_cos.seen[:2] == [(False, True), (True, False)]
    check_grads(sin_cos, x)
    assert all(type(o) is np.ndarray for o in sin_cos(x))


def test_a_multi_output_primitive_with_a_nested_and_an_integer_output():
    @primitive
    def top(x):
        i = np.argmax(x, axis=1)
        rows = np.arange(len(x))

        def backward(gs):
            gvalue, (gindex, gtwice) = gs
            assert gindex is None                 # an integer output has no gradient
            g = np.zeros_like(x)
            if gvalue is not None:
                g[rows, i] += gvalue
            if gtwice is not None:
                g += 2 * gtwice
            return (g,)

        return (x[rows, i], (i, 2 * x)), backward

    x = np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    seen = {}

    def f(x):
        value, (index, twice) = top(x)
        seen["index"] = type(index)
        return ops.sum(value) + ops.sum(twice[:, 0])

    g = pn.grad(f)(x)
    assert seen["index"] is np.ndarray
    np.testing.assert_array_equal(g, [[2.0, 1.0, 0.0], [3.0, 0.0, 0.0]])


def test_backward_sees_which_arguments_need_a_gradient():
    calls = []

    @primitive
    def scaled(a, b):
        def backward(g, needed):
            calls.append(needed)
            return (g * b if needed[0] else None), (g * a if needed[1] else None)

        return a * b, backward

    a, b = randn(3), randn(3, seed=1)
    gb = pn.grad(lambda a, b: ops.sum(scaled(a, b)), argnums=1)(a, b)
    np.testing.assert_allclose(gb, a)
    ga = pn.grad(lambda a, b: ops.sum(scaled(a, b)), argnums=0)(a, b)
    np.testing.assert_allclose(ga, b)
    pn.grad(lambda a, b: ops.sum(scaled(a, b)), argnums=(0, 1))(a, b)
    # a constant computed from data (not from the argument) is not traced either
    pn.grad(lambda b: ops.sum(scaled(a * 2.0, b)))(b)
    assert calls == [(False, True), (True, False), (True, True), (False, True)]


def test_settings_of_a_user_primitive_are_not_differentiated():
    @primitive
    def scale(x, *, factor):
        return x * factor, lambda g: (g * factor,)

    np.testing.assert_array_equal(pn.grad(lambda x: ops.sum(scale(x, factor=3.0)))(np.ones(2)),
                                  [3.0, 3.0])


# --- what is recorded -----------------------------------------------------------------

def test_data_arguments_are_never_traced():
    recorded = {}

    def loss(w, x, y):
        z = x * 2.0 + 1.0                          # data preprocessing: plain NumPy work
        recorded["z"] = type(z)
        value = ops.mean((z @ w - y) ** 2)
        recorded["tape"] = [node.name for node in ACTIVE[-1].tape]
        return value

    w, x, y = randn(3, 2), randn(5, 3, seed=1), randn(5, 2, seed=2)
    pn.grad(loss)(w, x, y)
    assert recorded["z"] is np.ndarray
    assert recorded["tape"] == ["matmul", "subtract", "power", "mean"]
    assert ACTIVE == []


def test_plain_calls_record_nothing():
    assert ACTIVE == []
    out = ops.sum(ops.exp(randn(3)) * 2.0)
    assert type(out) is not Traced
    _, pullback = pn.vjp(lambda x: ops.sum(x), randn(3))
    assert ACTIVE == []


def test_a_training_step_leaves_no_reference_cycles():
    # cycles would keep every activation of a step alive until the garbage collector ran
    import gc
    from purenet import optim
    from purenet.layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D, serial
    from purenet.train import train_step
    model = serial(Conv2D(4, 3, padding="same"), BatchNorm(), MaxPool2D(2), Flatten(),
                   Dense(8, "relu"), Dropout(0.5), Dense(3))
    _, params, state = model.init(pn.key(0), (1, 6, 6))
    opt = optim.adam(1e-3)
    opt_state = opt.init(params)
    x = np.random.default_rng(0).standard_normal((5, 1, 6, 6))
    y = np.array([0, 1, 2, 0, 1])
    step = (model, "softmax_cross_entropy", opt, params, state, opt_state, x, y, pn.key(1))
    train_step(*step)
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        train_step(*step)
        pn.grad(lambda p: pn.ops.sum(p["w"] * 2.0))({"w": np.ones(3)})
        assert gc.collect() == 0
    finally:
        if was_enabled:
            gc.enable()
