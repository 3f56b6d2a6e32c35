"""purenet.data: CSV reader, shipped data sets, preprocessing, splits, batching."""
import csv
import hashlib
from importlib import resources

import numpy as np
import pytest

from purenet.data import (BOSTON_FEATURES, batches, book_boston_split, check_finite,
                          check_same_length, fit_image_normalizer, fit_standardizer,
                          image_scale, load_boston, load_csv, load_tiny_shakespeare,
                          normalize_images, num_batches, one_hot, parse_csv,
                          permutation_split, standardize, tiny_shakespeare_path,
                          train_test_split, unstandardize, validation_split)
from purenet.errors import ConfigError, DataError, ShapeError
from purenet.random import key


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


# ---------------------------------------------------------------- CSV

def test_csv_target_by_name_and_index(tmp_path):
    path = write(tmp_path, "a,b,c\n1,2,3\n4,5,6\n")
    X, y, names = load_csv(path, target="b")
    np.testing.assert_array_equal(X, [[1, 3], [4, 6]])
    np.testing.assert_array_equal(y, [2, 5])
    assert names == ["a", "c"] and X.dtype == y.dtype == np.float32
    X2, y2, _ = load_csv(path, target=-2)
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)


def test_csv_no_target_no_header_other_delimiter(tmp_path):
    path = write(tmp_path, "1;2\n\n3;4e1\n")
    X, y, names = load_csv(path, delimiter=";", header=False, dtype=np.float64)
    np.testing.assert_array_equal(X, [[1, 2], [3, 40]])
    assert y is None and names == ["x0", "x1"] and X.dtype == np.float64


def test_csv_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="nope.csv: no such file"):
        load_csv(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="empty.csv: the file is empty"):
        load_csv(write(tmp_path, "\n\n", "empty.csv"))
    with pytest.raises(DataError, match="head.csv: a header but no data rows"):
        load_csv(write(tmp_path, "a,b\n", "head.csv"))


def test_csv_ragged_row_names_file_and_line(tmp_path):
    path = write(tmp_path, "a,b\n1,2\n3\n", "ragged.csv")
    with pytest.raises(DataError, match=r"ragged.csv, line 3: expected 2 cells, got 1"):
        load_csv(path)


def test_csv_non_numeric_cell_names_line_and_column(tmp_path):
    path = write(tmp_path, "a,b\n1,2\n3,x\n", "text.csv")
    with pytest.raises(DataError, match=r"text.csv, line 3, column 'b': 'x' is not a number"):
        load_csv(path)
    with pytest.raises(DataError, match=r"line 2, column 'a': '' is not a number"):
        load_csv(write(tmp_path, "a,b\n,2\n", "blank.csv"))


@pytest.mark.parametrize("bad", ["nan", "inf", "-Infinity", "1e400"])
def test_csv_non_finite_values(tmp_path, bad):
    path = write(tmp_path, f"a,b\n1,2\n3,{bad}\n", "nf.csv")
    with pytest.raises(DataError, match=r"nf.csv, line 3, column 'b'.*not a finite"):
        load_csv(path)


def test_csv_bad_settings():
    with pytest.raises(ConfigError, match="no column named 'z'"):
        parse_csv("a,b\n1,2\n", target="z")
    with pytest.raises(ConfigError, match="out of range"):
        parse_csv("a,b\n1,2\n", target=2)
    with pytest.raises(ConfigError, match="delimiter"):
        parse_csv("a,b\n1,2\n", delimiter=",,")
    with pytest.raises(ConfigError, match="floating"):
        parse_csv("a,b\n1,2\n", dtype=np.int32)


# ---------------------------------------------------------------- shipped data

def shipped_boston_rows():
    """The shipped CSV read by the standard library, independently of load_csv."""
    text = resources.files("purenet.datasets").joinpath("boston_housing.csv").read_text()
    rows = list(csv.reader(text.splitlines()))
    return rows[0], rows[1:]


def test_boston_shape_and_values():
    X, y, names = load_boston()
    header, rows = shipped_boston_rows()
    assert X.shape == (506, 13) and y.shape == (506,) and X.dtype == y.dtype == np.float32
    assert names == header[:13] == list(BOSTON_FEATURES) and header[13] == "MEDV"
    first = [0.00632, 18, 2.31, 0, 0.538, 6.575, 65.2, 4.09, 1, 296, 15.3, 396.9, 4.98]
    np.testing.assert_allclose(X[0], first, rtol=1e-6)
    assert y[0] == np.float32(24.0)
    np.testing.assert_allclose(X[-1], [float(c) for c in rows[-1][:13]], rtol=1e-6)
    np.testing.assert_allclose(y, [float(r[13]) for r in rows], rtol=1e-6)


def test_tiny_shakespeare():
    text = load_tiny_shakespeare()
    assert len(text) == 1_115_394 and len(set(text)) == 65
    with open(tiny_shakespeare_path(), "rb") as f:
        assert hashlib.md5(f.read()).hexdigest() == "6fb458f1232090904fb40fe944165e91"


# ---------------------------------------------------------------- checks and scaling

def test_check_finite_reports_count_and_first_index():
    X = np.zeros((3, 4), np.float32)
    X[1, 2], X[2, 0] = np.nan, np.inf
    with pytest.raises(DataError, match=r"feats has 2 non-finite .* at index \(1, 2\)"):
        check_finite(X, "feats")
    assert check_finite(np.arange(3)) is not None
    check_finite(X[0])


def test_check_same_length():
    check_same_length(np.zeros((3, 2)), np.zeros(3))
    check_same_length(np.zeros((3, 2)), None)
    with pytest.raises(DataError, match="X has 3 samples but y has 2"):
        check_same_length(np.zeros((3, 2)), np.zeros(2))


def test_standardize_boston_train_columns():
    X, y, _ = load_boston()
    (X_train, _), (X_test, _) = book_boston_split(X, y)
    stats = fit_standardizer(X_train)
    Z = standardize(X_train, stats)
    assert Z.dtype == np.float32 and stats["mean"].shape == (13,)
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(Z.std(axis=0), 1, atol=1e-5)
    np.testing.assert_allclose(unstandardize(standardize(X_test, stats), stats), X_test,
                               rtol=1e-5, atol=1e-4)


def test_standardizer_constant_feature_gets_std_one():
    X = np.array([[1.0, 7.0], [3.0, 7.0], [5.0, 7.0]], np.float32)
    stats = fit_standardizer(X)
    assert stats["std"][1] == 1
    Z = standardize(X, stats)
    np.testing.assert_array_equal(Z[:, 1], 0)
    np.testing.assert_allclose(Z[:, 0], [-1.2247449, 0, 1.2247449], rtol=1e-6)


def test_standardizer_errors():
    with pytest.raises(DataError, match="empty"):
        fit_standardizer(np.zeros((0, 3)))
    with pytest.raises(DataError, match="non-finite"):
        fit_standardizer(np.array([[1.0], [np.nan]]))
    with pytest.raises(ShapeError, match=r"\(2,\).*\(3,\)"):
        standardize(np.zeros((4, 3)), fit_standardizer(np.ones((4, 2))))


def test_image_scale_and_normalizer():
    x = np.array([[0, 51], [255, 102]], np.uint8)
    np.testing.assert_allclose(image_scale(x), [[0, 0.2], [1, 0.4]], rtol=1e-6)
    with pytest.raises(DataError, match="uint8"):
        image_scale(image_scale(x))
    stats = fit_image_normalizer(x)
    ref = x.astype(np.float64) / 255
    assert stats["mean"] == pytest.approx(ref.mean()) and stats["std"] == pytest.approx(ref.std())
    assert fit_image_normalizer(ref) == pytest.approx(stats)
    z = normalize_images(x, stats)
    assert z.dtype == np.float32 and abs(z.mean()) < 1e-6 and z.std() == pytest.approx(1, 1e-5)


# ---------------------------------------------------------------- one-hot

def test_one_hot_values_and_shapes():
    np.testing.assert_array_equal(one_hot([2, 0, 1]), np.eye(3)[[2, 0, 1]])
    out = one_hot(np.array([[1], [3]]), num_classes=5)
    assert out.shape == (2, 1, 5) and out.dtype == np.float32 and out[1, 0, 3] == 1
    np.testing.assert_array_equal(one_hot(np.array([1.0, 0.0])), [[0, 1], [1, 0]])


@pytest.mark.parametrize("labels, k, message", [
    ([0, 3], 3, r"label 3 at index \(1,\) is outside \[0, 3\)"),
    ([0, -1], None, r"label -1 at index \(1,\)"),
    ([0.0, 1.5], None, r"label 1.5 at index \(1,\) is not"),
    (["a"], None, "must be integers"),
    ([], None, "empty"),
])
def test_one_hot_bad_labels(labels, k, message):
    with pytest.raises(DataError, match=message):
        one_hot(np.array(labels), k)


def test_one_hot_bad_num_classes():
    with pytest.raises(ConfigError, match="num_classes"):
        one_hot([0, 1], num_classes=0)


# ---------------------------------------------------------------- splits

def test_book_boston_split_matches_hand_permutation():
    X, y, _ = load_boston()
    perm = np.random.RandomState(80718).permutation(506)
    (X_train, y_train), (X_test, y_test) = book_boston_split(X, y)
    assert X_train.shape == (354, 13) and X_test.shape == (152, 13)
    np.testing.assert_array_equal(X_test, X[perm[:152]])
    np.testing.assert_array_equal(y_train, y[perm[152:]])
    (X_tr2, _), (X_te2, _) = train_test_split(X, y, test_fraction=0.3, seed=80718)
    np.testing.assert_array_equal(X_te2, X_test)
    np.testing.assert_array_equal(X_tr2, X_train)


def test_book_boston_split_refuses_other_sizes():
    with pytest.raises(DataError, match="506"):
        book_boston_split(np.zeros((10, 13)), np.zeros(10))


def test_split_partitions_and_is_deterministic():
    X, y = np.arange(20) * 10, np.arange(20)
    (a_tr, b_tr), (a_te, b_te) = train_test_split(X, y, 0.25, seed=3)
    assert len(a_te) == 5 and len(a_tr) == 15
    np.testing.assert_array_equal(a_tr, b_tr * 10)
    assert sorted(np.concatenate([b_tr, b_te])) == list(range(20))
    (_, again), _ = train_test_split(X, y, 0.25, seed=3)
    (_, other), _ = train_test_split(X, y, 0.25, seed=4)
    np.testing.assert_array_equal(again, b_tr)
    assert not np.array_equal(other, b_tr)


def test_permutation_split_without_y():
    (tr, none_tr), (te, none_te) = permutation_split(np.arange(6), None, 2, seed=1)
    assert none_tr is None and none_te is None and len(te) == 2 and len(tr) == 4


def test_validation_split_in_order_and_shuffled():
    X, y = np.arange(10.0).reshape(10, 1), np.arange(10)
    (X_tr, y_tr), (X_val, y_val) = validation_split(X, y, 0.2)
    np.testing.assert_array_equal(y_val, [8, 9])
    assert np.shares_memory(X_tr, X)
    (_, y_tr2), (_, y_val2) = validation_split(X, y, 0.2, seed=0)
    (_, _), (_, y_val3) = train_test_split(X, y, 0.2, seed=0)
    np.testing.assert_array_equal(y_val2, y_val3)
    assert len(y_tr2) == 8


def test_split_errors():
    with pytest.raises(DataError, match="empty"):
        train_test_split(np.zeros((0, 2)), np.zeros(0))
    with pytest.raises(DataError, match="samples"):
        train_test_split(np.zeros((4, 2)), np.zeros(3))
    with pytest.raises(ConfigError, match="fraction"):
        validation_split(np.zeros((4, 2)), None, 1.0)
    with pytest.raises(ConfigError, match="n_test"):
        permutation_split(np.zeros(4), None, 4, seed=0)
    with pytest.raises(ConfigError, match="seed"):
        permutation_split(np.zeros(4), None, 1, seed=-1)
    with pytest.raises(DataError, match="too few"):
        train_test_split(np.zeros((1, 2)), None, 0.5)


# ---------------------------------------------------------------- batching

def test_num_batches():
    # a lone last example joins the batch before it (5 = 4 + 1 is one batch of 5)
    assert [num_batches(n, 4) for n in (1, 4, 5, 6, 8, 9, 10)] == [1, 1, 1, 2, 2, 2, 3]
    assert num_batches(5, 1) == 5
    with pytest.raises(ConfigError, match="batch_size"):
        num_batches(10, 0)


def test_batches_in_order_are_views_with_partial_last():
    X, y = np.arange(20.0).reshape(10, 2), np.arange(10)
    out = list(batches(X, y, 4))
    assert [len(xb) for xb, _ in out] == [4, 4, 2]
    assert all(np.shares_memory(xb, X) for xb, _ in out)
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in out]), y)


def test_batches_with_key_cover_every_index_once():
    X = np.arange(23)
    y = np.stack([X, -X], axis=1)
    out = list(batches(X, y, 5, key=key(7)))
    assert len(out) == num_batches(23, 5) and len(out[-1][0]) == 3
    order = np.concatenate([xb for xb, _ in out])
    assert sorted(order) == list(range(23)) and not np.array_equal(order, X)
    np.testing.assert_array_equal(np.concatenate([yb for _, yb in out])[:, 1], -order)


def test_batches_same_key_same_order_other_key_differs():
    X = np.arange(50)
    order = lambda k: np.concatenate([xb for xb, _ in batches(X, None, 8, key=k)])
    np.testing.assert_array_equal(order(key(1)), order(key(1)))
    assert not np.array_equal(order(key(1)), order(key(2)))


def test_batches_y_none_and_errors():
    assert all(yb is None for _, yb in batches(np.zeros((5, 3)), None, 2))
    with pytest.raises(DataError, match="samples"):
        batches(np.zeros(5), np.zeros(4), 2)
    with pytest.raises(DataError, match="empty"):
        batches(np.zeros((0, 3)), None, 2)
    with pytest.raises(ConfigError, match="batch_size"):
        batches(np.zeros(5), None, 2.5)


def test_as_numeric_array_is_exported_and_checks_like_check_finite():
    from purenet.data import as_numeric_array
    X = np.zeros((3, 4), np.float32)
    assert as_numeric_array(X, "feats") is X
    X[1, 2] = np.nan
    with pytest.raises(DataError, match=r"feats has 1 non-finite .* at index \(1, 2\)"):
        as_numeric_array(X, "feats")
    np.testing.assert_array_equal(as_numeric_array([True, False], "mask"), [True, False])
    ids = as_numeric_array([[1, 2], [3, 4]], "ids")
    assert ids.dtype.kind == "i" and ids.shape == (2, 2)


@pytest.mark.parametrize("bad,message", [
    ([[1.0, 2.0], [3.0]], r"rows\[1\] has 1 item where rows\[0\] has 2 items"),
    ([[[1], [2]], [[3], [4, 5]]], r"rows\[1\]\[1\] has 2 items where rows\[1\]\[0\] has 1 item"),
    (np.array(["a", "b"]), "holds text"),
    (np.array(["2020-01-01"], dtype="datetime64[D]"), "holds dates"),
    (np.array([{"a": 1}], dtype=object), "holds dict"),
])
def test_as_numeric_array_names_what_is_wrong(bad, message):
    from purenet.data import as_numeric_array
    with pytest.raises(DataError, match=message):
        as_numeric_array(bad, "rows")
