"""Convolution primitives: 2-D (NCHW) and 1-D (NCW), forward and hand-derived backward.

Layouts (the contract):

    x       (N, C_in, H, W)           inputs, batch first, channels second
    w       (kh, kw, C_in, C_out)     kernels "HWIO", the ``initializers.fans`` layout
    b       (C_out,) or None          bias
    y       (N, C_out, H_out, W_out)

The operation is cross-correlation, as in every deep-learning library:

    y[n, o, p, q] = b[o] + Σ_{i, j, c} x_pad[n, c, p*s + i*d, q*s + j*d] * w[i, j, c, o]

for stride ``s``, dilation ``d`` and ``x_pad`` the zero-padded input. Padding is
``"valid"`` (none), ``"same"`` (output size ceil(input / stride), the extra pixel of an
odd total going after, as in Keras) or explicit: an int or a pair (rows, cols).

How it is fast. Internally the image is channels-last (N, H, W, C): the patches of
all samples are copied, one strided slice per kernel offset, into one matrix
``cols (N*H_out*W_out, kh*kw*C_in)`` whose rows are contiguous runs of channels,
then a single BLAS matmul with ``w`` viewed as ``(kh*kw*C_in, C_out)`` gives the
output. The output is returned as an NCHW-shaped *view* of that channels-last
buffer (PyTorch calls this the channels_last memory format): its shape and values
are ordinary NCHW, and element-wise ops and pooling downstream keep the fast
memory order, so the next convolution's patch copy is contiguous too. The
backward reuses the forward's ``cols`` for the kernel gradient and scatters the
patch gradient back with one strided add per kernel offset (col2im), which moves
``C_in/C_out`` times less memory than convolving the output gradient with the
flipped kernel would.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ConfigError, ShapeError
from .core import primitive


def as_pair(value, what):
    """``value`` as a pair of ints (an int means the same for both axes)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    if (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)):
        return int(value[0]), int(value[1])
    raise ConfigError(f"{what} must be an int or a pair of ints, got {value!r}")


def _positive_pair(value, what):
    pair = as_pair(value, what)
    if min(pair) < 1:
        raise ConfigError(f"{what} must be positive, got {value!r}")
    return pair


def _same_pads(size, k_eff, stride):
    """(before, after) giving an output of ceil(size / stride)."""
    total = max((-(-size // stride) - 1) * stride + k_eff - size, 0)
    return total // 2, total - total // 2


def resolve_padding(padding, in_hw, kernel_hw, stride, dilation):
    """Padding as ``((top, bottom), (left, right))`` for one of the accepted spellings."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            return tuple(_same_pads(n, (k - 1) * d + 1, s)
                         for n, k, s, d in zip(in_hw, kernel_hw, stride, dilation))
        raise ConfigError(f"padding must be 'same', 'valid', an int or a pair, got {padding!r}")
    ph, pw = as_pair(padding, "padding")
    if min(ph, pw) < 0:
        raise ConfigError(f"padding must not be negative, got {padding!r}")
    return (ph, ph), (pw, pw)


def check_settings(kernel_hw, stride=1, padding="valid", dilation=1):
    """Raise ConfigError for bad settings before any input is seen."""
    stride, dilation = _positive_pair(stride, "stride"), _positive_pair(dilation, "dilation")
    resolve_padding(padding, kernel_hw, kernel_hw, stride, dilation)


class Geometry:
    """Everything about one convolution's sizes, computed and checked once."""

    def __init__(self, in_hw, kernel_hw, stride=1, padding="valid", dilation=1):
        self.in_hw = tuple(int(n) for n in in_hw)
        self.kernel_hw = tuple(int(k) for k in kernel_hw)
        self.stride = _positive_pair(stride, "stride")
        self.dilation = _positive_pair(dilation, "dilation")
        self.pads = resolve_padding(padding, self.in_hw, self.kernel_hw, self.stride, self.dilation)
        self.padded_hw = tuple(n + a + b for n, (a, b) in zip(self.in_hw, self.pads))
        self.out_hw = tuple((n - (k - 1) * d - 1) // s + 1 for n, k, s, d in
                            zip(self.padded_hw, self.kernel_hw, self.stride, self.dilation))
        if min(self.out_hw) < 1:
            raise ShapeError(
                f"input of size {self.in_hw[0]}x{self.in_hw[1]} is too small for a "
                f"{self.kernel_hw[0]}x{self.kernel_hw[1]} window with dilation {self.dilation} "
                f"and padding {self.pads}")

    def window(self, i, j):
        """Index (rows, cols) of the input positions that kernel offset (i, j) reads."""
        (sh, sw), (dh, dw), (ho, wo) = self.stride, self.dilation, self.out_hw
        return (slice(i * dh, i * dh + (ho - 1) * sh + 1, sh),
                slice(j * dw, j * dw + (wo - 1) * sw + 1, sw))

    def offsets(self):
        """Kernel offsets (i, j) in row-major order."""
        kh, kw = self.kernel_hw
        return [(i, j) for i in range(kh) for j in range(kw)]


def channels_last(x):
    """(N, C, H, W) -> an (N, H, W, C) view (a copy-free transpose)."""
    return x.transpose(0, 2, 3, 1)


def pad_channels_last(x, pads, fill=0.0):
    """NCHW ``x`` -> padded channels-last (N, Hp, Wp, C); a view when there is no padding."""
    xt = channels_last(x)
    (top, bottom), (left, right) = pads
    if top == bottom == left == right == 0:
        return xt
    n, h, w, c = xt.shape
    xp = np.empty((n, h + top + bottom, w + left + right, c), dtype=x.dtype)
    for border in (xp[:, :top], xp[:, top + h:], xp[:, top:top + h, :left],
                   xp[:, top:top + h, left + w:]):
        border.fill(fill)
    xp[:, top:top + h, left:left + w] = xt
    return xp


def crop_to_nchw(xp, pads, in_hw):
    """Padded channels-last (N, Hp, Wp, C) -> the unpadded NCHW view."""
    (top, _), (left, _) = pads
    return xp[:, top:top + in_hw[0], left:left + in_hw[1]].transpose(0, 3, 1, 2)


def im2col(xp, geom, dtype):
    """Patches of padded channels-last ``xp``: (N*H_out*W_out, kh*kw*C), rows ordered (n, p, q),
    columns ordered (i, j, c) like a flattened HWIO kernel.

    One copy from a strided view: each (i, j, c) row of a patch is a contiguous run in
    both arrays, so the copy streams ``kw*C`` values at a time.
    """
    (kh, kw), (sh, sw), (dh, dw) = geom.kernel_hw, geom.stride, geom.dilation
    windows = sliding_window_view(xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(1, 2))
    patches = windows[:, ::sh, ::sw, :, ::dh, ::dw].transpose(0, 1, 2, 4, 5, 3)
    cols = np.empty(patches.shape, dtype=dtype)
    np.copyto(cols, patches)
    return cols.reshape(-1, kh * kw * xp.shape[3])


def col2im(dcols, geom, padded_shape):
    """Adjoint of ``im2col``: sum each patch gradient back into a padded channels-last image."""
    n, _, _, c = padded_shape
    (ho, wo), (kh, kw) = geom.out_hw, geom.kernel_hw
    dcols = dcols.reshape(n, ho, wo, kh, kw, c)
    dxp = np.zeros(padded_shape, dtype=dcols.dtype)
    for i, j in geom.offsets():
        rows, columns = geom.window(i, j)
        dxp[:, rows, columns] += dcols[:, :, :, i, j]
    return dxp


def _check_conv2d_args(x, w, b):
    if np.ndim(x) != 4:
        raise ShapeError(f"conv2d: input must be (batch, channels, height, width), got shape {np.shape(x)}")
    if np.ndim(w) != 4:
        raise ShapeError(f"conv2d: kernel must be (kh, kw, in_channels, out_channels), got shape {np.shape(w)}")
    if x.shape[1] != w.shape[2]:
        raise ShapeError(f"conv2d: input has {x.shape[1]} channels (shape {x.shape}) but the kernel "
                         f"expects {w.shape[2]} (kernel shape {w.shape})")
    if b is not None and np.shape(b) != (w.shape[3],):
        raise ShapeError(f"conv2d: bias must have shape ({w.shape[3]},), got {np.shape(b)}")


@primitive
def conv2d(x, w, b, *, stride=1, padding="valid", dilation=1):
    """2-D convolution: ``x (N, C_in, H, W)``, ``w (kh, kw, C_in, C_out)``, ``b (C_out,)`` or
    None -> ``(N, C_out, H_out, W_out)``. See the module docstring for the settings."""
    _check_conv2d_args(x, w, b)
    geom = Geometry(x.shape[2:], w.shape[:2], stride, padding, dilation)
    dtype = np.result_type(x.dtype, w.dtype)
    xp = pad_channels_last(x, geom.pads)
    cols = im2col(xp, geom, dtype)
    w2 = w.reshape(-1, w.shape[3])
    y = cols @ w2
    if b is not None:
        y += b
    n, (ho, wo) = x.shape[0], geom.out_hw
    y = y.reshape(n, ho, wo, -1).transpose(0, 3, 1, 2)

    def backward(g):
        # y = cols W2 + b  =>  dW2 = cols^T g,  db = Σ_rows g,  dcols = g W2^T,  dx = col2im(dcols)
        g2 = np.ascontiguousarray(channels_last(g)).reshape(-1, w2.shape[1])
        dw = (cols.T @ g2).reshape(w.shape)
        db = None if b is None else g2.sum(axis=0)
        dxp = col2im(g2 @ w2.T, geom, xp.shape)
        return crop_to_nchw(dxp, geom.pads, geom.in_hw), dw, db

    return y, backward


def single(value, what, minimum=1):
    """A 1-D setting: an int (or a one-element list of one) of at least ``minimum``."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{what} of a 1-D operation must be an int >= {minimum}, got {value!r}")
    return int(value)


def settings_1d(stride=1, padding="valid", dilation=1):
    """1-D convolution settings as those of the equivalent height-1 2-D convolution."""
    return dict(stride=(1, single(stride, "stride")), dilation=(1, single(dilation, "dilation")),
                padding=padding if isinstance(padding, str) else (0, single(padding, "padding", 0)))


@primitive
def conv1d(x, w, b, *, stride=1, padding="valid", dilation=1):
    """1-D convolution: ``x (N, C_in, W)``, ``w (kw, C_in, C_out)``, ``b (C_out,)`` or None
    -> ``(N, C_out, W_out)``; the 2-D convolution of a height-1 image."""
    if np.ndim(x) != 3 or np.ndim(w) != 3:
        raise ShapeError(f"conv1d: input must be (batch, channels, width) and kernel (kw, in, out), "
                         f"got shapes {np.shape(x)} and {np.shape(w)}")
    y, back = conv2d.fn(x[:, :, None, :], w[None], b, **settings_1d(stride, padding, dilation))

    def backward(g):
        # a height-1 conv2d: reuse its backward and drop the unit axis again
        dx, dw, db = back(g[:, :, None, :])
        return dx[:, :, 0, :], dw[0], db

    return y[:, :, 0, :], backward
