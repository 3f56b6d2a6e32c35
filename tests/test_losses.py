"""Losses: values against direct formulas, gradients against central differences."""
import numpy as np
import pytest

from purenet import losses
from purenet.errors import ConfigError, DataError, ShapeError
from purenet.testing import check_grads, check_vjp

rng = np.random.default_rng(0)


@pytest.mark.parametrize("batch", [1, 7])
def test_mse_value_and_gradient(batch):
    pred, target = rng.standard_normal((batch, 2)), rng.standard_normal((batch, 2))
    assert losses.mean_squared_error(pred, target) == pytest.approx(np.mean((pred - target) ** 2))
    check_grads(losses.mean_squared_error, pred, target)


def test_mse_accepts_flat_targets_for_single_output_but_not_other_mismatches():
    pred, target = rng.standard_normal((5, 1)), rng.standard_normal(5)
    assert losses.mean_squared_error(pred, target) == pytest.approx(np.mean((pred[:, 0] - target) ** 2))
    with pytest.raises(ShapeError, match="target"):
        losses.mean_squared_error(rng.standard_normal((5, 2)), rng.standard_normal(4))


@pytest.mark.parametrize("shape", [(1, 4), (6, 4), (2, 3, 5)])
def test_softmax_cross_entropy_with_labels_and_one_hot(shape):
    logits = rng.standard_normal(shape) * 3
    labels = rng.integers(0, shape[-1], shape[:-1])
    one_hot = np.eye(shape[-1])[labels]
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    expected = -np.mean(np.log(np.take_along_axis(p, labels[..., None], -1)))
    assert losses.softmax_cross_entropy(logits, labels) == pytest.approx(expected)
    assert losses.softmax_cross_entropy(logits, one_hot) == pytest.approx(expected)
    check_grads(losses.softmax_cross_entropy, logits, labels)
    check_grads(losses.softmax_cross_entropy, logits, one_hot)


def test_softmax_cross_entropy_is_finite_for_extreme_logits():
    logits = np.array([[1000.0, -1000.0, 0.0]], dtype=np.float32)
    value = losses.softmax_cross_entropy(logits, np.array([1]))
    assert np.isfinite(value) and value == pytest.approx(2000.0)
    _, back = losses.softmax_cross_entropy.vjp(logits, np.array([1]))
    assert np.all(np.isfinite(back(1.0)[0]))


@pytest.mark.parametrize("labels", [np.array([2, 0, 1]), np.eye(3)[[2, 0, 1]]])
def test_softmax_cross_entropy_keeps_float32_and_its_pullback_runs_twice(labels):
    logits = rng.standard_normal((3, 3)).astype(np.float32)
    value, back = losses.softmax_cross_entropy.vjp(logits, labels)
    first, second = back(np.float32(1.0))[0], back(np.float32(1.0))[0]
    assert value.dtype == np.float32 and first.dtype == np.float32
    np.testing.assert_array_equal(first, second)
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(first, (p - np.eye(3)[[2, 0, 1]]) / 3, atol=1e-6)


def test_softmax_cross_entropy_gradient_matches_its_loss_with_soft_targets():
    logits = rng.standard_normal((4, 3))
    soft = rng.dirichlet(np.ones(3), size=4)
    check_grads(losses.softmax_cross_entropy, logits, soft)


@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 6)])
def test_label_smoothing_is_cross_entropy_against_smoothed_targets(shape):
    eps = 0.2
    logits = rng.standard_normal(shape) * 2
    labels = rng.integers(0, shape[-1], shape[:-1])
    smoothed = np.eye(shape[-1])[labels] * (1 - eps) + eps / shape[-1]
    smooth = losses.softmax_cross_entropy.bind(label_smoothing=eps)
    expected = losses.softmax_cross_entropy(logits, smoothed)
    assert smooth(logits, labels) == pytest.approx(expected)
    assert smooth(logits, np.eye(shape[-1])[labels]) == pytest.approx(expected)
    check_grads(smooth, logits, labels)
    check_grads(smooth, logits, np.eye(shape[-1])[labels])


def test_label_smoothing_agrees_with_torch():
    torch = pytest.importorskip("torch")
    logits, labels = rng.standard_normal((8, 5)), rng.integers(0, 5, 8)
    ours = losses.softmax_cross_entropy(logits, labels, label_smoothing=0.1)
    theirs = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels),
                                               label_smoothing=0.1)
    assert ours == pytest.approx(theirs.item(), rel=1e-10)


def test_label_smoothing_out_of_range_and_bound_name():
    with pytest.raises(ConfigError, match="label_smoothing"):
        losses.softmax_cross_entropy(rng.standard_normal((2, 3)), np.array([0, 1]), label_smoothing=1.0)
    assert "label_smoothing=0.1" in repr(losses.softmax_cross_entropy.bind(label_smoothing=0.1))


def test_class_label_out_of_range_is_a_clear_error():
    with pytest.raises(DataError, match="label 5 is out of range for 3 classes"):
        losses.softmax_cross_entropy(rng.standard_normal((2, 3)), np.array([0, 5]))
    with pytest.raises(DataError, match="out of range"):
        losses.softmax_cross_entropy(rng.standard_normal((2, 3)), np.array([-1, 0]))
    with pytest.raises(ShapeError):
        losses.softmax_cross_entropy(rng.standard_normal((2, 3)), np.array([0, 1, 2]))


@pytest.mark.parametrize("batch", [1, 5])
def test_binary_cross_entropy(batch):
    logits, target = rng.standard_normal((batch, 1)) * 4, rng.integers(0, 2, (batch, 1)).astype(float)
    s = 1 / (1 + np.exp(-logits))
    expected = -np.mean(target * np.log(s) + (1 - target) * np.log(1 - s))
    assert losses.binary_cross_entropy(logits, target) == pytest.approx(expected)
    check_grads(lambda z: losses.binary_cross_entropy(z, target), logits)   # hard targets: z only
    check_vjp(losses.binary_cross_entropy.vjp, logits, rng.random((batch, 1)), name="bce soft")
    with pytest.raises(DataError):
        losses.binary_cross_entropy(logits, target + 2)


def test_float32_loss_gradient_stays_float32():
    logits = rng.standard_normal((4, 3)).astype(np.float32)
    _, back = losses.softmax_cross_entropy.vjp(logits, np.array([0, 1, 2, 0]))
    assert back(1.0)[0].dtype == np.float32


def test_unknown_loss_name():
    with pytest.raises(ConfigError, match="unknown loss 'hinge'"):
        losses.get("hinge")
