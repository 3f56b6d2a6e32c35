"""Callbacks: code that ``fit`` calls at Keras-named points of training.

    on_train_begin(run)
    on_epoch_begin(epoch, run)
    on_batch_end(batch, logs, run)     # logs: {"batch", "size", "loss"}
    on_epoch_end(epoch, logs, run)     # logs: {"epoch", "loss", "val_loss", ...}
    on_train_end(run)

``epoch`` and ``batch`` are 0-based, as in Keras; every message a callback
prints counts from 1. ``run`` is the record of one fit (``Run``): the model
and optimizer, ``params``, ``state`` and ``opt_state`` as of the last
completed epoch (the step loop keeps its own until the epoch ends), the
``history`` so far, ``in_shape`` (one example's shape), ``log(message)`` to
print a line under the epoch's summary, and ``stop(reason)``.

Order: callbacks run in the order given, then the ones ``fit`` adds:
``TerminateOnNaN`` (unless one was given) and, always last, the
``BackupAndRestore`` (see ``checkpoint.py``), so that it restores the others'
states after their ``on_train_begin`` and saves what they did in an epoch.
``on_epoch_end`` may add entries to ``logs`` (a custom validation, say): the
callbacks after it, the history and the summary line all see them.

Stopping: ``run.stop(reason)`` (or Keras's ``run.stop_training = True``).
From ``on_epoch_end``, training ends after that epoch. From ``on_batch_end``,
the epoch under way is dropped at once (not validated, logged or backed up)
and ``fit`` returns ``run.params``: the last completed epoch's, unless the
callback put others there (``TerminateOnNaN`` does).

State: a callback that keeps state across epochs returns it from
``get_state()`` (a dict of JSON-able values and trees of arrays) and takes it
back in ``set_state(state)``; checkpoints store it, so a resumed run behaves
exactly as an uninterrupted one. ``on_batch_end`` is only called for callbacks
that define it, so the step loop pays nothing for the others.

Every callback that watches a logged number (``EarlyStopping``,
``ModelCheckpoint``, ``ReduceLROnPlateau``, ``TerminateOnNaN``,
``BackupAndRestore``) decides "better" with one shared helper, ``Best``.
"""
import csv
import math
import os
import sys
import warnings
from io import StringIO

import numpy as np

from ..errors import ConfigError
from ..files import atomic_write
from ..optim import lr_scale, with_lr_scale
from ..tree import tree_copy, tree_leaves
from .history import merged_keys

HOOKS = ("on_train_begin", "on_epoch_begin", "on_batch_end", "on_epoch_end", "on_train_end")


class Run:
    """The mutable record callbacks receive; see the module docstring."""

    __slots__ = ("model", "optimizer", "params", "state", "opt_state", "epoch", "history",
                 "in_shape", "seed", "fingerprint", "callbacks", "stop_reason", "_stop", "_log",
                 "writes")

    def __init__(self, model, params, state, opt_state, history, epoch=0, *, optimizer=None,
                 in_shape=None, seed=0, fingerprint=None, callbacks=(), log=None, writes=True):
        self.model, self.params, self.state, self.opt_state = model, params, state, opt_state
        self.history, self.epoch, self.optimizer = history, epoch, optimizer
        self.in_shape, self.seed, self.fingerprint = in_shape, seed, fingerprint or {}
        self.callbacks, self._log = tuple(callbacks), log
        self.stop_reason, self._stop = None, False
        self.writes = writes          # False on the ranks of a distributed run but the first

    @property
    def stop_training(self):
        """True once something asked training to end (Keras's flag; may be set)."""
        return self._stop

    @stop_training.setter
    def stop_training(self, value):
        self._stop = bool(value)
        if not self._stop:
            self.stop_reason = None
        elif self.stop_reason is None:
            self.stop_reason = f"stopped by a callback in epoch {self.epoch + 1}"

    def stop(self, reason):
        """Ask ``fit`` to end (see the module docstring), saying why."""
        self._stop, self.stop_reason = True, reason

    def log(self, message):
        """Print a line for the user (after the current epoch's summary line)."""
        (self._log or print)(message)


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


def arrange(callbacks, added=()):
    """The callbacks ``fit`` runs (see the module docstring): ``callbacks`` (checked),
    then ``added``, then a ``TerminateOnNaN`` unless one is there; the one callback
    whose class says ``runs_last`` (``BackupAndRestore``) moved to the end."""
    if callable(getattr(callbacks, "on_epoch_end", None)):
        raise ConfigError("callbacks must be a list of callbacks, e.g. [EarlyStopping()]")
    callbacks = list(callbacks)
    for cb in callbacks:
        if not all(callable(getattr(cb, hook, None)) for hook in HOOKS):
            raise ConfigError(f"{cb!r} is not a callback: subclass purenet.train.Callback "
                              "or use LambdaCallback")
    callbacks += added
    if not any(isinstance(cb, TerminateOnNaN) for cb in callbacks):
        callbacks.append(TerminateOnNaN())
    last = [cb for cb in callbacks if getattr(cb, "runs_last", False)]
    if len(last) > 1:
        raise ConfigError(f"one {type(last[0]).__name__} at most (checkpoint_dir and "
                          "resume_from make one)")
    return tuple(cb for cb in callbacks if cb not in last) + tuple(last)


def defines(callback, hook):
    """True when ``callback`` does something at ``hook`` (the base class does nothing)."""
    if hook in vars(callback):
        return True
    return getattr(type(callback), hook, None) is not getattr(Callback, hook)


def warn(message):
    """A RuntimeWarning shown every time it happens (Python's default filter shows a
    given warning once per place), attributed to the first caller outside purenet."""
    frame = sys._getframe(1)
    while frame.f_back is not None and _in_purenet(frame):
        frame = frame.f_back
    warnings.warn_explicit(message, RuntimeWarning, frame.f_code.co_filename, frame.f_lineno,
                           module=frame.f_globals.get("__name__"), registry=None)


def _in_purenet(frame):
    return frame.f_globals.get("__name__", "").split(".")[0] == "purenet"


def all_finite(tree):
    return all(np.all(np.isfinite(a)) for a in tree_leaves(tree)
               if np.asarray(a).dtype.kind in "fc")


# --- the best value so far ----------------------------------------------------------

def auto_mode(monitor):
    """``"max"`` for accuracies and r2, ``"min"`` for everything else."""
    return "max" if monitor.split("_")[-1] in ("acc", "accuracy", "r2") else "min"


class Best:
    """The best value of one logged number so far, shared by every callback that
    watches one so they all agree on what "better" means.

    ``mode`` is ``"min"``, ``"max"`` or ``"auto"`` (``auto_mode``). A value improves
    on the best when it is finite and lower (``"min"``) or higher (``"max"``) by
    more than ``min_delta``; the first finite value always does. ``value`` and
    ``epoch`` (0-based) are the best so far, None before the first.
    """

    def __init__(self, monitor="val_loss", mode="auto", min_delta=0.0, owner="Best"):
        if mode not in ("auto", "min", "max"):
            raise ConfigError(f"{owner}: mode must be 'auto', 'min' or 'max', got {mode!r}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)) \
                or not 0 <= min_delta < math.inf:
            raise ConfigError(f"{owner}: min_delta must be a number >= 0, got {min_delta!r}")
        self.monitor, self.min_delta = monitor, float(min_delta)
        self.mode = auto_mode(monitor) if mode == "auto" else mode
        self.value = self.epoch = None

    def improves(self, value):
        if not math.isfinite(value):
            return False
        if self.value is None:
            return True
        if self.mode == "min":
            return value < self.value - self.min_delta
        return value > self.value + self.min_delta

    def update(self, logs, epoch):
        """None when ``logs`` lacks the monitored key; else whether its value improved
        on the best (then it becomes the best)."""
        value = logs.get(self.monitor)
        if value is None:
            return None
        if not self.improves(float(value)):
            return False
        self.value, self.epoch = float(value), epoch
        return True

    def describe(self):
        """``"0.1234 at epoch 5"`` (1-based), or ``"none"``."""
        return "none" if self.value is None else f"{self.value:.4g} at epoch {self.epoch + 1}"

    def get_state(self):
        return {"value": self.value, "epoch": self.epoch}

    def set_state(self, state):
        self.value, self.epoch = state.get("value"), state.get("epoch")


class _Watching(Callback):
    """A callback watching ``monitor``: warns at the end if it was never logged."""

    def _start_watching(self, best):
        self.tracker, self._keys_seen = best, None

    def _observe(self, logs, epoch):
        improved = self.tracker.update(logs, epoch)
        if improved is None:
            self._keys_seen = sorted(logs)
        return improved

    def _warn_if_unseen(self):
        if self.tracker.value is None and self._keys_seen is not None:
            warn(f"{type(self).__name__}: {self.tracker.monitor!r} was never logged (logs have "
                 f"{self._keys_seen}); give fit validation data")


# --- the built-in callbacks --------------------------------------------------------

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


def _count(owner, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ConfigError(f"{owner}: {name} must be a whole number >= 0, got {value!r}")
    return int(value)


class EarlyStopping(_Watching):
    """Stop when ``monitor`` has not improved for ``patience`` evaluations (Keras's rule:
    ``patience`` 0 and 1 both stop at the first evaluation without improvement).

    "Improved" is ``Best``'s rule with ``mode`` and ``min_delta``. Epochs that did
    not log ``monitor`` (no validation that epoch) are skipped, so patience counts
    evaluations. With ``restore_best_weights=True`` the params and state that
    produced the best value are given back when training ends (whether it stopped
    early or not), so the caller never keeps an over-trained model. It prints when
    it stops and which epoch's params it restored.
    """

    def __init__(self, monitor="val_loss", patience=0, min_delta=0.0, mode="auto",
                 restore_best_weights=False):
        self.patience = _count("EarlyStopping", "patience", patience)
        self.restore_best_weights = restore_best_weights
        self._settings = (monitor, mode, min_delta)
        self._reset()

    def _reset(self):
        self._start_watching(Best(*self._settings, owner="EarlyStopping"))
        self.wait, self.best_params, self.best_state = 0, None, None

    monitor = property(lambda self: self.tracker.monitor)
    mode = property(lambda self: self.tracker.mode)
    min_delta = property(lambda self: self.tracker.min_delta)
    best = property(lambda self: self.tracker.value)
    best_epoch = property(lambda self: self.tracker.epoch)

    def on_train_begin(self, run):
        self._reset()

    def on_epoch_end(self, epoch, logs, run):
        improved = self._observe(logs, epoch)
        if improved is None:
            return
        if improved:
            self.wait = 0
            if self.restore_best_weights:
                self.best_params, self.best_state = tree_copy(run.params), tree_copy(run.state)
            return
        self.wait += 1
        if self.wait >= max(self.patience, 1):
            reason = (f"early stopping: {self.monitor} did not improve by more than "
                      f"{self.min_delta:g} for {self.wait} evaluation(s) "
                      f"(best {self.tracker.describe()})")
            run.stop(reason)
            run.log(f"epoch {epoch + 1}: {reason}")

    def on_train_end(self, run):
        self._warn_if_unseen()
        if self.restore_best_weights and self.best_params is not None:
            run.params, run.state = self.best_params, self.best_state
            run.log(f"EarlyStopping: restored the params of epoch {self.best_epoch + 1}, "
                    f"the best ({self.monitor} {self.best:.4g})")

    def get_state(self):
        return {**self.tracker.get_state(), "wait": self.wait,
                "best_params": self.best_params, "best_state": self.best_state}

    def set_state(self, state):
        self.tracker.set_state(state)
        self.wait = int(state.get("wait", 0))
        self.best_params, self.best_state = state.get("best_params"), state.get("best_state")


class ModelCheckpoint(_Watching):
    """Save the model with ``purenet.io.save_model`` after every epoch, or, with
    ``save_best_only``, after each epoch whose ``monitor`` improves (``Best``'s rule).

    ``filepath`` may name the epoch and any logged number, formatted as in Keras:
    ``"model-{epoch:03d}.npz"`` (1-based epoch), ``"m-{val_loss:.3f}.npz"``. The
    file's input shape is ``run.in_shape`` (one example of the training data).
    ``verbose=1`` prints a line for each save.
    """

    def __init__(self, filepath, monitor="val_loss", save_best_only=False, mode="auto",
                 verbose=0):
        self.filepath, self.save_best_only = os.fspath(filepath), bool(save_best_only)
        self.verbose, self._settings = verbose, (monitor, mode)
        self._start_watching(Best(monitor, mode, owner="ModelCheckpoint"))

    def on_train_begin(self, run):
        from ..io import layer_to_config
        layer_to_config(run.model)          # a model that cannot be saved fails now
        self._start_watching(Best(*self._settings, owner="ModelCheckpoint"))

    def on_epoch_end(self, epoch, logs, run):
        if self.save_best_only and not self._observe(logs, epoch):
            return
        if not run.writes:
            return
        from ..io import save_model
        path = self._path(epoch, logs)
        save_model(path, run.model, run.params, run.state, in_shape=run.in_shape)
        if self.verbose:
            run.log(f"epoch {epoch + 1}: saved the model to {path}")

    def _path(self, epoch, logs):
        try:
            return self.filepath.format(**{**logs, "epoch": epoch + 1})
        except KeyError as err:
            raise ConfigError(f"ModelCheckpoint: filepath {self.filepath!r} names {err}, which "
                              f"epoch {epoch + 1} did not log (it logged {sorted(logs)})") from None

    def on_train_end(self, run):
        if self.save_best_only:
            self._warn_if_unseen()

    def get_state(self):
        return self.tracker.get_state()

    def set_state(self, state):
        self.tracker.set_state(state)


class TerminateOnNaN(Callback):
    """Stop at the first batch whose training loss is NaN or inf, keeping finite params.

    The params (and state) left in ``run`` are, of those that are finite: the best
    ``val_loss`` epoch's, else the last completed epoch's, else the initial ones;
    never NaN ones. It sets ``history.diverged``, a ``stop_reason`` starting "non-finite
    training loss", and warns (a RuntimeWarning shown every time, after the progress
    bar is gone). ``fit`` adds one unless ``callbacks`` holds one.
    """

    def __init__(self):
        self._reset(None)

    def _reset(self, initial):
        self.best, self.best_trees = Best("val_loss", "min", owner="TerminateOnNaN"), None
        self.initial, self.reason = initial, None

    def on_train_begin(self, run):
        self._reset((run.params, run.state))

    def on_epoch_end(self, epoch, logs, run):
        # updates never modify arrays in place, so references are snapshots
        if self.best.update(logs, epoch):
            self.best_trees = (run.params, run.state)

    def on_batch_end(self, batch, logs, run):
        value = logs["loss"]
        if math.isfinite(value):
            return
        best = f"best-validation (epoch {self.best.epoch + 1})" if self.best_trees else None
        candidates = [(best, self.best_trees), ("last completed epoch's", (run.params, run.state)),
                      ("initial", self.initial)]
        which, trees = next(((w, t) for w, t in candidates if t is not None and all_finite(t[0])),
                            candidates[-1])
        run.params, run.state = trees
        run.history.diverged = True
        self.reason = (f"non-finite training loss ({value}) at epoch {run.epoch + 1}, batch "
                       f"{batch + 1}: training stopped; returning the {which} params")
        run.stop(self.reason)

    def on_train_end(self, run):
        if self.reason:
            warn(self.reason)

    def get_state(self):
        params, state = self.best_trees or (None, None)
        return {**self.best.get_state(), "params": params, "state": state}

    def set_state(self, state):
        self.best.set_state(state)
        if state.get("params") is not None:
            self.best_trees = (state["params"], state["state"])


class ReduceLROnPlateau(_Watching):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved for
    ``patience`` evaluations (Keras's rule, with ``Best`` deciding "improved" by
    ``mode`` and ``min_delta``), then wait ``cooldown`` evaluations before counting
    again. The rate never goes below ``min_lr`` by this callback's doing.

    The change is made in the optimizer state's ``lr_scale`` (see
    ``purenet.optim``), so it also applies to a schedule (the scale multiplies
    whatever the schedule gives; ``min_lr`` is checked against the rate at the time
    of the cut) and a checkpoint keeps it: a resumed run goes on at the reduced
    rate. Every cut is printed.
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0):
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor < 1:
            raise ConfigError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor!r}")
        if isinstance(min_lr, bool) or not isinstance(min_lr, (int, float)) \
                or not 0 <= min_lr < math.inf:
            raise ConfigError(f"ReduceLROnPlateau: min_lr must be a number >= 0, got {min_lr!r}")
        self.factor, self.min_lr = float(factor), float(min_lr)
        self.patience = _count("ReduceLROnPlateau", "patience", patience)
        self.cooldown = _count("ReduceLROnPlateau", "cooldown", cooldown)
        self._settings = (monitor, mode, min_delta)
        self._reset()

    def _reset(self):
        self._start_watching(Best(*self._settings, owner="ReduceLROnPlateau"))
        self.wait = self.cooldown_counter = 0

    def on_train_begin(self, run):
        if lr_scale(run.opt_state) is None:
            raise ConfigError("ReduceLROnPlateau: the optimizer state has no lr_scale; use an "
                              "optimizer from purenet.optim (its rate comes from "
                              "scale_by_learning_rate)")
        self._reset()

    def on_epoch_end(self, epoch, logs, run):
        improved = self._observe(logs, epoch)
        if improved is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if improved:
            self.wait = 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience:
                self._reduce(epoch, run)
                self.cooldown_counter, self.wait = self.cooldown, 0

    def _reduce(self, epoch, run):
        scale = lr_scale(run.opt_state)
        read = getattr(run.optimizer, "learning_rate", None)
        rate = read(run.opt_state) if read is not None else None
        if rate is None:
            new_scale = scale * self.factor
            change = f"scale {scale:.4g} -> {new_scale:.4g}"
        elif rate <= self.min_lr:
            return
        else:
            new_rate = max(rate * self.factor, self.min_lr)
            new_scale, change = scale * new_rate / rate, f"{rate:.4g} -> {new_rate:.4g}"
        run.opt_state = with_lr_scale(run.opt_state, new_scale)
        run.log(f"epoch {epoch + 1}: ReduceLROnPlateau: {self.tracker.monitor} did not improve "
                f"for {self.wait} evaluation(s); learning rate {change}")

    def on_train_end(self, run):
        self._warn_if_unseen()

    def get_state(self):
        return {**self.tracker.get_state(), "wait": self.wait, "cooldown": self.cooldown_counter}

    def set_state(self, state):
        self.tracker.set_state(state)
        self.wait, self.cooldown_counter = int(state.get("wait", 0)), int(state.get("cooldown", 0))


class CSVLogger(Callback):
    """Write the history to a CSV file after every epoch: one row per epoch, an
    ``epoch`` column (0-based, as Keras writes it) and then every logged key.

    ``append=False``: the file holds the run's history (a resumed run's includes
    the epochs before the resume). ``append=True``: the rows already in the file
    are kept, and this fit's epochs follow them. The file is rewritten atomically
    each epoch, so columns that first appear later (validation keys) are included.
    """

    def __init__(self, filename, separator=",", append=False):
        self.filename, self.separator, self.append = os.fspath(filename), separator, append
        self._kept, self._first = [], None

    def on_train_begin(self, run):
        self._first, self._kept = None, []
        if self.append and os.path.isfile(self.filename):
            with open(self.filename, newline="") as f:
                self._kept = list(csv.DictReader(f, delimiter=self.separator))

    def on_epoch_end(self, epoch, logs, run):
        if self._first is None:
            self._first = len(run.history) - 1
        if not run.writes:
            return
        rows = self._kept + run.history.logs[self._first:] if self.append else run.history.logs
        text = rows_to_csv(rows, self.separator)
        atomic_write(self.filename, lambda f: f.write(text.encode()))


def rows_to_csv(rows, separator=","):
    """CSV text of dict rows: an ``epoch`` column, then every key (``merged_keys``)."""
    columns = ["epoch"] + [k for k in merged_keys(rows) if k != "epoch"]
    out = StringIO()
    writer = csv.writer(out, delimiter=separator, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
    return out.getvalue()


def history_to_csv(history, separator=","):
    """The history as CSV text (see ``CSVLogger``)."""
    return rows_to_csv(history.logs, separator)
