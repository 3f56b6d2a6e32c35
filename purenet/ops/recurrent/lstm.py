"""The LSTM over a whole sequence, as one primitive.

    lstm_sequence(xs, h0, c0, W_x, W_h, b) -> (ys, h_T, c_T)
    [i, f, g, o] = [σ, σ, tanh, σ](x_t W_x + h_{t-1} W_h + b)
    c_t = f c_{t-1} + i g,   h_t = o tanh(c_t),   ys[:, t] = h_t

Gate order [i, f, g, o] is PyTorch's. Shapes: xs (B, T, F), h0 and c0 (B, H),
W_x (F, 4H), W_h (H, 4H), b (4H,); ys (B, T, H), h_T and c_T (B, H). It
computes ``scan(reference.lstm_step, ...)`` (to rounding), fused (see
``common`` for the layout and the tricks): the weights' and bias's columns are
scaled so that one ``exp`` activates all four gates.
Everything runs in the dtype of ``W_h``. The backward skips ``dxs`` (one
matmul) when ``xs`` needs no gradient.
"""
import numpy as np

from . import common
from ..core import primitive
from .workspace import release_with


@primitive
def lstm_sequence(xs, h0, c0, W_x, W_h, b):
    """Run an LSTM over xs (B, T, F) from (h0, c0), each (B, H): ``(ys (B, T, H), h_T, c_T)``."""
    xs, h0, c0 = np.asarray(xs), np.asarray(h0), np.asarray(c0)
    common.check_sequence("lstm_sequence", xs, W_x, W_h, {"b": b}, [h0, c0], gates=4)
    n, steps, batch = W_h.shape[0], xs.shape[1], xs.shape[0]
    key, ws = common.take_workspace("lstm", xs, W_h, 4, cs=(steps + 1, batch, n),
                                    tanh_c=(steps, batch, n), slopes=(steps, 4, batch, n),
                                    carry=(steps, batch, n))
    scale = common.gate_scale(n, (-1, -1, -2, -1), W_h.dtype)
    common.project(ws, xs, W_x, b, scale)           # pre-activations, times -1 (-2 for g)
    hs, cs = ws["hs"], ws["cs"]
    hs[0], cs[0] = h0, c0                            # hs[t], cs[t] hold h_{t-1}, c_{t-1}
    _forward_steps(ws, W_h * scale)

    def backward(g, needed):
        # per step see _backward_steps; then the weights' gradients sum over steps (common)
        dys, dh_T, dc_T = g
        dh, dc = common.grad_or_zeros(dh_T, hs[0]), common.grad_or_zeros(dc_T, cs[0])
        need_carry = needed[1] or needed[2]
        _backward_steps(ws, W_h, common.time_major(dys), dh, dc, need_carry)
        dz = ws["dz"]
        dxs, dwx, db = common.projection_grads(ws, W_x, dz, needed[0], needed[3] or needed[5])
        dwh = common.recurrent_weight_grad(hs, dz) if needed[4] else None
        return (dxs, dh if needed[1] else None, dc if needed[2] else None, dwx, dwh, db)

    outs = (common.outputs(hs), hs[-1].copy(), cs[-1].copy())
    return outs, release_with(backward, key, ws)


def _forward_steps(ws, W_hs):
    """The time loop: gates [i, f, g, o], ``c = f c_prev + i g``, ``h = o tanh(c)``.

    ``W_hs`` and ``ws["acts"]`` come scaled by ``gate_scale`` (-1, -1, -2, -1).
    """
    acts, gates, hs, cs, tanh_c, rec, ig = (ws[k] for k in ("acts", "gates", "hs", "cs", "tanh_c",
                                                            "rec", "tmp"))
    numerator = common.gate_vector(4, [1, 1, 2, 1], W_hs.dtype)
    rec_by_gate = common.by_gate(rec, 4)
    with np.errstate(over="ignore"):                   # exp -> inf activates to exactly 0
        for t in range(len(acts)):
            np.matmul(hs[t], W_hs, out=rec)
            rec += acts[t]
            gt = gates[t]                                  # [i, f, g, o], each (B, H)
            np.exp(rec_by_gate, out=gt)
            common.squash(gt, numerator)                   # σ, σ, tanh + 1, σ
            gt[2] -= 1
            np.multiply(gt[1], cs[t], out=cs[t + 1])
            np.multiply(gt[0], gt[2], out=ig)
            cs[t + 1] += ig
            common.tanh_into(cs[t + 1], tanh_c[t])
            np.multiply(gt[3], tanh_c[t], out=hs[t + 1])


def _step_factors(ws, steps):
    """Everything the backward multiplies by that the forward fixed, for a ``slice`` of
    steps at once (a few array operations instead of many small ones per step):

        slopes[t] = [g σ'(i), c_prev σ'(f), i tanh'(g), tanh(c) σ'(o)]     (4, B, H)
        carry[t]  = o (1 - tanh(c)^2)                                       (B, H)

    with σ' = σ(1 - σ) and tanh' = 1 - g^2, so that per step
    ``dc += dh carry``, ``dz[i, f, g] = dc slopes[i, f, g]``, ``dz[o] = dh slopes[o]``.
    """
    gates, c_prev, tanh_c, slopes, carry = (ws[k][steps] for k in ("gates", "cs", "tanh_c",
                                                                    "slopes", "carry"))
    i, f, g, o = (gates[:, k] for k in range(4))
    np.subtract(1, gates, out=slopes)
    slopes *= gates                                     # σ' of each gate (g's is replaced)
    np.multiply(g, g, out=slopes[:, 2])
    np.subtract(1, slopes[:, 2], out=slopes[:, 2])      # tanh'(g) = 1 - g^2
    slopes[:, 0] *= g
    slopes[:, 1] *= c_prev
    slopes[:, 2] *= i
    slopes[:, 3] *= tanh_c
    np.multiply(tanh_c, tanh_c, out=carry)
    np.subtract(1, carry, out=carry)
    carry *= o


def _backward_steps(ws, W_h, dys_tm, dh, dc, need_carry):
    """Walk time in reverse, filling ``ws["dz"]``; ``dh``, ``dc`` end as the gradients of
    h0, c0 (their last update is skipped unless ``need_carry``).

    h = o tanh(c), c = f c_prev + i g:  dc += dh o (1 - tanh(c)^2);
    d[i, f, g, o] = [dc g, dc c_prev, dc i, dh tanh(c)];  dz = d * [σ', σ', tanh', σ']
    with σ' = σ(1-σ), tanh' = 1 - g^2;  dc_prev = dc f;  dh_prev = dz W_h^T.
    The factors that do not depend on the gradient come from ``_step_factors``.
    """
    gates, slopes, carry, dz, tmp = (ws[k] for k in ("gates", "slopes", "carry", "dz", "tmp2"))
    dz_by_gate = common.by_gate(dz, 4)                              # (T, 4, B, H)
    W_hT = np.ascontiguousarray(W_h.T)
    for steps in common.reversed_chunks(len(dz), gates[0].nbytes):
        _step_factors(ws, steps)
        for t in reversed(range(steps.start, steps.stop)):
            if dys_tm is not None:
                dh += dys_tm[t]
            np.multiply(dh, carry[t], out=tmp)
            dc += tmp
            np.multiply(dc, slopes[t, :3], out=dz_by_gate[t, :3])
            np.multiply(dh, slopes[t, 3], out=dz_by_gate[t, 3])
            if t or need_carry:
                dc *= gates[t, 1]
                np.matmul(dz[t], W_hT, out=dh)
