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
from ..layers import Conv2D, Conv2DTranspose, Dense, Flatten, Reshape, serial
from ..random import key
from ..train import fit, predict

CHANNELS = (32, 64)


def encoder(latent=28):
    """(1, 28, 28) images -> (latent,) codes."""
    c1, c2 = CHANNELS
    return serial(Conv2D(c1, 3, stride=2, padding="same", activation="relu", w_init="he_normal"),
                  Conv2D(c2, 3, stride=2, padding="same", activation="relu", w_init="he_normal"),
                  Flatten(), Dense(latent), name="encoder")


def decoder(latent=28):
    """(latent,) codes -> (1, 28, 28) images in [0, 1]."""
    c1, c2 = CHANNELS
    return serial(Dense(c2 * 7 * 7, "relu", w_init="he_normal"), Reshape((c2, 7, 7)),
                  Conv2DTranspose(c1, 3, stride=2, padding="same", activation="relu",
                                  w_init="he_normal"),
                  Conv2DTranspose(1, 3, stride=2, padding="same", activation="sigmoid"),
                  name="decoder")


def autoencoder(latent=28):
    return serial(encoder(latent), decoder(latent))


def encode(model, params, images, state=None, batch_size=1024):
    """Latent codes (N, latent) of images (N, 1, 28, 28) by the model's encoder."""
    enc = model.children[0]
    state = {} if state is None else state
    return predict(enc, params[enc.name], images, state.get(enc.name, {}), batch_size)


def reconstruction_mse(model, params, images, state=None, batch_size=1024):
    """Mean squared error per pixel of the reconstructions of ``images``."""
    out = predict(model, params, images, {} if state is None else state, batch_size)
    return float(np.mean((out - images) ** 2))


def linear_probe(train_codes, train_labels, test_codes, test_labels, epochs=30, seed=0,
                 validation=None, progress=False):
    """Softmax regression on standardised frozen codes; returns ``(test accuracy, history)``."""
    mean, std = train_codes.mean(axis=0), train_codes.std(axis=0) + 1e-6
    scale = lambda codes: ((codes - mean) / std).astype(np.float32)
    probe = serial(Dense(10))
    _, params, state = probe.init(key(seed), (train_codes.shape[1],))
    val = None if validation is None else (scale(validation[0]), validation[1])
    result = fit(probe, params, "softmax_cross_entropy", optim.adam(1e-2), scale(train_codes),
                 train_labels, epochs=epochs, batch_size=256, seed=seed, validation_data=val,
                 metrics=["accuracy"] if val is not None else (), progress=progress)
    pred = predict(probe, result.params, scale(test_codes)).argmax(axis=1)
    return float((pred == test_labels).mean()), result.history


def pca_2d(codes):
    """The codes projected on their two principal axes: (N, 2)."""
    centred = codes - codes.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def embed_2d(codes, seed=0):
    """``(points (N, 2), method)``: t-SNE when scikit-learn is installed, else PCA."""
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        return pca_2d(codes), "PCA"
    tsne = TSNE(n_components=2, init="pca", random_state=seed, perplexity=30)
    return tsne.fit_transform(codes), "t-SNE"
