"""Seconds per epoch of a dense 784-256-128-10 ReLU net: purenet vs PyTorch CPU.

Same data (random, MNIST-shaped), float32, batch 128, SGD with momentum 0.9,
same number of threads. The two alternate epoch by epoch (a shared machine's speed moves
by the minute); purenet's epoch is the time ``fit`` logs for it. Prints each framework's
best and median seconds per epoch and the ratios purenet / PyTorch (below 1.0 means
purenet is faster), and the GFLOP/s of purenet's epochs against the machine's SGEMM
peak, measured here between the rounds (the best of those measurements, so that a
slow minute does not flatter the share). An epoch's FLOPs are those both frameworks
compute: the forward products, every weight gradient, and the input gradients of
the second and third layers (the first layer's input is data). A third runner does
an epoch's matrix products alone (the same shapes, one NumPy call each, on arrays made
beforehand): its share of the peak is the ceiling for any implementation that calls
them one by one, and the difference to purenet's epoch is everything else.

    python bench/bench_mlp.py [--rounds 5] [--samples 60000] [--threads N]
"""
import argparse
import time

import blas_threads

THREADS = blas_threads.apply()                   # before NumPy loads its BLAS

import numpy as np  # noqa: E402
from profile_step import sgemm_peak  # noqa: E402


LAYERS = [(784, 256), (256, 128), (128, 10)]


def flops_per_sample():
    """Multiply-adds x 2 of one sample's forward and backward (no input gradient for layer 1)."""
    products = sum(n_in * n_out for n_in, n_out in LAYERS)
    return 2 * (2 * products + sum(n_in * n_out for n_in, n_out in LAYERS[1:]))


def make_data(samples, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((samples, 784), dtype=np.float32)
    y = rng.integers(0, 10, samples)
    return x, y


def purenet_runner(batch_size):
    """``epoch(x, y, seed) -> seconds``: one more epoch of the same purenet model."""
    from purenet import optim
    from purenet.layers import Dense, serial
    from purenet.random import key
    from purenet.train import fit
    model = serial(Dense(256, "relu", w_init="he_normal"), Dense(128, "relu", w_init="he_normal"),
                   Dense(10))
    _, params, state = model.init(key(0), (784,))
    opt = optim.sgd(0.01, momentum=0.9)
    trees = [params, opt.init(params)]

    def epoch(x, y, seed):
        result = fit(model, trees[0], "softmax_cross_entropy", opt, x, y, state=state, epochs=1,
                     batch_size=batch_size, seed=seed, progress=False, opt_state=trees[1])
        trees[:] = [result.params, result.opt_state]
        # the epoch's own time, as fit logs it: without fit's one-time checks of the data
        # (every value finite: ~50 ms for these 47M floats), which a run pays once
        return result.history.history["seconds"][0]
    return epoch


def torch_runner(batch_size):
    """``epoch(x, y, seed) -> seconds``: one more epoch of the same PyTorch model."""
    import torch
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch(x, y, seed):
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        start = time.perf_counter()
        perm = torch.from_numpy(np.random.default_rng(seed).permutation(len(x)))
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        return time.perf_counter() - start
    return epoch


def products_runner(batch_size):
    """``epoch(x, y, seed) -> seconds``: the products of an epoch's steps and nothing else."""
    rng = np.random.default_rng(0)
    widths = [n_in for n_in, _ in LAYERS] + [LAYERS[-1][1]]
    acts = [rng.random((batch_size, w), dtype=np.float32) for w in widths]       # x, h1, h2, out
    weights = [rng.random(shape, dtype=np.float32) for shape in LAYERS]

    def epoch(x, y, seed):
        start = time.perf_counter()
        for _ in range(0, len(x), batch_size):
            for a, w in zip(acts, weights):
                a @ w                                       # forward
            for i in reversed(range(len(weights))):
                acts[i].T @ acts[i + 1]                     # weight gradient
                if i:
                    acts[i + 1] @ weights[i].T              # input gradient
        return time.perf_counter() - start
    return epoch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="epochs of each side, alternating")
    parser.add_argument("--samples", type=int, default=60000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=THREADS)
    args = parser.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    x, y = make_data(args.samples)
    runners = {"purenet": purenet_runner(args.batch_size), "pytorch": torch_runner(args.batch_size),
               "products": products_runner(args.batch_size)}
    times, peaks = {name: [] for name in runners}, []
    for r in range(args.rounds + 1):    # round 0 warms both up and is not counted
        for name, epoch in runners.items():
            seconds = epoch(x, y, r)
            if r:
                times[name].append(seconds)
        peaks.append(sgemm_peak())
    print(f"{blas_threads.cpu_model()}; threads {args.threads}, {args.samples} samples, "
          f"batch {args.batch_size}, {args.rounds} alternating epochs each")
    for name, t in times.items():
        print(f"{name:8s} {min(t):7.3f} s/epoch best, {np.median(t):.3f} median  "
              f"(epochs: {', '.join(f'{s:.3f}' for s in t)})")
    outside = 1 - min(times["products"]) / min(times["purenet"])
    paired = sorted(a / b for a, b in zip(times["purenet"], times["pytorch"]))
    print(f"ratio purenet/pytorch: {min(times['purenet']) / min(times['pytorch']):.2f} best "
          f"against best, {np.median(times['purenet']) / np.median(times['pytorch']):.2f} "
          f"median against median; epoch by epoch {paired[0]:.2f}-{paired[-1]:.2f}")
    epoch_flop, peak = flops_per_sample() * args.samples, max(peaks)
    best, median = (epoch_flop / s / 1e9 for s in (min(times["purenet"]), np.median(times["purenet"])))
    print(f"purenet: {epoch_flop / 1e9:.1f} GFLOP per epoch at {best:.1f} GFLOP/s best, {median:.1f} "
          f"median = {best / peak:.0%} and {median / peak:.0%} of the SGEMM peak "
          f"({peak:.0f} GFLOP/s, the best of {len(peaks)} measurements here: "
          f"{', '.join(f'{p:.0f}' for p in peaks)})")
    ceiling = epoch_flop / min(times["products"]) / 1e9
    print(f"the products alone: {ceiling:.1f} GFLOP/s best = {ceiling / peak:.0%} of the peak; "
          f"purenet's best epoch spends {outside:.0%} of its time outside them")


if __name__ == "__main__":
    main()
