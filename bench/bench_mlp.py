"""Seconds per epoch of a dense 784-256-128-10 ReLU net: purenet vs PyTorch CPU.

Same data (random, MNIST-shaped), float32, batch 128, SGD with momentum 0.9,
same number of threads; prints each framework's seconds per epoch and the
ratio purenet / PyTorch (below 1.0 means purenet is faster).

    python bench/bench_mlp.py [--epochs 3] [--samples 60000] [--threads N]
"""
import argparse
import time

import blas_threads

THREADS = blas_threads.apply()                   # before NumPy loads its BLAS

import numpy as np  # noqa: E402


def make_data(samples, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((samples, 784), dtype=np.float32)
    y = rng.integers(0, 10, samples)
    return x, y


def purenet_epochs(x, y, epochs, batch_size):
    from purenet import optim
    from purenet.layers import Dense, serial
    from purenet.random import key
    from purenet.train import fit
    model = serial(Dense(256, "relu", w_init="he_normal"), Dense(128, "relu", w_init="he_normal"),
                   Dense(10))
    _, params, state = model.init(key(0), (784,))
    times = []
    for epoch in range(epochs):
        start = time.perf_counter()
        result = fit(model, params, "softmax_cross_entropy", optim.sgd(0.01, momentum=0.9), x, y,
                     state=state, epochs=1, batch_size=batch_size, seed=epoch, progress=False)
        times.append(time.perf_counter() - start)
        params = result.params
    return times


def torch_epochs(x, y, epochs, batch_size):
    import torch
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    times = []
    for epoch in range(epochs):
        start = time.perf_counter()
        perm = torch.from_numpy(np.random.default_rng(epoch).permutation(len(x)))
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - start)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=60000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=THREADS)
    args = parser.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    x, y = make_data(args.samples)
    # alternate so neither framework always runs on a warmer machine
    t_torch = torch_epochs(x, y, args.epochs, args.batch_size)
    t_pure = purenet_epochs(x, y, args.epochs, args.batch_size)
    t_torch += torch_epochs(x, y, args.epochs, args.batch_size)
    pure, ref = np.median(t_pure), np.median(t_torch)
    print(f"{blas_threads.cpu_model()}; threads {args.threads}, {args.samples} samples, "
          f"batch {args.batch_size}")
    print(f"purenet  {pure:7.3f} s/epoch  (epochs: {', '.join(f'{t:.3f}' for t in t_pure)})")
    print(f"pytorch  {ref:7.3f} s/epoch  (epochs: {', '.join(f'{t:.3f}' for t in t_torch)})")
    print(f"ratio purenet/pytorch: {pure / ref:.2f}")


if __name__ == "__main__":
    main()
