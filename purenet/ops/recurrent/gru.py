"""The GRU (reset-after form, PyTorch's) over a whole sequence, as one primitive.

    gru_sequence(xs, h0, W_x, W_h, b, b_h) -> (ys, h_T)
    a = x_t W_x + b,   u = h_{t-1} W_h + b_h          (gates [r, z, n] side by side)
    r = σ(a_r + u_r),  z = σ(a_z + u_z),  n = tanh(a_n + r u_n)
    h_t = (1 - z) n + z h_{t-1},   ys[:, t] = h_t

Shapes: xs (B, T, F), h0 (B, H), W_x (F, 3H), W_h (H, 3H), b and b_h (3H,);
ys (B, T, H), h_T (B, H). It computes ``scan(reference.gru_step, ...)`` (to
rounding), fused (see ``common`` for the layout and the tricks); the r and z
columns of the weights and biases are negated so their sigmoids are one
``exp``. Everything runs in the dtype of ``W_h``. The backward skips ``dxs``
(one matmul) when ``xs`` needs no gradient.
"""
import numpy as np

from . import common
from ..core import primitive
from ..linear import column_sums
from .workspace import release_with


@primitive
def gru_sequence(xs, h0, W_x, W_h, b, b_h):
    """Run a GRU over xs (B, T, F) from h0 (B, H): ``(ys (B, T, H), h_T (B, H))``."""
    xs, h0 = np.asarray(xs), np.asarray(h0)
    common.check_sequence("gru_sequence", xs, W_x, W_h, {"b": b, "b_h": b_h}, [h0], gates=3)
    m, steps, batch = W_h.shape[0], xs.shape[1], xs.shape[0]
    key, ws = common.take_workspace("gru", xs, W_h, 3, us=(steps, 3, batch, m),
                                    da_n=(steps, batch, m), factors=(steps, 3, batch, m))
    scale = common.gate_scale(m, (-1, -1, 1), W_h.dtype)
    common.project(ws, xs, W_x, b, scale)           # a = x W_x + b, r and z columns negated
    hs = ws["hs"]
    hs[0] = h0
    _forward_steps(ws, W_h * scale, (b_h * scale).reshape(3, 1, m))

    def backward(g, needed):
        # per step see _backward_steps; du and da differ only in the n gate (da_n vs r da_n)
        dys, dh_T = g
        dh = common.grad_or_zeros(dh_T, hs[0])
        _backward_steps(ws, W_h, common.time_major(dys), dh, needed[1])
        du = ws["dz"]
        dwh = common.recurrent_weight_grad(hs, du) if needed[3] else None
        dbh = column_sums(du.reshape(-1, 3 * m)) if needed[5] else None
        du[:, :, 2 * m:] = ws["da_n"]                  # du becomes da
        dxs, dwx, db = common.projection_grads(ws, W_x, du, needed[0], needed[2] or needed[4])
        return dxs, (dh if needed[1] else None), dwx, dwh, db, dbh

    return (common.outputs(hs), hs[-1].copy()), release_with(backward, key, ws)


def _forward_steps(ws, W_hs, b_hs):
    """The time loop: ``u = h W_h + b_h``, ``[r, z] = σ(a + u)``, ``n = tanh(a_n + r u_n)``,
    ``h' = n + z (h - n)``; the r and z columns of ``acts``, ``W_hs``, ``b_hs`` come negated
    (``common.squash``)."""
    acts, gates, us, hs, rec, tmp = (ws[k] for k in ("acts", "gates", "us", "hs", "rec", "tmp"))
    with np.errstate(over="ignore"):                   # exp -> inf activates to exactly 0
        for t in range(len(acts)):
            np.matmul(hs[t], W_hs, out=rec)
            u, gt, a = us[t], gates[t], common.by_gate(acts[t], 3)     # gate-major (3, B, H)
            np.add(common.by_gate(rec, 3), b_hs, out=u)
            rz = gt[:2]
            np.add(a[:2], u[:2], out=rz)
            np.exp(rz, out=rz)
            common.squash(rz, 1)                           # σ(z) = 1 / (1 + e^-z)
            np.multiply(gt[0], u[2], out=tmp)
            np.add(a[2], tmp, out=gt[2])
            common.tanh_into(gt[2], gt[2])
            np.subtract(hs[t], gt[2], out=hs[t + 1])
            hs[t + 1] *= gt[1]
            hs[t + 1] += gt[2]


def _step_factors(ws, steps):
    """The factors of the backward that the forward fixed, for a ``slice`` of steps:

        factors[t] = [(1-z)(1-n^2), (h-n) z(1-z), u_n r(1-r)]        (3, B, H)

    so that per step ``da_n = dh factors[0]``, ``du_z = dh factors[1]``,
    ``du_r = da_n factors[2]`` (see ``_backward_steps``)."""
    gates, us, h_prev, factors = (ws[k][steps] for k in ("gates", "us", "hs", "factors"))
    r, z, n = (gates[:, k] for k in range(3))
    a_n, dz_, dr_ = (factors[:, k] for k in range(3))
    np.multiply(n, n, out=a_n)
    np.subtract(1, a_n, out=a_n)                        # 1 - n^2
    np.subtract(1, z, out=dz_)
    a_n *= dz_                                          # (1 - z)(1 - n^2)
    dz_ *= z                                            # z(1 - z)
    np.subtract(h_prev, n, out=dr_)
    dz_ *= dr_                                          # (h - n) z(1 - z)
    np.subtract(1, r, out=dr_)
    dr_ *= r
    dr_ *= us[:, 2]                                     # u_n r(1 - r)


def _backward_steps(ws, W_h, dys_tm, dh, need_h0):
    """Walk time in reverse, filling ``ws["dz"]`` with du and ``ws["da_n"]``; ``dh`` ends as
    the gradient of h0 (its last update is skipped unless ``need_h0``).

    h' = n + z (h - n), n = tanh(a_n + r u_n):
      da_n = dh (1-z)(1-n^2)        du_z = da_z = dh (h-n) z(1-z)
      du_r = da_r = da_n u_n r(1-r)    du_n = da_n r    dh_prev = dh z + du W_h^T
    The factors that do not depend on the gradient come from ``_step_factors``.
    """
    gates, du, da_n, factors = (ws[k] for k in ("gates", "dz", "da_n", "factors"))
    tmp, dh_next = ws["tmp"], ws["tmp2"]
    du_by_gate = common.by_gate(du, 3)                              # (T, 3, B, H)
    W_hT = np.ascontiguousarray(W_h.T)
    for steps in common.reversed_chunks(len(du), gates[0].nbytes):
        _step_factors(ws, steps)
        for t in reversed(range(steps.start, steps.stop)):
            if dys_tm is not None:
                dh += dys_tm[t]
            np.multiply(dh, factors[t, 0], out=da_n[t])
            np.multiply(dh, factors[t, 1], out=du_by_gate[t, 1])
            np.multiply(da_n[t], factors[t, 2], out=du_by_gate[t, 0])
            np.multiply(da_n[t], gates[t, 0], out=du_by_gate[t, 2])
            if t or need_h0:
                np.matmul(du[t], W_hT, out=dh_next)
                np.multiply(dh, gates[t, 1], out=tmp)
                np.add(dh_next, tmp, out=dh)
