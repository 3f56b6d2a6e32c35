"""Explicit, splittable random keys.

A key is a small tuple ``(seed, path...)`` of ints: it is hashable, printable,
JSON-serialisable and carries no hidden state. ``split`` derives independent
child keys (via NumPy's ``SeedSequence`` spawning), so adding a layer never
shifts the random numbers of the others, and ``generator`` turns a key into a
fresh ``np.random.Generator`` for the one call that needs it.

    k = key(0)
    k_init, k_data = split(k)
    rng = generator(k_init)          # np.random.Generator
"""
import numpy as np


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
