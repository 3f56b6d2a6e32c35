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


def _axes(x):
    """Reduction axes and the broadcast shape of a per-channel (C,) vector."""
    if np.ndim(x) < 2:
        raise ShapeError(f"batch norm needs inputs of shape (batch, channels, ...), got {np.shape(x)}")
    axes = (0,) + tuple(range(2, x.ndim))
    return axes, (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _check_param(name, p, channels):
    if np.shape(p) != (channels,):
        raise ShapeError(f"batch norm: {name} must have shape ({channels},) for an input with "
                         f"{channels} channels, got {np.shape(p)}")


def batch_norm_train(x, gamma, beta, eps=1e-5):
    """``(y, (mean, var), backward)`` normalising ``x`` by its own batch statistics.

    ``var`` is the biased (1/m) batch variance used for normalising.
    ``backward(g) -> (dx, dgamma, dbeta)``.
    """
    axes, shape = _axes(x)
    for name, p in (("gamma", gamma), ("beta", beta)):
        _check_param(name, p, x.shape[1])
    m = x.size // x.shape[1]
    mean = x.mean(axis=axes)
    xhat = x - mean.reshape(shape)
    var = np.mean(np.square(xhat), axis=axes)
    inv = 1.0 / np.sqrt(var + eps)
    xhat *= inv.reshape(shape)
    y = xhat * gamma.reshape(shape) + beta.reshape(shape)

    def backward(g):
        # with x̂ = (x-μ)·inv:  dβ = Σg,  dγ = Σ g x̂,
        # dx = γ·inv/m · (m g - Σg - x̂ Σ(g x̂))     (μ and σ² depend on every x of the channel)
        dbeta = g.sum(axis=axes)
        dgamma = np.sum(g * xhat, axis=axes)
        dx = g * m - dbeta.reshape(shape)
        dx -= xhat * dgamma.reshape(shape)
        dx *= (gamma * inv / m).reshape(shape)
        return dx, dgamma, dbeta

    return y, (mean, var), backward


@primitive
def batch_norm(x, gamma, beta, *, eps=1e-5):
    """Training-mode batch norm: ``x (N, C, ...)``, ``gamma, beta (C,)`` -> ``y`` like ``x``."""
    y, _, backward = batch_norm_train(x, gamma, beta, eps)
    return y, backward


@primitive
def batch_norm_inference(x, gamma, beta, mean, var, *, eps=1e-5):
    """Batch norm with fixed statistics ``mean, var (C,)``: an affine map per channel."""
    axes, shape = _axes(x)
    for name, p in (("gamma", gamma), ("beta", beta), ("mean", mean), ("var", var)):
        _check_param(name, p, x.shape[1])
    inv = 1.0 / np.sqrt(var + eps)
    xhat = (x - mean.reshape(shape)) * inv.reshape(shape)
    y = xhat * gamma.reshape(shape) + beta.reshape(shape)

    def backward(g):
        # y = γ (x - μ) inv + β with μ, σ² constants  =>  dx = γ inv g,  dγ = Σ g x̂,  dβ = Σ g
        dx = g * (gamma * inv).reshape(shape)
        return dx, np.sum(g * xhat, axis=axes), g.sum(axis=axes), None, None

    return y, backward
