"""Metrics against values worked out by hand."""
import numpy as np
import pytest

from purenet import metrics
from purenet.errors import ConfigError, DataError, ShapeError

PRED = np.array([[1.0], [2.0], [4.0], [5.0]], dtype=np.float32)
TARGET = np.array([1.0, 3.0, 3.0, 7.0], dtype=np.float32)   # errors 0, -1, 1, -2


def test_mae_and_rmse_by_hand():
    assert metrics.mae(PRED, TARGET) == pytest.approx(4 / 4)
    assert metrics.rmse(PRED, TARGET) == pytest.approx(np.sqrt(6 / 4))
    assert isinstance(metrics.mae(PRED, TARGET), float)


def test_r2_by_hand():
    # target mean 3.5: SS_tot = 6.25 + 0.25 + 0.25 + 12.25 = 19, SS_res = 6
    assert metrics.r2(PRED, TARGET) == pytest.approx(1 - 6 / 19)
    assert metrics.r2(TARGET, TARGET) == pytest.approx(1.0)
    assert metrics.r2(np.full(4, 3.5), TARGET) == pytest.approx(0.0)


def test_r2_averages_columns_and_handles_constant_targets():
    target = np.array([[1.0, 2.0], [3.0, 2.0]])
    pred = np.array([[1.0, 2.0], [2.0, 2.0]])    # column 0: 1 - 1/2; column 1 constant, exact
    assert metrics.r2(pred, target) == pytest.approx((0.5 + 1.0) / 2)
    # pred + 1: column 0 errors (1, 0) -> 1 - 1/2; column 1 constant but missed -> 0
    assert metrics.r2(pred + 1, target) == pytest.approx((0.5 + 0.0) / 2)


def test_accuracy_from_logits_with_integer_and_one_hot_targets():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 1.0, 5.0], [9.0, 0.0, 1.0]])
    labels = np.array([0, 1, 1, 2])                   # right, right, wrong, wrong
    assert metrics.accuracy(logits, labels) == 0.5
    assert metrics.accuracy(logits, np.eye(3)[labels]) == 0.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert metrics.accuracy(probs, labels) == 0.5


def test_binary_accuracy_from_one_logit():
    logits = np.array([[-2.0], [0.5], [3.0], [-0.1]])
    targets = np.array([0, 0, 1, 1])                  # right, wrong, right, wrong
    assert metrics.accuracy(logits, targets) == 0.5
    assert metrics.accuracy(logits[:, 0], targets.astype(np.float32)) == 0.5
    probs = 1 / (1 + np.exp(-logits))
    assert metrics.accuracy(probs, targets, threshold=0.5) == 0.5


def test_confusion_matrix_by_hand():
    targets = np.array([0, 1, 2, 2, 1])
    predicted = np.array([0, 2, 2, 1, 1])
    expected = np.array([[1, 0, 0], [0, 1, 1], [0, 1, 1]])
    np.testing.assert_array_equal(metrics.confusion_matrix(predicted, targets, 3), expected)
    logits = np.eye(3)[predicted] * 4.0
    np.testing.assert_array_equal(metrics.confusion_matrix(logits, np.eye(3)[targets], 3), expected)
    binary = metrics.confusion_matrix(np.array([[-1.0], [2.0], [3.0]]), np.array([0, 0, 1]), 2)
    np.testing.assert_array_equal(binary, [[1, 1], [0, 1]])


def test_confusion_matrix_rejects_out_of_range_labels():
    with pytest.raises(DataError, match="target label 3"):
        metrics.confusion_matrix(np.array([0, 1]), np.array([0, 3]), 3)
    with pytest.raises(ConfigError):
        metrics.confusion_matrix(np.array([0]), np.array([0]), 0)


def test_get_by_name_and_function():
    assert metrics.get("mae") is metrics.mae
    assert metrics.get("r2") is metrics.r2
    custom = lambda pred, target: 0.0
    assert metrics.get(custom) is custom
    with pytest.raises(ConfigError, match="unknown metric 'f1'"):
        metrics.get("f1")
    with pytest.raises(ConfigError):
        metrics.get(3)


def test_name_of():
    assert metrics.name_of("accuracy") == "accuracy"
    assert metrics.name_of(metrics.rmse) == "rmse"


def test_shape_mismatch_and_empty_input():
    with pytest.raises(ShapeError):
        metrics.mae(np.zeros((4, 2)), np.zeros(4))
    with pytest.raises(DataError):
        metrics.rmse(np.zeros((0, 1)), np.zeros(0))
    with pytest.raises(ShapeError):
        metrics.accuracy(np.zeros((4, 3)), np.zeros(5, dtype=int))


def test_labels_are_checked_not_miscounted():
    scores = np.eye(3)[[0, 1, 2, 1]]
    assert metrics.accuracy(scores, np.array([0.0, 1.0, 2.0, 1.0])) == 1.0   # whole floats are labels
    with pytest.raises(DataError, match="target label 3 at index 3 is out of range for 3 classes"):
        metrics.accuracy(scores, np.array([0, 1, 2, 3]))
    with pytest.raises(DataError, match="target label 1.5 at index 1 is not a whole number"):
        metrics.accuracy(scores, np.array([0, 1.5, 2, 1]))
    with pytest.raises(DataError, match="target label nan at index 2"):
        metrics.accuracy(scores, np.array([0, 1, np.nan, 1]))
    with pytest.raises(DataError, match="binary target -0.5"):
        metrics.accuracy(np.zeros(2), np.array([1.0, -0.5]))
    with pytest.raises(DataError, match=r"target label 2 at index 0 is out of range for 2 classes"):
        metrics.accuracy(np.zeros((2, 1)), np.array([2, 0]))
    with pytest.raises(ShapeError, match="one-hot targets have 2 columns"):
        metrics.confusion_matrix(scores, np.eye(2)[[0, 1, 1, 0]], 3)
