"""Seconds per epoch of the Fashion-MNIST ``cnn`` recipe: purenet vs PyTorch CPU.

The same network on both sides, the recipe's (three blocks of a "same" conv without
bias, 2x2 max pool and batch norm in the recipe's order, and ReLU, with ``CNN_FILTERS``
filters of ``CNN_KERNELS`` sizes; dense 128 ReLU, dropout 0.4, dense 10; PyTorch's
from ``torch_models``), Adam, batch 128, float32, the same number of threads, random
data of Fashion-MNIST's shape, no augmentation and no label smoothing on either side.
Each of ``--rounds`` rounds times ``--samples`` images on each side, one after the
other, and scales to the recipe's 55,000 training images; alternating keeps a shared
machine's changes of speed from favouring one side. Prints each side's best and every
round, the ratio purenet / PyTorch of the bests, and the range of the per-round ratios.

    python bench/bench_cnn_epoch.py [--samples 2560] [--rounds 6] [--threads N]
"""
import argparse
import time

EPOCH = 55000


import blas_threads

THREADS = blas_threads.apply()                   # before NumPy loads its BLAS

import numpy as np  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2560, help="images per timed run")
    parser.add_argument("--rounds", type=int, default=6, help="alternating runs of each side")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=THREADS)
    return parser.parse_args()


def purenet_epoch(x, y, batch_size):
    from purenet import optim
    from purenet.random import key
    from purenet.recipes.fashion_mnist import cnn
    from purenet.train import fit
    model = cnn()
    _, params, state = model.init(key(0), x.shape[1:])
    start = time.perf_counter()
    fit(model, params, "softmax_cross_entropy", optim.adam(2e-3), x, y, state=state, epochs=1,
        batch_size=batch_size, progress=False)
    return time.perf_counter() - start


def torch_epoch(x, y, batch_size):
    import torch
    from torch_models import recipe_cnn
    nn = torch.nn
    model = recipe_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    start = time.perf_counter()
    perm = torch.randperm(len(x))
    for i in range(0, len(x), batch_size):
        idx = perm[i:i + batch_size]
        opt.zero_grad()
        loss_fn(model(xt[idx]), yt[idx]).backward()
        opt.step()
    return time.perf_counter() - start


def main(args):
    import torch
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.samples, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, args.samples)
    scale = EPOCH / args.samples
    purenet_epoch(x[:256], y[:256], args.batch_size)             # warm both up
    torch_epoch(x[:256], y[:256], args.batch_size)
    ours, theirs = [], []
    for _ in range(args.rounds):        # alternate, so both sides see the same minutes
        ours.append(purenet_epoch(x, y, args.batch_size) * scale)
        theirs.append(torch_epoch(x, y, args.batch_size) * scale)
    pure, ref = min(ours), min(theirs)
    paired = sorted(a / b for a, b in zip(ours, theirs))
    print(f"{blas_threads.cpu_model()}; cnn recipe, batch {args.batch_size}, threads {args.threads}, "
          f"{args.rounds} rounds of {args.samples} samples scaled to a {EPOCH}-image epoch")
    print(f"purenet  {pure:7.1f} s/epoch  (rounds: {', '.join(f'{t:.1f}' for t in ours)})")
    print(f"pytorch  {ref:7.1f} s/epoch  (rounds: {', '.join(f'{t:.1f}' for t in theirs)})")
    print(f"ratio purenet/pytorch: {pure / ref:.2f} (best against best); round by round "
          f"{paired[0]:.2f}-{paired[-1]:.2f}, median {np.median(paired):.2f}")


if __name__ == "__main__":
    main(parse_args())
