"""Convolution primitives: 2-D (NCHW) and 1-D (NCW), forward and hand-derived backward.

Layouts (the contract):

    x       (N, C_in, H, W)           inputs, batch first, channels second
    w       (kh, kw, C_in, C_out)     kernels "HWIO", the ``initializers.fans`` layout
    b       (C_out,) or None          bias
    y       (N, C_out, H_out, W_out)

The operation is cross-correlation, as in every deep-learning library:

    y[n, o, p, q] = b[o] + Σ_{i, j, c} x_pad[n, c, p*s + i*d, q*s + j*d] * w[i, j, c, o]

for stride ``s``, dilation ``d`` and ``x_pad`` the zero-padded input. Padding is
``"valid"`` (none), ``"same"`` (output size ceil(input / stride); an odd total puts
the extra pixel after, as Keras does), an int, a pair (rows, cols), or explicit
``((top, bottom), (left, right))``.

How it is fast:

* Channels-last inside. The padded image is copied once into (N, H, W, C) order;
  every patch row (kw neighbours x C channels) is then one contiguous run, and a
  single strided copy builds ``cols (N*H_out*W_out, kh*kw*C_in)``, followed by one
  BLAS matmul with ``w`` viewed as ``(kh*kw*C_in, C_out)``.
* The output is an NCHW-shaped *view* of that channels-last result (PyTorch's
  "channels_last memory format"): shape and values are ordinary NCHW, while
  element-wise ops and pooling downstream keep the memory order, so the next
  layer's copy into channels-last order is a plain contiguous copy.
* The backward reuses ``cols`` for the kernel gradient. The input gradient is a
  stride-1 correlation of the padded output gradient with the flipped kernel when
  that applies (long contiguous copies, one matmul); otherwise, and when C_out is
  much larger than C_in, a col2im scatter-add (see ``_input_grad``).
* Big patch matrices come from a small pool (``SCRATCH``): a fresh 100 MB array
  costs more in page faults than the copy that fills it.
"""
import sys
import threading

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
    if isinstance(padding, (list, tuple)) and all(isinstance(p, (list, tuple)) for p in padding):
        return _explicit_pads(padding)
    ph, pw = as_pair(padding, "padding")
    if min(ph, pw) < 0:
        raise ConfigError(f"padding must not be negative, got {padding!r}")
    return (ph, ph), (pw, pw)


def _explicit_pads(padding):
    """``((top, bottom), (left, right))`` as given, checked."""
    pads = tuple(as_pair(p, "padding") for p in padding)
    if len(pads) != 2 or min(min(p) for p in pads) < 0:
        raise ConfigError(f"explicit padding must be ((top, bottom), (left, right)) >= 0, got {padding!r}")
    return pads


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


class ScratchPool:
    """Big scratch arrays, reused from call to call.

    A fresh array of tens of megabytes costs the kernel a page-zeroing pass that is
    slower than the copy which then fills it (NumPy's allocator returns such arrays
    to the system on release). ``empty`` hands out a pooled array again only when
    nothing but the pool refers to it -- no view, no closure, no caller -- so memory
    that anyone can still read is never overwritten. Least recently used arrays are
    dropped beyond ``max_bytes``; ``clear()`` drops them all.
    """

    def __init__(self, min_bytes=16 << 20, max_bytes=1 << 30):
        self.min_bytes, self.max_bytes = min_bytes, max_bytes
        self._arrays = []                     # least recently used first
        self._lock = threading.Lock()
        probe = [np.empty(1)]
        self._unshared = sys.getrefcount(probe[0])   # the count of an array only a list holds

    def empty(self, shape, dtype):
        """An uninitialised array, pooled if it is big."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if nbytes < self.min_bytes:
            return np.empty(shape, dtype)
        with self._lock:
            for i in range(len(self._arrays)):
                if (self._arrays[i].nbytes == nbytes and self._arrays[i].dtype == dtype
                        and sys.getrefcount(self._arrays[i]) == self._unshared):
                    self._arrays.append(self._arrays.pop(i))
                    return self._arrays[-1].reshape(shape)
            array = np.empty(shape, dtype)
            self._arrays.append(array)
            self._trim()
            return array

    def clear(self):
        """Forget every pooled array (memory still in use elsewhere stays valid)."""
        with self._lock:
            self._arrays = []

    def _trim(self):
        total, i = sum(a.nbytes for a in self._arrays), 0
        while total > self.max_bytes and i < len(self._arrays):
            if sys.getrefcount(self._arrays[i]) == self._unshared:
                total -= self._arrays.pop(i).nbytes
            else:
                i += 1


SCRATCH = ScratchPool()


def im2col(xp, geom, dtype):
    """Patches of padded channels-last ``xp``: (N*H_out*W_out, kh*kw*C), rows ordered (n, p, q),
    columns ordered (i, j, c) like a flattened HWIO kernel.

    One copy from a strided view: each (i, j, c) row of a patch is a contiguous run in
    both arrays, so the copy streams ``kw*C`` values at a time. With a single channel
    those runs would be short, so the matrix is stored offset-major instead (returned as
    the transposed view of a (kh*kw, N*H_out*W_out) array) and each copy streams image rows.
    """
    (kh, kw), (sh, sw), (dh, dw) = geom.kernel_hw, geom.stride, geom.dilation
    windows = sliding_window_view(xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(1, 2))
    patches = windows[:, ::sh, ::sw, :, ::dh, ::dw].transpose(0, 1, 2, 4, 5, 3)
    if xp.shape[3] == 1:
        cols = SCRATCH.empty(patches.shape[3:] + patches.shape[:3], dtype)
        np.copyto(cols, patches.transpose(3, 4, 5, 0, 1, 2))
        return cols.reshape(kh * kw, -1).T
    cols = SCRATCH.empty(patches.shape, dtype)
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


def _transposed_pads(geom):
    """Padding of the output gradient that turns the input gradient into a stride-1
    correlation with the flipped kernel, or None when that does not apply."""
    if geom.stride != (1, 1):
        return None
    extents = [(k - 1) * d for k, d in zip(geom.kernel_hw, geom.dilation)]
    pads = tuple((e - a, e - b) for e, (a, b) in zip(extents, geom.pads))
    return pads if min(min(p) for p in pads) >= 0 else None


def _input_grad(g, g2, w, geom, padded_shape):
    """dx (NCHW view) of a convolution, by the cheaper of two exact routes.

    Transposed: dx is the stride-1 correlation of the padded output gradient with the
    kernel flipped in space and with in/out channels swapped; it copies kh*kw*C_out
    values per input pixel in long runs. col2im: scatter-add g W2^T, kh*kw*C_in values
    per output pixel in runs of only C_in. The first wins unless C_out >> C_in.
    """
    pads = _transposed_pads(geom)
    c_in, c_out = w.shape[2:]
    if pads is None or c_out > 4 * c_in:
        w2 = w.reshape(-1, c_out)
        dcols = (w2 @ g2.T).T if c_in == 1 else g2 @ w2.T    # the layout im2col uses
        return crop_to_nchw(col2im(dcols, geom, padded_shape), geom.pads, geom.in_hw)
    back = Geometry(geom.out_hw, geom.kernel_hw, 1, pads, geom.dilation)
    flipped = w[::-1, ::-1].transpose(0, 1, 3, 2).reshape(-1, c_in)
    dx2 = im2col(pad_channels_last(g, back.pads), back, g2.dtype) @ flipped
    return dx2.reshape(padded_shape[0], *geom.in_hw, c_in).transpose(0, 3, 1, 2)


@primitive
def conv2d(x, w, b, *, stride=1, padding="valid", dilation=1):
    """2-D convolution: ``x (N, C_in, H, W)``, ``w (kh, kw, C_in, C_out)``, ``b (C_out,)`` or
    None -> ``(N, C_out, H_out, W_out)``. See the module docstring for the settings."""
    _check_conv2d_args(x, w, b)
    geom = Geometry(x.shape[2:], w.shape[:2], stride, padding, dilation)
    xp = pad_channels_last(x, geom.pads)
    cols = im2col(xp, geom, np.result_type(x.dtype, w.dtype))
    w2 = w.reshape(-1, w.shape[3])
    y = cols @ w2
    if b is not None:
        y += b
    y = y.reshape(x.shape[0], *geom.out_hw, -1).transpose(0, 3, 1, 2)

    def backward(g):
        # y = cols W2 + b  =>  dW2 = cols^T g,  db = Σ_rows g,  dx = im2col^T(g W2^T) (_input_grad)
        g2 = np.ascontiguousarray(channels_last(g)).reshape(-1, w2.shape[1])
        dw = (cols.T @ g2).reshape(w.shape)
        db = None if b is None else g2.sum(axis=0)
        return _input_grad(g, g2, w, geom, xp.shape), dw, db

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
