"""Pooling primitives: max and average pooling (2-D on NCHW, 1-D on NCW) and global
average pooling, each forward with its hand-derived backward.

Settings: ``pool_size`` (int or pair), ``stride`` (defaults to ``pool_size``: windows
that tile the image), ``padding`` ("valid", "same", an int or a pair, as for
convolutions; it must be smaller than the window).

Rules worth knowing:

* Max pooling, ties: the gradient goes to the FIRST maximum of each window, in
  row-major order of the window (top row first, left to right). Padding is -inf,
  so it is never the maximum. (A NaN in a window makes its output NaN and sends
  that window no gradient.)
* Average pooling divides by the full window size, padding included (PyTorch's
  default ``count_include_pad=True``): padded positions count as zeros.

The work is one vectorised pass per window offset (kh*kw passes), on the
channels-last view of the input like the convolutions (see ``ops.conv``), so the
outputs keep the channels-last memory of a convolution's output. The forward
only takes maxima; the backward finds each window's first maximum by comparing
with the output. Windows that tile the image (stride >= window) write each input
gradient once instead of accumulating it. A convolution followed by a max pooling of
tiling windows has a faster primitive of its own (``ops.conv_pool``).
"""
import numpy as np

from ..errors import ConfigError, ShapeError
from .core import primitive
from .geometry import Geometry, as_pair, resolve_padding, single
from .patches import channels_last, crop_to_nchw, pad_channels_last


def check_pool_settings(pool_size, stride=None, padding="valid"):
    """The window as a pair; ConfigError for bad settings before any input is seen."""
    pool = as_pair(pool_size, "pool_size")
    if min(pool) < 1:
        raise ConfigError(f"pool_size must be positive, got {pool_size!r}")
    steps = pool if stride is None else as_pair(stride, "stride")
    if min(steps) < 1:
        raise ConfigError(f"stride must be positive, got {stride!r}")
    pads = resolve_padding(padding, pool, pool, steps, (1, 1))
    if any(max(p) >= k for p, k in zip(pads, pool)):
        raise ConfigError(f"padding {padding!r} must be smaller than the pool window {pool}")
    return pool


def pool_geometry(in_hw, pool_size, stride=None, padding="valid"):
    """The checked window geometry of a pooling (no dilation)."""
    pool = check_pool_settings(pool_size, stride, padding)
    geom = Geometry(in_hw, pool, pool if stride is None else stride, padding)
    if any(max(pads) >= k for pads, k in zip(geom.pads, pool)):
        raise ConfigError(f"padding {padding!r} must be smaller than the pool window {pool}")
    return geom


def _check_rank(x, rank, name):
    if np.ndim(x) != rank:
        layout = "(batch, channels, height, width)" if rank == 4 else "(batch, channels, width)"
        raise ShapeError(f"{name}: input must be {layout}, got shape {np.shape(x)}")


def _tiles(geom):
    """True when windows never overlap, so each input gradient is written at most once."""
    return all(s >= k for s, k in zip(geom.stride, geom.kernel_hw))


def _window(xp, geom, i, j):
    """The (N, H_out, W_out, C) view of padded channels-last ``xp`` at window offset (i, j)."""
    return xp[(slice(None),) + geom.window(i, j)]


def _gradient_image(geom, xp, dtype):
    """A buffer for the padded gradient, in the memory order of the padded input ``xp``;
    zeroed unless tiling windows will write every pixel."""
    covered = geom.stride == geom.kernel_hw and all(
        o * k == n for o, k, n in zip(geom.out_hw, geom.kernel_hw, geom.padded_hw))
    return (np.empty_like if covered else np.zeros_like)(xp, dtype=dtype)


def _put_product(window, a, b, tiles):
    """Write (tiling windows) or add (overlapping ones) ``a * b`` into a gradient window."""
    if tiles:
        np.multiply(a, b, out=window)
    else:
        window += a * b


def maximum_of(candidates):
    """The elementwise maximum of equal-shape arrays ``candidates`` (a list), in a new array
    laid out in memory like the first."""
    y = candidates[0].copy(order="K")
    for c in candidates[1:]:
        np.maximum(y, c, out=y)
    return y


def first_maxima(candidates, y):
    """For each of ``candidates`` in order, a bool mask of where it holds the maximum ``y``
    and no earlier candidate did (the first maximum gets a tie). The mask is one buffer,
    rewritten for the next candidate: use it at once."""
    hit, taken = np.empty_like(y, dtype=bool), np.zeros_like(y, dtype=bool)
    for c in candidates:
        np.equal(c, y, out=hit)
        np.greater(hit, taken, out=hit)         # hit and not taken by an earlier maximum
        taken |= hit
        yield hit


@primitive
def max_pool2d(x, *, pool_size, stride=None, padding="valid"):
    """Max over each window: ``(N, C, H, W) -> (N, C, H_out, W_out)``; ties go to the first maximum."""
    _check_rank(x, 4, "max_pool2d")
    geom = pool_geometry(x.shape[2:], pool_size, stride, padding)
    xp = pad_channels_last(x, geom.pads, fill=-np.inf)
    offsets = geom.offsets()
    y = maximum_of([_window(xp, geom, i, j) for i, j in offsets])

    def backward(g):
        # y = x at the window's first maximum  =>  dx = g there, 0 elsewhere in the window
        gt, tiles = channels_last(g), _tiles(geom)
        dxp = _gradient_image(geom, xp, g.dtype)
        windows = [_window(xp, geom, i, j) for i, j in offsets]
        for (i, j), hit in zip(offsets, first_maxima(windows, y)):
            _put_product(_window(dxp, geom, i, j), gt, hit, tiles)
        return (crop_to_nchw(dxp, geom.pads, geom.in_hw),)

    return y.transpose(0, 3, 1, 2), backward


@primitive
def avg_pool2d(x, *, pool_size, stride=None, padding="valid"):
    """Mean over each window (padding counts as zeros): ``(N, C, H, W) -> (N, C, H_out, W_out)``."""
    _check_rank(x, 4, "avg_pool2d")
    geom = pool_geometry(x.shape[2:], pool_size, stride, padding)
    xp = pad_channels_last(x, geom.pads)
    offsets = geom.offsets()
    y = _window(xp, geom, *offsets[0]).copy()
    for i, j in offsets[1:]:
        y += _window(xp, geom, i, j)
    scale = 1.0 / len(offsets)
    y *= scale

    def backward(g):
        # y = Σ_window x / (kh kw)  =>  every x in a window gets g / (kh kw)
        gt, tiles = channels_last(g), _tiles(geom)
        dxp = _gradient_image(geom, xp, g.dtype)
        for i, j in offsets:
            _put_product(_window(dxp, geom, i, j), gt, scale, tiles)
        return (crop_to_nchw(dxp, geom.pads, geom.in_hw),)

    return y.transpose(0, 3, 1, 2), backward


@primitive
def global_avg_pool2d(x):
    """Mean over all positions of each channel: ``(N, C, H, W) -> (N, C)``."""
    _check_rank(x, 4, "global_avg_pool2d")
    n, c, h, w = x.shape
    scale = 1.0 / (h * w)

    def backward(g):
        # y = Σ_{h,w} x / (H W)  =>  dx = g / (H W) at every position
        dx = np.empty((n, h, w, c), dtype=g.dtype)
        dx[...] = g[:, None, None, :] * scale
        return (dx.transpose(0, 3, 1, 2),)

    return x.mean(axis=(2, 3)), backward


def settings_1d(pool_size, stride=None, padding="valid"):
    """1-D pooling settings as those of the equivalent height-1 2-D pooling."""
    return dict(pool_size=(1, single(pool_size, "pool_size")),
                stride=None if stride is None else (1, single(stride, "stride")),
                padding=padding if isinstance(padding, str) else (0, single(padding, "padding", 0)))


def _as_1d(prim2d, x, settings, name):
    """Run a 2-D pooling on the height-1 image of NCW ``x``; adapt its backward."""
    _check_rank(x, 3, name)
    y, back = prim2d.fn(x[:, :, None, :], **settings_1d(**settings))

    def backward(g):
        # a height-1 pooling: reuse the 2-D backward and drop the unit axis again
        return (back(g[:, :, None, :])[0][:, :, 0, :],)

    return y[:, :, 0, :], backward


@primitive
def max_pool1d(x, *, pool_size, stride=None, padding="valid"):
    """1-D max pooling: ``(N, C, W) -> (N, C, W_out)``; ties go to the first maximum."""
    return _as_1d(max_pool2d, x, dict(pool_size=pool_size, stride=stride, padding=padding), "max_pool1d")


@primitive
def avg_pool1d(x, *, pool_size, stride=None, padding="valid"):
    """1-D average pooling: ``(N, C, W) -> (N, C, W_out)``."""
    return _as_1d(avg_pool2d, x, dict(pool_size=pool_size, stride=stride, padding=padding), "avg_pool1d")
