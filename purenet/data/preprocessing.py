"""Checks, scaling, one-hot labels and train/test splits, as pure functions.

Samples lie along the leading axis of every array. Fitted state is a plain
dict returned to the caller, never hidden in an object:

    stats = fit_standardizer(X_train)            # {"mean": (d,), "std": (d,)}
    X_train, X_test = standardize(X_train, stats), standardize(X_test, stats)

Every split returns ``((X_train, y_train), (X_test, y_test))``, the layout of
``load_idx_dataset``; ``y`` may be None. Shuffled splits use NumPy's legacy
``RandomState(seed).permutation`` so that they match scikit-learn's
``train_test_split`` with the same ``random_state``. Bad data raises
``DataError``, bad settings ``ConfigError``.
"""
import math

import numpy as np

from ..errors import ConfigError, DataError, ShapeError
from .validate import check_finite

BOOK_BOSTON_SEED = 80718
BOOK_BOSTON_TEST_SIZE = 152  # ceil(0.3 * 506), as scikit-learn rounds


# ---------------------------------------------------------------- checks

def check_same_length(X, y, names=("X", "y")):
    """``DataError`` unless ``X`` and ``y`` hold the same number of samples
    (length of the leading axis). ``y=None`` always passes."""
    if y is not None and len(X) != len(y):
        raise DataError(f"{names[0]} has {len(X)} samples but {names[1]} has {len(y)}")


def _check_nonempty(X, name="X"):
    if np.ndim(X) == 0 or len(X) == 0:
        raise DataError(f"{name} is empty: no samples along its leading axis")


# ---------------------------------------------------------------- scaling

def fit_standardizer(X):
    """Per-feature mean and standard deviation of ``X`` (n, ...), over axis 0.

    A constant feature gets std 1 instead of 0, so ``standardize`` maps it to
    zeros rather than dividing by zero.

    Returns:
      ``{"mean": m, "std": s}``, each of shape ``X.shape[1:]``, in ``X``'s
      floating dtype (float32 for integer input). Computed in float64.
    """
    X = np.asarray(X)
    _check_nonempty(X)
    check_finite(X)
    dtype = X.dtype if X.dtype.kind == "f" else np.dtype(np.float32)
    mean = X.mean(axis=0, dtype=np.float64)
    std = np.where(np.ptp(X, axis=0) == 0, 1.0, X.std(axis=0, dtype=np.float64))
    return {"mean": np.asarray(mean, dtype), "std": np.asarray(std, dtype)}


def standardize(X, stats):
    """``(X - mean) / std`` with the statistics of ``fit_standardizer``;
    same shape as ``X``, in the statistics' dtype."""
    X, mean, std = _check_features(X, stats)
    return ((X - mean) / std).astype(mean.dtype, copy=False)


def unstandardize(Z, stats):
    """The inverse of ``standardize``: ``Z * std + mean``."""
    Z, mean, std = _check_features(Z, stats)
    return (Z * std + mean).astype(mean.dtype, copy=False)


def _check_features(X, stats):
    """Arrays of X, mean and std (stats may hold lists, e.g. read back from JSON)."""
    X, mean, std = np.asarray(X), np.asarray(stats["mean"]), np.asarray(stats["std"])
    if X.shape[1:] != mean.shape:
        raise ShapeError(f"the standardizer was fitted on features of shape "
                         f"{mean.shape}, got samples of shape {X.shape[1:]}")
    return X, mean, std


def image_scale(x):
    """uint8 pixels (any shape) -> float32 in [0, 1], dividing by 255.

    Anything but uint8 raises ``DataError``: scaling twice is a silent bug.
    """
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise DataError(f"image_scale expects uint8 pixels in [0, 255], got {x.dtype}")
    return x.astype(np.float32) / np.float32(255)


def fit_image_normalizer(x):
    """One mean and std over all pixels of ``x``, on the [0, 1] scale.

    ``x`` is uint8 (counted exactly by a histogram, no float copy) or floats
    already scaled. Returns ``{"mean": float, "std": float}``.
    """
    x = np.asarray(x)
    _check_nonempty(x)
    if x.dtype == np.uint8:
        counts = _pixel_histogram(x)
        values = np.arange(256) / 255.0
        mean = counts @ values / x.size
        std = math.sqrt(counts @ (values - mean) ** 2 / x.size)
    else:
        check_finite(x, "images")
        mean, std = float(x.mean(dtype=np.float64)), float(x.std(dtype=np.float64))
    return {"mean": float(mean), "std": float(std) if std > 0 else 1.0}


def _pixel_histogram(x, chunk=1 << 20):
    """Counts of each uint8 value; chunked, as one bincount of a large array
    first copies it all to intp."""
    flat = x.ravel()
    return sum(np.bincount(flat[i:i + chunk], minlength=256) for i in range(0, flat.size, chunk))


def normalize_images(x, stats):
    """``(x - mean) / std`` as float32, uint8 input scaled to [0, 1] first."""
    x = image_scale(x) if np.asarray(x).dtype == np.uint8 else np.asarray(x, np.float32)
    return (x - np.float32(stats["mean"])) / np.float32(stats["std"])


# ---------------------------------------------------------------- labels

def one_hot(labels, num_classes=None, dtype=np.float32):
    """Integer class labels of any shape S -> one-hot array of shape S + (k,).

    Float labels are accepted when every value is a whole number (as labels
    read from a CSV file are). ``num_classes`` defaults to ``max(labels) + 1``.
    A negative, too large or non-integer label raises ``DataError`` naming it.
    """
    labels = _integer_labels(labels)
    if num_classes is None:
        _check_nonempty(labels.reshape(-1), "labels")
        num_classes = int(labels.max()) + 1
    _check_num_classes(num_classes)
    _check_label_range(labels, num_classes)
    return np.eye(num_classes, dtype=dtype)[labels]


def _integer_labels(labels):
    labels = np.asarray(labels)
    if labels.dtype.kind in "iu":
        return labels.astype(np.int64, copy=False)
    if labels.dtype.kind != "f":
        raise DataError(f"labels must be integers, got dtype {labels.dtype}")
    bad = ~np.isfinite(labels) | (labels != np.round(labels))
    if bad.any():
        i = tuple(int(k) for k in np.argwhere(bad)[0])
        raise DataError(f"labels must be whole numbers; label {labels[i]} at index {i} is not")
    return labels.astype(np.int64)


def _check_num_classes(num_classes):
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")


def _check_label_range(labels, num_classes):
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        i = tuple(int(k) for k in np.argwhere(bad)[0])
        raise DataError(f"label {labels[i]} at index {i} is outside [0, {num_classes}) "
                        f"({int(bad.sum())} such labels)")


# ---------------------------------------------------------------- splits

def permutation_split(X, y, n_test, seed):
    """Shuffle with ``RandomState(seed).permutation(n)``; the first ``n_test``
    indices of the permutation form the test set, the rest the training set.

    Returns ``((X_train, y_train), (X_test, y_test))``, rows in permutation order.
    """
    X, y, n = _samples(X, y)
    if isinstance(n_test, bool) or not isinstance(n_test, (int, np.integer)) \
            or not 0 < n_test < n:
        raise ConfigError(f"n_test must be an integer in [1, {n - 1}] for {n} samples, "
                          f"got {n_test!r}")
    perm = np.random.RandomState(_seed(seed)).permutation(n)
    return _take(X, y, perm[n_test:]), _take(X, y, perm[:n_test])


def train_test_split(X, y, test_fraction=0.3, seed=0):
    """A shuffled split with ``ceil(test_fraction * n)`` test samples.

    Equals scikit-learn's ``train_test_split(X, y, test_size=test_fraction,
    random_state=seed)``. Returns ``((X_train, y_train), (X_test, y_test))``.
    """
    _, _, n = _samples(X, y)
    return permutation_split(X, y, _fraction_count(test_fraction, n), seed)


def book_boston_split(X, y):
    """The book's chapter 3 protocol on the 506 Boston rows: 354 train, 152 test,
    ``RandomState(80718).permutation(506)``, the first 152 indices for test.

    Returns ``((X_train, y_train), (X_test, y_test))``.
    """
    if len(X) != 506:
        raise DataError(f"book_boston_split expects the 506 Boston rows, got {len(X)}")
    return permutation_split(X, y, BOOK_BOSTON_TEST_SIZE, BOOK_BOSTON_SEED)


def validation_split(X, y, fraction=0.1, seed=None):
    """Hold out ``ceil(fraction * n)`` samples for validation.

    ``seed=None`` holds out the last samples in order, as Keras's
    ``validation_split`` does, and returns views; an integer seed shuffles as
    ``train_test_split`` does. Returns ``((X_train, y_train), (X_val, y_val))``.
    """
    X, y, n = _samples(X, y)
    n_val = _fraction_count(fraction, n)
    if seed is not None:
        return train_test_split(X, y, fraction, seed)
    cut = n - n_val
    return (X[:cut], None if y is None else y[:cut]), (X[cut:], None if y is None else y[cut:])


def _samples(X, y):
    X, y = np.asarray(X), None if y is None else np.asarray(y)
    _check_nonempty(X)
    check_same_length(X, y)
    return X, y, len(X)


def _fraction_count(fraction, n):
    if not isinstance(fraction, (float, int)) or isinstance(fraction, bool) \
            or not 0 < fraction < 1:
        raise ConfigError(f"the held-out fraction must lie strictly between 0 and 1, "
                          f"got {fraction!r}")
    count = math.ceil(fraction * n)
    if count >= n:
        raise DataError(f"{n} samples are too few to hold out a fraction {fraction} "
                        f"and keep a training set")
    return count


def _seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) \
            or not 0 <= seed < 2**32:
        raise ConfigError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    return int(seed)


def _take(X, y, idx):
    return X[idx], None if y is None else y[idx]
