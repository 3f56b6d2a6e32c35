"""The image commands end to end on a small synthetic IDX directory."""
import json
import subprocess
import sys

import numpy as np
import pytest

from purenet.cli import main
from synthetic import synthetic_images, write_idx_dataset


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    return write_idx_dataset(tmp_path_factory.mktemp("idx"), 300, 100)


@pytest.fixture(scope="module")
def trained(idx_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    code = main(["train", "mnist", "--data-dir", str(idx_dir), "--model", "cnn", "--epochs", "2",
                 "--batch-size", "32", "--augment", "--out", str(out), "--no-progress"])
    assert code == 0
    return out


def test_train_writes_everything(trained):
    report = json.loads((trained / "metrics.json").read_text())
    assert report["epochs"] == 2 and len(report["seconds_per_epoch"]) == 2
    assert set(report["per_class_accuracy"]) == {str(i) for i in range(10)}
    assert report["test_accuracy"] > 0.5          # the bars are easy to tell apart
    for png in ("learning_curves.png", "confusion_matrix.png", "predictions.png"):
        assert (trained / png).read_bytes()[:4] == b"\x89PNG"
    assert (trained / "cnn.npz").exists()
    assert report["average_views"] == 18                # the cnn recipe scores on 18 views
    assert 0.5 < report["val_accuracy_averaged"] <= 1.0


def test_evaluate_and_predict_in_a_new_process(trained, idx_dir, tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "purenet", *a], capture_output=True,
                                    text=True, check=True).stdout
    out = run("evaluate", str(trained / "cnn.npz"), "--data", "mnist", "--data-dir", str(idx_dir))
    report = json.loads((trained / "metrics.json").read_text())
    assert f"test accuracy {report['test_accuracy']:.4f} on 100 images (mean over 18 views" in out
    images, labels = synthetic_images(3, seed=5)
    np.save(tmp_path / "three.npy", images)
    from PIL import Image
    Image.fromarray(images[0]).save(tmp_path / "one.png")
    out = run("predict", str(trained / "cnn.npz"), str(tmp_path / "three.npy"), str(tmp_path / "one.png"))
    lines = out.strip().splitlines()
    assert len(lines) == 4 and lines[0].startswith(str(tmp_path / "three.npy") + "[0]: ")


def test_missing_idx_files_are_a_clear_error(tmp_path, capsys):
    assert main(["train", "mnist", "--data-dir", str(tmp_path), "--no-progress",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte" in err and str(tmp_path) in err


def test_mnist_without_a_directory_is_a_clear_error(capsys):
    assert main(["train", "mnist", "--no-progress"]) == 2
    assert "--data-dir" in capsys.readouterr().err


def recipe_args(flag):
    """The fashion-mnist recipe's arguments parsed from ``flag`` (or from nothing)."""
    import argparse
    from purenet.recipes import fashion_mnist
    parser = argparse.ArgumentParser()
    fashion_mnist.add_arguments(parser)
    return parser.parse_args([flag] if flag else [])


@pytest.mark.parametrize("flag, expected", [(None, "recipe"), ("--augment", True),
                                            ("--no-augment", False)])
def test_augmentation_follows_the_recipe_unless_a_flag_says(flag, expected):
    from purenet.recipes import fashion_mnist
    args = recipe_args(flag)
    for name, recipe in fashion_mnist.MODELS.items():
        want = recipe.augment if expected == "recipe" else expected
        assert fashion_mnist._augments(args, recipe) is want, name
    assert fashion_mnist._augments(args, fashion_mnist.MODELS["mlp"]._replace(augment=True)) \
        is (True if expected == "recipe" else expected)


@pytest.mark.parametrize("flag, expected", [(None, "recipe"), ("--average-views", 18),
                                            ("--no-average-views", None)])
def test_test_time_views_follow_the_recipe_unless_a_flag_says(flag, expected):
    from purenet.recipes import fashion_mnist
    args = recipe_args(flag)
    for name, recipe in fashion_mnist.MODELS.items():
        views = fashion_mnist._views(args, recipe)
        want = (18 if recipe.average_views else None) if expected == "recipe" else expected
        assert (views and len(views)) == want, name


@pytest.mark.parametrize("pool_first", [False, True])
def test_the_cnn_recipes_convolutions_need_no_bias(pool_first):
    # batch norm follows each convolution (through a max pooling when pool_first):
    # a bias would be subtracted again, so the recipe's net computes what it would
    # compute with one
    import purenet as pn
    from purenet.layers import BatchNorm, Conv2D, MaxPool2D, serial
    from purenet.recipes.fashion_mnist import cnn
    model = cnn(pool_first=pool_first)
    _, params, state = model.init(pn.key(0), (1, 28, 28))
    names = [name for name in params if name.split("_")[0] in ("conv2d", "batchnorm", "maxpool2d")]
    middle = ["maxpool2d", "batchnorm"] if pool_first else ["batchnorm", "maxpool2d"]
    assert [n.split("_")[0] for n in names[:3]] == ["conv2d", *middle]
    assert all("b" not in params[n] for n in names if n.startswith("conv2d"))

    def block(use_bias):
        layers = [Conv2D(8, 3, padding="same", use_bias=use_bias), BatchNorm(), MaxPool2D(2)]
        return serial(*(layers[::2] + layers[1:2] if pool_first else layers))
    x = np.random.default_rng(0).standard_normal((6, 1, 8, 8))
    with_bias, without = block(True), block(False)
    _, p_bias, s_bias = with_bias.init(pn.key(1), (1, 8, 8), np.float64)
    conv = next(n for n in p_bias if n.startswith("conv2d"))
    p_bias[conv]["b"] = np.linspace(-3, 3, 8)
    _, p_none, s_none = without.init(pn.key(1), (1, 8, 8), np.float64)
    p_none = {n: ({"W": p_bias[conv]["W"]} if n == conv else p) for n, p in p_none.items()}
    y_bias, _ = with_bias.apply(p_bias, s_bias, x, train=True)
    y_none, _ = without.apply(p_none, s_none, x, train=True)
    np.testing.assert_allclose(y_none, y_bias, atol=1e-10)
    assert np.abs(y_bias).max() > 0.1
