"""IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number -- two zero bytes, a type code, the number
of dimensions d -- then d big-endian uint32 sizes, then the values, big-endian,
in C order. Files may be gzip-compressed; ``read_idx`` tells by the gzip magic
bytes (1f 8b), never by the name.

    x = read_idx("train-images-idx3-ubyte.gz")        # uint8 (60000, 28, 28)
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist()

Every defect -- missing file, bad magic, unknown type code, short header, a
payload larger or smaller than the sizes promise -- raises ``DataError`` naming
the file and the problem.
"""
import gzip
import math
import os
import zlib

import numpy as np

from ..errors import DataError
from ..files import atomic_write

TYPE_CODES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
"""IDX type code -> big-endian NumPy dtype."""

_CODE_OF = {np.dtype(t).newbyteorder("="): code for code, t in TYPE_CODES.items()}
_GZIP_MAGIC = b"\x1f\x8b"

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
"""The four standard file names of an MNIST-style directory (each may end in ``.gz``)."""

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist/"
"""Where the Debian package ``dataset-fashion-mnist`` installs the data."""

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
"""Fashion-MNIST label i names class ``FASHION_MNIST_CLASSES[i]``."""


# ---------------------------------------------------------------- one file

def read_idx(path):
    """The array stored in an IDX file (raw or gzip), in native byte order.

    Returns an array of the file's dtype and shape, e.g. uint8 (N, 28, 28).
    """
    path = os.fspath(path)
    data = _read_bytes(path)
    dtype, shape, offset = _parse_header(data, path)
    expected = math.prod(shape) * dtype.itemsize
    if len(data) - offset != expected:
        raise DataError(f"{path}: payload of shape {shape} and type {dtype.name} should be "
                        f"{expected} bytes, got {len(data) - offset}")
    flat = np.frombuffer(data, dtype, count=math.prod(shape), offset=offset)
    return flat.astype(dtype.newbyteorder("=")).reshape(shape)


def _read_bytes(path):
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(_GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: corrupt gzip data ({e})") from None


def _parse_header(data, path):
    """(big-endian dtype, shape, payload offset) from the magic number and sizes."""
    if len(data) < 4:
        raise DataError(f"{path}: too short for an IDX magic number (4 bytes), got {len(data)}")
    magic = int.from_bytes(data[:4], "big")
    if data[:2] != b"\0\0" or data[2] not in TYPE_CODES or data[3] == 0:
        raise DataError(f"{path}: bad magic 0x{magic:08X}; an IDX file starts with 0x0000, "
                        f"a type code in {[hex(c) for c in TYPE_CODES]} and a dimension count >= 1")
    ndim, offset = data[3], 4 + 4 * data[3]
    if len(data) < offset:
        raise DataError(f"{path}: header with {ndim} dimensions needs {offset} bytes, "
                        f"got {len(data)}")
    shape = tuple(int(s) for s in np.frombuffer(data, ">u4", count=ndim, offset=4))
    return np.dtype(TYPE_CODES[data[2]]), shape, offset


def write_idx(path, array, compress=None):
    """Write ``array`` as an IDX file, atomically (a temporary file in the same
    directory, then ``os.replace``). Returns ``path``.

    ``array`` must be uint8, int8, int16, int32, float32 or float64 with at least
    one dimension. ``compress=None`` gzips when ``path`` ends in ``.gz``.
    """
    path = os.fspath(path)
    payload = _encode(np.asarray(array), path)
    if compress if compress is not None else path.endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=6, mtime=0)
    atomic_write(path, lambda f: f.write(payload))
    return path


def _encode(array, path):
    code = _CODE_OF.get(array.dtype.newbyteorder("="))
    if code is None:
        raise DataError(f"{path}: IDX cannot store dtype {array.dtype}; use one of "
                        f"{sorted(str(d) for d in _CODE_OF)}")
    if not 1 <= array.ndim <= 255 or max(array.shape) >= 2**32:
        raise DataError(f"{path}: IDX stores 1 to 255 dimensions of size < 2**32, "
                        f"got shape {array.shape}")
    head = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return head + np.ascontiguousarray(array, TYPE_CODES[code]).tobytes()


# ---------------------------------------------------------------- a directory of four

def load_idx_dataset(directory):
    """The four standard IDX files of an MNIST-style directory (``IDX_FILES``,
    each raw or ``.gz``).

    Returns ``((x_train, y_train), (x_test, y_test))``: uint8 images (N, H, W),
    (28, 28) for MNIST, and int64 labels (N,).
    """
    return _load_four(directory, hint="")


def load_mnist(data_dir):
    """MNIST from a directory holding its four standard IDX files (raw or gzip).

    Returns ``((x_train, y_train), (x_test, y_test))``: uint8 (60000, 28, 28),
    int64 (60000,), uint8 (10000, 28, 28), int64 (10000,).
    """
    return _load_four(data_dir, hint="Put the four MNIST IDX files there (raw or .gz).")


def load_fashion_mnist(data_dir=None):
    """Fashion-MNIST from ``data_dir``, by default ``FASHION_MNIST_DIR``.

    Returns ``((x_train, y_train), (x_test, y_test))`` as ``load_mnist`` does;
    label i names class ``FASHION_MNIST_CLASSES[i]``.
    """
    hint = ("Install it with `apt-get install dataset-fashion-mnist` (which fills "
            f"{FASHION_MNIST_DIR}) or pass data_dir= a directory holding the four files.")
    return _load_four(FASHION_MNIST_DIR if data_dir is None else data_dir, hint)


def _load_four(directory, hint):
    paths = _find_files(os.fspath(directory), hint)
    arrays = {name: read_idx(p) for name, p in paths.items()}
    for part in ("train", "test"):
        _check_pair(arrays, paths, part)
    return ((arrays["x_train"], arrays["y_train"].astype(np.int64)),
            (arrays["x_test"], arrays["y_test"].astype(np.int64)))


def _find_files(directory, hint):
    found, missing = {}, []
    for name, stem in IDX_FILES.items():
        candidates = [os.path.join(directory, stem + ext) for ext in ("", ".gz")]
        path = next((p for p in candidates if os.path.isfile(p)), None)
        if path is None:
            missing.append(f"{stem}[.gz]")
        found[name] = path
    if missing:
        where = "" if os.path.isdir(directory) else " (the directory does not exist)"
        raise DataError(f"in directory {directory}{where}: missing "
                        f"{', '.join(missing)}. {hint}".rstrip())
    return found


def _check_pair(arrays, paths, part):
    x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
    if x.dtype != np.uint8 or x.ndim != 3:
        raise DataError(f"{paths[f'x_{part}']}: expected uint8 images (N, H, W), "
                        f"got {x.dtype} {x.shape}")
    if y.dtype != np.uint8 or y.ndim != 1:
        raise DataError(f"{paths[f'y_{part}']}: expected uint8 labels (N,), "
                        f"got {y.dtype} {y.shape}")
    if len(x) != len(y):
        raise DataError(f"{paths[f'x_{part}']} holds {len(x)} images but "
                        f"{paths[f'y_{part}']} holds {len(y)} labels")
