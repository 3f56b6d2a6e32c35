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
from ..io import save_model, write_json
from ..layers import Dense, Dropout, serial
from ..random import key
from ..train import evaluate, fit
from .common import out_path, run_header

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


def train_book_model(model, data, args):
    (x_tr, y_tr), (x_te, y_te) = data
    _, params, state = model.init(key(args.seed), x_tr.shape[1:])
    result = fit(model, params, "mse", optim.sgd(args.lr), x_tr, y_tr, state=state,
                 epochs=args.epochs, batch_size=32, seed=args.seed,
                 validation_data=(x_te, y_te), eval_every=10, progress=args.progress)
    return result


def train_purenet_model(data, args):
    """AdamW with cosine decay over a fixed budget: no test rows seen, none held out."""
    (x_tr, y_tr), _ = data
    model = purenet_model()
    _, params, state = model.init(key(args.seed), x_tr.shape[1:])
    steps = PURENET_EPOCHS * -(-len(x_tr) // 32)
    opt = optim.adamw(optim.schedules.cosine_decay(2e-3, steps, 2e-5), weight_decay=1e-2)
    result = fit(model, params, "mse", opt, x_tr, y_tr, state=state, epochs=PURENET_EPOCHS,
                 batch_size=32, seed=args.seed, progress=args.progress)
    return model, result


def table(results):
    lines = [f"{'model':<52}{'MAE':>7}{'RMSE':>7}   {'book MAE':>9}{'book RMSE':>10}",
             "-" * 85]
    for name, r in results.items():
        book_mae, book_rmse = BOOK.get(name, (None, None))
        book = f"{book_mae:>9.2f}{book_rmse:>10.2f}" if book_mae else f"{'-':>9}{'-':>10}"
        lines.append(f"{DESCRIPTIONS[name]:<52}{r['mae']:>7.2f}{r['rmse']:>7.2f}   {book}")
    return "\n".join(lines)


def add_arguments(parser):
    parser.add_argument("--epochs", type=int, default=50, help="epochs for the book's models (50)")
    parser.add_argument("--lr", type=float, default=0.01, help="SGD learning rate (0.01)")
    parser.add_argument("--seed", type=int, default=80718, help="init and shuffling seed")


def run(args):
    start = time.perf_counter()
    data = load_book_data()
    (_, _), (x_te, y_te) = data
    results, histories = {}, {}
    models = book_models()
    for name, model in models.items():
        print(f"training {DESCRIPTIONS[name]}")
        res = train_book_model(model, data, args)
        results[name], histories[name] = res, res.history
        save_model(out_path(args, f"boston_{name}.npz"), model, res.params, res.state,
                   in_shape=x_te.shape[1:], extra={"recipe": "boston", "model": name})
    print(f"training {DESCRIPTIONS['purenet']}")
    model, res = train_purenet_model(data, args)
    models["purenet"], results["purenet"], histories["purenet"] = model, res, res.history
    save_model(out_path(args, "boston_purenet.npz"), model, res.params, res.state,
               in_shape=x_te.shape[1:], extra={"recipe": "boston", "model": "purenet"})
    scores = {name: evaluate(models[name], r.params, x_te, y_te, state=r.state,
                             metrics=["mae", "rmse"]) for name, r in results.items()}
    print()
    print(table(scores))
    report = {**run_header(args, time.perf_counter() - start),
              "protocol": __doc__.strip(),
              "test": {n: {"mae": s["mae"], "rmse": s["rmse"], "description": DESCRIPTIONS[n],
                           "book": dict(zip(("mae", "rmse"), BOOK[n])) if n in BOOK else None}
                       for n, s in scores.items()},
              "history": {n: h.to_dict() for n, h in histories.items()}}
    _plot(histories, args)
    write_json(out_path(args, "metrics.json"), report)
    print(f"\nwrote {args.out}/metrics.json, models and loss_curves.png")
    return report


def _plot(histories, args):
    from ..plots import plot_curves
    try:
        plot_curves({n: h.history for n, h in histories.items()}, out_path(args, "loss_curves.png"),
                    keys=("loss", "val_loss"), title="Boston housing: loss (MSE)", logy=True)
    except ImportError as err:
        print(f"no plot: {err}")
