"""The spectral route of the convolutions (``ops.spectral``): gradients against central
differences, values and gradients equal to the direct route in every geometry, float32
kept, the layout it hands on, the rule that picks it, and the layers downstream of
its spatial-major output (pooling, batch norm)."""
import numpy as np
import pytest

import purenet
from purenet.errors import ConfigError
from purenet.ops import reference
from purenet.ops.conv import conv2d
from purenet.ops.conv_pool import conv2d_max_pool2d
from purenet.ops.geometry import Geometry
from purenet.ops.normalization import batch_norm
from purenet.ops.pooling import max_pool2d
from purenet.ops.spectral import use_spectral
from purenet.testing import check_grads

# (batch, c_in, height, width, c_out, (kh, kw), stride, padding, dilation)
CASES = [
    (1, 1, 5, 5, 1, (3, 3), 1, "valid", 1),          # one channel, no padding: canvas = image
    (3, 2, 6, 7, 4, (3, 3), 1, "same", 1),           # non-square image
    (2, 3, 7, 5, 2, (3, 2), 2, "valid", 1),          # stride 2, non-square kernel
    (2, 2, 8, 9, 3, (5, 5), 2, "same", 1),           # stride 2 with "same"
    (2, 2, 6, 5, 3, (3, 3), 1, 2, 1),                # padding larger than needed
    (2, 3, 7, 8, 2, (2, 3), (2, 1), (1, 2), 1),      # pair stride and padding
    (2, 2, 9, 8, 3, (3, 3), 1, "same", 2),           # dilation with "same"
    (2, 2, 10, 9, 2, (3, 2), 2, 1, (2, 3)),          # dilation, stride and padding together
    (2, 2, 4, 5, 3, (3, 3), 1, 3, 1),                # padding beyond the kernel's reach
    (2, 2, 2, 3, 2, (5, 5), 1, "same", 1),           # kernel wider than the canvas: taps alias
    (2, 2, 1, 11, 3, (1, 4), 1, "valid", 1),         # height 1 (a 1-D convolution)
    (2, 3, 8, 8, 2, (3, 3), 1, ((3, 0), (1, 4)), 1),  # lopsided explicit padding
]
IDS = [f"n{c[0]}-c{c[1]}-{c[2]}x{c[3]}-o{c[4]}-k{c[5]}-s{c[6]}-p{c[7]}-d{c[8]}" for c in CASES]


def make(case, seed=0):
    n, c, h, w, o, (kh, kw), stride, padding, dilation = case
    rng = np.random.default_rng(seed)
    settings = dict(stride=stride, padding=padding, dilation=dilation)
    return (rng.standard_normal((n, c, h, w)), rng.standard_normal((kh, kw, c, o)),
            rng.standard_normal(o), settings)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_spectral_gradients(case):
    x, w, b, settings = make(case)
    check_grads(conv2d.bind(method="spectral", **settings), x, w, b)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_spectral_equals_direct_and_reference(case):
    x, w, b, settings = make(case)
    y, pull = purenet.vjp(conv2d.bind(method="spectral", **settings), x, w, b)
    y_direct, pull_direct = purenet.vjp(conv2d.bind(method="direct", **settings), x, w, b)
    geom = Geometry(x.shape[2:], w.shape[:2], settings["stride"], settings["padding"],
                    settings["dilation"])
    y_loops = reference.conv2d(x, w, b, geom.stride, geom.pads, geom.dilation)
    np.testing.assert_allclose(y, y_loops, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(y, y_direct, rtol=1e-10, atol=1e-10)
    g = np.random.default_rng(1).standard_normal(y.shape)
    for got, want in zip(pull(g), pull_direct(g)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_only_the_gradients_asked_for():
    x, w, b, settings = make(CASES[1])
    _, pull = purenet.vjp(lambda w_: conv2d(x, w_, b, method="spectral", **settings), w)
    (dw,) = pull(np.ones((3, 4, 6, 7)))
    _, pull_all = purenet.vjp(conv2d.bind(method="spectral", **settings), x, w, b)
    np.testing.assert_allclose(dw, pull_all(np.ones((3, 4, 6, 7)))[1], rtol=1e-12)


def test_float32_stays_float32_and_close_to_direct():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 8, 14, 14), dtype=np.float32)
    w = (0.2 * rng.standard_normal((5, 5, 8, 6))).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    y, pull = purenet.vjp(conv2d.bind(padding="same", method="spectral"), x, w, b)
    y_ref, pull_ref = purenet.vjp(conv2d.bind(padding="same", method="direct"), x, w, b)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-4)
    g = rng.standard_normal(y.shape, dtype=np.float32)
    for got, want in zip(pull(g), pull_ref(g)):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


def test_integer_data_stays_exact():
    """"auto" keeps integers on the direct route; "spectral" rounds its results to the
    exact integers."""
    x = np.arange(2 * 3 * 14 * 14).reshape(2, 3, 14, 14) % 7
    w = np.ones((5, 5, 3, 4), dtype=int)
    exact = conv2d(x, w, None, padding="same", method="direct")
    for method in ("auto", "spectral"):
        y = conv2d(x, w, None, padding="same", method=method)
        assert y.dtype == exact.dtype
        np.testing.assert_array_equal(y, exact)


def test_float16_in_float16_out():
    """Half precision is transformed in complex64 and handed back in float16, like the
    direct route's results."""
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 6, 6)).astype(np.float16)
    w = rng.random((3, 3, 3, 4)).astype(np.float16)
    y, pull = purenet.vjp(conv2d.bind(padding="same", method="spectral"), x, w, None)
    dx, dw, _ = pull(np.ones(y.shape, np.float16))
    assert y.dtype == dx.dtype == dw.dtype == np.float16
    np.testing.assert_allclose(y, conv2d(x, w, None, padding="same", method="direct"),
                               rtol=1e-2, atol=1e-2)


def test_output_is_spatial_major_and_read_back_without_a_copy():
    """The output's memory is (H, W, N, C): a second spectral convolution reads it as is."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 9, 9))
    w1, w2 = rng.standard_normal((3, 3, 4, 5)), rng.standard_normal((3, 3, 5, 2))
    y = conv2d(x, w1, None, padding="same", method="spectral")
    memory = y.transpose(2, 3, 0, 1)
    assert memory.flags.c_contiguous
    z = conv2d(y, w2, None, padding="same", method="spectral")
    np.testing.assert_allclose(z, conv2d(np.ascontiguousarray(y), w2, None, padding="same",
                                         method="direct"), rtol=1e-10, atol=1e-10)


def test_unknown_method_is_a_config_error():
    x, w, b, settings = make(CASES[1])
    with pytest.raises(ConfigError, match="method must be one of auto, direct, spectral"):
        conv2d(x, w, b, method="fft", **settings)
    with pytest.raises(ConfigError, match="method"):
        conv2d_max_pool2d(x, w, b, pool_size=2, method="winograd", padding="same")


def test_the_rule_picks_each_route_where_it_measured_faster():
    """One input channel: the transforms of 32 output planes cost more than the products
    save (direct 2x faster in bench_conv_constants); 32 -> 64 channels with a 5x5 kernel
    on 14x14 images: the products take ~8x fewer operations (spectral 2.5-3x faster)."""
    first = Geometry((28, 28), (5, 5), padding="same")
    assert not use_spectral(first, 128, 1, 32)
    assert use_spectral(Geometry((14, 14), (5, 5), padding="same"), 128, 32, 64)
    # a strided convolution computes every position in the spectral route: direct
    assert not use_spectral(Geometry((28, 28), (3, 3), stride=2, padding="same"), 128, 32, 64)


@pytest.mark.parametrize("pool", [2, (2, 3)])
def test_conv_pool_spectral_equals_direct(pool):
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((3, 3, 3, 4)), rng.standard_normal(4)
    args = dict(pool_size=pool, padding="same")
    y, pull = purenet.vjp(conv2d_max_pool2d.bind(method="spectral", **args), x, w, b)
    y_ref, pull_ref = purenet.vjp(conv2d_max_pool2d.bind(method="direct", **args), x, w, b)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-10)
    g = rng.standard_normal(y.shape)
    for got, want in zip(pull(g), pull_ref(g)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    check_grads(conv2d_max_pool2d.bind(method="spectral", **args), x, w, b)


def _spatial_major(a):
    """The same NCHW values stored (H, W, N, C)."""
    return np.ascontiguousarray(a.transpose(2, 3, 0, 1)).transpose(2, 3, 0, 1)


def test_pooling_gradient_keeps_the_inputs_memory_order():
    rng = np.random.default_rng(0)
    x = _spatial_major(rng.standard_normal((2, 3, 6, 6)))
    y, pull = purenet.vjp(max_pool2d.bind(pool_size=2), x)
    (dx,) = pull(np.ones(y.shape))
    assert dx.transpose(2, 3, 0, 1).flags.c_contiguous
    assert y.transpose(2, 3, 0, 1).flags.c_contiguous
    np.testing.assert_array_equal(dx, purenet.vjp(max_pool2d.bind(pool_size=2),
                                                  np.ascontiguousarray(x))[1](np.ones(y.shape))[0])


def test_batch_norm_of_spatial_major_input_equals_contiguous():
    rng = np.random.default_rng(3)     # not the checker's seed: its cotangent would be affine in x
    x = rng.standard_normal((4, 3, 5, 6)) * 2 + 1
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    g = rng.standard_normal(x.shape)
    outs = []
    for layout in (np.ascontiguousarray, _spatial_major):
        (y, mean, var), pull = purenet.vjp(batch_norm, layout(x), gamma, beta)
        outs.append((y, mean, var) + pull((g, None, None)))
    for got, want in zip(*outs):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    check_grads(lambda x_, g_, b_: batch_norm(x_, g_, b_)[0], _spatial_major(x), gamma, beta)


def _small_cnn():
    from purenet.layers import BatchNorm, Conv2D, Dense, Flatten, MaxPool2D, serial
    return serial(Conv2D(4, 3, padding="same", activation="relu"), MaxPool2D(2), BatchNorm(),
                  Conv2D(3, 3, padding="same"), Flatten(), Dense(2))


@pytest.mark.parametrize("route", [True, False], ids=["spectral", "direct"])
def test_a_cnn_trains_the_same_on_either_route(route, monkeypatch):
    """A CNN (conv + pool fused, batch norm on the spatial-major output, a second conv)
    with every convolution forced onto one route: its gradients against central
    differences, and its loss and gradients equal to the other route's."""
    from purenet import loss_and_grads
    from purenet.ops import spectral
    from purenet.random import key
    from purenet.testing import check_model_grads
    model = _small_cnn()
    _, params, state = model.init(key(0), (2, 6, 6), np.float64)
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((4, 2, 6, 6)), rng.integers(0, 2, 4)
    results = {}
    for forced in (route, not route):
        monkeypatch.setattr(spectral, "use_spectral", lambda *a, forced=forced: forced)
        results[forced] = loss_and_grads(model, "softmax_cross_entropy", params, state, x, y)
        if forced == route:
            check_model_grads(model, "softmax_cross_entropy", params, x, y, state)
    (loss_a, grads_a, _), (loss_b, grads_b, _) = results[route], results[not route]
    np.testing.assert_allclose(loss_a, loss_b, rtol=1e-12)
    for layer in grads_a:
        for name in grads_a[layer]:
            np.testing.assert_allclose(grads_a[layer][name], grads_b[layer][name],
                                       rtol=1e-9, atol=1e-12)
