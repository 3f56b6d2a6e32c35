"""Model files: round trip in a new process, clear errors for bad files."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from purenet.errors import ConfigError, ModelFileError
from purenet.io import layer_from_config, layer_to_config, load_model, save_model, write_json
from purenet.layers import Dense, Dropout, Flatten, Reshape, serial
from purenet.ops import primitive
from purenet.random import key


def small_model():
    return serial(Reshape((2, 3)), Flatten(), Dense(5, "relu", w_init="he_normal"), Dropout(0.1),
                  serial(Dense(4, "tanh"), Dense(2)))


@pytest.fixture
def saved(tmp_path):
    model = small_model()
    _, params, state = model.init(key(1), (6,))
    path = tmp_path / "model.npz"
    save_model(path, model, params, state, in_shape=(6,), extra={"note": "test"})
    return path, model, params


def test_round_trip_in_a_new_process(saved, tmp_path):
    path, model, params = saved
    x = np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    script = ("import sys, numpy as np; from purenet.io import load_model;"
              "m, p, s, meta = load_model(sys.argv[1]);"
              "np.save(sys.argv[3], m(p, np.load(sys.argv[2]), s))")
    subprocess.run([sys.executable, "-c", script, str(path), str(tmp_path / "x.npy"),
                    str(tmp_path / "y.npy")], check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), model(params, x))


def test_metadata_and_architecture_survive(saved):
    path, model, _ = saved
    _, _, _, meta = load_model(path)
    assert meta["extra"] == {"note": "test"}
    assert meta["in_shape"] == [6]
    assert meta["architecture"] == layer_to_config(model)
    assert layer_to_config(layer_from_config(meta["architecture"])) == meta["architecture"]


def test_truncated_file(saved):
    path = saved[0]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated or corrupted"):
        load_model(path)


def test_corrupted_bytes(saved):
    path = saved[0]
    data = bytearray(path.read_bytes())
    for i in range(200, 260):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError):
        load_model(path)


def test_not_a_model_file_and_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        load_model(tmp_path / "nope.npz")
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(ModelFileError, match="not a purenet file"):
        load_model(tmp_path / "plain.npz")


def test_params_that_do_not_match_the_architecture(saved, tmp_path):
    path, model, params = saved
    params["dense_2"]["W"] = np.zeros((6, 7), np.float32)
    bad = tmp_path / "bad.npz"
    save_model(bad, model, params, in_shape=(6,))
    with pytest.raises(ModelFileError, match=r"dense_2/W.*\(6, 7\).*\(6, 5\)"):
        load_model(bad)


def test_unsaveable_custom_activation_is_a_clear_error(tmp_path):
    @primitive
    def mystery(x):
        return x, lambda g: (g,)

    model = serial(Dense(2, mystery))
    _, params, _ = model.init(key(0), (3,))
    with pytest.raises(ConfigError, match="cannot be saved"):
        save_model(tmp_path / "m.npz", model, params, in_shape=(3,))
    assert not os.listdir(tmp_path)   # nothing half-written left behind


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "out.json"
    write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["out.json"]
