"""Files written safely: atomic replacement, JSON, and array archives without pickle.

Arrays go into an ``.npz`` archive under their tree paths (``"dense_0/W"``)
and everything else into one JSON document stored as a byte array. Every
writer here goes through ``atomic_write``, so a crash midway leaves the old
file, never a half-written one. Readers raise ``ModelFileError`` naming the
file and the problem.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

from .errors import ModelFileError
from .tree import tree_flatten_with_paths, tree_map

META_KEY = "__purenet__"


def atomic_write(path, write):
    """Call ``write(file_object)`` on a temporary file, then move it onto ``path``.

    A crash midway leaves the old file (if any) untouched, never a half-written one.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json(path, obj):
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2, default=_json_default).encode()))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def save_arrays(path, arrays, meta):
    """Save a dict ``{name: ndarray}`` and a JSON-able ``meta`` dict to ``path`` (.npz)."""
    payload = {name: np.asarray(a) for name, a in arrays.items()}
    text = json.dumps(meta, default=_json_default)
    payload[META_KEY] = np.frombuffer(text.encode(), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **payload))


def load_arrays(path):
    """``(arrays, meta)`` from a file written by ``save_arrays``."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelFileError(f"{path}: no such file")
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as err:
        raise ModelFileError(f"{path}: not a readable purenet file (truncated or corrupted?): {err}") from None
    if META_KEY not in arrays:
        raise ModelFileError(f"{path}: not a purenet file (no metadata entry)")
    try:
        meta = json.loads(arrays.pop(META_KEY).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{path}: metadata is corrupted: {err}") from None
    return arrays, meta


def tree_to_arrays(tree, prefix):
    """``{"prefix/path": leaf}`` for every leaf of ``tree``."""
    return {f"{prefix}/{p}": np.asarray(a) for p, a in tree_flatten_with_paths(tree)}


def arrays_to_tree(template, arrays, prefix, path="file"):
    """Fill a tree shaped like ``template`` from ``arrays``; every shape must match."""
    def fill(leaf_path, leaf):
        name = f"{prefix}/{leaf_path}"
        if name not in arrays:
            raise ModelFileError(f"{path}: missing array '{name}'")
        got = arrays[name]
        if got.shape != np.shape(leaf):
            raise ModelFileError(f"{path}: array '{name}' has shape {got.shape}, "
                                 f"the model expects {np.shape(leaf)}")
        return got
    leaves = [fill(p, a) for p, a in tree_flatten_with_paths(template)]
    it = iter(leaves)
    return tree_map(lambda _: next(it), template)
