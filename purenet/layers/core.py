"""Dense, activation, dropout and reshaping layers (see ``base`` for the protocol)."""
import numpy as np

from .. import initializers
from ..errors import ConfigError, ShapeError
from ..ops import activations
from ..ops.linear import flatten, linear, reshape
from ..random import batch_uniform, split
from .base import Layer, layer_constructor, positive_int, real_number


@layer_constructor
def Dense(units, activation="identity", w_init="glorot_normal", b_init="zeros"):
    """The book's layer: weight multiply, bias add, activation (the first two fused as
    ``ops.linear``, and the activation too when it is relu, tanh or sigmoid).

    Input ``(batch, ..., n_in)`` -> output ``(batch, ..., units)``; params
    ``{"W": (n_in, units), "b": (units,)}``. ``activation`` and the initialisers
    are names or functions (``"normal"`` is the book's N(0, 1)).
    """
    units = positive_int(units, "Dense: units")
    act = activations.get(activation)
    name = activations.name_of(act)
    fused = name if name in activations.FUSABLE else None
    w_init, b_init = initializers.get(w_init), initializers.get(b_init)

    def init(key, in_shape, dtype):
        if not in_shape:
            raise ShapeError("Dense needs inputs with at least one feature axis")
        k_w, k_b = split(key)
        n_in = in_shape[-1]
        params = {"W": w_init(k_w, (n_in, units), dtype),
                  "b": b_init(k_b, (units,), dtype, fan_in=n_in)}
        return in_shape[:-1] + (units,), params, {}

    def apply(params, state, x, train, key):
        n_in = params["W"].shape[0]
        if np.ndim(x) < 2 or x.shape[-1] != n_in:
            raise ShapeError(f"expected input of shape (batch, ..., {n_in}), got {np.shape(x)}")
        if fused:               # applied by linear in place (see activations.FUSABLE)
            return linear(x, params["W"], params["b"], activation=fused), state
        return activations.activate(act, linear(x, params["W"], params["b"])), state

    return Layer("dense", init, apply)


@layer_constructor
def Activation(activation):
    """An activation on its own, by name (``"relu"``) or primitive."""
    act = activations.get(activation)

    def apply(params, state, x, train, key):
        return act(x), state

    return Layer(activations.name_of(act) or getattr(act, "name", act.__name__),
                 lambda key, in_shape, dtype: (in_shape, {}, {}), apply)


@layer_constructor
def Dropout(drop_prob):
    """Zero each input with probability ``drop_prob`` in training, scaling the rest by
    ``1 / (1 - drop_prob)`` (inverted dropout); the identity at inference.

    The book's ``dropout=0.8`` is a KEEP probability: it is ``Dropout(0.2)`` here.
    Training needs an explicit ``key``.
    """
    if not 0.0 <= real_number(drop_prob, "Dropout: drop_prob") < 1.0:
        raise ConfigError(f"Dropout: drop_prob must be in [0, 1), got {drop_prob}")
    keep = 1.0 - drop_prob

    def apply(params, state, x, train, key):
        if not train or drop_prob == 0.0:
            return x, state
        if key is None:
            raise ValueError("Dropout in training needs a random key: pass key=... to apply/fit")
        mask = batch_uniform(key, x.shape) < keep
        return x * (mask * np.asarray(1.0 / keep, dtype=x.dtype)), state

    return Layer("dropout", lambda key, in_shape, dtype: (in_shape, {}, {}), apply)


@layer_constructor
def Flatten():
    """``(batch, d1, d2, ...) -> (batch, d1*d2*...)``."""
    def init(key, in_shape, dtype):
        return (int(np.prod(in_shape)),), {}, {}

    def apply(params, state, x, train, key):
        return flatten(x), state

    return Layer("flatten", init, apply)


@layer_constructor
def Reshape(shape):
    """Reshape each example to ``shape`` (the batch axis is kept)."""
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    if not isinstance(shape, (list, tuple)):
        raise ConfigError(f"Reshape: shape must be a tuple of positive integers, got {shape!r}")
    shape = tuple(positive_int(n, "Reshape: every size in shape") for n in shape)

    def init(key, in_shape, dtype):
        if int(np.prod(in_shape)) != int(np.prod(shape)):
            raise ShapeError(f"Reshape: cannot reshape {in_shape} to {shape}")
        return shape, {}, {}

    def apply(params, state, x, train, key):
        return reshape(x, (len(x),) + shape), state

    return Layer("reshape", init, apply)
