"""Batch normalisation primitives, fused: one forward and one hand-derived backward each.

Statistics are per channel, the channel being axis 1, over every other axis:

    dense inputs  (N, F)          per feature, over the batch
    conv inputs   (N, C, H, W)    per channel, over the batch and all positions
    1-D conv      (N, C, W)       per channel, over the batch and positions

    x̂ = (x - μ) / sqrt(σ² + eps),   y = γ x̂ + β           γ, β, μ, σ² of shape (C,)

``batch_norm`` normalises with the statistics of the batch itself (training);
``batch_norm_train`` is the same computation, also returning those statistics so
a layer can update its running averages without a second pass over ``x``.
``batch_norm_inference`` normalises with given (running) statistics, which are
then constants.

Fused rather than composed from smaller primitives: the backward of the batch
statistics collapses to one short formula and two reductions, where the
composition would keep and traverse several intermediate arrays.
"""
import numpy as np

from ..errors import ShapeError
from .core import primitive


class _Channels:
    """Per-channel arithmetic on ``x (N, C, ...)`` through a 2-D view with long rows.

    NumPy broadcasting a (C,) vector over a big array runs its inner loop over just C
    values at a time; reductions over the outer axes likewise. So each array is seen
    in 2-D: when the channel axis is innermost in memory (dense (N, F), or a conv
    output stored channels-last) rows are samples and a per-channel vector is tiled
    along a row; when it is outermost (contiguous NCHW) rows are (sample, channel)
    pairs and the vector repeats down a column. Sums go through BLAS (a matrix-vector
    product with ones).
    """

    def __init__(self, x):
        if np.ndim(x) < 2:
            raise ShapeError(f"batch norm needs inputs of shape (batch, channels, ...), got {np.shape(x)}")
        self.shape, (self.n, self.c) = x.shape, x.shape[:2]
        self.inner = not (x.flags.c_contiguous and x.ndim > 2)
        self.width = x.size // self.n if self.inner else x.size // (self.n * self.c)

    def flat(self, a):
        """``a`` (shaped like x) as this 2-D layout; a copy only if its memory order differs."""
        t = np.moveaxis(a, 1, -1) if self.inner else a
        return np.ascontiguousarray(t).reshape(-1, self.width)

    def unflat(self, a2):
        """The 2-D layout back as an (N, C, ...) array (a view)."""
        if not self.inner:
            return a2.reshape(self.shape)
        return np.moveaxis(a2.reshape((self.n,) + self.shape[2:] + (self.c,)), -1, 1)

    def spread(self, v):
        """A (C,) vector arranged to broadcast against the 2-D layout."""
        return np.tile(v, self.width // self.c) if self.inner else np.tile(v, self.n)[:, None]

    def sums(self, a2):
        """Per-channel sums of a 2-D layout array: (C,)."""
        if self.inner:
            return (np.ones(self.n, a2.dtype) @ a2).reshape(-1, self.c).sum(axis=0)
        return (a2 @ np.ones(self.width, a2.dtype)).reshape(self.n, self.c).sum(axis=0)


def _check_param(name, p, channels):
    if np.shape(p) != (channels,):
        raise ShapeError(f"batch norm: {name} must have shape ({channels},) for an input with "
                         f"{channels} channels, got {np.shape(p)}")


def batch_norm_train(x, gamma, beta, eps=1e-5):
    """``(y, (mean, var), backward)`` normalising ``x`` by its own batch statistics.

    ``var`` is the biased (1/m) batch variance used for normalising.
    ``backward(g) -> (dx, dgamma, dbeta)``.
    """
    ch = _Channels(x)
    for name, p in (("gamma", gamma), ("beta", beta)):
        _check_param(name, p, ch.c)
    m = x.size // ch.c
    x2 = ch.flat(x)
    mean = ch.sums(x2) / m
    xhat = x2 - ch.spread(mean)
    var = ch.sums(np.square(xhat)) / m
    inv = 1.0 / np.sqrt(var + eps)
    xhat *= ch.spread(inv)
    y = xhat * ch.spread(gamma)
    y += ch.spread(beta)

    def backward(g):
        # with x̂ = (x-μ)·inv:  dβ = Σg,  dγ = Σ g x̂,
        # dx = γ·inv · (g - Σg/m - x̂ Σ(g x̂)/m)     (μ and σ² depend on every x of the channel)
        g2 = ch.flat(g)
        dbeta, dgamma = ch.sums(g2), ch.sums(g2 * xhat)
        scale = gamma * inv
        dx = g2 * ch.spread(scale)
        dx -= xhat * ch.spread(scale * dgamma / m)
        dx -= ch.spread(scale * dbeta / m)
        return ch.unflat(dx), dgamma, dbeta

    return ch.unflat(y), (mean, var), backward


@primitive
def batch_norm(x, gamma, beta, *, eps=1e-5):
    """Training-mode batch norm: ``x (N, C, ...)``, ``gamma, beta (C,)`` -> ``y`` like ``x``."""
    y, _, backward = batch_norm_train(x, gamma, beta, eps)
    return y, backward


@primitive
def batch_norm_inference(x, gamma, beta, mean, var, *, eps=1e-5):
    """Batch norm with fixed statistics ``mean, var (C,)``: an affine map per channel."""
    ch = _Channels(x)
    for name, p in (("gamma", gamma), ("beta", beta), ("mean", mean), ("var", var)):
        _check_param(name, p, ch.c)
    inv = 1.0 / np.sqrt(var + eps)
    x2 = ch.flat(x)
    xhat = (x2 - ch.spread(mean)) * ch.spread(inv)
    y = xhat * ch.spread(gamma)
    y += ch.spread(beta)

    def backward(g):
        # y = γ (x - μ) inv + β with μ, σ² constants  =>  dx = γ inv g,  dγ = Σ g x̂,  dβ = Σ g
        g2 = ch.flat(g)
        dx = g2 * ch.spread(gamma * inv)
        return ch.unflat(dx), ch.sums(g2 * xhat), ch.sums(g2), None, None

    return ch.unflat(y), backward
