"""fit, evaluate and predict on problems small enough to train in milliseconds."""
import math

import numpy as np
import pytest

from purenet import losses
from purenet.data import validation_split
from purenet.errors import ConfigError, DataError
from purenet.layers import Dense, Dropout, serial
from purenet.optim import sgd
from purenet.random import key
from purenet.train import LambdaCallback, evaluate, fit, predict
from purenet.tree import tree_copy, tree_leaves


def problem(n=64, features=4, seed=0):
    """A noisy linear regression: ``(x, y)`` float32 with y of shape (n,)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype(np.float32)
    y = (x @ rng.standard_normal(features) + 0.1 * rng.standard_normal(n)).astype(np.float32)
    return x, y


def mlp(dropout=0.0):
    layers = [Dense(8, "relu")] + ([Dropout(dropout)] if dropout else []) + [Dense(1)]
    model = serial(*layers)
    _, params, _ = model.init(key(1), (4,))
    return model, params


def trees_equal(a, b):
    return all(np.array_equal(u, v) for u, v in zip(tree_leaves(a), tree_leaves(b)))


def train(epochs=3, seed=0, dropout=0.1, **kwargs):
    model, params = mlp(dropout)
    x, y = problem()
    kwargs.setdefault("progress", False)
    return fit(model, params, "mse", sgd(0.05, momentum=0.9), x, y, epochs=epochs,
               batch_size=16, seed=seed, **kwargs)


def test_training_lowers_the_loss_and_keeps_float32():
    result = train(epochs=8, dropout=0.0)
    losses_ = result.history.history["loss"]
    assert losses_[-1] < 0.5 * losses_[0]
    assert all(leaf.dtype == np.float32 for leaf in tree_leaves(result.params))
    assert result.history.epoch == list(range(8))


def test_same_seed_is_bit_identical_and_other_seeds_differ():
    a, b, c = train(seed=3), train(seed=3), train(seed=4)
    assert trees_equal(a.params, b.params)
    assert trees_equal(a.opt_state, b.opt_state)
    assert not trees_equal(a.params, c.params)


def test_initial_epoch_continues_a_run_by_hand():
    first = train(epochs=2)
    model, _ = mlp(0.1)
    x, y = problem()
    rest = fit(model, first.params, "mse", sgd(0.05, momentum=0.9), x, y, epochs=4,
               batch_size=16, opt_state=first.opt_state, initial_epoch=2, progress=False)
    assert rest.history.epoch == [2, 3]
    assert trees_equal(rest.params, train(epochs=4).params)


def test_loss_by_name_or_primitive_agree():
    model, params = mlp()
    x, y = problem()
    opt = sgd(0.05)
    by_name = fit(model, params, "mse", opt, x, y, epochs=2, progress=False)
    by_prim = fit(model, params, losses.mean_squared_error, opt, x, y, epochs=2, progress=False)
    assert trees_equal(by_name.params, by_prim.params)


def test_logs_use_keras_names():
    result = train(validation_split=0.25, metrics=["mae", "r2"])
    logs = result.history.logs[-1]
    assert set(logs) == {"epoch", "loss", "val_loss", "val_mae", "val_r2", "seconds", "lr"}
    assert result.history.stop_reason is None


def test_logs_the_learning_rate_of_each_epochs_first_update():
    from purenet.optim import adam, schedules
    from purenet.optim.transforms import GradientTransformation
    model, params = mlp()
    x, y = problem()                       # 64 examples: 8 steps of 8 per epoch
    schedule = schedules.exponential_decay(0.1, 0.0125, 24)   # halves every 8 steps
    history = fit(model, params, "mse", adam(schedule, clip_norm=1.0), x, y, epochs=3,
                  batch_size=8, progress=False).history.history
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.025])
    bare = sgd(0.1)
    silent = GradientTransformation(bare.init, bare.update)          # reports no rate
    logs = fit(model, params, "mse", silent, x, y, epochs=1, progress=False).history.logs[-1]
    assert "lr" not in logs


def test_validation_split_is_held_out_training_data_and_deterministic():
    seen = []

    def spy(pred, target):
        seen.append(np.array(target))
        return 0.0

    x, y = problem()
    train(epochs=1, validation_split=0.25, metrics=[spy])
    train(epochs=1, validation_split=0.25, metrics=[spy])
    (_, _), (_, y_val) = validation_split(x, y, 0.25, 0)
    assert len(seen[0]) == math.ceil(0.25 * len(x))
    np.testing.assert_array_equal(seen[0], seen[1])
    np.testing.assert_array_equal(seen[0], y_val)
    assert np.isin(seen[0], y).all()


def test_validation_data_is_used_as_given():
    x_val, y_val = problem(n=10, seed=9)
    result = train(validation_data=(x_val, y_val))
    model, _ = mlp(0.1)
    expected = float(losses.mean_squared_error(model(result.params, x_val), y_val))
    assert result.history.logs[-1]["val_loss"] == pytest.approx(expected, rel=1e-6)


def test_eval_every_evaluates_on_schedule_and_at_the_last_epoch():
    result = train(epochs=5, eval_every=2, validation_split=0.25)
    evaluated = [e["epoch"] for e in result.history.logs if "val_loss" in e]
    assert evaluated == [1, 3, 4]
    assert result.history.history["val_loss"][0] is None


def test_no_validation_means_no_val_keys():
    assert "val_loss" not in train(epochs=1).history.logs[0]


def test_nan_loss_stops_and_returns_finite_params():
    # the learning rate jumps to 1e30 after 10 steps (4 steps per epoch): epoch 2 diverges
    model, params = mlp()
    x, y = problem()
    opt = sgd(lambda step: 0.01 if step < 10 else 1e30)
    with pytest.warns(RuntimeWarning, match="non-finite training loss"), np.errstate(all="ignore"):
        result = fit(model, params, "mse", opt, x, y, epochs=6, batch_size=16, progress=False)
    assert "non-finite" in result.history.stop_reason
    assert all(np.isfinite(leaf).all() for leaf in tree_leaves(result.params))
    assert len(result.history) < 6


def test_nan_loss_returns_the_best_validation_params():
    snapshots = {}
    record = LambdaCallback(on_epoch_end=lambda e, logs, run: snapshots.update(
        {e: (logs.get("val_loss"), tree_copy(run.params))}))
    model, params = mlp()
    x, y = problem()
    opt = sgd(lambda step: 0.01 if step < 15 else 1e30)
    with pytest.warns(RuntimeWarning, match="best-validation"), np.errstate(all="ignore"):
        result = fit(model, params, "mse", opt, x, y, epochs=8, batch_size=16,
                     validation_split=0.25, callbacks=[record], progress=False)
    best_epoch = min(snapshots, key=lambda e: snapshots[e][0])
    assert trees_equal(result.params, snapshots[best_epoch][1])


def test_interrupt_returns_the_last_completed_epoch():
    def interrupt(epoch, run):
        if epoch == 2:
            raise KeyboardInterrupt
    result = train(epochs=4, callbacks=[LambdaCallback(on_epoch_begin=interrupt)])
    assert "interrupted" in result.history.stop_reason
    assert len(result.history) == 2
    assert trees_equal(result.params, train(epochs=2).params)


def test_progress_can_be_turned_off(capsys):
    train(epochs=2, validation_split=0.25, progress=False)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_text_progress_prints_one_line_per_epoch(capsys):
    train(epochs=2, progress="text")
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err and "loss" in err


def test_tqdm_progress_shows_the_epoch(capsys):
    pytest.importorskip("tqdm")
    train(epochs=1, progress="tqdm")
    assert "epoch 1/1" in capsys.readouterr().err


def test_float64_data_is_cast_to_the_params_dtype():
    model, params = mlp(0.0)
    x, y = problem()
    opt = sgd(0.05)
    wide = fit(model, params, "mse", opt, x.astype(np.float64), y.astype(np.float64),
               epochs=2, progress=False)
    narrow = fit(model, params, "mse", opt, x, y, epochs=2, progress=False)
    assert all(leaf.dtype == np.float32 for leaf in tree_leaves(wide.params))
    assert trees_equal(wide.params, narrow.params)


def test_the_finiteness_check_is_exact_when_the_sum_overflows():
    from purenet.train.fit import _check_array
    x = np.full((64, 4), 3e38, np.float32)      # the sum overflows; every value is finite
    assert _check_array(x, "x", np.float32) is x
    x[5, 2] = np.inf
    with pytest.raises(DataError, match=r"index \(5, 2\)"):
        _check_array(x, "x", np.float32)


def test_metrics_without_validation_data_warn():
    with pytest.warns(RuntimeWarning, match="metrics are computed on validation data"):
        train(epochs=1, metrics=["mae"])


@pytest.mark.parametrize("bad, error, message", [
    (dict(x=np.zeros((5, 4), np.float32)), DataError, "x has 5 samples but y has 64"),
    (dict(x=np.full((64, 4), np.nan, np.float32)), DataError, "x has 256 non-finite"),
    (dict(y=np.full(64, np.inf, np.float32)), DataError, "y has 64 non-finite"),
    (dict(x=np.zeros((0, 4), np.float32), y=np.zeros(0, np.float32)), DataError, "empty"),
    (dict(batch_size=0), ConfigError, "batch_size"),
    (dict(epochs=0), ConfigError, "epochs"),
    (dict(epochs=2.5), ConfigError, "epochs"),
    (dict(eval_every=-1), ConfigError, "eval_every"),
    (dict(validation_split=1.0), ConfigError, "validation_split"),
    (dict(progress="fancy"), ConfigError, "progress"),
    (dict(validation_split="0.2"), ConfigError, "validation_split"),
    (dict(metrics=["f1"]), ConfigError, "unknown metric"),
    (dict(loss=lambda pred, target: 0.0), ConfigError, "does not depend on the prediction"),
    (dict(loss="hinge"), ConfigError, "unknown loss"),
    (dict(callbacks=[print]), ConfigError, "not a callback"),
    (dict(validation_data=(np.zeros((3, 4), np.float32), np.full(3, np.nan, np.float32))),
     DataError, "validation y"),
])
def test_bad_input_is_rejected_before_training(bad, error, message):
    model, params = mlp()
    x, y = problem()
    args = dict(x=x, y=y, loss="mse")
    args.update({k: bad.pop(k) for k in list(bad) if k in args})
    bad.setdefault("progress", False)
    with pytest.raises(error, match=message):
        fit(model, params, args["loss"], sgd(0.1), args["x"], args["y"], **bad)


def test_predict_is_batched_inference():
    model, params = mlp(dropout=0.5)
    x, _ = problem(n=50)
    full = model(params, x)
    np.testing.assert_allclose(predict(model, params, x, batch_size=7), full, rtol=1e-6)
    np.testing.assert_array_equal(predict(model, params, x, batch_size=7),
                                  predict(model, params, x, batch_size=7))
    assert predict(model, params, x).shape == (50, 1)


def test_evaluate_matches_direct_computation():
    model, params = mlp()
    x, y = problem(n=40)
    pred = model(params, x)
    scores = evaluate(model, params, x, y, loss="mse", metrics=["mae", "rmse"], batch_size=16)
    assert scores["loss"] == pytest.approx(float(losses.mean_squared_error(pred, y)), rel=1e-6)
    assert scores["mae"] == pytest.approx(float(np.mean(np.abs(pred[:, 0] - y))), rel=1e-6)
    assert set(scores) == {"loss", "mae", "rmse"}
    with pytest.raises(DataError):
        evaluate(model, params, x, y[:5], loss="mse")
