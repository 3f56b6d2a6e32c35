"""Window geometry shared by convolutions and pooling: settings checked once, sizes computed once.

A window operation over an (H, W) image is described by its kernel (window) size,
``stride``, ``dilation`` and ``padding``: ``"valid"`` (none), ``"same"`` (output size
ceil(input / stride); an odd total puts the extra pixel after, as Keras does), an int,
a pair (rows, cols), or explicit ``((top, bottom), (left, right))``. 1-D operations
are the 2-D ones on a height-1 image (``settings_1d``).
"""
import numpy as np

from ..errors import ConfigError, ShapeError


def as_pair(value, what):
    """``value`` as a pair of ints (an int means the same for both axes)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    if (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)):
        return int(value[0]), int(value[1])
    raise ConfigError(f"{what} must be an int or a pair of ints, got {value!r}")


def _positive_pair(value, what):
    pair = as_pair(value, what)
    if min(pair) < 1:
        raise ConfigError(f"{what} must be positive, got {value!r}")
    return pair


def _same_pads(size, k_eff, stride):
    """(before, after) giving an output of ceil(size / stride)."""
    total = max((-(-size // stride) - 1) * stride + k_eff - size, 0)
    return total // 2, total - total // 2


def resolve_padding(padding, in_hw, kernel_hw, stride, dilation):
    """Padding as ``((top, bottom), (left, right))`` for one of the accepted spellings."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            return tuple(_same_pads(n, (k - 1) * d + 1, s)
                         for n, k, s, d in zip(in_hw, kernel_hw, stride, dilation))
        raise ConfigError(f"padding must be 'same', 'valid', an int or a pair, got {padding!r}")
    if isinstance(padding, (list, tuple)) and all(isinstance(p, (list, tuple)) for p in padding):
        return _explicit_pads(padding)
    ph, pw = as_pair(padding, "padding")
    if min(ph, pw) < 0:
        raise ConfigError(f"padding must not be negative, got {padding!r}")
    return (ph, ph), (pw, pw)


def _explicit_pads(padding):
    """``((top, bottom), (left, right))`` as given, checked."""
    pads = tuple(as_pair(p, "padding") for p in padding)
    if len(pads) != 2 or min(min(p) for p in pads) < 0:
        raise ConfigError(f"explicit padding must be ((top, bottom), (left, right)) >= 0, got {padding!r}")
    return pads


def check_settings(kernel_hw, stride=1, padding="valid", dilation=1):
    """Raise ConfigError for bad settings before any input is seen."""
    kernel_hw = _positive_pair(kernel_hw, "kernel_size")
    stride, dilation = _positive_pair(stride, "stride"), _positive_pair(dilation, "dilation")
    resolve_padding(padding, kernel_hw, kernel_hw, stride, dilation)


class Geometry:
    """Everything about one convolution's sizes, computed and checked once."""

    def __init__(self, in_hw, kernel_hw, stride=1, padding="valid", dilation=1):
        self.in_hw = tuple(int(n) for n in in_hw)
        self.kernel_hw = tuple(int(k) for k in kernel_hw)
        if min(self.kernel_hw) < 1:
            raise ShapeError(f"a window of size {self.kernel_hw} is empty: every size must be "
                             "at least 1")
        self.stride = _positive_pair(stride, "stride")
        self.dilation = _positive_pair(dilation, "dilation")
        self.pads = resolve_padding(padding, self.in_hw, self.kernel_hw, self.stride, self.dilation)
        self.padded_hw = tuple(n + a + b for n, (a, b) in zip(self.in_hw, self.pads))
        self.out_hw = tuple((n - (k - 1) * d - 1) // s + 1 for n, k, s, d in
                            zip(self.padded_hw, self.kernel_hw, self.stride, self.dilation))
        if min(self.out_hw) < 1:
            raise ShapeError(
                f"input of size {self.in_hw[0]}x{self.in_hw[1]} is too small for a "
                f"{self.kernel_hw[0]}x{self.kernel_hw[1]} window with dilation {self.dilation} "
                f"and padding {self.pads}")

    def _key(self):
        return self.in_hw, self.kernel_hw, self.stride, self.dilation, self.pads

    def __eq__(self, other):
        return isinstance(other, Geometry) and self._key() == other._key()

    def __hash__(self):             # a key of caches (the spectral route's DFT matrices)
        return hash(self._key())

    def window(self, i, j):
        """Index (rows, cols) of the input positions that kernel offset (i, j) reads."""
        (sh, sw), (dh, dw), (ho, wo) = self.stride, self.dilation, self.out_hw
        return (slice(i * dh, i * dh + (ho - 1) * sh + 1, sh),
                slice(j * dw, j * dw + (wo - 1) * sw + 1, sw))

    def offsets(self):
        """Kernel offsets (i, j) in row-major order."""
        kh, kw = self.kernel_hw
        return [(i, j) for i in range(kh) for j in range(kw)]


def single(value, what, minimum=1):
    """A 1-D setting: an int (or a one-element list of one) of at least ``minimum``."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{what} of a 1-D operation must be an int >= {minimum}, got {value!r}")
    return int(value)


def settings_1d(stride=1, padding="valid", dilation=1):
    """1-D convolution settings as those of the equivalent height-1 2-D convolution."""
    return dict(stride=(1, single(stride, "stride")), dilation=(1, single(dilation, "dilation")),
                padding=padding if isinstance(padding, str) else (0, single(padding, "padding", 0)))
