"""Elementwise and softmax activations, each forward with its backward beside it.

``get(name_or_function)`` looks one up by name; ``NAMES`` lists the names. Any
function of primitives is an activation too (``lambda x: x * sigmoid(x)``): the
engine differentiates it, so it needs no backward of its own; ``register`` gives
it a name, so models using it can be saved.
"""
import numpy as np

from ..errors import ConfigError
from .core import primitive


@primitive
def identity(x):
    return x, lambda g: (g,)


@primitive
def sigmoid(x):
    # 1/(1+e^-x) == (1 + tanh(x/2)) / 2, which never overflows for large |x|
    y = 0.5 + 0.5 * np.tanh(0.5 * x)

    def backward(g):
        # dσ/dx = σ(1 - σ)
        return (g * y * (1 - y),)

    return y, backward


@primitive
def tanh(x):
    y = np.tanh(x)

    def backward(g):
        # d tanh(x)/dx = 1 - tanh(x)^2
        return (g * (1 - y * y),)

    return y, backward


@primitive
def relu(x):
    y = np.maximum(x, 0)

    def backward(g):
        # d relu(x)/dx = 1 where x > 0, else 0. (Masking on y >= 0 would pass
        # every gradient through, since y is never negative.)
        return (g * (y > 0),)

    return y, backward


@primitive
def leaky_relu(x, alpha=0.01):
    positive = x > 0
    y = np.where(positive, x, alpha * x)

    def backward(g):
        # slope 1 for x > 0, alpha otherwise
        return (np.where(positive, g, alpha * g),)

    return y, backward


@primitive
def elu(x, alpha=1.0):
    positive = x > 0
    y = np.where(positive, x, alpha * np.expm1(np.minimum(x, 0)))

    def backward(g):
        # for x <= 0: d(alpha (e^x - 1))/dx = alpha e^x = y + alpha
        return (np.where(positive, g, g * (y + alpha)),)

    return y, backward


@primitive
def softplus(x):
    # log(1 + e^x), computed as logaddexp(0, x) so large x does not overflow
    y = np.logaddexp(0, x)

    def backward(g):
        # d softplus/dx = σ(x)
        return (g * (0.5 + 0.5 * np.tanh(0.5 * x)),)

    return y, backward


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@primitive
def softmax(x, axis=-1):
    y = _softmax(x, axis)

    def backward(g):
        # J = diag(y) - y y^T  =>  J^T g = y * (g - <g, y>)
        return (y * (g - (g * y).sum(axis=axis, keepdims=True)),)

    return y, backward


@primitive
def log_softmax(x, axis=-1):
    shifted = x - x.max(axis=axis, keepdims=True)
    y = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))

    def backward(g):
        # d(x_i - logsumexp(x))/dx_j = δ_ij - softmax_j  =>  g - softmax * sum(g)
        return (g - np.exp(y) * g.sum(axis=axis, keepdims=True),)

    return y, backward


def _sigmoid_in_place(z):
    z *= 0.5
    np.tanh(z, out=z)
    z *= 0.5
    z += 0.5
    return z


# Activations whose derivative is a function of their output y: the primitive before them
# (``linear``) can apply them to its own fresh output in place and differentiate them
# from y alone, one node and one array fewer. name: (in-place forward, slope from y).
FUSABLE = {
    "relu": (lambda z: np.maximum(z, 0, out=z), lambda y: y > 0),
    "tanh": (lambda z: np.tanh(z, out=z), lambda y: 1 - y * y),
    "sigmoid": (_sigmoid_in_place, lambda y: y * (1 - y)),
}


_REGISTRY = {p.name: p for p in
             (identity, sigmoid, tanh, relu, leaky_relu, elu, softplus, softmax, log_softmax)}
_REGISTRY["linear"] = identity
NAMES = tuple(sorted(_REGISTRY))


def register(fn, name=None):
    """Make a user-defined activation (a primitive, or a function of primitives)
    available by name, e.g. in saved models."""
    if not callable(fn):
        raise TypeError(f"register() takes a primitive or a function, got {type(fn).__name__}")
    name = name or getattr(fn, "name", None) or fn.__name__
    if name == "<lambda>":
        raise ConfigError("register(): a lambda needs an explicit name=")
    _REGISTRY[name] = fn
    return fn


def get(activation):
    """An activation from its name, or the primitive or function itself."""
    if activation is None:
        return identity
    if isinstance(activation, str) and activation in _REGISTRY:
        return _REGISTRY[activation]
    if callable(activation):
        return activation
    raise ConfigError(f"unknown activation {activation!r}; choose one of {', '.join(sorted(_REGISTRY))}")


def activate(act, z):
    """``act(z)``, except that the identity records nothing (no node, no backward)."""
    return z if act is identity else act(z)


def name_of(prim):
    """The registered name of an activation, or None if it has none."""
    for name, p in _REGISTRY.items():
        if p is prim:
            return name
    return None
