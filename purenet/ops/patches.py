"""The im2col machinery of the convolutions: channels-last images, their patches, and
cache-sized chunks of the patch matrix.

* Channels-last inside. The padded image is copied once into (N, H, W, C) order;
  every patch row (kw neighbours x C channels) is then one contiguous run, and one
  strided copy builds the im2col matrix ``cols (rows (n, p, q), columns (i, j, c))``
  that a single BLAS matmul with a kernel viewed as ``(kh*kw*C_in, C_out)`` turns
  into the output.
* In cache-sized chunks of samples (``CHUNK_BYTES``): each chunk's patch matrix is
  consumed by its matmul while it is still in cache, so no patch matrix of hundreds
  of megabytes is written to memory and read back.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def channels_last(x):
    """(N, C, H, W) -> an (N, H, W, C) view (a copy-free transpose)."""
    return x.transpose(0, 2, 3, 1)


def pad_hw(xt, pads, fill=0.0):
    """Pad the height and width of channels-last ``xt`` (N, H, W, C) by
    ``((top, bottom), (left, right))``; ``xt`` itself when there is nothing to pad."""
    (top, bottom), (left, right) = pads
    if top == bottom == left == right == 0:
        return xt
    n, h, w, c = xt.shape
    xp = np.empty((n, h + top + bottom, w + left + right, c), dtype=xt.dtype)
    for border in (xp[:, :top], xp[:, top + h:], xp[:, top:top + h, :left],
                   xp[:, top:top + h, left + w:]):
        border.fill(fill)
    xp[:, top:top + h, left:left + w] = xt
    return xp


def pad_channels_last(x, pads, fill=0.0):
    """NCHW ``x`` -> padded channels-last (N, Hp, Wp, C); a view when there is no padding."""
    return pad_hw(channels_last(x), pads, fill)


def crop_to_nchw(xp, pads, in_hw):
    """Padded channels-last (N, Hp, Wp, C) -> the unpadded NCHW view."""
    (top, _), (left, _) = pads
    return xp[:, top:top + in_hw[0], left:left + in_hw[1]].transpose(0, 3, 1, 2)


CHUNK_BYTES = 5 << 20   # patches + results of one chunk: a few MB, well inside the L3 cache


def chunk_size(rows_per_sample, patch_width, out_width, dtype):
    """Samples per chunk, so that a chunk's patch matrix (``rows_per_sample`` rows of
    ``patch_width``) and matmul result take about CHUNK_BYTES. ``bench/bench_conv_constants.py``
    sweeps it: best on 2-core AVX-512 machines at 4-8 MB; on a 2-core AMD EPYC 5 MB was
    best or within 3% of the best (2 MB), 10 MB and more 14-37% slower."""
    per_sample = rows_per_sample * (patch_width + out_width)
    return max(1, CHUNK_BYTES // (per_sample * np.dtype(dtype).itemsize))


def patches_view(xp, geom):
    """The patches of padded channels-last ``xp`` as a strided view, no copy:
    (N, H_out, W_out, kh, kw, C)."""
    (kh, kw), (sh, sw), (dh, dw) = geom.kernel_hw, geom.stride, geom.dilation
    windows = sliding_window_view(xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(1, 2))
    return windows[:, ::sh, ::sw, :, ::dh, ::dw].transpose(0, 1, 2, 4, 5, 3)


def pooled_order(patches, pool_hw):
    """Reorder the patch rows of ``patches_view`` (N, H_out, W_out, kh, kw, C) for a max
    pooling of tiling ``pool_hw`` windows, still without a copy:
    (N, ph, pw, H_out // ph, W_out // pw, kh, kw, C). Output rows and columns that no
    window covers are dropped. The rows of one window offset (a, b) then come one after
    the other, so the pooling compares long contiguous blocks (``ops.conv_pool``)."""
    (ph, pw), (n, ho, wo) = pool_hw, patches.shape[:3]
    hq, wq = ho // ph, wo // pw
    tiles = patches[:, :hq * ph, :wq * pw].reshape((n, hq, ph, wq, pw) + patches.shape[3:])
    return tiles.transpose(0, 2, 4, 1, 3, 5, 6, 7)


def _patch_copier(patches, batch, dtype):
    """A function ``samples -> cols`` copying those samples' patches into one reused buffer.

    ``patches`` is (N, *positions, kh, kw, C). Each (j, c) row of a patch is a contiguous
    run in both the channels-last image and the buffer, so the copy streams ``kw*C``
    values at a time. With a single channel those runs would be one value long, so the
    buffer is offset-major instead, each copy streams image rows, and the matrix handed
    out is a transposed view.
    """
    k = patches.shape[-3] * patches.shape[-2] * patches.shape[-1]
    if patches.shape[-1] == 1:
        rank = patches.ndim
        offset_major = patches.transpose((rank - 3, rank - 2, rank - 1) + tuple(range(rank - 3)))
        buffer = np.empty(offset_major.shape[:3] + (batch,) + offset_major.shape[4:], dtype)

        def copy(samples):
            cols = buffer[:, :, :, :samples.stop - samples.start]
            np.copyto(cols, offset_major[:, :, :, samples])
            return cols.reshape(k, -1).T
        return copy
    buffer = np.empty((batch,) + patches.shape[1:], dtype)

    def copy(samples):
        cols = buffer[:samples.stop - samples.start]
        np.copyto(cols, patches[samples])
        return cols.reshape(-1, k)
    return copy


def patch_chunks(patches, dtype, out_width):
    """Yield ``(samples, cols)`` over cache-sized groups of samples of a patch view
    ``patches`` (N, *positions, kh, kw, C) (``patches_view``, ``pooled_order``), ``cols``
    being their im2col matrix (rows (n, *positions), columns (i, j, c) like a flattened
    HWIO kernel), sized for a matmul giving ``out_width`` columns. ``cols`` is
    overwritten by the next step: use it at once.

    Working in chunks keeps each patch matrix in cache between its copy and its matmul,
    instead of writing and re-reading hundreds of megabytes.
    """
    n, rows = patches.shape[0], int(np.prod(patches.shape[1:-3]))
    width = patches.shape[-3] * patches.shape[-2] * patches.shape[-1]
    step = min(n, chunk_size(rows, width, out_width, dtype))
    copy = _patch_copier(patches, step, dtype)
    for start in range(0, n, step):
        samples = slice(start, min(start + step, n))
        yield samples, copy(samples)


def correlate(xp, w2, geom, dtype, b=None):
    """``patches(xp) @ w2 + b``: padded channels-last ``xp``, a flattened kernel
    ``w2 (kh*kw*C, C_out)`` and an optional bias -> channels-last ``(N, H_out, W_out, C_out)``."""
    y = np.empty((xp.shape[0],) + geom.out_hw + (w2.shape[1],), dtype)
    for samples, cols in patch_chunks(patches_view(xp, geom), dtype, w2.shape[1]):
        block = np.matmul(cols, w2, out=y[samples].reshape(-1, w2.shape[1]))
        if b is not None:
            block += b              # while the block is still in cache
    return y


def col2im(dcols, geom, dxp):
    """Adjoint of the patch copy: add each patch gradient ``dcols`` (rows (n, p, q), columns
    (i, j, c)) into the padded channels-last gradient image ``dxp``, in place."""
    (ho, wo), (kh, kw) = geom.out_hw, geom.kernel_hw
    dcols = dcols.reshape(len(dxp), ho, wo, kh, kw, dxp.shape[3])
    for i, j in geom.offsets():
        rows, columns = geom.window(i, j)
        dxp[:, rows, columns] += dcols[:, :, :, i, j]
