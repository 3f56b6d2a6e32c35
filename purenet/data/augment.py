"""Image augmentation for NCHW batches, vectorised, driven by explicit keys.

Each function takes a batch ``x (N, C, H, W)`` and a key and returns a new
batch (the input is never modified). ``compose`` chains them into one
``augment(x, key)`` function, the form ``fit(..., augment=...)`` takes:

    augment = compose(random_shift(2), random_flip())
    fit(..., augment=augment)        # a fresh key for every batch
"""
import functools

import numpy as np

from ..errors import ConfigError, ShapeError
from ..random import generator, split


def _check_images(x, name):
    if np.ndim(x) != 4:
        raise ShapeError(f"{name}: expected images (batch, channels, height, width), got {np.shape(x)}")


def _padded(x, s):
    """``x`` (N, C, H, W) with ``s`` pixels added on every side, each image's filled with
    its minimum (the background of a normalised dark-ground image)."""
    n, c, h, w = x.shape
    xp = np.empty((n, c, h + 2 * s, w + 2 * s), x.dtype)
    xp[:] = x.min(axis=(1, 2, 3))[:, None, None, None]
    xp[:, :, s:s + h, s:s + w] = x
    return xp


def random_shift(max_shift):
    """Translate each image by up to ``max_shift`` pixels along each axis; uncovered
    pixels take the image's minimum (the background of a normalised dark-ground image)."""
    if int(max_shift) < 0:
        raise ConfigError(f"random_shift: max_shift must be >= 0, got {max_shift}")
    s = int(max_shift)

    def augment(x, key):
        _check_images(x, "random_shift")
        n, c, h, w = x.shape
        xp = _padded(x, s)
        dy, dx = generator(key).integers(0, 2 * s + 1, (2, n))
        out = np.empty_like(x)
        for top in range(2 * s + 1):        # one copy per offset: the images it drew
            for left in range(2 * s + 1):
                drew = np.flatnonzero((dy == top) & (dx == left))
                if drew.size:
                    out[drew] = xp[drew, :, top:top + h, left:left + w]
        return out
    return augment


def shift(x, down, right):
    """Every image translated ``down`` rows and ``right`` columns (negative: up, left),
    uncovered pixels filled as ``random_shift`` fills them."""
    _check_images(x, "shift")
    s, (h, w) = max(abs(down), abs(right)), x.shape[2:]
    if s == 0:
        return np.array(x, copy=True)
    return _padded(x, s)[:, :, s - down:s - down + h, s - right:s - right + w].copy()


def flip(x):
    """Every image mirrored left-right."""
    _check_images(x, "flip")
    return x[..., ::-1].copy()


def shift_flip_views(max_shift):
    """The deterministic versions of ``compose(random_shift(max_shift), random_flip())``:
    one function ``x -> x'`` per shift in [-max_shift, max_shift]^2, unflipped and flipped
    ((2 max_shift + 1)^2 * 2 of them, the identity first), for test-time augmentation
    (``train.predict_averaged``)."""
    if int(max_shift) < 0:
        raise ConfigError(f"shift_flip_views: max_shift must be >= 0, got {max_shift}")
    s = int(max_shift)
    moves = sorted(((a, b) for a in range(-s, s + 1) for b in range(-s, s + 1)),
                   key=lambda m: m != (0, 0))
    return [functools.partial(shifted_view, move=move, mirrored=mirrored)
            for mirrored in (False, True) for move in moves]


def shifted_view(x, move=(0, 0), mirrored=False):
    """``x`` mirrored left-right if ``mirrored``, then shifted by ``move`` (down, right)."""
    return shift(flip(x) if mirrored else x, *move)


def random_flip(prob=0.5):
    """Mirror each image left-right with probability ``prob``."""
    if not 0.0 <= prob <= 1.0:
        raise ConfigError(f"random_flip: prob must be in [0, 1], got {prob}")

    def augment(x, key):
        _check_images(x, "random_flip")
        flip = generator(key).random(len(x)) < prob
        out = np.array(x, copy=True)
        out[flip] = x[flip][..., ::-1]
        return out
    return augment


def compose(*augmentations):
    """One ``augment(x, key)`` applying each in turn, each with its own child key."""
    def augment(x, key):
        for aug, k in zip(augmentations, split(key, len(augmentations))):
            x = aug(x, k)
        return x
    return augment
