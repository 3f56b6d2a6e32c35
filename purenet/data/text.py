"""Character-level text: vocabulary, encoding, train/validation split, BPTT batches.

    text = load_text("input.txt")                 # any UTF-8 file
    vocab = build_vocab(text)                     # {"chars": ["\\n", " ", "!", ...]}
    ids = encode(text, vocab)                     # int32 array, one id per character
    train_ids, val_ids = split_text(ids)          # first 90% / last 10%, by position
    for x, y in bptt_batches(train_ids, batch_size=32, seq_len=64):
        ...                                       # x, y: (32, 64); y is x shifted by one

The vocabulary is a plain JSON-able dict whose characters are sorted, so the
same text always gives the same ids (a ``set``'s order changes between runs,
which would scramble a reloaded model's outputs). Ids are positions in
``vocab["chars"]``.

``bptt_batches`` cuts the id stream into ``batch_size`` contiguous streams
(row ``b`` holds the b-th slice of the text) and walks them in windows of
``seq_len``: the window after ``x`` continues every row exactly where ``x``
ended, so a stateful recurrent layer can carry its state from one batch to
the next (truncated backpropagation through time).
"""
import os

import numpy as np

from ..errors import DataError


def load_text(path):
    """The contents of a UTF-8 text file as a str; a DataError if it is missing,
    not a file, empty or not UTF-8."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"{path}: no such file")
    if not os.path.isfile(path):
        raise DataError(f"{path}: not a file")
    with open(path, "rb") as f:
        raw = f.read()
    if not raw:
        raise DataError(f"{path}: the file is empty")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte {err.start} is "
                        f"{raw[err.start]:#04x})") from None


def build_vocab(text):
    """The sorted distinct characters of ``text``: ``{"chars": [...]}``."""
    if not isinstance(text, str):
        raise DataError(f"build_vocab: expected a str, got {type(text).__name__}")
    if not text:
        raise DataError("build_vocab: the text is empty")
    return {"chars": sorted(set(text))}


def vocab_size(vocab):
    return len(_chars(vocab))


def _chars(vocab):
    try:
        chars = vocab["chars"]
    except (TypeError, KeyError):
        raise DataError("a vocabulary is a dict {'chars': [...]} made by build_vocab") from None
    return chars


def _code_points(text):
    """The Unicode code points of ``text`` as a uint32 array."""
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def _vocab_codes(vocab):
    codes = _code_points("".join(_chars(vocab)))
    if len(codes) != len(_chars(vocab)) or np.any(np.diff(codes.astype(np.int64)) <= 0):
        raise DataError("vocabulary characters must be single, distinct and sorted "
                        "(use build_vocab)")
    return codes


def encode(text, vocab):
    """``text`` -> int32 ids (len(text),); an unknown character is a DataError naming it."""
    codes = _vocab_codes(vocab)
    points = _code_points(text)
    ids = np.minimum(np.searchsorted(codes, points), len(codes) - 1)
    unknown = codes[ids] != points
    if unknown.any():
        where = int(np.argmax(unknown))
        raise DataError(f"encode: character {text[where]!r} (at position {where}) is not in "
                        f"the vocabulary of {len(codes)} characters")
    return ids.astype(np.int32)


def decode(ids, vocab):
    """Integer ids (any shape, flattened in order) -> the str they encode."""
    codes = _vocab_codes(vocab)
    ids = np.asarray(ids).reshape(-1)
    if ids.size == 0:
        return ""
    if ids.dtype.kind not in "iu":
        raise DataError(f"decode: ids must be integers, got dtype {ids.dtype}")
    bad = (ids < 0) | (ids >= len(codes))
    if bad.any():
        raise DataError(f"decode: id {ids[bad][0]} is out of range for a vocabulary of "
                        f"{len(codes)} characters")
    return codes[ids].tobytes().decode("utf-32-le")


def split_text(ids, val_fraction=0.1):
    """``(train, val)``: the first ``1 - val_fraction`` of the stream and the rest, by position."""
    ids = _check_stream(ids, "split_text")
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"split_text: val_fraction must be in (0, 1), got {val_fraction}")
    cut = int(round(len(ids) * (1.0 - val_fraction)))
    if cut == 0 or cut == len(ids):
        raise DataError(f"split_text: {len(ids)} ids are too few to split {val_fraction:g} off")
    return ids[:cut], ids[cut:]


def _check_stream(ids, name):
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise DataError(f"{name}: expected a 1-D integer id stream, got shape {ids.shape} "
                        f"and dtype {ids.dtype}")
    return ids


def bptt_streams(ids, batch_size):
    """``(x_streams, y_streams)``, each (batch_size, n): row b is the b-th contiguous slice of
    the text, and y is x shifted one character ahead. The tail that does not fill a row is
    dropped."""
    ids = _check_stream(ids, "bptt_streams")
    n = (len(ids) - 1) // batch_size if batch_size > 0 else 0
    if n == 0:
        raise DataError(f"bptt_streams: {len(ids)} ids are too few for {batch_size} streams")
    x = ids[:batch_size * n].reshape(batch_size, n)
    y = ids[1:batch_size * n + 1].reshape(batch_size, n)
    return x, y


def num_bptt_batches(ids, batch_size, seq_len, drop_last=True):
    """How many windows ``bptt_batches`` yields with these settings."""
    n = bptt_streams(ids, batch_size)[0].shape[1]
    return n // seq_len if drop_last else -(-n // seq_len)


def bptt_batches(ids, batch_size, seq_len, drop_last=True):
    """Yield ``(x, y)`` windows of shape (batch_size, seq_len), consecutive in every stream.

    Window k holds characters ``[k*seq_len, (k+1)*seq_len)`` of each stream (see
    ``bptt_streams``); ``y`` is ``x`` shifted by one. With ``drop_last=False`` a
    shorter last window is yielded too. Bad settings raise at the call, not at
    the first iteration.
    """
    if seq_len <= 0:
        raise DataError(f"bptt_batches: seq_len must be positive, got {seq_len}")
    x, y = bptt_streams(ids, batch_size)
    if drop_last and x.shape[1] < seq_len:
        raise DataError(f"bptt_batches: each of the {batch_size} streams has {x.shape[1]} ids, "
                        f"fewer than seq_len={seq_len}")
    stop = x.shape[1] - x.shape[1] % seq_len if drop_last else x.shape[1]
    return ((x[:, s:s + seq_len], y[:, s:s + seq_len]) for s in range(0, stop, seq_len))
