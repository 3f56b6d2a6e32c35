"""Transposed convolution and upsampling: definition, PyTorch, gradients, layers."""
import numpy as np
import pytest

import purenet as pn
from purenet.errors import ConfigError, ShapeError
from purenet.ops import reference
from purenet.ops.conv_transpose import (conv_transpose1d, conv_transpose2d, transposed_geometry,
                                        upsample2d)
from purenet.testing import check_grads, check_layer_grads

torch = pytest.importorskip("torch")
rng = np.random.default_rng(0)

# (stride, padding, output_padding, dilation), as PyTorch takes them
TABLE = [(1, 0, 0, 1), (2, 0, 0, 1), (2, 1, 1, 1), (3, 2, 2, 1), (1, 1, 0, 2), (2, 2, 1, 2),
         ((2, 1), (1, 0), (1, 0), (1, 2)), (3, (0, 1), (1, 2), 1)]


def torch_conv_transpose(x, w, b, stride, padding, output_padding, dilation):
    tw = torch.tensor(w.transpose(3, 2, 0, 1))               # (kh, kw, out, in) -> (in, out, kh, kw)
    return torch.nn.functional.conv_transpose2d(
        torch.tensor(x), tw, None if b is None else torch.tensor(b), stride=stride,
        padding=padding, output_padding=output_padding, dilation=dilation).numpy()


@pytest.mark.parametrize("stride,padding,output_padding,dilation", TABLE)
def test_agrees_with_pytorch_and_the_loop_reference(stride, padding, output_padding, dilation):
    x, w, b = rng.standard_normal((2, 3, 5, 4)), rng.standard_normal((3, 2, 4, 3)), rng.standard_normal(4)
    y = conv_transpose2d(x, w, b, stride=stride, padding=padding, output_padding=output_padding,
                         dilation=dilation)
    expected = torch_conv_transpose(x, w, b, stride, padding, output_padding, dilation)
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10)
    geom = transposed_geometry(x.shape[2:], w.shape[:2], stride, padding, output_padding, dilation)
    loop = reference.conv_transpose2d(x, w, b, geom.in_hw, geom.stride, geom.pads, geom.dilation)
    np.testing.assert_allclose(y, loop, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("stride,padding,output_padding,dilation", TABLE)
def test_gradients_agree_with_pytorch_and_central_differences(stride, padding, output_padding,
                                                              dilation):
    settings = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation)
    x, w, b = rng.standard_normal((2, 3, 4, 3)), rng.standard_normal((2, 3, 2, 3)), rng.standard_normal(2)
    check_grads(lambda x, w, b: conv_transpose2d(x, w, b, **settings), x, w, b)
    y, pullback = pn.vjp(lambda x, w, b: conv_transpose2d(x, w, b, **settings), x, w, b)
    g = rng.standard_normal(y.shape)
    dx, dw, db = pullback(g)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w.transpose(3, 2, 0, 1), b))
    torch.nn.functional.conv_transpose2d(xt, wt, bt, **settings).backward(torch.tensor(g))
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dw, wt.grad.numpy().transpose(2, 3, 1, 0), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_same_padding_multiplies_the_size_by_the_stride():
    for stride, k in ((2, 3), (2, 4), (3, 1), (1, 5)):
        y = conv_transpose2d(rng.standard_normal((1, 2, 5, 3)), rng.standard_normal((k, k, 4, 2)),
                             None, stride=stride, padding="same")
        assert y.shape == (1, 4, 5 * stride, 3 * stride)


def test_is_the_adjoint_of_the_convolution():
    # <conv(a), x> == <a, conv_transpose(x)> for the same kernel and settings
    a, w = rng.standard_normal((2, 4, 9, 8)), rng.standard_normal((3, 3, 4, 5))
    conv = pn.ops.conv2d(a, w, None, stride=2, padding=1)
    x = rng.standard_normal(conv.shape)
    up = conv_transpose2d(x, w, None, stride=2, padding=1, output_padding=(0, 1))
    assert up.shape == a.shape
    assert np.vdot(conv, x) == pytest.approx(np.vdot(a, up))


def test_the_first_layer_skips_its_input_gradient(monkeypatch):
    import purenet.ops.conv_transpose as module
    calls = []
    real = module.correlate
    monkeypatch.setattr(module, "correlate", lambda *a: calls.append(1) or real(*a))
    model = pn.serial(pn.Conv2DTranspose(2, 3, stride=2), pn.Flatten(), pn.Dense(1))
    _, params, state = model.init(pn.key(0), (1, 3, 3))
    pn.loss_and_grads(model, "mse", params, state, np.ones((2, 1, 3, 3), np.float32),
                      np.zeros((2, 1), np.float32))
    assert calls == []


def test_conv_transpose1d_is_the_height_one_case():
    x, w = rng.standard_normal((2, 3, 7)), rng.standard_normal((3, 4, 3))
    y = conv_transpose1d(x, w, None, stride=2, padding=1, output_padding=1)
    expected = torch.nn.functional.conv_transpose1d(torch.tensor(x), torch.tensor(w.transpose(2, 1, 0)),
                                                    stride=2, padding=1, output_padding=1).numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10)
    check_grads(lambda x, w: conv_transpose1d(x, w, None, stride=2, padding=1, output_padding=1), x, w)


@pytest.mark.parametrize("method", ["nearest", "bilinear"])
@pytest.mark.parametrize("size", [2, (3, 1)])
def test_upsampling_agrees_with_pytorch_and_has_gradients(method, size):
    x = rng.standard_normal((2, 3, 4, 5))
    y = upsample2d(x, size=size, method=method)
    extra = {} if method == "nearest" else {"align_corners": False}
    expected = torch.nn.functional.interpolate(torch.tensor(x), scale_factor=size, mode=method,
                                               **extra).numpy()
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)
    check_grads(lambda x: upsample2d(x, size=size, method=method), x)


def test_layers_shapes_gradients_and_save(tmp_path):
    model = pn.serial(pn.Conv2D(4, 3, stride=2, padding="same"),
                      pn.Conv2DTranspose(3, 3, stride=2, padding="same", activation="relu"),
                      pn.UpSampling2D(2, "bilinear"), pn.Conv2DTranspose(1, 2, use_bias=False),
                      pn.Flatten())
    out_shape, params, state = model.init(pn.key(0), (2, 6, 6), np.float64)
    assert out_shape == (13 * 13,)        # 6 -> 3 -> 6 -> 12 -> 13
    assert params["conv2dtranspose_1"]["W"].shape == (3, 3, 3, 4)
    x = rng.standard_normal((2, 2, 6, 6))
    assert model(params, x, state).shape == (2, 169)
    check_layer_grads(model, params, x, state)
    pn.save_model(tmp_path / "m.npz", model, params, state, in_shape=(2, 6, 6))
    loaded, params2, state2, _ = pn.load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded(params2, x, state2), model(params, x, state))


def test_bad_settings_and_inputs_are_clear_errors():
    with pytest.raises(ConfigError, match="output_padding"):
        conv_transpose2d(np.ones((1, 1, 3, 3)), np.ones((3, 3, 1, 1)), None, stride=2, output_padding=2)
    with pytest.raises(ShapeError, match="channels"):
        conv_transpose2d(np.ones((1, 2, 3, 3)), np.ones((3, 3, 1, 1)), None)
    with pytest.raises(ConfigError, match="filters"):
        pn.Conv2DTranspose(0, 3)
    with pytest.raises(ConfigError, match="interpolation"):
        pn.UpSampling2D(2, "cubic")
    with pytest.raises(ShapeError, match="conv2dtranspose_0"):
        pn.serial(pn.Conv2DTranspose(2, 3)).apply(
            pn.serial(pn.Conv2DTranspose(2, 3)).init(pn.key(0), (1, 4, 4))[1], {}, np.ones((1, 3, 4, 4)))
