"""Batch normalisation primitives, fused: one forward and one hand-derived backward each.

Statistics are per channel, the channel being axis 1, over every other axis:

    dense inputs  (N, F)          per feature, over the batch
    conv inputs   (N, C, H, W)    per channel, over the batch and all positions
    1-D conv      (N, C, W)       per channel, over the batch and positions

    x̂ = (x - μ) / sqrt(σ² + eps),   y = γ x̂ + β           γ, β, μ, σ² of shape (C,)

``batch_norm(x, gamma, beta) -> (y, mean, var)`` normalises with the statistics
of the batch itself (training) and returns them as well (``var`` the biased, 1/m,
batch variance), so a layer can update its running averages without a second
pass over ``x``. All three outputs are differentiable: a loss may use the batch
statistics too, and the backward takes ``(g_y, g_mean, g_var)``, any of them None.
``batch_norm_inference`` normalises with given (running) statistics; a layer
passes them as constants, but they are differentiable arguments like the others.

Fused rather than composed from smaller primitives: the backward of the batch
statistics collapses to one short formula and two reductions, where the
composition would keep and traverse several intermediate arrays.
"""
from contextlib import contextmanager

import numpy as np

from ..errors import ShapeError
from .core import primitive
from .linear import column_sums

# Set by ``shared_statistics`` while a data-parallel step runs with synchronised batch
# norm: (sum over processes, this process's examples, the global batch's examples).
_shared = None


@contextmanager
def shared_statistics(reduce_sum, local_n, global_n):
    """Within this block ``batch_norm`` takes its statistics over the global batch that
    ``global_n`` examples make, this process holding ``local_n`` of them.

    ``reduce_sum(a)`` returns the elementwise sum of ``a`` over every process (each one
    calls it at the same points, in the same order). The backward sums the per-channel
    terms of ``dx`` the same way, each process's weighted by its share of the global
    batch, as its loss is an average over its own examples; ``dgamma`` and ``dbeta``
    stay this process's own (the caller sums the weighted gradients).
    """
    global _shared
    previous, _shared = _shared, (reduce_sum, int(local_n), int(global_n))
    try:
        yield
    finally:
        _shared = previous


def batch_count(m):
    """The number of values per channel the statistics are over: ``m`` here, or the
    global batch's count inside ``shared_statistics``."""
    if _shared is None:
        return m
    _, local_n, global_n = _shared
    return m * global_n // local_n


def _channels_last_order(x):
    """An order of the axes of ``x (N, C, ...)`` with the channels last: ``x``'s own memory
    order when its channels are innermost there (no copy to flatten), else (N, ..., C)."""
    rest = sorted((a for a in range(x.ndim) if a != 1), key=lambda a: -x.strides[a])
    order = rest + [1]
    return order if x.transpose(order).flags.c_contiguous else [0] + list(range(2, x.ndim)) + [1]


class _Channels:
    """Per-channel arithmetic on ``x (N, C, ...)`` through a 2-D view with long rows.

    NumPy broadcasting a (C,) vector over a big array runs its inner loop over just C
    values at a time; reductions over the outer axes likewise. So each array is seen
    in 2-D: when the channel axis is innermost in memory (dense (N, F), or a conv
    output stored channels-last or spatial-major) rows run over the other axes in
    their memory order and a per-channel vector is tiled along a row; when it is
    outermost (contiguous NCHW) rows are (sample, channel) pairs and the vector
    repeats down a column. Sums go through BLAS (a matrix-vector product with ones).
    """

    def __init__(self, x):
        if np.ndim(x) < 2:
            raise ShapeError(f"batch norm needs inputs of shape (batch, channels, ...), got {np.shape(x)}")
        self.shape, (self.n, self.c) = x.shape, x.shape[:2]
        self.inner = not (x.flags.c_contiguous and x.ndim > 2)
        self.width = x.size // self.n if self.inner else x.size // (self.n * self.c)
        self.order = _channels_last_order(x) if self.inner else None

    def flat(self, a):
        """``a`` (shaped like x) as this 2-D layout; a copy only if its memory order differs."""
        t = a.transpose(self.order) if self.inner else a
        return np.ascontiguousarray(t).reshape(-1, self.width)

    def unflat(self, a2):
        """The 2-D layout back as an (N, C, ...) array (a view)."""
        if not self.inner:
            return a2.reshape(self.shape)
        return a2.reshape([self.shape[a] for a in self.order]).transpose(np.argsort(self.order))

    def spread(self, v):
        """A (C,) vector arranged to broadcast against the 2-D layout."""
        return np.tile(v, self.width // self.c) if self.inner else np.tile(v, self.n)[:, None]

    def sums(self, a2):
        """Per-channel sums of a 2-D layout array: (C,)."""
        if self.inner:
            return column_sums(a2).reshape(-1, self.c).sum(axis=0)
        return (a2 @ np.ones(self.width, a2.dtype)).reshape(self.n, self.c).sum(axis=0)


def _check_param(name, p, channels):
    if np.shape(p) != (channels,):
        raise ShapeError(f"batch norm: {name} must have shape ({channels},) for an input with "
                         f"{channels} channels, got {np.shape(p)}")


def _check_params(ch, **params):
    for name, p in params.items():
        _check_param(name, p, ch.c)


_ALONE = (lambda sums: sums, 1, 1)     # one process: its batch is the global batch


@primitive
def batch_norm(x, gamma, beta, *, eps=1e-5):
    """Training-mode batch norm: ``x (N, C, ...)``, ``gamma, beta (C,)`` ->
    ``(y, mean, var)``: ``y`` like ``x``, normalised by the batch's own per-channel
    ``mean (C,)`` and biased (1/m) variance ``var (C,)``, which are returned too."""
    ch = _Channels(x)
    _check_params(ch, gamma=gamma, beta=beta)
    reduce_sum, local_n, global_n = _shared or _ALONE
    return _batch_norm(ch, x, gamma, beta, eps, reduce_sum, local_n, global_n)


def _batch_norm(ch, x, gamma, beta, eps, reduce_sum, local_n, global_n):
    """``batch_norm`` over the global batch that ``global_n`` examples make, this process
    holding ``local_n`` (``shared_statistics``; alone, ``reduce_sum`` is the identity):
    two sums over the processes forward (the mean, then the variance about it), one
    backward."""
    m = x.size // ch.c                      # this process's values per channel
    total = m * global_n // local_n         # the global batch's
    weight = local_n / global_n
    x2 = ch.flat(x)
    mean = reduce_sum(ch.sums(x2)) / total
    xc = x2 - ch.spread(mean)               # kept for the backward: x̂ = xc·inv
    y = np.square(xc)
    var = reduce_sum(ch.sums(y)) / total
    std = np.sqrt(var + eps)
    inv = 1.0 / std
    np.multiply(xc, ch.spread(gamma * inv), out=y)
    y += ch.spread(beta)

    def backward(grads, needed):
        # x̂ = (x-μ)·inv:  dβ = Σg,  dγ = Σ g x̂,  dx = γ·inv·(g - Σg/m - x̂ Σ(g x̂)/m)
        #   + g_μ/m + g_σ²·2(x-μ)/m   (∂μ/∂x = 1/m; ∂σ²/∂x = 2(x-μ)/m, as Σ(x-μ) = 0).
        # Over several processes the sums run over the global batch, each process's g
        # weighted by its share w: Σ_all(w g) / (w·total) = Σ_all(w g) / m.
        g_y, g_mean, g_var = grads
        zero = np.zeros_like(mean)
        g2 = ch.flat(g_y) if g_y is not None else None
        work = np.empty_like(xc)
        dbeta = ch.sums(g2) if g2 is not None else zero
        dgamma = ch.sums(np.multiply(g2, xc, out=work)) * inv if g2 is not None else zero
        parts = np.concatenate([dbeta, dgamma, zero if g_mean is None else g_mean,
                                zero if g_var is None else g_var]) * weight
        s_beta, s_gamma, s_mean, s_var = np.split(reduce_sum(parts) / m, 4)
        scale = gamma * inv
        shift = s_mean - scale * s_beta
        slope = s_var * (2 * std) - scale * s_gamma
        dx = None
        if needed[0]:
            dx = np.multiply(xc, ch.spread(slope * inv), out=work)     # x̂·slope
            dx += ch.spread(shift)
            if g2 is not None:
                dx += g2 * ch.spread(scale)
            dx = ch.unflat(dx)
        keep = g_y is not None
        return (dx, dgamma if needed[1] and keep else None,
                dbeta if needed[2] and keep else None)

    return (ch.unflat(y), mean, var), backward


@primitive
def batch_norm_inference(x, gamma, beta, mean, var, *, eps=1e-5):
    """Batch norm with fixed statistics ``mean, var (C,)``: an affine map per channel."""
    ch = _Channels(x)
    _check_params(ch, gamma=gamma, beta=beta, mean=mean, var=var)
    inv = 1.0 / np.sqrt(var + eps)
    x2 = ch.flat(x)
    xhat = (x2 - ch.spread(mean)) * ch.spread(inv)
    y = xhat * ch.spread(gamma)
    y += ch.spread(beta)

    def backward(g, needed):
        # y = γ (x - μ) inv + β:  dx = γ inv g,  dγ = Σ g x̂,  dβ = Σ g,  dμ = -γ inv Σ g,
        # dσ² = -γ inv² Σ(g x̂) / 2     (inv = (σ² + eps)^(-1/2), so dinv/dσ² = -inv³/2)
        g2 = ch.flat(g)
        dx = ch.unflat(g2 * ch.spread(gamma * inv)) if needed[0] else None
        sum_g = ch.sums(g2) if needed[2] or needed[3] else None
        sum_gx = ch.sums(g2 * xhat) if needed[1] or needed[4] else None
        return (dx, sum_gx if needed[1] else None, sum_g if needed[2] else None,
                -gamma * inv * sum_g if needed[3] else None,
                -0.5 * gamma * inv * inv * sum_gx if needed[4] else None)

    return ch.unflat(y), backward
