"""Weight initialisers: ``init(key, shape, dtype, fan_in=None) -> array``.

Fans follow the kernel layout ``(*receptive_field, fan_in, fan_out)``: a dense
weight is ``(n_in, n_out)``, a 2-D conv kernel ``(kh, kw, c_in, c_out)``. A
bias has no fan of its own, so layers pass their weight's ``fan_in`` when they
initialise one (PyTorch's default bias depends on it); a given ``fan_in``
overrides the one read from the shape.

    normal          N(0, 1)                                  the book's default
    glorot_normal   N(0, 2 / (fan_in + fan_out))
    glorot_uniform  U(±sqrt(6 / (fan_in + fan_out)))
    he_normal       N(0, 2 / fan_in)                         for ReLU layers
    he_uniform      U(±sqrt(6 / fan_in))
    lecun_normal    N(0, 1 / fan_in)                         (truncation not applied)
    lecun_uniform   U(±sqrt(3 / fan_in))
    torch           U(±1 / sqrt(fan_in))    PyTorch's default for Linear/Conv weights and biases
    orthogonal      an orthogonal matrix (recurrent weights)
    zeros, ones
    variance_scaling(scale, mode, distribution)   Keras's general form of the fan-based ones

A user-defined initialiser may take ``(key, shape, dtype)`` only; ``get`` adapts it.
"""
import inspect

import numpy as np

from .errors import ConfigError
from .random import generator


def fans(shape, fan_in=None):
    """(fan_in, fan_out) of a weight of the given shape; a given ``fan_in`` wins."""
    if len(shape) == 0:
        pair = 1, 1
    elif len(shape) == 1:
        pair = shape[0], shape[0]
    else:
        receptive = int(np.prod(shape[:-2]))
        pair = shape[-2] * receptive, shape[-1] * receptive
    return (pair[0] if fan_in is None else int(fan_in)), pair[1]


def _normal(key, shape, dtype, std):
    return (std * generator(key).standard_normal(shape)).astype(dtype)


def _uniform(key, shape, dtype, limit):
    return generator(key).uniform(-limit, limit, shape).astype(dtype)


def variance_scaling(scale=1.0, mode="fan_in", distribution="truncated_normal"):
    """Keras's ``VarianceScaling``: variance ``scale / n`` with ``n`` the fan_in, the fan_out
    or their mean (``mode``); ``distribution`` "truncated_normal" (cut at 2 std, std
    corrected as Keras does), "untruncated_normal"/"normal" or "uniform"."""
    modes = {"fan_in": lambda i, o: i, "fan_out": lambda i, o: o, "fan_avg": lambda i, o: (i + o) / 2}
    if mode not in modes:
        raise ConfigError(f"variance_scaling: mode must be one of {', '.join(modes)}, got {mode!r}")
    if distribution not in ("truncated_normal", "untruncated_normal", "normal", "uniform"):
        raise ConfigError("variance_scaling: distribution must be 'truncated_normal', "
                          f"'untruncated_normal', 'normal' or 'uniform', got {distribution!r}")
    if not scale > 0:
        raise ConfigError(f"variance_scaling: scale must be positive, got {scale!r}")

    def init(key, shape, dtype=np.float32, fan_in=None):
        variance = scale / max(1.0, modes[mode](*fans(shape, fan_in)))
        if distribution == "uniform":
            return _uniform(key, shape, dtype, np.sqrt(3.0 * variance))
        if distribution == "truncated_normal":
            # std of N(0, 1) cut at ±2 is 0.8796; divide so the variance comes out as asked
            return _truncated_normal(key, shape, dtype, np.sqrt(variance) / 0.87962566103423978)
        return _normal(key, shape, dtype, np.sqrt(variance))

    init.__name__ = f"variance_scaling({scale!r}, {mode!r}, {distribution!r})"
    init.config = {"initializer": "variance_scaling",
                   "args": {"scale": scale, "mode": mode, "distribution": distribution}}
    return init


def _truncated_normal(key, shape, dtype, std):
    """N(0, std^2) with draws beyond 2 std redrawn."""
    rng = generator(key)
    z = rng.standard_normal(shape)
    bad = np.abs(z) > 2
    while bad.any():
        z[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(z) > 2
    return (std * z).astype(dtype)


def normal(key, shape, dtype=np.float32, fan_in=None):
    return _normal(key, shape, dtype, 1.0)


def glorot_normal(key, shape, dtype=np.float32, fan_in=None):
    fan_in, fan_out = fans(shape, fan_in)
    return _normal(key, shape, dtype, np.sqrt(2.0 / (fan_in + fan_out)))


def glorot_uniform(key, shape, dtype=np.float32, fan_in=None):
    fan_in, fan_out = fans(shape, fan_in)
    return _uniform(key, shape, dtype, np.sqrt(6.0 / (fan_in + fan_out)))


def he_normal(key, shape, dtype=np.float32, fan_in=None):
    return _normal(key, shape, dtype, np.sqrt(2.0 / fans(shape, fan_in)[0]))


def he_uniform(key, shape, dtype=np.float32, fan_in=None):
    return _uniform(key, shape, dtype, np.sqrt(6.0 / fans(shape, fan_in)[0]))


def lecun_normal(key, shape, dtype=np.float32, fan_in=None):
    return _normal(key, shape, dtype, np.sqrt(1.0 / fans(shape, fan_in)[0]))


def lecun_uniform(key, shape, dtype=np.float32, fan_in=None):
    return _uniform(key, shape, dtype, np.sqrt(3.0 / fans(shape, fan_in)[0]))


def torch(key, shape, dtype=np.float32, fan_in=None):
    """PyTorch's default for Linear and Conv weights and biases: U(±1/sqrt(fan_in))."""
    return _uniform(key, shape, dtype, 1.0 / np.sqrt(fans(shape, fan_in)[0]))


def orthogonal(key, shape, dtype=np.float32, fan_in=None):
    """Rows or columns orthonormal (QR of a Gaussian matrix, signs fixed)."""
    rows, cols = int(np.prod(shape[:-1])), shape[-1]
    a = generator(key).standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    q = q if rows >= cols else q.T
    return q.reshape(shape).astype(dtype)


def zeros(key, shape, dtype=np.float32, fan_in=None):
    return np.zeros(shape, dtype)


def ones(key, shape, dtype=np.float32, fan_in=None):
    return np.ones(shape, dtype)


_REGISTRY = {f.__name__: f for f in
             (normal, glorot_normal, glorot_uniform, he_normal, he_uniform, lecun_normal,
              lecun_uniform, torch, orthogonal, zeros, ones)}
_REGISTRY["xavier_normal"] = glorot_normal
_REGISTRY["xavier_uniform"] = glorot_uniform
NAMES = tuple(sorted(_REGISTRY))


def get(init):
    """An initialiser from its name, or a callable: ``(key, shape, dtype, fan_in=None)``,
    or ``(key, shape, dtype)`` (then adapted to ignore ``fan_in``)."""
    if callable(init):
        return init if "fan_in" in inspect.signature(init).parameters else _ignoring_fan_in(init)
    if isinstance(init, dict) and init.get("initializer") == "variance_scaling":
        return variance_scaling(**init.get("args", {}))     # the saved form of a configured one
    if not isinstance(init, str) or init not in _REGISTRY:
        raise ConfigError(f"unknown initialiser {init!r}; choose one of {', '.join(NAMES)}")
    return _REGISTRY[init]


def _ignoring_fan_in(init):
    def adapted(key, shape, dtype=np.float32, fan_in=None):
        return init(key, shape, dtype)
    adapted.wrapped = init
    return adapted


def name_of(init):
    """The registered name of an initialiser function, or None."""
    if isinstance(init, str):
        return init
    init = getattr(init, "wrapped", init)
    for name, f in _REGISTRY.items():
        if f is init:
            return name
    return None
