# Contract: each alias builds a GradientTransformation by chaining the small
# transforms of transforms.py, in this order: clipping (value, then global
# norm), L2 weight decay, the optimizer's scaling, momentum, decoupled weight
# decay (adamw), and last the learning rate, so every term, weight decay
# included, is multiplied by the learning rate. Everything after the learning
# rate is keyword-only. get() finds an alias by name.
"""Optimizers by name: sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw."""
import functools
import inspect

from ..errors import ConfigError
from .transforms import (GradientTransformation, add_decayed_weights, chain, clip,
                         clip_by_global_norm, scale_by_adagrad, scale_by_adam,
                         scale_by_learning_rate, scale_by_rms, trace)


def sgd(learning_rate, *, momentum=0.0, nesterov=False, weight_decay=0.0,
        clip_value=None, clip_norm=None):
    """Stochastic gradient descent, optionally with (Nesterov) momentum.

    ``g' = g + wd p``; ``v = momentum v + g'``;
    ``p = p - lr v`` (or ``p - lr (g' + momentum v)`` with Nesterov).
    Without momentum: ``p = p - lr g'``.

    Args:
        learning_rate: a number > 0 or a schedule ``step -> lr``.
        momentum: in [0, 1); 0 means plain SGD (no velocity in the state).
        nesterov: look-ahead momentum; needs ``momentum > 0``.
        weight_decay: L2 coefficient ``wd`` added to the gradient.
        clip_value, clip_norm: clip gradients by value / global norm first.
    Returns:
        a GradientTransformation.
    """
    if nesterov and not momentum:
        raise ConfigError("sgd: nesterov=True needs momentum > 0")
    steps = [trace(momentum, nesterov=nesterov)] if momentum else []
    return _build(learning_rate, steps, weight_decay, clip_value, clip_norm)


def adagrad(learning_rate, *, eps=1e-7, weight_decay=0.0, clip_value=None, clip_norm=None):
    """AdaGrad: ``s = s + g'^2``; ``p = p - lr g' / (sqrt(s) + eps)``, ``g' = g + wd p``.

    Args: as ``sgd``; ``eps`` guards the division. Returns: a GradientTransformation.
    """
    return _build(learning_rate, [scale_by_adagrad(eps=eps)], weight_decay, clip_value, clip_norm)


def rmsprop(learning_rate, *, decay=0.9, eps=1e-7, momentum=0.0, weight_decay=0.0,
            clip_value=None, clip_norm=None):
    """RMSProp: ``n = decay n + (1 - decay) g'^2``; ``r = g' / (sqrt(n) + eps)``;
    ``p = p - lr r`` (with momentum: ``v = momentum v + r``; ``p = p - lr v``).

    Args: as ``sgd``; ``decay`` in [0, 1) averages the squared gradients.
    Returns: a GradientTransformation.
    """
    steps = [scale_by_rms(decay, eps=eps)]
    if momentum:
        steps.append(trace(momentum))
    return _build(learning_rate, steps, weight_decay, clip_value, clip_norm)


def adam(learning_rate=1e-3, *, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0,
         clip_value=None, clip_norm=None):
    """Adam, with L2 weight decay added to the gradient (``g' = g + wd p``):

    ``m = b1 m + (1 - b1) g'``, ``v = b2 v + (1 - b2) g'^2`` (t = 1, 2, ...),
    ``p = p - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)``.

    Args: as ``sgd``; ``b1``, ``b2`` in [0, 1). Returns: a GradientTransformation.
    """
    steps = [scale_by_adam(b1=b1, b2=b2, eps=eps)]
    return _build(learning_rate, steps, weight_decay, clip_value, clip_norm)


def adamw(learning_rate=1e-3, *, b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-2,
          clip_value=None, clip_norm=None):
    """Adam with decoupled weight decay: ``p = p - lr (adam_step + wd p)``.

    ``adam_step`` is Adam's bias-corrected ratio computed from ``g`` alone, so
    the decay does not pass through the adaptive scaling.
    Args: as ``adam``. Returns: a GradientTransformation.
    """
    steps = [scale_by_adam(b1=b1, b2=b2, eps=eps)]
    if weight_decay:
        steps.append(add_decayed_weights(weight_decay))
    return _build(learning_rate, steps, 0.0, clip_value, clip_norm)


def _build(learning_rate, steps, weight_decay, clip_value, clip_norm):
    first = []
    if clip_value is not None:
        first.append(clip(clip_value))
    if clip_norm is not None:
        first.append(clip_by_global_norm(clip_norm))
    if weight_decay:
        first.append(add_decayed_weights(weight_decay))
    return chain(*first, *steps, scale_by_learning_rate(learning_rate))


OPTIMIZERS = {
    "sgd": sgd,
    "momentum": functools.partial(sgd, momentum=0.9),
    "nesterov": functools.partial(sgd, momentum=0.9, nesterov=True),
    "adagrad": adagrad,
    "rmsprop": rmsprop,
    "adam": adam,
    "adamw": adamw,
}


def get(name, **kwargs):
    """An optimizer from its name and settings, or a GradientTransformation as is.

    ``get("momentum", learning_rate=0.1)`` is ``sgd(0.1, momentum=0.9)``;
    ``get("nesterov", ...)`` adds ``nesterov=True``.
    Raises ConfigError for an unknown name or a setting the optimizer lacks.
    """
    if isinstance(name, GradientTransformation):
        if kwargs:
            raise ConfigError("get: settings are only for optimizer names, not transformations")
        return name
    if not isinstance(name, str) or name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; choose one of {', '.join(sorted(OPTIMIZERS))}")
    factory = OPTIMIZERS[name]
    signature = inspect.signature(factory)
    unknown = sorted(set(kwargs) - set(signature.parameters))
    if unknown:
        raise ConfigError(f"optimizer {name!r} has no setting {', '.join(map(repr, unknown))}; "
                          f"its settings are {', '.join(signature.parameters)}")
    try:
        signature.bind(**kwargs)
    except TypeError as err:
        raise ConfigError(f"optimizer {name!r}: {err}") from None
    return factory(**kwargs)
