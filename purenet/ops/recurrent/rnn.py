"""The vanilla (tanh) RNN over a whole sequence, as one primitive.

    rnn_sequence(xs, h0, W_x, W_h, b) -> (ys, h_T)
    h_t = tanh(x_t W_x + h_{t-1} W_h + b),   ys[:, t] = h_t

Shapes: xs (B, T, F), h0 (B, H), W_x (F, H), W_h (H, H), b (H,); ys (B, T, H),
h_T (B, H). It computes ``scan(reference.rnn_step, ...)`` (to rounding), fused
(see ``common`` for the layout and the tricks). Everything runs in the dtype
of ``W_h``. Its backward skips ``dxs`` (one matmul) when ``xs`` needs no
gradient, as for a first layer fed with data.
"""
import numpy as np

from . import common
from ..core import primitive
from .workspace import release_with


@primitive
def rnn_sequence(xs, h0, W_x, W_h, b):
    """Run a tanh RNN over xs (B, T, F) from h0 (B, H): ``(ys (B, T, H), h_T (B, H))``."""
    xs, h0 = np.asarray(xs), np.asarray(h0)
    common.check_sequence("rnn_sequence", xs, W_x, W_h, {"b": b}, [h0], gates=1)
    key, ws = common.take_workspace("rnn", xs, W_h, 1)
    common.project(ws, xs, W_x, b, 1.0)
    hs = ws["hs"]
    hs[0] = h0
    _forward_steps(ws, W_h)

    def backward(g, needed):
        # h_t = tanh(z_t), z_t = x_t W_x + h_{t-1} W_h + b  =>  dz_t = dh_t (1 - h_t^2),
        # dh_{t-1} = dz_t W_h^T; the weights' gradients sum over steps (common)
        dys, dh_T = g
        dh = common.grad_or_zeros(dh_T, hs[0])
        _backward_steps(ws, W_h, common.time_major(dys), dh, needed[1])
        dz = ws["dz"]
        dxs, dwx, db = common.projection_grads(ws, W_x, dz, needed[0], needed[2] or needed[4])
        dwh = common.recurrent_weight_grad(hs, dz) if needed[3] else None
        return dxs, (dh if needed[1] else None), dwx, dwh, db

    return (common.outputs(hs), hs[-1].copy()), release_with(backward, key, ws)


def _forward_steps(ws, W_h):
    """The time loop: ``hs[t+1] = tanh(acts[t] + hs[t] W_h)``."""
    acts, hs, rec = ws["acts"], ws["hs"], ws["rec"]
    with np.errstate(over="ignore"):                   # exp -> inf activates to exactly -1
        for t in range(len(acts)):
            np.matmul(hs[t], W_h, out=rec)
            np.add(acts[t], rec, out=hs[t + 1])
            common.tanh_into(hs[t + 1], hs[t + 1])


def _backward_steps(ws, W_h, dys_tm, dh, need_h0):
    """Walk time in reverse, filling ``ws["dz"]``; ``dh`` (B, H) ends as h0's gradient.

    dz_t = (dh_t + dys_t)(1 - h_t^2),  dh_{t-1} = dz_t W_h^T (skipped at t = 0
    unless ``need_h0``). The slopes 1 - h_t^2 go into dz first, a chunk of steps at a
    time (``common.reversed_chunks``), and each step multiplies its own in place.
    """
    hs, dz = ws["hs"], ws["dz"]
    W_hT = np.ascontiguousarray(W_h.T)
    for steps in common.reversed_chunks(len(dz), dz[0].nbytes):
        slopes, h = dz[steps], hs[steps.start + 1:steps.stop + 1]
        np.multiply(h, h, out=slopes)
        np.subtract(1, slopes, out=slopes)
        for t in reversed(range(steps.start, steps.stop)):
            if dys_tm is not None:
                dh += dys_tm[t]
            dz[t] *= dh
            if t or need_h0:
                np.matmul(dz[t], W_hT, out=dh)
