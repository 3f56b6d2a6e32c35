# Contract: a GradientTransformation is a pair of pure functions.
#   init(params) -> state
#   update(grads, state, params=None) -> (updates, new_state)
# grads, params and updates are trees of the same structure; updates are ADDED
# to params by apply_updates. A state is a plain tree: dicts and lists holding
# ndarrays (step counters are 0-d int64 arrays), so checkpoints save it with the
# tree functions and a fresh init starts every counter, and every schedule,
# at step 0. Nothing is modified in place. Hyperparameters are Python floats,
# so float32 params and gradients stay float32. The learning-rate transform
# keeps an ``lr_scale`` (a 0-d float64, 1.0 after init) in its state and
# multiplies every rate by it: a callback (ReduceLROnPlateau) lowers the rate by
# changing the state alone (``with_lr_scale``), so a checkpoint keeps it.
"""Gradient transformations: small pure steps, chained into optimizers."""
import math
import numbers
from typing import Callable, NamedTuple, Optional

import numpy as np

from ..errors import ConfigError
from ..tree import tree_global_norm, tree_map, tree_zeros_like
from .schedules import as_schedule


class GradientTransformation(NamedTuple):
    """``init(params) -> state`` and ``update(grads, state, params=None) -> (updates, state)``;
    ``learning_rate(state)``, when given, reads the rate the next update will use (for logs)."""
    init: Callable
    update: Callable
    learning_rate: Optional[Callable] = None


def apply_updates(params, updates):
    """``p + u`` leaf-wise; each result keeps its param's dtype."""
    return tree_map(_add_keeping_dtype, params, updates)


def _add_keeping_dtype(p, u):
    out = p + u
    return out if out.dtype == p.dtype else out.astype(p.dtype)


def _scaled_sum(a, scale, b):
    """``scale * a + b`` in one new array (the inputs are left untouched)."""
    out = np.multiply(a, scale)
    out += b
    return out


def chain(*transforms):
    """Apply ``transforms`` one after the other; the state is the list of their states."""
    def init(params):
        return [t.init(params) for t in transforms]

    def update(grads, state, params=None):
        new_state = []
        for t, s in zip(transforms, state):
            grads, s = t.update(grads, s, params)
            new_state.append(s)
        return grads, new_state

    def learning_rate(state):
        return next((t.learning_rate(s) for t, s in zip(transforms, state)
                     if t.learning_rate is not None), None)
    return GradientTransformation(init, update, learning_rate)


def scale_by_learning_rate(learning_rate):
    """``u = -lr(t) * scale * g``, with ``t`` the number of updates already applied and
    ``scale`` the state's ``lr_scale`` (1.0 unless changed with ``with_lr_scale``).

    Args:
        learning_rate: a number > 0 or a schedule ``step -> lr``. A schedule giving a
            negative or NaN rate is a ConfigError at the step where it does.
    State: ``{"count": int64, "lr_scale": float64}``.
    """
    if not callable(learning_rate):
        _positive("learning_rate", learning_rate)
    schedule = as_schedule(learning_rate)

    def rate(state):
        count = int(state["count"])
        lr = float(schedule(count)) * float(state["lr_scale"])
        if not lr >= 0.0:               # also catches NaN
            raise ConfigError(f"the learning rate at step {count} is {lr}: a learning rate "
                              "must be a number >= 0 (check the schedule)")
        return lr

    def init(params):
        return {"count": _zero_count(), "lr_scale": np.ones((), dtype=np.float64)}

    def update(grads, state, params=None):
        neg_lr = -rate(state)
        new_state = {"count": np.array(int(state["count"]) + 1, dtype=np.int64),
                     "lr_scale": state["lr_scale"]}
        return tree_map(lambda g: neg_lr * g, grads), new_state
    return GradientTransformation(init, update, rate)


def lr_scale(state):
    """The ``lr_scale`` of an optimizer state (the first one found), or None if it has none."""
    if isinstance(state, dict):
        if "lr_scale" in state:
            return float(state["lr_scale"])
        children = state.values()
    elif isinstance(state, (list, tuple)):
        children = state
    else:
        return None
    return next((s for s in map(lr_scale, children) if s is not None), None)


def with_lr_scale(state, scale):
    """A copy of the optimizer state with every ``lr_scale`` set to ``scale``."""
    if isinstance(state, dict):
        return {k: np.array(float(scale), dtype=np.float64) if k == "lr_scale"
                else with_lr_scale(v, scale) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(with_lr_scale(s, scale) for s in state)
    return state


def trace(decay, *, nesterov=False):
    """Momentum: ``v = decay * v + g``; ``u = v``, or ``u = g + decay * v`` with Nesterov.

    State: ``{"velocity": tree like params}``.
    """
    decay = _fraction("trace: decay", decay)

    def update(grads, state, params=None):
        velocity = tree_map(lambda g, v: _scaled_sum(v, decay, g), grads, state["velocity"])
        updates = tree_map(lambda g, v: _scaled_sum(v, decay, g), grads, velocity) if nesterov else velocity
        return updates, {"velocity": velocity}
    return GradientTransformation(lambda params: {"velocity": tree_zeros_like(params)}, update)


def scale_by_adagrad(*, eps=1e-7):
    """AdaGrad: ``s = s + g^2``; ``u = g / (sqrt(s) + eps)``.

    State: ``{"sum_of_squares": tree like params}``.
    """
    eps = _non_negative("scale_by_adagrad: eps", eps)

    def update(grads, state, params=None):
        total = tree_map(lambda g, s: s + np.square(g), grads, state["sum_of_squares"])
        updates = tree_map(lambda g, s: g / (np.sqrt(s) + eps), grads, total)
        return updates, {"sum_of_squares": total}
    return GradientTransformation(lambda params: {"sum_of_squares": tree_zeros_like(params)}, update)


def scale_by_rms(decay=0.9, *, eps=1e-7):
    """RMSProp: ``n = decay * n + (1 - decay) * g^2``; ``u = g / (sqrt(n) + eps)``.

    State: ``{"nu": tree like params}`` (starts at zero).
    """
    decay = _fraction("scale_by_rms: decay", decay)
    eps = _non_negative("scale_by_rms: eps", eps)
    keep = 1.0 - decay

    def update(grads, state, params=None):
        nu = tree_map(lambda g, n: decay * n + keep * np.square(g), grads, state["nu"])
        updates = tree_map(lambda g, n: g / (np.sqrt(n) + eps), grads, nu)
        return updates, {"nu": nu}
    return GradientTransformation(lambda params: {"nu": tree_zeros_like(params)}, update)


def scale_by_adam(*, b1=0.9, b2=0.999, eps=1e-8):
    """Adam with bias correction, at step ``t = 1, 2, ...``:

    ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``,
    ``u = (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``.

    State: ``{"count": int64, "mu": tree, "nu": tree}``.
    """
    b1 = _fraction("scale_by_adam: b1", b1)
    b2 = _fraction("scale_by_adam: b2", b2)
    eps = _non_negative("scale_by_adam: eps", eps)

    def init(params):
        return {"count": _zero_count(), "mu": tree_zeros_like(params), "nu": tree_zeros_like(params)}

    def step(m, v, c1, c2):
        # (c1 m) / (sqrt(c2 v) + eps), in one new array
        u = np.multiply(v, c2)
        np.sqrt(u, out=u)
        u += eps
        np.divide(m, u, out=u)
        u *= c1
        return u

    def update(grads, state, params=None):
        t = int(state["count"]) + 1
        mu = tree_map(lambda g, m: _moving_average(m, g, b1), grads, state["mu"])
        nu = tree_map(lambda g, v: _moving_average(v, np.square(g), b2, fresh=True),
                      grads, state["nu"])
        c1, c2 = 1.0 / (1.0 - b1 ** t), 1.0 / (1.0 - b2 ** t)
        updates = tree_map(lambda m, v: step(m, v, c1, c2), mu, nu)
        return updates, {"count": np.array(t, dtype=np.int64), "mu": mu, "nu": nu}
    return GradientTransformation(init, update)


def _moving_average(average, x, decay, fresh=False):
    """``decay * average + (1 - decay) * x`` as ``average + (1 - decay)(x - average)``, in one
    new array (``fresh``: ``x`` is a temporary the caller gives up, reused as that array)."""
    out = np.subtract(x, average, out=x if fresh else None)
    out *= 1.0 - decay
    out += average
    return out


def add_decayed_weights(weight_decay):
    """``u = g + weight_decay * p``. Before the learning rate, so both get scaled by it."""
    weight_decay = _non_negative("add_decayed_weights: weight_decay", weight_decay)

    def update(grads, state, params=None):
        if params is None:
            raise ConfigError("add_decayed_weights needs params: call update(grads, state, params)")
        return tree_map(lambda g, p: g + weight_decay * p, grads, params), state
    return GradientTransformation(lambda params: {}, update)


def clip(max_abs):
    """Clip each gradient entry to ``[-max_abs, max_abs]``."""
    max_abs = _positive("clip: max_abs", max_abs)

    def update(grads, state, params=None):
        return tree_map(lambda g: np.clip(g, -max_abs, max_abs), grads), state
    return GradientTransformation(lambda params: {}, update)


def clip_by_global_norm(max_norm):
    """``u = g * min(1, max_norm / ||g||)``, with ``||g||`` the norm over all leaves."""
    max_norm = _positive("clip_by_global_norm: max_norm", max_norm)

    def update(grads, state, params=None):
        norm = tree_global_norm(grads)
        if norm <= max_norm:
            return grads, state
        scale = max_norm / norm
        return tree_map(lambda g: scale * g, grads), state
    return GradientTransformation(lambda params: {}, update)


def _zero_count():
    return np.zeros((), dtype=np.int64)


def _number(name, value):
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _positive(name, value):
    value = _number(name, value)
    if value <= 0:
        raise ConfigError(f"{name} must be > 0, got {value}")
    return value


def _non_negative(name, value):
    value = _number(name, value)
    if value < 0:
        raise ConfigError(f"{name} must be >= 0, got {value}")
    return value


def _fraction(name, value):
    value = _number(name, value)
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"{name} must be in [0, 1), got {value}")
    return value
