"""Forward + backward time of purenet's convolution and max pooling against PyTorch CPU.

The layers of the Fashion-MNIST CNN (batch 128, 5x5 "same" kernels):

    conv 1 -> 32 channels at 28x28,  conv 32 -> 64 channels at 14x14,  2x2 max pool

and one whole training step of that CNN (conv 32 5x5, pool, conv 64 5x5, pool,
dense 128, dense 10; forward, backward, SGD update). For the layers both libraries
compute every gradient (input, kernel, bias); in the training step neither computes
the gradient of the images (the data). Both use the same number of threads
(PyTorch's ``set_num_threads`` = cores; NumPy's BLAS uses all cores). Each
figure is the best of several runs, the two libraries interleaved round by
round, so a busy machine slows both alike.

    PYTHONPATH=. python bench/bench_conv.py [--rounds 5] [--repeats 5] [--batch 128] [--threads N]

``--threads 1`` compares single-threaded code, which is steadier on a machine
that other jobs share.
"""
import argparse
import time


import blas_threads

THREADS = blas_threads.apply()                   # before NumPy loads its BLAS

import numpy as np  # noqa: E402

from purenet.autodiff import vjp  # noqa: E402
from purenet.ops.conv import conv2d  # noqa: E402
from purenet.ops.pooling import max_pool2d  # noqa: E402

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
    """Forward and every gradient (input, kernel, bias): all three arguments are traced."""
    conv = conv2d.bind(padding="same")

    def run():
        _, pullback = vjp(conv, x, w, b)
        return pullback(g)
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
    pool = max_pool2d.bind(pool_size=2)

    def run():
        _, pullback = vjp(pool, x)
        return pullback(g)
    return run


def torch_pool_step(torch, x, g):
    xt, gt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(g)

    def run():
        torch.nn.functional.max_pool2d(xt, 2).backward(gt)
    return run


def cnn_step_cases(batch, rng):
    """One SGD step of the whole CNN in each library."""
    from purenet.layers.base import serial
    from purenet.layers.conv import Conv2D, MaxPool2D
    from purenet.layers.core import Dense, Flatten
    from purenet.random import key
    from purenet.train.step import loss_and_grads
    from purenet.tree import tree_map
    x = rng.random((batch, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    model = serial(Conv2D(32, 5, padding="same", activation="relu"), MaxPool2D(2),
                   Conv2D(64, 5, padding="same", activation="relu"), MaxPool2D(2), Flatten(),
                   Dense(128, "relu"), Dense(10))
    params = [model.init(key(0), (1, 28, 28))[1]]

    def ours():
        _, grads, _ = loss_and_grads(model, "softmax_cross_entropy", params[0], {}, x, y)
        params[0] = tree_map(lambda p, g: p - 0.01 * g, params[0], grads)

    return "CNN train step", ours, lambda torch: torch_cnn_step(torch, x, y)


def torch_cnn_step(torch, x, y):
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def run():
        opt.zero_grad()
        nn.functional.cross_entropy(net(xt), yt).backward()
        opt.step()
    return run


def channels_last_memory(a):
    """The same NCHW array, stored channels-last: what purenet's layers pass each other
    (PyTorch gets its own native, contiguous NCHW arrays)."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def conv_cases(batch, rng):
    for name, c_in, c_out, size in LAYERS:
        x = rng.standard_normal((batch, c_in, size, size), dtype=np.float32)
        w = (0.1 * rng.standard_normal((5, 5, c_in, c_out))).astype(np.float32)
        b = np.zeros(c_out, np.float32)
        g = rng.standard_normal((batch, c_out, size, size), dtype=np.float32)
        ours = purenet_conv_step(channels_last_memory(x), w, b, channels_last_memory(g))
        yield name, ours, lambda t, a=(x, w, b, g): torch_conv_step(t, *a)


def pool_case(batch, rng):
    x = rng.standard_normal((batch, 32, 28, 28), dtype=np.float32)
    g = rng.standard_normal((batch, 32, 14, 14), dtype=np.float32)
    ours = purenet_pool_step(channels_last_memory(x), channels_last_memory(g))
    return "maxpool 2x2 32@28x28", ours, lambda t: torch_pool_step(t, x, g)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5, help="runs per round")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=THREADS)
    return parser.parse_args()


def main(args):
    import torch
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    cases = list(conv_cases(args.batch, rng)) + [pool_case(args.batch, rng),
                                                  cnn_step_cases(args.batch, rng)]
    print(f"{blas_threads.cpu_model()}; batch {args.batch}, {args.threads} thread(s), best of {args.rounds} x {args.repeats} "
          "runs; forward + backward")
    print(f"{'layer':24s} {'purenet ms':>11s} {'torch ms':>9s} {'ratio':>6s}")
    for name, ours, make_theirs in cases:
        theirs = make_theirs(torch)
        t_ours = t_theirs = float("inf")
        for _ in range(args.rounds):   # interleave, so load from elsewhere hits both
            t_ours = min(t_ours, best_time(ours, args.repeats))
            t_theirs = min(t_theirs, best_time(theirs, args.repeats))
        print(f"{name:24s} {t_ours * 1e3:11.2f} {t_theirs * 1e3:9.2f} {t_ours / t_theirs:6.2f}")


if __name__ == "__main__":
    main(parse_args())
