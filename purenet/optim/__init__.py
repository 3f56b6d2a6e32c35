# Contract: an optimizer is a GradientTransformation (init, update) of pure
# functions; its state is a plain tree of ndarrays that checkpoints can save;
# apply_updates adds the updates to the params. See transforms.py.
"""Optimizers in the optax style: small pure transforms, chained.

    >>> import numpy as np
    >>> from purenet.optim import adam, apply_updates, schedules
    >>> params = {"dense_0": {"W": np.ones((2, 2)), "b": np.zeros(2)}}
    >>> opt = adam(learning_rate=schedules.cosine_decay(1e-2, transition_steps=100))
    >>> opt_state = opt.init(params)
    >>> grads = {"dense_0": {"W": np.full((2, 2), 0.5), "b": np.ones(2)}}
    >>> updates, opt_state = opt.update(grads, opt_state, params)
    >>> params = apply_updates(params, updates)
    >>> params["dense_0"]["W"].round(4).tolist()
    [[0.99, 0.99], [0.99, 0.99]]

``update`` returns what is ADDED to the params, so a step is
``params + updates``; weight decay and every other term are multiplied by the
learning rate. The rate is also multiplied by the state's ``lr_scale`` (1.0 after
``init``; ``with_lr_scale(state, s)`` changes it, as ReduceLROnPlateau does), so
a lowered rate lives in the state and survives a checkpoint. Build your own
optimizer by chaining transforms, e.g.
``chain(clip_by_global_norm(1.0), scale_by_adam(), scale_by_learning_rate(1e-3))``.
"""
from . import schedules
from .aliases import OPTIMIZERS, adagrad, adam, adamw, get, rmsprop, sgd
from .transforms import (GradientTransformation, add_decayed_weights, apply_updates, chain,
                         clip, clip_by_global_norm, lr_scale, scale_by_adagrad, scale_by_adam,
                         scale_by_learning_rate, scale_by_rms, trace, with_lr_scale)

__all__ = [
    "GradientTransformation", "apply_updates", "chain", "scale_by_learning_rate", "trace",
    "scale_by_adagrad", "scale_by_rms", "scale_by_adam", "add_decayed_weights", "clip",
    "clip_by_global_norm", "lr_scale", "with_lr_scale", "sgd", "adagrad", "rmsprop", "adam",
    "adamw", "get", "OPTIMIZERS",
    "schedules",
]
