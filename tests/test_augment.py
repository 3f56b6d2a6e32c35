"""Image augmentation: shapes, determinism, what each transform does, use in fit."""
import numpy as np
import pytest

from purenet.data.augment import (compose, flip, random_flip, random_shift, shift,
                                  shift_flip_views)
from purenet.errors import ConfigError, ShapeError
from purenet.random import key


def images(n=6, h=5, w=7):
    return np.arange(n * 2 * h * w, dtype=np.float32).reshape(n, 2, h, w)


def test_shift_moves_each_image_by_at_most_max_shift():
    x = images()
    y = random_shift(2)(x, key(0))
    assert y.shape == x.shape and y.dtype == x.dtype
    for a, b in zip(x, y):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if np.array_equal(b[:, 2:-2, 2:-2], a[:, 2 + dy:a.shape[1] - 2 + dy, 2 + dx:a.shape[2] - 2 + dx])]
        assert matches, "every output is a shifted copy of its input"
    assert not np.array_equal(y, x)                     # some image moved
    assert np.array_equal(random_shift(2)(x, key(0)), y)  # same key, same result
    assert np.array_equal(random_shift(0)(x, key(3)), x)


def test_flip_mirrors_some_images_and_keeps_the_others():
    x = images(n=40)
    y = random_flip(0.5)(x, key(1))
    flipped = [np.array_equal(b, a[..., ::-1]) for a, b in zip(x, y)]
    kept = [np.array_equal(b, a) for a, b in zip(x, y)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 5 < sum(flipped) < 35
    assert x[0, 0, 0, 0] == 0                            # input untouched


def test_compose_and_errors():
    x = images()
    aug = compose(random_shift(1), random_flip(1.0))
    assert aug(x, key(2)).shape == x.shape
    with pytest.raises(ShapeError):
        random_flip()(np.zeros((3, 4)), key(0))
    with pytest.raises(ConfigError):
        random_shift(-1)
    with pytest.raises(ConfigError):
        random_flip(1.5)


def test_fit_applies_augment_to_training_batches_only():
    from purenet import optim
    from purenet.layers import Dense, Flatten, serial
    from purenet.train import fit
    model = serial(Flatten(), Dense(3))
    _, params, _ = model.init(key(0), (1, 4, 4))
    x = np.random.default_rng(0).standard_normal((20, 1, 4, 4)).astype(np.float32)
    y = np.arange(20) % 3
    seen = []

    def spy(xb, k):
        seen.append(len(xb))
        return xb

    fit(model, params, "softmax_cross_entropy", optim.sgd(0.1), x, y, epochs=2, batch_size=8,
        validation_split=0.25, augment=spy, progress=False)
    assert sum(seen) == 2 * 15                           # training rows only, every epoch
    with pytest.raises(ConfigError, match="augment"):
        fit(model, params, "softmax_cross_entropy", optim.sgd(0.1), x, y, augment="flip",
            progress=False)


def test_shift_fills_uncovered_pixels_with_the_image_minimum():
    x = np.full((50, 1, 6, 6), 9.0, np.float32)
    x[:, :, 2:4, 2:4] = 3.0                            # each image's minimum
    y = random_shift(2)(x, key(4))
    assert set(np.unique(y)) <= {3.0, 9.0}
    moved = ~np.all(y == x, axis=(1, 2, 3))
    assert moved.any() and np.all(y.min(axis=(1, 2, 3)) == 3.0)


def test_shift_moves_every_image_and_fills_like_random_shift():
    x = np.random.default_rng(0).standard_normal((3, 2, 5, 6)).astype(np.float32)
    low = x.min(axis=(1, 2, 3))[:, None, None, None]
    down = shift(x, 1, 0)
    np.testing.assert_array_equal(down[:, :, 1:], x[:, :, :-1])
    np.testing.assert_array_equal(down[:, :, 0], np.broadcast_to(low[:, :, 0], down[:, :, 0].shape))
    left = shift(x, 0, -2)
    np.testing.assert_array_equal(left[..., :-2], x[..., 2:])
    assert np.all(left[..., -2:] == low)
    np.testing.assert_array_equal(shift(x, 0, 0), x)
    np.testing.assert_array_equal(flip(x), x[..., ::-1])


def test_the_views_are_every_outcome_of_the_random_augmentation():
    x = np.random.default_rng(1).standard_normal((1, 1, 6, 6)).astype(np.float32)
    views = shift_flip_views(1)
    outputs = [view(x) for view in views]
    assert len(views) == 18
    np.testing.assert_array_equal(outputs[0], x)                        # the identity first
    assert len({o.tobytes() for o in outputs}) == 18                    # all different
    augment = compose(random_shift(1), random_flip())
    draws = {augment(x, key(i)).tobytes() for i in range(300)}
    assert draws == {o.tobytes() for o in outputs}
    with pytest.raises(ConfigError, match="max_shift"):
        shift_flip_views(-1)
