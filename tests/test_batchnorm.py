"""Batch normalisation: fused gradients in training mode (of all three outputs), running
statistics, inference."""
import numpy as np
import pytest

import purenet
from purenet.errors import ConfigError, ShapeError
from purenet.layers.base import serial
from purenet.layers.conv import Conv2D
from purenet.layers.normalization import BatchNorm
from purenet.ops.normalization import batch_norm, batch_norm_inference
from purenet.random import key
from purenet.testing import check_grads, check_layer_grads

SHAPES = [(5, 3), (1, 4, 6), (4, 2, 3, 5), (2, 3, 4, 4)]   # dense, 1-D conv (batch 1), conv


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def params_for(shape, seed=1):
    c = shape[1]
    return 1.0 + 0.5 * randn(c, seed=seed), randn(c, seed=seed + 1)


def normalised(x, gamma, beta):
    """The ``y`` output of training-mode batch norm alone."""
    return batch_norm(x, gamma, beta)[0]


@pytest.mark.parametrize("shape", SHAPES)
def test_training_gradients(shape):
    gamma, beta = params_for(shape)
    # (seed 0 would make x an affine copy of the checker's own cotangent, whose gradient is 0)
    check_grads(normalised, 2.0 + 3.0 * randn(*shape, seed=3), gamma, beta)


@pytest.mark.parametrize("output", [1, 2], ids=["mean", "var"])
@pytest.mark.parametrize("shape", SHAPES)
def test_gradients_of_the_batch_statistics(shape, output):
    gamma, beta = params_for(shape)
    check_grads(lambda x, g, b: batch_norm(x, g, b)[output], 2.0 + 3.0 * randn(*shape, seed=3),
                gamma, beta)


@pytest.mark.parametrize("shape", SHAPES)
def test_gradients_when_the_loss_uses_y_mean_and_var(shape):
    gamma, beta = params_for(shape)
    x = 2.0 + 3.0 * randn(*shape, seed=3)
    check_grads(batch_norm, x, gamma, beta)              # a random cotangent on all three outputs
    w_y, w_mean, w_var = randn(*shape, seed=11), randn(shape[1], seed=12), randn(shape[1], seed=13)

    def loss(x, gamma, beta):
        y, mean, var = batch_norm(x, gamma, beta)
        return purenet.ops.sum(y * y * w_y) + purenet.ops.sum(mean * w_mean) + purenet.ops.sum(
            var * var * w_var)

    check_grads(loss, x, gamma, beta)


def test_statistics_gradients_agree_with_torch():
    torch = pytest.importorskip("torch")
    x = 2.0 + 3.0 * randn(4, 3, 5, 2)
    gamma, beta = params_for(x.shape)
    g_y, g_mean, g_var = randn(*x.shape, seed=7), randn(3, seed=8), randn(3, seed=9)
    xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    mean_t = xt.mean(dim=(0, 2, 3))
    var_t = xt.var(dim=(0, 2, 3), unbiased=False)
    y_t = torch.nn.functional.batch_norm(xt, None, None, gt, bt, training=True, eps=1e-5)
    (y_t * torch.tensor(g_y)).sum().add((mean_t * torch.tensor(g_mean)).sum()).add(
        (var_t * torch.tensor(g_var)).sum()).backward()
    (y, mean, var), back = purenet.vjp(batch_norm, x, gamma, beta)
    np.testing.assert_allclose(mean, mean_t.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(var, var_t.detach().numpy(), rtol=1e-12)
    for ours, theirs in zip(back((g_y, g_mean, g_var)), (xt, gt, bt)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_inference_gradients(shape):
    gamma, beta = params_for(shape)
    mean, var = randn(shape[1], seed=5), 0.5 + np.abs(randn(shape[1], seed=6))
    check_grads(batch_norm_inference, randn(*shape), gamma, beta, mean, var)


@pytest.mark.parametrize("shape", SHAPES[:1] + SHAPES[2:])
def test_training_output_is_normalised_per_channel(shape):
    x = 2.0 + 3.0 * randn(*shape)
    y, mean, var = batch_norm(x, np.ones(shape[1]), np.zeros(shape[1]), eps=0.0)
    axes = (0,) + tuple(range(2, len(shape)))
    np.testing.assert_allclose(y.mean(axis=axes), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=axes), 1.0, rtol=1e-10)
    np.testing.assert_allclose(mean, x.mean(axis=axes))
    np.testing.assert_allclose(var, x.var(axis=axes))


def test_agrees_with_torch_in_training_and_inference():
    torch = pytest.importorskip("torch")
    x = 2.0 + 3.0 * randn(4, 3, 5, 2)
    gamma, beta = params_for(x.shape)
    bn = torch.nn.BatchNorm2d(3, eps=1e-5, momentum=0.1).double()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(gamma))
        bn.bias.copy_(torch.tensor(beta))
    layer = BatchNorm(momentum=0.9)
    _, _, state = layer.init(key(0), (3, 5, 2), np.float64)
    params = {"gamma": gamma, "beta": beta}
    xt = torch.tensor(x, requires_grad=True)
    yt = bn.train()(xt)
    y, new_state = layer.apply(params, state, x, train=True)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(new_state["mean"], bn.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(new_state["var"], bn.running_var.numpy(), rtol=1e-12)
    g = randn(*x.shape, seed=7)
    yt.backward(torch.tensor(g))
    _, back = purenet.vjp(lambda p, v: layer.apply(p, state, v, train=True)[0], params, x)
    dparams, dx = back(g)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dparams["gamma"], bn.weight.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(dparams["beta"], bn.bias.grad.numpy(), rtol=1e-10)
    x2 = randn(3, 3, 5, 2, seed=8)
    np.testing.assert_allclose(layer(params, x2, new_state),
                               bn.eval()(torch.tensor(x2)).detach().numpy(), rtol=1e-10, atol=1e-12)


def test_training_state_is_not_traced():
    layer = BatchNorm()
    _, params, state = layer.init(key(0), (3,), np.float64)
    x = randn(6, 3, seed=2)

    def loss(p):
        y, new_state = layer.apply(p, state, x, train=True)
        return purenet.ops.sum(y * y), new_state

    (_, new_state), grads = purenet.value_and_grad(loss, has_aux=True)(params)
    assert all(type(v) is np.ndarray for v in new_state.values())
    np.testing.assert_allclose(new_state["mean"], 0.1 * x.mean(axis=0))
    assert set(grads) == {"gamma", "beta"}


@pytest.mark.parametrize("cotangents", ["y", "all"])
def test_memory_layout_does_not_change_results(cotangents):
    x = randn(3, 4, 5, 2, seed=4)
    gamma, beta = params_for(x.shape)
    g = randn(*x.shape, seed=5)
    g_stats = (None, None) if cotangents == "y" else (randn(4, seed=6), randn(4, seed=7))
    (y, mean, var), back = purenet.vjp(batch_norm, x, gamma, beta)
    grads = back((g,) + g_stats)
    channels_last = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    strided = np.repeat(x, 2, axis=3)[:, :, :, ::2]               # neither layout: copied
    for other in (channels_last, strided):
        (y2, mean2, var2), back2 = purenet.vjp(batch_norm, other, gamma, beta)
        np.testing.assert_allclose(y2, y, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(mean2, mean, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(var2, var, rtol=1e-12, atol=1e-12)
        for a, b in zip(back2((g,) + g_stats), grads):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_running_statistics_follow_the_momentum_rule():
    layer = BatchNorm(momentum=0.8)
    _, params, state = layer.init(key(0), (2,))
    assert set(state) == {"mean", "var"} and state["mean"].dtype == np.float32
    x = np.array([[1.0, 10.0], [3.0, 10.0], [5.0, 16.0]], dtype=np.float32)
    _, new_state = layer.apply(params, state, x, train=True)
    np.testing.assert_allclose(new_state["mean"], 0.2 * np.array([3.0, 12.0]), rtol=1e-6)
    # unbiased batch variances 4 and 12
    np.testing.assert_allclose(new_state["var"], 0.8 + 0.2 * np.array([4.0, 12.0]), rtol=1e-6)
    assert new_state["var"].dtype == np.float32
    np.testing.assert_array_equal(state["mean"], [0.0, 0.0])        # the old state is untouched
    _, same_state = layer.apply(params, new_state, x, train=False)
    assert same_state is new_state


def test_inference_uses_running_statistics():
    layer = BatchNorm(eps=1e-12)
    _, params, _ = layer.init(key(0), (3, 2, 2), np.float64)
    state = {"mean": np.array([1.0, 2.0, 3.0]), "var": np.array([4.0, 1.0, 0.25])}
    x = randn(2, 3, 2, 2)
    expected = (x - state["mean"][:, None, None]) / np.sqrt(state["var"])[:, None, None]
    np.testing.assert_allclose(layer(params, x, state), expected)


@pytest.mark.parametrize("train", [True, False])
def test_layer_gradients_in_a_conv_model(train):
    model = serial(Conv2D(3, 3, padding="same"), BatchNorm())
    _, params, state = model.init(key(2), (2, 5, 4), np.float64)
    check_layer_grads(model, params, randn(4, 2, 5, 4), state, train=train)


def test_float32_stays_float32():
    x = randn(4, 3, 5, 5).astype(np.float32)
    (y, mean, var), back = purenet.vjp(batch_norm, x, np.ones(3, np.float32),
                                       np.zeros(3, np.float32))
    assert y.dtype == mean.dtype == var.dtype == np.float32
    assert all(g.dtype == np.float32 for g in back((np.ones_like(y), None, None)))
    assert all(g.dtype == np.float32 for g in back((np.ones_like(y), np.ones(3), np.ones(3))))


def test_bad_inputs_and_settings():
    layer = serial(BatchNorm())
    _, params, state = layer.init(key(0), (4, 3, 3))
    with pytest.raises(ShapeError, match=r"batchnorm_0.*4 channels"):
        layer.apply(params, state, np.zeros((2, 3, 3, 3)), train=True)
    with pytest.raises(ShapeError, match="gamma"):
        batch_norm(np.zeros((2, 3)), np.ones(2), np.zeros(3))
    with pytest.raises(ConfigError):
        BatchNorm(momentum=1.0)
    with pytest.raises(ConfigError):
        BatchNorm(eps=0)
