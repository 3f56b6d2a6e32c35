"""Convolution through the discrete Fourier transform, the transforms done as small
matrix products: the route ``conv2d`` takes where it needs fewer operations (``use_spectral``).

The convolution theorem, on one axis (the 2-D case repeats it on the other). A layer's
correlation with stride ``s``, dilation ``d`` and leading padding ``p``,

    y[t] = Σ_r x[s t + d r - p] w[r],

is ``y[t] = c[s t]`` for the plain correlation ``c[j] = Σ_q x[j + q] w'[q]`` with the kernel
placed at its taps ``q = d r - p`` (``w'`` zero elsewhere). On a periodic canvas of
``L`` points the discrete Fourier transform turns correlations into products, one per
frequency ``u``:

    C[u] = X[u] · conj(W'[u])            X, W' the DFTs of x (at its pixels) and w' (at its taps)

and per frequency the sum over input channels is one complex matrix product
``(N x C_in)(C_in x C_out)``. For a 5x5 kernel on a 14x14 image that is 144 frequencies
(x 4 real multiply-adds) instead of 196 x 25 = 4,900 multiply-adds per channel pair.

Canvas. ``L = n + max(pad_before, pad_after)`` points on each axis is the smallest period
at which no wrapped-around term reaches an output: every offset ``q = j - m`` between
an input pixel ``m`` and an output position ``j`` that is not a tap stays more than a
period away from every tap.

Transforms. DFT matrices ``exp(-2πi u m / L)`` sampled only at the positions that hold
data (pixels, taps, strided outputs), so padding, stride and dilation cost nothing
and no canvas is ever built; a transform is one matmul per axis on a spatial-major
``(rows, cols, batch)`` array. The longer axis keeps only ``L // 2 + 1`` frequencies:
the data are real, so the others are complex conjugates of these (Hermitian
symmetry), and the inverse counts each kept frequency that stands for two twice.

Backward, with ``G`` the DFT of the output gradient placed at the output positions
(all three results real, read back at the positions each argument holds):

    dX  = G · W'              the adjoint of a correlation is a convolution
    dW' = Σ_n X · conj(G)     the correlation of x with g, read at the taps

Layout. The work is spatial-major, ``(H, W, N, C)``: the output comes back as an NCHW
view of that memory, so the next spectral convolution reads it without a copy, and
element-wise layers and pooling run over runs of N*C values.

Non-finite values. A NaN or inf anywhere in a sample's image reaches every output of
that sample (each frequency mixes all pixels), where im2col confines it to the windows
it falls in; ``fit`` refuses non-finite data and stops on a non-finite loss either way.

Memory. Each spectrum holds F0*F1 complex values per channel and sample, 1.2-1.7 times
the floats of the image it stands for (7x7 to 28x28 images with 3x3 or 5x5 kernels); the
input's is kept for the backward, where im2col keeps the padded input.
"""
from functools import lru_cache

import numpy as np

from ..errors import ConfigError
from .linear import column_sums


def _forward_dft(n_freq, positions, size, dtype):
    """``(n_freq, len(positions))``: exp(-2πi u m / size) for frequency u, position m."""
    u, m = np.arange(n_freq)[:, None], np.asarray(positions)[None, :]
    return np.exp(-2j * np.pi * u * m / size).astype(dtype)


def _inverse_dft(positions, n_freq, size, half, dtype):
    """``(len(positions), n_freq)``: the inverse DFT at ``positions``; with ``half`` the
    frequencies 1 .. (size-1)//2 count twice, standing for their conjugates too."""
    m, u = np.asarray(positions)[:, None], np.arange(n_freq)[None, :]
    weight = np.ones(n_freq)
    if half:
        weight[1:(size + 1) // 2] = 2.0
    return (np.exp(2j * np.pi * u * m / size) * weight / size).astype(dtype)


class _Axis:
    """One spatial axis of a spectral convolution: the transforms at the positions each
    array occupies on its canvas of ``size`` points (inputs, taps, outputs), keeping
    ``n_freq`` frequencies."""

    def __init__(self, size, n_freq, n_in, n_out, kernel, stride, dilation, pad_before, dtype):
        self.n_freq, half = n_freq, n_freq < size
        places = {"x": np.arange(n_in), "w": np.arange(kernel) * dilation - pad_before,
                  "y": np.arange(n_out) * stride}
        self.forward = {k: _forward_dft(n_freq, p, size, dtype) for k, p in places.items()}
        self.inverse = {k: _inverse_dft(p, n_freq, size, half, dtype) for k, p in places.items()}


def _canvas(geom):
    """The canvas ``(L0, L1)``, the axis that keeps half its frequencies (the longer),
    and the number of frequencies kept ``(F0, F1)``."""
    sizes = tuple(n + max(p) for n, p in zip(geom.in_hw, geom.pads))
    half = 0 if sizes[0] >= sizes[1] else 1
    kept = tuple(n // 2 + 1 if a == half else n for a, n in enumerate(sizes))
    return sizes, half, kept


# The cost model that picks the route, in multiply-add equivalents per sample, its
# constants fitted to the forward + backward times of both routes over 48 layer shapes
# (batch 32 and 128, 7x7 to 28x28 images, 3x3 and 5x5 kernels, 1 to 64 channels) on a
# 2-core AMD EPYC. bench/bench_conv_constants.py re-times them: there the rule took the
# faster route in 44 of 48 shapes, its wrong picks (all within 1.3x) costing 0.7% of the
# total time.
PATCH_COPY_COST = 16    # im2col: per patch value, its copies (forward and backward)
TRANSFORM_COST = 1      # a DFT matmul: per value and frequency
SMALL_BATCH = 128       # the per-frequency products (batch x C_in x C_out) run at half the
                        # speed of one big GEMM at this batch, at 1/3 at batch 64, ...


def use_spectral(geom, batch, c_in, c_out):
    """Whether the spectral route is expected to be faster than im2col for these shapes."""
    (l0, l1), _, (f0, f1) = _canvas(geom)
    (ho, wo), (kh, kw) = geom.out_hw, geom.kernel_hw
    direct = ho * wo * kh * kw * c_in * (c_out + PATCH_COPY_COST)
    products = 4 * f0 * f1 * c_in * c_out * (1 + SMALL_BATCH / batch)
    transforms = TRANSFORM_COST * (c_in + c_out) * l0 * l1 * (f0 + f1)
    return products + transforms < direct


METHODS = ("auto", "direct", "spectral")


def takes_spectral_route(method, geom, x, w, dtype):
    """Whether ``conv2d``'s ``method`` ("auto", "direct" or "spectral") means this route for
    these arguments; "auto" keeps integer data on the exact direct route. A ConfigError
    for any other ``method``."""
    if method not in METHODS:
        raise ConfigError(f"conv2d: method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "auto":
        return np.issubdtype(dtype, np.inexact) and use_spectral(geom, len(x), *w.shape[2:])
    return method == "spectral"


@lru_cache(maxsize=64)
def _axes(geom, dtype):
    """The two ``_Axis`` of a geometry, and the index of the one keeping half its frequencies."""
    sizes, half, kept = _canvas(geom)
    return tuple(_Axis(sizes[a], kept[a], geom.in_hw[a], geom.out_hw[a], geom.kernel_hw[a],
                       geom.stride[a], geom.dilation[a], geom.pads[a][0], dtype)
                 for a in (0, 1)), half


def _along(matrix, a, axis):
    """``matrix`` applied along axis 0 or 1 of ``a (P0, P1, B)``."""
    if axis == 0:
        return (matrix @ a.reshape(len(a), -1)).reshape((len(matrix),) + a.shape[1:])
    return np.matmul(matrix, a)


def spectrum(a, axes, half, place):
    """``a (P0, P1, B)`` real, at the positions ``place`` of both axes ->
    ``(F0 * F1, B)`` complex, its DFT (the half axis first: it takes the real input)."""
    other = 1 - half
    s = _along(axes[other].forward[place], _along(axes[half].forward[place], a, half), other)
    return s.reshape(-1, a.shape[2])


def image(s, axes, half, place):
    """The inverse of ``spectrum``: ``(F0 * F1, B)`` -> ``(P0, P1, B)`` real, at ``place``."""
    other = 1 - half
    s = s.reshape(axes[0].n_freq, axes[1].n_freq, -1)
    return _along(axes[half].inverse[place], _along(axes[other].inverse[place], s, other), half).real


def _real_result(a, dtype):
    """A transform's real result as a contiguous ``dtype`` array; rounded first when
    ``dtype`` is an integer type (the exact result is an integer)."""
    if not np.issubdtype(dtype, np.inexact):
        a = np.rint(a)
    return np.ascontiguousarray(a, dtype=dtype)


def spatial_major(x):
    """NCHW ``x`` -> its (H, W, N, C) array; no copy when that is already its memory order."""
    return np.ascontiguousarray(x.transpose(2, 3, 0, 1))


def spectral_conv2d(x, w, b, geom, dtype):
    """``(y, backward)`` of ``conv2d`` (same arguments, checked) by the convolution
    theorem; ``y`` is an NCHW view of spatial-major memory."""
    axes, half = _axes(geom, np.result_type(dtype, np.complex64).char)  # float32 -> complex64
    n, c_in, c_out = len(x), w.shape[2], w.shape[3]
    xs = spatial_major(x).astype(dtype, copy=False)          # (float16 is computed in complex64)
    x_hat = spectrum(xs.reshape(xs.shape[:2] + (-1,)), axes, half, "x").reshape(-1, n, c_in)
    w_hat = spectrum(w.astype(dtype, copy=False).reshape(w.shape[:2] + (-1,)), axes, half,
                     "w").reshape(-1, c_in, c_out)
    y = image(x_hat @ w_hat.conj(), axes, half, "y").reshape(geom.out_hw + (n, c_out))
    y = _real_result(y, dtype)
    if b is not None:
        y += b

    def backward(g, needed):
        # C = X conj(W')  =>  dX = G W',  dW' = Σ_n X conj(G)  (module docstring)
        gs = spatial_major(g)
        db = column_sums(gs.reshape(-1, c_out)) if needed[2] and b is not None else None
        if not (needed[0] or needed[1]):
            return None, None, db
        g_hat = spectrum(gs.reshape(gs.shape[:2] + (-1,)), axes, half, "y").reshape(-1, n, c_out)
        dx = dw = None
        if needed[0]:
            dx = image(g_hat @ w_hat.transpose(0, 2, 1), axes, half, "x")
            dx = _real_result(dx, dtype).reshape(geom.in_hw + (n, c_in))
            dx = dx.transpose(2, 3, 0, 1)
        if needed[1]:
            # X^T conj(G) = conj(X^H G): conjugate the smaller operand (and the small result)
            if c_in <= c_out:
                dw_hat = (x_hat.conj().transpose(0, 2, 1) @ g_hat).conj()
            else:
                dw_hat = x_hat.transpose(0, 2, 1) @ g_hat.conj()
            dw = _real_result(image(dw_hat, axes, half, "w"), dtype).reshape(w.shape)
        return dx, dw, db

    return y.transpose(2, 3, 0, 1), backward
