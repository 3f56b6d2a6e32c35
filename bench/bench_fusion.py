"""What serial's fusion of a convolution and the max pooling after it saves: a training
step of the Fashion-MNIST ``cnn`` recipe, its layers fused as ``serial`` runs them, against
the same layers with the fusion switched off, interleaved in one process (same params, same
batch; the two losses must agree).

    python bench/bench_fusion.py [--steps 30] [--threads N]
"""
import argparse
import time

import blas_threads

THREADS = blas_threads.apply()                   # before NumPy loads its BLAS

import numpy as np  # noqa: E402


def unfused(model):
    """The same layers in a serial that fuses nothing."""
    from purenet.layers import serial
    layers = []
    for layer in model.children:
        plain = layer.renamed(layer.name)
        plain.fuse = None
        layers.append(plain)
    return serial(*layers)


def step_fn(model, params, state, x, y):
    import purenet as pn
    from purenet.losses import softmax_cross_entropy

    def loss(p):
        out, _ = model.apply(p, state, x, train=True, key=pn.key(1))
        return softmax_cross_entropy(out, y)
    return lambda: pn.value_and_grad(loss)(params)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=THREADS)
    args = parser.parse_args()
    from purenet.random import key
    from purenet.recipes.fashion_mnist import cnn
    fused = cnn()
    _, params, state = fused.init(key(0), (1, 28, 28))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, args.batch)
    steps = {"fused": step_fn(fused, params, state, x, y),
             "one by one": step_fn(unfused(fused), params, state, x, y)}
    losses = {name: float(run()[0]) for name, run in steps.items()}
    assert np.isclose(*losses.values(), rtol=1e-5), losses
    times = {name: [] for name in steps}
    for _ in range(args.steps):
        for name, run in steps.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    print(f"{blas_threads.cpu_model()}; cnn recipe step, batch {args.batch}, threads "
          f"{args.threads}, {args.steps} interleaved steps each")
    for name, t in times.items():
        print(f"{name:>11}  best {1e3 * min(t):6.1f} ms  median {1e3 * np.median(t):6.1f} ms")
    best = min(times["fused"]) / min(times["one by one"])
    median = np.median(times["fused"]) / np.median(times["one by one"])
    print(f"fused / one by one: {best:.2f} (best), {median:.2f} (median)")


if __name__ == "__main__":
    main()
