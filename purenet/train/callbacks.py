"""Callbacks: code that ``fit`` calls at Keras-named points of training.

    on_train_begin(run)
    on_epoch_begin(epoch, run)
    on_batch_end(batch, logs, run)     # logs: {"batch", "size", "loss"}
    on_epoch_end(epoch, logs, run)     # logs: {"epoch", "loss", "val_loss", ...}
    on_train_end(run)

``epoch`` is 0-based. ``run`` is the small record of a fit (``Run``): the model,
``params``, ``state`` and ``opt_state`` as of the last completed epoch, the
``history`` so far and a ``stop_training`` flag (with ``stop_reason``) that a
callback sets (``run.stop(reason)``) to end training after the current epoch;
the flag is read at the end of each epoch, and ``on_batch_end`` sees the
params of the last completed epoch (the step loop keeps its own). A callback
may replace ``run.params``/``run.state`` (``EarlyStopping`` does so at the end).

A callback that keeps state across epochs returns it from ``get_state()`` (a
dict of JSON-able values and trees of arrays) and takes it back in
``set_state(state)``; checkpoints store it so a resumed run behaves exactly as
an uninterrupted one. ``on_batch_end`` is only called for callbacks that
define it, so the step loop pays nothing for the others.
"""
import csv
import math
import warnings
from io import StringIO

from ..errors import ConfigError
from ..files import atomic_write
from ..tree import tree_copy

HOOKS = ("on_train_begin", "on_epoch_begin", "on_batch_end", "on_epoch_end", "on_train_end")


class Run:
    """The mutable record callbacks receive; see the module docstring."""

    __slots__ = ("model", "params", "state", "opt_state", "epoch", "history",
                 "stop_training", "stop_reason")

    def __init__(self, model, params, state, opt_state, history, epoch=0):
        self.model, self.params, self.state, self.opt_state = model, params, state, opt_state
        self.history, self.epoch = history, epoch
        self.stop_training, self.stop_reason = False, None

    def stop(self, reason):
        """Ask ``fit`` to end after the current epoch, saying why."""
        self.stop_training, self.stop_reason = True, reason


class Callback:
    """Base class: every hook does nothing; override the ones you need."""

    def on_train_begin(self, run):
        pass

    def on_epoch_begin(self, epoch, run):
        pass

    def on_batch_end(self, batch, logs, run):
        pass

    def on_epoch_end(self, epoch, logs, run):
        pass

    def on_train_end(self, run):
        pass

    def get_state(self):
        """State to checkpoint: a dict of JSON-able values and trees of arrays."""
        return {}

    def set_state(self, state):
        """Take back what ``get_state`` returned (when resuming)."""


def defines(callback, hook):
    """True when ``callback`` does something at ``hook`` (the base class does nothing)."""
    if hook in vars(callback):
        return True
    return getattr(type(callback), hook, None) is not getattr(Callback, hook)


class LambdaCallback(Callback):
    """A callback from plain functions with the hooks' signatures.

        LambdaCallback(on_epoch_end=lambda epoch, logs, run: print(epoch, logs["loss"]))
    """

    def __init__(self, **hooks):
        unknown = set(hooks) - set(HOOKS)
        if unknown:
            raise ConfigError(f"LambdaCallback: unknown hook(s) {sorted(unknown)}; "
                              f"choose from {', '.join(HOOKS)}")
        for name, fn in hooks.items():
            if fn is not None:
                setattr(self, name, fn)


def _auto_mode(monitor):
    higher_is_better = ("acc", "accuracy", "r2")
    return "max" if monitor.split("_")[-1] in higher_is_better else "min"


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` evaluations (Keras's rule:
    ``patience`` 0 and 1 both stop at the first evaluation without improvement).

    An evaluation improves on the best so far when it is lower by more than
    ``min_delta`` (``mode="min"``) or higher by more than it (``"max"``);
    ``"auto"`` picks ``"max"`` for accuracy and r2, else ``"min"``. Epochs that
    did not log ``monitor`` (no evaluation that epoch) are skipped, so patience
    counts evaluations. With ``restore_best_weights=True`` the params and state
    that produced the best value are given back when training ends (whether it
    stopped early or not), so the caller never keeps an over-trained model.
    """

    def __init__(self, monitor="val_loss", patience=0, min_delta=0.0, mode="auto",
                 restore_best_weights=False):
        if mode not in ("auto", "min", "max"):
            raise ConfigError(f"EarlyStopping: mode must be 'auto', 'min' or 'max', got {mode!r}")
        if int(patience) < 0 or min_delta < 0:
            raise ConfigError("EarlyStopping: patience and min_delta must be non-negative")
        self.monitor, self.patience, self.min_delta = monitor, int(patience), float(min_delta)
        self.mode = _auto_mode(monitor) if mode == "auto" else mode
        self.restore_best_weights = restore_best_weights
        self._reset()

    def _reset(self):
        self.best, self.best_epoch, self.wait = None, None, 0
        self.best_params = self.best_state = None
        self._keys_seen = None

    def on_train_begin(self, run):
        self._reset()

    def _improves(self, value):
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs, run):
        value = logs.get(self.monitor)
        if value is None:
            self._keys_seen = sorted(logs)
            return
        if self._improves(float(value)):
            self.best, self.best_epoch, self.wait = float(value), epoch, 0
            if self.restore_best_weights:
                self.best_params, self.best_state = tree_copy(run.params), tree_copy(run.state)
            return
        self.wait += 1
        if self.wait >= max(self.patience, 1):
            run.stop(self._reason())

    def _reason(self):
        best = "none" if self.best is None else f"{self.best:.6g} at epoch {self.best_epoch}"
        return (f"early stopping: {self.monitor} did not improve by more than {self.min_delta} "
                f"for {self.wait} evaluation(s) (best {best})")

    def on_train_end(self, run):
        if self.best is None and self._keys_seen is not None:
            warnings.warn(f"EarlyStopping: {self.monitor!r} was never logged (logs have "
                          f"{self._keys_seen}); give fit validation data", RuntimeWarning)
        if self.restore_best_weights and self.best_params is not None:
            run.params, run.state = self.best_params, self.best_state

    def get_state(self):
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "best_params": self.best_params, "best_state": self.best_state}

    def set_state(self, state):
        self.best, self.best_epoch = state.get("best"), state.get("best_epoch")
        self.wait = int(state.get("wait", 0))
        self.best_params, self.best_state = state.get("best_params"), state.get("best_state")


class CSVLogger(Callback):
    """Write the history to a CSV file after every epoch (one row per epoch).

    The file is rewritten atomically from ``run.history``, so columns that first
    appear later (validation keys) are included and a resumed run continues it.
    """

    def __init__(self, path):
        self.path = path

    def on_epoch_end(self, epoch, logs, run):
        text = history_to_csv(run.history)
        atomic_write(self.path, lambda f: f.write(text.encode()))


def history_to_csv(history):
    """The history as CSV text: an ``epoch`` column, then every logged key."""
    columns = ["epoch"] + list(history.history)
    out = StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for entry in history.logs:
        writer.writerow(["" if entry.get(c) is None else entry[c] for c in columns])
    return out.getvalue()
