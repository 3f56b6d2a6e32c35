"""Callbacks and History: hook order, the shared "best so far" rule, early stopping on
the right snapshot, model files, learning-rate cuts, NaN stops, CSV logs."""
import csv
import json

import numpy as np
import pytest

from purenet.errors import ConfigError
from purenet.io import load_model
from purenet.layers import Dense, serial
from purenet.optim import GradientTransformation, lr_scale, sgd
from purenet.random import key
from purenet.train import (Best, Callback, CSVLogger, EarlyStopping, History, LambdaCallback,
                           ModelCheckpoint, ReduceLROnPlateau, Run, TerminateOnNaN, fit)
from purenet.tree import tree_copy, tree_leaves


def overshoot_problem():
    """Training pulls the slope from 0 towards 2 while validation wants 1, so
    the validation loss falls for a few epochs, then rises."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 1)).astype(np.float32)
    x_val = rng.standard_normal((32, 1)).astype(np.float32)
    model = serial(Dense(1, w_init="zeros"))
    _, params, _ = model.init(key(0), (1,))
    return model, params, (x, 2 * x[:, 0]), (x_val, x_val[:, 0])


def recorder():
    """A callback keeping a copy of the params after every epoch."""
    snapshots = {}
    callback = LambdaCallback(
        on_epoch_end=lambda epoch, logs, run: snapshots.update({epoch: tree_copy(run.params)}))
    return callback, snapshots


def run_overshoot(callbacks, epochs=30, optimizer=None, **kwargs):
    model, params, (x, y), val = overshoot_problem()
    kwargs.setdefault("verbose", 0)
    return fit(model, params, "mse", optimizer or sgd(0.02), x, y, epochs=epochs, batch_size=16,
               validation_data=val, callbacks=callbacks, **kwargs)


def same(a, b):
    return all(np.array_equal(u, v) for u, v in zip(tree_leaves(a), tree_leaves(b)))


def bare_run(optimizer=None):
    """A Run outside fit, for driving a callback by hand."""
    optimizer = optimizer or sgd(1.0)
    params = {"w": np.zeros(1)}
    return Run(None, params, {}, optimizer.init(params), History(), optimizer=optimizer,
               log=lambda message: None)


# --- the shared "best so far" rule ----------------------------------------------------

@pytest.mark.parametrize("monitor, mode, min_delta, values, improved", [
    ("val_loss", "auto", 0.0, [3, 2, 2, 1], [True, True, False, True]),
    ("val_loss", "min", 0.5, [3, 2.6, 2.4, 1.9], [True, False, True, False]),
    ("val_accuracy", "auto", 0.1, [0.5, 0.55, 0.7], [True, False, True]),
    ("val_r2", "auto", 0.0, [0.1, 0.3, 0.2], [True, True, False]),
    ("loss", "max", 0.0, [1, 2, 2], [True, True, False]),
    ("val_loss", "min", 0.0, [float("nan"), 4, float("inf"), 3], [False, True, False, True]),
])
def test_best_decides_what_improves(monitor, mode, min_delta, values, improved):
    best = Best(monitor, mode, min_delta)
    assert [best.update({monitor: v}, e) for e, v in enumerate(values)] == improved
    assert best.update({"other": 1.0}, 9) is None                  # not logged this epoch
    last = len(improved) - 1 - improved[::-1].index(True)
    assert best.epoch == last and best.describe().endswith(f"at epoch {last + 1}")


def test_best_rejects_bad_settings():
    with pytest.raises(ConfigError, match="mode"):
        Best(mode="lowest")
    with pytest.raises(ConfigError, match="min_delta"):
        Best(min_delta=-1)


# --- EarlyStopping ------------------------------------------------------------------------

def test_early_stopping_restores_the_params_of_the_best_evaluation(capsys):
    record, snapshots = recorder()
    stopper = EarlyStopping(patience=2, restore_best_weights=True)
    result = run_overshoot([record, stopper], verbose=2)
    val = result.history.history["val_loss"]
    best_epoch = int(np.argmin(val))
    assert 0 < best_epoch < len(val) - 1, "the case must go down, then up"
    assert len(val) == best_epoch + 3                  # two evaluations without improvement
    assert result.history.stop_reason.startswith("early stopping")
    assert f"at epoch {best_epoch + 1}" in result.history.stop_reason   # 1-based for people
    assert stopper.best_epoch == best_epoch
    assert same(result.params, snapshots[best_epoch])
    assert not same(result.params, snapshots[best_epoch - 1])   # the book's off-by-one
    lines = capsys.readouterr().out.splitlines()
    stop_line = lines.index(next(line for line in lines if "early stopping" in line))
    assert lines[stop_line].startswith(f"epoch {len(val)}: early stopping")
    assert lines[stop_line - 1].startswith(f"epoch {len(val)}/30  loss")   # after the summary
    assert f"restored the params of epoch {best_epoch + 1}" in lines[-1]


def test_without_restoring_the_last_params_are_returned():
    record, snapshots = recorder()
    result = run_overshoot([record, EarlyStopping(patience=1)])
    assert same(result.params, snapshots[max(snapshots)])


def test_patience_counts_evaluations_only():
    stopper = EarlyStopping(patience=2)
    result = run_overshoot([stopper], validation_freq=3)
    evaluated = [e["epoch"] for e in result.history.logs if "val_loss" in e]
    assert result.history.stop_reason is not None
    assert stopper.wait == 2 and evaluated[-3] == stopper.best_epoch


def test_a_monitor_that_is_never_logged_warns():
    model, params, (x, y), _ = overshoot_problem()
    with pytest.warns(RuntimeWarning, match="'val_loss' was never logged"):
        fit(model, params, "mse", sgd(0.02), x, y, epochs=2, callbacks=[EarlyStopping()],
            verbose=0)


def test_early_stopping_settings():
    stopper = EarlyStopping(monitor="val_accuracy", min_delta=0.1)
    assert stopper.mode == "max" and EarlyStopping(monitor="val_loss").mode == "min"
    run = bare_run()
    for epoch, value in enumerate([0.5, 0.55, 0.7]):
        stopper.on_epoch_end(epoch, {"val_accuracy": value}, run)
    assert (stopper.best, stopper.best_epoch) == (0.7, 2)
    with pytest.raises(ConfigError):
        EarlyStopping(mode="lowest")
    with pytest.raises(ConfigError):
        EarlyStopping(patience=-1)


# --- hooks and stopping -------------------------------------------------------------

def test_hooks_fire_in_keras_order():
    events = []
    hooks = LambdaCallback(
        on_train_begin=lambda run: events.append("train_begin"),
        on_epoch_begin=lambda epoch, run: events.append(f"epoch_begin {epoch}"),
        on_batch_end=lambda batch, logs, run: events.append(f"batch {batch} {logs['size']}"),
        on_epoch_end=lambda epoch, logs, run: events.append(f"epoch_end {epoch}"),
        on_train_end=lambda run: events.append("train_end"))
    model, params, (x, y), _ = overshoot_problem()
    fit(model, params, "mse", sgd(0.02), x[:40], y[:40], epochs=2, batch_size=16,
        callbacks=[hooks], verbose=0)
    epoch = ["batch 0 16", "batch 1 16", "batch 2 8"]
    assert events == (["train_begin", "epoch_begin 0"] + epoch + ["epoch_end 0", "epoch_begin 1"]
                      + epoch + ["epoch_end 1", "train_end"])
    with pytest.raises(ConfigError, match="unknown hook"):
        LambdaCallback(on_step=print)


def test_a_callback_can_stop_training_and_see_the_run():
    class StopAfterTwo(Callback):
        def on_epoch_end(self, epoch, logs, run):
            self.history_length = len(run.history)
            if epoch == 1:
                run.stop("enough")

    stop = StopAfterTwo()
    result = run_overshoot([stop])
    assert len(result.history) == 2 and stop.history_length == 2
    assert result.history.stop_reason == "enough"
    keras_style = LambdaCallback(on_epoch_end=lambda epoch, logs, run: setattr(
        run, "stop_training", True))
    result = run_overshoot([keras_style])
    assert result.history.stop_reason == "stopped by a callback in epoch 1"


def test_keys_a_callback_adds_to_the_logs_reach_the_history_and_later_callbacks(capsys):
    def custom_validation(epoch, logs, run):
        logs["val_loss"] = 10.0 - epoch                 # e.g. a text model's own validation

    model, params, (x, y), _ = overshoot_problem()
    stopper = EarlyStopping(patience=1)
    result = fit(model, params, "mse", sgd(0.02), x, y, epochs=3, verbose=2,
                 callbacks=[LambdaCallback(on_epoch_end=custom_validation), stopper])
    assert result.history.history["val_loss"] == [10.0, 9.0, 8.0]
    assert stopper.best == 8.0
    assert "val_loss 8" in capsys.readouterr().out.splitlines()[-1]


# --- ModelCheckpoint ---------------------------------------------------------------------

def test_model_checkpoint_writes_a_model_file_per_epoch(tmp_path):
    record, snapshots = recorder()
    run_overshoot([record, ModelCheckpoint(tmp_path / "m-{epoch:02d}.npz", verbose=1)],
                  epochs=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-01.npz", "m-02.npz", "m-03.npz"]
    model, params, _, meta = load_model(tmp_path / "m-02.npz")
    assert same(params, snapshots[1]) and meta["in_shape"] == [1]


def test_model_checkpoint_save_best_only_keeps_the_best(tmp_path):
    record, snapshots = recorder()
    result = run_overshoot([record, ModelCheckpoint(tmp_path / "best.npz", save_best_only=True)])
    best_epoch = int(np.argmin(result.history.history["val_loss"]))
    _, params, _, _ = load_model(tmp_path / "best.npz")
    assert same(params, snapshots[best_epoch])
    named = ModelCheckpoint(tmp_path / "m-{val_mae}.npz")
    with pytest.raises(ConfigError, match="val_mae"):
        run_overshoot([named], epochs=1)


def test_model_checkpoint_of_an_unsaveable_model_fails_before_training(tmp_path):
    from purenet.layers import Layer
    model = Layer("custom", lambda k, shape, dtype: (shape, {}, {}),
                  lambda p, s, x, train=False, key=None: (x, s))
    with pytest.raises(ConfigError, match="cannot be saved"):
        fit(serial(model, Dense(1)), serial(model, Dense(1)).init(key(0), (1,))[1], "mse",
            sgd(0.1), np.ones((8, 1), np.float32), np.ones(8, np.float32),
            callbacks=[ModelCheckpoint(tmp_path / "m.npz")], verbose=0)
    assert not (tmp_path / "m.npz").exists()


# --- ReduceLROnPlateau ---------------------------------------------------------------

@pytest.mark.parametrize("patience, cooldown, values, cuts", [
    (2, 0, [1, 1, 1, 1, 1, 1], [2, 4]),
    (2, 1, [1, 1, 1, 1, 1, 1], [2, 4]),
    (2, 2, [1, 1, 1, 1, 1, 1, 1], [2, 5]),
    (0, 0, [3, 2, 2, 1, 1], [2, 4]),
    (1, 0, [3, 2, 1, 0.5], []),
    (2, 0, [1, 1, None, 1, 1], [3]),                # an epoch without validation is skipped
])
def test_reduce_lr_on_plateau_follows_keras(patience, cooldown, values, cuts):
    reducer = ReduceLROnPlateau(factor=0.5, patience=patience, cooldown=cooldown, min_delta=0)
    run = bare_run()
    reducer.on_train_begin(run)
    rates = []
    for epoch, value in enumerate(values):
        reducer.on_epoch_end(epoch, {} if value is None else {"val_loss": value}, run)
        rates.append(run.optimizer.learning_rate(run.opt_state))
    assert [e for e in range(len(values)) if rates[e] < (rates[e - 1] if e else 1.0)] == cuts


def test_reduce_lr_on_plateau_respects_min_lr():
    reducer = ReduceLROnPlateau(factor=0.1, patience=1, min_lr=0.05, min_delta=0)
    run = bare_run()
    reducer.on_train_begin(run)
    for epoch in range(4):
        reducer.on_epoch_end(epoch, {"val_loss": 1.0}, run)
    assert run.optimizer.learning_rate(run.opt_state) == pytest.approx(0.05)


def test_reduce_lr_on_plateau_lowers_the_logged_rate_in_fit(capsys):
    result = run_overshoot([ReduceLROnPlateau(factor=0.5, patience=1)], epochs=20, verbose=2)
    rates = result.history.history["lr"]
    assert rates[0] == pytest.approx(0.02) and rates[-1] < 0.02
    assert all(b <= a for a, b in zip(rates, rates[1:]))
    assert "ReduceLROnPlateau" in capsys.readouterr().out


def test_reduce_lr_on_plateau_settings_and_optimizer():
    for bad in (dict(factor=1.0), dict(factor=0), dict(patience=-1), dict(min_lr=-1),
                dict(cooldown=1.5)):
        with pytest.raises(ConfigError):
            ReduceLROnPlateau(**bad)
    bare = sgd(0.1)
    no_scale = GradientTransformation(lambda p: {}, lambda g, s, p=None: (g, s))
    with pytest.raises(ConfigError, match="lr_scale"):
        run_overshoot([ReduceLROnPlateau()], optimizer=no_scale)
    assert lr_scale(bare.init({"w": np.zeros(1)})) == 1.0


# --- TerminateOnNaN -------------------------------------------------------------------------

def test_terminate_on_nan_is_added_once():
    model, params, (x, y), val = overshoot_problem()
    seen = []
    spy = LambdaCallback(on_train_begin=lambda run: seen.append(
        [type(cb).__name__ for cb in run.callbacks]))
    mine = TerminateOnNaN()
    fit(model, params, "mse", sgd(0.02), x, y, callbacks=[spy], verbose=0)
    fit(model, params, "mse", sgd(0.02), x, y, callbacks=[mine, spy], verbose=0)
    assert seen == [["LambdaCallback", "TerminateOnNaN"], ["TerminateOnNaN", "LambdaCallback"]]


def test_terminate_on_nan_keeps_the_last_completed_epoch_without_validation():
    record, snapshots = recorder()
    model, params, (x, y), _ = overshoot_problem()
    opt = sgd(lambda step: 0.02 if step < 9 else 1e30)      # 4 steps an epoch
    with pytest.warns(RuntimeWarning, match="last completed epoch's"), np.errstate(all="ignore"):
        result = fit(model, params, "mse", opt, x, y, epochs=5, batch_size=16, verbose=0,
                     callbacks=[record])
    assert result.history.diverged and len(result.history) == 2
    assert same(result.params, snapshots[1])


# --- CSVLogger and History ---------------------------------------------------------------

def read_rows(path, delimiter=","):
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter=delimiter))


def test_csv_logger_writes_every_epoch(tmp_path):
    path = tmp_path / "log.csv"
    run_overshoot([CSVLogger(path)], epochs=3, validation_freq=2)
    rows = read_rows(path)
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]     # 0-based, as Keras writes it
    assert list(rows[0]) == ["epoch", "loss", "val_loss", "lr", "seconds"]
    assert rows[0]["val_loss"] == "" and float(rows[1]["val_loss"]) > 0


def test_csv_logger_appends_or_starts_afresh(tmp_path):
    path = tmp_path / "log.tsv"
    run_overshoot([CSVLogger(path, separator="\t")], epochs=2)
    run_overshoot([CSVLogger(path, separator="\t", append=True)], epochs=1)
    assert [r["epoch"] for r in read_rows(path, "\t")] == ["0", "1", "0"]
    run_overshoot([CSVLogger(path, separator="\t")], epochs=1)
    assert [r["epoch"] for r in read_rows(path, "\t")] == ["0"]


def test_history_dict_of_lists_series_and_json_round_trip():
    history = History()
    history.append({"epoch": 0, "loss": 2.0, "seconds": 0.1})
    history.append({"epoch": 1, "loss": float("nan"), "val_loss": np.float32(1.5)})
    assert history.history == {"loss": [2.0, history.logs[1]["loss"]], "seconds": [0.1, None],
                               "val_loss": [None, 1.5]}
    assert history.series("val_loss") == ([1], [1.5])
    assert history.last("seconds") == 0.1
    history.stop_reason, history.interrupted = "because", True
    history.logs[0]["added"] = np.float32(0.5)            # a callback's key, added later
    text = json.dumps(history.to_dict(), allow_nan=False)
    back = History.from_dict(json.loads(text))
    assert back.stop_reason == "because" and np.isnan(back.logs[1]["loss"])
    assert back.interrupted and not back.diverged and back.logs[0]["added"] == 0.5
    assert back.history["val_loss"] == [None, 1.5]
