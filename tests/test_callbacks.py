"""Callbacks and History: hook order, early stopping on the right snapshot, CSV logs."""
import csv
import json

import numpy as np
import pytest

from purenet.errors import ConfigError
from purenet.layers import Dense, serial
from purenet.optim import sgd
from purenet.random import key
from purenet.train import Callback, CSVLogger, EarlyStopping, History, LambdaCallback, fit
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


def run_overshoot(callbacks, epochs=30, **kwargs):
    model, params, (x, y), val = overshoot_problem()
    return fit(model, params, "mse", sgd(0.02), x, y, epochs=epochs, batch_size=16,
               validation_data=val, callbacks=callbacks, progress=False, **kwargs)


def same(a, b):
    return all(np.array_equal(u, v) for u, v in zip(tree_leaves(a), tree_leaves(b)))


def test_early_stopping_restores_the_params_of_the_best_evaluation():
    record, snapshots = recorder()
    stopper = EarlyStopping(patience=2, restore_best_weights=True)
    result = run_overshoot([record, stopper])
    val = result.history.history["val_loss"]
    best_epoch = int(np.argmin(val))
    assert 0 < best_epoch < len(val) - 1, "the case must go down, then up"
    assert len(val) == best_epoch + 3                  # two evaluations without improvement
    assert result.history.stop_reason.startswith("early stopping")
    assert stopper.best_epoch == best_epoch
    assert same(result.params, snapshots[best_epoch])
    assert not same(result.params, snapshots[best_epoch - 1])   # the book's off-by-one


def test_without_restoring_the_last_params_are_returned():
    record, snapshots = recorder()
    result = run_overshoot([record, EarlyStopping(patience=1)])
    assert same(result.params, snapshots[max(snapshots)])


def test_patience_counts_evaluations_only():
    stopper = EarlyStopping(patience=2)
    result = run_overshoot([stopper], eval_every=3)
    evaluated = [e["epoch"] for e in result.history.logs if "val_loss" in e]
    assert result.history.stop_reason is not None
    assert stopper.wait == 2 and evaluated[-3] == stopper.best_epoch


def test_a_monitor_that_is_never_logged_warns():
    model, params, (x, y), _ = overshoot_problem()
    with pytest.warns(RuntimeWarning, match="'val_loss' was never logged"):
        fit(model, params, "mse", sgd(0.02), x, y, epochs=2, callbacks=[EarlyStopping()],
            progress=False)


def test_min_delta_and_mode():
    stopper = EarlyStopping(monitor="val_accuracy", min_delta=0.1)
    assert stopper.mode == "max"
    run = type("R", (), {"params": {}, "state": {}, "stop": lambda self, r: None})()
    for epoch, value in enumerate([0.5, 0.55, 0.7]):
        stopper.on_epoch_end(epoch, {"val_accuracy": value}, run)
    assert (stopper.best, stopper.best_epoch) == (0.7, 2)
    assert EarlyStopping(monitor="val_loss").mode == "min"
    with pytest.raises(ConfigError):
        EarlyStopping(mode="lowest")
    with pytest.raises(ConfigError):
        EarlyStopping(patience=-1)


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
        callbacks=[hooks], progress=False)
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
    assert result.history.stop_reason == "stopped by a callback after epoch 0"


def test_csv_logger_writes_every_epoch(tmp_path):
    path = tmp_path / "log.csv"
    run_overshoot([CSVLogger(path)], epochs=3, eval_every=2)
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert set(rows[0]) == {"epoch", "loss", "val_loss", "seconds", "lr"}
    assert rows[0]["val_loss"] == "" and float(rows[1]["val_loss"]) > 0


def test_history_dict_of_lists_series_and_json_round_trip():
    history = History()
    history.append({"epoch": 0, "loss": 2.0, "seconds": 0.1})
    history.append({"epoch": 1, "loss": float("nan"), "val_loss": np.float32(1.5)})
    assert history.history == {"loss": [2.0, history.logs[1]["loss"]], "seconds": [0.1, None],
                               "val_loss": [None, 1.5]}
    assert history.series("val_loss") == ([1], [1.5])
    assert history.last("seconds") == 0.1
    history.stop_reason = "because"
    text = json.dumps(history.to_dict(), allow_nan=False)
    back = History.from_dict(json.loads(text))
    assert back.stop_reason == "because" and np.isnan(back.logs[1]["loss"])
    assert back.history["val_loss"] == [None, 1.5]
