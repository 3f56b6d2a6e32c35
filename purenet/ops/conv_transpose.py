"""Transposed convolution and upsampling: the decoder's half of a convolutional autoencoder.

A transposed convolution is the adjoint of a convolution: its forward is the input
gradient of the convolution that maps its OUTPUT back to its input, and its backward
is that convolution's forward (for the input) and kernel gradient (for the kernel).
So it reuses ``ops.conv``'s machinery and adds no new loops:

    x  (N, C_in, H, W)             inputs
    w  (kh, kw, C_out, C_in)       kernel: the HWIO kernel of the adjoint convolution
                                   C_out -> C_in (Keras's layout for Conv2DTranspose)
    y  (N, C_out, H_out, W_out)    H_out = (H - 1) s - (top + bottom) + (kh - 1) d + 1 + op

``padding`` is that of the adjoint convolution: "valid" (none), "same" (H_out = H s),
an int, a pair, or ``((top, bottom), (left, right))``; ``output_padding`` ``op`` (less
than the stride or the dilation) adds rows and columns at the bottom and right that
the stride would otherwise leave ambiguous, as in PyTorch.

``upsample2d`` repeats pixels (nearest) or interpolates (bilinear, PyTorch's
``align_corners=False`` rule) by integer factors.
"""
import numpy as np

from ..errors import ConfigError, ShapeError
from .conv import input_grad, kernel_grads
from .core import primitive
from .geometry import Geometry, as_pair, resolve_padding, settings_1d
from .patches import channels_last, correlate, pad_channels_last, patches_view


def transposed_geometry(in_hw, kernel_hw, stride=1, padding="valid", output_padding=0,
                        dilation=1):
    """The Geometry of the adjoint convolution, whose input is the transposed one's output."""
    stride, dilation = as_pair(stride, "stride"), as_pair(dilation, "dilation")
    extra = as_pair(output_padding, "output_padding")
    if min(extra) < 0 or any(e >= max(s, d) for e, s, d in zip(extra, stride, dilation)):
        raise ConfigError(f"output_padding must be >= 0 and smaller than the stride or the "
                          f"dilation, got {output_padding!r}")
    if padding == "same":
        out_hw = tuple(n * s for n, s in zip(in_hw, stride))
    else:
        pads = resolve_padding(padding, in_hw, kernel_hw, stride, dilation)
        out_hw = tuple((n - 1) * s - a - b + (k - 1) * d + 1 + e for n, s, (a, b), k, d, e
                       in zip(in_hw, stride, pads, kernel_hw, dilation, extra))
        padding = pads
    if min(out_hw) < 1:
        raise ShapeError(f"transposed convolution of a {in_hw[0]}x{in_hw[1]} input with padding "
                         f"{padding!r} leaves no output")
    geom = Geometry(out_hw, kernel_hw, stride, padding, dilation)
    if geom.out_hw != tuple(in_hw):
        raise ShapeError(f"padding {padding!r} and output_padding {output_padding!r} do not give "
                         f"a transposed convolution of a {in_hw[0]}x{in_hw[1]} input")
    return geom


def _check_args(x, w, b):
    if np.ndim(x) != 4 or np.ndim(w) != 4:
        raise ShapeError("conv_transpose2d: input must be (batch, channels, height, width) and kernel "
                         f"(kh, kw, out_channels, in_channels), got {np.shape(x)} and {np.shape(w)}")
    if x.shape[1] != w.shape[3]:
        raise ShapeError(f"conv_transpose2d: input has {x.shape[1]} channels but the kernel "
                         f"(shape {w.shape}) expects {w.shape[3]}")
    if b is not None and np.shape(b) != (w.shape[2],):
        raise ShapeError(f"conv_transpose2d: bias must have shape ({w.shape[2]},), got {np.shape(b)}")


@primitive
def conv_transpose2d(x, w, b, *, stride=1, padding="valid", output_padding=0, dilation=1):
    """Transposed 2-D convolution: ``x (N, C_in, H, W)``, ``w (kh, kw, C_out, C_in)``,
    ``b (C_out,)`` or None -> ``(N, C_out, H_out, W_out)`` (see the module docstring)."""
    _check_args(x, w, b)
    geom = transposed_geometry(x.shape[2:], w.shape[:2], stride, padding, output_padding, dilation)
    dtype = np.result_type(x.dtype, w.dtype)
    xt = channels_last(x)
    y = np.array(input_grad(xt, w, geom, dtype))        # the adjoint conv's input gradient
    if b is not None:
        y += b

    def backward(g, needed):
        # y = C^T x for the adjoint conv C  =>  dx = C g (its forward),
        # dW = its kernel gradient with g as the conv's input and x as its output gradient
        gp = pad_channels_last(g, geom.pads)
        w2 = w.reshape(-1, w.shape[3])
        dx = correlate(gp, w2, geom, dtype).transpose(0, 3, 1, 2) if needed[0] else None
        dw = kernel_grads(patches_view(gp, geom), xt, dtype, w2, needed[1], False)[0]
        db = g.sum(axis=(0, 2, 3)) if b is not None and needed[2] else None
        return dx, None if dw is None else dw.reshape(w.shape), db

    return y.transpose(0, 3, 1, 2), backward


@primitive
def conv_transpose1d(x, w, b, *, stride=1, padding="valid", output_padding=0, dilation=1):
    """Transposed 1-D convolution: ``x (N, C_in, W)``, ``w (kw, C_out, C_in)`` -> ``(N, C_out,
    W_out)``; the 2-D one on a height-1 image."""
    if np.ndim(x) != 3 or np.ndim(w) != 3:
        raise ShapeError("conv_transpose1d: input must be (batch, channels, width) and kernel "
                         f"(kw, out, in), got shapes {np.shape(x)} and {np.shape(w)}")
    settings = settings_1d(stride, padding, dilation)
    y, back = conv_transpose2d.fn(x[:, :, None, :], w[None], b,
                                  output_padding=(0, _single_extra(output_padding)), **settings)

    def backward(g, needed):
        # a height-1 transposed conv: reuse its backward and drop the unit axis again
        dx, dw, db = back(g[:, :, None, :], needed)
        return (None if dx is None else dx[:, :, 0, :]), (None if dw is None else dw[0]), db

    return y[:, :, 0, :], backward


def _single_extra(value):
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise ConfigError(f"output_padding of a 1-D operation must be an int, got {value!r}")
    return int(value)


# --- upsampling -----------------------------------------------------------------

def _bilinear_matrix(n, scale, dtype):
    """(n*scale, n) interpolation weights, PyTorch's align_corners=False rule."""
    out = np.arange(n * scale)
    src = np.clip((out + 0.5) / scale - 0.5, 0, n - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    frac = src - lo
    m = np.zeros((n * scale, n), dtype)
    np.add.at(m, (out, lo), 1 - frac)
    np.add.at(m, (out, hi), frac)
    return m


@primitive
def upsample2d(x, *, size=2, method="nearest"):
    """Enlarge ``x (N, C, H, W)`` by integer factors ``size`` (int or pair) -> ``(N, C, H sh,
    W sw)``: ``"nearest"`` repeats each pixel, ``"bilinear"`` interpolates."""
    sh, sw = as_pair(size, "size")
    if min(sh, sw) < 1:
        raise ConfigError(f"upsample2d: size must be positive, got {size!r}")
    if np.ndim(x) != 4:
        raise ShapeError(f"upsample2d: input must be (batch, channels, height, width), got {np.shape(x)}")
    n, c, h, w = x.shape
    if method == "nearest":
        y = np.broadcast_to(x[:, :, :, None, :, None], (n, c, h, sh, w, sw)).reshape(n, c, h * sh, w * sw)

        def backward(g):
            # each input pixel was copied to an sh x sw block: its gradient sums the block
            return (g.reshape(n, c, h, sh, w, sw).sum(axis=(3, 5)),)

        return y, backward
    if method != "bilinear":
        raise ConfigError(f"upsample2d: method must be 'nearest' or 'bilinear', got {method!r}")
    a_h, a_w = _bilinear_matrix(h, sh, x.dtype), _bilinear_matrix(w, sw, x.dtype)
    y = a_h @ x @ a_w.T                                   # separable: rows, then columns

    def backward(g):
        # y = A_h x A_w^T  =>  dx = A_h^T g A_w
        return (a_h.T @ g @ a_w,)

    return y, backward
