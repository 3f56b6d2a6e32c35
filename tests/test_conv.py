"""Convolutions: gradients against central differences, the fast primitive against the
loop-based reference and PyTorch, the layers, and a tiny CNN that must overfit."""
import numpy as np
import pytest

import purenet
from purenet.errors import ConfigError, ShapeError
from purenet.layers.base import serial
from purenet.layers.conv import Conv1D, Conv2D, MaxPool2D
from purenet.layers.core import Dense, Flatten
from purenet.ops import reference
from purenet.ops.conv import conv1d, conv2d
from purenet.ops.geometry import Geometry
from purenet.random import key
from purenet.testing import check_grads, check_layer_grads, check_model_grads
from purenet.tree import tree_map

# (batch, c_in, height, width, c_out, (kh, kw), stride, padding, dilation)
CASES = [
    (1, 1, 5, 5, 1, (3, 3), 1, "valid", 1),          # batch 1, single channel
    (3, 2, 6, 7, 4, (3, 3), 1, "same", 1),           # batch > 1, non-square
    (2, 3, 7, 5, 2, (3, 2), 2, "valid", 1),          # stride 2, non-square kernel
    (2, 2, 8, 9, 3, (5, 5), 2, "same", 1),           # stride 2 with "same"
    (2, 2, 6, 5, 3, (3, 3), 1, 2, 1),                # int padding larger than needed
    (2, 3, 7, 8, 2, (2, 3), (2, 1), (1, 2), 1),      # pair stride and padding
    (2, 2, 9, 8, 3, (3, 3), 1, "same", 2),           # dilation with "same"
    (2, 2, 10, 9, 2, (3, 2), 2, 1, (2, 3)),          # dilation, stride and padding together
    (2, 5, 6, 6, 2, (3, 3), 1, "same", 1),           # more inputs than outputs
    (2, 1, 6, 6, 5, (3, 3), 1, "same", 1),           # many more outputs than inputs
    (2, 2, 4, 5, 3, (3, 3), 1, 3, 1),                # padding beyond the kernel's reach
]
IDS = [f"n{c[0]}-c{c[1]}-{c[2]}x{c[3]}-o{c[4]}-k{c[5]}-s{c[6]}-p{c[7]}-d{c[8]}" for c in CASES]


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def make(case, seed=0):
    n, c, h, w, o, (kh, kw), stride, padding, dilation = case
    settings = dict(stride=stride, padding=padding, dilation=dilation)
    return randn(n, c, h, w, seed=seed), randn(kh, kw, c, o, seed=seed + 1), randn(o, seed=seed + 2), settings


def conv_vjp(x, w, b, **settings):
    """``(y, pullback)`` of conv2d at ``(x, w, b)``; the pullback gives ``(dx, dw, db)``."""
    return purenet.vjp(conv2d.bind(**settings), x, w, b)


def reference_settings(x, w, settings):
    geom = Geometry(x.shape[2:], w.shape[:2], **settings)
    return dict(stride=geom.stride, pads=geom.pads, dilation=geom.dilation)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_conv2d_gradients(case):
    x, w, b, settings = make(case)
    check_grads(conv2d.bind(**settings), x, w, b)


def test_conv2d_without_bias_gradients():
    x, w, _, settings = make(CASES[1])
    check_grads(lambda x, w: conv2d(x, w, None, **settings), x, w)
    _, back = conv_vjp(x, w, None, **settings)
    assert back(np.ones((3, 4, 6, 7)))[2] is None
    _, backward = conv2d.fn(x, w, None, **settings)          # the primitive's own backward
    assert backward(np.ones((3, 4, 6, 7)), (True, True, False))[2] is None


@pytest.mark.parametrize("needed", [(False, True, True), (True, False, True), (True, True, False),
                                    (False, False, True), (False, True, False)])
def test_conv_backward_computes_only_the_gradients_needed(needed):
    x, w, b, settings = make(CASES[2])
    for prim, args in [(conv2d, (x, w, b)), (conv1d, (x[:, :, 0], w[0], b))]:
        y, backward = prim.fn(*args, **settings)
        g = randn(*y.shape, seed=4)
        full = backward(g, (True, True, True))
        for want, got, expected in zip(needed, backward(g, needed), full):
            if want:
                np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
            else:
                assert got is None


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_conv2d_matches_loop_reference(case):
    x, w, b, settings = make(case)
    y, back = conv_vjp(x, w, b, **settings)
    ref = reference_settings(x, w, settings)
    np.testing.assert_allclose(y, reference.conv2d(x, w, b, **ref), rtol=1e-10, atol=1e-10)
    g = randn(*y.shape, seed=9)
    for fast, slow in zip(back(g), reference.conv2d_grads(x, w, g, **ref)):
        np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", [CASES[1], CASES[3], CASES[9]], ids=[IDS[1], IDS[3], IDS[9]])
def test_one_sample_chunks_give_the_same_results(case, monkeypatch):
    import purenet.ops.patches as patches_module
    monkeypatch.setattr(patches_module, "CHUNK_BYTES", 1)       # every sample its own chunk
    test_conv2d_matches_loop_reference(case)


@pytest.mark.parametrize("case", [CASES[1], CASES[4], CASES[6], CASES[8], CASES[9], CASES[10]],
                         ids=[IDS[i] for i in (1, 4, 6, 8, 9, 10)])
def test_both_input_gradient_routes_agree(case, monkeypatch):
    # stride-1 convolutions may take either route (by C_out / C_in); both must be exact
    from purenet.ops import conv
    x, w, b, settings = make(case)
    g = randn(*conv2d(x, w, b, **settings).shape, seed=7)
    results = []
    for ratio in (float("inf"), -1.0):                  # always transposed, always col2im
        monkeypatch.setattr(conv, "TRANSPOSED_MAX_RATIO", ratio)
        results.append(conv_vjp(x, w, b, **settings)[1](g)[0])
    np.testing.assert_allclose(results[0], results[1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", [(3, 4, 5, 6, 2, 3, 1, "same", 1), (2, 2, 9, 3, 3, 2, 2, 1, 2),
                                  (1, 1, 4, 2, 1, 2, 1, "valid", 1)])
def test_conv1d_gradients_and_agreement_with_conv2d(case):
    n, c, _, width, o, k, stride, padding, dilation = case
    x, w, b = randn(n, c, width), randn(k, c, o, seed=1), randn(o, seed=2)
    settings = dict(stride=stride, padding=padding, dilation=dilation)
    check_grads(conv1d.bind(**settings), x, w, b)
    pad2 = padding if isinstance(padding, str) else (0, padding)
    y2 = conv2d(x[:, :, None], w[None], b, stride=(1, stride), padding=pad2, dilation=(1, dilation))
    np.testing.assert_allclose(conv1d(x, w, b, **settings), y2[:, :, 0])


def test_memory_layout_does_not_change_results():
    x, w, b, settings = make(CASES[1])
    y, back = conv_vjp(x, w, b, **settings)
    g = randn(*y.shape, seed=3)
    grads = back(g)
    channels_last = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    strided = np.repeat(x, 2, axis=2)[:, :, ::2]
    for other in (channels_last, strided):
        y2, back2 = conv_vjp(other, w, b, **settings)
        np.testing.assert_allclose(y2, y, rtol=1e-12)
        for a, c in zip(back2(np.ascontiguousarray(g)), grads):
            np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-14)


def test_same_padding_keeps_size_and_stride_divides_it():
    x, w = randn(2, 3, 9, 7), randn(4, 3, 3, 5, seed=1)        # even kernel height
    assert conv2d(x, w, None, padding="same").shape == (2, 5, 9, 7)
    assert conv2d(x, w, None, padding="same", stride=2).shape == (2, 5, 5, 4)


def test_float32_stays_float32():
    x, w, b = (a.astype(np.float32) for a in (randn(2, 3, 6, 6), randn(3, 3, 3, 4), randn(4)))
    y, back = conv_vjp(x, w, b, padding="same")
    assert y.dtype == np.float32
    assert all(g.dtype == np.float32 for g in back(np.ones_like(y)))


def test_bad_inputs_and_settings_are_named():
    x, w = randn(2, 3, 6, 6), randn(3, 3, 2, 4)
    with pytest.raises(ShapeError, match="3 channels.*expects 2"):
        conv2d(x, w, None)
    with pytest.raises(ShapeError, match="too small"):
        conv2d(randn(1, 2, 2, 2), w, None)
    with pytest.raises(ShapeError, match="bias"):
        conv2d(randn(1, 2, 5, 5), w, np.zeros(3))
    with pytest.raises(ConfigError, match="padding"):
        conv2d(randn(1, 2, 5, 5), w, None, padding="full")
    with pytest.raises(ConfigError, match="stride"):
        conv2d(randn(1, 2, 5, 5), w, None, stride=0)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_conv2d_agrees_with_torch(case):
    torch = pytest.importorskip("torch")
    x, w, b, settings = make(case)
    geom = Geometry(x.shape[2:], w.shape[:2], **settings)
    (top, bottom), (left, right) = geom.pads
    xt = torch.tensor(np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right))), requires_grad=True)
    wt = torch.tensor(w.transpose(3, 2, 0, 1).copy(), requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, bt, stride=geom.stride, dilation=geom.dilation)
    y, back = conv_vjp(x, w, b, **settings)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    g = randn(*y.shape, seed=5)
    yt.backward(torch.tensor(g))
    dx, dw, db = back(g)
    dx_torch = xt.grad.numpy()[:, :, top:top + x.shape[2], left:left + x.shape[3]]
    np.testing.assert_allclose(dx, dx_torch, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dw, wt.grad.numpy().transpose(2, 3, 1, 0), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
def test_torch_same_padding_agrees():
    torch = pytest.importorskip("torch")
    x, w, b = randn(2, 3, 8, 7), randn(4, 2, 3, 5, seed=1), randn(5, seed=2)
    yt = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w.transpose(3, 2, 0, 1).copy()),
                                    torch.tensor(b), padding="same")
    np.testing.assert_allclose(conv2d(x, w, b, padding="same"), yt.numpy(), rtol=1e-10, atol=1e-10)


def test_conv2d_layer_shapes_and_gradients():
    layer = Conv2D(4, [3, 2], stride=[2, 1], padding="same", activation="tanh")
    out_shape, params, state = layer.init(key(0), (3, 7, 6), np.float64)
    assert out_shape == (4, 4, 6)
    assert params["W"].shape == (3, 2, 3, 4) and params["b"].shape == (4,)
    x = randn(2, 3, 7, 6)
    assert layer(params, x).shape == (2,) + out_shape
    check_layer_grads(layer, params, x, state)


def test_conv1d_layer_shapes_and_gradients():
    layer = Conv1D(5, 3, stride=2, padding=1, use_bias=False, activation="relu")
    out_shape, params, state = layer.init(key(1), (2, 9), np.float64)
    assert out_shape == (5, 5) and set(params) == {"W"} and params["W"].shape == (3, 2, 5)
    check_layer_grads(layer, params, randn(3, 2, 9), state)


def test_wrong_channel_count_names_the_layer():
    model = serial(Conv2D(4, 3), MaxPool2D(2), Flatten(), Dense(2))
    _, params, state = model.init(key(0), (3, 8, 8))
    with pytest.raises(ShapeError, match=r"conv2d_0.*3 channel.*\(2, 1, 8, 8\)"):
        model.apply(params, state, np.zeros((2, 1, 8, 8), np.float32))
    with pytest.raises(ShapeError, match="channels, height, width"):
        model.init(key(0), (8, 8))


def test_layer_settings_are_checked_when_built():
    with pytest.raises(ConfigError):
        Conv2D(4, 3, padding="full")
    with pytest.raises(ConfigError):
        Conv2D(0, 3)
    with pytest.raises(ConfigError):
        Conv1D(2, [3, 3])


def test_tiny_cnn_overfits_a_handful_of_images():
    from purenet.train.step import loss_and_grads
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 1, 8, 8)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    model = serial(Conv2D(4, 3, padding="same", activation="relu"), MaxPool2D(2), Flatten(), Dense(3))
    _, params, state = model.init(key(0), (1, 8, 8))
    first = None
    for _ in range(150):
        loss, grads, state = loss_and_grads(model, "softmax_cross_entropy", params, state, x, y)
        first = loss if first is None else first
        params = tree_map(lambda p, g: p - 0.1 * g, params, grads)
    logits = model(params, x)
    assert loss < 0.05 * first
    np.testing.assert_array_equal(logits.argmax(axis=1), y)



def test_bias_is_initialised_with_the_kernel_fan_in():
    c_in, (kh, kw) = 3, (5, 2)
    _, params, _ = Conv2D(4, [kh, kw], b_init="torch").init(key(0), (c_in, 8, 8), np.float64)
    bound = 1 / np.sqrt(kh * kw * c_in)                  # PyTorch's default bias range
    assert np.abs(params["b"]).max() <= bound and np.abs(params["b"]).max() > 0.5 * bound
    _, params, _ = Conv1D(6, 3, b_init="torch").init(key(0), (2, 9), np.float64)
    bound = 1 / np.sqrt(3 * 2)
    assert np.abs(params["b"]).max() <= bound and np.abs(params["b"]).max() > 0.5 * bound


@pytest.mark.parametrize("first", [Conv2D(3, 3, padding="same", activation="tanh"),
                                   Conv2D(3, 3, stride=2, use_bias=False)], ids=["same", "stride2"])
def test_a_first_conv_layer_never_computes_its_input_gradient(first, monkeypatch):
    import purenet.ops.conv as conv_module
    from purenet.train.step import loss_and_grads
    calls = []
    real = conv_module.input_grad
    monkeypatch.setattr(conv_module, "input_grad", lambda *a: calls.append(1) or real(*a))
    x, y = randn(4, 2, 7, 6), np.array([0, 1, 2, 1])
    one = serial(first, Flatten(), Dense(3))
    _, params, state = one.init(key(0), (2, 7, 6), np.float64)
    _, grads, _ = loss_and_grads(one, "softmax_cross_entropy", params, state, x, y)
    assert calls == []
    assert grads["conv2d_0"]["W"].shape == params["conv2d_0"]["W"].shape
    check_model_grads(one, "softmax_cross_entropy", params, x, y, state)
    assert calls == []
    two = serial(first, Conv2D(2, 3, padding="same", activation="relu"), Flatten(), Dense(3))
    _, params, state = two.init(key(1), (2, 7, 6), np.float64)
    loss_and_grads(two, "softmax_cross_entropy", params, state, x, y)
    assert len(calls) == 1                               # the second conv's, for the first's dW
    check_model_grads(two, "softmax_cross_entropy", params, x, y, state)


def test_a_first_conv1d_layer_never_computes_its_input_gradient(monkeypatch):
    import purenet.ops.conv as conv_module
    from purenet.train.step import loss_and_grads
    calls = []
    real = conv_module.input_grad
    monkeypatch.setattr(conv_module, "input_grad", lambda *a: calls.append(1) or real(*a))
    x, y = randn(3, 2, 9), np.array([0, 1, 0])
    model = serial(Conv1D(4, 3, padding="same", activation="relu"), Flatten(), Dense(2))
    _, params, state = model.init(key(0), (2, 9), np.float64)
    loss_and_grads(model, "softmax_cross_entropy", params, state, x, y)
    assert calls == []
    check_model_grads(model, "softmax_cross_entropy", params, x, y, state)
