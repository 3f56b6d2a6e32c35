"""What keeping freed memory in the process (``purenet.memory``) buys: the ``cnn`` recipe's
training step with and without it.

Each setting runs in a fresh process (``PURENET_KEEP_MEMORY=1`` / ``0``; the malloc
settings are process-wide), the two alternating; prints the median milliseconds and
the minor page faults per step/call after a warm-up.

    python bench/bench_memory.py [--steps 30] [--rounds 2] [--threads N]
"""
import argparse
import json
import os
import subprocess
import sys

import blas_threads

THREADS = blas_threads.apply()                   # before NumPy loads its BLAS


def measure(steps):
    """Runs inside the child process: JSON with the step's figures."""
    import resource
    import time

    import numpy as np

    from purenet import optim
    from purenet.random import key
    from purenet.recipes.fashion_mnist import cnn
    from purenet.train import train_step

    def timed(fn, count):
        times, faults = [], []
        for _ in range(count):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        return {"ms": 1e3 * float(np.median(times[3:])), "faults": float(np.mean(faults[3:]))}

    rng = np.random.default_rng(0)
    model = cnn()
    _, params, state = model.init(key(0), (1, 28, 28))
    opt = optim.adam(1e-3)
    box = [params, state, opt.init(params)]
    x = rng.standard_normal((128, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 128)

    def step():
        box[0], box[1], box[2], _ = train_step(model, "softmax_cross_entropy", opt, *box, x, y,
                                               key(1))

    print(json.dumps({"step": timed(step, steps)}))


def run_child(keep, steps, threads):
    env = dict(os.environ, PURENET_KEEP_MEMORY="1" if keep else "0")
    out = subprocess.run([sys.executable, __file__, "--child", "--steps", str(steps),
                          "--threads", str(threads)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return measure(args.steps)
    results = {True: [], False: []}
    for _ in range(args.rounds):
        for keep in (True, False):
            results[keep].append(run_child(keep, args.steps, args.threads))
    print(f"{blas_threads.cpu_model()}; threads {args.threads}; cnn recipe, batch 128")
    best = {keep: min(results[keep], key=lambda r: r["step"]["ms"])["step"] for keep in results}
    for keep, label in ((True, "kept"), (False, "returned")):
        print(f"step freed memory {label:8s}: {best[keep]['ms']:7.1f} ms, "
              f"{best[keep]['faults']:7.0f} page faults")
    print(f"step: kept / returned time {best[True]['ms'] / best[False]['ms']:.2f}")


if __name__ == "__main__":
    main()
