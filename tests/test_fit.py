"""fit, evaluate and predict on problems small enough to train in milliseconds."""
import math
import warnings

import numpy as np
import pytest

from purenet import losses
from purenet.data import validation_split
from purenet.errors import ConfigError, DataError, ShapeError
from purenet.layers import BatchNorm, Dense, Dropout, serial
from purenet.optim import sgd
from purenet.random import key
from purenet.train import (LambdaCallback, TerminateOnNaN, evaluate, fit, predict,
                           predict_averaged)
from purenet.tree import tree_copy, tree_leaves


def problem(n=64, features=4, seed=0):
    """A noisy linear regression: ``(x, y)`` float32 with y of shape (n,)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype(np.float32)
    y = (x @ rng.standard_normal(features) + 0.1 * rng.standard_normal(n)).astype(np.float32)
    return x, y


def mlp(dropout=0.0, width=8):
    layers = [Dense(width, "relu")] + ([Dropout(dropout)] if dropout else []) + [Dense(1)]
    model = serial(*layers)
    _, params, _ = model.init(key(1), (4,))
    return model, params


def trees_equal(a, b):
    la, lb = tree_leaves(a), tree_leaves(b)
    return len(la) == len(lb) and all(np.array_equal(u, v) for u, v in zip(la, lb))


def train(epochs=3, seed=0, dropout=0.1, **kwargs):
    model, params = mlp(dropout)
    x, y = problem()
    kwargs.setdefault("verbose", 0)
    return fit(model, params, "mse", sgd(0.05, momentum=0.9), x, y, epochs=epochs,
               batch_size=16, seed=seed, **kwargs)


def batch_sizes():
    """A callback recording each batch's size, and the list it fills."""
    sizes = []
    return LambdaCallback(on_batch_end=lambda batch, logs, run: sizes.append(logs["size"])), sizes


# --- training ------------------------------------------------------------------------

def test_training_lowers_the_loss_and_keeps_float32():
    result = train(epochs=8, dropout=0.0)
    losses_ = result.history.history["loss"]
    assert losses_[-1] < 0.5 * losses_[0]
    assert all(leaf.dtype == np.float32 for leaf in tree_leaves(result.params))
    assert result.history.epoch == list(range(8))            # 0-based, as Keras stores it


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
               batch_size=16, opt_state=first.opt_state, initial_epoch=2, verbose=0)
    assert rest.history.epoch == [2, 3]
    assert trees_equal(rest.params, train(epochs=4).params)


def test_loss_by_name_or_primitive_agree():
    model, params = mlp()
    x, y = problem()
    opt = sgd(0.05)
    by_name = fit(model, params, "mse", opt, x, y, epochs=2, verbose=0)
    by_prim = fit(model, params, losses.mean_squared_error, opt, x, y, epochs=2, verbose=0)
    assert trees_equal(by_name.params, by_prim.params)


def test_float64_data_is_cast_to_the_params_dtype():
    model, params = mlp(0.0)
    x, y = problem()
    opt = sgd(0.05)
    wide = fit(model, params, "mse", opt, x.astype(np.float64), y.astype(np.float64),
               epochs=2, verbose=0)
    narrow = fit(model, params, "mse", opt, x, y, epochs=2, verbose=0)
    assert all(leaf.dtype == np.float32 for leaf in tree_leaves(wide.params))
    assert trees_equal(wide.params, narrow.params)


def test_shuffle_false_keeps_the_order_and_a_lone_last_example_joins_the_batch_before():
    seen = []

    def spy(xb, k):
        seen.append(xb.copy())
        return xb

    record, sizes = batch_sizes()
    model, params = mlp()
    x, y = problem(n=33)
    fit(model, params, "mse", sgd(0.01), x, y, epochs=2, batch_size=16, shuffle=False,
        augment=spy, callbacks=[record], verbose=0)
    assert sizes == [16, 17, 16, 17]                   # never a batch of one (batch norm)
    np.testing.assert_array_equal(np.concatenate(seen[:2]), x)
    np.testing.assert_array_equal(np.concatenate(seen[2:]), x)


def test_state_none_is_the_models_initial_state():
    model = serial(Dense(8), BatchNorm(), Dense(1))
    _, params, state = model.init(key(0), (4,))
    x, y = problem()
    given = fit(model, params, "mse", sgd(0.01), x, y, state=state, epochs=1, verbose=0)
    default = fit(model, params, "mse", sgd(0.01), x, y, epochs=1, verbose=0)
    assert trees_equal(given.state, default.state) and trees_equal(given.params, default.params)


# --- logs and metrics -------------------------------------------------------------

def test_logs_use_keras_names():
    result = train(validation_split=0.25, metrics=["mae", "r2"])
    logs = result.history.logs[-1]
    assert list(logs) == ["epoch", "loss", "mae", "r2", "val_loss", "val_mae", "val_r2", "lr",
                          "seconds"]
    assert result.history.stop_reason is None
    assert not result.history.interrupted and not result.history.diverged


def test_training_metrics_are_the_example_weighted_mean_over_the_batches():
    def mean_target(pred, target):
        return float(np.mean(target))

    record, sizes = batch_sizes()
    model, params = mlp()
    x, y = problem(n=40)
    result = fit(model, params, "mse", sgd(0.05), x, y, epochs=1, batch_size=16,
                 metrics=[mean_target], callbacks=[record], verbose=0)
    assert sizes == [16, 16, 8]
    assert result.history.logs[0]["mean_target"] == pytest.approx(float(np.mean(y)), rel=1e-5)


def test_training_accuracy_is_logged_beside_the_validation_accuracy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((80, 4)).astype(np.float32)
    labels = (x[:, 0] > 0).astype(np.int64)
    model = serial(Dense(2))
    _, params, _ = model.init(key(0), (4,))
    result = fit(model, params, "softmax_cross_entropy", sgd(0.5), x, labels, epochs=6,
                 batch_size=16, validation_split=0.25, metrics=["accuracy"], verbose=0)
    history = result.history.history
    assert 0 <= history["accuracy"][0] <= 1 and history["accuracy"][-1] > 0.8
    assert history["val_accuracy"][-1] > 0.8


def test_logs_the_learning_rate_of_each_epochs_first_update():
    from purenet.optim import adam, schedules
    from purenet.optim.transforms import GradientTransformation
    model, params = mlp()
    x, y = problem()                       # 64 examples: 8 steps of 8 per epoch
    schedule = schedules.exponential_decay(0.1, 0.0125, 24)   # halves every 8 steps
    history = fit(model, params, "mse", adam(schedule, clip_norm=1.0), x, y, epochs=3,
                  batch_size=8, verbose=0).history.history
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.025])
    bare = sgd(0.1)
    silent = GradientTransformation(bare.init, bare.update)          # reports no rate
    logs = fit(model, params, "mse", silent, x, y, epochs=1, verbose=0).history.logs[-1]
    assert "lr" not in logs


# --- validation ---------------------------------------------------------------------

def test_validation_split_is_held_out_training_data_and_deterministic():
    seen = []

    def spy(pred, target):
        seen.append(np.array(target))
        return 0.0

    x, y = problem()
    train(epochs=1, validation_split=0.25, metrics=[spy])      # 3 training batches, then
    train(epochs=1, validation_split=0.25, metrics=[spy])      # the validation set
    (_, _), (_, y_val) = validation_split(x, y, 0.25, 0)
    first, second = seen[3], seen[7]
    assert len(first) == math.ceil(0.25 * len(x))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, y_val)
    assert np.isin(first, y).all()


def test_validation_data_is_used_as_given():
    x_val, y_val = problem(n=10, seed=9)
    result = train(validation_data=(x_val, y_val))
    model, _ = mlp(0.1)
    expected = float(losses.mean_squared_error(model(result.params, x_val), y_val))
    assert result.history.logs[-1]["val_loss"] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("setting, evaluated", [
    (dict(validation_freq=2), [1, 3, 4]),          # every 2 epochs and the last one
    (dict(eval_every=2), [1, 3, 4]),               # the older name
    (dict(validation_freq=[1, 3]), [0, 2]),        # Keras's list of 1-based epochs
    (dict(validation_freq=1), [0, 1, 2, 3, 4]),
])
def test_validation_freq(setting, evaluated):
    result = train(epochs=5, validation_split=0.25, **setting)
    assert [e["epoch"] for e in result.history.logs if "val_loss" in e] == evaluated
    if evaluated[0]:
        assert result.history.history["val_loss"][0] is None


def test_no_validation_means_no_val_keys():
    assert "val_loss" not in train(epochs=1).history.logs[0]


# --- streams of batches ---------------------------------------------------------------

def in_order(x, y, size=16):
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def test_a_stream_of_batches_trains_like_the_same_arrays():
    model, params = mlp(0.1)
    x, y = problem()
    opt = sgd(0.05, momentum=0.9)
    arrays = fit(model, params, "mse", opt, x, y, epochs=3, batch_size=16, shuffle=False,
                 seed=2, verbose=0)
    pairs = in_order(x, y)
    endless = (pair for _ in range(3) for pair in pairs)          # one generator for the run
    streamed = fit(model, params, "mse", opt, endless, None, steps_per_epoch=4, epochs=3,
                   seed=2, verbose=0)
    reiterated = fit(model, params, "mse", opt, pairs, None, epochs=3, seed=2, verbose=0)
    per_epoch = fit(model, params, "mse", opt, lambda epoch: iter(pairs), None, epochs=3, seed=2,
                    verbose=0)
    for other in (streamed, reiterated, per_epoch):
        assert trees_equal(other.params, arrays.params)
        assert other.history.history["loss"] == arrays.history.history["loss"]


def test_a_stream_that_runs_out_stops_with_a_warning():
    model, params = mlp()
    x, y = problem()
    short = iter(in_order(x, y) * 2)                 # 8 batches for 3 epochs of 4
    with pytest.warns(RuntimeWarning, match="ran out in epoch 3"):
        result = fit(model, params, "mse", sgd(0.05), short, None, steps_per_epoch=4, epochs=3,
                     verbose=0)
    assert len(result.history) == 2 and "ran out" in result.history.stop_reason


def test_a_stream_is_validated_on_validation_data():
    model, params = mlp()
    x, y = problem()
    x_val, y_val = problem(n=10, seed=9)
    result = fit(model, params, "mse", sgd(0.05), in_order(x, y), None, epochs=2,
                 validation_data=(x_val, y_val), metrics=["mae"], verbose=0)
    assert {"mae", "val_loss", "val_mae"} <= set(result.history.logs[-1])


# --- how a run ends ---------------------------------------------------------------------

def test_nan_loss_stops_and_returns_finite_params():
    # the learning rate jumps to 1e30 after 10 steps (4 steps per epoch): epoch 3 diverges
    model, params = mlp()
    x, y = problem()
    opt = sgd(lambda step: 0.01 if step < 10 else 1e30)
    with pytest.warns(RuntimeWarning, match="non-finite training loss"), np.errstate(all="ignore"):
        result = fit(model, params, "mse", opt, x, y, epochs=6, batch_size=16, verbose=0)
    assert "non-finite" in result.history.stop_reason and result.history.diverged
    assert all(np.isfinite(leaf).all() for leaf in tree_leaves(result.params))
    assert len(result.history) < 6


def test_the_nan_warning_is_shown_every_time():
    model, params = mlp()
    x, y = problem()
    opt = sgd(lambda step: 0.01 if step < 6 else 1e30)
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("default")                   # Python's: once per place
        for _ in range(2):
            fit(model, params, "mse", opt, x, y, epochs=4, batch_size=16, verbose=0)
    assert sum("non-finite" in str(w.message) for w in caught) == 2


def test_nan_loss_returns_the_best_validation_params():
    snapshots = {}
    record = LambdaCallback(on_epoch_end=lambda e, logs, run: snapshots.update(
        {e: (logs.get("val_loss"), tree_copy(run.params))}))
    model, params = mlp()
    x, y = problem()
    opt = sgd(lambda step: 0.01 if step < 15 else 1e30)
    with pytest.warns(RuntimeWarning, match="best-validation"), np.errstate(all="ignore"):
        result = fit(model, params, "mse", opt, x, y, epochs=8, batch_size=16,
                     validation_split=0.25, callbacks=[record, TerminateOnNaN()], verbose=0)
    best_epoch = min(snapshots, key=lambda e: snapshots[e][0])
    assert trees_equal(result.params, snapshots[best_epoch][1])


def interrupt(when):
    """A callback raising KeyboardInterrupt (Ctrl-C) in epoch 2 (0-based), at ``when``."""
    if when == "epoch":
        def hook(epoch, run):
            if epoch == 2:
                raise KeyboardInterrupt
        return LambdaCallback(on_epoch_begin=hook)

    def batch_hook(batch, logs, run):
        if run.epoch == 2 and batch == 1:
            raise KeyboardInterrupt
    return LambdaCallback(on_batch_end=batch_hook)


@pytest.mark.parametrize("when", ["epoch", "batch"])
def test_ctrl_c_returns_the_last_completed_epoch_and_marks_the_history(when, capsys):
    result = train(epochs=4, callbacks=[interrupt(when)], verbose=2)
    assert result.history.interrupted and "interrupted" in result.history.stop_reason
    assert "epoch 3" in result.history.stop_reason            # 1-based in what users read
    assert len(result.history) == 2
    done = train(epochs=2)
    assert trees_equal(result.params, done.params) and trees_equal(result.opt_state, done.opt_state)
    assert "interrupted" in capsys.readouterr().out


def test_stopping_from_a_batch_drops_the_epoch():
    def stop(batch, logs, run):
        if run.epoch == 1 and batch == 2:
            run.stop("enough")
    result = train(epochs=4, callbacks=[LambdaCallback(on_batch_end=stop)])
    assert len(result.history) == 1 and result.history.stop_reason == "enough"
    assert trees_equal(result.params, train(epochs=1).params)


# --- bad input ------------------------------------------------------------------------

def wider_params():
    return mlp(width=16)[1]


def fewer_layers_params():
    return serial(Dense(8, "relu")).init(key(0), (4,))[1]


@pytest.mark.parametrize("bad, error, message", [
    (dict(x=np.zeros((5, 4), np.float32)), DataError, "x has 5 samples but y has 64"),
    (dict(x=np.full((64, 4), np.nan, np.float32)), DataError, "x has 256 non-finite"),
    (dict(y=np.full(64, np.inf, np.float32)), DataError, "y has 64 non-finite"),
    (dict(x=np.zeros((0, 4), np.float32), y=np.zeros(0, np.float32)), DataError, "empty"),
    (dict(x=[[1.0, 2.0, 3.0, 4.0], [1.0, 2.0]] * 32), DataError, "x is not a regular array"),
    (dict(x=np.array([["a", "b", "c", "d"]] * 64)), DataError, "x holds text"),
    (dict(y=["1.5"] * 64), DataError, "y holds text"),
    (dict(y=None), DataError, "y is None"),
    (dict(params=None), ConfigError, "params is None"),
    (dict(params=wider_params()), ShapeError, r"params\['dense_0'\]\['W'\] has shape \(4, 16\)"),
    (dict(params=fewer_layers_params()), ConfigError, "dense_1"),
    (dict(batch_size=0), ConfigError, "batch_size"),
    (dict(epochs=0), ConfigError, "epochs"),
    (dict(epochs=2.5), ConfigError, "epochs"),
    (dict(eval_every=-1), ConfigError, "eval_every"),
    (dict(validation_freq=0), ConfigError, "validation_freq"),
    (dict(validation_freq=[0, 2]), ConfigError, "validation_freq"),
    (dict(validation_split=1.0), ConfigError, "validation_split"),
    (dict(validation_split="0.2"), ConfigError, "validation_split"),
    (dict(progress="fancy"), ConfigError, "progress"),
    (dict(verbose=3), ConfigError, "verbose"),
    (dict(shuffle="yes"), ConfigError, "shuffle"),
    (dict(steps_per_epoch=4), ConfigError, "steps_per_epoch"),
    (dict(metrics=["f1"]), ConfigError, "unknown metric"),
    (dict(loss=lambda pred, target: 0.0), ConfigError, "does not depend on the prediction"),
    (dict(loss="hinge"), ConfigError, "unknown loss"),
    (dict(callbacks=[print]), ConfigError, "not a callback"),
    (dict(optimizer=sgd(lambda step: -0.1)), ConfigError, "learning rate at step 0 is -0.1"),
    (dict(optimizer=sgd(lambda step: 0.1 if step < 5 else float("nan")), epochs=4), ConfigError,
     "learning rate at step 5 is nan"),
    (dict(validation_data=(np.zeros((3, 4), np.float32), np.full(3, np.nan, np.float32))),
     DataError, "validation y"),
])
def test_bad_input_is_rejected_with_an_error_naming_it(bad, error, message):
    model, params = mlp()
    x, y = problem()
    args = dict(x=x, y=y, loss="mse", params=params, optimizer=sgd(0.1))
    args.update({k: bad.pop(k) for k in list(bad) if k in args})
    bad.setdefault("verbose", 0)
    with pytest.raises(error, match=message):
        fit(model, args["params"], args["loss"], args["optimizer"], args["x"], args["y"], **bad)


def test_data_checks_are_exact_when_the_sum_overflows():
    model, params = mlp()
    x = np.full((64, 4), 3e38, np.float32)      # the sum overflows; every value is finite
    x[5, 2] = np.inf
    with pytest.raises(DataError, match=r"index \(5, 2\)"):
        fit(model, params, "mse", sgd(0.1), x, np.zeros(64, np.float32), verbose=0)


def test_a_checkpoint_directory_that_is_a_file_fails_before_training(tmp_path):
    ran = []
    path = tmp_path / "ckpt"
    path.write_text("not a directory")
    with pytest.raises(ConfigError, match="is a file"):
        train(checkpoint_dir=path,
              callbacks=[LambdaCallback(on_train_begin=lambda run: ran.append(1))])
    assert not ran


# --- predict and evaluate -------------------------------------------------------------

def test_predict_is_batched_inference():
    model, params = mlp(dropout=0.5)
    x, _ = problem(n=50)
    full = model(params, x)
    np.testing.assert_allclose(predict(model, params, x, batch_size=7), full, rtol=1e-6)
    np.testing.assert_array_equal(predict(model, params, x, batch_size=7),
                                  predict(model, params, x, batch_size=7))
    assert predict(model, params, x).shape == (50, 1)


def test_predict_averaged_is_the_mean_softmax_over_the_views():
    from purenet.ops import softmax
    model = serial(Dense(5, "tanh"), Dense(3))
    _, params, _ = model.init(key(0), (4,))
    x, _ = problem(n=20)
    reverse = lambda batch: batch[:, ::-1]
    np.testing.assert_allclose(predict_averaged(model, params, x, [lambda b: b]),
                               softmax(model(params, x)), rtol=1e-6)
    both = predict_averaged(model, params, x, [lambda b: b, reverse], batch_size=6)
    want = (softmax(model(params, x)) + softmax(model(params, x[:, ::-1]))) / 2
    np.testing.assert_allclose(both, want, rtol=1e-6)
    np.testing.assert_allclose(both.sum(axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ConfigError, match="views is empty"):
        predict_averaged(model, params, x, [])


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


@pytest.mark.parametrize("stream, message", [
    ([[1.0, 2.0], [3.0, 4.0]], "not a pair of arrays"),
    ([(np.zeros((4, 4), np.float32),)], "not an \\(x_batch, y_batch\\) pair"),
    ([(np.full((4, 4), np.nan, np.float32), np.zeros(4, np.float32))], "batch 1 of epoch 1"),
    ([(np.zeros((4, 4), np.float32), np.zeros(3, np.float32))], "has 4 samples but"),
    ([], "no batches"),
    (42, "x must be arrays, an iterable"),
])
def test_a_bad_stream_is_an_error_naming_x(stream, message):
    model, params = mlp()
    with pytest.raises(DataError, match=message):
        fit(model, params, "mse", sgd(0.1), stream, None, verbose=0)
