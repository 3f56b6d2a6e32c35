"""Checkpoints: a resumed run ends bit-identical to an uninterrupted one (callback
states, a reduced learning rate and streams included); other data, settings or
files are refused with errors that say why."""
import os

import numpy as np
import pytest

from purenet.errors import ConfigError, ModelFileError
from purenet.io import save_model
from purenet.layers import Dense, Dropout, serial
from purenet.optim import adam, lr_scale, sgd
from purenet.random import fold_in, generator, key
from purenet.train import (BackupAndRestore, EarlyStopping, LambdaCallback, ReduceLROnPlateau,
                           fit, load_checkpoint)
from purenet.train.checkpoint import array_fingerprint, decode, encode, fingerprint_differences
from purenet.tree import tree_astype, tree_leaves


def problem():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((48, 3)).astype(np.float32)
    return x, np.sin(x.sum(axis=1)).astype(np.float32)


def model_and_params(units=8):
    model = serial(Dense(units, "tanh"), Dropout(0.2), Dense(1))
    return model, model.init(key(0), (3,))[1]


def train(epochs, callbacks=(), units=8, optimizer=None, data=None, loss="mse", **kwargs):
    model, params = model_and_params(units)
    x, y = data or problem()
    kwargs.setdefault("verbose", 0)
    kwargs.setdefault("seed", None if "resume_from" in kwargs else 5)
    return fit(model, params, loss, optimizer or sgd(0.05, momentum=0.9), x, y, epochs=epochs,
               batch_size=8, validation_split=0.25, callbacks=list(callbacks), **kwargs)


def same(a, b):
    leaves_a, leaves_b = tree_leaves(a), tree_leaves(b)
    return len(leaves_a) == len(leaves_b) and all(
        np.array_equal(u, v) for u, v in zip(leaves_a, leaves_b))


def logged(result):
    return [{k: v for k, v in e.items() if k != "seconds"} for e in result.history.logs]


def same_run(a, b):
    """Bit-identical trees and logs (but the timings), and the same ending."""
    return (same(a.params, b.params) and same(a.opt_state, b.opt_state)
            and logged(a) == logged(b) and a.history.stop_reason == b.history.stop_reason)


def interrupt_at(epoch_to_stop):
    def hook(epoch, run):
        if epoch == epoch_to_stop:
            raise KeyboardInterrupt
    return LambdaCallback(on_epoch_begin=hook)


def trees_template(units=8, optimizer=None):
    _, params = model_and_params(units)
    return params, {}, (optimizer or sgd(0.05, momentum=0.9)).init(params)


# --- bit-exact resume ------------------------------------------------------------------

def test_resume_after_stopping_equals_an_uninterrupted_run(tmp_path):
    straight = train(4)
    train(2, checkpoint_dir=tmp_path)
    resumed = train(4, resume_from=tmp_path / "last.npz")
    assert same_run(resumed, straight)


def test_resume_after_ctrl_c_equals_an_uninterrupted_run(tmp_path):
    straight = train(4)
    stopped = train(4, [interrupt_at(2)], checkpoint_dir=tmp_path)
    assert stopped.history.interrupted and "interrupted" in stopped.history.stop_reason
    assert load_checkpoint(tmp_path, *trees_template()).epoch == 2
    resumed = train(4, resume_from=tmp_path)
    assert same_run(resumed, straight) and not resumed.history.interrupted


def test_backup_and_restore_resumes_by_itself_as_in_keras(tmp_path):
    straight = train(4)
    train(4, [interrupt_at(3), BackupAndRestore(tmp_path)])
    resumed = train(4, [BackupAndRestore(tmp_path)], seed=None)
    assert same_run(resumed, straight)
    fresh = train(2, [BackupAndRestore(tmp_path, resume=False)])
    assert len(fresh.history) == 2 and load_checkpoint(tmp_path, *trees_template()).epoch == 2


def test_early_stopping_state_survives_a_resume(tmp_path):
    def stopper():
        return EarlyStopping(patience=1, restore_best_weights=True)
    straight = train(40, [stopper()])
    assert straight.history.stop_reason.startswith("early stopping")
    n = len(straight.history)
    train(40, [stopper(), interrupt_at(n - 1)], checkpoint_dir=tmp_path)
    resumed = train(40, [stopper(), interrupt_at(-1)], resume_from=tmp_path)
    assert len(resumed.history) == n
    assert resumed.history.stop_reason == straight.history.stop_reason
    assert same(resumed.params, straight.params)


def test_a_reduced_learning_rate_survives_a_resume(tmp_path):
    def reducer():
        return ReduceLROnPlateau(factor=0.5, patience=1, min_delta=0.0)
    straight = train(12, [reducer()], optimizer=adam(0.05))
    rates = straight.history.history["lr"]
    cut = next(e for e in range(1, 12) if rates[e] < rates[e - 1])
    assert cut < 10, "the case must lower the rate before the interruption"
    train(12, [reducer(), interrupt_at(10)], optimizer=adam(0.05), checkpoint_dir=tmp_path)
    ckpt = load_checkpoint(tmp_path, *trees_template(optimizer=adam(0.05)))
    assert lr_scale(ckpt.opt_state) < 1.0
    resumed = train(12, [reducer()], optimizer=adam(0.05), resume_from=tmp_path)
    assert resumed.history.history["lr"] == rates
    assert same_run(resumed, straight)


def test_a_stream_resumes_where_it_stopped(tmp_path):
    x, y = problem()

    def stream(seed):
        """Endless shuffled batches, each pass derived from the seed."""
        for n in range(10 ** 6):
            order = generator(fold_in(key(seed), n)).permutation(len(x))
            for i in range(0, len(x), 12):
                yield x[order[i:i + 12]], y[order[i:i + 12]]

    model, params = model_and_params()

    def run(epochs, **kwargs):
        return fit(model, params, "mse", sgd(0.05, momentum=0.9), stream(3), None,
                   steps_per_epoch=3, epochs=epochs, validation_data=(x[:8], y[:8]),
                   verbose=0, **kwargs)

    straight = run(5)
    run(5, callbacks=[interrupt_at(3)], checkpoint_dir=tmp_path)
    resumed = run(5, resume_from=tmp_path)
    assert same_run(resumed, straight)


# --- what a checkpoint holds ---------------------------------------------------------

def test_checkpoint_holds_the_run(tmp_path):
    train(3, checkpoint_dir=tmp_path)
    ckpt = load_checkpoint(tmp_path / "last.npz", *trees_template())
    assert (ckpt.epoch, ckpt.seed, len(ckpt.history)) == (3, 5, 3)
    assert ckpt.fingerprint["settings"]["batch_size"] == 8
    assert ckpt.fingerprint["settings"]["loss"] == "mean_squared_error"
    assert ckpt.fingerprint["data"]["x"]["shape"] == [36, 3]
    assert int(ckpt.opt_state[-1]["count"]) == 3 * 5     # 36 training rows / 8 = 5 steps
    assert [c["type"] for c in ckpt.callbacks] == ["TerminateOnNaN", "BackupAndRestore"]
    best = load_checkpoint(tmp_path / "best.npz", *trees_template())
    val = ckpt.history.history["val_loss"]
    assert best.epoch == int(np.argmin(val)) + 1 and ckpt.best["value"] == min(val)
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]


def test_fingerprints_tell_data_apart_cheaply():
    x = np.arange(12.0, dtype=np.float32).reshape(4, 3)
    assert array_fingerprint(x) == array_fingerprint(x.copy())
    changed = x.copy()
    changed[3, 2] += 1
    assert array_fingerprint(changed)["digest"] != array_fingerprint(x)["digest"]
    saved = {"settings": {"loss": "mse", "batch_size": 8},
             "data": {"x": array_fingerprint(x)}}
    now = {"settings": {"loss": "binary_cross_entropy", "batch_size": 8},
           "data": {"x": array_fingerprint(changed[:3])}}
    assert fingerprint_differences(saved, saved) == []
    assert fingerprint_differences(saved, now) == [
        "loss was 'mse', now 'binary_cross_entropy'",
        "x was float32 of shape (4, 3), now float32 of shape (3, 3)"]


@pytest.mark.parametrize("change, message", [
    (dict(data=(problem()[0] + 1, problem()[1])), "x has the same shape"),
    (dict(data=(problem()[0][:40], problem()[1][:40])), r"x was float32 of shape \(36, 3\)"),
    (dict(loss="binary_cross_entropy"), "loss was 'mean_squared_error'"),
    (dict(shuffle=False), "shuffle was True, now False"),
])
def test_resuming_with_other_data_or_settings_is_refused(tmp_path, change, message):
    train(1, checkpoint_dir=tmp_path)
    with pytest.raises(ConfigError, match=f"cannot resume from .*{message}"):
        train(2, resume_from=tmp_path, **change)


def test_a_checkpoint_for_another_model_or_optimizer_is_refused(tmp_path):
    train(1, checkpoint_dir=tmp_path)
    with pytest.raises(ModelFileError, match="shape"):
        train(2, units=4, resume_from=tmp_path)
    with pytest.raises(ModelFileError, match="missing array 'opt_state/"):
        train(2, optimizer=adam(0.01), resume_from=tmp_path)
    params, state, opt_state = trees_template()
    with pytest.raises(ModelFileError, match="dtype"):
        load_checkpoint(tmp_path, tree_astype(params, np.float64), state, opt_state)


def test_unreadable_files_raise_model_file_errors(tmp_path):
    with pytest.raises(ModelFileError, match="no such"):
        load_checkpoint(tmp_path / "missing.npz", *trees_template())
    with pytest.raises(ModelFileError, match="no such checkpoint"):
        train(2, resume_from=tmp_path / "missing.npz")
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelFileError):
        load_checkpoint(broken, *trees_template())
    model, params = model_and_params()
    save_model(tmp_path / "model.npz", model, params, in_shape=(3,))
    with pytest.raises(ModelFileError, match="not a purenet checkpoint"):
        load_checkpoint(tmp_path / "model.npz", *trees_template())


def test_resume_checks_the_seed(tmp_path):
    train(1, checkpoint_dir=tmp_path)
    with pytest.raises(ConfigError, match="seed"):
        train(2, seed=6, resume_from=tmp_path)


def test_backup_dir_settings_are_checked_before_training(tmp_path):
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        BackupAndRestore(afile)
    with pytest.raises(ConfigError, match="backup_dir"):
        BackupAndRestore(None)
    with pytest.raises(ConfigError, match="not both"):
        train(1, resume_from=tmp_path, initial_epoch=1)
    with pytest.raises(ConfigError, match="one BackupAndRestore"):
        train(1, [BackupAndRestore(tmp_path / "a")], checkpoint_dir=tmp_path / "b")


def test_callback_state_encoding_round_trips():
    value = {"best": float("inf"), "pair": (1, [2.5, None]), "w": np.arange(3.0),
             "tree": {"dense_0": {"W": np.ones((2, 2), np.float32)}}, "n": np.int64(4)}
    arrays = {}
    encoded = encode(value, "callbacks/0", arrays)
    assert sorted(arrays) == ["callbacks/0/tree/dense_0/W", "callbacks/0/w"]
    back = decode(encoded, arrays)
    assert back["best"] == float("inf") and back["pair"] == (1, [2.5, None]) and back["n"] == 4
    assert back["tree"]["dense_0"]["W"].dtype == np.float32
    np.testing.assert_array_equal(back["w"], value["w"])
