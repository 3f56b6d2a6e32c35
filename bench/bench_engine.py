"""The engine's own cost: microseconds per recorded primitive, and a training step of a
tiny MLP (where per-call overhead, not arithmetic, sets the time) against PyTorch CPU.

1. Overhead per primitive: a chain of N elementwise adds on a 4-element array, run
   plainly and under ``purenet.grad`` (forward recorded + backward walked); the
   difference divided by N is what recording and differentiating one call costs.
2. Tiny MLP step: 32-64-64-16-10 ReLU, batch 64, forward + backward + SGD update,
   purenet's ``loss_and_grads`` + optimizer against the same network in PyTorch, same
   threads, interleaved rounds, median steps per second.
3. ReLU inside ``Dense`` (``linear`` applies it in place) against separate ``Activation``
   layers: the tiny MLP's ``loss_and_grads``, the two alternating.
4. Tiny recurrent step: an LSTM of 8 units over 32 steps of 4 features, batch 64,
   then dense 2 on the last step; the same in PyTorch.

    python bench/bench_engine.py [--threads N] [--steps 2000]
"""
import argparse
import time

import blas_threads

THREADS = blas_threads.apply()                   # before NumPy loads its BLAS

import numpy as np  # noqa: E402
from bench_conv import best_time  # noqa: E402


def primitive_overhead(n=2000):
    """(µs per plain call, µs per recorded and differentiated call) of ``ops.add``."""
    import purenet as pn
    x0 = np.ones(4)

    def chain(x):
        for _ in range(n):
            x = pn.ops.add(x, x0)
        return pn.ops.sum(x)

    plain = best_time(lambda: chain(x0), 5) / n
    traced = best_time(lambda: pn.grad(chain)(x0), 5) / n
    return plain * 1e6, traced * 1e6


def tiny_data(batch=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, 32)).astype(np.float32), rng.integers(0, 10, batch)


def purenet_steps(x, y, steps, recurrent=False):
    import purenet as pn
    if recurrent:
        model = pn.serial(pn.LSTM(8), pn.Dense(2))
    else:
        model = pn.serial(pn.Dense(64, "relu"), pn.Dense(64, "relu"), pn.Dense(16, "relu"),
                          pn.Dense(10))
    _, params, state = model.init(pn.key(0), x.shape[1:])
    opt = pn.optim.sgd(0.01, momentum=0.9)
    opt_state = opt.init(params)
    start = time.perf_counter()
    for _ in range(steps):
        _, grads, state = pn.loss_and_grads(model, "softmax_cross_entropy", params, state, x, y)
        updates, opt_state = opt.update(grads, opt_state, params)
        params = pn.optim.apply_updates(params, updates)
    return steps / (time.perf_counter() - start)


class _LastStep:
    """PyTorch's LSTM(4 -> 8) then dense 2 on the last step, as one module."""

    def __new__(cls):
        import torch

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm, self.dense = torch.nn.LSTM(4, 8, batch_first=True), torch.nn.Linear(8, 2)

            def forward(self, x):
                return self.dense(self.lstm(x)[0][:, -1])
        return Net()


def torch_steps(x, y, steps, recurrent=False):
    import torch
    torch.manual_seed(0)
    nn = torch.nn
    if recurrent:
        model = _LastStep()
    else:
        model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                              nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model(xt), yt).backward()
        opt.step()
    return steps / (time.perf_counter() - start)


def fused_activation(rounds, steps=500):
    """µs per ``loss_and_grads`` of the tiny MLP with its ReLUs inside ``Dense`` (applied by
    ``linear`` in place) and as separate ``Activation`` layers, alternating, best of rounds."""
    import purenet as pn
    x, y = tiny_data()
    widths = (64, 64, 16)
    nets = {"fused": pn.serial(*[pn.Dense(w, "relu") for w in widths], pn.Dense(10)),
            "separate": pn.serial(*[layer for w in widths
                                    for layer in (pn.Dense(w), pn.Activation("relu"))],
                                  pn.Dense(10))}
    best = dict.fromkeys(nets, float("inf"))
    for _ in range(rounds):
        for name, net in nets.items():
            _, params, state = net.init(pn.key(0), x.shape[1:])
            start = time.perf_counter()
            for _ in range(steps):
                pn.loss_and_grads(net, "softmax_cross_entropy", params, state, x, y)
            best[name] = min(best[name], (time.perf_counter() - start) / steps * 1e6)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    print(f"{blas_threads.cpu_model()}; threads {args.threads}")
    try:
        plain, traced = primitive_overhead()
        print(f"ops.add on 4 floats: {plain:.2f} µs plain, {traced:.2f} µs recorded + "
              f"differentiated: {traced - plain:.2f} µs of engine per primitive")
    except AttributeError:
        print("(this version has no purenet.grad: primitive overhead not measured)")
    fused = fused_activation(args.rounds)
    print(f"tiny MLP loss_and_grads, ReLU inside Dense: {fused['fused']:.0f} µs, as separate "
          f"layers: {fused['separate']:.0f} µs ({fused['fused'] / fused['separate']:.2f} of the time)")
    rng = np.random.default_rng(0)
    cases = {"tiny MLP step (32-64-64-16-10, batch 64)": (*tiny_data(), False),
             "tiny LSTM step (8 units, 32 steps, batch 64)": (
                 rng.standard_normal((64, 32, 4)).astype(np.float32), rng.integers(0, 2, 64), True)}
    for name, (x, y, recurrent) in cases.items():
        pure, ref = [], []
        for _ in range(args.rounds):      # alternate so neither always runs on a warmer machine
            ref.append(torch_steps(x, y, args.steps // (4 if recurrent else 1), recurrent))
            pure.append(purenet_steps(x, y, args.steps // (4 if recurrent else 1), recurrent))
        p, r = np.median(pure), np.median(ref)
        print(f"{name}: purenet {p:.0f} steps/s, pytorch {r:.0f} steps/s; "
              f"time ratio purenet/pytorch {r / p:.2f}")


if __name__ == "__main__":
    main()
