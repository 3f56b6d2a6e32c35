"""Choose the Fashion-MNIST ``cnn`` recipe's settings on the validation split alone.

Trains the recipe's network once per candidate (kernel sizes of the three conv
blocks, batch norm before or after pooling, epochs, augmentation), exactly as
``purenet train fashion-mnist --model cnn`` would with those settings and seed, and
prints each candidate's validation accuracy and training time. The test set is never
loaded into the comparison: score it once, afterwards, with the command for the
chosen candidate. Under ``mpiexec -n N`` it trains each candidate on N processes with
batch norm over the whole batch: the same training, sooner.

    python examples/choose_cnn_recipe.py [--data-dir DIR] [--epochs 15] [--kernels 5,3,3]
                                         [--augment off|on|both] [--order norm-pool|pool-norm|both]
                                         [--seed 0]
"""
import argparse
import json
import time

import numpy as np

from purenet.distributed import DataParallel, launched_size
from purenet.losses import softmax_cross_entropy
from purenet.random import key
from purenet.recipes.fashion_mnist import (CNN_KERNELS, CNN_POOL_FIRST, FASHION_MNIST_DIR, MODELS,
                                          cnn, load_data, shift_and_flip)
from purenet.train import fit


def train_candidate(train, val, kernels, epochs, augment, seed, pool_first=CNN_POOL_FIRST):
    """Validation accuracies per epoch and seconds per epoch of one candidate."""
    recipe = MODELS["cnn"]
    model = cnn(kernels, pool_first)
    _, params, state = model.init(key(seed), train[0].shape[1:])
    steps_per_epoch = -(-len(train[0]) // recipe.batch_size)
    loss = softmax_cross_entropy.bind(label_smoothing=recipe.label_smoothing)
    start = time.perf_counter()
    result = fit(model, params, loss, recipe.optimizer(steps_per_epoch, epochs), *train,
                 state=state, epochs=epochs, batch_size=recipe.batch_size, seed=seed,
                 validation_data=val, metrics=["accuracy"],
                 augment=shift_and_flip() if augment else None, verbose=2,
                 distributed=PARALLEL)
    logs = result.history.history
    return {"kernels": list(kernels), "pool_first": pool_first, "epochs": epochs,
            "augment": augment, "seed": seed,
            "val_accuracy": logs["val_accuracy"], "best_val_accuracy": max(logs["val_accuracy"]),
            "last_val_accuracy": logs["val_accuracy"][-1],
            "seconds_per_epoch": logs["seconds"], "minutes": (time.perf_counter() - start) / 60}


# Under ``mpiexec -n N``: data-parallel with batch norm over the whole batch, which trains
# as one process would (to rounding), only sooner.
PARALLEL = DataParallel(sync_batch_norm=True) if launched_size() > 1 else None


def report(text):
    """Print on the first process only."""
    if PARALLEL is None or PARALLEL.writes:
        print(text, flush=True)


def kernel_sizes(text):
    """``"5,3,3"`` -> (5, 3, 3): the kernel size of each of the three conv blocks."""
    sizes = tuple(int(part) for part in text.split(","))
    if len(sizes) != 3 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"three positive kernel sizes like 5,3,3, got {text!r}")
    return sizes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=FASHION_MNIST_DIR)
    parser.add_argument("--epochs", type=int, nargs="+", default=[MODELS["cnn"].epochs])
    parser.add_argument("--kernels", type=kernel_sizes, nargs="+", default=[CNN_KERNELS],
                        help="kernel sizes of the three conv blocks, e.g. 5,5,3 5,3,3")
    parser.add_argument("--augment", choices=["off", "on", "both"], default="both")
    parser.add_argument("--order", choices=["norm-pool", "pool-norm", "both"],
                        default="pool-norm" if CNN_POOL_FIRST else "norm-pool",
                        help="batch norm before max pooling (norm-pool) or after it "
                             "(default: the recipe's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train, val, _, _ = load_data(args.data_dir)      # the test set is not used here
    augments = {"off": [False], "on": [True], "both": [False, True]}[args.augment]
    results = []
    orders = {"norm-pool": [False], "pool-norm": [True], "both": [False, True]}[args.order]
    for kernels in args.kernels:
        for pool_first in orders:
            for epochs in args.epochs:
                for augment in augments:
                    result = train_candidate(train, val, kernels, epochs, augment, args.seed,
                                             pool_first)
                    results.append(result)
                    report(json.dumps(result))
    best = max(results, key=lambda r: r["last_val_accuracy"])
    report(f"chosen on validation: kernels {best['kernels']}, pool first {best['pool_first']}, "
           f"{best['epochs']} epochs, augment {best['augment']} "
           f"(validation accuracy {best['last_val_accuracy']:.4f})")
    report("per candidate: " + "; ".join(
        f"kernels {r['kernels']}, pool first {r['pool_first']}, {r['epochs']} epochs, "
        f"augment {r['augment']}: {r['last_val_accuracy']:.4f} "
        f"({np.mean(r['seconds_per_epoch']):.0f} s/epoch)" for r in results))


if __name__ == "__main__":
    main()
