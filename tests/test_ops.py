"""Every primitive's hand-derived backward against central differences (float64)."""
import numpy as np
import pytest

import purenet
from purenet import ops
from purenet.errors import ConfigError, ShapeError
from purenet.ops import primitive
from purenet.testing import check_grads

SHAPES = [(1, 3), (4, 5), (2, 3, 4)]   # batch 1, a plain batch, a sequence batch
ELEMENTWISE = [ops.identity, ops.sigmoid, ops.tanh, ops.relu, ops.leaky_relu, ops.elu,
               ops.softplus, ops.softmax, ops.log_softmax, ops.flatten]


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("prim", ELEMENTWISE, ids=lambda p: p.name)
@pytest.mark.parametrize("shape", SHAPES)
def test_activation_gradients(prim, shape):
    check_grads(prim, randn(*shape))



@pytest.mark.parametrize("alpha", [0.1, 0.3])
@pytest.mark.parametrize("prim", [ops.leaky_relu, ops.elu], ids=lambda p: p.name)
def test_slope_settings(prim, alpha):
    from purenet.testing import check_vjp
    check_vjp(lambda v: prim.vjp(v, alpha=alpha), randn(3, 4), name=prim.name)


def test_softmax_over_other_axis():
    from purenet.testing import check_vjp
    check_vjp(lambda v: ops.softmax.vjp(v, axis=0), randn(4, 3), name="softmax axis 0")
    check_vjp(lambda v: ops.log_softmax.vjp(v, axis=1), randn(2, 4, 3), name="log_softmax axis 1")


@pytest.mark.parametrize("x_shape", [(1, 3), (5, 3), (2, 4, 3)])
def test_matmul_and_bias_gradients(x_shape):
    check_grads(ops.matmul, randn(*x_shape), randn(3, 2, seed=1))
    check_grads(ops.add_bias, randn(*x_shape), randn(3, seed=2))


def test_reshape_gradient():
    from purenet.testing import check_vjp
    check_vjp(lambda v: ops.reshape.vjp(v, (2, 12)), randn(2, 3, 4), name="reshape")


def test_relu_backward_masks_on_input_sign():
    x = np.array([[-2.0, 0.0, 3.0]])
    _, back = ops.relu.vjp(x)
    np.testing.assert_array_equal(back(np.ones_like(x))[0], [[0.0, 0.0, 1.0]])


def test_sigmoid_and_softplus_are_stable_for_large_inputs():
    x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0], dtype=np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = ops.sigmoid(x)
        sp = ops.softplus(x)
    np.testing.assert_allclose(s, [0, 0, 0.5, 1, 1], atol=1e-7)
    np.testing.assert_allclose(sp, [0, 0, np.log(2), 50, 1000], rtol=1e-6, atol=1e-7)
    assert s.dtype == np.float32 and sp.dtype == np.float32


def test_softmax_rows_sum_to_one_and_log_softmax_agrees():
    x = randn(4, 6) * 50
    np.testing.assert_allclose(ops.softmax(x).sum(axis=1), 1.0)
    np.testing.assert_allclose(np.exp(ops.log_softmax(x)), ops.softmax(x), atol=1e-12)


@pytest.mark.parametrize("prim", ELEMENTWISE + [ops.matmul], ids=lambda p: p.name)
def test_float32_in_float32_out(prim):
    x = randn(4, 3).astype(np.float32)
    args = (x, randn(3, 3).astype(np.float32)) if prim is ops.matmul else (x,)
    y, back = prim.vjp(*args)
    grads = back(np.ones_like(y))
    assert y.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads)


def test_user_defined_primitive_works_like_builtins():
    @primitive
    def cube(x):
        y = x ** 3

        def backward(g):
            # d x^3 / dx = 3 x^2
            return (3 * x * x * g,)

        return y, backward

    check_grads(cube, randn(3, 2))
    from purenet.layers import Activation, Dense, serial
    from purenet.random import key
    from purenet.testing import check_layer_grads
    model = serial(Dense(4), Activation(cube), Dense(1))
    _, params, _ = model.init(key(0), (3,), np.float64)
    check_layer_grads(model, params, randn(5, 3))


def test_check_grads_catches_a_wrong_backward():
    @primitive
    def wrong_double(x):
        return 2 * x, lambda g: (g,)          # should be 2 g

    with pytest.raises(AssertionError, match="wrong_double"):
        check_grads(wrong_double, randn(3))


def test_engine_rejects_gradient_of_wrong_shape_naming_the_primitive():
    @primitive
    def bad(x):
        return x * 2, lambda g: (g[:1],)

    _, back = bad.vjp(randn(3))
    with pytest.raises(ShapeError, match="primitive 'bad'.*argument 0"):
        back(np.ones(3))


def test_engine_unbroadcasts_bias_gradient():
    x, b = randn(4, 3), randn(3)
    _, back = ops.add_bias.vjp(x, b)
    g = randn(4, 3, seed=5)
    np.testing.assert_allclose(back(g)[1], g.sum(axis=0))


def test_gradient_check_needs_float64():
    with pytest.raises(TypeError, match="float64"):
        check_grads(ops.tanh, randn(2, 2).astype(np.float32))


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_linear_with_a_fused_activation(activation):
    """``linear(..., activation=a)`` = a(linear(...)): values and every gradient, and its
    own gradients against central differences."""
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal((5, 3, 4)), rng.standard_normal((4, 6)), rng.standard_normal(6)
    check_grads(ops.linear.bind(activation=activation), x, w, b)
    act = getattr(ops, activation)
    y, pull = purenet.vjp(ops.linear.bind(activation=activation), x, w, b)
    y_ref, pull_ref = purenet.vjp(lambda *a: act(ops.linear(*a)), x, w, b)
    np.testing.assert_allclose(y, y_ref, rtol=1e-14, atol=1e-14)
    g = rng.standard_normal(y.shape)
    for got, want in zip(pull(g), pull_ref(g)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_linear_fused_relu_masks_on_the_sign_and_keeps_float32():
    x = np.array([[1.0, -1.0]], np.float32)
    y, pull = purenet.vjp(ops.linear.bind(activation="relu"), x, np.eye(2, dtype=np.float32),
                          np.zeros(2, np.float32))
    dx, _, db = pull(np.ones((1, 2), np.float32))
    np.testing.assert_array_equal(y, [[1.0, 0.0]])
    np.testing.assert_array_equal(dx, [[1.0, 0.0]])
    assert y.dtype == dx.dtype == db.dtype == np.float32


def test_linear_rejects_an_activation_it_cannot_fuse():
    with pytest.raises(ConfigError, match="activation must be identity or one of relu, sigmoid, tanh"):
        ops.linear(np.ones((2, 3)), np.ones((3, 4)), np.zeros(4), activation="elu")
