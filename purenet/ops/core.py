"""Primitives: differentiable functions whose backward pass is written by hand.

A primitive is defined by ONE Python function that computes the forward value
and returns it together with its backward pass (a vector-Jacobian product):

    @primitive
    def square(x):
        y = x * x
        def backward(g):
            # d(x^2)/dx = 2x
            return (2 * x * g,)
        return y, backward

``backward(g)`` receives the gradient of the loss with respect to the output
and returns one gradient per positional argument (``None`` for an argument
that is not differentiable, such as integer labels). Keyword arguments are
settings (an axis, a slope), never differentiated.

The decorated object is called like the forward (``square(x)`` gives ``y``);
``square.vjp(x)`` gives ``(y, backward)``. The engine, not each primitive,
does the generic parts once:

* broadcasting: a gradient returned with the OUTPUT's shape for an input that
  was broadcast is summed back to the input's shape (``unbroadcast``);
* shape checks: any other gradient whose shape differs from its input's is a
  ``ShapeError`` naming the primitive and the argument.
"""
import functools

import numpy as np

from ..errors import ShapeError


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched to reach ``shape``."""
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def _fit_grad(name, i, grad, arg, out_shape):
    """Give ``grad`` the shape of ``arg``, or raise a ShapeError naming the primitive."""
    arg_shape = np.shape(arg)
    grad_shape = np.shape(grad)
    if grad_shape == arg_shape:
        return grad
    if grad_shape == out_shape and np.broadcast_shapes(arg_shape, out_shape) == out_shape:
        return unbroadcast(np.asarray(grad), arg_shape)
    raise ShapeError(
        f"primitive '{name}': gradient for argument {i} has shape {grad_shape}, "
        f"but the argument has shape {arg_shape}"
    )


class Primitive:
    """A forward function paired with its hand-derived backward; see the module docstring."""

    def __init__(self, fn, name=None):
        self.fn = fn
        self.name = name or fn.__name__
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **settings):
        return self.fn(*args, **settings)[0]

    def vjp(self, *args, **settings):
        """Forward value and a checked backward: ``(out, backward)``."""
        out, backward = self.fn(*args, **settings)
        out_shape = np.shape(out)

        def checked_backward(g):
            grads = backward(g)
            if not isinstance(grads, tuple) or len(grads) != len(args):
                raise ShapeError(
                    f"primitive '{self.name}': backward must return a tuple of "
                    f"{len(args)} gradient(s), one per positional argument"
                )
            return tuple(
                None if gr is None else _fit_grad(self.name, i, gr, a, out_shape)
                for i, (gr, a) in enumerate(zip(grads, args))
            )

        return out, checked_backward

    def bind(self, **settings):
        """This primitive with some settings fixed: ``loss.bind(label_smoothing=0.1)``."""
        bound = functools.partial(self.fn, **settings)
        shown = ", ".join(f"{k}={v!r}" for k, v in settings.items())
        return Primitive(functools.update_wrapper(bound, self.fn), f"{self.name}({shown})")

    def __repr__(self):
        return f"<primitive {self.name}>"


def primitive(fn=None, *, name=None):
    """Decorator turning a ``forward -> (out, backward)`` function into a Primitive."""
    if fn is None:
        return lambda f: Primitive(f, name)
    return Primitive(fn, name)
