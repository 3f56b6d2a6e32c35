"""Linear primitives: the book's weight multiply and bias add, and reshapes.

``linear(x, W, b)`` is the two fused, as ``Dense`` uses them: one node instead of
two, and the bias added in place while the product is still in cache.
"""
import functools

import numpy as np

from ..errors import ConfigError, ShapeError
from .activations import FUSABLE
from .core import primitive, unbroadcast


@primitive
def matmul(x, w):
    """Matrix product with NumPy's ``@`` rules; the book's weight multiply is the case
    ``x (..., n_in) @ w (n_in, n_out) -> (..., n_out)``, done as ONE 2-D BLAS call with
    the leading axes of ``x`` folded into rows."""
    x, w = np.asarray(x), np.asarray(w)
    if x.ndim == 0 or w.ndim == 0 or x.shape[-1] != w.shape[-2 if w.ndim > 1 else 0]:
        raise ShapeError(f"matmul: shapes {x.shape} and {w.shape} do not fit "
                         "(the last axis of the first must match the rows of the second)")
    if w.ndim == 2 and x.ndim >= 2:
        return _weight_multiply(x, w)
    return _batched_matmul(x, w)


def _weight_multiply(x, w):
    x2 = x.reshape(-1, x.shape[-1])           # leading axes folded: one 2-D BLAS call
    y = (x2 @ w).reshape(x.shape[:-1] + (w.shape[1],))

    def backward(g, needed):
        # y = x W  =>  dx = g W^T,  dW = x^T g (summed over every leading axis)
        g2 = g.reshape(-1, g.shape[-1])
        dx = (g2 @ w.T).reshape(x.shape) if needed[0] else None
        return dx, (x2.T @ g2) if needed[1] else None

    return y, backward


def column_sums(a2):
    """Sums of the columns of a 2-D array ``(rows, n) -> (n,)``, as a BLAS product with
    ones: several times faster than ``a2.sum(axis=0)`` when rows are short."""
    return ones(len(a2), a2.dtype) @ a2


@functools.lru_cache(maxsize=32)
def ones(n, dtype):
    """A read-only vector of ``n`` ones, made once per length and dtype (sums as BLAS
    products: a training step asks for the same few lengths every step)."""
    vector = np.ones(n, dtype)
    vector.flags.writeable = False
    return vector


@primitive
def linear(x, w, b, *, activation="identity"):
    """Weight multiply and bias add in one: ``x (..., n_in) @ w (n_in, n_out) + b (n_out,)``;
    then ``activation``, when it is one of ``activations.FUSABLE`` ("relu", "tanh",
    "sigmoid"), applied in place (the same values as the activation's own primitive)."""
    if np.ndim(x) < 1 or np.ndim(w) != 2 or x.shape[-1] != w.shape[0] or np.shape(b) != w.shape[1:]:
        raise ShapeError(f"linear: shapes {np.shape(x)} @ {np.shape(w)} + {np.shape(b)} do not fit "
                         "(x (..., n_in), W (n_in, n_out), b (n_out,))")
    in_place, slope = _fused(activation)
    x2 = x.reshape(-1, x.shape[-1])           # leading axes folded: one 2-D BLAS call
    y2 = x2 @ w
    y2 += b
    if in_place is not None:
        in_place(y2)

    def backward(g, needed):
        # y = act(z), z = x W + b  =>  dz = g act'(z) (a function of y),
        # dx = dz W^T,  dW = x^T dz,  db = Σ_rows dz (over every leading axis)
        g2 = g.reshape(-1, g.shape[-1])
        if slope is not None:
            g2 = np.multiply(g2, slope(y2), dtype=g2.dtype)
        dx = (g2 @ w.T).reshape(x.shape) if needed[0] else None
        return dx, (x2.T @ g2) if needed[1] else None, column_sums(g2) if needed[2] else None

    return y2.reshape(x.shape[:-1] + (w.shape[1],)), backward


def _fused(activation):
    """``(in-place forward, slope from the output)`` of a fusable activation; Nones for
    the identity."""
    if activation in ("identity", "linear", None):
        return None, None
    if activation not in FUSABLE:
        raise ConfigError(f"linear: activation must be identity or one of "
                          f"{', '.join(sorted(FUSABLE))}, got {activation!r}")
    return FUSABLE[activation]


def _batched_matmul(a, b):
    """``a @ b`` with vectors and broadcast batch axes, as ``np.matmul``."""
    y = np.matmul(a, b)
    a2 = a[None] if a.ndim == 1 else a                  # vectors as (1, k) and (k, 1)
    b2 = b[:, None] if b.ndim == 1 else b

    def backward(g, needed):
        # y = a b  =>  da = g b^T,  db = a^T g; batch axes that broadcasting added are summed
        if a.ndim == 1 and b.ndim == 1:             # a dot product: y = <a, b>
            return (g * b if needed[0] else None), (g * a if needed[1] else None)
        g2 = g if a.ndim > 1 else np.expand_dims(g, -2)
        g2 = g2 if b.ndim > 1 else np.expand_dims(g2, -1)
        da = db = None
        if needed[0]:
            da = np.matmul(g2, np.swapaxes(b2, -1, -2))
            da = unbroadcast(da[..., 0, :] if a.ndim == 1 else da, a.shape)
        if needed[1]:
            db = np.matmul(np.swapaxes(a2, -1, -2), g2)
            db = unbroadcast(db[..., 0] if b.ndim == 1 else db, b.shape)
        return da, db

    return y, backward


@primitive
def add_bias(x, b):
    """Bias add: ``x (..., n) + b (n,)``."""
    def backward(g):
        # d(x + b) = 1 for both; the engine sums g over the broadcast axes for b
        return g, g

    return x + b, backward


@primitive
def reshape(x, shape):
    """``x.reshape(shape)``; the backward reshapes the gradient back."""
    def backward(g):
        return g.reshape(x.shape), None

    return x.reshape(shape), backward


@primitive
def flatten(x):
    """``(batch, d1, d2, ...) -> (batch, d1*d2*...)``."""
    def backward(g):
        return (g.reshape(x.shape),)

    return x.reshape(len(x), -1), backward
