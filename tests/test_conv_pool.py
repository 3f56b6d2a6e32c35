"""The fused convolution + tiling max pooling: gradients against central differences,
values and gradients equal to conv2d then max_pool2d (ties included), and serial
running a Conv2D + MaxPool2D pair with it only where that is exact."""
import numpy as np
import pytest

import purenet
from purenet.errors import ShapeError
from purenet.layers.base import _fusions, serial
from purenet.layers.conv import AvgPool2D, Conv1D, Conv2D, MaxPool1D, MaxPool2D
from purenet.layers.core import Dense, Flatten
from purenet.layers.normalization import BatchNorm
from purenet.ops.conv import conv2d
from purenet.ops.conv_pool import conv2d_max_pool2d
from purenet.ops.pooling import max_pool2d
from purenet.random import key
from purenet.testing import check_grads

# (batch, c_in, height, width, c_out, kernel, conv settings, pool)
CASES = [
    (2, 1, 8, 8, 3, 5, dict(padding="same"), 2),                      # one channel (offset-major copy)
    (2, 3, 7, 7, 4, 3, dict(padding="same"), 2),                      # odd size: last row/column dropped
    (2, 2, 9, 8, 3, 3, dict(padding="valid"), (2, 3)),                # non-square window
    (3, 2, 11, 10, 2, 3, dict(stride=2, padding=1), 2),               # strided convolution
    (2, 2, 9, 9, 3, 2, dict(dilation=2, padding="same"), 3),          # dilation, window 3
    (2, 4, 6, 6, 2, 3, dict(padding="same"), 6),                      # one window per image
]
IDS = [f"c{c[1]}-{c[2]}x{c[3]}-o{c[4]}-k{c[5]}-{'-'.join(map(str, c[6].values()))}-p{c[7]}"
       for c in CASES]


def make(case, seed=0):
    n, c, h, w, o, k, settings, pool = case
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, c, h, w)), rng.standard_normal((k, k, c, o)),
            rng.standard_normal(o), settings, pool)


def unfused(x, w, b, settings, pool):
    """conv2d, then max_pool2d, then the bias: what the fused primitive must equal."""
    y = max_pool2d(conv2d(x, w, None, **settings), pool_size=pool)
    return y + b[None, :, None, None]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_fused_gradients(case):
    x, w, b, settings, pool = make(case)
    check_grads(conv2d_max_pool2d.bind(pool_size=pool, **settings), x, w, b)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_fused_equals_conv_then_pool(case):
    x, w, b, settings, pool = make(case)
    y, pull = purenet.vjp(conv2d_max_pool2d.bind(pool_size=pool, **settings), x, w, b)
    y_ref, pull_ref = purenet.vjp(lambda *a: unfused(*a, settings, pool), x, w, b)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    g = np.random.default_rng(1).standard_normal(y.shape)
    for got, want in zip(pull(g), pull_ref(g)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_ties_go_to_the_first_maximum_like_max_pool2d():
    # a constant image gives equal conv outputs in every window of the interior
    x = np.ones((2, 2, 6, 6))
    w = np.random.default_rng(0).standard_normal((3, 3, 2, 3))
    b = np.zeros(3)
    settings = dict(padding="valid")
    y, pull = purenet.vjp(conv2d_max_pool2d.bind(pool_size=2, **settings), x, w, b)
    y_ref, pull_ref = purenet.vjp(lambda *a: unfused(*a, settings, 2), x, w, b)
    g = np.random.default_rng(1).standard_normal(y.shape)
    for got, want in zip(pull(g), pull_ref(g)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_float32_stays_float32_and_the_output_is_channels_last_in_memory():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8, 8), dtype=np.float32)
    w = rng.standard_normal((3, 3, 3, 4), dtype=np.float32)
    y = conv2d_max_pool2d(x, w, None, padding="same")
    assert y.dtype == np.float32 and y.shape == (2, 4, 4, 4)
    assert y.transpose(0, 2, 3, 1).flags.c_contiguous


def test_an_output_smaller_than_the_window_is_a_shape_error():
    x, w = np.zeros((1, 1, 4, 4)), np.zeros((3, 3, 1, 2))
    with pytest.raises(ShapeError, match="smaller than the 3x3 pooling window"):
        conv2d_max_pool2d(x, w, None, pool_size=3)


def layerwise(model, params, state, x):
    """The model applied one layer at a time: no fusion."""
    for layer in model.children:
        x, _ = layer.apply(params[layer.name], state.get(layer.name, {}), x)
    return x


@pytest.mark.parametrize("activation", ["identity", "relu"])
def test_serial_fuses_conv_and_tiling_max_pool_exactly(activation):
    model = serial(Conv2D(4, 3, padding="same", activation=activation), MaxPool2D(2),
                   BatchNorm(), Conv2D(3, 3, activation=activation), MaxPool2D((2, 2), stride=2),
                   Flatten(), Dense(2))
    assert sorted(_fusions(model.children)) == [0, 3]
    x = np.random.default_rng(0).standard_normal((3, 2, 9, 10))
    _, params, state = model.init(key(0), x.shape[1:], np.float64)
    loss = lambda p, f: purenet.ops.sum(f(p) ** 2)
    fused = purenet.value_and_grad(loss)(params, lambda p: model.apply(p, state, x)[0])
    plain = purenet.value_and_grad(loss)(params, lambda p: layerwise(model, p, state, x))
    np.testing.assert_allclose(fused[0], plain[0], rtol=1e-12)
    purenet.tree.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12),
                          fused[1], plain[1])
    _, new_state = model.apply(params, state, x, train=True)
    assert set(new_state) == set(state)


@pytest.mark.parametrize("layers", [
    [Conv2D(2, 3), MaxPool2D(2, stride=1)],                 # overlapping windows
    [Conv2D(2, 3), MaxPool2D(3, stride=2)],
    [Conv2D(2, 3), MaxPool2D(2, padding="same")],           # padded windows
    [Conv2D(2, 3), AvgPool2D(2)],
    [Conv2D(2, 3, activation="tanh"), MaxPool2D(2)],        # tanh may round ties apart
    [Conv1D(2, 3), MaxPool1D(2)],
], ids=["overlap", "stride-2-window-3", "padded", "average", "tanh", "1-d"])
def test_serial_leaves_other_pairs_alone(layers):
    assert _fusions(serial(*layers).children) == {}


def test_fused_errors_name_the_convolution_layer():
    model = serial(Conv2D(2, 3, name="first"), MaxPool2D(2))
    _, params, state = model.init(key(0), (3, 8, 8))
    with pytest.raises(ShapeError, match="layer 'first'.*channels"):
        model.apply(params, state, np.zeros((1, 2, 8, 8), np.float32))
