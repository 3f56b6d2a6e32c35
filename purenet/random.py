"""Explicit, splittable random keys.

A key is a small tuple ``(seed, path...)`` of ints: it is hashable, printable,
JSON-serialisable and carries no hidden state. ``split`` derives independent
child keys (via NumPy's ``SeedSequence`` spawning), so adding a layer never
shifts the random numbers of the others, and ``generator`` turns a key into a
fresh ``np.random.Generator`` for the one call that needs it.

    k = key(0)
    k_init, k_data = split(k)
    rng = generator(k_init)          # np.random.Generator

Per-example random numbers (dropout masks) come from ``batch_uniform``: inside
``batch_rows`` (which data-parallel training sets around each step) a process
draws the global batch's numbers and keeps its own rows, so N processes drop
exactly the units one process would.
"""
from contextlib import contextmanager

import numpy as np

# Set by ``batch_rows`` while a process holds rows of a larger global batch: (start, total).
_rows = None


def key(seed):
    """The root key of a run, from a non-negative integer seed."""
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    return (seed,)


def _check(k):
    if not (isinstance(k, tuple) and k and all(isinstance(i, int) for i in k)):
        raise TypeError(f"expected a key made by purenet.random.key(seed), got {k!r}")
    return k


def fold_in(k, data):
    """A new key derived from ``k`` and a non-negative int (e.g. a step number)."""
    return _check(k) + (int(data),)


def split(k, num=2):
    """``num`` independent child keys of ``k``."""
    _check(k)
    return [k + (i,) for i in range(num)]


def generator(k):
    """A NumPy Generator seeded by ``k``; equal keys give equal streams."""
    _check(k)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(k[0], spawn_key=k[1:])))


@contextmanager
def batch_rows(start, total):
    """Within this block a batch of ``n`` examples is rows ``start .. start + n`` of a
    global batch of ``total`` examples, for ``batch_uniform``."""
    global _rows
    previous, _rows = _rows, (int(start), int(total))
    try:
        yield
    finally:
        _rows = previous


def batch_uniform(k, shape, dtype=np.float32):
    """Uniform numbers in [0, 1) of ``shape``, axis 0 being the batch's examples: the
    same for a batch whether one process holds it all or several hold rows of it
    (``batch_rows``)."""
    if _rows is None:
        return generator(k).random(shape, dtype=dtype)
    start, total = _rows
    whole = generator(k).random((total,) + tuple(shape[1:]), dtype=dtype)
    return whole[start:start + shape[0]]
