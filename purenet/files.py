"""Files written safely: atomic replacement, JSON, and array archives without pickle.

Arrays go into an ``.npz`` archive under their tree paths (``"dense_0/W"``)
and everything else into one JSON document stored as a byte array. Every
writer here goes through ``atomic_write``: the bytes go to a temporary file
beside the target (``.model.npz.tmp-1a2b3c4d``, so a leftover is easy to
recognise), which is then renamed onto it. A crash midway leaves the old file,
never a half-written one; a failed write removes its temporary file. The new
file gets the permissions any new file gets (``0o666`` less the umask).

A target that cannot be written (its directory is read-only, a part of its
path is a file, it is a directory) is an ``OSError`` of the matching kind
whose message names the target. Readers raise ``ModelFileError`` naming the
file and the problem (and the array, when one array is unreadable).
"""
import errno
import json
import os
import secrets
import zipfile
import zlib

import numpy as np

from .errors import ModelFileError
from .tree import tree_flatten_with_paths, tree_map

META_KEY = "__purenet__"
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK"
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError,
                NotImplementedError, RuntimeError)


def atomic_write(path, write):
    """Call ``write(file_object)`` on a temporary file, then move it onto ``path``.

    A crash midway leaves the old file (if any) untouched, never a half-written one,
    and a failure removes the temporary file. Missing parent directories are made.
    """
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    if os.path.isdir(path):
        raise _cannot_write(path, errno.EISDIR, "it is a directory")
    _make_parents(path, directory)
    tmp, fd = _create_temporary(path, directory, name)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.replace(tmp, path)
        except OSError as err:
            raise _cannot_write(path, err.errno, _reason(err, directory)) from None
    except BaseException:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise


def _cannot_write(path, code, reason):
    """An OSError of the kind ``code`` names (PermissionError, ...) saying why ``path``
    cannot be written."""
    return OSError(code, f"cannot write {path}: {reason}")


def _reason(err, directory):
    """Why writing in ``directory`` failed, in words."""
    if err.errno in (errno.EACCES, errno.EPERM):
        return f"no permission to create files in {directory}"
    if err.errno == errno.EROFS:
        return f"{directory} is on a read-only file system"
    if err.errno == errno.ENOSPC:
        return f"no space left on the device of {directory}"
    if err.errno == errno.EISDIR:
        return "it is a directory"
    if err.errno == errno.ENOTDIR:
        return "a part of its path is a file, not a directory"
    return err.strerror or str(err)


def _make_parents(path, directory):
    """Create the missing directories above ``path``; explain what blocks them."""
    if os.path.isdir(directory):
        return
    ancestor = directory
    while ancestor and not os.path.exists(ancestor):
        parent = os.path.dirname(ancestor)
        if parent == ancestor:
            break
        ancestor = parent
    if os.path.exists(ancestor) and not os.path.isdir(ancestor):
        raise _cannot_write(path, errno.ENOTDIR, f"{ancestor} is a file, not a directory")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as err:
        raise _cannot_write(path, err.errno,
                            f"cannot create the directory {directory}: "
                            f"{_reason(err, os.path.dirname(directory))}") from None


def _create_temporary(path, directory, name):
    """``(temporary path, open descriptor)``: a new file beside ``path``, created with
    mode 0o666 so that the umask alone decides its permissions."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".{name}.tmp-{secrets.token_hex(4)}")
        try:
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue
        except OSError as err:
            raise _cannot_write(path, err.errno, _reason(err, directory)) from None
    raise _cannot_write(path, errno.EEXIST, f"no free temporary name in {directory}")


def write_json(path, obj):
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write(path, lambda f: f.write(json_text(obj, indent=2).encode()))


def json_text(obj, indent=None):
    """``obj`` as JSON text; NumPy scalars and arrays become numbers and lists."""
    return json.dumps(obj, indent=indent, default=_json_default)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def save_arrays(path, arrays, meta):
    """Save a dict ``{name: ndarray}`` and a JSON-able ``meta`` dict to ``path`` (.npz)."""
    payload = {name: np.asarray(a) for name, a in arrays.items()}
    text = json_text(meta)
    payload[META_KEY] = np.frombuffer(text.encode(), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **payload))


def check_existing_file(path, kind):
    """``path`` as a string; a ModelFileError unless it names an existing file (``kind``
    says what file was expected, for the message)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelFileError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ModelFileError(f"{path}: is a directory, not {kind}")
    return path


def load_arrays(path):
    """``(arrays, meta)`` from a file written by ``save_arrays``.

    Every problem is a ``ModelFileError`` naming the file: missing, a directory, not an
    ``.npz`` archive (a damaged header, a plain ``.npy`` array), truncated, an array that
    cannot be read (corrupted, or stored with a compression NumPy cannot read: the
    message names the array), or missing or corrupted metadata.
    """
    path = check_existing_file(path, "a purenet file")
    try:
        with open(path, "rb") as f:
            head = f.read(len(NPY_MAGIC))
    except OSError as err:
        raise ModelFileError(f"{path}: cannot be read: {err.strerror or err}") from None
    if not head:
        raise ModelFileError(f"{path}: not a readable purenet file (truncated or corrupted?): "
                             "the file is empty")
    if head.startswith(NPY_MAGIC):
        raise ModelFileError(f"{path}: is a plain .npy array, not a purenet file (which is an "
                             ".npz archive with metadata, as save_model writes it)")
    if not head.startswith(ZIP_MAGIC):
        raise ModelFileError(f"{path}: not a readable purenet file (truncated or corrupted?): "
                             f"it does not start like an .npz archive (first bytes {head!r})")
    try:
        archive = np.load(path, allow_pickle=False)
    except _READ_ERRORS as err:
        raise ModelFileError(f"{path}: not a readable purenet file (truncated or corrupted?): "
                             f"{err}") from None
    arrays = {}
    with archive:
        for name in archive.files:
            try:
                arrays[name] = archive[name]
            except _READ_ERRORS as err:
                raise ModelFileError(f"{path}: array '{name}' cannot be read (truncated or "
                                     f"corrupted?): {_read_reason(err)}") from None
    if META_KEY not in arrays:
        raise ModelFileError(f"{path}: not a purenet file (no metadata entry)")
    try:
        meta = json.loads(arrays.pop(META_KEY).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{path}: metadata is corrupted: {err}") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{path}: metadata is corrupted: a JSON {type(meta).__name__}, "
                             "not an object")
    return arrays, meta


def _read_reason(err):
    if isinstance(err, NotImplementedError):
        return f"it is stored with a compression method NumPy cannot read ({err})"
    return str(err) or type(err).__name__


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
