"""A pool of scratch buffers for the fused sequence kernels.

A fused kernel's forward pass fills several arrays of ``time * batch * units``
floats (activations, gates, states) that its backward pass reads, and the
backward needs as many again for its own scratch. Fresh multi-megabyte arrays
cost page faults on every call, so the kernels reuse them through this pool.

Ownership and invariant. A *workspace* (a dict of arrays, see ``take``) is
always in exactly one of two places:

* free, in the pool, where nothing refers to it but the pool; or
* owned by exactly one backward closure, the one returned by the forward call
  that took it. That forward fills it; every call of that backward reads it and
  overwrites its gradient scratch (so a ``vjp`` pullback may run more than
  once); nothing else reads or writes it.

``release_with(backward, key, ws)`` ties the workspace to its owner: it goes
back to the pool when the backward closure becomes garbage, that is

* at once after a call on plain arrays (inference), which drops the backward;
* inside ``grad``, as soon as the engine has run that backward (it drops each
  one once run), or, if no gradient reached it, when ``grad`` clears its tape;
* when a ``vjp`` pullback that holds it is dropped (the tape and its trace refer
  to each other, so that waits for Python's cycle collector).

The kernels' outputs never alias a workspace (they are copies), so a workspace
back in the pool may be overwritten by the next forward pass at any time.
"""
import weakref

import numpy as np

_FREE = {}          # key -> list of free workspaces with those shapes
DEPTH = 2           # free workspaces kept per key
KEYS = 16           # distinct keys kept; the oldest is dropped beyond that


def take(tag, shapes, dtype):
    """``(key, workspace)``: a free workspace of these shapes and dtype, or a new one.

    ``shapes`` maps buffer names to shapes; the workspace maps the same names to
    uninitialised arrays. The caller owns it until it is released.
    """
    dtype = np.dtype(dtype)
    key = (tag, dtype.str, tuple(sorted(shapes.items())))
    free = _FREE.get(key)
    if free:
        return key, free.pop()
    return key, {name: np.empty(shape, dtype) for name, shape in shapes.items()}


def release_with(backward, key, ws):
    """Return ``ws`` to the pool once ``backward`` (its owner) is garbage; returns ``backward``."""
    weakref.finalize(backward, _give_back, key, ws)
    return backward


def _give_back(key, ws):
    free = _FREE.setdefault(key, [])
    if len(free) < DEPTH:
        free.append(ws)
    while len(_FREE) > KEYS:
        _FREE.pop(next(iter(_FREE)))

