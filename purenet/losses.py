"""Losses: primitives ``loss(prediction, target) -> scalar`` with hand-derived backward.

Each averages over the batch (and over time steps for sequence outputs), so
the learning rate does not depend on the batch size. Float targets (soft labels,
regression targets) are differentiable too, which a distillation or an
autoencoder's loss needs; integer labels are not.
"""
import numpy as np

from .errors import ConfigError, DataError, ShapeError
from .ops.core import primitive
from .ops.linear import ones


def _match_target(pred, target, name):
    target = np.asarray(target)
    if target.shape == pred.shape:
        return target
    # (batch,) targets for a (batch, 1) prediction are unambiguous
    if target.size == pred.size and len(target) == len(pred):
        return target.reshape(pred.shape)
    raise ShapeError(f"{name}: prediction has shape {pred.shape} but target has shape {target.shape}")


@primitive
def mean_squared_error(pred, target):
    """mean((pred - target)^2) over every element."""
    diff = pred - _match_target(pred, target, "mean_squared_error")

    def backward(g, needed):
        # d mean(d^2)/d pred = 2 d / N = -d mean(d^2)/d target
        dpred = g * (2.0 / diff.size) * diff
        return dpred, (-dpred if needed[1] else None)

    return np.mean(diff * diff), backward


def _class_targets(logits, labels):
    """One-hot/probability targets, or integer labels checked against the class count."""
    labels = np.asarray(labels)
    if labels.shape == logits.shape and labels.dtype.kind == "f":
        return labels
    if labels.shape != logits.shape[:-1]:
        raise ShapeError(f"softmax_cross_entropy: logits have shape {logits.shape}; targets must be "
                         f"integer labels of shape {logits.shape[:-1]} or one-hot of shape "
                         f"{logits.shape}, got {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise DataError(f"softmax_cross_entropy: integer class labels expected, got dtype {labels.dtype}")
    n_classes = logits.shape[-1]
    bad = (labels < 0) | (labels >= n_classes)
    if bad.any():
        raise DataError(f"softmax_cross_entropy: class label {labels[bad].flat[0]} is out of range "
                        f"for {n_classes} classes (0..{n_classes - 1})")
    return labels


@primitive
def softmax_cross_entropy(logits, target, *, label_smoothing=0.0):
    """Cross-entropy of softmax(logits) against integer labels or one-hot/probability rows.

    logits: (..., classes); target: (...) ints or (..., classes) floats.
    Computed as logsumexp(z) - z_label, never log(softmax) with clipping.
    ``label_smoothing`` ε trains against (1 - ε) target + ε / classes, which keeps
    the logits from growing without bound on separable data.
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ConfigError(f"softmax_cross_entropy: label_smoothing must be in [0, 1), got {label_smoothing}")
    target = _class_targets(logits, target)
    n_classes = logits.shape[-1]
    z = logits.reshape(-1, n_classes)
    count = len(z)
    shifted = z - z.max(axis=1, keepdims=True)          # log softmax = shifted - lse
    exps = np.exp(shifted)
    sums = exps @ ones(n_classes, exps.dtype)            # row sums, one BLAS call
    lse = np.log(sums)
    one_hot = target.shape == logits.shape
    keep, spread = 1.0 - label_smoothing, label_smoothing / n_classes
    if one_hot:      # -sum t log p = sum_rows (sum t) lse - sum t shifted
        t2 = target.reshape(count, n_classes)
        loss = keep * (t2.sum(axis=1) @ lse - np.sum(t2 * shifted))
    else:            # the label's entry of each row, by its flat index
        at_label = np.arange(0, count * n_classes, n_classes) + target.ravel()
        loss = keep * (lse.sum() - shifted.take(at_label).sum())
    if label_smoothing:
        loss += spread * (n_classes * lse.sum() - shifted.sum())
    loss /= count

    def backward(g, needed):
        # d/dz [lse(z) - <t', z>] = softmax(z) - t',  t' = keep t + spread (rows of t sum to 1);
        # d/dt = -keep log softmax(z) (probability targets only)
        grad = exps / sums[:, None]
        if one_hot:
            grad -= keep * t2
        else:
            grad.ravel()[at_label] -= keep
        if label_smoothing:
            grad -= spread
        grad *= g / count
        dtarget = None
        if one_hot and needed[1]:
            dtarget = (-keep * (g / count) * (shifted - lse[:, None])).reshape(logits.shape)
        return grad.reshape(logits.shape), dtarget

    return np.asarray(loss, dtype=logits.dtype), backward


@primitive
def binary_cross_entropy(logits, target):
    """Mean binary cross-entropy of sigmoid(logits) against targets in [0, 1].

    Uses -[t log σ(z) + (1-t) log(1-σ(z))] = max(z,0) - t z + log(1 + e^-|z|).
    """
    target = _match_target(logits, target, "binary_cross_entropy")
    if np.any((target < 0) | (target > 1)):
        raise DataError("binary_cross_entropy: targets must lie in [0, 1]")
    loss = np.maximum(logits, 0) - target * logits + np.log1p(np.exp(-np.abs(logits)))

    def backward(g, needed):
        # d/dz = σ(z) - t,  d/dt = -z
        dz = g * ((0.5 + 0.5 * np.tanh(0.5 * logits)) - target) / loss.size
        return dz, (-g * logits / loss.size if needed[1] else None)

    return np.mean(loss), backward


_REGISTRY = {
    "mse": mean_squared_error,
    "mean_squared_error": mean_squared_error,
    "softmax_cross_entropy": softmax_cross_entropy,
    "binary_cross_entropy": binary_cross_entropy,
}


def get(loss):
    """A loss primitive from its name, or the primitive itself."""
    if isinstance(loss, str):
        if loss not in _REGISTRY:
            raise ConfigError(f"unknown loss {loss!r}; choose one of {', '.join(sorted(_REGISTRY))}")
        return _REGISTRY[loss]
    return loss
