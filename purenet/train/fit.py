"""``fit``: the training loop around the pure ``loss_and_grads`` and optimizer update.

    result = fit(model, params, "mse", sgd(0.01, momentum=0.9), X, y,
                 epochs=20, batch_size=32, validation_split=0.2, metrics=["mae"],
                 callbacks=[EarlyStopping(patience=3, restore_best_weights=True)])
    result.params, result.history.history["val_loss"]

Contract:

* Data: arrays (batched by ``data.batches``: a lone last example joins the
  batch before it) or a stream of batches (``data.StreamBatches``). Everything
  is checked before training, with errors naming the argument: data that is not
  numbers or is ragged, params of another model (``layers.check_params`` on one
  example's shape), a negative or NaN learning rate, a checkpoint directory that
  is a file, and every setting.
* Randomness comes from ``seed`` alone. Epoch ``e`` uses the key
  ``fold_in(key(seed), e)``, split into a shuffling key, a dropout root and an
  augmentation root; step ``s`` of the epoch gets ``fold_in(root, s)``. The
  random state of a run is therefore just ``(seed, epoch)``: the same seed gives
  bit-identical params, and a resumed run ends exactly where an uninterrupted
  one would.
* Each epoch logs ``epoch`` (0-based, as in Keras), ``loss`` (mean over the
  epoch's examples), each metric on the training batches (the example-weighted
  mean of its per-batch values, in training mode), ``val_loss`` and
  ``val_<metric>`` when validated (on the whole validation set, inference mode),
  ``lr`` (the rate of the epoch's first update, when the optimizer reports one)
  and ``seconds``. Validation uses ``validation_data`` or a seeded
  ``validation_split`` of the training arrays, every ``validation_freq`` epochs
  and at the last one, or at the listed (1-based) epochs.
* An epoch either completes (validated, logged, passed to ``on_epoch_end``,
  backed up) or is dropped. A NaN or inf training loss stops training
  (``TerminateOnNaN``, added unless given; never NaN params). Ctrl-C stops at
  once: the result holds the last completed epoch (as ``on_train_end`` leaves
  it), with ``history.interrupted`` set and a ``stop_reason``.
* ``checkpoint_dir`` and ``resume_from`` are shortcuts for
  ``BackupAndRestore(checkpoint_dir, resume=resume_from or False)``.
* ``distributed``: a ``purenet.distributed.DataParallel`` trains on every rank of an
  MPI run, each rank on its shard of the same global batches, the gradients summed
  over the ranks once a step; the result equals one process's (see that module).
"""
import time
from typing import NamedTuple

import numpy as np

from .. import losses as losses_module
from ..data.batching import ArrayBatches, training_data
from ..distributed import SingleProcess
from ..errors import ConfigError, DataError
from ..layers.base import check_params, expected_shapes
from ..optim import apply_updates
from ..random import fold_in, key, split
from ..tree import tree_leaves
from .callbacks import Run, all_finite, arrange, defines, warn
from .checkpoint import BackupAndRestore, array_fingerprint
from .evaluate import DEFAULT_BATCH_SIZE, metric_fns, predict, score
from .history import History
from .progress import Display, resolve_verbose
from .step import loss_and_grads


class FitResult(NamedTuple):
    """What ``fit`` returns: the trained trees and the per-epoch ``History``."""
    params: object
    state: object
    opt_state: object
    history: History


class _Setup(NamedTuple):
    """The checked, fixed settings of one run."""
    model: object
    loss: object
    optimizer: object
    source: object          # ArrayBatches or StreamBatches
    val: tuple              # (x_val, y_val) or None
    epochs: int
    validate_at: object     # epoch (0-based) -> bool
    metrics: dict
    callbacks: tuple
    display: Display
    seed: int
    augment: object
    parallel: object        # SingleProcess or distributed.DataParallel


def fit(model, params, loss, optimizer, x, y=None, *, state=None, opt_state=None, epochs=1,
        batch_size=32, steps_per_epoch=None, shuffle=True, seed=None, validation_data=None,
        validation_split=0.0, validation_freq=1, metrics=(), callbacks=(), verbose="auto",
        augment=None, initial_epoch=0, checkpoint_dir=None, resume_from=None,
        eval_every=None, progress=None, distributed=None):
    """Train ``model`` by minibatch gradient descent; see the module docstring.

    Args:
        model, params, state: a Layer and its trees from ``model.init``
            (``state=None``: the model's initial state).
        loss: a loss name (``"mse"``) or a loss primitive ``(pred, target) -> scalar``.
        optimizer, opt_state: a GradientTransformation (``purenet.optim.sgd(0.01)``)
            and its state to continue from (default ``optimizer.init(params)``).
        x, y: ``(n, *in_shape)`` inputs and ``(n, ...)`` targets (floats are cast to the
            params' dtype); or a stream of ``(x_batch, y_batch)`` and ``y=None``.
        epochs: the epoch count to reach (counting epochs done before a resume).
        batch_size, shuffle: for arrays; ``steps_per_epoch``: for a stream.
        seed: the run's only source of randomness (default 0, or the checkpoint's).
        validation_data: ``(x_val, y_val)``; or ``validation_split``: a fraction of
            the training arrays held out, chosen by ``seed``.
        validation_freq: validate every this many epochs (and at the last one), or at
            the listed 1-based epochs; ``eval_every`` is its older name.
        metrics: names or functions ``(pred, target) -> float``, logged as ``<name>``
            (training batches) and ``val_<name>``.
        callbacks: Callback objects (see ``callbacks.py``).
        verbose: 0, 1, 2 or "auto" (``progress.py``); ``progress`` is its older form.
        augment: ``augment(x_batch, key) -> x_batch`` for every training batch, with its
            own key (see ``purenet.data.augment``); never for validation data.
        initial_epoch: the first epoch's number (0-based) when not resuming.
        checkpoint_dir, resume_from: see the module docstring.
        distributed: None (one process) or a ``purenet.distributed.DataParallel``.

    Returns:
        ``FitResult(params, state, opt_state, history)``.
    """
    epochs = _count("epochs", epochs)
    initial_epoch = _count("initial_epoch", initial_epoch, least=0)
    if resume_from is not None and initial_epoch:
        raise ConfigError("give resume_from or initial_epoch, not both")
    loss, metrics = _check_functions(loss, optimizer, augment), metric_fns(metrics)
    validate_at, freq = _validation_schedule(validation_freq, eval_every, epochs)
    level, bar = resolve_verbose(verbose, progress)
    parallel = SingleProcess() if distributed is None else _check_parallel(distributed)
    level = level if parallel.writes else 0
    shortcut = [] if checkpoint_dir is None and resume_from is None else [BackupAndRestore(
        checkpoint_dir, resume=False if resume_from is None else resume_from)]
    callbacks = arrange(callbacks, shortcut)
    restorer = next((cb for cb in callbacks if isinstance(cb, BackupAndRestore)), None)
    if restorer is not None:
        seed = restorer.run_seed(seed)        # the checkpoint's, when resuming
    else:
        seed = 0 if seed is None else _count("seed", seed, least=0)
    if params is None:
        raise ConfigError("params is None: pass the params returned by model.init")
    dtype = _float_dtype(params)
    source, val, data = training_data(x, y, validation_data, validation_split, batch_size,
                                      steps_per_epoch, shuffle, seed, dtype)
    in_shape = source.example_shape
    state = _initial_state(model, in_shape, dtype) if state is None else state
    check_params(model, params, in_shape, dtype, state=state)
    if not all_finite(params):
        raise DataError("params hold NaN or inf values; initialise them again")
    opt_state = optimizer.init(params) if opt_state is None else opt_state
    parallel.same_everywhere(params)
    settings = {"loss": getattr(loss, "name", getattr(loss, "__name__", repr(loss))),
                "batch_size": batch_size if isinstance(source, ArrayBatches) else None,
                "steps_per_epoch": steps_per_epoch, "shuffle": bool(shuffle),
                "validation_split": validation_split, "validation_freq": freq,
                "augment": augment is not None}
    display = Display(level, epochs, bar)
    setup = _Setup(model, loss, optimizer, source, val, epochs, validate_at, metrics, callbacks,
                   display, seed, augment, parallel)
    run = Run(model, params, state, opt_state, History(), initial_epoch, optimizer=optimizer,
              in_shape=tuple(in_shape), seed=seed, callbacks=callbacks, log=display.message,
              writes=parallel.writes,
              fingerprint={"settings": settings,
                           "data": {k: array_fingerprint(v) for k, v in data.items()}})
    return _fit(setup, run)


# --- checks -------------------------------------------------------------------------

def _count(name, value, least=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        kind = "positive" if least == 1 else "non-negative"
        raise ConfigError(f"{name} must be a {kind} integer, got {value!r}")
    return int(value)


def _check_functions(loss, optimizer, augment):
    """The loss as a function; ConfigError for a loss, optimizer or augment that is not one."""
    loss = losses_module.get(loss)
    if not callable(loss):
        raise ConfigError(f"loss {loss!r} is not a function: give a loss name, a primitive, "
                          "or a function of primitives")
    if not (callable(getattr(optimizer, "init", None))
            and callable(getattr(optimizer, "update", None))):
        raise ConfigError(f"optimizer {optimizer!r} must have init and update "
                          "(e.g. purenet.optim.sgd(0.01))")
    if augment is not None and not callable(augment):
        raise ConfigError(f"augment must be a function (x_batch, key) -> x_batch, got {augment!r}")
    return loss


def _check_parallel(distributed):
    needed = ("shard", "batch", "reduce", "map_rows", "interrupts", "after_step",
              "same_everywhere", "end_epoch")
    if not all(callable(getattr(distributed, name, None)) for name in needed):
        raise ConfigError(f"distributed must be a purenet.distributed.DataParallel or None, "
                          f"got {distributed!r}")
    return distributed


def _validation_schedule(freq, eval_every, epochs):
    """``(epoch -> bool, freq as recorded)`` from ``validation_freq`` (or ``eval_every``)."""
    name = "validation_freq"
    if eval_every is not None:
        if freq != 1:
            raise ConfigError("give validation_freq or eval_every (its older name), not both")
        freq, name = eval_every, "eval_every"
    if isinstance(freq, (list, tuple, range, set)):
        at = sorted({_count(f"each epoch in {name}", e) for e in freq})
        return (lambda epoch: epoch + 1 in at), at
    every = _count(name, freq)
    return (lambda epoch: (epoch + 1) % every == 0 or epoch == epochs - 1), every


def _float_dtype(params):
    """The params' floating dtype (float32 unless the model was built otherwise)."""
    floats = [np.asarray(a).dtype for a in tree_leaves(params) if np.asarray(a).dtype.kind == "f"]
    return floats[0] if floats else np.dtype(np.float32)


def _initial_state(model, in_shape, dtype):
    """The model's initial state, or ``{}`` when it keeps none."""
    if not tree_leaves(expected_shapes(model, in_shape, dtype)[1]):
        return {}
    return model.init(key(0), in_shape, dtype)[2]


# --- the loop -------------------------------------------------------------------------

def _call(callbacks, hook, *args):
    for cb in callbacks:
        getattr(cb, hook)(*args)


def _fit(setup, run):
    _call(setup.callbacks, "on_train_begin", run)
    completed = [run.params, run.state, run.opt_state, len(run.history)]
    try:
        if not run.stop_training:
            with setup.parallel.interrupts():      # over MPI: every rank stops together
                _train(setup, run, completed)
    except KeyboardInterrupt:
        run.params, run.state, run.opt_state, kept = completed
        del run.history.logs[kept:]
        run.history.interrupted = True
        run.stop(f"interrupted (Ctrl-C) in epoch {run.epoch + 1}; the result holds "
                 + (f"the params after epoch {run.epoch}" if run.epoch else "the initial params"))
        setup.display.abandon()
        setup.display.message(run.stop_reason)
    except BaseException:
        setup.display.abandon()             # no bar left over above the traceback
        raise
    _call(setup.callbacks, "on_train_end", run)
    run.history.stop_reason = run.stop_reason
    return FitResult(run.params, run.state, run.opt_state, run.history)


def _train(setup, run, completed):
    """Epochs from ``run.epoch`` on; ``completed`` follows the last completed one."""
    batch_callbacks = [cb for cb in setup.callbacks if defines(cb, "on_batch_end")]
    for epoch in range(run.epoch, setup.epochs):
        run.epoch = epoch
        _call(setup.callbacks, "on_epoch_begin", epoch, run)
        started, rate = time.perf_counter(), _learning_rate(setup.optimizer, run.opt_state, epoch)
        logs = None if run.stop_training else _train_epoch(setup, run, epoch, batch_callbacks)
        if logs is None:                  # dropped: a callback stopped it, or no batches left
            setup.display.abandon()
            return
        if setup.val is not None and setup.validate_at(epoch):
            logs.update(_validate(setup, run))
        logs.update(rate, seconds=time.perf_counter() - started)
        run.history.append(logs)
        _call(setup.callbacks, "on_epoch_end", epoch, logs, run)
        completed[:] = [run.params, run.state, run.opt_state, len(run.history)]
        setup.display.end_epoch(epoch, logs)
        if run.stop_training:
            return


def _train_epoch(setup, run, epoch, batch_callbacks):
    """Train one epoch from ``run``'s trees. Returns its logs, having put the new trees
    in ``run``, or None (``run`` untouched) when it was dropped."""
    shuffle_key, dropout_root, augment_root = split(fold_in(key(setup.seed), epoch), 3)
    params, state, opt_state = run.params, run.state, run.opt_state
    source, metrics, display = setup.source, setup.metrics, setup.display
    parallel = setup.parallel
    sums, seen, steps = dict.fromkeys(["loss", *metrics], 0.0), 0, 0
    display.begin_epoch(epoch, source.total, source.unit)
    for step, (xb, yb) in enumerate(source.epoch(epoch, shuffle_key)):
        if setup.augment is not None:
            xb = setup.augment(xb, fold_in(augment_root, step))
        xb, yb, rows, total = parallel.shard(xb, yb)     # this process's part of the batch
        n, steps = len(xb), step + 1
        with parallel.batch(rows, total):
            value, grads, state, pred = loss_and_grads(
                setup.model, setup.loss, params, state, xb, yb,
                key=fold_in(dropout_root, step), with_pred=True)
        scores = [value * n] + [fn(pred, yb) * n for fn in metrics.values()]
        grads, scores = parallel.reduce(grads, scores, n / total)    # summed over processes
        updates, opt_state = setup.optimizer.update(grads, opt_state, params)
        params = apply_updates(params, updates)
        parallel.after_step(params)
        seen += total
        for name, part in zip(sums, scores):
            sums[name] += part
        if total != n:
            value = scores[0] / total
        display.update(seen if source.unit == "examples" else steps, sums["loss"] / seen)
        if batch_callbacks:
            batch_logs = {"batch": step, "size": total, "loss": value}
            for cb in batch_callbacks:
                cb.on_batch_end(step, batch_logs, run)
            if run.stop_training:
                return None
    if steps == 0 or (source.unit == "steps" and source.total and steps < source.total):
        need = f"{source.total} batches an epoch" if source.total else "batches every epoch"
        reason = (f"the batches ran out in epoch {epoch + 1} after {steps} step(s); the "
                  f"stream must give {need}")
        warn(reason)
        run.stop(reason)
        return None
    state = parallel.end_epoch(params, state)
    run.params, run.state, run.opt_state = params, state, opt_state
    return {"epoch": epoch, **{k: v / seen for k, v in sums.items()}}


def _learning_rate(optimizer, opt_state, epoch):
    """``{"lr": rate}`` for the next update (nothing when the optimizer does not say);
    a negative or NaN rate is a ConfigError before it is used."""
    read = getattr(optimizer, "learning_rate", None)
    rate = read(opt_state) if read is not None else None
    if rate is None:
        return {}
    if not rate >= 0:
        raise ConfigError(f"the optimizer's learning rate is {rate} at the start of epoch "
                          f"{epoch + 1}: learning_rate must be a number >= 0")
    return {"lr": rate}


def _validate(setup, run):
    """``{"val_loss": ..., "val_<metric>": ...}`` on the validation set."""
    x_val, y_val = setup.val
    batch_size = max(getattr(setup.source, "batch_size", 0), DEFAULT_BATCH_SIZE)
    pred = setup.parallel.map_rows(
        lambda rows: predict(setup.model, run.params, rows, run.state, batch_size), x_val)
    return {f"val_{k}": v for k, v in score(pred, y_val, setup.loss, setup.metrics).items()}
