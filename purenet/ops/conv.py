"""Convolution primitives: 2-D (NCHW) and 1-D (NCW), forward and hand-derived backward.

Layouts (the contract):

    x       (N, C_in, H, W)           inputs, batch first, channels second
    w       (kh, kw, C_in, C_out)     kernels "HWIO", the ``initializers.fans`` layout
    b       (C_out,) or None          bias
    y       (N, C_out, H_out, W_out)

The operation is cross-correlation, as in every deep-learning library:

    y[n, o, p, q] = b[o] + Σ_{i, j, c} x_pad[n, c, p*s + i*d, q*s + j*d] * w[i, j, c, o]

for stride ``s``, dilation ``d`` and ``x_pad`` the zero-padded input (settings:
``ops.geometry``). In matrix form ``y = cols W2 + b`` with ``cols`` the im2col patch
matrix (``ops.patches``), so

    dW2 = cols^T g,     db = Σ_rows g,     dx = im2col^T(g W2^T)

Gradients: the backward computes only those of the arguments that want one (see
``ops.core``): a network's first convolution, whose input is data, never pays for
the input gradient, its most expensive part. ``b=None`` has no gradient (None).

The output is an NCHW-shaped *view* of the channels-last result (PyTorch's
"channels_last memory format"): shape and values are ordinary NCHW, while
element-wise ops and pooling downstream keep the memory order, so the next layer's
copy into channels-last order is a plain contiguous copy. The input gradient takes
the cheaper of two exact routes (``input_grad``).

That is the direct route. ``conv2d`` has a second one, the convolution theorem
(``ops.spectral``: products frequency by frequency, fewer operations for wide layers
and larger kernels); ``method="auto"`` takes the one a cost model expects to be faster
(``spectral.use_spectral``).
"""
import numpy as np

from ..errors import ShapeError
from .core import primitive
from .geometry import Geometry, settings_1d
from .linear import column_sums
from .patches import (chunk_size, channels_last, col2im, correlate, pad_channels_last, pad_hw,
                      patch_chunks, patches_view)
from .spectral import spectral_conv2d, takes_spectral_route


def check_conv2d_args(x, w, b):
    if np.ndim(x) != 4:
        raise ShapeError(f"conv2d: input must be (batch, channels, height, width), got shape {np.shape(x)}")
    if np.ndim(w) != 4:
        raise ShapeError("conv2d: kernel must be (kh, kw, in_channels, out_channels), "
                         f"got shape {np.shape(w)}")
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


# The transposed route is taken up to this C_out / C_in. bench/bench_conv_constants.py, AMD
# EPYC, 2 threads, two runs: transposed faster up to 8 in both (1.4-5x at ratios <= 2),
# col2im faster at 32 in both; at 16 one run each way.
TRANSPOSED_MAX_RATIO = 8


def input_grad(gt, w, geom, dtype):
    """dx, channels-last (N, H, W, C_in), of a convolution with output gradient ``gt``
    (channels-last), by the cheaper of two exact routes.

    Transposed: dx is the stride-1 correlation of the padded output gradient with the
    kernel flipped in space and with in/out channels swapped; it copies kh*kw*C_out
    values per input pixel, in long runs. col2im: add the patch gradients g W2^T back,
    kh*kw*C_in values per output pixel, in runs of only C_in. The first wins unless
    C_out >> C_in (``TRANSPOSED_MAX_RATIO``); two routes, as either one alone costs up to 2-5x
    where the other wins.
    """
    pads = _transposed_pads(geom)
    c_in, c_out = w.shape[2:]
    if pads is not None and c_out <= TRANSPOSED_MAX_RATIO * c_in:
        back = Geometry(geom.out_hw, geom.kernel_hw, 1, pads, geom.dilation)
        flipped = w[::-1, ::-1].transpose(0, 1, 3, 2).reshape(-1, c_in)
        return correlate(pad_hw(gt, back.pads), flipped, back, dtype)
    n, (h, w_), (hp, wp) = len(gt), geom.in_hw, geom.padded_hw
    dxp = np.zeros((n, hp, wp, c_in), dtype)
    w2 = w.reshape(-1, c_out)
    step = chunk_size(geom.out_hw[0] * geom.out_hw[1], w2.shape[0], c_out, dtype)
    for start in range(0, n, step):
        g2 = np.ascontiguousarray(gt[start:start + step]).reshape(-1, c_out)
        dcols = (w2 @ g2.T).T if c_in == 1 else g2 @ w2.T     # the layout _patch_buffer uses
        col2im(dcols, geom, dxp[start:start + step])
    (top, _), (left, _) = geom.pads
    return dxp[:, top:top + h, left:left + w_]


def kernel_grads(patches, gt, dtype, w2, want_dw, want_db):
    """``(dW2 (kh*kw*C_in, C_out), db (C_out,))`` from the output gradient ``gt``
    (N, *positions, C_out), its positions those of the patch view ``patches``
    (``patches.patches_view``); either result is None when not wanted. dW2 rebuilds the
    patch chunks instead of keeping them."""
    c_out = w2.shape[1]
    if not want_dw:
        return None, (column_sums(np.ascontiguousarray(gt).reshape(-1, c_out)) if want_db else None)
    dw, db = np.zeros(w2.shape, dtype), np.zeros(c_out, dtype)
    for samples, cols in patch_chunks(patches, dtype, c_out):
        g2 = np.ascontiguousarray(gt[samples]).reshape(-1, c_out)
        dw += cols.T @ g2
        if want_db:
            db += column_sums(g2)       # while the chunk is still in cache
    return dw, (db if want_db else None)


@primitive
def conv2d(x, w, b, *, stride=1, padding="valid", dilation=1, method="auto"):
    """2-D convolution: ``x (N, C_in, H, W)``, ``w (kh, kw, C_in, C_out)``, ``b (C_out,)`` or
    None -> ``(N, C_out, H_out, W_out)``. See the module docstring for the settings.

    ``method``: "direct" (im2col and one matmul), "spectral" (the convolution theorem,
    ``ops.spectral``) or "auto", the one that costs less for these shapes
    (``spectral.use_spectral``). Both give the same values to rounding.

    The backward computes only the gradients asked for: the input gradient of a first
    layer (its input is data) is never computed."""
    check_conv2d_args(x, w, b)
    geom = Geometry(x.shape[2:], w.shape[:2], stride, padding, dilation)
    dtype = np.result_type(x.dtype, w.dtype)
    if takes_spectral_route(method, geom, x, w, dtype):
        return spectral_conv2d(x, w, b, geom, dtype)
    xp = pad_channels_last(x, geom.pads)
    w2 = w.reshape(-1, w.shape[3])
    y = correlate(xp, w2, geom, dtype, b)

    def backward(g, needed):
        # y = cols W2 + b  =>  dW2 = cols^T g,  db = Σ_rows g,  dx = im2col^T(g W2^T) (input_grad)
        gt = channels_last(g)
        dw, db = kernel_grads(patches_view(xp, geom), gt, dtype, w2, needed[1],
                              needed[2] and b is not None)
        dx = input_grad(gt, w, geom, dtype).transpose(0, 3, 1, 2) if needed[0] else None
        return dx, None if dw is None else dw.reshape(w.shape), db

    return y.transpose(0, 3, 1, 2), backward


@primitive
def conv1d(x, w, b, *, stride=1, padding="valid", dilation=1):
    """1-D convolution: ``x (N, C_in, W)``, ``w (kw, C_in, C_out)``, ``b (C_out,)`` or None
    -> ``(N, C_out, W_out)``; the 2-D convolution of a height-1 image (and its backward,
    which likewise skips the gradients nobody needs)."""
    if np.ndim(x) != 3 or np.ndim(w) != 3:
        raise ShapeError(f"conv1d: input must be (batch, channels, width) and kernel (kw, in, out), "
                         f"got shapes {np.shape(x)} and {np.shape(w)}")
    y, back = conv2d.fn(x[:, :, None, :], w[None], b, **settings_1d(stride, padding, dilation))

    def backward(g, needed):
        # a height-1 conv2d: reuse its backward and drop the unit axis again
        dx, dw, db = back(g[:, :, None, :], needed)
        return (None if dx is None else dx[:, :, 0, :]), (None if dw is None else dw[0]), db

    return y[:, :, 0, :], backward
