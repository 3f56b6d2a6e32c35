"""The book's chapter 7: a convolutional autoencoder, its latent codes, and a linear probe.

The encoder halves the image twice with strided convolutions and maps it to a
``latent``-dimensional code; the decoder runs the same path backwards with
transposed convolutions, ending in a sigmoid, since images are scaled to [0, 1]:

    encoder  (1, 28, 28) -conv 3x3/2-> (32, 14, 14) -conv 3x3/2-> (64, 7, 7) -> latent
    decoder  latent -> (64, 7, 7) -transposed conv 3x3/2-> (32, 14, 14) -> (1, 28, 28)

The model is ``serial(encoder, decoder)`` with params ``{"encoder": ..., "decoder": ...}``,
so ``encode`` is the first half alone. What the codes learned is read two ways: a
softmax regression trained on the frozen codes of the training images (a linear probe:
its test accuracy says how linearly the classes separate in code space), and a 2-D
projection of the test codes (PCA; t-SNE when scikit-learn is installed).
"""
import numpy as np

from .. import optim
from ..errors import ConfigError
from ..layers import Conv2D, Conv2DTranspose, Dense, Flatten, Reshape, serial
from ..random import key
from ..train import fit, predict
from ..train.evaluate import DEFAULT_BATCH_SIZE

CHANNELS = (32, 64)
# PyTorch's default initialisation, U(±1/sqrt(fan_in)) for weights and biases, and its
# padding (1 on every side; output_padding 1 on the way back): the same network as the
# PyTorch one in bench/bench_autoencoder.py, draw for draw of the same distributions
INIT = dict(w_init="torch", b_init="torch")


def encoder(latent=28):
    """(1, 28, 28) images -> (latent,) codes."""
    c1, c2 = CHANNELS
    return serial(Conv2D(c1, 3, stride=2, padding=1, activation="relu", **INIT),
                  Conv2D(c2, 3, stride=2, padding=1, activation="relu", **INIT),
                  Flatten(), Dense(latent, **INIT), name="encoder")


def decoder(latent=28):
    """(latent,) codes -> (1, 28, 28) images in [0, 1]."""
    c1, c2 = CHANNELS
    up = dict(stride=2, padding=1, output_padding=1, **INIT)
    return serial(Dense(c2 * 7 * 7, "relu", **INIT), Reshape((c2, 7, 7)),
                  Conv2DTranspose(c1, 3, activation="relu", **up),
                  Conv2DTranspose(1, 3, activation="sigmoid", **up),
                  name="decoder")


def autoencoder(latent=28):
    return serial(encoder(latent), decoder(latent))


def encode(model, params, images, state=None, batch_size=DEFAULT_BATCH_SIZE):
    """Latent codes (N, latent) of images (N, 1, 28, 28) by the model's encoder."""
    enc = next((child for child in model.children if child.name == "encoder"), None)
    if enc is None:
        raise ConfigError("this model has no part named 'encoder': it is not an autoencoder "
                          "built by purenet.recipes.autoencoder_model")
    state = {} if state is None else state
    return predict(enc, params[enc.name], images, state.get(enc.name, {}), batch_size)


def reconstruction_mse(model, params, images, state=None, batch_size=DEFAULT_BATCH_SIZE):
    """Mean squared error per pixel of the reconstructions of ``images``."""
    out = predict(model, params, images, {} if state is None else state, batch_size)
    return float(np.mean((out - images) ** 2))


def linear_probe(train_codes, train_labels, test_codes, test_labels, epochs=30, seed=0,
                 validation=None, classes=None, verbose=0):
    """Softmax regression on standardised frozen codes (Adam 0.01, batch 256).

    ``validation`` is ``(codes, labels)`` scored after every epoch; ``classes``
    defaults to the largest label + 1. Returns ``(test accuracy, history)``.
    """
    classes = classes or int(max(train_labels.max(), test_labels.max())) + 1
    mean, std = train_codes.mean(axis=0), train_codes.std(axis=0) + 1e-6
    scale = lambda codes: ((codes - mean) / std).astype(np.float32)
    probe = serial(Dense(classes))
    _, params, state = probe.init(key(seed), (train_codes.shape[1],))
    val = None if validation is None else (scale(validation[0]), validation[1])
    result = fit(probe, params, "softmax_cross_entropy", optim.adam(1e-2), scale(train_codes),
                 train_labels, epochs=epochs, batch_size=256, seed=seed, validation_data=val,
                 metrics=["accuracy"], verbose=verbose)
    pred = predict(probe, result.params, scale(test_codes)).argmax(axis=1)
    return float((pred == test_labels).mean()), result.history


def pca(codes, components=2):
    """``(points (N, components), explained)``: the codes on their first principal axes,
    and the fraction of the variance along each. Each axis points so that its
    largest loading is positive, so the result does not depend on the SVD's signs."""
    codes = np.asarray(codes, dtype=np.float64)
    centred = codes - codes.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:components]
    axes *= np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])[:, None]
    variance = s ** 2
    explained = variance[:components] / variance.sum() if variance.sum() > 0 \
        else np.zeros(len(axes))
    return centred @ axes.T, explained


def pca_2d(codes):
    """The codes projected on their two principal axes: (N, 2)."""
    return pca(codes, 2)[0]


def embed_2d(codes, seed=0):
    """``(points (N, 2), method)``: t-SNE when scikit-learn is installed, else PCA."""
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        return pca_2d(codes), "PCA"
    perplexity = min(30.0, (len(codes) - 1) / 3)
    tsne = TSNE(n_components=2, init="pca", random_state=seed, perplexity=perplexity)
    return tsne.fit_transform(np.asarray(codes, dtype=np.float64)), "t-SNE"
