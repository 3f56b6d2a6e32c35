"""Checks that turn user input into a numeric array, or say clearly why they cannot.

    x = as_numeric_array(x, "x")       # ndarray, or DataError naming "x"

What is refused, each with a ``DataError`` that names the argument:

* ``None``, text (``"1.5"`` strings), objects that are not numbers, dates;
* ragged input (lists of different lengths), with the first place it happens;
* empty input: a bare scalar, no examples, or examples of no values;
* NaN or inf, with how many there are and where the first one is.

Booleans, integers, floats and complex numbers pass. The NaN check costs one
sum over the array: a finite sum proves there is no NaN or inf, so only a
suspect array (or one whose sum overflowed) is searched element by element.
"""
import numbers

import numpy as np

from ..errors import DataError

NUMERIC_KINDS = "biufc"      # bool, signed, unsigned, float, complex


def check_finite(X, name="X"):
    """``X`` as an array, unchanged, if it holds no NaN or inf; else ``DataError``
    saying how many there are and where the first one is."""
    X = np.asarray(X)
    if X.dtype.kind not in "fc" or _sum_is_finite(X):
        return X
    bad = ~np.isfinite(X)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"{name} has {int(bad.sum())} non-finite value(s) (NaN or inf); "
                        f"the first is {X[where]} at index {where}")
    return X


def _sum_is_finite(X):
    """True when the sum of ``X`` is finite, which proves every element is."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(X.sum()))


def as_numeric_array(a, name):
    """``a`` as a NumPy array of numbers with at least one example, all finite.

    Raises ``DataError`` naming ``name`` for ``None``, text, non-numeric objects,
    ragged nested lists, a scalar or empty input, and NaN or inf. An object
    array holding only numbers is converted to a numeric one.
    """
    if a is None:
        raise DataError(f"{name} is None: expected an array of numbers")
    if isinstance(a, (str, bytes)):
        raise DataError(f"{name} is text ({a[:20]!r}), not an array of numbers")
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as err:
        raise DataError(f"{name} is not a regular array: {_ragged_place(a, name) or err}") from None
    if arr.dtype.kind == "O":
        arr = _from_objects(arr, a, name)
    if arr.dtype.kind not in NUMERIC_KINDS:
        raise DataError(f"{name} holds {_kind_name(arr.dtype)} (dtype {arr.dtype}), not numbers")
    if arr.ndim == 0:
        raise DataError(f"{name} is a single number ({arr.item()!r}); expected an array with "
                        "one example along its first axis")
    if len(arr) == 0:
        raise DataError(f"{name} is empty: no examples along its first axis (shape {arr.shape})")
    if arr.size == 0:
        raise DataError(f"{name} holds no values: its examples are empty (shape {arr.shape})")
    return check_finite(arr, name)


def _from_objects(arr, original, name):
    """A numeric array from an object array of plain numbers, else ``DataError``."""
    flat = arr.reshape(-1)
    for i, v in enumerate(flat):
        if isinstance(v, (list, tuple, np.ndarray)):
            raise DataError(f"{name} is not a regular array: "
                            f"{_ragged_place(original, name) or 'its rows have different shapes'}")
        if not isinstance(v, (numbers.Number, np.bool_)):
            where = tuple(int(k) for k in np.unravel_index(i, arr.shape))
            raise DataError(f"{name} holds {type(v).__name__} {v!r} at index {where}, "
                            "not a number")
    return np.array(arr.tolist())


def _kind_name(dtype):
    return {"U": "text", "S": "bytes", "M": "dates", "m": "time spans",
            "V": "records"}.get(dtype.kind, "non-numeric values")


def _ragged_place(a, name, limit=10_000):
    """Where nested lists first differ in length, as text (``None`` if not found)."""
    stack, seen = [(name, a)], 0
    while stack and seen < limit:
        where, node = stack.pop()
        seen += 1
        if not isinstance(node, (list, tuple)) or not node:
            continue
        lengths = [len(v) if isinstance(v, (list, tuple, np.ndarray)) else None for v in node]
        for i, n in enumerate(lengths):
            if n != lengths[0]:
                first, got = _count(lengths[0]), _count(n)
                return (f"{where}[{i}] has {got} where {where}[0] has {first} "
                        "(every row must have the same length)")
        stack.extend((f"{where}[{i}]", v) for i, v in reversed(list(enumerate(node))))
    return None


def _count(n):
    return "a single value" if n is None else f"{n} item" + ("" if n == 1 else "s")
