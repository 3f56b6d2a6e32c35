"""The decoder's layers: transposed convolutions and upsampling (see ``base`` for the protocol).

    Conv2DTranspose(filters, kernel_size, stride=1, padding="valid", output_padding=0, ...)
        (C, H, W) -> (filters, H_out, W_out), params {"W": (kh, kw, filters, C), "b": (filters,)}
    Conv1DTranspose(...)          (C, W) -> (filters, W_out), params {"W": (kw, filters, C), ...}
    UpSampling2D(size=2, interpolation="nearest"|"bilinear")   (C, H, W) -> (C, H sh, W sw)

The kernel layout is the adjoint convolution's HWIO kernel (Keras's layout), so the
initialisers' fans read ``filters`` as the fan-in, as Keras and PyTorch do.
"""
import numpy as np

from .. import initializers
from ..errors import ConfigError, ShapeError
from ..ops import activations
from ..ops.geometry import as_pair, check_settings, single
from ..ops.conv_transpose import (conv_transpose1d, conv_transpose2d, transposed_geometry,
                                  upsample2d)
from ..random import split
from .base import Layer, layer_constructor, positive_int


def _transpose_layer(kind, rank, filters, kernel_size, act, w_init, b_init, use_bias, settings):
    """Shared body of Conv2DTranspose and Conv1DTranspose; ``rank`` is 2 or 1."""
    filters = positive_int(filters, f"{kind}: filters")
    act = activations.get(act)
    w_init, b_init = initializers.get(w_init), initializers.get(b_init)
    prim = conv_transpose2d if rank == 2 else conv_transpose1d
    kernel = as_pair(kernel_size, "kernel_size") if rank == 2 else (1, single(kernel_size, "kernel_size"))
    if min(kernel) < 1:
        raise ConfigError(f"{kind}: kernel_size must be positive, got {kernel_size!r}")
    geometry_settings = settings if rank == 2 else _as_2d(**settings)
    try:                            # bad settings fail here, at construction
        check_settings(kernel, **{k: v for k, v in geometry_settings.items()
                                  if k != "output_padding"})
    except ConfigError as err:
        raise ConfigError(f"{kind}: {err}") from None
    layout = "channels, height, width" if rank == 2 else "channels, width"

    def init(key, in_shape, dtype):
        if len(in_shape) != rank + 1:
            raise ShapeError(f"expected examples of shape ({layout}), got {in_shape}")
        in_hw = in_shape[1:] if rank == 2 else (1, in_shape[1])
        out_hw = transposed_geometry(in_hw, kernel, **geometry_settings).in_hw
        k_w, k_b = split(key)
        window = kernel[2 - rank:]
        params = {"W": w_init(k_w, window + (filters, in_shape[0]), dtype)}
        if use_bias:
            params["b"] = b_init(k_b, (filters,), dtype, fan_in=int(np.prod(window)) * filters)
        return (filters,) + out_hw[2 - rank:], params, {}

    def apply(params, state, x, train, key):
        if np.ndim(x) != rank + 2 or x.shape[1] != params["W"].shape[-1]:
            raise ShapeError(f"expected input of shape (batch, {layout}) with "
                             f"{params['W'].shape[-1]} channel(s), got {np.shape(x)}")
        return activations.activate(act, prim(x, params["W"], params.get("b"), **settings)), state

    return Layer(kind, init, apply)


def _as_2d(stride=1, padding="valid", output_padding=0, dilation=1):
    """1-D transposed-convolution settings as those of a height-1 2-D one."""
    pad = padding if isinstance(padding, str) else (0, single(padding, "padding", 0))
    return dict(stride=(1, single(stride, "stride")), dilation=(1, single(dilation, "dilation")),
                padding=pad, output_padding=(0, single(output_padding, "output_padding", 0)))


@layer_constructor
def Conv2DTranspose(filters, kernel_size, stride=1, padding="valid", output_padding=0, dilation=1,
                    activation="identity", w_init="glorot_uniform", b_init="zeros", use_bias=True):
    """Transposed 2-D convolution (the adjoint of Conv2D), bias and activation:
    ``(C, H, W) -> (filters, H_out, W_out)``; ``padding="same"`` gives ``H_out = H * stride``."""
    return _transpose_layer("conv2dtranspose", 2, filters, kernel_size, activation, w_init, b_init,
                            use_bias, dict(stride=stride, padding=padding,
                                           output_padding=output_padding, dilation=dilation))


@layer_constructor
def Conv1DTranspose(filters, kernel_size, stride=1, padding="valid", output_padding=0, dilation=1,
                    activation="identity", w_init="glorot_uniform", b_init="zeros", use_bias=True):
    """Transposed 1-D convolution: ``(C, W) -> (filters, W_out)``."""
    return _transpose_layer("conv1dtranspose", 1, filters, kernel_size, activation, w_init, b_init,
                            use_bias, dict(stride=stride, padding=padding,
                                           output_padding=output_padding, dilation=dilation))


@layer_constructor
def UpSampling2D(size=2, interpolation="nearest"):
    """Enlarge images by integer factors: ``(C, H, W) -> (C, H sh, W sw)``; ``interpolation``
    "nearest" (repeat pixels) or "bilinear"."""
    sh, sw = as_pair(size, "size")
    if min(sh, sw) < 1:
        raise ConfigError(f"UpSampling2D: size must be positive, got {size!r}")
    if interpolation not in ("nearest", "bilinear"):
        raise ConfigError(f"UpSampling2D: interpolation must be 'nearest' or 'bilinear', "
                          f"got {interpolation!r}")

    def init(key, in_shape, dtype):
        if len(in_shape) != 3:
            raise ShapeError(f"expected examples of shape (channels, height, width), got {in_shape}")
        return (in_shape[0], in_shape[1] * sh, in_shape[2] * sw), {}, {}

    def apply(params, state, x, train, key):
        if np.ndim(x) != 4:
            raise ShapeError(f"expected input of shape (batch, channels, height, width), "
                             f"got {np.shape(x)}")
        return upsample2d(x, size=(sh, sw), method=interpolation), state

    return Layer("upsampling2d", init, apply)
