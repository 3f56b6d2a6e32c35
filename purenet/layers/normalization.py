"""Batch normalisation layer (see ``base`` for the layer protocol).

Works on dense examples ``(F,)`` and on conv examples ``(C, H, W)`` or ``(C, W)``:
statistics are per channel (axis 1 of the batch), over every other axis.

    params  {"gamma": (C,), "beta": (C,)}
    state   {"mean": (C,), "var": (C,)}     running averages, updated in training

Training (``train=True``) normalises by the batch's own statistics and returns
the updated running averages as the new state:

    running ← momentum · running + (1 - momentum) · batch

with the batch variance made unbiased (× m/(m-1)) for the running average, as
PyTorch does; so training needs more than one value per channel (a batch of
one dense example is a ShapeError, as in PyTorch). The averages are taken
from ``stop_gradient`` of the batch statistics: the state is never
differentiated. Inference normalises by the running averages and leaves the
state unchanged. ``momentum`` follows Keras
(0.9 keeps 90 % of the old average); PyTorch's ``momentum=0.1`` is the same thing.
A state without the running statistics (``{}``) is a ConfigError naming the layer.
"""
import numpy as np

from ..autodiff import stop_gradient
from ..errors import ConfigError, ShapeError
from ..ops.normalization import batch_count, batch_norm, batch_norm_inference
from .base import Layer, layer_constructor, real_number


@layer_constructor
def BatchNorm(momentum=0.9, eps=1e-5):
    """Batch normalisation with a learned per-channel scale ``gamma`` and shift ``beta``."""
    # Python floats never upcast float32 state
    momentum = real_number(momentum, "BatchNorm: momentum")
    eps = real_number(eps, "BatchNorm: eps")
    if not 0.0 <= momentum < 1.0:
        raise ConfigError(f"BatchNorm: momentum must be in [0, 1), got {momentum}")
    if not eps > 0:
        raise ConfigError(f"BatchNorm: eps must be positive, got {eps}")

    def init(key, in_shape, dtype):
        if not in_shape:
            raise ShapeError("BatchNorm needs examples with a channel or feature axis")
        c = in_shape[0]
        params = {"gamma": np.ones(c, dtype), "beta": np.zeros(c, dtype)}
        return in_shape, params, {"mean": np.zeros(c, dtype), "var": np.ones(c, dtype)}

    def apply(params, state, x, train, key):
        c = params["gamma"].shape[0]
        if np.ndim(x) < 2 or x.shape[1] != c:
            raise ShapeError(f"expected input of shape (batch, {c}, ...) with {c} channels or "
                             f"features, got {np.shape(x)}")
        if not ("mean" in state and "var" in state):
            raise ConfigError("batch norm has no running statistics (mean and var) in its state: "
                              "pass the state returned by model.init or fit, e.g. "
                              "model(params, x, state) or predict(model, params, x, state=state)")
        if train:
            return _train(params, state, x)
        y = batch_norm_inference(x, params["gamma"], params["beta"], state["mean"], state["var"],
                                 eps=eps)
        return y, state

    def _train(params, state, x):
        """``(y, new_state)``: normalise by the batch; fold its statistics into the averages."""
        y, mean, var = batch_norm(x, params["gamma"], params["beta"], eps=eps)
        mean, var = stop_gradient((mean, var))          # the state is not differentiated
        m = batch_count(x.size // x.shape[1])     # the global batch's, when shared
        if m < 2:
            raise ShapeError(f"batch norm in training needs more than 1 value per channel, got "
                             f"input of shape {np.shape(x)}: train on batches of 2 or more "
                             "examples")
        unbiased = var * (m / (m - 1))
        new_state = {"mean": momentum * state["mean"] + (1 - momentum) * mean,
                     "var": momentum * state["var"] + (1 - momentum) * unbiased}
        return y, new_state

    return Layer("batchnorm", init, apply)
