"""Metrics: plain functions ``metric(pred, target) -> float`` for monitoring.

Metrics are not differentiated; they only report. Predictions have a batch
axis first, as the model outputs them:

* regression (``mae``, ``rmse``, ``r2``): ``pred`` and ``target`` of the same
  shape, or ``(batch, 1)`` against ``(batch,)``;
* classification (``accuracy``): ``(batch, classes)`` logits or probabilities
  against integer labels ``(batch,)`` or one-hot rows ``(batch, classes)``;
  a single logit per example (``(batch,)`` or ``(batch, 1)``) is binary and
  thresholded at 0 (pass ``threshold=0.5`` for probabilities).

Labels are checked, never silently miscounted: a fractional label (``0.5``), a
label outside ``0..classes-1`` or a one-hot row of the wrong width is a
``DataError``/``ShapeError`` naming the label and its index.

``get(name_or_fn)`` returns a metric from its name (see ``NAMES``) or the
function itself; ``name_of(metric)`` gives the name used as a log key.
"""
import numpy as np

from .errors import ConfigError, DataError, ShapeError


def _regression_pair(pred, target, name):
    """``pred`` and ``target`` as float arrays of one shape (the batch axis first)."""
    pred, target = np.asarray(pred), np.asarray(target)
    if target.shape != pred.shape:
        if target.size != pred.size or len(target) != len(pred):
            raise ShapeError(f"{name}: prediction has shape {pred.shape} but target has "
                             f"shape {target.shape}")
        target = target.reshape(pred.shape)
    if pred.size == 0:
        raise DataError(f"{name}: no examples to score")
    return pred, target


def mae(pred, target):
    """Mean absolute error over every element."""
    pred, target = _regression_pair(pred, target, "mae")
    return float(np.mean(np.abs(pred - target)))


def rmse(pred, target):
    """Root mean squared error over every element."""
    pred, target = _regression_pair(pred, target, "rmse")
    diff = pred - target
    return float(np.sqrt(np.mean(diff * diff)))


def r2(pred, target):
    """Coefficient of determination ``1 - SS_res / SS_tot``, averaged over output columns.

    A column whose target is constant scores 1 if predicted exactly, else 0.
    """
    pred, target = _regression_pair(pred, target, "r2")
    pred = pred.reshape(len(pred), -1).astype(np.float64)
    target = target.reshape(len(target), -1).astype(np.float64)
    ss_res = np.sum((target - pred) ** 2, axis=0)
    ss_tot = np.sum((target - target.mean(axis=0)) ** 2, axis=0)
    constant = ss_tot == 0
    scores = np.where(constant, (ss_res == 0).astype(np.float64),
                      1.0 - ss_res / np.where(constant, 1.0, ss_tot))
    return float(np.mean(scores))


def _is_binary(pred):
    return pred.ndim == 1 or (pred.ndim == 2 and pred.shape[1] == 1)


def _true_labels(target, n_examples, name, num_classes=None):
    """Integer labels ``(batch,)`` from integer labels or one-hot rows ``(batch, classes)``.

    Labels must be whole numbers (``2.0`` is label 2, ``0.5`` is a DataError) and, when
    ``num_classes`` is known, lie in ``0..num_classes-1``; one-hot rows must then have
    ``num_classes`` columns.
    """
    target = np.asarray(target)
    if target.dtype.kind not in "biuf":
        raise DataError(f"{name}: targets must be integer labels or one-hot rows, "
                        f"got dtype {target.dtype}")
    if target.ndim == 2 and target.shape[1] > 1:
        if num_classes is not None and target.shape[1] != num_classes:
            raise ShapeError(f"{name}: one-hot targets have {target.shape[1]} columns but the "
                             f"predictions score {num_classes} classes")
        target = target.argmax(axis=1)
    target = target.reshape(-1) if target.size == n_examples else target
    if target.shape != (n_examples,):
        raise ShapeError(f"{name}: expected {n_examples} integer labels or one-hot rows, "
                         f"got targets of shape {target.shape}")
    if target.dtype.kind == "f":
        bad = ~np.isfinite(target) | (target != np.round(target))
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{name}: target label {target[i]} at index {i} is not a whole "
                            "number; labels are class indices 0, 1, 2, ...")
        target = target.astype(np.int64)
    if num_classes is not None:
        _check_range(name, "target", target, num_classes)
    return target


def _check_range(name, what, labels, num_classes):
    bad = (labels < 0) | (labels >= num_classes)
    if np.any(bad):
        i = int(np.argmax(bad))
        raise DataError(f"{name}: {what} label {labels[i]} at index {i} is out of range "
                        f"for {num_classes} classes (0..{num_classes - 1})")


def _predicted_labels(pred, threshold):
    """Labels from integer labels, single logits (thresholded) or class scores (argmax)."""
    pred = np.asarray(pred)
    if pred.dtype.kind in "iub":
        return pred.reshape(len(pred), -1)[:, 0] if pred.ndim > 1 else pred
    if _is_binary(pred):
        return (pred.reshape(-1) > threshold).astype(np.int64)
    if pred.ndim != 2:
        raise ShapeError(f"class scores must have shape (batch, classes), got {pred.shape}")
    return pred.argmax(axis=1)


def accuracy(pred, target, threshold=0.0):
    """Fraction of examples whose predicted class equals the target class.

    pred: ``(batch, classes)`` scores (argmax), or ``(batch,)``/``(batch, 1)``
    binary logits (class 1 when ``pred > threshold``). target: integer labels
    ``(batch,)``/``(batch, 1)`` or one-hot ``(batch, classes)``; binary targets are
    0/1 (values above 0.5 count as 1).
    """
    pred = np.asarray(pred)
    if len(pred) == 0:
        raise DataError("accuracy: no examples to score")
    labels = _predicted_labels(pred, threshold)
    target = np.asarray(target)
    num_classes = None
    if pred.dtype.kind == "f":
        num_classes = 2 if _is_binary(pred) else pred.shape[1]
    if _is_binary(pred) and pred.dtype.kind == "f" and target.dtype.kind == "f":
        _check_probabilities(target)
        target = target > 0.5
    truth = _true_labels(target, len(pred), "accuracy", num_classes)
    return float(np.mean(labels == truth))


def _check_probabilities(target):
    """Binary float targets must lie in [0, 1] (0/1 labels or probabilities)."""
    bad = ~((target >= 0) & (target <= 1))
    if np.any(bad):
        i = tuple(int(k) for k in np.argwhere(bad)[0])
        raise DataError(f"accuracy: binary target {target[i]} at index {i} is not in [0, 1]; "
                        "targets of a single logit are 0/1 labels or probabilities")


def confusion_matrix(pred, target, num_classes):
    """``(num_classes, num_classes)`` int64 counts; row = true class, column = predicted.

    pred: integer labels ``(batch,)``, class scores ``(batch, classes)`` (argmax), or
    binary logits ``(batch,)``/``(batch, 1)`` of float dtype (thresholded at 0).
    target: integer labels or one-hot rows.
    """
    num_classes = int(num_classes)
    if num_classes < 1:
        raise ConfigError(f"confusion_matrix: num_classes must be positive, got {num_classes}")
    labels = np.asarray(_predicted_labels(pred, 0.0))
    truth = _true_labels(target, len(labels), "confusion_matrix", num_classes)
    _check_range("confusion_matrix", "predicted", labels, num_classes)
    flat = truth.astype(np.int64) * num_classes + labels.astype(np.int64)
    counts = np.bincount(flat, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


_REGISTRY = {
    "mae": mae, "mean_absolute_error": mae,
    "rmse": rmse, "root_mean_squared_error": rmse,
    "r2": r2,
    "accuracy": accuracy, "acc": accuracy,
}
NAMES = tuple(sorted(_REGISTRY))


def get(metric):
    """A metric function from its name, or the function itself."""
    if isinstance(metric, str):
        if metric not in _REGISTRY:
            raise ConfigError(f"unknown metric {metric!r}; choose one of {', '.join(NAMES)} "
                              "or pass a function (pred, target) -> float")
        return _REGISTRY[metric]
    if not callable(metric):
        raise ConfigError(f"a metric must be a name or a function (pred, target) -> float, "
                          f"got {metric!r}")
    return metric


def name_of(metric):
    """The log key of a metric: its name if given one, else the function's ``__name__``."""
    if isinstance(metric, str):
        get(metric)
        return metric
    return getattr(metric, "__name__", None) or type(metric).__name__
