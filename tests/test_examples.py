"""The scripts in examples/ run and do what they say (they are documentation that must not rot)."""
import argparse
import runpy
from pathlib import Path

import numpy as np
import pytest

import purenet as pn

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name):
    return runpy.run_path(str(EXAMPLES / name), run_name="example")


def test_custom_activation_trains_and_round_trips(tmp_path):
    example = load("custom_activation.py")
    scores = example["main"](str(tmp_path))
    assert (tmp_path / "swish_boston.npz").exists()
    assert scores["rmse"] < 4.5               # a working regressor; predicting the mean gives ~9


def test_hand_written_loop_is_reproducible_and_learns(capsys):
    example = load("training_loop.py")
    first, second = example["train"](seed=3), example["train"](seed=3)
    for a, b in zip(pn.tree.tree_leaves(first), pn.tree.tree_leaves(second)):
        np.testing.assert_array_equal(a, b)
    last = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch  50")][-1]
    assert float(last.split("test RMSE")[1].split()[0]) < 4.5


def test_autodiff_story_matches_the_hand_derivative_and_learns(capsys):
    example = load("autodiff.py")
    losses = example["main"]()
    out = capsys.readouterr().out
    assert "x =  2.0   f(x) = 121.0   pn.grad:   88.0   8(4x + 3):   88.0" in out
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0]             # gradient descent works
    x, y = example["make_data"]()
    assert losses[-1] < 0.5 * np.mean((y - y.mean()) ** 2)   # and beats predicting the mean
    # the same gradient as a hand-written backward of the two-layer network
    params = example["init_params"]()
    grads = pn.grad(example["loss"])(params, x, y)
    h = 1 / (1 + np.exp(-(x @ params["W1"] + params["b1"])))
    d_out = 2 * (h @ params["W2"] + params["b2"] - y) / len(y)
    d_pre = d_out @ params["W2"].T * h * (1 - h)
    expected = {"W2": h.T @ d_out, "b2": d_out.sum(0), "W1": x.T @ d_pre, "b1": d_pre.sum(0)}
    for name, value in expected.items():
        np.testing.assert_allclose(grads[name], value, rtol=1e-10, atol=1e-12)


def test_recipe_candidates_are_scored_on_validation_only():
    example = load("choose_cnn_recipe.py")
    rng = np.random.default_rng(0)
    train = rng.standard_normal((40, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 40)
    val = rng.standard_normal((12, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 12)
    result = example["train_candidate"](train, val, (5, 3, 3), epochs=1, augment=True, seed=0)
    assert result["epochs"] == 1 and result["augment"] is True and result["kernels"] == [5, 3, 3]
    assert len(result["val_accuracy"]) == 1 and 0.0 <= result["last_val_accuracy"] <= 1.0
    assert "test_accuracy" not in result
    assert example["kernel_sizes"]("5,3,3") == (5, 3, 3)
    with pytest.raises(argparse.ArgumentTypeError, match="three positive kernel sizes"):
        example["kernel_sizes"]("5,3")


def test_view_sets_are_compared_on_validation_only():
    example = load("choose_views.py")
    sets = example["view_sets"]()
    assert [len(v) for v in sets.values()] == [1, 6, 10, 18]
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 6)).astype(np.float32)
    for views in sets.values():                 # distinct views, the image itself first
        outs = [view(x) for view in views]
        np.testing.assert_array_equal(outs[0], x)
        assert len({o.tobytes() for o in outs}) == len(outs)
    model = pn.serial(pn.Flatten(), pn.Dense(3))
    _, params, state = model.init(pn.key(0), (1, 6, 6))
    y = np.array([0, 2])
    scores = example["validation_accuracies"](model, params, state, x, y)
    assert list(scores) == list(sets)
    assert all(acc in (0.0, 0.5, 1.0) for acc in scores.values())
    plain = (model(params, x).argmax(axis=1) == y).mean()
    assert scores["image alone"] == plain


def test_convolution_theorem_example_agrees_and_prints_the_routes(capsys):
    example = load("convolution_theorem.py")
    assert example["one_axis"]() < 1e-12                 # the DFT product is the correlation
    assert example["both_routes"]() < 1e-10              # conv2d's two routes agree
    example["costs"]()
    rows = [line for line in capsys.readouterr().out.splitlines() if " M " in line]
    assert [row.split()[-1] for row in rows] == ["direct", "spectral", "spectral", "spectral"]
