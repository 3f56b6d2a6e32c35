"""Mini-batches along the leading axis, and the two kinds of batch source ``fit`` reads.

    for xb, yb in batches(X, y, 32, key=fold_in(k, epoch)):
        ...

Without a key the batches come in order and are views (slices) of the inputs.
With a key, ``generator(key).permutation(n)`` fixes the order: the same key
gives the same batches, and each batch is one fancy-index per array. The last
batch keeps the remainder, so it may be smaller than ``batch_size``, but never
a single example when ``batch_size > 1``: batch norm's statistics of one example
are meaningless, so a lone last example joins the batch before it (which then
holds ``batch_size + 1``). No example is dropped. ``y`` may be None (then every
``yb`` is None), 1-D labels or any (n, ...) array.

``ArrayBatches`` and ``StreamBatches`` give ``fit`` each epoch's batches from
arrays or from a stream of ``(x_batch, y_batch)`` pairs (see ``StreamBatches``);
``training_data`` checks fit's data arguments and builds the right one.
"""
import itertools

import numpy as np

from ..errors import ConfigError, DataError
from ..random import generator
from .preprocessing import check_same_length, validation_split
from .validate import as_numeric_array, check_finite


def num_batches(n, batch_size):
    """How many batches ``batches`` yields for ``n`` samples: ``ceil(n / batch_size)``,
    less one when a single example is left over (it joins the batch before)."""
    _check_batch_size(batch_size)
    return len(_starts(int(n), batch_size))


def _starts(n, batch_size):
    """The first index of each batch; a lone last example stays in the batch before."""
    starts = list(range(0, n, batch_size))
    if batch_size > 1 and len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return starts


def batches(X, y, batch_size, key=None):
    """An iterator of ``(xb, yb)``: ``xb`` of shape (b, ...), b <= batch_size (or
    batch_size + 1 for the last, see the module docstring).

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
    n = len(X)
    bounds = list(zip(_starts(n, batch_size), _starts(n, batch_size)[1:] + [n]))
    if key is None:
        return _in_order(X, y, bounds)
    return _shuffled(X, y, bounds, generator(key).permutation(n))


def _in_order(X, y, bounds):
    for start, stop in bounds:
        yield X[start:stop], None if y is None else y[start:stop]


def _shuffled(X, y, bounds, perm):
    for start, stop in bounds:
        idx = perm[start:stop]
        yield X[idx], None if y is None else y[idx]


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")


# --- batch sources for fit -------------------------------------------------------------

class ArrayBatches:
    """Each epoch's batches of the arrays ``(x, y)``: reshuffled by the epoch's key, or
    in order with ``shuffle=False``. ``total`` counts examples per epoch."""
    unit = "examples"

    def __init__(self, x, y, batch_size, shuffle=True):
        _check_batch_size(batch_size)
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, bool(shuffle)
        self.total, self.example_shape = len(x), x.shape[1:]

    def epoch(self, epoch, key):
        return batches(self.x, self.y, self.batch_size, key if self.shuffle else None)


class StreamBatches:
    """Each epoch's batches from a stream of ``(x_batch, y_batch)`` pairs.

    ``stream`` is an iterable of pairs (a generator, a list, a data loader) or a
    function ``epoch -> iterable of pairs`` (epoch 0-based).

    * A function gives each epoch its own batches (the first ``steps_per_epoch``
      of them, when given); a run resumed at epoch ``e`` just calls it with ``e``.
    * An iterable with ``steps_per_epoch`` is read as one stream over the whole
      run, ``steps_per_epoch`` batches an epoch (Keras's rule); a run that starts
      at epoch ``e`` (resumed) first skips the ``e * steps_per_epoch`` batches the
      earlier epochs used, so a stream that replays the same batches (one derived
      from a seed) resumes exactly.
    * An iterable without ``steps_per_epoch`` is iterated afresh each epoch, to its
      end (a generator is used up after one epoch).

    The first batch is read once before training (``first``) to learn the shape of
    an example. Float batches are cast to ``dtype``. ``total`` is
    ``steps_per_epoch`` (None when unknown) and counts steps.
    """
    unit = "steps"

    def __init__(self, stream, steps_per_epoch=None, dtype=None):
        if not callable(stream) and not hasattr(stream, "__iter__"):
            raise DataError(f"x must be arrays, an iterable of (x_batch, y_batch) pairs or a "
                            f"function epoch -> such an iterable; got {type(stream).__name__}")
        self.stream, self.total, self.dtype = stream, steps_per_epoch, dtype
        self._shared, self._pending = None, None
        source = stream(0) if callable(stream) else stream
        it = iter(source)
        first = next(it, None)
        if first is None:
            raise DataError("x yields no batches")
        if it is source and not callable(stream):       # a one-shot iterator: keep its head
            self._pending = itertools.chain([first], it)
        self.first = self._pair(first, 0, 0)
        self.example_shape = self.first[0].shape[1:]

    def _pair(self, item, epoch, step):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise DataError(f"x: batch {step + 1} of epoch {epoch + 1} is a "
                            f"{type(item).__name__}, not an (x_batch, y_batch) pair")
        where = f"x: batch {step + 1} of epoch {epoch + 1}"
        xb, yb = np.asarray(item[0]), np.asarray(item[1])
        if xb.ndim == 0 or yb.ndim == 0:
            raise DataError(f"{where} is not a pair of arrays (x_batch, y_batch) but "
                            f"{item!r:.60}; with y=None, x must be a stream of batches")
        if len(xb) == 0:
            raise DataError(f"{where} has no examples")
        check_same_length(xb, yb, (f"x batch {step + 1}", "its y batch"))
        check_finite(xb, f"{where} (inputs)")
        check_finite(yb, f"{where} (targets)")
        if self.dtype is not None and xb.dtype.kind == "f" and xb.dtype != self.dtype:
            xb = xb.astype(self.dtype)
        if self.dtype is not None and yb.dtype.kind == "f" and yb.dtype != self.dtype:
            yb = yb.astype(self.dtype)
        return xb, yb

    def _fresh(self):
        pending, self._pending = self._pending, None
        return pending if pending is not None else iter(self.stream)

    def epoch(self, epoch, key=None):
        if callable(self.stream):
            items = iter(self.stream(epoch))
            if self.total is not None:
                items = itertools.islice(items, self.total)
        elif self.total is None:
            items = self._fresh()
        else:
            if self._shared is None:
                self._shared = self._fresh()
                for _ in itertools.islice(self._shared, epoch * self.total):
                    pass
            items = itertools.islice(self._shared, self.total)
        return (self._pair(item, epoch, step) for step, item in enumerate(items))


def training_data(x, y, validation_data=None, fraction=0.0, batch_size=32, steps_per_epoch=None,
                  shuffle=True, seed=0, dtype=np.float32):
    """``fit``'s data, checked: ``(batch source, (x_val, y_val) or None, arrays)``, with
    ``arrays`` the ``{name: array}`` that identify the data (for checkpoints).

    ``y=None`` with an ``x`` that is not an array means a stream (``StreamBatches``);
    else ``x`` and ``y`` must be arrays of finite numbers of one length
    (``as_numeric_array``), float ones cast to ``dtype``, and ``fraction`` of them
    may be held out for validation, chosen by ``seed``.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) \
            or not 0.0 <= fraction < 1.0:
        raise ConfigError(f"validation_split must be a number in [0, 1), got {fraction!r}")
    if not isinstance(shuffle, (bool, np.bool_)):
        raise ConfigError(f"shuffle must be True or False, got {shuffle!r}")
    if steps_per_epoch is not None and (isinstance(steps_per_epoch, bool) or not isinstance(
            steps_per_epoch, (int, np.integer)) or steps_per_epoch < 1):
        raise ConfigError(f"steps_per_epoch must be a positive integer, got {steps_per_epoch!r}")
    val = None
    if validation_data is not None:
        if fraction:
            raise ConfigError("give validation_data or validation_split, not both")
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ConfigError("validation_data must be a pair (x_val, y_val)")
        val = _numeric_pair(*validation_data, ("validation x", "validation y"), dtype)
    if y is None and not isinstance(x, np.ndarray):
        if fraction:
            raise ConfigError("validation_split needs arrays; with a stream of batches give "
                              "validation_data")
        source = StreamBatches(x, steps_per_epoch, dtype)
        arrays = {"first x batch": source.first[0], "first y batch": source.first[1]}
    else:
        if y is None:
            raise DataError("y is None: give targets, or pass x as a stream of "
                            "(x_batch, y_batch) pairs with y=None")
        if steps_per_epoch is not None:
            raise ConfigError("steps_per_epoch is for a stream of batches; arrays make "
                              "ceil(n / batch_size) steps")
        x, y = _numeric_pair(x, y, ("x", "y"), dtype)
        if fraction:
            (x, y), val = validation_split(x, y, fraction, seed)
        source = ArrayBatches(x, y, batch_size, shuffle)
        arrays = {"x": x, "y": y}
    if val is not None:
        arrays.update({"validation x": val[0], "validation y": val[1]})
    return source, val, arrays


def _numeric_pair(x, y, names, dtype):
    x, y = as_numeric_array(x, names[0]), as_numeric_array(y, names[1])
    check_same_length(x, y, names)
    return tuple(a.astype(dtype) if a.dtype.kind == "f" and a.dtype != dtype else a
                 for a in (x, y))
