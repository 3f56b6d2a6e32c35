"""Pooling: gradients, the tie rule, the loop reference, PyTorch, and the layers."""
import numpy as np
import pytest

import purenet
from purenet.errors import ConfigError, ShapeError
from purenet.layers.conv import AvgPool1D, AvgPool2D, GlobalAvgPool2D, MaxPool1D, MaxPool2D
from purenet.ops import reference
from purenet.ops.pooling import (avg_pool1d, avg_pool2d, global_avg_pool2d, max_pool1d, max_pool2d,
                                 pool_geometry)
from purenet.random import key
from purenet.testing import check_grads, check_layer_grads

# (x shape, pool_size, stride, padding)
CASES = [
    ((1, 1, 4, 4), 2, None, "valid"),       # batch 1, tiling windows
    ((3, 2, 6, 5), 2, None, "valid"),       # non-square, odd width drops the last column
    ((2, 3, 7, 6), 3, 2, "valid"),          # overlapping windows
    ((2, 2, 5, 7), (2, 3), (1, 2), 1),      # pair sizes, int padding
    ((2, 2, 7, 7), 3, 2, "same"),
]
IDS = [f"{c[0]}-k{c[1]}-s{c[2]}-p{c[3]}" for c in CASES]


def distinct(shape, seed=0):
    """Values with no ties, so central differences never straddle a switch of the maximum."""
    values = np.random.default_rng(seed).permutation(int(np.prod(shape))).astype(np.float64)
    return values.reshape(shape) / 7.0


def pool_vjp(prim, x, **settings):
    """``(y, pullback)`` of a pooling at ``x``; the pullback gives ``(dx,)``."""
    return purenet.vjp(prim.bind(**settings), x)


def settings_of(case):
    _, pool, stride, padding = case
    return dict(pool_size=pool, stride=stride, padding=padding)


def ref_args(case):
    shape, pool, stride, padding = case
    geom = pool_geometry(shape[2:], pool, stride, padding)
    return geom.kernel_hw, geom.stride, geom.pads


@pytest.mark.parametrize("prim", [max_pool2d, avg_pool2d], ids=lambda p: p.name)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_pool2d_gradients(prim, case):
    check_grads(prim.bind(**settings_of(case)), distinct(case[0]))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_pool2d_matches_loop_reference(case):
    x = distinct(case[0])
    for prim, ref, ref_grad in [(max_pool2d, reference.max_pool2d, reference.max_pool2d_grad),
                                (avg_pool2d, reference.avg_pool2d, reference.avg_pool2d_grad)]:
        y, back = pool_vjp(prim, x, **settings_of(case))
        np.testing.assert_allclose(y, ref(x, *ref_args(case)), rtol=1e-12)
        g = np.random.default_rng(3).standard_normal(y.shape)
        np.testing.assert_allclose(back(g)[0], ref_grad(x, g, *ref_args(case)), rtol=1e-12, atol=1e-14)


def test_max_pool_ties_send_the_gradient_to_the_first_maximum():
    x = np.array([[[[1.0, 3.0, 2.0, 2.0],
                    [3.0, 0.0, 2.0, 2.0],
                    [5.0, 5.0, 0.0, 0.0],
                    [5.0, 5.0, 0.0, 0.0]]]])
    y, back = pool_vjp(max_pool2d, x, pool_size=2)
    np.testing.assert_array_equal(y, [[[[3.0, 2.0], [5.0, 0.0]]]])
    expected = np.array([[[[0, 1, 2, 0],      # row-major order: the first of the tied cells
                           [0, 0, 0, 0],
                           [3, 0, 4, 0],
                           [0, 0, 0, 0]]]], dtype=float)
    np.testing.assert_array_equal(back(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))[0], expected)


def test_overlapping_windows_accumulate_ties_consistently():
    x = np.ones((1, 1, 3, 3))
    _, back = pool_vjp(max_pool2d, x, pool_size=2, stride=1)
    dx = back(np.ones((1, 1, 2, 2)))[0]
    # each window picks its top-left cell: four windows, four different cells
    np.testing.assert_array_equal(dx[0, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(dx, reference.max_pool2d_grad(x, np.ones((1, 1, 2, 2)), (2, 2), (1, 1)))


def test_max_pool_padding_is_never_the_maximum():
    x = -np.ones((1, 1, 3, 3))
    y = max_pool2d(x, pool_size=2, stride=2, padding=1)
    np.testing.assert_array_equal(y, -np.ones((1, 1, 2, 2)))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_pool2d_agrees_with_torch(case):
    torch = pytest.importorskip("torch")
    shape, _, _, _ = case
    (kh, kw), stride, ((top, bottom), (left, right)) = ref_args(case)
    if top != bottom or left != right or max(top, left) > min(kh, kw) // 2:
        pytest.skip("torch pads symmetrically, at most half the window")
    x = distinct(shape)
    xt = torch.tensor(x, requires_grad=True)
    for prim, fn in [(max_pool2d, torch.nn.functional.max_pool2d),
                     (avg_pool2d, torch.nn.functional.avg_pool2d)]:
        xt.grad = None
        yt = fn(xt, (kh, kw), stride, (top, left))
        y, back = pool_vjp(prim, x, **settings_of(case))
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12)
        g = np.random.default_rng(1).standard_normal(y.shape)
        yt.backward(torch.tensor(g))
        np.testing.assert_allclose(back(g)[0], xt.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_global_avg_pool():
    x = distinct((3, 4, 5, 2))
    np.testing.assert_allclose(global_avg_pool2d(x), x.mean(axis=(2, 3)))
    check_grads(global_avg_pool2d, x)


@pytest.mark.parametrize("prim", [max_pool1d, avg_pool1d], ids=lambda p: p.name)
def test_pool1d_gradients_and_agreement_with_2d(prim):
    x = distinct((2, 3, 9))
    settings = dict(pool_size=3, stride=2, padding=1)
    check_grads(prim.bind(**settings), x)
    twin = max_pool2d if prim is max_pool1d else avg_pool2d
    y2 = twin(x[:, :, None], pool_size=(1, 3), stride=(1, 2), padding=(0, 1))
    np.testing.assert_allclose(prim(x, **settings), y2[:, :, 0])


def test_float32_stays_float32():
    x = distinct((2, 3, 6, 6)).astype(np.float32)
    for prim in (max_pool2d, avg_pool2d):
        y, back = pool_vjp(prim, x, pool_size=2)
        assert y.dtype == np.float32 and back(np.ones_like(y))[0].dtype == np.float32


def test_pool_layers_shapes_and_gradients():
    x = distinct((2, 3, 7, 6))
    for layer, out_shape in [(MaxPool2D(2), (3, 3, 3)), (AvgPool2D([3, 2], stride=1), (3, 5, 5)),
                             (MaxPool2D(3, stride=2, padding="same"), (3, 4, 3)),
                             (GlobalAvgPool2D(), (3,))]:
        shape, params, state = layer.init(key(0), x.shape[1:])
        assert shape == out_shape
        assert layer(params, x).shape == (2,) + out_shape
        check_layer_grads(layer, params, x, state)
    for layer, out_shape in [(MaxPool1D(2), (3, 3)), (AvgPool1D(3, stride=1, padding=1), (3, 6))]:
        assert layer.init(key(0), (3, 6))[0] == out_shape
        check_layer_grads(layer, {}, distinct((2, 3, 6)))


def test_bad_pooling_settings_and_inputs():
    with pytest.raises(ConfigError, match="smaller than the pool window"):
        max_pool2d(np.zeros((1, 1, 4, 4)), pool_size=2, padding=2)
    with pytest.raises(ConfigError, match="pool_size"):
        max_pool2d(np.zeros((1, 1, 4, 4)), pool_size=0)
    with pytest.raises(ShapeError, match="batch, channels, height, width"):
        max_pool2d(np.zeros((4, 4)), pool_size=2)
    with pytest.raises(ShapeError, match="maxpool1d.*batch, channels, width"):
        MaxPool1D(2).apply({}, {}, np.zeros((1, 2, 3, 4)))


def test_max_pooling_commutes_with_relu():
    # the cnn recipe pools before its ReLU; both are monotone, so the order does not change values
    from purenet.ops.activations import relu
    x = np.random.default_rng(7).standard_normal((3, 4, 8, 6)).astype(np.float32)
    np.testing.assert_array_equal(max_pool2d(relu(x), pool_size=2), relu(max_pool2d(x, pool_size=2)))
