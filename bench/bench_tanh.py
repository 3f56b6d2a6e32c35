"""The measurement behind ``ops.recurrent.common.EXP_TANH_MIN_SIZE``.

The recurrent kernels compute ``tanh(x)`` either with NumPy's ``tanh`` (one call) or
as ``2 / (1 + exp(-2x)) - 1`` (five calls: NumPy's float32 ``exp`` costs about half
its ``tanh`` per element, but each extra call costs a fixed overhead). Timed for
float32 arrays of 256 to 131,072 elements (an LSTM's cell state is batch x units),
values ~ N(0, 2); best of ``--repeats`` rounds of ``--calls`` calls.

    python bench/bench_tanh.py [--threads N] [--repeats 7] [--calls 200]
"""
import argparse
import os
import sys

import blas_threads

THREADS = blas_threads.apply()                   # before NumPy loads its BLAS

import numpy as np  # noqa: E402
from bench_conv import best_time  # noqa: E402

# run from a checkout without installing
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SIZES = [256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 131072]


def per_call(fn, calls, repeats):
    """Best seconds per call of ``fn`` over ``repeats`` rounds of ``calls`` calls."""
    def round_of_calls():
        for _ in range(calls):
            fn()
    return best_time(round_of_calls, repeats) / calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    from purenet.ops.recurrent import common
    print(f"CPU: {blas_threads.cpu_model()}, NumPy {np.__version__}; "
          f"EXP_TANH_MIN_SIZE = {common.EXP_TANH_MIN_SIZE}")
    print(f"{'elements':>9} {'np.tanh µs':>11} {'via exp µs':>11} {'exp / tanh':>11}")
    rng = np.random.default_rng(0)
    for size in SIZES:
        x = (2 * rng.standard_normal(size)).astype(np.float32)
        out = np.empty_like(x)
        native = per_call(lambda: np.tanh(x, out=out), args.calls, args.repeats)
        via_exp = per_call(lambda: common.tanh_by_exp(x, out), args.calls, args.repeats)
        print(f"{size:9d} {native * 1e6:11.2f} {via_exp * 1e6:11.2f} {via_exp / native:11.2f}",
              flush=True)


if __name__ == "__main__":
    main()
