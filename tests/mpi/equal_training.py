"""Run under ``mpiexec -n N``: train three small models with ``DataParallel`` and
compare their params with one process's training on the same global batches
(dropout included: every rank keeps its rows of the global batch's masks).

Prints one line per model on rank 0: ``<name> <largest relative difference of a
param or state leaf> <largest relative difference of an epoch's loss>``.
"""
import sys

import numpy as np

from purenet import optim
from purenet.distributed import DataParallel, abort_on_error
from purenet.layers import (LSTM, Activation, BatchNorm, Conv2D, Dense, Dropout, Flatten,
                            MaxPool2D, serial)
from purenet.random import key
from purenet.train import fit
from purenet.tree import tree_leaves


def mlp():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((45, 6)), rng.standard_normal((45, 2))
    model = serial(Dense(16), Activation("tanh"), Dropout(0.3), Dense(2))
    return model, (6,), x, y, "mse", optim.sgd(0.05, momentum=0.9), 8


def cnn():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((27, 1, 8, 8)), rng.integers(0, 3, 27)
    model = serial(Conv2D(4, 3, padding="same", use_bias=False), BatchNorm(), Activation("relu"), MaxPool2D(2),
                   Flatten(), Dropout(0.2), Dense(3))
    return model, (1, 8, 8), x, y, "softmax_cross_entropy", optim.adam(0.01), 10


def lstm():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((21, 5, 3)), rng.standard_normal((21, 2))
    model = serial(LSTM(6), Dense(2))
    return model, (5, 3), x, y, "mse", optim.adam(0.01), 6


def relative_difference(a, b):
    return max(float(np.max(np.abs(p - q)) / max(np.max(np.abs(q)), 1e-30))
               for p, q in zip(tree_leaves(a), tree_leaves(b))) if tree_leaves(a) else 0.0


def main():
    parallel = DataParallel(sync_batch_norm=True, check_every=1)
    for build in (mlp, cnn, lstm):
        model, in_shape, x, y, loss, opt, batch = build()
        _, params, state = model.init(key(0), in_shape, np.float64)
        common = dict(state=state, epochs=2, batch_size=batch, seed=5, verbose=0)
        alone = fit(model, params, loss, opt, x, y, **common)
        together = fit(model, params, loss, opt, x, y, distributed=parallel, **common)
        diff = max(relative_difference(together.params, alone.params),
                   relative_difference(together.state, alone.state))
        losses = np.array(together.history.history["loss"]) / alone.history.history["loss"] - 1
        if parallel.rank == 0:
            print(build.__name__, f"{diff:.3g}", f"{np.max(np.abs(losses)):.3g}", flush=True)
    # validation is shared out over the ranks: the same figures as one process's
    model, in_shape, x, y, loss, opt, batch = mlp()
    _, params, state = model.init(key(0), in_shape, np.float64)
    common = dict(epochs=2, batch_size=batch, seed=5, verbose=0, validation_data=(x[:7], y[:7]))
    alone = fit(model, params, loss, opt, x[7:], y[7:], **common).history.history["val_loss"]
    together = fit(model, params, loss, opt, x[7:], y[7:], distributed=parallel,
                   **common).history.history["val_loss"]
    if parallel.rank == 0:
        print("mlp-validation", f"{np.max(np.abs(np.array(together) / alone - 1)):.3g}", flush=True)
    # per-rank batch statistics (the default) train too, the ranks in step, but differ
    model, in_shape, x, y, loss, opt, batch = cnn()
    _, params, state = model.init(key(0), in_shape, np.float64)
    own = fit(model, params, loss, opt, x, y, state=state, epochs=1, batch_size=batch, seed=5,
              verbose=0, distributed=DataParallel(check_every=1))
    if parallel.rank == 0:
        print("cnn-per-rank-statistics", np.isfinite(own.history.history["loss"][0]), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    with abort_on_error():
        main()
