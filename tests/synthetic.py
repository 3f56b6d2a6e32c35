"""Small synthetic image data sets for the tests that run recipes end to end."""
import numpy as np

from purenet.data import write_idx


def synthetic_images(n, seed):
    """10 classes, each a bright bar at its own row band, plus noise: (n, 28, 28) uint8."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for c in range(10):
        images[labels == c, 2 + 2 * c: 4 + 2 * c, 4:24] = 250
    return images, labels.astype(np.uint8)


def write_idx_dataset(directory, n_train, n_test):
    """An MNIST-format IDX directory of synthetic images (one file plain, one gzipped)."""
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = synthetic_images(n, seed)
        write_idx(directory / f"{prefix}-images-idx3-ubyte", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return directory
