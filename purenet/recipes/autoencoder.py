"""The book's chapter 7: a convolutional autoencoder on Fashion-MNIST (or MNIST).

Images are scaled to [0, 1] and nothing more (the decoder ends in a sigmoid);
the loss is the mean squared error per pixel, the optimizer Adam 1e-3. 5,000
training images are held out for validation; the test set is scored once, at
the end:

    encoder  (1, 28, 28) -conv 3x3/2-> (32, 14, 14) -conv 3x3/2-> (64, 7, 7) -> latent
    decoder  latent -> (64, 7, 7) -transposed conv 3x3/2-> (32, 14, 14) -> (1, 28, 28)

What the latent codes learned is read two ways: a linear probe (softmax
regression trained on the frozen codes of the training images, validated on the
held-out images' codes, scored on the test images' codes) and a 2-D map of the
codes of 3,000 test images (PCA; t-SNE when scikit-learn is installed).
"""
import importlib.util
import os
import time
from typing import NamedTuple

import numpy as np

from .. import optim
from ..data import FASHION_MNIST_CLASSES, image_scale, load_idx_dataset, validation_split
from ..data.idx import FASHION_MNIST_DIR
from ..errors import ConfigError, DataError
from ..files import write_json
from ..io import save_model
from ..random import generator, key
from ..train import fit, predict
from .autoencoder_model import autoencoder, embed_2d, encode, linear_probe, pca, \
    reconstruction_mse
from .common import (COMPLETE, DIVERGED, INTERRUPTED, check_paths, run_options, writes,
                     describe_time, destination, draw, end_run, has_diverged, non_negative_int,
                     on_cores, out_path, plural, positive_int, run_header, short_reason,
                     verbosity, was_interrupted)
from .fashion_mnist import read_image

SHORT_HELP = ("the book's chapter-7 convolutional autoencoder on MNIST-format images "
              "(about 3-4 min on 2 cores)")

VALIDATION_SIZE = 5000
EPOCHS, BATCH_SIZE, LATENT, LEARNING_RATE = 10, 128, 28, 1e-3
PROBE_EPOCHS = 30
MAP_POINTS = 3000                   # test images drawn in latent.png
SHOWN = 10                          # test images drawn in reconstructions.png
IMAGE_SIZE = (28, 28)
# seconds on a 2-core CPU: one training image in one epoch; loading, the probe and the
# plots; t-SNE of the map's points
SECONDS_PER_IMAGE, AFTER_TRAINING_SECONDS, TSNE_SECONDS = 3.8e-4, 12.0, 15.0

OUTPUTS = ("autoencoder.npz", "metrics.json", "learning_curves.png", "reconstructions.png",
           "latent.png")


def add_arguments(parser):
    parser.add_argument("--latent", type=positive_int, default=LATENT, metavar="N",
                        help=f"size of the latent code (default: {LATENT})")
    parser.add_argument("--epochs", type=positive_int, default=EPOCHS, metavar="N",
                        help=f"passes over the training images (default: {EPOCHS})")
    parser.add_argument("--batch-size", type=positive_int, default=BATCH_SIZE, metavar="N",
                        help=f"images per step (default: {BATCH_SIZE})")
    parser.add_argument("--seed", type=non_negative_int, default=0, metavar="N",
                        help="init and shuffling seed, 0 or more (default: 0)")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="a directory of the four MNIST-format IDX files, e.g. MNIST's "
                             f"(default: Fashion-MNIST in {FASHION_MNIST_DIR}); classes are "
                             "named 0-9 for any directory but that one")


# --- data ---------------------------------------------------------------------

def data_dir(args):
    return args.data_dir or FASHION_MNIST_DIR


def class_names(args, count=10):
    """Fashion-MNIST's names for its own directory; the label numbers for any other."""
    fashion = args.data_dir is None or _same_directory(args.data_dir, FASHION_MNIST_DIR)
    if fashion and count == len(FASHION_MNIST_CLASSES):
        return list(FASHION_MNIST_CLASSES)
    return [str(i) for i in range(count)]


def _same_directory(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def load_data(directory):
    """Train (minus validation), validation and test sets: float32 images (N, 1, 28, 28) in
    [0, 1] and their labels."""
    (x_tr, y_tr), (x_te, y_te) = load_idx_dataset(directory)
    if x_tr.shape[1:] != IMAGE_SIZE or x_te.shape[1:] != IMAGE_SIZE:
        raise DataError(f"{directory}: the autoencoder takes 28x28 images; the training "
                        f"images are {x_tr.shape[1]}x{x_tr.shape[2]}, the test images "
                        f"{x_te.shape[1]}x{x_te.shape[2]}")
    x_tr, x_te = image_scale(x_tr)[:, None], image_scale(x_te)[:, None]
    n_val = min(VALIDATION_SIZE, len(x_tr) // 10)
    if n_val < 1:
        raise DataError(f"{directory}: {len(x_tr)} training images are too few to hold some "
                        "out for validation (10 or more needed)")
    train, val = validation_split(x_tr, y_tr, n_val / len(x_tr), seed=0)
    return train, val, (x_te, y_te)


# --- the run ------------------------------------------------------------------

def run(args):
    directory = data_dir(args)
    found = check_paths(args, OUTPUTS)
    train, val, test = load_data(directory)
    names = class_names(args, int(max(train[1].max(), val[1].max(), test[1].max())) + 1)
    model = autoencoder(args.latent)
    _, params, state = model.init(key(args.seed), train[0].shape[1:])
    estimate = SECONDS_PER_IMAGE * len(train[0]) * args.epochs + AFTER_TRAINING_SECONDS \
        + (TSNE_SECONDS if importlib.util.find_spec("sklearn") else 0.0)
    print(f"autoencoder, latent {args.latent}: {plural(args.epochs, 'epoch')} of "
          f"{len(train[0]):,} images, batch {args.batch_size}; about {describe_time(estimate)} "
          f"{on_cores(args)} (Ctrl-C stops and keeps the last completed epoch)")
    start = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):   # a diverging loss is reported
        result = fit(model, params, "mse", optim.adam(LEARNING_RATE), train[0], train[0],
                     state=state, epochs=args.epochs, batch_size=args.batch_size,
                     seed=args.seed, validation_data=(val[0], val[0]), verbose=verbosity(args),
                     **run_options(args, "", found))
    train_seconds = time.perf_counter() - start
    if not writes(args):                # on more than one process, the first one reports
        return None
    history = result.history
    status = INTERRUPTED if was_interrupted(history) else \
        DIVERGED if has_diverged(history) else COMPLETE
    scores = None
    if status == COMPLETE:              # the test set is scored only when training completed
        try:
            scores = score(model, result.params, result.state, train, val, test, names,
                           args.seed)
        except KeyboardInterrupt:       # Ctrl-C while scoring: keep the trained model
            status = INTERRUPTED
    out = destination(args, status)
    if len(history):                    # never save a model that trained no epoch
        extra = {"recipe": "autoencoder", "latent": args.latent, "classes": names,
                 "pixels": "scaled to [0, 1]"}
        save_model(out_path(out, "autoencoder.npz"), model, result.params, result.state,
                   in_shape=train[0].shape[1:], extra=extra)
    report = {**run_header(args, time.perf_counter() - start, status), "latent": args.latent,
              "classes": names, "epochs": len(history), "epochs_requested": args.epochs,
              "batch_size": args.batch_size, "learning_rate": LEARNING_RATE,
              "stop_reason": history.stop_reason, "test_reconstruction_mse": None,
              "linear_probe_test_accuracy": None, "linear_probe": None, "latent_2d": None,
              "train_minutes": round(train_seconds / 60, 2),
              "seconds_per_epoch": history.history.get("seconds", []),
              "history": history.to_dict(), **(scores.report if scores else {})}
    write_json(out_path(out, "metrics.json"), report)
    _plot_curves(out, history)
    if status == COMPLETE:
        _plot_test(out, scores, test, names)
        print(f"test reconstruction MSE {report['test_reconstruction_mse']:.5f} per pixel, "
              f"linear probe test accuracy {report['linear_probe_test_accuracy']:.4f}, after "
              f"{plural(len(history), 'epoch')} ({describe_time(train_seconds)}); wrote {out}")
        return report
    if status == DIVERGED:
        what = short_reason(history.stop_reason)
    elif len(history) < args.epochs:
        what = f"{len(history)} of {args.epochs} epochs run"
    else:
        what = f"all {plural(args.epochs, 'epoch')} run, stopped while scoring the test set"
    raise end_run(args, status, out, what)


class Scores(NamedTuple):
    """A trained autoencoder's scores: ``report`` holds the metrics; the rest is drawn."""
    report: dict
    shown: np.ndarray               # indices of the test images in reconstructions.png
    reconstructed: np.ndarray       # their reconstructions
    mapped: np.ndarray              # (n, 2) points of latent.png
    map_labels: np.ndarray          # their classes
    axis_labels: tuple


def score(model, params, state, train, val, test, names, seed=0):
    """Test reconstruction error, the linear probe and the 2-D map of test codes."""
    test_mse = reconstruction_mse(model, params, test[0], state)
    codes = {name: encode(model, params, x, state)
             for name, (x, _) in (("train", train), ("val", val), ("test", test))}
    print(f"linear probe: softmax regression on the {len(train[0]):,} training codes, "
          f"{PROBE_EPOCHS} epochs")
    accuracy, probe_history = linear_probe(codes["train"], train[1], codes["test"], test[1],
                                           epochs=PROBE_EPOCHS, seed=seed,
                                           validation=(codes["val"], val[1]),
                                           classes=len(names))
    rng = generator(key(seed))
    chosen = np.sort(rng.permutation(len(test[0]))[:MAP_POINTS])
    points, method = embed_2d(codes["test"][chosen], seed=seed)
    if method == "PCA":
        explained = pca(codes["test"][chosen])[1]
        axis_labels = tuple(f"principal axis {i + 1} ({100 * e:.0f}% of the variance)"
                            for i, e in enumerate(explained))
    else:
        axis_labels = ("t-SNE 1", "t-SNE 2")
    shown = first_of_each_class(test[1], len(names))[:SHOWN]
    reconstructed = predict(model, params, test[0][shown], state)
    val_accuracy = probe_history.history.get("val_accuracy") or [None]
    report = {"test_reconstruction_mse": test_mse, "linear_probe_test_accuracy": accuracy,
              "linear_probe": {"model": "softmax regression on standardised codes, Adam 0.01, "
                                        "batch 256",
                               "epochs": len(probe_history), "val_accuracy": val_accuracy[-1],
                               "history": probe_history.to_dict()},
              "latent_2d": {"method": method, "points": len(chosen)}}
    return Scores(report, shown, reconstructed, points, test[1][chosen], axis_labels)


def first_of_each_class(labels, classes):
    """The index of each class's first example, in class order (classes with none are
    skipped), then the next examples in order if there are fewer classes than ``SHOWN``."""
    firsts = [int(np.flatnonzero(labels == c)[0]) for c in range(classes) if (labels == c).any()]
    taken = set(firsts)
    rest = [i for i in range(min(len(labels), 2 * SHOWN)) if i not in taken]
    return np.array(firsts + rest[:max(0, SHOWN - len(firsts))], dtype=np.int64)


def _plot_curves(out, history):
    from ..plots import plot_curves
    if len(history):
        draw(lambda path: plot_curves({"": history.history}, path, keys=("loss", "val_loss"),
                                      ylabel="MSE per pixel",
                                      title="autoencoder: learning curves"),
             out_path(out, "learning_curves.png"))


def _plot_test(out, scores, test, names):
    from ..plots import plot_embedding, plot_reconstructions
    shown = scores.shown
    draw(lambda path: plot_reconstructions(
        test[0][shown], scores.reconstructed, path, titles=[names[c] for c in test[1][shown]],
        title="test images (top) and their reconstructions (bottom)"),
        out_path(out, "reconstructions.png"))
    method = scores.report["latent_2d"]["method"]
    draw(lambda path: plot_embedding(
        scores.mapped, scores.map_labels, names, path, axis_labels=scores.axis_labels,
        title=f"latent codes of {len(scores.mapped):,} test images, {method}"),
        out_path(out, "latent.png"))


# --- a saved model in a new process ------------------------------------------

def check_autoencoder(meta, path, command="encode"):
    """An error unless the saved model came from this recipe."""
    extra = meta.get("extra") or {}
    if extra.get("recipe") != "autoencoder":
        origin = f"'purenet train {extra['recipe']}'" if extra.get("recipe") else "elsewhere"
        raise ConfigError(f"{path}: '{command}' needs an autoencoder from 'purenet train "
                          f"autoencoder'; this model is from {origin}")


def encode_files(model, params, state, meta, model_path, paths, decimals=4):
    """The latent code of each image in each file, one line per image."""
    check_autoencoder(meta, model_path)
    size = tuple(meta["in_shape"][-2:])
    lines = []
    for path in paths:
        codes = encode(model, params, image_scale(read_image(path, size))[:, None], state)
        for i, code in enumerate(codes):
            where = f"{path}[{i}]" if len(codes) > 1 else str(path)
            lines.append(f"{where}: " + " ".join(f"{c:.{decimals}f}" for c in code))
    return "\n".join(lines)
