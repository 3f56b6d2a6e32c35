"""Plain, loop-based convolution and pooling: slow on purpose, for tests only.

Every value and gradient here is computed straight from the definition with
Python loops over samples, output positions and kernel offsets, so it can be
read against the formulas and used to check the fast primitives in
``ops.conv`` and ``ops.pooling``. Same layouts as those: NCHW inputs, HWIO
kernels ``(kh, kw, C_in, C_out)``; padding given as ``((top, bottom), (left, right))``.

    y[n, o, p, q] = b[o] + Σ_{i, j, c} x_pad[n, c, p*s + i*d, q*s + j*d] * w[i, j, c, o]

Differentiating this sum term by term gives the backward passes below: every
term sends ``g[n, o, p, q] * w[i, j, c, o]`` to the input pixel it read (the
input gradient is a full correlation with the *flipped* kernel, which is what
the scatter below amounts to), and ``g[n, o, p, q] * x_pad[...]`` to the kernel
entry it used, summed over samples AND positions.

``conv_transpose2d`` is the transposed convolution written as the scatter it is.

It also holds reference recurrent cells (``rnn_step``, ``lstm_step``,
``gru_step``): one time step each, composed of generic primitives and
differentiated by the engine, the definition the fused kernels are checked
against. The built-in recurrent layers' cells use them as their ``step``.
"""
import numpy as np

from .activations import sigmoid, tanh


def _pad(x, pads, fill=0.0):
    (top, bottom), (left, right) = pads
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=fill)


def _out_size(size, k, stride, dilation):
    return (size - (k - 1) * dilation - 1) // stride + 1


def _crop(xp, pads, shape):
    (top, _), (left, _) = pads
    return xp[:, :, top:top + shape[2], left:left + shape[3]]


def conv2d(x, w, b, stride=(1, 1), pads=((0, 0), (0, 0)), dilation=(1, 1)):
    """Forward: ``(N, C, H, W)`` and ``(kh, kw, C, O)`` -> ``(N, O, H_out, W_out)``."""
    xp = _pad(x, pads)
    kh, kw, _, c_out = w.shape
    ho = _out_size(xp.shape[2], kh, stride[0], dilation[0])
    wo = _out_size(xp.shape[3], kw, stride[1], dilation[1])
    y = np.zeros((x.shape[0], c_out, ho, wo), dtype=np.result_type(x, w))
    for n in range(x.shape[0]):
        for p in range(ho):
            for q in range(wo):
                for i in range(kh):
                    for j in range(kw):
                        pixel = xp[n, :, p * stride[0] + i * dilation[0], q * stride[1] + j * dilation[1]]
                        y[n, :, p, q] += pixel @ w[i, j]      # Σ_c x[c] w[i, j, c, :]
    if b is not None:
        y += b[None, :, None, None]
    return y


def conv2d_grads(x, w, g, stride=(1, 1), pads=((0, 0), (0, 0)), dilation=(1, 1)):
    """``(dx, dw, db)`` for output gradient ``g``, term by term from the forward sum."""
    xp = _pad(x, pads)
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    kh, kw = w.shape[:2]
    for n in range(g.shape[0]):
        for p in range(g.shape[2]):
            for q in range(g.shape[3]):
                for i in range(kh):
                    for j in range(kw):
                        r, c = p * stride[0] + i * dilation[0], q * stride[1] + j * dilation[1]
                        dxp[n, :, r, c] += w[i, j] @ g[n, :, p, q]            # Σ_o w[i,j,:,o] g[o]
                        dw[i, j] += np.outer(xp[n, :, r, c], g[n, :, p, q])  # every n, p, q adds
    return _crop(dxp, pads, x.shape), dw, g.sum(axis=(0, 2, 3))


def conv_transpose2d(x, w, b, out_hw, stride=(1, 1), pads=((0, 0), (0, 0)), dilation=(1, 1)):
    """Transposed convolution by its definition, a scatter: every input pixel ``x[n, c, p, q]``
    adds ``x * w[i, j, :, c]`` at output position ``(p*s + i*d, q*s + j*d)`` of the padded
    output, which is then cropped to ``out_hw``. Kernel ``(kh, kw, C_out, C_in)``."""
    (top, bottom), (left, right) = pads
    kh, kw, c_out, _ = w.shape
    n, _, h, w_in = x.shape
    yp = np.zeros((n, c_out, out_hw[0] + top + bottom, out_hw[1] + left + right),
                  dtype=np.result_type(x, w))
    for s in range(n):
        for p in range(h):
            for q in range(w_in):
                for i in range(kh):
                    for j in range(kw):
                        row, col = p * stride[0] + i * dilation[0], q * stride[1] + j * dilation[1]
                        if row < yp.shape[2] and col < yp.shape[3]:
                            yp[s, :, row, col] += w[i, j] @ x[s, :, p, q]   # Σ_c w[i, j, :, c] x[c]
    y = yp[:, :, top:top + out_hw[0], left:left + out_hw[1]]
    return y if b is None else y + b[None, :, None, None]


def _windows(x, pool, stride, pads, fill):
    """Yield ``(n, c, p, q, rows, cols, window)`` for every pooling window of padded ``x``."""
    xp = _pad(x, pads, fill)
    ho = _out_size(xp.shape[2], pool[0], stride[0], 1)
    wo = _out_size(xp.shape[3], pool[1], stride[1], 1)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for p in range(ho):
                for q in range(wo):
                    r0, c0 = p * stride[0], q * stride[1]
                    yield n, c, p, q, r0, c0, xp[n, c, r0:r0 + pool[0], c0:c0 + pool[1]]


def _pool_out(x, pool, stride, pads):
    h = _out_size(x.shape[2] + sum(pads[0]), pool[0], stride[0], 1)
    w = _out_size(x.shape[3] + sum(pads[1]), pool[1], stride[1], 1)
    return np.zeros(x.shape[:2] + (h, w), dtype=x.dtype)


def max_pool2d(x, pool, stride, pads=((0, 0), (0, 0))):
    """Max of each window, padding as -inf."""
    y = _pool_out(x, pool, stride, pads)
    for n, c, p, q, _, _, window in _windows(x, pool, stride, pads, -np.inf):
        y[n, c, p, q] = window.max()
    return y


def max_pool2d_grad(x, g, pool, stride, pads=((0, 0), (0, 0))):
    """Each window's gradient goes to its FIRST maximum in row-major order (np.argmax's rule)."""
    dxp = _pad(np.zeros_like(x), pads)
    for n, c, p, q, r0, c0, window in _windows(x, pool, stride, pads, -np.inf):
        i, j = np.unravel_index(np.argmax(window), window.shape)
        dxp[n, c, r0 + i, c0 + j] += g[n, c, p, q]
    return _crop(dxp, pads, x.shape)


def avg_pool2d(x, pool, stride, pads=((0, 0), (0, 0))):
    """Mean of each window, padded zeros included in the count."""
    y = _pool_out(x, pool, stride, pads)
    for n, c, p, q, _, _, window in _windows(x, pool, stride, pads, 0.0):
        y[n, c, p, q] = window.sum() / window.size
    return y


def avg_pool2d_grad(x, g, pool, stride, pads=((0, 0), (0, 0))):
    """Each window spreads its gradient evenly over its pool[0]*pool[1] positions."""
    dxp = _pad(np.zeros_like(x), pads)
    for n, c, p, q, r0, c0, window in _windows(x, pool, stride, pads, 0.0):
        dxp[n, c, r0:r0 + pool[0], c0:c0 + pool[1]] += g[n, c, p, q] / window.size
    return _crop(dxp, pads, x.shape)


# --- recurrent cells ---------------------------------------------------------------
#
# One time step of each built-in recurrent cell, written as plain functions of
# generic primitives (``@``, ``+``, ``*``, slicing, ``sigmoid``, ``tanh``) with no
# backward of their own: the engine differentiates them. ``scan`` over these is
# the definition the fused kernels of ``ops.recurrent`` must reproduce, values and
# gradients alike. Each is a step of ``scan``: ``step(params, carry, x_t) ->
# (y_t, new_carry)``, with params ``{"W_x": (F, G*H), "W_h": (H, G*H), "b": (G*H,)}``
# (and ``"b_h"`` for the GRU), the G gates side by side in PyTorch's orders;
# x_t (B, F), carries (B, H).

def rnn_step(params, h, x_t):
    """``h' = tanh(x W_x + h W_h + b)``; output and carry are ``h'``."""
    h_new = tanh(x_t @ params["W_x"] + h @ params["W_h"] + params["b"])
    return h_new, h_new


def lstm_step(params, carry, x_t):
    """Gates ``[i, f, g, o] = [σ, σ, tanh, σ](x W_x + h W_h + b)``, ``c' = f c + i g``,
    ``h' = o tanh(c')``; carry ``(h, c)``, output ``h'``."""
    h, c = carry
    n = h.shape[1]
    z = x_t @ params["W_x"] + h @ params["W_h"] + params["b"]
    i, f = sigmoid(z[:, :n]), sigmoid(z[:, n:2 * n])
    g, o = tanh(z[:, 2 * n:3 * n]), sigmoid(z[:, 3 * n:])
    c_new = f * c + i * g
    h_new = o * tanh(c_new)
    return h_new, (h_new, c_new)


def gru_step(params, h, x_t):
    """Reset-after GRU, gates ``[r, z, n]``: ``a = x W_x + b``, ``u = h W_h + b_h``,
    ``r, z = σ(a_r + u_r), σ(a_z + u_z)``, ``n = tanh(a_n + r u_n)``,
    ``h' = (1 - z) n + z h``; output and carry are ``h'``."""
    m = h.shape[1]
    a = x_t @ params["W_x"] + params["b"]
    u = h @ params["W_h"] + params["b_h"]
    r = sigmoid(a[:, :m] + u[:, :m])
    z = sigmoid(a[:, m:2 * m] + u[:, m:2 * m])
    n = tanh(a[:, 2 * m:] + r * u[:, 2 * m:])
    h_new = (1 - z) * n + z * h
    return h_new, h_new
