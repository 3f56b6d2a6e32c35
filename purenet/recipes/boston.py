"""Boston housing: the book's chapter-3 models, reproduced, and a purenet recipe.

The book's protocol: standardise all 506 rows per feature, split with
``np.random.RandomState(80718).permutation(506)`` (first 152 rows test, the
rest train), N(0, 1) init for weights and biases, SGD lr 0.01, batch 32,
50 epochs, evaluation every 10 epochs on the held-out rows (monitoring only:
nothing is selected on them).
"""
import time

import numpy as np

from .. import optim
from ..data import book_boston_split, fit_standardizer, load_boston, standardize
from ..files import write_json
from ..io import save_model
from ..layers import Dense, Dropout, serial
from ..random import key
from ..train import evaluate, fit
from .common import (COMPLETE, DIVERGED, INTERRUPTED, check_paths, run_options, writes,
                     describe_time, destination, draw, end_run, has_diverged, non_negative_int,
                     out_path, positive_float, positive_int, run_header, short_reason,
                     verbosity, was_interrupted)

SHORT_HELP = "the book's chapter-3 models and a purenet recipe (about 10 s on 2 cores)"

BOOK = {"linear": (3.52, 5.01), "nn": (2.60, 4.03), "dl": (2.45, 3.83)}
DESCRIPTIONS = {
    "linear": "linear regression (book)",
    "nn": "13 sigmoid -> 1 linear (book)",
    "dl": "13 sigmoid -> 13 sigmoid -> 1 linear (book)",
    "purenet": "128 elu -> 128 elu -> 1, dropout, AdamW (purenet)",
}


def book_models():
    """The three chapter-3 networks, N(0, 1) init as in the book."""
    def dense(units, act="identity"):
        return Dense(units, act, w_init="normal", b_init="normal")
    return {
        "linear": serial(dense(1)),
        "nn": serial(dense(13, "sigmoid"), dense(1)),
        "dl": serial(dense(13, "sigmoid"), dense(13, "sigmoid"), dense(1)),
    }


def purenet_model():
    """Chosen among five candidates by validation error on held-out training rows."""
    return serial(Dense(128, "elu", w_init="he_normal"), Dropout(0.2),
                  Dense(128, "elu", w_init="he_normal"), Dropout(0.2), Dense(1))


PURENET_EPOCHS = 400


def load_book_data():
    """Standardised features and the book's train/test split."""
    x, y, _ = load_boston()
    x = standardize(x, fit_standardizer(x))
    return book_boston_split(x, y.reshape(-1, 1))


# seconds on a 2-core CPU: one epoch of a book model; the whole purenet model
SECONDS_PER_BOOK_EPOCH, PURENET_SECONDS = 0.004, 8.0


def train_book_model(model, data, args, **checkpoint):
    (x_tr, y_tr), (x_te, y_te) = data
    _, params, state = model.init(key(args.seed), x_tr.shape[1:])
    result = fit(model, params, "mse", optim.sgd(args.lr), x_tr, y_tr, state=state,
                 epochs=args.epochs, batch_size=32, seed=args.seed,
                 validation_data=(x_te, y_te), eval_every=10, verbose=verbosity(args),
                 **checkpoint)
    return result


def train_purenet_model(data, args, **checkpoint):
    """AdamW with cosine decay over a fixed budget: no test rows seen, none held out."""
    (x_tr, y_tr), _ = data
    model = purenet_model()
    _, params, state = model.init(key(args.seed), x_tr.shape[1:])
    steps = PURENET_EPOCHS * -(-len(x_tr) // 32)
    opt = optim.adamw(optim.schedules.cosine_decay(2e-3, steps, 2e-5), weight_decay=1e-2)
    result = fit(model, params, "mse", opt, x_tr, y_tr, state=state, epochs=PURENET_EPOCHS,
                 batch_size=32, seed=args.seed, verbose=verbosity(args), **checkpoint)
    return model, result


def table(scores):
    """The test table; ``scores[name]`` is ``{"mae", "rmse"}``, or None for a model
    that diverged."""
    lines = [f"{'model':<52}{'MAE':>7}{'RMSE':>7}   {'book MAE':>9}{'book RMSE':>10}",
             "-" * 85]
    for name, r in scores.items():
        book_mae, book_rmse = BOOK.get(name, (None, None))
        book = f"{book_mae:>9.2f}{book_rmse:>10.2f}" if book_mae else f"{'-':>9}{'-':>10}"
        ours = f"{r['mae']:>7.2f}{r['rmse']:>7.2f}" if r else f"{'diverged':>14}"
        lines.append(f"{DESCRIPTIONS[name]:<52}{ours}   {book}")
    return "\n".join(lines)


def add_arguments(parser):
    parser.add_argument("--epochs", type=positive_int, default=50, metavar="N",
                        help="epochs of each of the book's three models (default: 50); the "
                             f"purenet model always trains {PURENET_EPOCHS}")
    parser.add_argument("--lr", type=positive_float, default=0.01, metavar="RATE",
                        help="SGD learning rate of the book's models (default: 0.01)")
    parser.add_argument("--seed", type=non_negative_int, default=80718, metavar="N",
                        help="init and shuffling seed, 0 or more (default: 80718, the book's)")


def estimate_seconds(args):
    return 3 * args.epochs * SECONDS_PER_BOOK_EPOCH + PURENET_SECONDS


def run(args):
    names = [*book_models(), "purenet"]
    files = [f"boston_{n}.npz" for n in names] + ["metrics.json", "loss_curves.png"]
    found = check_paths(args, files, checkpoint_names=names)
    start = time.perf_counter()
    data = load_book_data()
    print(f"4 models: the book's 3 for {args.epochs} epochs, purenet's for {PURENET_EPOCHS}; "
          f"about {describe_time(estimate_seconds(args))} on 2 cores (Ctrl-C stops and keeps "
          "what is trained)")
    models, results = book_models(), {}
    for name in names:
        print(f"training {DESCRIPTIONS[name]}")
        checkpoint = run_options(args, name, found)
        with np.errstate(over="ignore", invalid="ignore"):   # a diverging loss is reported
            if name == "purenet":
                models[name], results[name] = train_purenet_model(data, args, **checkpoint)
            else:
                results[name] = train_book_model(models[name], data, args, **checkpoint)
        if was_interrupted(results[name].history):
            break                       # Ctrl-C ends the whole command, not one model
    if not writes(args):                # on more than one process, the first one reports
        return None
    return _finish(models, results, data, args, time.perf_counter() - start)


def _finish(models, results, data, args, seconds):
    """Write the run's models, metrics and plot where its ending says (see common)."""
    interrupted = any(was_interrupted(r.history) for r in results.values())
    diverged = [n for n, r in results.items() if has_diverged(r.history)]
    status = INTERRUPTED if interrupted else DIVERGED if diverged else COMPLETE
    directory = destination(args, status)
    _, (x_te, y_te) = data
    saved = []
    for name, r in results.items():
        if len(r.history):              # never save a model that trained no epoch
            save_model(out_path(directory, f"boston_{name}.npz"), models[name], r.params,
                       r.state, in_shape=x_te.shape[1:], extra={"recipe": "boston", "model": name})
            saved.append(name)
    scores = {}
    if status != INTERRUPTED:           # an interrupted run does not score the test set
        scores = {name: None if name in diverged else
                  evaluate(models[name], r.params, x_te, y_te, state=r.state,
                           metrics=["mae", "rmse"])
                  for name, r in results.items()}
        print()
        print(table(scores))
    report = {**run_header(args, seconds, status), "protocol": __doc__.strip(),
              "models": {n: _model_report(n, r, args) for n, r in results.items()},
              "test": {n: _test_report(n, s) for n, s in scores.items()},
              "history": {n: r.history.to_dict() for n, r in results.items()}}
    write_json(out_path(directory, "metrics.json"), report)
    _plot(results, directory)
    if status == COMPLETE:
        print(f"\nwrote {directory}/metrics.json, models and loss_curves.png")
        return report
    if status == INTERRUPTED:
        done = ", ".join(f"{n} {len(r.history)}/{_epochs(n, args)}" for n, r in results.items())
        left = [n for n in models if n not in results]
        skipped = f"; not trained: {', '.join(left)}" if left else ""
        raise end_run(args, status, directory, f"epochs run: {done}{skipped}")
    reason = short_reason(results[diverged[0]].history.stop_reason)
    raise end_run(args, status, directory, f"{', '.join(diverged)} ({reason}; try a smaller --lr)")


def _epochs(name, args):
    return PURENET_EPOCHS if name == "purenet" else args.epochs


def _model_report(name, result, args):
    return {"description": DESCRIPTIONS[name], "epochs": len(result.history),
            "epochs_requested": _epochs(name, args), "stop_reason": result.history.stop_reason,
            "interrupted": was_interrupted(result.history),
            "diverged": has_diverged(result.history)}


def _test_report(name, score):
    book = dict(zip(("mae", "rmse"), BOOK[name])) if name in BOOK else None
    if score is None:
        return {"mae": None, "rmse": None, "diverged": True, "description": DESCRIPTIONS[name],
                "book": book}
    return {"mae": score["mae"], "rmse": score["rmse"], "description": DESCRIPTIONS[name],
            "book": book}


def _plot(results, directory):
    from ..plots import plot_curves
    curves = {n: r.history.history for n, r in results.items() if len(r.history)}
    if curves:
        draw(lambda path: plot_curves(curves, path, keys=("loss", "val_loss"), logy=True,
                                      title="Boston housing: loss (MSE)"),
             out_path(directory, "loss_curves.png"))
