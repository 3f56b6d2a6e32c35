"""Inference over a whole data set, in batches: ``predict``, ``predict_averaged`` (test-time
augmentation) and ``evaluate``.

Both run the model in inference mode (``train=False``: dropout off, batch norm
on its running statistics) on batches of ``batch_size`` examples taken in
order, so memory stays bounded, and then score the concatenated predictions:
a loss averaged over every example and metrics computed on the full set
(exact for r2 and confusion-style metrics, not an average of batch scores).

Before any work, the inputs are checked: ``x`` and ``y`` must be arrays of
finite numbers (``purenet.data.as_numeric_array``), and ``params`` (and
``state``, when given) must be those of ``model`` (``layers.check_params``), so
params of another model are an error naming the first array that differs, not
a silently wrong answer.
"""
import numpy as np

from .. import losses as losses_module
from .. import metrics as metrics_module
from ..data.validate import as_numeric_array
from ..errors import ConfigError, DataError
from ..layers.base import check_params
from ..ops import softmax

# Examples per forward pass when predicting or evaluating. Small enough that a conv net's
# activations stay under the 32 MB that malloc recycles (see ``purenet.memory``): the
# ``cnn`` recipe predicts 5,000 images in 2.5 s at 256 and 4.3 s at 1024 (page faults);
# an MLP is as fast at 256 as at 1024.
DEFAULT_BATCH_SIZE = 256


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")


def predict(model, params, x, state=None, batch_size=DEFAULT_BATCH_SIZE):
    """Model outputs for every example: ``x (n, *in_shape) -> (n, *out_shape)``."""
    _check_batch_size(batch_size)
    x = as_numeric_array(x, "x")
    check_params(model, params, x.shape[1:], state=state)
    return _outputs(model, params, x, state, batch_size)


def predict_averaged(model, params, x, views, state=None, batch_size=DEFAULT_BATCH_SIZE):
    """Test-time augmentation: the mean over ``views`` (functions of an input batch, such
    as ``data.augment.shift_flip_views(1)``) of the model's softmax probabilities,
    ``x (n, *in_shape) -> (n, classes)``."""
    if not views:
        raise ConfigError("predict_averaged: views is empty; give at least one function")
    x = as_numeric_array(x, "x")
    check_params(model, params, x.shape[1:], state=state)
    total = None
    for view in views:
        probs = softmax(_outputs(model, params, view(x), state, batch_size))
        total = probs if total is None else total + probs
    return total / len(views)


def _outputs(model, params, x, state, batch_size):
    """The outputs of checked inputs, ``batch_size`` examples at a time."""
    state = {} if state is None else state
    outputs = [model.apply(params, state, x[i:i + batch_size], train=False)[0]
               for i in range(0, len(x), batch_size)]
    return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)


def metric_fns(metrics):
    """``{log_name: fn}`` from a sequence of metric names and functions."""
    if isinstance(metrics, str) or callable(metrics):
        metrics = [metrics]
    fns = {}
    for m in metrics:
        name = metrics_module.name_of(m)
        if name in fns or name == "loss":
            raise ConfigError(f"metric name {name!r} is used twice; give the function another name")
        fns[name] = metrics_module.get(m)
    return fns


def score(pred, y, loss=None, metrics=None):
    """``{"loss": ..., "<metric>": ...}`` for predictions ``pred`` against targets ``y``."""
    out = {}
    if loss is not None:
        out["loss"] = float(losses_module.get(loss)(pred, y))
    for name, fn in (metrics or {}).items():
        out[name] = float(fn(pred, y))
    return out


def evaluate(model, params, x, y, loss=None, metrics=(), state=None,
             batch_size=DEFAULT_BATCH_SIZE):
    """Loss (if given) and metrics of the model on ``(x, y)``, as a dict of floats.

        evaluate(model, params, X_test, y_test, loss="mse", metrics=["mae", "r2"])
        # {"loss": 21.3, "mae": 3.1, "r2": 0.74}
    """
    _check_batch_size(batch_size)
    fns = metric_fns(metrics)
    if loss is not None:
        losses_module.get(loss)         # an unknown name fails before any work
    x, y = as_numeric_array(x, "x"), as_numeric_array(y, "y")
    if len(y) != len(x):
        raise DataError(f"evaluate: x has {len(x)} examples but y has {len(y)}")
    check_params(model, params, x.shape[1:], state=state)
    return score(_outputs(model, params, x, state, batch_size), y, loss, fns)
