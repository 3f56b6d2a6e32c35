"""``purenet export``: a saved model as ONNX (run in ONNX Runtime) or safetensors (read by
purenet and the safetensors package), and one-line errors when it cannot be done."""
import subprocess
import sys

import numpy as np
import pytest

import purenet as pn
from purenet.cli import main
from purenet.recipes.autoencoder_model import autoencoder


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A saved autoencoder (the recipe's architecture; init weights are enough here)."""
    d = tmp_path_factory.mktemp("export")
    model = autoencoder(7)
    _, params, state = model.init(pn.key(3), (1, 28, 28))
    pn.save_model(d / "autoencoder.npz", model, params, state, in_shape=(1, 28, 28),
                  extra={"recipe": "autoencoder", "latent": 7})
    (d / "afile").write_text("in the way")
    return d


def images(n=5):
    return np.random.default_rng(0).random((n, 1, 28, 28)).astype(np.float32)


def one_line_error(capsys, argv, *names):
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("purenet: error: "), err
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


def test_onnx_export_runs_in_onnx_runtime_and_matches(saved, tmp_path, capsys):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    target = tmp_path / "ae.onnx"
    assert main(["export", saved / "autoencoder.npz", "--format", "onnx", "-o", target]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {target}"
    model, params, state, _ = pn.load_model(saved / "autoencoder.npz")
    x = images()
    expected = model(params, x, state)
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x})[0]
    assert got.shape == expected.shape == (5, 1, 28, 28)
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()


def test_the_default_output_is_the_model_path_with_the_new_extension(saved, capsys):
    pytest.importorskip("onnx")
    for fmt in ("onnx", "safetensors"):
        assert main(["export", saved / "autoencoder.npz", "--format", fmt]) == 0
        assert (saved / f"autoencoder.{fmt}").stat().st_size > 0
        assert capsys.readouterr().out.strip() == f"wrote {saved / f'autoencoder.{fmt}'}"


def test_safetensors_export_loads_back_and_is_read_by_the_package(saved, tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    target = tmp_path / "ae.safetensors"
    assert main(["export", saved / "autoencoder.npz", "--format", "safetensors", "-o",
                 target]) == 0
    model, params, state, meta = pn.load_model(saved / "autoencoder.npz")
    model2, params2, state2, meta2 = pn.load_model(target)
    assert meta2["extra"] == meta["extra"] and meta2["in_shape"] == meta["in_shape"]
    x = images(2)
    np.testing.assert_array_equal(model2(params2, x, state2), model(params, x, state))
    arrays = safetensors_numpy.load_file(str(target))
    np.testing.assert_array_equal(arrays["encoder/dense_3/W"],
                                  params["encoder"]["dense_3"]["W"])
    # a safetensors model is a model file like any other: it exports to ONNX too
    pytest.importorskip("onnx")
    assert main(["export", target, "--format", "onnx"]) == 0
    assert (tmp_path / "ae.onnx").exists()


def test_export_in_a_new_process(saved, tmp_path):
    target = tmp_path / "out.safetensors"
    result = subprocess.run([sys.executable, "-m", "purenet", "export",
                             str(saved / "autoencoder.npz"), "--format", "safetensors",
                             "--output", str(target)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout == f"wrote {target}\n"
    assert pn.load_model(target)[3]["extra"]["recipe"] == "autoencoder"


def test_without_onnx_installed(saved, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)       # import onnx now fails
    message = one_line_error(capsys, ["export", saved / "autoencoder.npz", "--format", "onnx",
                                      "-o", tmp_path / "m.onnx"], "onnx", "pip install")
    assert "Traceback" not in message
    assert not (tmp_path / "m.onnx").exists()


def test_a_layer_onnx_cannot_express(tmp_path, capsys):
    pytest.importorskip("onnx")

    def cube_for_export_test(z):
        return z * z * z
    pn.ops.activations.register(cube_for_export_test)
    model = pn.serial(pn.Dense(3, activation=cube_for_export_test, name="cubic"))
    _, params, state = model.init(pn.key(0), (2,))
    pn.save_model(tmp_path / "m.npz", model, params, state, in_shape=(2,))
    one_line_error(capsys, ["export", tmp_path / "m.npz", "--format", "onnx"],
                   "cubic", "cube_for_export_test", "no ONNX form")
    assert not (tmp_path / "m.onnx").exists()
    assert main(["export", tmp_path / "m.npz", "--format", "safetensors"]) == 0   # arrays: fine


@pytest.mark.parametrize("fmt", ["onnx", "safetensors"])
def test_an_output_that_cannot_be_written(saved, capsys, fmt):
    pytest.importorskip("onnx")
    one_line_error(capsys, ["export", saved / "autoencoder.npz", "--format", fmt, "-o",
                            saved / "afile" / f"m.{fmt}"], "afile", "not a directory")
    one_line_error(capsys, ["export", saved / "autoencoder.npz", "--format", fmt, "-o", saved],
                   saved, "directory")


def test_the_model_file_itself_is_never_the_output(saved, tmp_path, capsys):
    target = tmp_path / "m.safetensors"
    assert main(["export", saved / "autoencoder.npz", "--format", "safetensors", "-o",
                 target]) == 0
    capsys.readouterr()
    before = target.read_bytes()
    one_line_error(capsys, ["export", target, "--format", "safetensors"], target, "-o FILE")
    assert target.read_bytes() == before


def test_bad_arguments_and_files(saved, tmp_path, capsys):
    one_line_error(capsys, ["export", saved / "autoencoder.npz"], "--format")
    one_line_error(capsys, ["export", saved / "autoencoder.npz", "--format", "onx"],
                   "--format", "onx")
    one_line_error(capsys, ["export", saved / "afile", "--format", "safetensors"], "afile")
    one_line_error(capsys, ["export", tmp_path / "missing.npz", "--format", "onnx"],
                   "missing.npz")
    assert not (tmp_path / "missing.onnx").exists()
