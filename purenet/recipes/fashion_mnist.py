"""Fashion-MNIST or MNIST (IDX files): an MLP, a CNN and the book's chapter-5 net.

Images are scaled to [0, 1] and standardised with the training set's mean and
std (saved with the model, so ``evaluate`` and ``predict`` preprocess alike);
5,000 training images are held out for validation; the test set is scored
once, at the end. The cnn recipe scores validation and test images on the mean
softmax over their 18 shifted and flipped versions, the outcomes of its training
augmentation (--average-views).
"""
import argparse
import time
from typing import Callable, NamedTuple

import numpy as np

from .. import optim
from ..data import (FASHION_MNIST_CLASSES, fit_image_normalizer, image_scale, load_idx_dataset,
                    normalize_images, validation_split)
from ..data.augment import compose, random_flip, random_shift, shift_flip_views
from ..data.idx import FASHION_MNIST_DIR
from ..errors import ConfigError, DataError
from ..files import write_json
from ..io import save_model
from ..losses import softmax_cross_entropy
from ..layers import Activation, BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D, serial
from ..metrics import confusion_matrix
from ..ops import softmax
from ..random import key
from ..train import fit, predict, predict_averaged
from .common import (COMPLETE, DIVERGED, INTERRUPTED, check_paths, run_options, writes,
                     describe_time, destination, draw, end_run, has_diverged, non_negative_int,
                     on_cores, out_path, plural, positive_int, run_header, short_reason,
                     verbosity, was_interrupted)

SHORT_HELP = ("an MLP, a CNN or the book's net on MNIST-format images (default cnn: about "
              "11-14 min on 2 cores)")

VALIDATION_SIZE = 5000


def mlp():
    """784-512-256-10 ReLU with dropout."""
    return serial(Flatten(), Dense(512, "relu", w_init="he_normal"), Dropout(0.3),
                  Dense(256, "relu", w_init="he_normal"), Dropout(0.3), Dense(10))


CNN_FILTERS = (32, 64, 128)
CNN_KERNELS = (5, 3, 3)         # the recipe's kernel sizes, one per conv block
CNN_POOL_FIRST = True           # max pooling before the batch norm (chosen on validation)


def cnn(kernel_sizes=CNN_KERNELS, pool_first=CNN_POOL_FIRST):
    """Three conv blocks (``CNN_FILTERS`` filters of ``kernel_sizes``, no bias), each with
    2x2 max pooling, batch norm and ReLU, then dense 128 with dropout: 28x28 -> 14 -> 7
    -> 3 pixels. With ``pool_first`` the batch norm follows the pooling and normalises a
    quarter of the pixels (the recipe); else it comes before the pooling."""
    def block(filters, size):
        # no bias: the batch norm after it would subtract it again (its gradient is 0);
        # the ReLU comes last, after the pooling, and so sees a quarter of the pixels
        conv = Conv2D(filters, size, padding="same", w_init="he_normal", use_bias=False)
        if pool_first:
            return [conv, MaxPool2D(2), BatchNorm(), Activation("relu")]
        return [conv, BatchNorm(), MaxPool2D(2), Activation("relu")]
    blocks = [layer for filters, size in zip(CNN_FILTERS, kernel_sizes)
              for layer in block(filters, size)]
    return serial(*blocks, Flatten(), Dense(128, "relu", w_init="he_normal"), Dropout(0.4),
                  Dense(10))


def book():
    """The book's chapter-5 net: conv 16 5x5 tanh, flatten, dropout (keep 0.8), dense 10."""
    return serial(Conv2D(16, 5, padding="same", activation="tanh", w_init="glorot_normal"),
                  Flatten(), Dropout(0.2), Dense(10, w_init="glorot_normal"))


def shift_and_flip(max_shift=1):
    """Training augmentation: random shifts of up to ``max_shift`` pixels and left-right flips."""
    return compose(random_shift(max_shift), random_flip())


class Recipe(NamedTuple):
    build: Callable                 # () -> model
    optimizer: Callable             # (steps_per_epoch, epochs) -> optimizer
    epochs: int
    batch_size: int
    label_smoothing: float = 0.0
    augment: bool = False           # random shifts and flips while training
    average_views: bool = False     # score on the mean over the 18 shifted/flipped views
    seconds_per_image: float = 0.0  # one training image, one epoch, on a 2-core CPU
    duration: str = ""              # the whole default run on a 2-core CPU, for --help


def _adam_cosine(peak):
    return lambda spe, ep: optim.adam(optim.schedules.cosine_decay(peak, spe * ep, peak / 200))


MODELS = {
    "mlp": Recipe(mlp, _adam_cosine(1e-3), 30, 128, seconds_per_image=5e-5,
                  duration="about 1-2 min"),
    "cnn": Recipe(cnn, _adam_cosine(2e-3), 20, 128, label_smoothing=0.1, augment=True,
                  average_views=True, seconds_per_image=0.65e-3, duration="about 11-14 min"),
    "book": Recipe(book, lambda spe, ep: optim.sgd(0.1, momentum=0.9), 1, 60,
                   seconds_per_image=2.2e-4, duration="about 15 s"),
}


def data_dir(args):
    """The IDX directory: ``--data-dir``, else Fashion-MNIST's install location."""
    if args.data_dir is None and args.recipe == "mnist":
        raise ConfigError("mnist needs --data-dir: a directory holding the four MNIST IDX files")
    return args.data_dir or FASHION_MNIST_DIR


def class_names(args):
    return list(FASHION_MNIST_CLASSES) if args.recipe == "fashion-mnist" else [str(i) for i in range(10)]


def preprocess(images, stats):
    """uint8 images (N, H, W) -> float32 (N, 1, H, W), scaled and standardised."""
    return normalize_images(image_scale(images)[:, None], stats)


def load_data(directory):
    """Train (minus validation), validation and test sets as float32 (N, 1, 28, 28)."""
    (x_tr, y_tr), (x_te, y_te) = load_idx_dataset(directory)
    stats = fit_image_normalizer(image_scale(x_tr))
    x_tr, x_te = preprocess(x_tr, stats), preprocess(x_te, stats)
    n_val = min(VALIDATION_SIZE, len(x_tr) // 10)
    (x_tr, y_tr), (x_val, y_val) = validation_split(x_tr, y_tr, n_val / len(x_tr), seed=0)
    return (x_tr, y_tr), (x_val, y_val), (x_te, y_te), stats


def add_arguments(parser):
    models = "; ".join(f"{name}: {plural(r.epochs, 'epoch')}, {r.duration}"
                       for name, r in MODELS.items())
    parser.add_argument("--model", choices=sorted(MODELS), default="cnn",
                        help=f"which network ({models}, on 2 cores; default: cnn)")
    epochs = ", ".join(f"{name} {r.epochs}" for name, r in MODELS.items())
    sizes = ", ".join(f"{name} {r.batch_size}" for name, r in MODELS.items())
    parser.add_argument("--epochs", type=positive_int, default=None, metavar="N",
                        help=f"passes over the training images (default: the model's, {epochs})")
    parser.add_argument("--batch-size", type=positive_int, default=None, metavar="N",
                        help=f"images per step (default: the model's, {sizes})")
    parser.add_argument("--seed", type=non_negative_int, default=0, metavar="N",
                        help="init, shuffling and dropout seed, 0 or more (default: 0)")
    on = ", ".join(name for name, r in MODELS.items() if r.augment) or "none"
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                        help="train on random shifts (up to 1 pixel) and left-right flips "
                             f"(default: the model's; on for: {on})")
    views = ", ".join(name for name, r in MODELS.items() if r.average_views) or "none"
    parser.add_argument("--average-views", action=argparse.BooleanOptionalAction, default=None,
                        help="score validation and test images on the mean prediction over "
                             "their 18 shifted (up to 1 pixel) and flipped versions, the "
                             f"augmentation's (default: the model's; on for: {views})")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="a directory of the four MNIST-format IDX files (default: "
                             f"{FASHION_MNIST_DIR} for fashion-mnist; mnist requires it)")


def _augments(args, recipe):
    """``--augment`` / ``--no-augment`` when given, else the recipe's choice."""
    return recipe.augment if args.augment is None else args.augment


VIEW_SHIFT = 1      # test-time views: every shift of up to 1 pixel, unflipped and flipped


def _views(args, recipe):
    """The test-time views (``--average-views`` or the recipe's choice), or None."""
    on = recipe.average_views if args.average_views is None else args.average_views
    return shift_flip_views(VIEW_SHIFT) if on else None


def class_scores(model, params, x, state, views=None):
    """Per-class scores of images ``x``: the mean softmax over ``views`` when given,
    else the logits (the same argmax as the softmax)."""
    if views:
        return predict_averaged(model, params, x, views, state=state)
    return predict(model, params, x, state=state)


def _saved_views(meta):
    """The test-time views a saved model was scored with, or None."""
    shift = (meta.get("extra") or {}).get("average_views_shift")
    return None if shift is None else shift_flip_views(shift)


def _outputs(args):
    return [f"{args.model}.npz", "metrics.json", "learning_curves.png", "confusion_matrix.png",
            "predictions.png"]


def run(args):
    recipe = MODELS[args.model]
    epochs, batch_size = args.epochs or recipe.epochs, args.batch_size or recipe.batch_size
    directory = data_dir(args)
    found = check_paths(args, _outputs(args))
    train, val, test, stats = load_data(directory)
    model = recipe.build()
    _, params, state = model.init(key(args.seed), train[0].shape[1:])
    steps_per_epoch = -(-len(train[0]) // batch_size)
    augment = shift_and_flip() if _augments(args, recipe) else None
    loss = softmax_cross_entropy.bind(label_smoothing=recipe.label_smoothing)
    estimate = recipe.seconds_per_image * len(train[0]) * epochs
    print(f"{args.model}: {plural(epochs, 'epoch')} of {len(train[0]):,} images, batch "
          f"{batch_size}; about {describe_time(estimate)} {on_cores(args)} (Ctrl-C stops and keeps "
          "the last completed epoch)")
    start = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):   # a diverging loss is reported
        result = fit(model, params, loss, recipe.optimizer(steps_per_epoch, epochs),
                     *train, state=state, epochs=epochs, batch_size=batch_size, seed=args.seed,
                     validation_data=val, metrics=["accuracy"], augment=augment,
                     verbose=verbosity(args), **run_options(args, "", found))
    train_seconds = time.perf_counter() - start
    if not writes(args):                # on more than one process, the first one reports
        return None
    history = result.history
    status = INTERRUPTED if was_interrupted(history) else \
        DIVERGED if has_diverged(history) else COMPLETE
    out = destination(args, status)
    views = _views(args, recipe)
    extra = {"recipe": "fashion-mnist", "model": args.model, "classes": class_names(args),
             "preprocess": {"mean": stats["mean"], "std": stats["std"]}}
    if views:
        extra["average_views_shift"] = VIEW_SHIFT
    if len(history):                    # never save a model that trained no epoch
        save_model(out_path(out, f"{args.model}.npz"), model, result.params, result.state,
                   in_shape=train[0].shape[1:], extra=extra)
    fields = {"augment": "shift 1 + flip" if augment else None,
              "average_views": len(views) if views else None}

    def report_with(logits, val_accuracy):
        return {**_report(args, result, logits, test[1], train_seconds, status, epochs,
                          batch_size), **fields, "val_accuracy_averaged": val_accuracy}
    report, logits = report_with(None, None), None
    write_json(out_path(out, "metrics.json"), report)   # the training's, before the scoring
    if status == COMPLETE:              # the test set is scored only when training completed
        logits, val_accuracy = _score(model, result, val, test, views)
        report = report_with(logits, val_accuracy)
        write_json(out_path(out, "metrics.json"), report)
    _plots(args, out, history, report, test, logits)
    if status == COMPLETE:
        scored = f" (mean over {len(views)} views)" if views else ""
        print(f"test accuracy {report['test_accuracy']:.4f}{scored} after "
              f"{plural(len(history), 'epoch')} ({describe_time(train_seconds)}); wrote {out}")
        return report
    what = f"{len(history)} of {epochs} epochs run" if status == INTERRUPTED else \
        short_reason(history.stop_reason)
    raise end_run(args, status, out, what)


def _score(model, result, val, test, views):
    """``(test scores, validation accuracy on the views or None)``."""
    if not views:
        return class_scores(model, result.params, test[0], result.state), None
    print(f"scoring validation and test images on the mean over {len(views)} views (the "
          "model is saved)")
    val_scores = class_scores(model, result.params, val[0], result.state, views)
    test_scores = class_scores(model, result.params, test[0], result.state, views)
    return test_scores, float((val_scores.argmax(1) == val[1]).mean())


def _report(args, result, logits, labels, seconds, status, epochs, batch_size):
    history = result.history
    report = {**run_header(args, seconds, status), "model": args.model,
              "epochs": len(history), "epochs_requested": epochs, "batch_size": batch_size,
              "stop_reason": history.stop_reason, "test_accuracy": None,
              "train_minutes": round(seconds / 60, 2),
              "seconds_per_epoch": history.history.get("seconds", []),
              "history": history.to_dict()}
    if logits is None:
        return report
    pred = logits.argmax(axis=1)
    matrix = confusion_matrix(pred, labels, 10)
    per_class = (np.diag(matrix) / np.maximum(matrix.sum(axis=1), 1)).tolist()
    return {**report, "test_accuracy": float((pred == labels).mean()),
            "per_class_accuracy": dict(zip(class_names(args), per_class)),
            "confusion_matrix": matrix.tolist()}


def _plots(args, out, history, report, test, logits):
    from ..plots import plot_confusion_matrix, plot_curves, plot_image_grid
    if len(history):
        draw(lambda path: plot_curves({"": history.history}, path,
                                      keys=[(("loss", "val_loss"), "loss"),
                                            (("val_accuracy",), "accuracy")],
                                      title=f"{args.model}: learning curves"),
             out_path(out, "learning_curves.png"))
    if logits is None:
        return
    names = class_names(args)
    draw(lambda path: plot_confusion_matrix(report["confusion_matrix"], names, path),
         out_path(out, "confusion_matrix.png"))
    pred = logits.argmax(axis=1)
    shown = np.concatenate([np.flatnonzero(pred != test[1])[:16],
                            np.arange(min(16, len(pred)))])
    draw(lambda path: plot_image_grid(test[0][shown], test[1][shown], pred[shown], names, path),
         out_path(out, "predictions.png"))


# --- a saved model in a new process ------------------------------------------

def check_image_model(meta, path, command):
    """An error unless the saved model came from this recipe."""
    extra = meta.get("extra") or {}
    if extra.get("recipe") != "fashion-mnist" or "preprocess" not in extra:
        origin = f"'purenet train {extra['recipe']}'" if extra.get("recipe") else "elsewhere"
        raise ConfigError(f"{path}: '{command}' needs an image model from 'purenet train "
                          f"fashion-mnist' or 'mnist'; this one is from {origin}")


def evaluate_saved(model, params, state, meta, args):
    """Test accuracy (and per class) of a saved image model on an IDX test set."""
    check_image_model(meta, args.model, f"evaluate --data {args.data}")
    _, (x_te, y_te) = load_idx_dataset(data_dir(args))
    if tuple(meta["in_shape"]) != (1, *x_te.shape[1:]):
        raise DataError(f"{args.model}: the model takes images of shape "
                        f"{tuple(meta['in_shape'])}, the test images in {data_dir(args)} are "
                        f"{x_te.shape[1:]}")
    views = _saved_views(meta)
    scores = class_scores(model, params, preprocess(x_te, meta["extra"]["preprocess"]), state,
                          views)
    pred = scores.argmax(axis=1)
    names = meta["extra"].get("classes") or [str(i) for i in range(scores.shape[1])]
    matrix = confusion_matrix(pred, y_te, len(names))
    scored = f" (mean over {len(views)} views, as trained)" if views else ""
    lines = [f"test accuracy {np.mean(pred == y_te):.4f} on {len(y_te)} images{scored}"]
    lines += [f"  {name:<12} {matrix[i, i] / max(matrix[i].sum(), 1):.3f}" for i, name in enumerate(names)]
    return "\n".join(lines)


def _read_npy(path):
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path}: cannot read as a .npy array of images: {err}") from None
    if not isinstance(arr, np.ndarray) or arr.size == 0 or arr.dtype.kind not in "uif":
        raise DataError(f"{path}: expected a non-empty numeric array of images")
    if arr.dtype != np.uint8:
        if not np.all(np.isfinite(arr)):
            raise DataError(f"{path}: the array holds NaN or inf values")
        arr = np.clip(np.rint(arr * 255 if arr.max() <= 1.0 else arr), 0, 255).astype(np.uint8)
    return arr


def read_image(path, size):
    """A greyscale image file (PNG/JPEG via Pillow) or ``.npy`` array -> uint8 (N, H, W)."""
    path = str(path)
    if path.endswith(".npy"):
        arr = _read_npy(path)
    else:
        try:
            from PIL import Image
        except ImportError:
            raise ConfigError("reading image files needs Pillow: pip install 'purenet[cli]'") from None
        try:
            arr = np.asarray(Image.open(path).convert("L").resize(size[::-1]))
        except OSError as err:
            raise DataError(f"{path}: cannot read image: {err}") from None
    arr = arr[None] if arr.ndim == 2 else arr
    if arr.ndim != 3 or arr.shape[1:] != tuple(size):
        raise DataError(f"{path}: expected an image of {size[0]}x{size[1]} pixels, got shape {arr.shape}")
    return arr


def predict_files(model, params, state, meta, paths):
    """The top-3 classes for each image file."""
    names = meta["extra"].get("classes")
    size = tuple(meta["in_shape"][-2:])
    views = _saved_views(meta)
    lines = []
    for path in paths:
        images = preprocess(read_image(path, size), meta["extra"]["preprocess"])
        scores = class_scores(model, params, images, state, views)
        probs = scores if views else softmax(scores)
        for i, p in enumerate(probs):
            top = np.argsort(p)[::-1][:3]
            guesses = ", ".join(f"{names[c] if names else c} {p[c]:.2f}" for c in top)
            lines.append(f"{path}{f'[{i}]' if len(probs) > 1 else ''}: {guesses}")
    return "\n".join(lines)
