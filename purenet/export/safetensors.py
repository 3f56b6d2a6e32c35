"""safetensors files: named raw tensors that NumPy, PyTorch and most frameworks read.

    pn.save_model("model.safetensors", model, params, state, in_shape=(13,))  # loads back
    pn.export.save_safetensors("weights.safetensors", params, state)          # arrays only
    tensors, metadata = pn.export.load_safetensors("weights.safetensors")

The format is simple enough to write here, so the core needs no new package:

* 8 bytes: ``N``, the length of the header, as a little-endian unsigned integer;
* ``N`` bytes of JSON: for each tensor, its name mapped to ``{"dtype": "F32", "shape":
  [784, 512], "data_offsets": [begin, end]}`` (byte offsets into the data that
  follows), and ``"__metadata__"``, a map of strings to strings; padded with spaces
  so the data starts on an 8-byte boundary;
* the raw little-endian bytes of every tensor, back to back, in C order.

Tensor names are the params' tree paths, as in the ``.npz`` format without its
``params/`` prefix (``dense_0/W``), and the state's under ``state/``
(``state/batchnorm_1/mean``). ``save_model`` adds its metadata (the
architecture as JSON, the input shape, the dtype) so that ``load_model`` reads
the file like an ``.npz``. The ``safetensors`` package reads every file written
here (``safetensors.numpy.load_file``, ``safetensors.torch.load_file``;
``pip install "purenet[safetensors]"`` installs it). Writes are atomic. A file
that is damaged, truncated or not in this format is a ``ModelFileError`` naming
the file and what is wrong.
"""
import json
import os

import numpy as np

from ..errors import ConfigError, DataError, ModelFileError
from ..files import atomic_write, check_existing_file
from ..tree import tree_flatten_with_paths

STATE_PREFIX = "state/"
METADATA_KEY = "__metadata__"
MAX_HEADER_BYTES = 100_000_000         # the safetensors package refuses larger headers
ALIGNMENT = 8

# safetensors dtype name <-> NumPy dtype (little-endian)
DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
          "I8": "|i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "|u1", "BOOL": "|b1"}
_NAMES = {np.dtype(code): name for name, code in DTYPES.items()}


# --- trees <-> tensor names ---------------------------------------------------

def tensor_names(params, state=None):
    """``{name: array}``: the params under their tree paths, the state under ``state/``.

    A params path that would read as state (a top-level layer named ``state``) is a
    ``ConfigError``: the two could not be told apart when loading.
    """
    tensors = {path: np.asarray(a) for path, a in tree_flatten_with_paths(params or {})}
    clash = next((name for name in tensors if name.startswith(STATE_PREFIX)), None)
    if clash is not None:
        raise ConfigError(f"params entry '{clash}' would be read back as state: a top-level "
                          "layer named 'state' cannot be saved as safetensors (rename it, or "
                          "save as .npz)")
    for path, a in tree_flatten_with_paths(state or {}):
        tensors[STATE_PREFIX + path] = np.asarray(a)
    return tensors


# --- writing --------------------------------------------------------------------

def save_safetensors(path, params, state=None, metadata=None):
    """Write ``params`` (and ``state``) to ``path`` as safetensors, atomically.

    ``metadata`` is a dict of strings to strings, stored in the header. Returns ``path``.
    """
    write_safetensors(path, tensor_names(params, state), metadata)
    return path


def write_safetensors(path, tensors, metadata=None):
    """Write ``{name: array}`` and ``metadata`` (strings to strings), atomically."""
    header, arrays = encode_header(tensors, metadata)

    def write(f):
        f.write(len(header).to_bytes(8, "little"))
        f.write(header)
        for a in arrays:
            if a.size:
                f.write(a.data)
    atomic_write(path, write)


def encode_header(tensors, metadata=None):
    """``(header bytes, arrays in file order)`` for ``{name: array}``.

    The arrays go largest element size first, so that each starts on a multiple of
    its element size (the data section itself starts 8-byte aligned).
    """
    arrays = {}
    for name, a in tensors.items():
        if not isinstance(name, str) or not name or name == METADATA_KEY:
            raise ConfigError(f"safetensors: {name!r} cannot name a tensor")
        a = np.asarray(a)
        if a.dtype not in _NAMES and a.dtype.newbyteorder("<") not in _NAMES:
            raise DataError(f"safetensors: tensor '{name}' holds {a.dtype} values; the format "
                            f"stores {', '.join(sorted(DTYPES))}")
        arrays[name] = np.asarray(a, dtype=a.dtype.newbyteorder("<"), order="C")
    header = {}
    if metadata:
        bad = [k for k, v in metadata.items() if not (isinstance(k, str) and isinstance(v, str))]
        if bad:
            raise ConfigError(f"safetensors: metadata entry {bad[0]!r}: keys and values must be "
                              "strings")
        header[METADATA_KEY] = dict(metadata)
    order = sorted(arrays, key=lambda n: (-arrays[n].dtype.itemsize, n))
    offset = 0
    for name in order:
        a = arrays[name]
        header[name] = {"dtype": _NAMES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % ALIGNMENT)
    return text, [arrays[name] for name in order]


# --- reading --------------------------------------------------------------------

def looks_like_safetensors(path):
    """Whether ``path`` starts like a safetensors file (a length, then ``{``), or, when
    it does not start like an ``.npz`` or ``.npy`` file either, is named ``.safetensors``
    (so that a damaged one is reported as such)."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        head = b""
    if head.startswith((b"PK", b"\x93NUMPY")):
        return False
    return head[8:9] == b"{" or os.fspath(path).endswith(".safetensors")


def load_safetensors(path):
    """``(tensors, metadata)``: ``{name: array}`` in the file's order, and the header's
    ``__metadata__`` (``{}`` when it has none)."""
    where = os.fspath(path)
    header, data = _read(where)
    metadata = header.pop(METADATA_KEY, {})
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise _damaged(where, "'__metadata__' must map strings to strings")
    entries = [_entry(where, name, spec) for name, spec in header.items()]
    _check_layout(where, entries, len(data))
    tensors = {name: _array(data, dtype, shape, begin)
               for name, dtype, shape, (begin, _) in entries}
    return tensors, metadata


def _read(where):
    """``(header dict, data bytes)`` from the file."""
    check_existing_file(where, "a safetensors file")
    try:
        with open(where, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 8:
                raise _damaged(where, f"the file has {size} bytes, fewer than the 8 of the "
                                      "header length (truncated?)")
            length = int.from_bytes(f.read(8), "little")
            if length > MAX_HEADER_BYTES:
                raise _damaged(where, f"the header length reads {length:,} bytes (not a "
                                      "safetensors file?)")
            if length > size - 8:
                raise _damaged(where, f"the header should be {length:,} bytes, the file holds "
                                      f"{size - 8:,} after its length (truncated?)")
            text = f.read(length)
            data = bytearray(size - 8 - length)
            f.readinto(data)
    except OSError as err:
        raise ModelFileError(f"{where}: cannot be read: {err.strerror or err}") from None
    if not text.startswith(b"{"):
        raise _damaged(where, "the header is not a JSON object (not a safetensors file?)")
    try:
        header = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _damaged(where, f"the header is not valid JSON ({err})") from None
    if not isinstance(header, dict):
        raise _damaged(where, "the header is not a JSON object")
    return header, data


def _entry(where, name, spec):
    """``(name, dtype, shape, (begin, end))`` of one header entry, checked."""
    if not (isinstance(spec, dict) and {"dtype", "shape", "data_offsets"} <= set(spec)):
        raise _damaged(where, f"tensor '{name}' needs dtype, shape and data_offsets")
    kind, shape, offsets = spec["dtype"], spec["shape"], spec["data_offsets"]
    if kind not in DTYPES:
        known = ", ".join(sorted(DTYPES))
        raise _damaged(where, f"tensor '{name}' has dtype {kind!r}; NumPy reads {known}")
    if not (isinstance(shape, list) and all(_size(n) for n in shape)):
        raise _damaged(where, f"tensor '{name}' has shape {shape!r}, not a list of sizes")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_size(n) for n in offsets)
            and offsets[0] <= offsets[1]):
        raise _damaged(where, f"tensor '{name}' has data_offsets {offsets!r}, not [begin, end]")
    dtype = np.dtype(DTYPES[kind])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if offsets[1] - offsets[0] != expected:
        raise _damaged(where, f"tensor '{name}' of shape {tuple(shape)} and dtype {kind} needs "
                              f"{expected:,} bytes, its data_offsets span "
                              f"{offsets[1] - offsets[0]:,}")
    return name, dtype, tuple(shape), tuple(offsets)


def _size(n):
    return isinstance(n, int) and not isinstance(n, bool) and n >= 0


def _check_layout(where, entries, available):
    """The tensors must fill the data section exactly, back to back."""
    end = 0
    for name, _, _, (begin, stop) in sorted(entries, key=lambda e: e[3]):
        if begin != end:
            what = "overlaps the tensor before it" if begin < end else "leaves a gap before it"
            raise _damaged(where, f"tensor '{name}' starts at byte {begin:,} and {what}")
        end = stop
    if end > available:
        raise _damaged(where, f"the tensors need {end:,} bytes of data, the file holds "
                              f"{available:,} (truncated?)")
    if end < available:
        raise _damaged(where, f"{available - end:,} bytes after the last tensor's data")


def _array(data, dtype, shape, begin):
    """A writable array of native byte order over (or copied from) ``data``."""
    count = int(np.prod(shape, dtype=np.int64))
    if count == 0:
        return np.zeros(shape, dtype.newbyteorder("="))
    a = np.frombuffer(data, dtype, count, begin).reshape(shape)
    if not a.dtype.isnative:
        return a.astype(a.dtype.newbyteorder("="))
    return a if a.flags.aligned else a.copy()


def _damaged(where, what):
    return ModelFileError(f"{where}: not a readable safetensors file: {what}")
