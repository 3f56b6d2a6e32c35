"""Convolution and pooling layers (see ``base`` for the layer protocol).

Shapes exclude the batch axis: 2-D layers take ``(C, H, W)`` examples, 1-D layers
``(C, W)``. Kernels are stored HWIO, ``W (kh, kw, C_in, filters)`` (1-D:
``(kw, C_in, filters)``), the layout ``initializers.fans`` expects, so Glorot/He
scale by the receptive field. Arguments are JSON-able (ints, strings, lists) so
saved models can be rebuilt; a size may be an int or a pair. A bias is initialised
with its kernel's fan-in (``kh*kw*C_in``; 1-D ``kw*C_in``).

Each ``apply`` is a plain call of the primitives (``ops.conv``, ``ops.pooling``);
``purenet.grad`` differentiates it, and a first convolution, whose input is data,
skips its input gradient.
"""
import numpy as np

from .. import initializers
from ..errors import ConfigError, ShapeError
from ..ops import activations
from ..ops.conv import conv1d, conv2d
from ..ops.conv_pool import conv2d_max_pool2d
from ..ops.geometry import (Geometry, as_pair, check_settings, resolve_padding, settings_1d,
                            single)
from ..ops.pooling import (avg_pool1d, avg_pool2d, check_pool_settings, global_avg_pool2d,
                           max_pool1d, max_pool2d, pool_geometry)
from ..ops.pooling import settings_1d as pool_settings_1d
from ..random import split
from .base import Layer, layer_constructor, positive_int


def _check_input(x, channels, rank, layout):
    """ShapeError unless ``x`` is ``(batch, channels, ...)`` of the given rank."""
    if np.ndim(x) != rank or x.shape[1] != channels:
        raise ShapeError(f"expected input of shape (batch, {layout}) with {channels} channel(s), "
                         f"got {np.shape(x)}")


def _check_in_shape(in_shape, rank, layout):
    if len(in_shape) != rank:
        raise ShapeError(f"expected examples of shape ({layout}), got {in_shape}")


def _spatial(in_shape, rank):
    """(H, W) of a (C, H, W) example; (1, W) of a (C, W) one."""
    return in_shape[1:] if rank == 2 else (1, in_shape[1])


def _settings_checked(constructor, check, *args, **kwargs):
    """``check(*args, **kwargs)``, its ConfigError prefixed with the constructor's name."""
    try:
        return check(*args, **kwargs)
    except ConfigError as err:
        raise ConfigError(f"{constructor}: {err}") from None


def _conv_kernel(kernel_size, rank):
    """The kernel as a (kh, kw) pair of positive ints (1-D: (1, kw))."""
    if rank == 1:
        return 1, single(kernel_size, "kernel_size")
    kernel = as_pair(kernel_size, "kernel_size")
    if min(kernel) < 1:
        raise ConfigError(f"kernel_size must be positive, got {kernel_size!r}")
    return kernel


def _conv_layer(kind, rank, filters, kernel_size, act, w_init, b_init, use_bias, settings):
    """Shared body of Conv1D and Conv2D; ``rank`` is 2 or 1 (spatial axes)."""
    constructor = "Conv2D" if rank == 2 else "Conv1D"
    filters = positive_int(filters, f"{constructor}: filters")
    act = activations.get(act)
    w_init, b_init = initializers.get(w_init), initializers.get(b_init)
    prim, layout = (conv2d, "channels, height, width") if rank == 2 else (conv1d, "channels, width")
    kernel = _settings_checked(constructor, _conv_kernel, kernel_size, rank)
    settings_2d = settings if rank == 2 else _settings_checked(constructor, settings_1d, **settings)
    # bad settings fail here, at construction
    _settings_checked(constructor, check_settings, kernel, **settings_2d)

    def init(key, in_shape, dtype):
        _check_in_shape(in_shape, rank + 1, layout)
        out_hw = Geometry(_spatial(in_shape, rank), kernel, **settings_2d).out_hw
        k_w, k_b = split(key)
        window, c_in = kernel[2 - rank:], in_shape[0]
        params = {"W": w_init(k_w, window + (c_in, filters), dtype)}
        if use_bias:
            params["b"] = b_init(k_b, (filters,), dtype, fan_in=int(np.prod(window)) * c_in)
        return (filters,) + out_hw[2 - rank:], params, {}

    def apply(params, state, x, train, key):
        _check_input(x, params["W"].shape[-2], rank + 2, layout)
        return activations.activate(act, prim(x, params["W"], params.get("b"), **settings)), state

    def fuse(next_layer):
        # max(act(z)) = act(max(z)) for these activations, gradients and ties included
        pool = _tiling_max_pool(next_layer)
        if rank != 2 or pool is None or act not in (activations.identity, activations.relu):
            return None

        def fused(params, x):
            _check_input(x, params["W"].shape[-2], 4, layout)
            y = conv2d_max_pool2d(x, params["W"], params.get("b"), pool_size=pool, **settings)
            return activations.activate(act, y)
        return fused

    return Layer(kind, init, apply, fuse=fuse)


def _tiling_max_pool(layer):
    """The window of a MaxPool2D whose windows tile its input (stride = window, no
    padding), which ``conv2d_max_pool2d`` can compute with the convolution before it;
    else None."""
    config = layer.config or {}
    if config.get("type") != "MaxPool2D":
        return None
    args = config["args"]
    pool = as_pair(args["pool_size"], "pool_size")
    stride = pool if args["stride"] is None else as_pair(args["stride"], "stride")
    if stride != pool or args["padding"] == "same":     # "same" pads odd sizes
        return None
    pads = resolve_padding(args["padding"], pool, pool, stride, (1, 1))
    return pool if pads == ((0, 0), (0, 0)) else None


@layer_constructor
def Conv2D(filters, kernel_size, stride=1, padding="valid", dilation=1, activation="identity",
           w_init="glorot_uniform", b_init="zeros", use_bias=True):
    """2-D convolution, bias and activation: ``(C, H, W) -> (filters, H_out, W_out)``.

    Params ``{"W": (kh, kw, C, filters), "b": (filters,)}``. ``padding`` is "valid",
    "same", an int or a pair; ``stride``, ``dilation`` and ``kernel_size`` an int or a pair.
    """
    return _conv_layer("conv2d", 2, filters, kernel_size, activation, w_init, b_init, use_bias,
                       dict(stride=stride, padding=padding, dilation=dilation))


@layer_constructor
def Conv1D(filters, kernel_size, stride=1, padding="valid", dilation=1, activation="identity",
           w_init="glorot_uniform", b_init="zeros", use_bias=True):
    """1-D convolution over sequences ``(C, W) -> (filters, W_out)``; params
    ``{"W": (kw, C, filters), "b": (filters,)}``."""
    return _conv_layer("conv1d", 1, filters, kernel_size, activation, w_init, b_init, use_bias,
                       dict(stride=stride, padding=padding, dilation=dilation))


def _pool_layer(kind, prim, rank, pool_size, stride, padding):
    """A parameter-free pooling layer over ``rank`` spatial axes."""
    layout = "channels, height, width" if rank == 2 else "channels, width"
    settings = dict(pool_size=pool_size, stride=stride, padding=padding)
    constructor = {"maxpool2d": "MaxPool2D", "avgpool2d": "AvgPool2D", "maxpool1d": "MaxPool1D",
                   "avgpool1d": "AvgPool1D"}[kind]
    if rank == 2:
        settings_2d = settings
    else:
        settings_2d = _settings_checked(constructor, pool_settings_1d, **settings)
    # bad settings fail here, at construction
    _settings_checked(constructor, check_pool_settings, **settings_2d)

    def init(key, in_shape, dtype):
        _check_in_shape(in_shape, rank + 1, layout)
        out_hw = pool_geometry(_spatial(in_shape, rank), **settings_2d).out_hw
        return in_shape[:1] + out_hw[2 - rank:], {}, {}

    def apply(params, state, x, train, key):
        if np.ndim(x) != rank + 2:
            raise ShapeError(f"expected input of shape (batch, {layout}), got {np.shape(x)}")
        return prim(x, **settings), state

    return Layer(kind, init, apply)


@layer_constructor
def MaxPool2D(pool_size, stride=None, padding="valid"):
    """Max over ``pool_size`` windows (stride defaults to ``pool_size``); ties send the
    gradient to the first maximum of the window in row-major order."""
    return _pool_layer("maxpool2d", max_pool2d, 2, pool_size, stride, padding)


@layer_constructor
def AvgPool2D(pool_size, stride=None, padding="valid"):
    """Mean over ``pool_size`` windows (stride defaults to ``pool_size``; padding counts as 0)."""
    return _pool_layer("avgpool2d", avg_pool2d, 2, pool_size, stride, padding)


@layer_constructor
def MaxPool1D(pool_size, stride=None, padding="valid"):
    """1-D max pooling over ``(C, W)`` examples; ties go to the first maximum."""
    return _pool_layer("maxpool1d", max_pool1d, 1, pool_size, stride, padding)


@layer_constructor
def AvgPool1D(pool_size, stride=None, padding="valid"):
    """1-D average pooling over ``(C, W)`` examples."""
    return _pool_layer("avgpool1d", avg_pool1d, 1, pool_size, stride, padding)


@layer_constructor
def GlobalAvgPool2D():
    """Mean over all positions of each channel: ``(C, H, W) -> (C,)``."""
    def init(key, in_shape, dtype):
        _check_in_shape(in_shape, 3, "channels, height, width")
        return in_shape[:1], {}, {}

    def apply(params, state, x, train, key):
        if np.ndim(x) != 4:
            raise ShapeError(f"expected input of shape (batch, channels, height, width), got {np.shape(x)}")
        return global_avg_pool2d(x), state

    return Layer("globalavgpool2d", init, apply)
