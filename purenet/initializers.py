"""Weight initialisers: ``init(key, shape, dtype) -> array``.

Fans follow the kernel layout ``(*receptive_field, fan_in, fan_out)``: a dense
weight is ``(n_in, n_out)``, a 2-D conv kernel ``(kh, kw, c_in, c_out)``.

    normal          N(0, 1)                       the book's default
    glorot_normal   N(0, 2 / (fan_in + fan_out))
    glorot_uniform  U(±sqrt(6 / (fan_in + fan_out)))
    he_normal       N(0, 2 / fan_in)               for ReLU layers
    he_uniform      U(±sqrt(6 / fan_in))
    orthogonal      an orthogonal matrix (recurrent weights)
    zeros, ones
"""
import numpy as np

from .errors import ConfigError
from .random import generator


def fans(shape):
    """(fan_in, fan_out) of a weight of the given shape."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2]))
    return shape[-2] * receptive, shape[-1] * receptive


def _normal(key, shape, dtype, std):
    return (std * generator(key).standard_normal(shape)).astype(dtype)


def _uniform(key, shape, dtype, limit):
    return generator(key).uniform(-limit, limit, shape).astype(dtype)


def normal(key, shape, dtype=np.float32):
    return _normal(key, shape, dtype, 1.0)


def glorot_normal(key, shape, dtype=np.float32):
    fan_in, fan_out = fans(shape)
    return _normal(key, shape, dtype, np.sqrt(2.0 / (fan_in + fan_out)))


def glorot_uniform(key, shape, dtype=np.float32):
    fan_in, fan_out = fans(shape)
    return _uniform(key, shape, dtype, np.sqrt(6.0 / (fan_in + fan_out)))


def he_normal(key, shape, dtype=np.float32):
    return _normal(key, shape, dtype, np.sqrt(2.0 / fans(shape)[0]))


def he_uniform(key, shape, dtype=np.float32):
    return _uniform(key, shape, dtype, np.sqrt(6.0 / fans(shape)[0]))


def orthogonal(key, shape, dtype=np.float32):
    """Rows or columns orthonormal (QR of a Gaussian matrix, signs fixed)."""
    rows, cols = int(np.prod(shape[:-1])), shape[-1]
    a = generator(key).standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    q = q if rows >= cols else q.T
    return q.reshape(shape).astype(dtype)


def zeros(key, shape, dtype=np.float32):
    return np.zeros(shape, dtype)


def ones(key, shape, dtype=np.float32):
    return np.ones(shape, dtype)


_REGISTRY = {f.__name__: f for f in
             (normal, glorot_normal, glorot_uniform, he_normal, he_uniform, orthogonal, zeros, ones)}
_REGISTRY["xavier_normal"] = glorot_normal
_REGISTRY["xavier_uniform"] = glorot_uniform
NAMES = tuple(sorted(_REGISTRY))


def get(init):
    """An initialiser from its name, or a callable ``(key, shape, dtype)`` as it is."""
    if callable(init):
        return init
    if init not in _REGISTRY:
        raise ConfigError(f"unknown initialiser {init!r}; choose one of {', '.join(NAMES)}")
    return _REGISTRY[init]


def name_of(init):
    """The registered name of an initialiser function, or None."""
    if isinstance(init, str):
        return init
    for name, f in _REGISTRY.items():
        if f is init:
            return name
    return None
