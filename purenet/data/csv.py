"""Numeric CSV files -> float arrays.

    X, y, names = load_csv("housing.csv", target="MEDV")
    # X: (n, d) float32, y: (n,) float32, names: the d column names of X

Every cell must parse as a finite number. Anything else -- a missing or empty
file, a row with the wrong number of cells, text where a number belongs, NaN or
inf -- raises ``DataError`` naming the file and, where it applies, the line and
column. Lines count from 1 as in a text editor, the header included; blank
lines are skipped. Asking for a target column the file lacks is a
``ConfigError``.
"""
import csv
import io
import os

import numpy as np

from ..errors import ConfigError, DataError


def load_csv(path, target=None, delimiter=",", header=True, dtype=np.float32):
    """Read a numeric CSV file.

    Args:
      path: the file to read (UTF-8; a leading byte-order mark is ignored).
      target: the column returned as ``y``: a header name, or an index
        (negative counts from the end). None: ``y`` is None.
      delimiter: the one-character cell separator.
      header: whether the first non-blank line holds column names. Without one
        the columns are named ``"x0"``, ``"x1"``, ... by their position.
      dtype: a floating dtype for ``X`` and ``y``.

    Returns:
      ``(X, y, feature_names)``: ``X`` of shape (n, d), ``y`` of shape (n,) or
      None, and the list of ``X``'s d column names.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    return parse_csv(text, path, target, delimiter, header, dtype)


def parse_csv(text, source="<string>", target=None, delimiter=",", header=True,
              dtype=np.float32):
    """``load_csv`` on CSV text already in memory; ``source`` names it in errors."""
    dtype = _float_dtype(dtype)
    rows = _read_rows(text, delimiter, source)
    if not rows:
        raise DataError(f"{source}: the file is empty")
    names, rows = _split_header(rows, header)
    if not rows:
        raise DataError(f"{source}: a header but no data rows")
    _check_widths(rows, len(names), source)
    table = _to_array(rows, names, source, dtype)
    return _take_target(table, names, target, source)


def _float_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ConfigError(f"dtype must be a floating type, got {dtype}")
    return dtype


def _read_rows(text, delimiter, source):
    """[(line number, cells)] of the non-blank lines."""
    if not (isinstance(delimiter, str) and len(delimiter) == 1):
        raise ConfigError(f"delimiter must be a single character, got {delimiter!r}")
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        return [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    except csv.Error as e:
        raise DataError(f"{source}, line {reader.line_num}: {e}") from None


def _split_header(rows, header):
    if header:
        return [name.strip() for name in rows[0][1]], rows[1:]
    return [f"x{j}" for j in range(len(rows[0][1]))], rows


def _check_widths(rows, width, source):
    bad = next(((line, len(cells)) for line, cells in rows if len(cells) != width), None)
    if bad is not None:
        raise DataError(f"{source}, line {bad[0]}: expected {width} cells, got {bad[1]}")


def _to_array(rows, names, source, dtype):
    """One vectorised string -> float conversion; the slow search runs only on failure."""
    cells = np.array([cells for _, cells in rows], dtype=str)
    try:
        table = cells.astype(np.float64).astype(dtype)
    except ValueError:
        raise _first_bad_cell(rows, names, source) from None
    bad = ~np.isfinite(table)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataError(f"{source}, line {rows[i][0]}, column {names[j]!r}: {cells[i, j]!r} "
                        f"is not a finite {dtype} number ({bad.sum()} such cells in all)")
    return table


def _first_bad_cell(rows, names, source):
    for line, cells in rows:
        for name, cell in zip(names, cells):
            try:
                float(cell)
            except ValueError:
                return DataError(f"{source}, line {line}, column {name!r}: "
                                 f"{cell!r} is not a number")
    return DataError(f"{source}: a cell is not a number")


def _take_target(table, names, target, source):
    if target is None:
        return table, None, list(names)
    j = _column_index(names, target, source)
    return np.delete(table, j, axis=1), table[:, j].copy(), names[:j] + names[j + 1:]


def _column_index(names, target, source):
    if isinstance(target, str):
        if names.count(target) != 1:
            found = "no" if target not in names else "more than one"
            raise ConfigError(f"{source}: {found} column named {target!r}; columns: {names}")
        return names.index(target)
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        if not -len(names) <= target < len(names):
            raise ConfigError(f"{source}: target index {target} out of range for "
                              f"{len(names)} columns")
        return int(target) % len(names)
    raise ConfigError(f"target must be a column name, an index or None, got {target!r}")
