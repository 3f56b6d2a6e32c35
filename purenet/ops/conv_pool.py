"""A 2-D convolution followed by max pooling over tiling windows, as one primitive.

    z = conv2d(x, w, None)          (N, C_out, H_out, W_out)
    y = max_pool2d(z, pool) + b     (N, C_out, H_out // ph, W_out // pw)

gives the same values and gradients as ``conv2d`` then ``max_pool2d`` (stride equal to
the window, "valid" padding), faster: the im2col rows are copied in the order of
``patches.pooled_order``, so the matmul writes the conv output as ph*pw contiguous
blocks, one per window offset (a, b), and the pooling and its backward compare whole
blocks instead of runs of C_out values. Output rows or columns that no window covers
(an odd size) are never computed. ``layers.serial`` runs a Conv2D followed by such a
MaxPool2D with it.

One detail differs from the pair, though not in values: the bias is added after the
pooling (max(z + b) = max(z) + b, a quarter of the additions), so ties between window
positions are judged on z. As in ``max_pool2d``, the gradient of a window goes to its
first maximum in row-major order (the block order here).

Where the convolution takes the spectral route (``conv2d``'s ``method``), there are no
patch rows to order: the convolution runs by ``ops.spectral`` and ``max_pool2d`` after
it, whose comparisons already run over long blocks in the spatial-major memory that
route writes.
"""
import numpy as np

from ..errors import ShapeError
from .conv import check_conv2d_args, input_grad, kernel_grads
from .core import primitive
from .geometry import Geometry
from .linear import column_sums
from .patches import channels_last, pad_channels_last, patch_chunks, patches_view, pooled_order
from .pooling import check_pool_settings, first_maxima, max_pool2d, maximum_of
from .spectral import spectral_conv2d, takes_spectral_route


def _pooled_conv(patches, w2, dtype):
    """``z`` (N, ph*pw, H_q*W_q*C_out): the conv output, one contiguous block per window offset."""
    n, ph, pw, hq, wq = patches.shape[:5]
    z = np.empty((n, ph * pw, hq * wq * w2.shape[1]), dtype)
    for samples, cols in patch_chunks(patches, dtype, w2.shape[1]):
        np.matmul(cols, w2, out=z[samples].reshape(-1, w2.shape[1]))
    return z


def _first_max_grads(z, y, g):
    """``dz`` like ``z``: ``g`` at each window's first maximum (block order), 0 elsewhere."""
    dz = np.empty_like(z, dtype=g.dtype)
    blocks = [z[:, k] for k in range(z.shape[1])]
    for k, hit in enumerate(first_maxima(blocks, y)):
        np.multiply(g, hit, out=dz[:, k])
    return dz


def _spatial(dz, pool_hw, out_hw, c_out):
    """The pooled-order ``dz`` back in channels-last image order (N, H_out, W_out, C_out),
    zero at the positions no window covers."""
    (ph, pw), (ho, wo), n = pool_hw, out_hw, len(dz)
    hq, wq = ho // ph, wo // pw
    covered = hq * ph == ho and wq * pw == wo
    image = (np.empty if covered else np.zeros)((n, ho, wo, c_out), dz.dtype)
    tiles = image[:, :hq * ph, :wq * pw].reshape(n, hq, ph, wq, pw, c_out)
    tiles.transpose(0, 2, 4, 1, 3, 5)[...] = dz.reshape(n, ph, pw, hq, wq, c_out)
    return image


def _spectral_then_pool(x, w, b, geom, dtype, pool):
    """``(y, backward)`` of the pair when the convolution takes the spectral route: its
    spatial-major output already gives the pooling long runs (N*C_out values)."""
    z, conv_back = spectral_conv2d(x, w, None, geom, dtype)
    y, pool_back = max_pool2d.fn(z, pool_size=pool)
    if b is not None:
        y = y + b[:, None, None]          # not in place: the pooling's backward reads y

    def backward(g, needed):
        # y = max_pool(z) + b  =>  dz = the pooling's backward of g;  db = Σ g
        dx, dw, _ = conv_back(pool_back(g)[0], needed[:2] + (False,))
        db = column_sums(np.ascontiguousarray(channels_last(g)).reshape(-1, len(b))) \
            if needed[2] and b is not None else None
        return dx, dw, db

    return y, backward


@primitive
def conv2d_max_pool2d(x, w, b, *, stride=1, padding="valid", dilation=1, pool_size=2,
                      method="auto"):
    """``max_pool2d(conv2d(x, w, None, ...), pool_size) + b``: ``x (N, C_in, H, W)``,
    ``w (kh, kw, C_in, C_out)``, ``b (C_out,)`` or None -> ``(N, C_out, H_out // ph, W_out // pw)``
    with ``(H_out, W_out)`` the convolution's output size; the pooling's stride is its window.
    ``method`` as for ``conv2d``: "spectral" computes the convolution by ``ops.spectral``
    and pools it after."""
    check_conv2d_args(x, w, b)
    pool = check_pool_settings(pool_size)
    geom = Geometry(x.shape[2:], w.shape[:2], stride, padding, dilation)
    (ho, wo), (ph, pw) = geom.out_hw, pool
    if ho < ph or wo < pw:
        raise ShapeError(f"conv2d_max_pool2d: the convolution's {ho}x{wo} output is smaller "
                         f"than the {ph}x{pw} pooling window")
    dtype = np.result_type(x.dtype, w.dtype)
    if takes_spectral_route(method, geom, x, w, dtype):
        return _spectral_then_pool(x, w, b, geom, dtype, pool)
    xp = pad_channels_last(x, geom.pads)
    c_out = w.shape[3]
    w2 = w.reshape(-1, c_out)
    patches = pooled_order(patches_view(xp, geom), pool)
    z = _pooled_conv(patches, w2, dtype)
    y = maximum_of([z[:, k] for k in range(z.shape[1])])
    out_shape = (len(x), ho // ph, wo // pw, c_out)
    out = y.reshape(out_shape) + b if b is not None else y.reshape(out_shape)

    def backward(g, needed):
        # y = max over each window's block of z = cols W2, + b  =>  dz = g at the first
        # maximum; dW2 = cols^T dz, db = Σ g, dx = im2col^T(dz W2^T) (conv.input_grad)
        gt = np.ascontiguousarray(channels_last(g)).reshape(len(g), -1)
        dz = _first_max_grads(z, y.reshape(gt.shape), gt)
        dz_rows = dz.reshape(patches.shape[:5] + (c_out,))
        dw, _ = kernel_grads(patches, dz_rows, dtype, w2, needed[1], False)
        db = column_sums(gt.reshape(-1, c_out)) if needed[2] and b is not None else None
        dx = None
        if needed[0]:
            dx = input_grad(_spatial(dz, pool, geom.out_hw, c_out), w, geom, dtype)
            dx = dx.transpose(0, 3, 1, 2)
        return dx, None if dw is None else dw.reshape(w.shape), db

    return out.transpose(0, 3, 1, 2), backward
