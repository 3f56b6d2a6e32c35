"""Convolution by the convolution theorem, step by step: the idea behind ``ops/spectral.py``.

1. One axis, by hand: a layer's correlation (padding p) computed directly, and as a
   product of discrete Fourier transforms on a canvas of n + p points.
2. The same in purenet: ``conv2d`` on both routes gives the same values and gradients.
3. Why it pays: multiply-adds per sample of both routes for a few layers, and the
   route ``method="auto"`` picks for each.

    python examples/convolution_theorem.py
"""
import numpy as np

import purenet as pn
from purenet.ops.conv import conv2d
from purenet.ops.geometry import Geometry
from purenet.ops.spectral import use_spectral


def correlate_directly(x, w, pad):
    """y[t] = Σ_r x[t + r - pad] w[r], x zero outside its n samples ("same" size output)."""
    padded = np.concatenate([np.zeros(pad), x, np.zeros(pad)])
    return np.array([padded[t:t + len(w)] @ w for t in range(len(x))])


def correlate_by_dft(x, w, pad):
    """The same correlation as a product of DFTs: x at canvas points 0..n-1, the kernel at
    its taps r - pad (mod L), and Y = X conj(W') on a canvas of L = n + pad points, the
    smallest on which no wrapped-around term reaches an output."""
    size = len(x) + pad
    canvas_x, canvas_w = np.zeros(size), np.zeros(size)
    canvas_x[:len(x)] = x
    canvas_w[(np.arange(len(w)) - pad) % size] = w
    y = np.fft.ifft(np.fft.fft(canvas_x) * np.conj(np.fft.fft(canvas_w))).real
    return y[:len(x)]


def one_axis():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(10), rng.standard_normal(5)
    direct, spectral = correlate_directly(x, w, 2), correlate_by_dft(x, w, 2)
    print(f"1. one axis, 10 samples, 5 taps, padding 2: canvas of 12 points, largest difference "
          f"{np.abs(direct - spectral).max():.1e}")
    return np.abs(direct - spectral).max()


def both_routes():
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((4, 8, 14, 14)), rng.standard_normal((5, 5, 8, 6)), np.zeros(6)
    outs = {}
    for method in ("direct", "spectral"):
        y, pullback = pn.vjp(conv2d.bind(padding="same", method=method), x, w, b)
        outs[method] = (y,) + pullback(np.ones_like(y))
    worst = max(np.abs(a - b).max() for a, b in zip(outs["direct"], outs["spectral"]))
    print(f"2. conv2d 8 -> 6 channels, 5x5 on 14x14, float64: values and gradients of the two "
          f"routes differ by at most {worst:.1e}")
    return worst


def costs():
    print("3. multiply-adds per sample: im2col's products, the spectral route's products and")
    print("   transforms (the cost model's estimate), and the route method='auto' takes at batch 128")
    print("   layer                      im2col   spectral: products  transforms   auto")
    for c_in, c_out, k, size in [(1, 32, 5, 28), (32, 64, 5, 14), (32, 64, 3, 14), (64, 128, 3, 7)]:
        geom = Geometry((size, size), (k, k), padding="same")
        l0, l1 = (n + max(p) for n, p in zip(geom.in_hw, geom.pads))
        f0, f1 = l0 // 2 + 1, l1                       # the half spectrum on one axis
        direct = size * size * k * k * c_in * c_out
        products = 4 * f0 * f1 * c_in * c_out          # one complex product = 4 real
        transforms = (c_in + c_out) * l0 * l1 * (f0 + f1)
        route = "spectral" if use_spectral(geom, 128, c_in, c_out) else "direct"
        print(f"   {c_in:3d} -> {c_out:3d}, {k}x{k} at {size:2d}x{size:2d}  {direct / 1e6:6.2f} M"
              f"   {products / 1e6:14.2f} M {transforms / 1e6:9.2f} M   {route}")
    print("   (one input channel: 32 output planes to transform cost more than the products save)")


def main():
    one_axis()
    both_routes()
    costs()


if __name__ == "__main__":
    main()
