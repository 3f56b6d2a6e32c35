"""Mini-batches along the leading axis.

    for xb, yb in batches(X, y, 32, key=fold_in(k, epoch)):
        ...

Without a key the batches come in order and are views (slices) of the inputs.
With a key, ``generator(key).permutation(n)`` fixes the order: the same key
gives the same batches, and each batch is one fancy-index per array. The last
batch keeps the remainder, so it may be smaller than ``batch_size``. ``y`` may
be None (then every ``yb`` is None), 1-D labels or any (n, ...) array.
"""
import numpy as np

from ..errors import ConfigError, DataError
from ..random import generator
from .preprocessing import check_same_length


def num_batches(n, batch_size):
    """How many batches ``batches`` yields for ``n`` samples: ``ceil(n / batch_size)``."""
    _check_batch_size(batch_size)
    return -(-int(n) // batch_size)


def batches(X, y, batch_size, key=None):
    """An iterator of ``(xb, yb)``: ``xb`` of shape (b, ...) with b <= batch_size.

    Args:
      X: array (n, ...).
      y: array (n, ...) or None.
      batch_size: positive int.
      key: a ``purenet.random`` key to shuffle with, or None for the stored order.

    Settings and lengths are checked when called, before the first batch.
    """
    X, y = np.asarray(X), None if y is None else np.asarray(y)
    _check_batch_size(batch_size)
    if X.ndim == 0 or len(X) == 0:
        raise DataError("cannot batch an empty data set")
    check_same_length(X, y)
    if key is None:
        return _in_order(X, y, batch_size)
    return _shuffled(X, y, batch_size, generator(key).permutation(len(X)))


def _in_order(X, y, batch_size):
    for start in range(0, len(X), batch_size):
        stop = start + batch_size
        yield X[start:stop], None if y is None else y[start:stop]


def _shuffled(X, y, batch_size, perm):
    for start in range(0, len(X), batch_size):
        idx = perm[start:start + batch_size]
        yield X[idx], None if y is None else y[idx]


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
