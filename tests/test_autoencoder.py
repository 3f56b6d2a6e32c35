"""The chapter-7 autoencoder: the recipe end to end on a small synthetic IDX directory,
``encode`` in a new process, and the pieces (linear probe, PCA, plots) on their own."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

import purenet as pn
from purenet.cli import main
from purenet.errors import ConfigError
from purenet.recipes import autoencoder as recipe
from purenet.recipes.autoencoder_model import (autoencoder, embed_2d, encode, linear_probe, pca,
                                               pca_2d, reconstruction_mse)
from purenet.train import Callback
from synthetic import synthetic_images, write_idx_dataset

LATENT = 6


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    return write_idx_dataset(tmp_path_factory.mktemp("idx"), 200, 50)


def train_args(idx_dir, out, epochs=1):
    return ["train", "autoencoder", "--data-dir", str(idx_dir), "--epochs", str(epochs),
            "--latent", str(LATENT), "--batch-size", "32", "--out", str(out), "--no-progress"]


@pytest.fixture(scope="module")
def trained(idx_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(train_args(idx_dir, out)) == 0
    return out


def test_the_run_writes_every_file(trained):
    for png in ("reconstructions.png", "latent.png", "learning_curves.png"):
        assert (trained / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    model, params, state, meta = pn.load_model(trained / "autoencoder.npz")
    assert meta["extra"]["recipe"] == "autoencoder" and meta["extra"]["latent"] == LATENT
    assert meta["extra"]["classes"] == [str(i) for i in range(10)]     # not Fashion-MNIST's
    assert meta["in_shape"] == [1, 28, 28]
    assert encode(model, params, np.zeros((2, 1, 28, 28), np.float32), state).shape == (2, LATENT)
    assert not (trained / "interrupted").exists() and not (trained / "diverged").exists()


def test_the_metrics_are_there_and_sane(trained):
    report = json.loads((trained / "metrics.json").read_text())
    assert report["status"] == "complete" and report["epochs"] == report["epochs_requested"] == 1
    assert report["latent"] == LATENT and report["batch_size"] == 32
    assert 0 < report["test_reconstruction_mse"] < 0.25         # pixels are in [0, 1]
    assert 0 <= report["linear_probe_test_accuracy"] <= 1
    assert report["linear_probe_test_accuracy"] > 0.3           # the bars are easy to tell apart
    probe = report["linear_probe"]
    assert probe["epochs"] == recipe.PROBE_EPOCHS and 0 <= probe["val_accuracy"] <= 1
    assert report["latent_2d"]["method"] in ("PCA", "t-SNE")
    assert report["latent_2d"]["points"] == 50                 # every test image, fewer than 3,000
    logs = report["history"]["logs"]
    assert len(logs) == 1 and logs[0]["loss"] > 0 and logs[0]["val_loss"] > 0
    assert len(report["seconds_per_epoch"]) == 1 and report["wall_seconds"] > 0


def test_encode_in_a_new_process(trained, tmp_path):
    images, _ = synthetic_images(3, seed=7)
    np.save(tmp_path / "three.npy", images)
    from PIL import Image
    Image.fromarray(images[0]).save(tmp_path / "one.png")
    command = [sys.executable, "-m", "purenet", "encode", str(trained / "autoencoder.npz"),
               str(tmp_path / "three.npy"), str(tmp_path / "one.png")]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    lines = out.strip().splitlines()
    assert len(lines) == 4
    assert lines[0].startswith(f"{tmp_path / 'three.npy'}[0]: ")
    assert lines[3].startswith(f"{tmp_path / 'one.png'}: ")
    model, params, state, _ = pn.load_model(trained / "autoencoder.npz")
    codes = encode(model, params, images[:, None].astype(np.float32) / 255, state)
    printed = np.array([[float(c) for c in line.split(": ")[1].split()] for line in lines])
    assert printed.shape == (4, LATENT)
    np.testing.assert_allclose(printed[:3], codes, atol=1e-4)
    np.testing.assert_allclose(printed[3], codes[0], atol=1e-4)     # the PNG of image 0


def test_encode_refuses_a_model_that_is_not_an_autoencoder(tmp_path, capsys):
    model = pn.serial(pn.Flatten(), pn.Dense(10))
    _, params, state = model.init(pn.key(0), (1, 28, 28))
    pn.save_model(tmp_path / "classifier.npz", model, params, state, in_shape=(1, 28, 28),
                  extra={"recipe": "fashion-mnist"})
    np.save(tmp_path / "x.npy", np.zeros((1, 28, 28), np.uint8))
    assert main(["encode", tmp_path / "classifier.npz", tmp_path / "x.npy"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "classifier.npz" in err[0] and "autoencoder" in err[0]


class _CtrlC(Callback):
    def on_batch_end(self, batch, logs, run):
        if run.epoch == 1 and batch == 1:
            raise KeyboardInterrupt


def digest(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def test_ctrl_c_keeps_the_finished_run_and_writes_the_last_epoch(trained, idx_dir, tmp_path,
                                                                monkeypatch, capsys):
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    before = digest(out)
    real_fit = recipe.fit
    monkeypatch.setattr(recipe, "fit", lambda *a, **k: real_fit(*a, callbacks=[_CtrlC()], **k))
    assert main(train_args(idx_dir, out, epochs=3)) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("purenet: interrupted")
    assert digest(out) == before
    report = json.loads((out / "interrupted" / "metrics.json").read_text())
    assert report["interrupted"] is True and report["epochs"] == 1
    assert report["test_reconstruction_mse"] is None and report["linear_probe"] is None
    assert (out / "interrupted" / "autoencoder.npz").exists()
    assert (out / "interrupted" / "learning_curves.png").exists()
    assert not (out / "interrupted" / "latent.png").exists()


def test_ctrl_c_while_scoring_keeps_the_trained_model(trained, idx_dir, tmp_path, monkeypatch,
                                                      capsys):
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    before = digest(out)

    def pressed(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(recipe, "embed_2d", pressed)
    assert main(train_args(idx_dir, out)) == 130
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("purenet: interrupted") and "while scoring" in last
    assert digest(out) == before
    report = json.loads((out / "interrupted" / "metrics.json").read_text())
    assert report["interrupted"] is True and report["epochs"] == report["epochs_requested"] == 1
    assert report["test_reconstruction_mse"] is None
    assert (out / "interrupted" / "autoencoder.npz").exists()


def test_a_diverged_run_goes_beside_the_finished_one(trained, idx_dir, tmp_path, monkeypatch,
                                                     capsys):
    out = tmp_path / "run"
    shutil.copytree(trained, out)
    before = digest(out)
    monkeypatch.setattr(recipe, "LEARNING_RATE", 1e30)
    assert main(train_args(idx_dir, out)) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        "purenet: error: training diverged")
    assert digest(out) == before
    report = json.loads((out / "diverged" / "metrics.json").read_text())
    assert report["diverged"] is True and report["test_reconstruction_mse"] is None


# --- the pieces -------------------------------------------------------------------

def test_the_model_maps_images_to_codes_and_back():
    model = autoencoder(5)
    out_shape, params, state = model.init(pn.key(0), (1, 28, 28))
    assert out_shape == (1, 28, 28) and set(params) == {"encoder", "decoder"}
    x = np.random.default_rng(0).random((3, 1, 28, 28)).astype(np.float32)
    y = model(params, x, state)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1         # a sigmoid at the end
    assert encode(model, params, x, state).shape == (3, 5)
    assert reconstruction_mse(model, params, x, state) == pytest.approx(np.mean((y - x) ** 2))
    with pytest.raises(ConfigError, match="encoder"):
        encode(pn.serial(pn.Flatten()), {"flatten_0": {}}, x)


def test_linear_probe_separates_separable_codes():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 6)) * 4
    labels = rng.integers(0, 4, 600)
    codes = centres[labels] + rng.standard_normal((600, 6))
    accuracy, history = linear_probe(codes[:400], labels[:400], codes[500:], labels[500:],
                                     validation=(codes[400:500], labels[400:500]))
    assert accuracy > 0.9 and len(history) == 30
    assert history.history["val_accuracy"][-1] > 0.9
    chance, _ = linear_probe(codes[:400], rng.permutation(labels[:400]), codes[500:],
                             labels[500:], classes=4)
    assert chance < 0.6                                      # shuffled labels: nothing to learn


def test_pca_of_points_on_a_line_has_one_dominant_axis():
    rng = np.random.default_rng(0)
    t = rng.standard_normal(300)
    direction = np.array([1.0, 2.0, -2.0]) / 3
    codes = 5 + np.outer(t, direction) + 1e-4 * rng.standard_normal((300, 3))
    points, explained = pca(codes)
    assert points.shape == (300, 2) and explained[0] > 0.999 and explained[1] < 1e-6
    assert abs(np.corrcoef(points[:, 0], t)[0, 1]) > 0.9999
    np.testing.assert_allclose(points.mean(axis=0), 0, atol=1e-9)      # centred
    np.testing.assert_allclose(np.abs(points[:, 0]), np.abs(t - t.mean()), atol=1e-3)
    np.testing.assert_array_equal(pca_2d(codes), points)
    # the axes' signs are fixed (largest loading positive), not left to the SVD: negated
    # data gives negated points
    np.testing.assert_allclose(pca(-codes)[0], -points, atol=1e-9)


def test_pca_axes_are_ordered_by_variance():
    rng = np.random.default_rng(1)
    codes = rng.standard_normal((2000, 3)) * [1.0, 5.0, 2.0]
    points, explained = pca(codes)
    assert explained[0] > explained[1] > 0 and explained.sum() < 1
    assert np.var(points[:, 0]) > np.var(points[:, 1])
    assert explained[0] == pytest.approx(25 / 30, abs=0.03)
    assert explained[1] == pytest.approx(4 / 30, abs=0.03)


def test_embed_2d_falls_back_to_pca_without_scikit_learn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)
    codes = np.random.default_rng(0).standard_normal((50, 4))
    points, method = embed_2d(codes)
    assert method == "PCA"
    np.testing.assert_array_equal(points, pca_2d(codes))


def test_first_of_each_class():
    labels = np.array([3, 3, 1, 0, 1, 2])
    assert recipe.first_of_each_class(labels, 4).tolist()[:4] == [3, 2, 5, 0]


def test_the_plots_draw(tmp_path):
    pytest.importorskip("matplotlib")
    from purenet.plots import plot_embedding, plot_reconstructions
    rng = np.random.default_rng(0)
    images = rng.random((4, 1, 28, 28))
    fig = plot_reconstructions(images, images * 0.9, tmp_path / "r.png", titles=list("abcd"))
    assert len(fig.axes) == 8 and fig.axes[0].get_title() == "a"
    assert fig.axes[4].get_xlabel().startswith("MSE ")
    labels = rng.integers(0, 3, 90)
    fig = plot_embedding(rng.standard_normal((90, 2)), labels, ["x", "y", "z"],
                         tmp_path / "e.png", axis_labels=("one", "two"))
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == [f"{n} ({(labels == c).sum()})" for c, n in enumerate("xyz")]
    for name in ("r.png", "e.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
