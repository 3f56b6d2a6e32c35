"""Model files: round trip in a new process, clear errors for bad files."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from purenet.errors import ConfigError, ModelFileError, ShapeError
from purenet.files import load_arrays, save_arrays
from purenet.files import write_json
from purenet.io import layer_from_config, layer_to_config, load_model, save_model
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


def test_params_that_do_not_match_the_architecture_are_not_saved(saved, tmp_path):
    path, model, params = saved
    params["dense_2"]["W"] = np.zeros((6, 7), np.float32)
    bad = tmp_path / "bad.npz"
    with pytest.raises(ShapeError, match=r"bad.npz: params\['dense_2'\]\['W'\] has shape "
                                         r"\(6, 7\), the model expects \(6, 5\)"):
        save_model(bad, model, params, in_shape=(6,))
    assert not bad.exists()


def test_a_file_with_mismatched_arrays_is_a_clear_error(saved):
    path, model, params = saved
    arrays, meta = load_arrays(path)
    arrays["params/dense_2/W"] = np.zeros((6, 7), np.float32)
    save_arrays(path, arrays, meta)
    with pytest.raises(ModelFileError, match=r"dense_2/W.*\(6, 7\).*\(6, 5\)"):
        load_model(path)


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


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_are_written_with_the_users_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_json(tmp_path / "new.json", {"a": 1})
        (tmp_path / "old.json").write_text("{}")
        os.chmod(tmp_path / "old.json", 0o600)
        write_json(tmp_path / "old.json", {"a": 2})
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "new.json").st_mode & 0o777 == mode
    assert os.stat(tmp_path / "old.json").st_mode & 0o777 == mode


def test_the_temporary_file_is_recognisable_and_removed_on_failure(tmp_path):
    from purenet.files import atomic_write
    seen = []

    def failing(f):
        seen.extend(os.listdir(tmp_path))
        f.write(b"partial")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "model.npz", failing)
    assert len(seen) == 1 and seen[0].startswith(".model.npz.tmp-")
    assert os.listdir(tmp_path) == []


def test_missing_parent_directories_are_made(tmp_path):
    write_json(tmp_path / "a" / "b" / "out.json", [1])
    assert json.loads((tmp_path / "a" / "b" / "out.json").read_text()) == [1]


def test_a_stateful_layers_carry_is_not_saved(tmp_path):
    from purenet.layers import LSTM
    model = serial(LSTM(3, stateful=True), Dense(2))
    _, params, state = model.init(key(0), (4, 2))
    x = np.random.default_rng(0).standard_normal((5, 4, 2)).astype(np.float32)
    _, state = model.apply(params, state, x)
    assert "carry" in state["lstm_0"]
    save_model(tmp_path / "m.npz", model, params, state, in_shape=(4, 2))
    _, params2, state2, _ = load_model(tmp_path / "m.npz")
    assert state2 == {"lstm_0": {}, "dense_1": {}}
    np.testing.assert_array_equal(model(params2, x, state2), model(params, x))


# --- plots ---------------------------------------------------------------------------

def test_plots_return_figures_and_leave_matplotlib_alone(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    from matplotlib import image
    from matplotlib.figure import Figure

    from purenet import plots
    backend = matplotlib.get_backend()
    pyplot = sys.modules.get("matplotlib.pyplot")
    open_figures = pyplot.get_fignums() if pyplot else None
    history = {"loss": [1.0, 0.5, 0.3], "val_loss": [None, 0.6, 0.4], "val_accuracy": [None, 0.7, 0.8]}
    figures = {
        "curves.png": plots.plot_curves({"": history}, tmp_path / "curves.png",
                                        keys=[(("loss", "val_loss"), "loss"),
                                              (("val_accuracy",), "accuracy")], title="t"),
        "cm.png": plots.plot_confusion_matrix(np.array([[5, 1], [2, 7]]), ["a", "b"],
                                              tmp_path / "cm.png"),
        "grid.png": plots.plot_image_grid(np.zeros((3, 1, 4, 4)), [0, 1, 1], [0, 1, 0],
                                          ["a", "b"], tmp_path / "grid.png"),
    }
    assert all(isinstance(f, Figure) for f in figures.values())
    assert sorted(os.listdir(tmp_path)) == sorted(figures)          # no temporary files left
    for name in figures:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        height, width = image.imread(tmp_path / name).shape[:2]
        assert height > 100 and width > 100
    assert matplotlib.get_backend() == backend
    if pyplot:
        assert pyplot.get_fignums() == open_figures
    assert isinstance(plots.plot_curves({"": history}), Figure)       # no path: nothing written
    assert len(os.listdir(tmp_path)) == 3
