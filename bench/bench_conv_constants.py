"""The measurements behind the convolutions' tuned constants.

1. ``ops.patches.CHUNK_BYTES``: how many bytes of patch matrix (+ result) one chunk of
   the im2col pipeline builds before its matmul consumes it. Swept over sizes, timing
   forward + backward of the ``cnn`` recipe's three convolutions (batch 128).
2. ``ops.conv.TRANSPOSED_MAX_RATIO``: the input gradient's route. Both routes are
   exact; the transposed correlation copies ``kh*kw*C_out`` values per input pixel, the
   col2im adjoint adds ``kh*kw*C_in`` per output pixel in runs of only ``C_in``. Timed
   for 5x5 "same" convolutions at 14x14 with C_out / C_in from 1/4 to 16.
3. ``ops.spectral.use_spectral`` and its constants (``PATCH_COPY_COST``,
   ``TRANSFORM_COST``, ``SMALL_BATCH``): forward + backward of both routes over 48
   layer shapes (batch 32 and 128, 7x7 to 28x28 images, 3x3 and 5x5 kernels, 1 to 128
   channels), the routes alternating; for each, which was faster and which the rule
   takes, and what the rule's wrong choices cost in all.

Best of ``--repeats`` for every cell; the chosen values are marked.

    python bench/bench_conv_constants.py [--threads N] [--repeats 5] [--only chunks,routes,spectral]
"""
import argparse

import blas_threads

THREADS = blas_threads.apply()                   # before NumPy loads its BLAS

import numpy as np  # noqa: E402
from bench_conv import best_time  # noqa: E402

RECIPE_CONVS = [(1, 32, 5, 28, False), (32, 64, 5, 14, True), (64, 128, 3, 7, True)]
CHUNKS_MB = [0.5, 1, 2, 5, 10, 20, 40]
RATIOS = [(64, 16), (32, 32), (16, 32), (16, 64), (8, 64), (4, 64), (2, 64)]


def conv_case(c_in, c_out, k, hw, batch=128, seed=0):
    """(x, w, b, g) for a "same" conv, channels-last in memory like a conv's output."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, hw, hw, c_in), dtype=np.float32).transpose(0, 3, 1, 2)
    w = 0.1 * rng.standard_normal((k, k, c_in, c_out), dtype=np.float32)
    g = rng.standard_normal((batch, hw, hw, c_out), dtype=np.float32).transpose(0, 3, 1, 2)
    return x, w, np.zeros(c_out, np.float32), g


def forward_backward(case, input_gradient, method="direct"):
    from purenet.ops.conv import conv2d
    x, w, b, g = case
    _, back = conv2d.fn(x, w, b, padding="same", method=method)
    back(g, (input_gradient, True, True))


def sweep_chunks(repeats):
    from purenet.ops import patches
    chosen = patches.CHUNK_BYTES
    cases = [(conv_case(*c[:4]), c[4]) for c in RECIPE_CONVS]
    print("CHUNK_BYTES: ms for forward + backward of the cnn recipe's three convolutions")
    rows = []
    for mb in CHUNKS_MB:
        patches.CHUNK_BYTES = int(mb * (1 << 20))
        ms = 1e3 * sum(best_time(lambda: forward_backward(case, dx), repeats)
                       for case, dx in cases)
        rows.append((mb, ms))
    patches.CHUNK_BYTES = chosen
    fastest = min(ms for _, ms in rows)
    for mb, ms in rows:
        mark = "  <- chosen" if int(mb * (1 << 20)) == chosen else ""
        print(f"  {mb:5g} MB  {ms:7.1f} ms  ({ms / fastest:.2f} of the fastest){mark}")


def compare_routes(repeats):
    from purenet.ops import conv
    chosen = conv.TRANSPOSED_MAX_RATIO
    print("input gradient of a 5x5 'same' conv at 14x14, batch 128: ms per route")
    print("  C_in  C_out  ratio  transposed  col2im  faster")
    for c_in, c_out in RATIOS:
        case = conv_case(c_in, c_out, 5, 14)
        x, w, b, g = case
        _, back = conv.conv2d.fn(x, w, b, padding="same", method="direct")
        times = {}
        for route, ratio in (("transposed", float("inf")), ("col2im", -1.0)):
            conv.TRANSPOSED_MAX_RATIO = ratio
            times[route] = 1e3 * best_time(lambda: back(g, (True, False, False)), repeats)
        conv.TRANSPOSED_MAX_RATIO = chosen
        faster = min(times, key=times.get)
        taken = "transposed" if c_out <= chosen * c_in else "col2im"
        print(f"  {c_in:4d}  {c_out:5d}  {c_out / c_in:5.2f}  {times['transposed']:10.1f}  "
              f"{times['col2im']:6.1f}  {faster}{'' if faster == taken else '  (not the one taken)'}")
    print(f"  chosen: transposed up to C_out / C_in = {chosen:g}")


SPECTRAL_SHAPES = [(128, 28, 5), (128, 28, 3), (128, 14, 5), (128, 14, 3), (128, 7, 3), (32, 28, 3)]
SPECTRAL_CHANNELS = [(1, 32), (3, 16), (8, 16), (16, 16), (16, 32), (32, 32), (32, 64), (64, 64)]


def compare_spectral(repeats):
    from purenet.ops.geometry import Geometry
    from purenet.ops.spectral import use_spectral
    print("forward + backward (all gradients) of a 'same' conv: ms per route, and the rule's pick")
    print("  batch  image  kernel  C_in  C_out   direct  spectral  ratio  rule")
    agree, cost, total = 0, 0.0, 0.0
    for batch, hw, k in SPECTRAL_SHAPES:
        for c_in, c_out in SPECTRAL_CHANNELS:
            case = conv_case(c_in, c_out, k, hw, batch)
            times = {"direct": float("inf"), "spectral": float("inf")}
            for _ in range(2):                          # alternate: both see the same minutes
                for method in times:
                    t = best_time(lambda: forward_backward(case, True, method), repeats)
                    times[method] = min(times[method], 1e3 * t)
            spectral = use_spectral(Geometry((hw, hw), (k, k), padding="same"), batch, c_in, c_out)
            taken = times["spectral" if spectral else "direct"]
            agree += taken == min(times.values())
            cost, total = cost + taken - min(times.values()), total + min(times.values())
            print(f"  {batch:5d}  {hw:3d}^2  {k}x{k}   {c_in:4d}  {c_out:5d}  {times['direct']:7.1f}  "
                  f"{times['spectral']:8.1f}  {times['spectral'] / times['direct']:5.2f}  "
                  f"{'spectral' if spectral else 'direct'}"
                  f"{'' if taken == min(times.values()) else '  (the slower)'}")
    count = len(SPECTRAL_SHAPES) * len(SPECTRAL_CHANNELS)
    print(f"  the rule took the faster route in {agree} of {count}; its wrong picks cost "
          f"{cost:.1f} ms over {total:.1f} ms of best times ({100 * cost / total:.1f}%)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default="chunks,routes,spectral",
                        help="which of chunks, routes, spectral to measure")
    args = parser.parse_args()
    print(f"{blas_threads.cpu_model()}; threads {args.threads}")
    parts = {"chunks": sweep_chunks, "routes": compare_routes, "spectral": compare_spectral}
    for name in args.only.split(","):
        parts[name](args.repeats)


if __name__ == "__main__":
    main()
