"""Data in, arrays out: readers (CSV, IDX), shipped data sets, checks, scaling,
splits and mini-batches. Everything here is a plain function of arrays; fitted
state (a standardizer's mean and std) is a dict handed back to the caller.
``as_numeric_array(a, name)`` turns user input into a numeric array or raises a
DataError naming ``name`` (text, ragged lists, empty input, NaN or inf).

    X, y, names = load_boston()
    (X_train, y_train), (X_test, y_test) = book_boston_split(X, y)
    stats = fit_standardizer(X_train)
    for xb, yb in batches(standardize(X_train, stats), y_train, 32, key=k):
        ...
"""
from . import augment, text
from .batching import batches, num_batches
from .csv import load_csv, parse_csv
from .datasets import (BOSTON_FEATURES, load_boston, load_tiny_shakespeare,
                       tiny_shakespeare_path)
from .idx import (FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, IDX_FILES, load_fashion_mnist,
                  load_idx_dataset, load_mnist, read_idx, write_idx)
from .preprocessing import (book_boston_split, check_same_length,
                            fit_image_normalizer, fit_standardizer, image_scale,
                            normalize_images, one_hot, permutation_split, standardize,
                            train_test_split, unstandardize, validation_split)
from .validate import as_numeric_array, check_finite

__all__ = [
    "batches", "num_batches",
    "load_csv", "parse_csv",
    "BOSTON_FEATURES", "load_boston", "load_tiny_shakespeare", "tiny_shakespeare_path",
    "FASHION_MNIST_CLASSES", "FASHION_MNIST_DIR", "IDX_FILES", "load_fashion_mnist",
    "load_idx_dataset", "load_mnist", "read_idx", "write_idx",
    "book_boston_split", "check_finite", "check_same_length", "fit_image_normalizer",
    "fit_standardizer", "image_scale", "normalize_images", "one_hot", "permutation_split",
    "standardize", "train_test_split", "unstandardize", "validation_split",
    "as_numeric_array",
]
