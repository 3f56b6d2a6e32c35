"""Linear primitives: the book's weight multiply and bias add, and reshapes."""
import numpy as np

from ..errors import ShapeError
from .core import primitive


@primitive
def matmul(x, w, input_grad=True):
    """Weight multiply: ``x (..., n_in) @ w (n_in, n_out) -> (..., n_out)``.

    ``input_grad=False`` skips ``dx`` (returns None) when nobody needs it.
    """
    if x.shape[-1] != w.shape[0]:
        raise ShapeError(f"matmul: input has {x.shape[-1]} features (shape {x.shape}), "
                         f"weights expect {w.shape[0]} (shape {w.shape})")
    x2 = x.reshape(-1, x.shape[-1])           # leading axes folded: one 2-D BLAS call
    y = (x2 @ w).reshape(x.shape[:-1] + (w.shape[1],))

    def backward(g):
        # y = x W  =>  dx = g W^T,  dW = x^T g (summed over every leading axis)
        g2 = g.reshape(-1, g.shape[-1])
        dx = (g2 @ w.T).reshape(x.shape) if input_grad else None
        return dx, x2.T @ g2

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
