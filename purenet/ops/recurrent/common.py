"""What the fused sequence kernels (``rnn``, ``lstm``, ``gru``) share.

Layout. Shapes: xs (B, T, F), carries (B, H), ``W_x`` (F, G*H), ``W_h``
(H, G*H), biases (G*H,), with the G gates side by side along the last axis.
Inside a kernel everything is time-major and comes from one workspace (see
``workspace``):

    x_tm  (T, B, F+1)   the inputs with a column of ones (the bias rides in W)
    acts  (T, B, G*H)   the input projection of every step, bias included
    gates (T, G, B, H)  each step's activated gates, gate-major
    hs    (T+1, B, H)   hs[0] = h0, hs[t+1] = h after step t
    dz    (T, B, G*H)   the pre-activation gradients of every step

Tricks. The input projection of all steps is ONE matmul before the time loop,
and its gradients ``[dW_x; db]`` ONE matmul after the backward loop (``dxs``
another, skipped when nobody needs it); the recurrent weight gradient is ONE
matmul over all steps. Gate-major per-step buffers make every elementwise
operation run on contiguous blocks. Every activation goes through ``exp``
(``squash``): σ(z) = 1 / (1 + e^-z) and tanh(z) = 2 σ(2z) - 1, with the -1 or -2
folded into the weights (``gate_scale``), so one ``exp`` call activates all gates
of a step.
"""
import numpy as np

from ...errors import ShapeError
from . import workspace as pool


def check_sequence(name, xs, W_x, W_h, biases, carries, gates):
    """Raise a ShapeError naming the expected shapes unless the arguments fit together.

    ``biases`` maps names to bias vectors, ``carries`` is a sequence of initial states.
    """
    if np.ndim(W_h) != 2 or W_h.shape[1] != gates * W_h.shape[0]:
        raise ShapeError(f"{name}: W_h must have shape (units, {gates} * units), "
                         f"got {np.shape(W_h)}")
    units = W_h.shape[0]
    if np.ndim(W_x) != 2 or W_x.shape[1] != gates * units:
        raise ShapeError(f"{name}: W_x must have shape (features, {gates * units}), "
                         f"got {np.shape(W_x)}")
    for bias_name, b in biases.items():
        if np.shape(b) != (gates * units,):
            raise ShapeError(f"{name}: {bias_name} must have shape ({gates * units},), "
                             f"got {np.shape(b)}")
    n_in = W_x.shape[0]
    if np.ndim(xs) != 3 or xs.shape[1] == 0 or xs.shape[2] != n_in:
        raise ShapeError(f"{name}: expected inputs of shape (batch, time >= 1, {n_in}), "
                         f"got {np.shape(xs)}")
    want = (xs.shape[0], units)
    for carry in carries:
        if np.shape(carry) != want:
            raise ShapeError(f"{name}: initial state has shape {np.shape(carry)}, expected {want} "
                             "(batch, units)")


def take_workspace(tag, xs, W_h, gates, **extra):
    """``(key, ws)``: the buffers of the module docstring plus per-step scratch and ``extra``."""
    batch, steps, n_in = xs.shape
    n = W_h.shape[0]
    shapes = {"x_tm": (steps, batch, n_in + 1), "acts": (steps, batch, gates * n),
              "gates": (steps, gates, batch, n), "hs": (steps + 1, batch, n),
              "dz": (steps, batch, gates * n), "dx_tm": (steps * batch, n_in),
              "rec": (batch, gates * n), "tmp": (batch, n), "tmp2": (batch, n), **extra}
    return pool.take(tag, shapes, W_h.dtype)


def project(ws, xs, W_x, b, scale):
    """Fill ``ws["acts"]`` with ``scale (x W_x + b)`` for every step, in ONE matmul."""
    x_tm, acts = ws["x_tm"], ws["acts"]
    np.copyto(x_tm[..., :-1], xs.transpose(1, 0, 2))
    x_tm[..., -1] = 1
    w_aug = np.concatenate([W_x, b[None]]) * scale
    np.matmul(x_tm.reshape(-1, x_tm.shape[2]), w_aug, out=acts.reshape(-1, acts.shape[2]))


def input_gradient(ws, W_x, dz):
    """``dxs = dz W_x^T`` as (B, T, F), one matmul; dz (T, B, G*H) time-major."""
    x_tm, dx_tm = ws["x_tm"], ws["dx_tm"]
    np.matmul(dz.reshape(-1, dz.shape[2]), W_x.T, out=dx_tm)
    # always a copy: for a batch of one the transposed view is already contiguous, and
    # handing out the workspace itself would let the next call overwrite this gradient
    return np.array(dx_tm.reshape(x_tm.shape[:2] + (-1,)).transpose(1, 0, 2), order="C")


def projection_grads(ws, W_x, dz, need_x, need_w):
    """``(dxs, dW_x, db)`` of the projection from dz (T, B, G*H); None where not needed.

    ``[dW_x; db] = [x, 1]^T dz`` is one matmul; ``dxs`` is ``input_gradient``.
    """
    dxs = input_gradient(ws, W_x, dz) if need_x else None
    if not need_w:
        return dxs, None, None
    x_tm = ws["x_tm"]
    dw_aug = x_tm.reshape(-1, x_tm.shape[2]).T @ dz.reshape(-1, dz.shape[2])
    return dxs, dw_aug[:-1], dw_aug[-1]


def recurrent_weight_grad(hs, dz):
    """``dW_h = sum_t h_{t-1}^T dz_t``, ONE matmul for all steps; hs (T+1, B, H), dz (T, B, G*H)."""
    return hs[:-1].reshape(-1, hs.shape[2]).T @ dz.reshape(-1, dz.shape[2])


# The backward loops compute the factors the forward fixed (gate slopes and the like) for
# as many steps at a time as fill about this many bytes of gates, so they are still in
# cache when the loop reads them. ``bench/bench_lstm.py --sweep-chunks`` on a 2-core AMD
# EPYC whose speed moved by 30 % between passes, two sweeps: at B32 T64 H256 every size
# within 7 % of the best (42.0-44.9 ms) in the quiet one, 13 % in the slow one; at B64
# T32 H8 all steps at once took 0.83 and 0.95 of the time of two at a time. Against the
# previous per-step kernels (one-off A/B, not in bench/), 1 MB made the GRU at H512
# 11-25 % slower, hence 256 KB.
FACTOR_CHUNK_BYTES = 256 << 10


def reversed_chunks(steps, step_bytes):
    """Slices of ``range(steps)`` from the last, each of about ``FACTOR_CHUNK_BYTES`` of
    per-step buffers of ``step_bytes``."""
    chunk = max(1, FACTOR_CHUNK_BYTES // step_bytes)
    return [slice(max(0, stop - chunk), stop) for stop in range(steps, 0, -chunk)]


def gate_vector(gates, values, dtype):
    """A per-gate constant, shaped (G, 1, 1) to broadcast over gate-major (G, B, H) blocks."""
    return np.array(values, dtype=dtype).reshape(gates, 1, 1)


EXP_TANH_MIN_SIZE = 8192        # measured in bench/bench_tanh.py


def gate_scale(n, factors, dtype):
    """Per-column factor (G*H,): ``factors[k]`` on the H columns of gate k (-1 before a
    sigmoid and -2 before a tanh let ONE ``exp`` activate them, see ``squash``)."""
    return np.repeat(np.asarray(factors, dtype=dtype), n)


def squash(e, numerator):
    """In place: ``e = exp(-k z)`` becomes ``numerator / (1 + e)``.

    With k = 1 and numerator 1 that is σ(z); with k = 2 and numerator 2 it is
    tanh(z) + 1, since tanh(z) = 2 σ(2z) - 1. NumPy's float32 ``exp`` is so much
    cheaper than its ``tanh`` that even tanh costs about 0.7 of ``np.tanh`` this way
    on large arrays (``bench/bench_tanh.py``), so every activation goes through
    ``exp``. An ``e`` that overflowed to inf gives exactly 0 (call inside
    ``np.errstate(over="ignore")``).
    """
    e += 1
    np.divide(numerator, e, out=e)


def tanh_into(x, out):
    """``out = tanh(x)``: NumPy's ``tanh`` for arrays of fewer than ``EXP_TANH_MIN_SIZE``
    elements (one call beats five), else ``tanh_by_exp``."""
    if x.size < EXP_TANH_MIN_SIZE:
        np.tanh(x, out=out)
    else:
        tanh_by_exp(x, out)


def tanh_by_exp(x, out):
    """``out = tanh(x)`` as ``2 / (1 + exp(-2x)) - 1`` (see ``squash``)."""
    np.multiply(x, -2, out=out)
    np.exp(out, out=out)
    squash(out, 2)
    out -= 1


def by_gate(a, gates):
    """A (..., B, G*H) row-major array viewed gate-major, (..., G, B, H) (no copy)."""
    return np.swapaxes(a.reshape(a.shape[:-1] + (gates, -1)), -3, -2)


def grad_or_zeros(grad, like):
    """A fresh array holding ``grad``, or zeros shaped like ``like`` when it is None."""
    return np.zeros_like(like) if grad is None else np.array(grad, dtype=like.dtype)


def time_major(dys):
    """dys (B, T, H) viewed as (T, B, H), or None."""
    return None if dys is None else dys.transpose(1, 0, 2)


def outputs(hs):
    """ys (B, T, H) as a new contiguous array, from the time-major hs (T+1, B, H); a copy
    even for a batch of one, whose transposed view is contiguous (it must not alias the
    workspace, which the next call reuses)."""
    return np.array(hs[1:].transpose(1, 0, 2), order="C")
