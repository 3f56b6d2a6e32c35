"""Where a training step's time goes: per primitive, forward and backward, against the
machine's measured SGEMM peak.

For one training step (loss_and_grads + optimizer update) of the MLP benchmark, the
Fashion-MNIST ``cnn`` recipe and the LSTM benchmark, it prints a table of the time spent
in each primitive's forward and backward (the engine's hooks are wrapped with timers),
the share of the step in BLAS-bound primitives (matmul, linear, conv, recurrent
sequences), in the rest (elementwise, pooling, batch norm, losses), in the optimizer
update, and in everything else (the engine's bookkeeping, layer code); and the GFLOP/s
the BLAS-bound primitives reach, counted from their shapes, next to the SGEMM peak
measured here (float32, a 2048^3 product, same threads).

    python bench/profile_step.py [--threads N] [--steps 20] [--which mlp,cnn,lstm]
"""
import argparse
import collections
import time

import blas_threads

THREADS = blas_threads.apply()                   # before NumPy loads its BLAS

import numpy as np  # noqa: E402

BLAS_BOUND = ("linear", "matmul", "conv2d", "conv2d_max_pool2d", "conv1d", "conv_transpose2d", "lstm_sequence",
              "gru_sequence", "rnn_sequence")


def sgemm_peak(n=2048, repeats=5):
    """GFLOP/s of the best of ``repeats`` float32 n x n x n products."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def flops(name, shapes, needed=None):
    """Multiply-add FLOPs of a BLAS-bound primitive's forward (and, given ``needed``, its
    backward), from its arguments' shapes; 0 for anything else."""
    if name in ("linear", "matmul") and len(shapes[1]) == 2:
        rows, (n_in, n_out) = int(np.prod(shapes[0][:-1])), shapes[1]
        per = 2 * rows * n_in * n_out
    elif name in ("conv2d", "conv2d_max_pool2d"):
        (n, _, h, w), (kh, kw, c_in, c_out) = shapes[0], shapes[1]
        # upper bound for "same"/stride 1; on the spectral route (fewer multiply-adds)
        # this is the direct route's count, so the rate printed is an effective one
        per = 2 * n * h * w * kh * kw * c_in * c_out
    elif name.endswith("_sequence"):
        (b, t, f), (h, g) = shapes[0], shapes[4 if name == "lstm_sequence" else 3]
        per = 2 * b * t * (f + h) * g
    else:
        return 0
    if needed is None:
        return per
    return per * (int(needed[0]) + int(any(needed[1:])))     # dx, and the weights' gradients


class Timers:
    """Wraps the engine's two hooks: a primitive's recorded forward and a node's backward."""

    def __init__(self):
        from purenet.ops import core
        self.core, self.forward, self.backward = core, collections.Counter(), collections.Counter()
        self.flop, self.shapes = collections.Counter(), {}

    def __enter__(self):
        core, timers = self.core, self
        self.record, self.call_backward = core.Primitive._record, core._call_backward

        def record(prim, args, settings):
            start = time.perf_counter()
            out = timers.record(prim, args, settings)
            timers.forward[prim.name] += time.perf_counter() - start
            shapes = [np.shape(getattr(a, "value", a)) for a in args]
            timers.flop[prim.name] += flops(prim.name, shapes)
            timers.shapes[id(core.ACTIVE[-1].tape[-1])] = shapes
            return out

        def call_backward(node, g):
            start = time.perf_counter()
            grads = timers.call_backward(node, g)
            timers.backward[node.name] += time.perf_counter() - start
            shapes = timers.shapes.get(id(node))
            if shapes is not None:
                timers.flop[node.name] += flops(node.name, shapes, node.needed)
            return grads

        core.Primitive._record, core._call_backward = record, call_backward
        return self

    def __exit__(self, *exc):
        self.core.Primitive._record, self.core._call_backward = self.record, self.call_backward


def models():
    import purenet as pn
    from purenet.recipes.fashion_mnist import cnn
    rng = np.random.default_rng(0)
    mlp = (pn.serial(pn.Dense(256, "relu"), pn.Dense(128, "relu"), pn.Dense(10)),
           rng.random((128, 784), dtype=np.float32), rng.integers(0, 10, 128), (784,))
    conv = (cnn(), rng.random((128, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 128),
            (1, 28, 28))
    lstm = (pn.serial(pn.Embedding(65, 64), pn.LSTM(256, return_sequences=True), pn.Dense(65)),
            rng.integers(0, 65, (32, 64)), rng.integers(0, 65, (32, 64)), (64,))
    return {"mlp": mlp, "cnn": conv, "lstm": lstm}


def profile(name, model, x, y, in_shape, steps, peak):
    import purenet as pn
    _, params, state = model.init(pn.key(0), in_shape)
    opt = pn.optim.adam(1e-3)
    opt_state = opt.init(params)
    update_time = total = 0.0
    with Timers() as timers:
        for step in range(steps + 2):
            if step == 2:                                  # two warm-up steps
                timers.forward.clear(), timers.backward.clear(), timers.flop.clear()
                timers.shapes.clear()
                update_time = total = 0.0
            start = time.perf_counter()
            _, grads, state = pn.loss_and_grads(model, "softmax_cross_entropy", params, state, x, y,
                                                key=pn.random.fold_in(pn.key(1), step))
            mid = time.perf_counter()
            updates, opt_state = opt.update(grads, opt_state, params)
            params = pn.optim.apply_updates(params, updates)
            end = time.perf_counter()
            update_time += end - mid
            total += end - start
    report(name, timers, update_time / steps, total / steps, steps, peak)


def report(name, timers, update, total, steps, peak):
    names = sorted(set(timers.forward) | set(timers.backward),
                   key=lambda n: -(timers.forward[n] + timers.backward[n]))
    print(f"\n{name}: {total * 1e3:.1f} ms per step")
    print(f"  {'primitive':<22}{'forward ms':>11}{'backward ms':>12}{'share':>8}{'GFLOP/s':>9}")
    blas = rest = 0.0
    for n in names:
        f, b = timers.forward[n] / steps, timers.backward[n] / steps
        rate = timers.flop[n] / steps / (f + b) / 1e9 if timers.flop[n] else None
        print(f"  {n:<22}{f * 1e3:>11.2f}{b * 1e3:>12.2f}{(f + b) / total:>8.1%}"
              f"{'' if rate is None else f'{rate:9.1f}'}")
        if n in BLAS_BOUND:
            blas += f + b
        else:
            rest += f + b
    other = total - blas - rest - update
    flop = sum(timers.flop[n] for n in BLAS_BOUND) / steps
    print(f"  BLAS-bound {blas / total:.0%}, other primitives {rest / total:.0%}, optimizer "
          f"{update / total:.0%}, engine and layer code {other / total:.0%}")
    print(f"  BLAS-bound primitives reach {flop / blas / 1e9:.1f} GFLOP/s = "
          f"{flop / blas / 1e9 / peak:.0%} of the SGEMM peak; the whole step "
          f"{flop / total / 1e9 / peak:.0%}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--which", default="mlp,cnn,lstm")
    args = parser.parse_args()
    peak = sgemm_peak()
    print(f"{blas_threads.cpu_model()}; threads {args.threads}; SGEMM peak {peak:.0f} GFLOP/s")
    all_models = models()
    for name in args.which.split(","):
        profile(name, *all_models[name], args.steps, peak)


if __name__ == "__main__":
    main()
