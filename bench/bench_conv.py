"""Forward + backward time of purenet's convolution and max pooling against PyTorch CPU.

The layers of the Fashion-MNIST CNN (batch 128, 5x5 "same" kernels):

    conv 1 -> 32 channels at 28x28,  conv 32 -> 64 channels at 14x14,  2x2 max pool

Both libraries compute every gradient (input, kernel, bias) and use the same
number of threads (PyTorch's ``set_num_threads`` = cores; NumPy's BLAS uses all
cores). Each measurement is the best of several runs, the two libraries
interleaved, so a busy machine slows both alike.

    python bench/bench_conv.py [--repeats 15] [--batch 128]
"""
import argparse
import os
import time

import numpy as np

from purenet.ops.conv import conv2d
from purenet.ops.pooling import max_pool2d

LAYERS = [  # (name, in channels, out channels, image size)
    ("conv 1->32 @28x28", 1, 32, 28),
    ("conv 32->64 @14x14", 32, 64, 14),
]


def best_time(fn, repeats):
    """Best wall time of ``fn()`` over ``repeats`` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def purenet_conv_step(x, w, b, g):
    def run():
        _, backward = conv2d.vjp(x, w, b, padding="same")
        return backward(g)
    return run


def torch_conv_step(torch, x, w, b, g):
    xt, gt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(g)
    wt = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1))).requires_grad_()
    bt = torch.from_numpy(b).requires_grad_()

    def run():
        y = torch.nn.functional.conv2d(xt, wt, bt, padding="same")
        y.backward(gt)
    return run


def purenet_pool_step(x, g):
    def run():
        _, backward = max_pool2d.vjp(x, pool_size=2)
        return backward(g)
    return run


def torch_pool_step(torch, x, g):
    xt, gt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(g)

    def run():
        torch.nn.functional.max_pool2d(xt, 2).backward(gt)
    return run


def conv_cases(batch, rng):
    for name, c_in, c_out, size in LAYERS:
        x = rng.standard_normal((batch, c_in, size, size), dtype=np.float32)
        w = (0.1 * rng.standard_normal((5, 5, c_in, c_out))).astype(np.float32)
        b = np.zeros(c_out, np.float32)
        g = rng.standard_normal((batch, c_out, size, size), dtype=np.float32)
        yield name, purenet_conv_step(x, w, b, g), lambda t, a=(x, w, b, g): torch_conv_step(t, *a)


def pool_case(batch, rng):
    x = rng.standard_normal((batch, 32, 28, 28), dtype=np.float32)
    g = rng.standard_normal((batch, 32, 14, 14), dtype=np.float32)
    return "maxpool 2x2 32@28x28", purenet_pool_step(x, g), lambda t: torch_pool_step(t, x, g)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    import torch
    torch.set_num_threads(os.cpu_count())
    rng = np.random.default_rng(0)
    cases = list(conv_cases(args.batch, rng)) + [pool_case(args.batch, rng)]
    print(f"batch {args.batch}, {os.cpu_count()} threads, best of {args.repeats}; forward + backward")
    print(f"{'layer':24s} {'purenet ms':>11s} {'torch ms':>9s} {'ratio':>6s}")
    for name, ours, make_theirs in cases:
        theirs = make_theirs(torch)
        t_ours = t_theirs = float("inf")
        for _ in range(3):   # interleave, so load from elsewhere hits both
            t_ours = min(t_ours, best_time(ours, args.repeats // 3 or 1))
            t_theirs = min(t_theirs, best_time(theirs, args.repeats // 3 or 1))
        print(f"{name:24s} {t_ours * 1e3:11.2f} {t_theirs * 1e3:9.2f} {t_ours / t_theirs:6.2f}")


if __name__ == "__main__":
    main()
