"""Data sets shipped inside purenet (origins in ``purenet/datasets/README.md``).

    X, y, names = load_boston()      # X (506, 13) float32, y (506,) float32
    text = load_tiny_shakespeare()   # str of 1,115,394 characters, 65 distinct

Files are found with ``importlib.resources``, so they load wherever purenet is
installed. A missing file (a broken install) raises ``DataError``.
"""
import os
from importlib import resources

import numpy as np

from ..errors import DataError
from .csv import parse_csv

PACKAGE = "purenet.datasets"
BOSTON_FILE = "boston_housing.csv"
BOSTON_SHAPE = (506, 13)
BOSTON_TARGET = "MEDV"
SHAKESPEARE_FILE = "tinyshakespeare.txt"

BOSTON_FEATURES = {
    "CRIM": "per-capita crime rate of the town",
    "ZN": "share of residential land zoned for lots over 25,000 sq. ft.",
    "INDUS": "share of the town's acres in non-retail business",
    "CHAS": "1 if the tract borders the Charles River, else 0",
    "NOX": "nitric oxides concentration (parts per 10 million)",
    "RM": "average number of rooms per dwelling",
    "AGE": "share of owner-occupied units built before 1940",
    "DIS": "weighted distance to five Boston employment centres",
    "RAD": "index of access to radial highways",
    "TAX": "full-value property-tax rate per $10,000",
    "PTRATIO": "pupil-teacher ratio of the town",
    "B": "1000 (Bk - 0.63)^2, Bk the town's share of Black residents",
    "LSTAT": "percentage of the population of lower status",
}
"""What each Boston feature measures; the target MEDV is the median value of
owner-occupied homes in $1000s."""


def _resource(name):
    res = resources.files(PACKAGE).joinpath(name)
    if not res.is_file():
        raise DataError(f"{PACKAGE}/{name}: the shipped data file is missing (broken install?)")
    return res


def load_boston(dtype=np.float32):
    """The Boston housing data of the book's chapter 3, all 506 rows.

    Returns:
      ``(X, y, feature_names)``: ``X`` (506, 13), ``y`` (506,) the median home
      value MEDV in $1000s, and the 13 column names of ``X`` (``BOSTON_FEATURES``).
      Unscaled; split with ``book_boston_split`` and then standardise.
    """
    text = _resource(BOSTON_FILE).read_text(encoding="utf-8")
    X, y, names = parse_csv(text, f"{PACKAGE}/{BOSTON_FILE}", target=BOSTON_TARGET, dtype=dtype)
    if X.shape != BOSTON_SHAPE:
        raise DataError(f"{PACKAGE}/{BOSTON_FILE}: expected shape {BOSTON_SHAPE}, got {X.shape}")
    return X, y, names


def tiny_shakespeare_path():
    """The file system path of the shipped tiny-Shakespeare text file."""
    return os.fspath(_resource(SHAKESPEARE_FILE))


def load_tiny_shakespeare():
    """The tiny-Shakespeare corpus as one ``str`` (1,115,394 characters)."""
    return _resource(SHAKESPEARE_FILE).read_text(encoding="utf-8")
