"""Fashion-MNIST or MNIST (IDX files): an MLP, a CNN and the book's chapter-5 net.

Images are scaled to [0, 1] and standardised with the training set's mean and
std (saved with the model, so ``evaluate`` and ``predict`` preprocess alike);
5,000 training images are held out for validation; the test set is scored
once, at the end.
"""
import time
from typing import Callable, NamedTuple

import numpy as np

from .. import optim
from ..data import (FASHION_MNIST_CLASSES, fit_image_normalizer, image_scale, load_idx_dataset,
                    normalize_images, validation_split)
from ..data.augment import compose, random_flip, random_shift
from ..data.idx import FASHION_MNIST_DIR
from ..errors import ConfigError, DataError
from ..io import save_model, write_json
from ..losses import softmax_cross_entropy
from ..layers import Activation, BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D, serial
from ..metrics import confusion_matrix
from ..ops import softmax
from ..random import key
from ..train import fit, predict
from .common import out_path, run_header

VALIDATION_SIZE = 5000


def mlp():
    """784-512-256-10 ReLU with dropout."""
    return serial(Flatten(), Dense(512, "relu", w_init="he_normal"), Dropout(0.3),
                  Dense(256, "relu", w_init="he_normal"), Dropout(0.3), Dense(10))


def cnn():
    """Three conv blocks (32 5x5, 64 5x5, 128 3x3 filters), each with batch norm, 2x2 max
    pooling and ReLU, then dense 128 with dropout: 28x28 -> 14 -> 7 -> 3 pixels."""
    def block(filters, size):
        # max pooling before the ReLU gives the same values (both are monotone) and
        # leaves the ReLU a quarter of the pixels
        return [Conv2D(filters, size, padding="same", w_init="he_normal"), BatchNorm(),
                MaxPool2D(2), Activation("relu")]
    return serial(*block(32, 5), *block(64, 5), *block(128, 3), Flatten(),
                  Dense(128, "relu", w_init="he_normal"), Dropout(0.4), Dense(10))


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


def _adam_cosine(peak):
    return lambda spe, ep: optim.adam(optim.schedules.cosine_decay(peak, spe * ep, peak / 200))


MODELS = {
    "mlp": Recipe(mlp, _adam_cosine(1e-3), 30, 128),
    "cnn": Recipe(cnn, _adam_cosine(2e-3), 13, 128, label_smoothing=0.1),
    "book": Recipe(book, lambda spe, ep: optim.sgd(0.1, momentum=0.9), 1, 60),
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
    parser.add_argument("--model", choices=sorted(MODELS), default="cnn")
    parser.add_argument("--epochs", type=int, default=None, help="default: the model's recipe")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--augment", action="store_true",
                        help="train on random shifts (up to 1 pixel) and left-right flips")
    parser.add_argument("--data-dir", default=None,
                        help="a directory of MNIST-format IDX files (default: Fashion-MNIST)")


def run(args):
    recipe = MODELS[args.model]
    epochs, batch_size = args.epochs or recipe.epochs, args.batch_size or recipe.batch_size
    train, val, test, stats = load_data(data_dir(args))
    model = recipe.build()
    _, params, state = model.init(key(args.seed), train[0].shape[1:])
    steps_per_epoch = -(-len(train[0]) // batch_size)
    augment = shift_and_flip() if args.augment else None
    loss = softmax_cross_entropy.bind(label_smoothing=recipe.label_smoothing)
    start = time.perf_counter()
    result = fit(model, params, loss, recipe.optimizer(steps_per_epoch, epochs),
                 *train, state=state, epochs=epochs, batch_size=batch_size, seed=args.seed,
                 validation_data=val, metrics=["accuracy"], augment=augment,
                 progress=args.progress)
    train_seconds = time.perf_counter() - start
    logits = predict(model, result.params, test[0], state=result.state)
    report = {**_report(args, result, logits, test[1], train_seconds, epochs, batch_size),
              "augment": "shift 1 + flip" if augment else None}
    extra = {"recipe": "fashion-mnist", "model": args.model, "classes": class_names(args),
             "preprocess": {"mean": stats["mean"], "std": stats["std"]}}
    save_model(out_path(args, f"{args.model}.npz"), model, result.params, result.state,
               in_shape=train[0].shape[1:], extra=extra)
    write_json(out_path(args, "metrics.json"), report)
    _plots(args, result.history, report, test, logits)
    print(f"test accuracy {report['test_accuracy']:.4f} after {epochs} epochs "
          f"({train_seconds / 60:.1f} min); wrote {args.out}")
    return report


def _report(args, result, logits, labels, seconds, epochs, batch_size):
    pred = logits.argmax(axis=1)
    matrix = confusion_matrix(pred, labels, 10)
    per_class = (np.diag(matrix) / np.maximum(matrix.sum(axis=1), 1)).tolist()
    epoch_seconds = result.history.history.get("seconds", [])
    return {**run_header(args, seconds), "model": args.model, "epochs": epochs,
            "batch_size": batch_size, "test_accuracy": float((pred == labels).mean()),
            "per_class_accuracy": dict(zip(class_names(args), per_class)),
            "confusion_matrix": matrix.tolist(), "train_minutes": round(seconds / 60, 2),
            "seconds_per_epoch": epoch_seconds, "history": result.history.to_dict()}


def _plots(args, history, report, test, logits):
    from ..plots import plot_confusion_matrix, plot_curves, plot_image_grid
    try:
        plot_curves({"": history.history}, out_path(args, "learning_curves.png"),
                    keys=[(("loss", "val_loss"), "loss"), (("val_accuracy",), "accuracy")],
                    title=f"{args.model}: learning curves")
        plot_confusion_matrix(report["confusion_matrix"], class_names(args),
                              out_path(args, "confusion_matrix.png"))
        pred = logits.argmax(axis=1)
        shown = np.concatenate([np.flatnonzero(pred != test[1])[:16], np.arange(16)])
        plot_image_grid(test[0][shown], test[1][shown], pred[shown], class_names(args),
                        out_path(args, "predictions.png"))
    except ImportError as err:
        print(f"no plots: {err}")


# --- a saved model in a new process ------------------------------------------

def evaluate_saved(model, params, state, meta, args):
    """Test accuracy (and per class) of a saved image model on an IDX test set."""
    _, (x_te, y_te) = load_idx_dataset(data_dir(args))
    logits = predict(model, params, preprocess(x_te, meta["extra"]["preprocess"]), state=state)
    pred = logits.argmax(axis=1)
    names = meta["extra"].get("classes") or [str(i) for i in range(logits.shape[1])]
    matrix = confusion_matrix(pred, y_te, len(names))
    lines = [f"test accuracy {np.mean(pred == y_te):.4f} on {len(y_te)} images"]
    lines += [f"  {name:<12} {matrix[i, i] / max(matrix[i].sum(), 1):.3f}" for i, name in enumerate(names)]
    return "\n".join(lines)


def read_image(path, size):
    """A greyscale image file (PNG/JPEG via Pillow) or ``.npy`` array -> uint8 (N, H, W)."""
    path = str(path)
    if path.endswith(".npy"):
        arr = np.load(path, allow_pickle=False)
        if arr.dtype != np.uint8:
            arr = np.clip(np.rint(arr * 255 if arr.max() <= 1.0 else arr), 0, 255).astype(np.uint8)
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
    lines = []
    for path in paths:
        images = preprocess(read_image(path, size), meta["extra"]["preprocess"])
        probs = softmax(predict(model, params, images, state=state))
        for i, p in enumerate(probs):
            top = np.argsort(p)[::-1][:3]
            guesses = ", ".join(f"{names[c] if names else c} {p[c]:.2f}" for c in top)
            lines.append(f"{path}{f'[{i}]' if len(probs) > 1 else ''}: {guesses}")
    return "\n".join(lines)
