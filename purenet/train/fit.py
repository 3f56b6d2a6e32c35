"""``fit``: the training loop around the pure ``train_step``.

    result = fit(model, params, "mse", sgd(0.01, momentum=0.9), X, y,
                 epochs=20, batch_size=32, validation_split=0.2, metrics=["mae"],
                 callbacks=[EarlyStopping(patience=3, restore_best_weights=True)])
    result.params, result.history.history["val_loss"]

Contract:

* Randomness comes from ``seed`` alone. Epoch ``e`` uses the key
  ``fold_in(key(seed), e)``, split into a shuffling key and a dropout root;
  step ``s`` of the epoch gets ``fold_in(dropout_root, s)``. The random state
  of a run is therefore just ``(seed, epoch)``: the same seed gives
  bit-identical params, and a run resumed from a checkpoint ends exactly where
  an uninterrupted one would.
* Validation uses ``validation_data`` or a seeded ``validation_split`` of the
  training data (never anything else), every ``eval_every`` epochs and at the
  last epoch. Metrics are computed on the validation set.
* Each epoch logs ``epoch`` (0-based), ``loss`` (mean over the epoch's
  examples), ``val_loss`` and ``val_<metric>`` when evaluated, ``seconds``,
  and ``lr``, the learning rate of the epoch's first update, when the
  optimizer reports one (every built-in optimizer does).
* A NaN or inf training loss stops training with a ``RuntimeWarning`` and
  ``history.stop_reason``; the params returned are those of the best
  validation loss so far, else those of the last completed epoch (else the
  last finite ones, else the initial ones): never NaN.
* With ``checkpoint_dir``, ``last.npz`` is written after every epoch and
  ``best.npz`` whenever ``val_loss`` improves (format: ``checkpoint.py``).
  Ctrl-C ends training gracefully: the result holds the last completed
  epoch and its checkpoint is on disk. ``resume_from`` continues a run.
"""
import math
import os
import sys
import time
import warnings
from typing import NamedTuple

import numpy as np

from .. import losses as losses_module
from ..data import batches, check_finite, check_same_length
from ..data import validation_split as split_validation
from ..errors import ConfigError, DataError
from ..random import fold_in, key, split
from ..tree import tree_leaves
from . import checkpoint as ckpt_module
from .callbacks import HOOKS, Run, defines
from .evaluate import metric_fns, predict, score
from .history import History
from .progress import check_mode, progress_bar
from .step import train_step

EVAL_BATCH_SIZE = 1024


class FitResult(NamedTuple):
    """What ``fit`` returns: the trained trees and the per-epoch ``History``."""
    params: object
    state: object
    opt_state: object
    history: History


class _Setup(NamedTuple):
    """The fixed settings of one run, checked."""
    model: object
    loss: object
    optimizer: object
    x: np.ndarray
    y: np.ndarray
    val: tuple
    epochs: int
    batch_size: int
    seed: int
    eval_every: int
    metrics: dict
    callbacks: tuple
    progress: object
    checkpoint_dir: object
    settings: dict
    augment: object


# --- checks ---------------------------------------------------------------------

def _positive_int(name, value, least=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        kind = "positive" if least == 1 else "non-negative"
        raise ConfigError(f"{name} must be a {kind} integer, got {value!r}")
    return int(value)


def _fraction(value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) \
            or not 0.0 <= value < 1.0:
        raise ConfigError(f"validation_split must be a number in [0, 1), got {value!r}")
    return float(value)


def _check_loss(loss):
    loss = losses_module.get(loss)
    if not callable(loss):
        raise ConfigError(f"loss {loss!r} is not a function: give a loss name, a primitive, "
                          "or a function of primitives")
    return loss


def _check_optimizer(optimizer):
    if not (callable(getattr(optimizer, "init", None))
            and callable(getattr(optimizer, "update", None))):
        raise ConfigError(f"optimizer {optimizer!r} must have init and update "
                          "(e.g. purenet.optim.sgd(0.01))")


def _check_callbacks(callbacks):
    callbacks = tuple(callbacks)
    for cb in callbacks:
        if not all(callable(getattr(cb, hook, None)) for hook in HOOKS):
            raise ConfigError(f"{cb!r} is not a callback: subclass purenet.train.Callback "
                              "or use LambdaCallback")
    return callbacks


def _check_array(a, name, dtype):
    """``a`` as an array, checked, with floats cast to the params' float dtype."""
    if a is None:
        raise DataError(f"{name} is missing: fit needs inputs and targets")
    a = np.asarray(a)
    if a.ndim == 0 or len(a) == 0:
        raise DataError(f"{name} is empty: no examples along its leading axis")
    with np.errstate(over="ignore", invalid="ignore"):
        suspect = a.dtype.kind in "fc" and not np.isfinite(a.sum())
    if suspect:                  # a finite sum proves there is no NaN/inf; else look closer
        check_finite(a, name)
    return a.astype(dtype) if a.dtype.kind == "f" and a.dtype != dtype else a


def _check_pair(x, y, names, dtype):
    x, y = _check_array(x, names[0], dtype), _check_array(y, names[1], dtype)
    check_same_length(x, y, names)
    return x, y


def _float_dtype(params):
    """The params' floating dtype (float32 unless the model was built otherwise)."""
    floats = [np.asarray(a).dtype for a in tree_leaves(params) if np.asarray(a).dtype.kind == "f"]
    return floats[0] if floats else np.dtype(np.float32)


def _prepare_data(x, y, validation_data, fraction, seed, dtype):
    """Checked training arrays and the validation pair (or None)."""
    x, y = _check_pair(x, y, ("x", "y"), dtype)
    if validation_data is not None:
        if fraction:
            raise ConfigError("give validation_data or validation_split, not both")
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ConfigError("validation_data must be a pair (x_val, y_val)")
        return (x, y), _check_pair(*validation_data, ("validation x", "validation y"), dtype)
    if not fraction:
        return (x, y), None
    return split_validation(x, y, fraction, seed)


def _setup(model, loss, optimizer, x, y, seed, options):
    """Check every setting and the data, before any training."""
    epochs = _positive_int("epochs", options["epochs"])
    batch_size = _positive_int("batch_size", options["batch_size"])
    eval_every = _positive_int("eval_every", options["eval_every"])
    check_mode(options["progress"])
    loss, metrics = _check_loss(loss), metric_fns(options["metrics"])
    fraction = _fraction(options["validation_split"])
    train, val = _prepare_data(x, y, options["validation_data"], fraction, seed, options["dtype"])
    if metrics and val is None:
        warnings.warn("metrics are computed on validation data, and none was given: pass "
                      "validation_data or validation_split", RuntimeWarning, stacklevel=4)
    settings = {"batch_size": batch_size, "eval_every": eval_every, "validation_split": fraction}
    return _Setup(model, loss, optimizer, train[0], train[1], val, epochs,
                  batch_size, seed, eval_every, metrics,
                  _check_callbacks(options["callbacks"]), options["progress"],
                  options["checkpoint_dir"], settings, _check_augment(options["augment"]))


def _check_augment(augment):
    if augment is not None and not callable(augment):
        raise ConfigError(f"augment must be a function (x_batch, key) -> x_batch, got {augment!r}")
    return augment


# --- the best validation loss, tracked for NaN recovery -----------------------------

def _new_best():
    return {"value": None, "epoch": None, "params": None, "state": None}


def _observe(best, logs, run):
    """Remember ``run``'s params if this epoch's ``val_loss`` is the lowest yet."""
    value = logs.get("val_loss")
    if value is None or not math.isfinite(value):
        return False
    if best["value"] is not None and value >= best["value"]:
        return False
    # updates never modify arrays in place, so references are snapshots
    best.update(value=value, epoch=logs["epoch"], params=run.params, state=run.state)
    return True


def _all_finite(tree):
    return all(np.all(np.isfinite(a)) for a in tree_leaves(tree)
               if np.asarray(a).dtype.kind in "fc")


# --- one epoch ------------------------------------------------------------------

class _NonFinite(NamedTuple):
    step: int
    value: float
    params: object      # the params the failing step started from
    state: object


def _run_epoch(setup, run, epoch, bar, batch_hooks):
    """Train one epoch; ``(params, state, opt_state, mean_loss)`` or a ``_NonFinite``."""
    shuffle_key, dropout_root, augment_root = split(fold_in(key(setup.seed), epoch), 3)
    model, loss, optimizer = setup.model, setup.loss, setup.optimizer
    params, state, opt_state = run.params, run.state, run.opt_state
    total, seen = 0.0, 0
    for step, (xb, yb) in enumerate(batches(setup.x, setup.y, setup.batch_size, shuffle_key)):
        before, before_state = params, state
        if setup.augment is not None:
            xb = setup.augment(xb, fold_in(augment_root, step))
        params, state, opt_state, value = train_step(
            model, loss, optimizer, params, state, opt_state, xb, yb, fold_in(dropout_root, step))
        if not math.isfinite(value):
            return _NonFinite(step, value, before, before_state)
        n = len(xb)
        total += value * n
        seen += n
        bar.update(seen, total / seen)
        if batch_hooks:
            logs = {"batch": step, "size": n, "loss": value}
            for hook in batch_hooks:
                hook(step, logs, run)
    return params, state, opt_state, total / seen


def _validate(setup, run):
    """``{"val_loss": ..., "val_<metric>": ...}`` on the validation set."""
    x_val, y_val = setup.val
    pred = predict(setup.model, run.params, x_val, run.state,
                   max(setup.batch_size, EVAL_BATCH_SIZE))
    return {f"val_{k}": v for k, v in score(pred, y_val, setup.loss, setup.metrics).items()}


def _stop_on_nonfinite(run, best, failure, epoch, initial):
    """Stop with a warning, keeping the best (or last finite) params, never NaN ones."""
    candidates = [("best-validation", best["params"], best["state"]),
                  ("last completed epoch's", run.params, run.state),
                  ("last finite", failure.params, failure.state),
                  ("initial", *initial)]
    which, params, state = next(c for c in candidates
                                if c[1] is not None and _all_finite(c[1]))
    reason = (f"non-finite training loss ({failure.value}) at epoch {epoch}, batch "
              f"{failure.step}: training stopped; returning the {which} params")
    warnings.warn(reason, RuntimeWarning, stacklevel=5)
    run.params, run.state = params, state
    run.stop(reason)


# --- the loop ---------------------------------------------------------------------

def _call(callbacks, hook, *args):
    for cb in callbacks:
        getattr(cb, hook)(*args)


def _learning_rate(optimizer, opt_state):
    """``{"lr": rate}`` for the next update, or nothing when the optimizer does not say."""
    read = getattr(optimizer, "learning_rate", None)
    rate = read(opt_state) if read is not None else None
    return {} if rate is None else {"lr": rate}


def _end_of_epoch(setup, run, best, epoch, started, outcome, rate):
    """Record a completed epoch: run trees, validation, logs, bests."""
    run.params, run.state, run.opt_state, mean_loss = outcome
    logs = {"epoch": epoch, "loss": mean_loss, **rate}
    if setup.val is not None and ((epoch + 1) % setup.eval_every == 0
                                  or epoch == setup.epochs - 1):
        logs.update(_validate(setup, run))
    logs["seconds"] = time.perf_counter() - started
    improved = _observe(best, logs, run)
    run.history.append(logs)
    return logs, improved


def _train(setup, run, best, start, initial):
    batch_hooks = [cb.on_batch_end for cb in setup.callbacks if defines(cb, "on_batch_end")]
    for epoch in range(start, setup.epochs):
        run.epoch = epoch
        _call(setup.callbacks, "on_epoch_begin", epoch, run)
        started, rate = time.perf_counter(), _learning_rate(setup.optimizer, run.opt_state)
        bar = progress_bar(setup.progress, len(setup.x), epoch, setup.epochs)
        outcome = _run_epoch(setup, run, epoch, bar, batch_hooks)
        if isinstance(outcome, _NonFinite):
            bar.close({})
            _stop_on_nonfinite(run, best, outcome, epoch, initial)
            return
        logs, improved = _end_of_epoch(setup, run, best, epoch, started, outcome, rate)
        bar.close(logs)
        _call(setup.callbacks, "on_epoch_end", epoch, logs, run)
        if run.stop_training and not run.stop_reason:
            run.stop_reason = f"stopped by a callback after epoch {epoch}"
        _save(setup, run, best, epoch + 1, improved)
        if run.stop_training:
            return


# --- checkpoints ----------------------------------------------------------------

def _checkpoint(setup, run, best, next_epoch):
    states = [{"type": type(cb).__name__, "state": cb.get_state()} for cb in setup.callbacks]
    return ckpt_module.Checkpoint(run.params, run.state, run.opt_state, next_epoch, setup.seed,
                                  run.history, best, states, setup.settings, run.stop_reason)


def _save(setup, run, best, next_epoch, improved):
    if setup.checkpoint_dir is None:
        return
    ckpt = _checkpoint(setup, run, best, next_epoch)
    ckpt_module.save_checkpoint(os.path.join(setup.checkpoint_dir, ckpt_module.LAST), ckpt)
    if improved:
        ckpt_module.save_checkpoint(os.path.join(setup.checkpoint_dir, ckpt_module.BEST), ckpt)


def _run_seed(seed, ckpt):
    """The seed of the run: the caller's, else the checkpoint's, else 0."""
    if seed is None:
        return ckpt.seed if ckpt is not None else 0
    seed = _positive_int("seed", seed, least=0)
    if ckpt is not None and seed != ckpt.seed:
        raise ConfigError(f"seed={seed} differs from the checkpoint's seed {ckpt.seed}; "
                          "omit seed to continue the checkpointed run")
    return seed


def _resume(ckpt, run, settings):
    """Put a checkpoint into ``run``; returns ``(start_epoch, best, callback_states)``."""
    changed = {k: (v, settings.get(k)) for k, v in ckpt.settings.items() if settings.get(k) != v}
    if changed:
        warnings.warn(f"resuming with different settings {changed} (checkpoint, now): the run "
                      "will not match an uninterrupted one", RuntimeWarning, stacklevel=4)
    run.params, run.state, run.opt_state = ckpt.params, ckpt.state, ckpt.opt_state
    run.history = ckpt.history
    if ckpt.stop_reason:
        run.stop(ckpt.stop_reason)
    return ckpt.epoch, ckpt.best, ckpt.callbacks


def _restore_callbacks(callbacks, states):
    """Give each callback its saved state; warn about saved states nobody takes."""
    for i, saved in enumerate(states):
        cb = callbacks[i] if i < len(callbacks) else None
        if cb is not None and type(cb).__name__ == saved["type"]:
            cb.set_state(saved["state"])
        elif saved["state"]:
            warnings.warn(f"the checkpoint's state of callback {i} ({saved['type']}) was not "
                          "restored: pass the same callbacks, in the same order, to resume",
                          RuntimeWarning, stacklevel=4)


# --- fit --------------------------------------------------------------------------

def fit(model, params, loss, optimizer, x, y, *, state=None, opt_state=None, epochs=1,
        batch_size=32, seed=None, validation_data=None, validation_split=0.0, eval_every=1,
        metrics=(), callbacks=(), progress=True, checkpoint_dir=None, resume_from=None,
        initial_epoch=0, augment=None):
    """Train ``model`` on ``(x, y)`` by minibatch gradient descent.

    Args:
        model: a Layer (e.g. ``serial(Dense(64, "relu"), Dense(1))``).
        params, state: from ``model.init``; ``state=None`` means ``{}``.
        loss: a loss name (``"mse"``) or a loss primitive ``(pred, target) -> scalar``.
        optimizer: a GradientTransformation (``purenet.optim.sgd(0.01, momentum=0.9)``).
        x, y: ``(n, *in_shape)`` inputs and ``(n, ...)`` targets; float arrays are
            cast once to the params' dtype (float32), integer labels kept.
        opt_state: to continue an optimizer; default ``optimizer.init(params)``.
        epochs: the epoch count to reach (counting epochs done before a resume).
        batch_size: examples per step (the last batch may be smaller).
        seed: the run's only source of randomness (default 0, or the checkpoint's).
        validation_data: ``(x_val, y_val)``; or ``validation_split``: a fraction of
            ``(x, y)`` held out, chosen by ``seed``.
        eval_every: validate every this many epochs (and at the last one).
        metrics: names or functions ``(pred, target) -> float``, logged as ``val_<name>``.
        callbacks: Callback objects (see ``callbacks.py``).
        progress: True (tqdm if installed, else text), ``"tqdm"``, ``"text"`` or False.
        checkpoint_dir: write ``last.npz`` (and ``best.npz``) there after each epoch.
        resume_from: a checkpoint file or directory to continue from.
        initial_epoch: the first epoch's number when not resuming.
        augment: ``augment(x_batch, key) -> x_batch`` applied to every training batch
            with its own key (see ``purenet.data.augment``); never to validation data.

    Returns:
        ``FitResult(params, state, opt_state, history)``.
    """
    initial_epoch = _positive_int("initial_epoch", initial_epoch, least=0)
    if resume_from is not None and initial_epoch:
        raise ConfigError("give resume_from or initial_epoch, not both")
    _check_optimizer(optimizer)
    state = {} if state is None else state
    opt_state = optimizer.init(params) if opt_state is None else opt_state
    ckpt = None if resume_from is None else ckpt_module.load_checkpoint(
        resume_from, params, state, opt_state)
    options = dict(epochs=epochs, batch_size=batch_size, eval_every=eval_every,
                   validation_data=validation_data, validation_split=validation_split,
                   metrics=metrics, callbacks=callbacks, progress=progress,
                   checkpoint_dir=checkpoint_dir, dtype=_float_dtype(params), augment=augment)
    setup = _setup(model, loss, optimizer, x, y, _run_seed(seed, ckpt), options)
    if not _all_finite(params):
        raise DataError("params hold NaN or inf values; initialise them again")
    run = Run(model, params, state, opt_state, History())
    return _fit(setup, run, ckpt, initial_epoch)


def _fit(setup, run, ckpt, start):
    best, saved_callbacks = _new_best(), None
    if ckpt is not None:
        start, best, saved_callbacks = _resume(ckpt, run, setup.settings)
    _call(setup.callbacks, "on_train_begin", run)
    if saved_callbacks is not None:
        _restore_callbacks(setup.callbacks, saved_callbacks)
    try:
        if not run.stop_training:
            _train(setup, run, best, start, (run.params, run.state))
    except KeyboardInterrupt:
        run.stop(f"interrupted during epoch {run.epoch}; the result holds the last "
                 "completed epoch")
        print(f"\n{run.stop_reason}", file=sys.stderr)
    _call(setup.callbacks, "on_train_end", run)
    run.history.stop_reason = run.stop_reason
    return FitResult(run.params, run.state, run.opt_state, run.history)
