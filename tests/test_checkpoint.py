"""Checkpoints: a resumed run ends bit-identical to an uninterrupted one; bad files fail."""
import os

import numpy as np
import pytest

from purenet.errors import ConfigError, ModelFileError
from purenet.io import save_model
from purenet.layers import Dense, Dropout, serial
from purenet.optim import adam, sgd
from purenet.random import key
from purenet.train import EarlyStopping, LambdaCallback, fit, load_checkpoint
from purenet.train.checkpoint import decode, encode
from purenet.tree import tree_astype, tree_leaves


def problem():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((48, 3)).astype(np.float32)
    return x, np.sin(x.sum(axis=1)).astype(np.float32)


def model_and_params(units=8):
    model = serial(Dense(units, "tanh"), Dropout(0.2), Dense(1))
    return model, model.init(key(0), (3,))[1]


def train(epochs, callbacks=(), units=8, optimizer=None, **kwargs):
    model, params = model_and_params(units)
    x, y = problem()
    kwargs.setdefault("progress", False)
    return fit(model, params, "mse", optimizer or sgd(0.05, momentum=0.9), x, y, epochs=epochs,
               batch_size=8, seed=5 if "resume_from" not in kwargs else None,
               validation_split=0.25, callbacks=list(callbacks), **kwargs)


def same(a, b):
    leaves_a, leaves_b = tree_leaves(a), tree_leaves(b)
    return len(leaves_a) == len(leaves_b) and all(
        np.array_equal(u, v) for u, v in zip(leaves_a, leaves_b))


def interrupt_at(epoch_to_stop):
    def hook(epoch, run):
        if epoch == epoch_to_stop:
            raise KeyboardInterrupt
    return LambdaCallback(on_epoch_begin=hook)


def test_resume_after_stopping_equals_an_uninterrupted_run(tmp_path):
    straight = train(4)
    train(2, checkpoint_dir=tmp_path)
    resumed = train(4, resume_from=tmp_path / "last.npz")
    assert same(resumed.params, straight.params)
    assert same(resumed.opt_state, straight.opt_state)
    assert resumed.history.history["loss"] == straight.history.history["loss"]
    assert resumed.history.history["val_loss"] == straight.history.history["val_loss"]


def test_resume_after_ctrl_c_equals_an_uninterrupted_run(tmp_path):
    straight = train(4)
    stopped = train(4, [interrupt_at(2)], checkpoint_dir=tmp_path)
    assert "interrupted" in stopped.history.stop_reason
    assert load_checkpoint(tmp_path, *trees_template()).epoch == 2
    resumed = train(4, resume_from=tmp_path)
    assert same(resumed.params, straight.params)


def trees_template(units=8, optimizer=None):
    _, params = model_and_params(units)
    return params, {}, (optimizer or sgd(0.05, momentum=0.9)).init(params)


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


def test_checkpoint_holds_the_run(tmp_path):
    train(3, checkpoint_dir=tmp_path)
    ckpt = load_checkpoint(tmp_path / "last.npz", *trees_template())
    assert (ckpt.epoch, ckpt.seed, len(ckpt.history)) == (3, 5, 3)
    assert ckpt.settings["batch_size"] == 8
    assert int(ckpt.opt_state[-1]["count"]) == 3 * 5     # 36 training rows / 8 = 5 steps
    best = load_checkpoint(tmp_path / "best.npz", *trees_template())
    val = ckpt.history.history["val_loss"]
    assert best.epoch == int(np.argmin(val)) + 1 and ckpt.best["value"] == min(val)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp")]


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
    with pytest.raises(ModelFileError, match="no such file"):
        load_checkpoint(tmp_path / "missing.npz", *trees_template())
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
    model, params = model_and_params()
    x, y = problem()
    with pytest.raises(ConfigError, match="seed"):
        fit(model, params, "mse", sgd(0.05, momentum=0.9), x, y, epochs=2, batch_size=8,
            seed=6, validation_split=0.25, resume_from=tmp_path, progress=False)


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
