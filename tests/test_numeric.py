"""The NumPy-like primitives and the operators of traced values.

On plain arrays each primitive is the NumPy function it names; under ``grad``
its hand-derived backward must agree with central differences (float64), for
scalars, batch 1, and broadcasting pairs. Ties, masks and repeated indices are
checked against exact values.
"""
import numpy as np
import pytest

import purenet as pn
from purenet import ops
from purenet.ops.core import Traced
from purenet.testing import check_grads, check_vjp
from purenet.tree import tree_leaves

try:
    from numpy.exceptions import AxisError
except ImportError:                     # NumPy < 1.25
    from numpy import AxisError


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def away_from_zero(*shape, seed=0):
    """Values with |v| in [0.5, 2]: safe for division and |x| under finite differences."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


def positive(*shape, seed=0):
    return np.random.default_rng(seed).uniform(0.5, 2.0, shape)


def grad_of_sum(fn, *args, argnums=0):
    """The gradient of ``sum(fn(*args))``: each output element's gradient is 1."""
    return pn.grad(lambda *a: ops.sum(fn(*a)), argnums=argnums)(*args)


def no_traced(tree):
    return not any(type(leaf) is Traced for leaf in tree_leaves(tree))


SHAPES = [(), (1,), (1, 3), (4, 3), (2, 3, 4)]
BROADCAST_PAIRS = [((), ()), ((4, 3), (4, 3)), ((1, 3), (1, 3)), ((4, 3), (3,)), ((3,), (4, 3)),
                   ((4, 1), (1, 3)), ((2, 1, 3), (4, 3)), ((4, 3), ()), ((), (2, 3))]


# --- values on plain arrays ---------------------------------------------------------

A, B = randn(4, 3), away_from_zero(4, 3, seed=1)
P = positive(4, 3, seed=2)
# (name, ours, NumPy's): both take the same three arrays a, b (away from 0), p (positive)
VALUE_CASES = [
    ("add", lambda a, b, p: ops.add(a, b), lambda a, b, p: np.add(a, b)),
    ("subtract", lambda a, b, p: ops.subtract(a, b), lambda a, b, p: np.subtract(a, b)),
    ("multiply", lambda a, b, p: ops.multiply(a, b), lambda a, b, p: np.multiply(a, b)),
    ("divide", lambda a, b, p: ops.divide(a, b), lambda a, b, p: np.divide(a, b)),
    ("power", lambda a, b, p: ops.power(p, a), lambda a, b, p: np.power(p, a)),
    ("negative", lambda a, b, p: ops.negative(a), lambda a, b, p: np.negative(a)),
    ("exp", lambda a, b, p: ops.exp(a), lambda a, b, p: np.exp(a)),
    ("log", lambda a, b, p: ops.log(p), lambda a, b, p: np.log(p)),
    ("sqrt", lambda a, b, p: ops.sqrt(p), lambda a, b, p: np.sqrt(p)),
    ("absolute", lambda a, b, p: ops.absolute(a), lambda a, b, p: np.absolute(a)),
    ("maximum", lambda a, b, p: ops.maximum(a, b), lambda a, b, p: np.maximum(a, b)),
    ("minimum", lambda a, b, p: ops.minimum(a, b), lambda a, b, p: np.minimum(a, b)),
    ("where", lambda a, b, p: ops.where(a > 0, a, b), lambda a, b, p: np.where(a > 0, a, b)),
    ("cast", lambda a, b, p: ops.cast(a, np.float32), lambda a, b, p: a.astype(np.float32)),
    ("sum", lambda a, b, p: ops.sum(a, axis=1), lambda a, b, p: np.sum(a, axis=1)),
    ("sum keepdims", lambda a, b, p: ops.sum(a, axis=(0, 1), keepdims=True),
     lambda a, b, p: np.sum(a, axis=(0, 1), keepdims=True)),
    ("mean", lambda a, b, p: ops.mean(a, axis=-1), lambda a, b, p: np.mean(a, axis=-1)),
    ("mean all", lambda a, b, p: ops.mean(a), lambda a, b, p: np.mean(a)),
    ("max", lambda a, b, p: ops.max(a, axis=0), lambda a, b, p: np.max(a, axis=0)),
    ("max keepdims", lambda a, b, p: ops.max(a, axis=1, keepdims=True),
     lambda a, b, p: np.max(a, axis=1, keepdims=True)),
    ("getitem", lambda a, b, p: ops.getitem(a, (slice(None, None, -1), 1)),
     lambda a, b, p: a[::-1, 1]),
    ("getitem array", lambda a, b, p: ops.getitem(a, np.array([2, 0, 2])),
     lambda a, b, p: a[[2, 0, 2]]),
    ("transpose", lambda a, b, p: ops.transpose(a), lambda a, b, p: a.T),
    ("concatenate", lambda a, b, p: ops.concatenate([a, b], axis=1),
     lambda a, b, p: np.concatenate([a, b], axis=1)),
    ("stack", lambda a, b, p: ops.stack([a, b], axis=-1),
     lambda a, b, p: np.stack([a, b], axis=-1)),
    ("unstack", lambda a, b, p: ops.stack(list(ops.unstack(a, axis=1)), axis=1),
     lambda a, b, p: a),
    ("matmul", lambda a, b, p: ops.matmul(a, b.T), lambda a, b, p: a @ b.T),
    ("matmul vector", lambda a, b, p: ops.matmul(a, b[0]), lambda a, b, p: a @ b[0]),
    ("reshape", lambda a, b, p: ops.reshape(a, (3, 4)), lambda a, b, p: a.reshape(3, 4)),
]


@pytest.mark.parametrize("ours, numpy_", [c[1:] for c in VALUE_CASES],
                         ids=[c[0] for c in VALUE_CASES])
def test_values_equal_numpy_on_plain_arrays(ours, numpy_):
    out, expected = ours(A, B, P), numpy_(A, B, P)
    assert type(out) is np.ndarray or np.isscalar(out)
    assert np.shape(out) == np.shape(expected)
    assert np.asarray(out).dtype == np.asarray(expected).dtype
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_unstack_returns_the_slices():
    parts = ops.unstack(A, axis=1)
    assert isinstance(parts, tuple) and len(parts) == 3
    for i, part in enumerate(parts):
        np.testing.assert_array_equal(part, A[:, i])


@pytest.mark.parametrize("ours, numpy_", [c[1:] for c in VALUE_CASES],
                         ids=[c[0] for c in VALUE_CASES])
def test_no_traced_value_escapes_grad(ours, numpy_):
    # the same computations with every argument traced: the value, the aux and the
    # gradients that come out are plain arrays, and the value is NumPy's
    def f(a, b, p):
        out = ours(a, b, p)
        return ops.sum(ops.cast(out, np.float64)), {"out": out, "inputs": [a, b, p]}

    (value, aux), grads = pn.value_and_grad(f, argnums=(0, 1, 2), has_aux=True)(A, B, P)
    assert no_traced(value) and no_traced(aux) and no_traced(grads)
    np.testing.assert_allclose(aux["out"], numpy_(A, B, P), rtol=1e-12)
    for g, arg in zip(grads, (A, B, P)):
        assert type(g) is np.ndarray and g.shape == arg.shape


# --- elementwise: gradients ---------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("prim, make", [
    (ops.negative, randn), (ops.exp, randn), (ops.log, positive), (ops.sqrt, positive),
    (ops.absolute, away_from_zero),
], ids=["negative", "exp", "log", "sqrt", "absolute"])
def test_unary_gradients(prim, make, shape):
    check_grads(prim, make(*shape))


@pytest.mark.parametrize("shapes", BROADCAST_PAIRS, ids=str)
@pytest.mark.parametrize("prim, make_b", [
    (ops.add, randn), (ops.subtract, randn), (ops.multiply, randn),
    (ops.divide, away_from_zero), (ops.maximum, randn), (ops.minimum, randn),
], ids=["add", "subtract", "multiply", "divide", "maximum", "minimum"])
def test_binary_gradients_with_broadcasting(prim, make_b, shapes):
    a_shape, b_shape = shapes
    check_grads(prim, randn(*a_shape), make_b(*b_shape, seed=1))


@pytest.mark.parametrize("shapes", BROADCAST_PAIRS, ids=str)
def test_power_gradient_in_base_and_traced_exponent(shapes):
    x_shape, p_shape = shapes
    check_grads(ops.power, positive(*x_shape), randn(*p_shape, seed=1))


def test_power_with_constant_exponent_allows_negative_base():
    x = randn(4, 3)
    check_grads(lambda v: v ** 2, x)
    check_grads(lambda v: v ** 3.0, x)
    np.testing.assert_allclose(grad_of_sum(lambda v: v ** 3, x), 3 * x ** 2)


def test_power_gradient_in_exponent_is_zero_at_zero_base():
    # d 0^p / dp = 0 for p > 0 (not 0 * log 0 = nan)
    x, p = np.array([0.0, 1.0, 2.0]), np.array([2.0, 2.0, 2.0])
    with np.errstate(divide="raise", invalid="raise"):
        gp = grad_of_sum(ops.power, x, p, argnums=1)
    np.testing.assert_allclose(gp, [0.0, 0.0, 4.0 * np.log(2.0)])


@pytest.mark.parametrize("expr", [
    lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / b,
    lambda a, b: abs(a) ** b, lambda a, b: -a * b, lambda a, b: abs(a) + abs(b),
], ids=["+", "-", "*", "/", "**", "neg", "abs"])
@pytest.mark.parametrize("shapes", [((4, 3), (4, 3)), ((4, 1), (1, 3)), ((), (3,))], ids=str)
def test_operators_of_traced_values(expr, shapes):
    a, b = away_from_zero(*shapes[0]), away_from_zero(*shapes[1], seed=1)
    check_grads(expr, a, b)
    np.testing.assert_allclose(pn.vjp(expr, a, b)[0], expr(a, b))


@pytest.mark.parametrize("expr", [
    lambda a: 2.0 + a, lambda a: 2.0 - a, lambda a: 3.0 * a, lambda a: 1.0 / a,
    lambda a: 2.0 ** a, lambda a: np.arange(3.0) - a, lambda a: np.arange(3.0) / a,
    lambda a: np.arange(3.0) * a, lambda a: np.float64(2.0) ** a,
], ids=["r+", "r-", "r*", "r/", "r**", "ndarray-", "ndarray/", "ndarray*", "generic**"])
def test_reflected_operators_with_constants(expr):
    a = away_from_zero(4, 3)
    check_grads(expr, a)
    np.testing.assert_allclose(pn.vjp(expr, a)[0], expr(a))


def test_exact_elementwise_gradients():
    x = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_array_equal(grad_of_sum(ops.absolute, x), [-1.0, 0.0, 1.0])
    np.testing.assert_allclose(grad_of_sum(ops.exp, x), np.exp(x))
    np.testing.assert_allclose(grad_of_sum(ops.sqrt, np.array([4.0])), [0.25])
    np.testing.assert_allclose(grad_of_sum(ops.log, np.array([4.0])), [0.25])
    a, b = np.array([6.0]), np.array([2.0])
    np.testing.assert_allclose(grad_of_sum(ops.divide, a, b, argnums=(0, 1)), ([0.5], [-1.5]))


def test_comparisons_give_plain_boolean_arrays():
    seen = []

    def f(x):
        for mask in (x > 0, x >= 0, x < 0, x <= 0, x == x, x != 0, 0 < x, np.zeros(3) < x):
            seen.append(mask)
        return ops.sum(x)

    pn.grad(f)(np.array([-1.0, 0.0, 2.0]))
    assert all(type(m) is np.ndarray and m.dtype == bool for m in seen)
    np.testing.assert_array_equal(seen[0], [False, False, True])
    np.testing.assert_array_equal(seen[-1], [False, False, True])


# --- ties: maximum, minimum, max ----------------------------------------------------

def test_maximum_and_minimum_split_ties_in_half():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 5.0])
    ga, gb = grad_of_sum(ops.maximum, a, b, argnums=(0, 1))
    np.testing.assert_array_equal(ga, [0.5, 1.0, 0.0])
    np.testing.assert_array_equal(gb, [0.5, 0.0, 1.0])
    ga, gb = grad_of_sum(ops.minimum, a, b, argnums=(0, 1))
    np.testing.assert_array_equal(ga, [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(gb, [0.5, 1.0, 0.0])


def test_relu_as_maximum_with_zero_splits_the_tie_at_zero():
    x = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(grad_of_sum(lambda v: ops.maximum(v, 0.0), x), [0.0, 0.5, 1.0])
    # a broadcast scalar collects the gradient of every position it won or tied
    gb = grad_of_sum(ops.maximum, x, np.array(0.0), argnums=1)
    assert gb.shape == () and gb == 1.5


def test_max_splits_the_gradient_among_ties():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    for keepdims in (False, True):
        g = grad_of_sum(lambda v: ops.max(v, axis=1, keepdims=keepdims), x)
        np.testing.assert_allclose(g, [[0.0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(grad_of_sum(ops.max, x), [[0.0, 0.5, 0.5], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(grad_of_sum(lambda v: ops.max(v, axis=0), x),
                               [[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    column_ties = np.array([[1.0, 3.0], [1.0, 2.0]])
    np.testing.assert_allclose(grad_of_sum(lambda v: ops.max(v, axis=0), column_ties),
                               [[0.5, 1.0], [0.5, 0.0]])
    # the upstream gradient is shared, not copied: weights 10 and 100 per row
    g = pn.grad(lambda v: ops.sum(ops.max(v, axis=1) * np.array([10.0, 100.0])))(x)
    np.testing.assert_allclose(g, [[0.0, 5.0, 5.0], [100 / 3, 100 / 3, 100 / 3]])


@pytest.mark.parametrize("prim", [ops.maximum, ops.minimum], ids=lambda p: p.name)
def test_tie_weights_keep_float32(prim):
    a = np.array([1.0, 2.0, 3.0], np.float32)
    ga, gb = grad_of_sum(prim, a, np.float32(2.0) * np.ones(3, np.float32), argnums=(0, 1))
    assert ga.dtype == gb.dtype == np.float32
    assert grad_of_sum(lambda v: ops.max(v, axis=0), a).dtype == np.float32


# --- where and cast -----------------------------------------------------------------

def test_where_sends_the_gradient_through_the_selected_branch_only():
    cond = np.array([True, False, True])
    a, b = np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])
    weights = np.array([1.0, 10.0, 100.0])
    ga, gb = pn.grad(lambda a, b: ops.sum(ops.where(cond, a, b) * weights), argnums=(0, 1))(a, b)
    np.testing.assert_array_equal(ga, [1.0, 0.0, 100.0])
    np.testing.assert_array_equal(gb, [0.0, 10.0, 0.0])


def test_where_with_broadcasting():
    cond = np.array([[True], [False], [True]])
    a, b = randn(3, 4), np.array(7.0)
    check_grads(lambda a, b: ops.where(cond, a, b), a, b)
    ga, gb = grad_of_sum(lambda a, b: ops.where(cond, a, b), a, b, argnums=(0, 1))
    np.testing.assert_array_equal(ga, np.broadcast_to(cond, (3, 4)).astype(float))
    assert gb.shape == () and gb == 4.0          # the scalar filled one row of 4


def test_where_on_a_traced_comparison_is_leaky_relu():
    x = np.array([-2.0, 0.5, 3.0])
    g = grad_of_sum(lambda v: ops.where(v > 0, v, 0.1 * v), x)
    np.testing.assert_allclose(g, [0.1, 1.0, 1.0])


def test_cast_between_float32_and_float64():
    x32 = randn(4, 3).astype(np.float32)
    g = grad_of_sum(lambda v: ops.cast(v, np.float64) * 3.0, x32)
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, np.full((4, 3), 3.0, np.float32))

    x64 = randn(4, 3)
    value, g = pn.value_and_grad(lambda v: ops.sum(ops.cast(v, np.float32)))(x64)
    assert value.dtype == np.float32 and g.dtype == np.float64
    np.testing.assert_array_equal(g, np.ones((4, 3)))
    # the same through the method, against central differences (linear: a large step is exact)
    check_grads(lambda v: v.astype(np.float32), x64, eps=1e-2, rtol=1e-4, atol=1e-4)
    check_grads(lambda v: ops.cast(v, np.float64), x64)


def test_cast_to_integers_cuts_the_gradient():
    g = pn.grad(lambda v: ops.sum(v) + ops.sum(ops.cast(v, np.int64)) * 1.0)(np.array([1.5, 2.5]))
    np.testing.assert_array_equal(g, [1.0, 1.0])


# --- reductions ---------------------------------------------------------------------

AXES = [None, 0, 1, -1, (0, 2), (-1, 0), (0, 1, 2)]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", ["sum", "mean", "max"])
def test_reduction_values_and_gradients(name, axis, keepdims):
    prim, numpy_fn = getattr(ops, name), getattr(np, name)
    x = randn(2, 3, 4)
    np.testing.assert_allclose(prim(x, axis=axis, keepdims=keepdims),
                               numpy_fn(x, axis=axis, keepdims=keepdims), rtol=1e-12)
    check_vjp(lambda v: prim.vjp(v, axis=axis, keepdims=keepdims), x, name=name)
    # the method form of a traced value is the same primitive
    via_method = pn.vjp(lambda v: getattr(v, name)(axis=axis, keepdims=keepdims), x)[0]
    np.testing.assert_allclose(via_method, numpy_fn(x, axis=axis, keepdims=keepdims))


@pytest.mark.parametrize("shape", [(), (1,), (1, 3)], ids=str)
@pytest.mark.parametrize("name", ["sum", "mean", "max"])
def test_reductions_of_scalars_and_batch_one(name, shape):
    prim = getattr(ops, name)
    x = randn(*shape)
    check_grads(prim, x)
    if shape:
        check_vjp(lambda v: prim.vjp(v, axis=0), x, name=name)
        check_vjp(lambda v: prim.vjp(v, axis=-1, keepdims=True), x, name=name)


def test_reduction_gradients_exact():
    x = randn(2, 3)
    np.testing.assert_array_equal(grad_of_sum(lambda v: ops.sum(v, axis=0), x), np.ones((2, 3)))
    np.testing.assert_allclose(grad_of_sum(lambda v: ops.mean(v, axis=1), x),
                               np.full((2, 3), 1 / 3))
    np.testing.assert_allclose(grad_of_sum(ops.mean, x), np.full((2, 3), 1 / 6))


@pytest.mark.parametrize("name", ["sum", "mean", "max"])
def test_reduction_over_a_missing_axis_is_an_error(name):
    prim = getattr(ops, name)
    with pytest.raises(AxisError):
        prim(randn(2, 3), axis=2)
    with pytest.raises(AxisError):
        prim(randn(2, 3), axis=(0, -3))
    with pytest.raises(AxisError):
        prim(np.float64(1.0), axis=0)


# --- indexing -----------------------------------------------------------------------

X = randn(4, 5)
INDICES = [
    ("int", 1), ("negative int", -1), ("slice", slice(1, 3)), ("column", (slice(None), 0)),
    ("element", (2, -1)), ("negative step", slice(None, None, -1)),
    ("negative step 2-D", (slice(None, None, -2), slice(4, 0, -1))),
    ("ellipsis", (Ellipsis, 1)), ("new axis", (None, slice(1, 3))),
    ("integer array with repeats", np.array([0, 2, 0, 0])),
    ("list with repeats", [3, 3, 1]),
    ("two integer arrays", (np.array([0, 0, 3]), np.array([1, 1, 4]))),
    ("2-D integer array", np.array([[0, 1], [1, 1]])),
    ("boolean mask", X > 0), ("row mask", np.array([True, False, True, True])),
]


@pytest.mark.parametrize("index", [c[1] for c in INDICES], ids=[c[0] for c in INDICES])
def test_getitem_values_and_gradients(index):
    np.testing.assert_array_equal(ops.getitem(X, index), X[index])
    check_grads(lambda v: v[index], X)
    check_grads(lambda v: ops.getitem(v, index), X)


MIXED_INDICES = [("rows with repeats, column slice", ([0, 0], slice(1, None))),
                 ("all rows, columns with repeats", (slice(None), [0, 0, 2])),
                 ("integer array and slice", (np.array([0, 0]), slice(1, None))),
                 ("int and integer array", (1, np.array([0, 0, 2])))]


@pytest.mark.parametrize("index", [c[1] for c in MIXED_INDICES], ids=[c[0] for c in MIXED_INDICES])
def test_getitem_mixing_index_arrays_with_slices_or_ints_under_grad(index):
    check_grads(lambda v: v[index], X)


@pytest.mark.parametrize("index", [c[1] for c in MIXED_INDICES], ids=[c[0] for c in MIXED_INDICES])
def test_getitem_mixing_arrays_and_slices_on_plain_arrays(index):
    np.testing.assert_array_equal(ops.getitem(X, index), X[index])


def test_getitem_repeated_picks_add_up():
    x = np.array([10.0, 20.0, 30.0])
    np.testing.assert_array_equal(grad_of_sum(lambda v: v[[0, 0, 2, 0]], x), [3.0, 0.0, 1.0])
    np.testing.assert_array_equal(grad_of_sum(lambda v: v[::-1], x), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(grad_of_sum(lambda v: v[::-2], x), [1.0, 0.0, 1.0])
    mask = np.array([True, False, True])
    np.testing.assert_array_equal(grad_of_sum(lambda v: v[mask] * 2.0, x), [2.0, 0.0, 2.0])
    np.testing.assert_array_equal(pn.grad(lambda v: v[1])(x), [0.0, 1.0, 0.0])


def test_iterating_a_traced_value_indexes_it():
    x = np.array([1.0, 2.0, 3.0])
    g = pn.grad(lambda v: ops.sum(ops.stack([a * b for a, b in zip(v, v)])))(x)
    np.testing.assert_allclose(g, 2 * x)


# --- rearranging --------------------------------------------------------------------

@pytest.mark.parametrize("axes", [None, (1, 0, 2), (2, 0, 1), (-1, 0, 1), (0, 1, 2)], ids=str)
def test_transpose_values_and_gradients(axes):
    x = randn(2, 3, 4)
    np.testing.assert_array_equal(ops.transpose(x, axes), np.transpose(x, axes))
    check_grads(lambda v: ops.transpose(v, axes), x)


def test_transpose_method_forms():
    x = randn(2, 3, 4)
    cases = [(lambda v: v.T, x.T), (lambda v: v.transpose(), x.transpose()),
             (lambda v: v.transpose(1, 0, 2), x.transpose(1, 0, 2)),
             (lambda v: v.transpose((2, 0, 1)), x.transpose((2, 0, 1))),
             (lambda v: v.transpose([2, 0, 1]), x.transpose([2, 0, 1]))]
    for expr, expected in cases:
        np.testing.assert_array_equal(pn.vjp(expr, x)[0], expected)
        check_grads(expr, x)
    v1 = randn(3)
    np.testing.assert_array_equal(pn.vjp(lambda v: v.transpose(0), v1)[0], v1.transpose(0))
    check_grads(lambda v: v.T, randn(1, 3))
    check_grads(lambda v: v.T, randn())


def test_transpose_with_a_missing_axis_is_an_error():
    with pytest.raises(AxisError):
        ops.transpose(randn(2, 3), (0, 3))
    with pytest.raises(AxisError):
        pn.grad(lambda v: ops.sum(ops.transpose(v, (-3, 0))))(randn(2, 3))


@pytest.mark.parametrize("shape, new", [((2, 3, 4), (6, 4)), ((2, 3, 4), (-1,)), ((1, 3), (3, 1)),
                                        ((), (1, 1))], ids=str)
def test_reshape_values_and_gradients(shape, new):
    x = randn(*shape)
    np.testing.assert_array_equal(ops.reshape(x, new), x.reshape(new))
    check_grads(lambda v: v.reshape(new), x)
    check_grads(lambda v: v.reshape(*new), x)


@pytest.mark.parametrize("shapes, axis", [
    ([(2, 3), (4, 3)], 0), ([(2, 3), (2, 1), (2, 5)], 1), ([(2, 3), (2, 1)], -1),
    ([(1, 2, 3), (1, 2, 3)], 2), ([(3,)], 0),
], ids=str)
def test_concatenate(shapes, axis):
    xs = [randn(*s, seed=i) for i, s in enumerate(shapes)]
    np.testing.assert_array_equal(ops.concatenate(xs, axis=axis), np.concatenate(xs, axis=axis))
    check_grads(lambda *vs: ops.concatenate(list(vs), axis=axis), *xs)


def test_concatenate_with_a_constant_part():
    x, c = randn(2, 3), randn(2, 2, seed=1)
    g = pn.grad(lambda v: ops.sum(ops.concatenate([c, v, c], axis=1) * np.arange(7.0)))(x)
    np.testing.assert_array_equal(g, np.tile([2.0, 3.0, 4.0], (2, 1)))


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_stack(axis):
    xs = [randn(2, 3, seed=i) for i in range(3)]
    np.testing.assert_array_equal(ops.stack(xs, axis=axis), np.stack(xs, axis=axis))
    check_grads(lambda a, b, c: ops.stack([a, b, c], axis=axis), *xs)


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2])
def test_unstack(axis):
    x = randn(2, 3, 4)
    parts = ops.unstack(x, axis=axis)
    assert len(parts) == x.shape[axis]
    for i, part in enumerate(parts):
        np.testing.assert_array_equal(part, np.take(x, i, axis=axis))
    check_grads(lambda v: ops.unstack(v, axis=axis), x)
    # stack undoes unstack, and the gradient of the round trip is the identity
    check_grads(lambda v: ops.stack(list(ops.unstack(v, axis=axis)), axis=axis), x)


def test_unstack_slices_nobody_used_get_zero_gradient():
    x = randn(3, 2)
    g = pn.grad(lambda v: ops.sum(ops.unstack(v, axis=0)[1] * 5.0))(x)
    np.testing.assert_array_equal(g, [[0.0, 0.0], [5.0, 5.0], [0.0, 0.0]])
    g = pn.grad(lambda v: ops.sum(ops.unstack(v, axis=1)[0]))(x)
    np.testing.assert_array_equal(g, [[1.0, 0.0]] * 3)


# --- matmul -------------------------------------------------------------------------

MATMUL_SHAPES = [
    ((4, 3), (3,)), ((3,), (3, 2)), ((4, 3), (3, 2)), ((1, 3), (3, 2)), ((2, 4, 3), (3, 2)),
    ((2, 4, 3), (2, 3, 5)), ((4, 3), (2, 3, 5)), ((2, 1, 4, 3), (5, 3, 2)), ((2, 4, 3), (3,)),
    ((3,), (2, 3, 4)), ((1, 4, 3), (6, 3, 2)),
]


@pytest.mark.parametrize("a_shape, b_shape", MATMUL_SHAPES, ids=str)
def test_matmul_values_and_gradients(a_shape, b_shape):
    a, b = randn(*a_shape), randn(*b_shape, seed=1)
    np.testing.assert_allclose(ops.matmul(a, b), np.matmul(a, b), rtol=1e-12)
    check_grads(ops.matmul, a, b)
    check_grads(lambda x, w: x @ w, a, b)


def test_matmul_vector_dot_vector_gradient():
    a, b = randn(3), randn(3, seed=1)
    np.testing.assert_allclose(ops.matmul(a, b), a @ b)
    check_grads(ops.matmul, a, b)


def test_matmul_with_a_constant_on_either_side():
    a, w = randn(4, 3), randn(3, 2, seed=1)
    check_grads(lambda v: v @ w, a)
    check_grads(lambda v: a @ v, w)              # ndarray @ traced
    gw = pn.grad(lambda v: ops.sum(a @ v))(w)
    np.testing.assert_allclose(gw, np.tile(a.sum(axis=0)[:, None], (1, 2)))
