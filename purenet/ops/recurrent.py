"""Recurrent cells, the ``scan`` combinator, and fused whole-sequence kernels.

Three levels, each with its backward written beside its forward:

* Cell primitives, one time step, gates fused into one matmul per input
  (``x @ W_x + h @ W_h + b`` with the gates concatenated along the last axis):

      rnn_cell(x, h, W_x, W_h, b)          -> h'         tanh
      lstm_cell(x, h, c, W_x, W_h, b)      -> (h', c')   gates [i, f, g, o]
      gru_cell(x, h, W_x, W_h, b, b_h)     -> h'         gates [r, z, n]

  Shapes: x (B, F), h and c (B, H), W_x (F, G*H), W_h (H, G*H), b (G*H,).
  The gate orders and the GRU's reset-after form match PyTorch, so weights
  can be compared one to one.

* ``scan(cell, params, carry, xs)`` runs ANY step function over the time axis
  of ``xs`` (B, T, ...) with backpropagation through time. A step function
  follows the protocol

      step(params, carry, x_t) -> ((y_t, new_carry), backward)
      backward((dy_t, dnew_carry)) -> (dparams, dcarry, dx_t)

  and ``rnn_step``, ``lstm_step``, ``gru_step`` adapt the cell primitives to it
  (params ``{"W_x", "W_h", "b"}``, plus ``"b_h"`` for the GRU).

* ``rnn_sequence``, ``lstm_sequence``, ``gru_sequence``: the same computation
  as ``scan`` over the matching step, hand-specialised for speed and with the
  same signature, ``(params, carry, xs) -> ((ys, carry_T), backward)``. The
  input projection of every time step, bias included, is ONE matmul before
  the time loop (its gradients two matmuls after the backward loop), and the
  recurrent weight gradient is ONE matmul after it; each step's gates are
  stored gate-major, so the elementwise work runs on contiguous blocks; the
  sigmoids are ``0.5 + 0.5 tanh(z / 2)`` with the halving folded into the
  weights, so one ``tanh`` call activates all gates; the buffers come from a
  pool and go back to it once the backward pass that needs them is gone.
  (They return tuples of arrays of different shapes, which the primitive
  engine's shape check does not take, so they are plain functions in the
  primitive style.)

``carry`` is ``h`` (B, H) for the RNN and GRU, ``(h, c)`` for the LSTM. In a
sequence backward, ``dys`` and ``dcarry_T`` may be ``None`` (no gradient);
``input_grad=False`` tells a sequence kernel that nobody needs ``dxs``, which
it then skips (one matmul) and returns as ``None``.
Everything runs in the dtype of the parameters (float32 by default).
"""
import weakref

import numpy as np

from ..errors import ShapeError
from ..tree import tree_map
from .core import primitive


def _sigmoid(z):
    return 0.5 + 0.5 * np.tanh(0.5 * z)


# --- cell primitives: one time step ------------------------------------------

@primitive
def rnn_cell(x, h, W_x, W_h, b):
    """Vanilla RNN step ``h' = tanh(x W_x + h W_h + b)``: (B, F), (B, H) -> (B, H)."""
    h_new = np.tanh(x @ W_x + h @ W_h + b)

    def backward(g):
        # h' = tanh(z), z linear in x, h, W_x, W_h, b  =>  dz = g (1 - h'^2)
        dz = g * (1 - h_new * h_new)
        return dz @ W_x.T, dz @ W_h.T, x.T @ dz, h.T @ dz, dz.sum(axis=0)

    return h_new, backward


@primitive
def lstm_cell(x, h, c, W_x, W_h, b):
    """LSTM step: gates ``[i, f, g, o] = [σ, σ, tanh, σ](x W_x + h W_h + b)``,
    ``c' = f c + i g``, ``h' = o tanh(c')``. Returns ``(h', c')``, each (B, H)."""
    n = h.shape[1]
    z = x @ W_x + h @ W_h + b
    i, f, g, o = (_sigmoid(z[:, :n]), _sigmoid(z[:, n:2 * n]),
                  np.tanh(z[:, 2 * n:3 * n]), _sigmoid(z[:, 3 * n:]))
    c_new = f * c + i * g
    tc = np.tanh(c_new)
    h_new = o * tc

    def backward(grads):
        # h' = o tanh(c'): dc' gains dh' o (1 - tanh(c')^2); c' = f c + i g;
        # σ' = σ(1-σ), tanh' = 1 - tanh^2
        dh, dc = grads
        dc = dc + dh * o * (1 - tc * tc)
        dz = np.concatenate([dc * g * i * (1 - i), dc * c * f * (1 - f),
                             dc * i * (1 - g * g), dh * tc * o * (1 - o)], axis=1)
        return (dz @ W_x.T, dz @ W_h.T, dc * f, x.T @ dz, h.T @ dz, dz.sum(axis=0))

    return (h_new, c_new), backward


@primitive
def gru_cell(x, h, W_x, W_h, b, b_h):
    """GRU step (reset-after form): ``a = x W_x + b``, ``u = h W_h + b_h``,
    ``r, z = σ(a_r + u_r), σ(a_z + u_z)``, ``n = tanh(a_n + r u_n)``,
    ``h' = (1 - z) n + z h``: (B, F), (B, H) -> (B, H)."""
    m = h.shape[1]
    a = x @ W_x + b
    u = h @ W_h + b_h
    r = _sigmoid(a[:, :m] + u[:, :m])
    z = _sigmoid(a[:, m:2 * m] + u[:, m:2 * m])
    n = np.tanh(a[:, 2 * m:] + r * u[:, 2 * m:])
    h_new = n + z * (h - n)

    def backward(g):
        # h' = n + z (h - n): dn = g (1-z), dz = g (h-n), direct dh = g z;
        # n = tanh(a_n + r u_n): da_n = dn (1-n^2), dr = da_n u_n, du_n = da_n r
        da_n = g * (1 - z) * (1 - n * n)
        da_r = da_n * u[:, 2 * m:] * r * (1 - r)
        da_z = g * (h - n) * z * (1 - z)
        da = np.concatenate([da_r, da_z, da_n], axis=1)
        du = np.concatenate([da_r, da_z, da_n * r], axis=1)
        return (da @ W_x.T, g * z + du @ W_h.T, x.T @ da, h.T @ du,
                da.sum(axis=0), du.sum(axis=0))

    return h_new, backward


# --- the scan combinator ------------------------------------------------------

def scan(step, params, carry, xs):
    """Run ``step`` over the time axis of ``xs`` (B, T, ...), backpropagating through time.

    Returns ``((ys, carry_T), backward)`` with ``ys`` the per-step outputs stacked
    on axis 1 and ``backward((dys, dcarry_T)) -> (dparams, dcarry_0, dxs)``. The
    backward walks time in reverse, feeding each step the gradient of its output
    plus the carry gradient from the step after it, and sums the parameter
    gradients of all steps. ``dys`` or ``dcarry_T`` may be ``None`` (zeros).
    """
    _check_time_axis(xs)
    ys, backs = [], []
    for t in range(xs.shape[1]):
        (y, carry), back = step(params, carry, xs[:, t])
        ys.append(y)
        backs.append(back)
    carry_T = carry

    def backward(grads):
        dys, dcarry = grads
        dcarry = tree_map(np.zeros_like, carry_T) if dcarry is None else dcarry
        dparams, dxs = None, [None] * len(backs)
        for t in reversed(range(len(backs))):
            dy = np.zeros_like(ys[t]) if dys is None else dys[:, t]
            dp, dcarry, dxs[t] = backs[t]((dy, dcarry))
            dparams = tree_map(np.copy, dp) if dparams is None else tree_map(_add_into, dparams, dp)
        return dparams, dcarry, np.stack(dxs, axis=1)

    return (np.stack(ys, axis=1), carry_T), backward


def _add_into(total, part):
    total += part
    return total


def _check_time_axis(xs):
    if np.ndim(xs) < 2 or np.shape(xs)[1] == 0:
        raise ShapeError(f"expected a sequence of shape (batch, time, ...) with at least one "
                         f"time step, got shape {np.shape(xs)}")


def rnn_step(params, h, x):
    """``rnn_cell`` in the step protocol of ``scan``; the output is the new ``h``."""
    h_new, back = rnn_cell.vjp(x, h, params["W_x"], params["W_h"], params["b"])

    def backward(grads):
        dy, dh = grads
        dx, dh0, dwx, dwh, db = back(dy + dh)
        return {"W_x": dwx, "W_h": dwh, "b": db}, dh0, dx

    return (h_new, h_new), backward


def lstm_step(params, carry, x):
    """``lstm_cell`` in the step protocol of ``scan``; carry ``(h, c)``, output ``h``."""
    (h_new, c_new), back = lstm_cell.vjp(x, *carry, params["W_x"], params["W_h"], params["b"])

    def backward(grads):
        dy, (dh, dc) = grads
        dx, dh0, dc0, dwx, dwh, db = back((dy + dh, dc))
        return {"W_x": dwx, "W_h": dwh, "b": db}, (dh0, dc0), dx

    return (h_new, (h_new, c_new)), backward


def gru_step(params, h, x):
    """``gru_cell`` in the step protocol of ``scan``; the output is the new ``h``."""
    h_new, back = gru_cell.vjp(x, h, params["W_x"], params["W_h"], params["b"], params["b_h"])

    def backward(grads):
        dy, dh = grads
        dx, dh0, dwx, dwh, db, dbh = back(dy + dh)
        return {"W_x": dwx, "W_h": dwh, "b": db, "b_h": dbh}, dh0, dx

    return (h_new, h_new), backward


# --- fused whole-sequence kernels ---------------------------------------------

def check_sequence(xs, params, carry_shapes):
    """Raise a ShapeError unless ``xs`` is (B, T, F) and each carry part is (B, H)."""
    n_in = params["W_x"].shape[0]
    if np.ndim(xs) != 3 or xs.shape[1] == 0 or xs.shape[2] != n_in:
        raise ShapeError(f"expected inputs of shape (batch, time >= 1, {n_in}), got {np.shape(xs)}")
    want = (xs.shape[0], params["W_h"].shape[0])
    for shape in carry_shapes:
        if tuple(shape) != want:
            raise ShapeError(f"initial state has shape {tuple(shape)}, expected {want} "
                             "(batch, units)")


_POOL = {}          # workspace key -> free workspaces (dicts of arrays)
_POOL_DEPTH = 2     # free workspaces kept per key
_POOL_KEYS = 16     # distinct keys kept (the oldest is dropped)


def _workspace(tag, xs, params, gates, **extra):
    """Scratch arrays for one forward/backward pair: ``(key, {name: array})``.

    Reused from an earlier pair whose backward is gone when one of the same shapes
    is free: fresh multi-megabyte arrays cost page faults on every call. Per step,
    gates are kept gate-major (``gates[t]`` is (G, B, H)) so that every elementwise
    operation runs on contiguous blocks.
    """
    batch, steps, n_in = xs.shape
    n, dtype = params["W_h"].shape[0], params["W_h"].dtype
    shapes = {"x_tm": (steps, batch, n_in + 1), "acts": (steps, batch, gates * n),
              "gates": (steps, gates, batch, n), "hs": (steps + 1, batch, n),
              "dz": (steps, batch, gates * n), "dx_tm": (steps * batch, n_in),
              "rec": (batch, gates * n), "d": (gates, batch, n), "slope": (gates, batch, n),
              "tmp": (batch, n), "tmp2": (batch, n), **extra}
    key = (tag, dtype.str, tuple(sorted(shapes.items())))
    free = _POOL.get(key)
    if free:
        return key, free.pop()
    return key, {name: np.empty(shape, dtype) for name, shape in shapes.items()}


def _recycle(backward, key, ws):
    """Return ``ws`` to the pool once ``backward`` can no longer be called."""
    def give_back():
        free = _POOL.setdefault(key, [])
        if len(free) < _POOL_DEPTH:
            free.append(ws)
        while len(_POOL) > _POOL_KEYS:
            _POOL.pop(next(iter(_POOL)))
    weakref.finalize(backward, give_back)
    return backward


def _project(ws, xs, W_x, b, scale):
    """Input projection of ALL steps in one matmul: ``acts = scale (x W_x + b)``, time-major.

    The bias rides in the matmul as a row of W against a column of ones in x.
    """
    x_tm, acts = ws["x_tm"], ws["acts"]
    np.copyto(x_tm[..., :-1], xs.transpose(1, 0, 2))
    x_tm[..., -1] = 1
    w_aug = np.concatenate([W_x, b[None]]) * scale
    np.matmul(x_tm.reshape(-1, x_tm.shape[2]), w_aug, out=acts.reshape(-1, acts.shape[2]))


def _project_backward(ws, W_x, dz, input_grad):
    """Gradients of the projection from dz (T, B, G): ``(dxs (B, T, F) or None, dW_x, db)``.

    ``[dW_x; db] = [x, 1]^T dz`` is one matmul, ``dx = dz W_x^T`` another.
    """
    x_tm, dx_tm = ws["x_tm"], ws["dx_tm"]
    dz = dz.reshape(-1, dz.shape[2])
    dxs = None
    if input_grad:
        np.matmul(dz, W_x.T, out=dx_tm)
        dxs = np.ascontiguousarray(dx_tm.reshape(x_tm.shape[:2] + (-1,)).transpose(1, 0, 2))
    dw_aug = x_tm.reshape(-1, x_tm.shape[2]).T @ dz
    return dxs, dw_aug[:-1], dw_aug[-1]


def _recurrent_weight_grad(hs, dz):
    """``dW_h = sum_t h_{t-1}^T dz_t``, ONE matmul for all steps; hs (T+1, B, H), dz (T, B, G)."""
    return hs[:-1].reshape(-1, hs.shape[2]).T @ dz.reshape(-1, dz.shape[2])


def _gate_vector(gates, values, dtype):
    """A per-gate constant, shaped (G, 1, 1) to broadcast over gate-major (G, B, H) blocks."""
    return np.array(values, dtype=dtype).reshape(gates, 1, 1)


def _gate_scale(n, gates, sigmoid_gates, dtype):
    """Per-column factor 0.5 on sigmoid gates (σ(z) = 0.5 + 0.5 tanh(z/2)), 1 elsewhere."""
    scale = np.ones((gates, n), dtype=dtype)
    scale[list(sigmoid_gates)] = 0.5
    return scale.reshape(-1)


def _by_gate(a, gates):
    """A (B, G*H) row-major array viewed gate-major, (G, B, H) (no copy)."""
    return a.reshape(a.shape[0], gates, -1).transpose(1, 0, 2)


def _grad_or_zeros(grad, like):
    """A fresh array holding ``grad``, or zeros shaped like ``like`` when it is None."""
    return np.zeros_like(like) if grad is None else np.array(grad, dtype=like.dtype)


def _time_major(dys):
    return None if dys is None else dys.transpose(1, 0, 2)


def _outputs(hs):
    """ys (B, T, H) as a new contiguous array, from the time-major hs (T+1, B, H)."""
    return np.ascontiguousarray(hs[1:].transpose(1, 0, 2))


def rnn_sequence(params, h0, xs, input_grad=True):
    """``scan(rnn_step, params, h0, xs)``, fused: xs (B, T, F), h0 (B, H) -> ys (B, T, H)."""
    W_x, W_h = params["W_x"], params["W_h"]
    check_sequence(xs, params, [np.shape(h0)])
    key, ws = _workspace("rnn", xs, params, 1)
    _project(ws, xs, W_x, params["b"], 1.0)
    acts, hs, rec = ws["acts"], ws["hs"], ws["rec"]
    hs[0] = h0
    for t in range(len(acts)):
        np.matmul(hs[t], W_h, out=rec)
        np.add(acts[t], rec, out=hs[t + 1])
        np.tanh(hs[t + 1], out=hs[t + 1])

    def backward(grads):
        # h_t = tanh(z_t)  =>  dz_t = dh_t (1 - h_t^2);  dh_{t-1} = dz_t W_h^T
        dys, dh_T = grads
        dys_tm, dz, slope = _time_major(dys), ws["dz"], ws["tmp"]
        dh = _grad_or_zeros(dh_T, hs[0])
        W_hT = np.ascontiguousarray(W_h.T)
        for t in reversed(range(len(dz))):
            if dys_tm is not None:
                dh += dys_tm[t]
            np.multiply(hs[t + 1], hs[t + 1], out=slope)
            np.subtract(1, slope, out=slope)
            np.multiply(dh, slope, out=dz[t])
            np.matmul(dz[t], W_hT, out=dh)
        dxs, dwx, db = _project_backward(ws, W_x, dz, input_grad)
        return {"W_x": dwx, "W_h": _recurrent_weight_grad(hs, dz), "b": db}, dh, dxs

    return (_outputs(hs), hs[-1].copy()), _recycle(backward, key, ws)


def lstm_sequence(params, carry, xs, input_grad=True):
    """``scan(lstm_step, params, (h0, c0), xs)``, fused: xs (B, T, F) -> ys (B, T, H), (h, c)."""
    W_x, W_h = params["W_x"], params["W_h"]
    h0, c0 = carry
    check_sequence(xs, params, [np.shape(h0), np.shape(c0)])
    n, dt = W_h.shape[0], W_h.dtype
    steps, batch = xs.shape[1], xs.shape[0]
    key, ws = _workspace("lstm", xs, params, 4, cs=(steps + 1, batch, n), tanh_c=(steps, batch, n))
    scale = _gate_scale(n, 4, (0, 1, 3), dt)
    _project(ws, xs, W_x, params["b"], scale)        # pre-activations, sigmoid gates halved
    ws["hs"][0], ws["cs"][0] = h0, c0                  # hs[t], cs[t] hold h_{t-1}, c_{t-1}
    _lstm_forward_steps(ws, W_h * scale)

    def backward(grads):
        # see _lstm_backward_steps for the per-step derivation; then one matmul per weight
        dys, dcarry = grads
        dh_T, dc_T = (None, None) if dcarry is None else dcarry
        dh, dc = _grad_or_zeros(dh_T, ws["hs"][0]), _grad_or_zeros(dc_T, ws["cs"][0])
        _lstm_backward_steps(ws, W_h, _time_major(dys), dh, dc)
        dxs, dwx, db = _project_backward(ws, W_x, ws["dz"], input_grad)
        dwh = _recurrent_weight_grad(ws["hs"], ws["dz"])
        return {"W_x": dwx, "W_h": dwh, "b": db}, (dh, dc), dxs

    hs, cs = ws["hs"], ws["cs"]
    return (_outputs(hs), (hs[-1].copy(), cs[-1].copy())), _recycle(backward, key, ws)


def _lstm_forward_steps(ws, W_hs):
    """The LSTM time loop: gates [i, f, g, o], ``c = f c_prev + i g``, ``h = o tanh(c)``."""
    acts, gates, hs, cs, tanh_c, rec, ig = (ws[k] for k in ("acts", "gates", "hs", "cs", "tanh_c",
                                                            "rec", "tmp"))
    half = _gate_vector(4, [0.5, 0.5, 1, 0.5], W_hs.dtype)
    shift = _gate_vector(4, [0.5, 0.5, 0, 0.5], W_hs.dtype)
    for t in range(len(acts)):
        np.matmul(hs[t], W_hs, out=rec)
        rec += acts[t]
        gt = gates[t]                                  # [i, f, g, o], each (B, H)
        np.tanh(_by_gate(rec, 4), out=gt)
        gt *= half                                     # σ(z) = 0.5 + 0.5 tanh(z/2)
        gt += shift
        np.multiply(gt[1], cs[t], out=cs[t + 1])
        np.multiply(gt[0], gt[2], out=ig)
        cs[t + 1] += ig
        np.tanh(cs[t + 1], out=tanh_c[t])
        np.multiply(gt[3], tanh_c[t], out=hs[t + 1])


def _lstm_backward_steps(ws, W_h, dys_tm, dh, dc):
    """Walk time in reverse, filling ``ws["dz"]``; ``dh``, ``dc`` end as the gradients of h0, c0.

    h = o tanh(c), c = f c_prev + i g:  dc += dh o (1 - tanh(c)^2);
    d[i, f, g, o] = [dc g, dc c_prev, dc i, dh tanh(c)];  dz = d * [σ', σ', tanh', σ']
    with σ' = σ(1-σ), tanh' = 1 - g^2;  dc_prev = dc f;  dh_prev = dz W_h^T.
    """
    gates, cs, tanh_c, dz, d, slope, tmp = (ws[k] for k in ("gates", "cs", "tanh_c", "dz", "d",
                                                            "slope", "tmp2"))
    W_hT = np.ascontiguousarray(W_h.T)
    for t in reversed(range(len(dz))):
        (i, f, g, o), tc = gates[t], tanh_c[t]
        if dys_tm is not None:
            dh += dys_tm[t]
        np.multiply(tc, tc, out=tmp)
        np.subtract(1, tmp, out=tmp)
        tmp *= o
        tmp *= dh
        dc += tmp
        np.multiply(dc, g, out=d[0])
        np.multiply(dc, cs[t], out=d[1])
        np.multiply(dc, i, out=d[2])
        np.multiply(dh, tc, out=d[3])
        np.subtract(1, gates[t], out=slope)
        slope *= gates[t]
        np.multiply(g, g, out=slope[2])
        np.subtract(1, slope[2], out=slope[2])
        np.multiply(d, slope, out=_by_gate(dz[t], 4))
        dc *= f
        np.matmul(dz[t], W_hT, out=dh)


def gru_sequence(params, h0, xs, input_grad=True):
    """``scan(gru_step, params, h0, xs)``, fused: xs (B, T, F), h0 (B, H) -> ys (B, T, H)."""
    W_x, W_h = params["W_x"], params["W_h"]
    check_sequence(xs, params, [np.shape(h0)])
    m, dt = W_h.shape[0], W_h.dtype
    steps, batch = xs.shape[1], xs.shape[0]
    key, ws = _workspace("gru", xs, params, 3, us=(steps, 3, batch, m), da_n=(steps, batch, m))
    scale = _gate_scale(m, 3, (0, 1), dt)
    _project(ws, xs, W_x, params["b"], scale)        # a = x W_x + b, r and z columns halved
    ws["hs"][0] = h0
    _gru_forward_steps(ws, W_h * scale, (params["b_h"] * scale).reshape(3, 1, m))

    def backward(grads):
        # see _gru_backward_steps for the per-step derivation; then one matmul per weight
        dys, dh_T = grads
        dh = _grad_or_zeros(dh_T, ws["hs"][0])
        _gru_backward_steps(ws, W_h, _time_major(dys), dh)
        du = ws["dz"]
        dwh = _recurrent_weight_grad(ws["hs"], du)
        dbh = du.reshape(-1, 3 * m).sum(axis=0)
        du[:, :, 2 * m:] = ws["da_n"]                   # du becomes da (only the n part differs)
        dxs, dwx, db = _project_backward(ws, W_x, du, input_grad)
        return {"W_x": dwx, "W_h": dwh, "b": db, "b_h": dbh}, dh, dxs

    return (_outputs(ws["hs"]), ws["hs"][-1].copy()), _recycle(backward, key, ws)


def _gru_forward_steps(ws, W_hs, b_hs):
    """The GRU time loop: ``u = h W_h + b_h``, ``[r, z] = σ(a + u)``, ``n = tanh(a_n + r u_n)``,
    ``h' = n + z (h - n)``; r and z columns of ``a``, ``W_hs``, ``b_hs`` come halved."""
    acts, gates, us, hs, rec, tmp = (ws[k] for k in ("acts", "gates", "us", "hs", "rec", "tmp"))
    for t in range(len(acts)):
        np.matmul(hs[t], W_hs, out=rec)
        u, gt, a = us[t], gates[t], _by_gate(acts[t], 3)    # gate-major (3, B, H)
        np.add(_by_gate(rec, 3), b_hs, out=u)
        rz = gt[:2]                                    # σ(z) = 0.5 + 0.5 tanh(z/2)
        np.add(a[:2], u[:2], out=rz)
        np.tanh(rz, out=rz)
        rz *= 0.5
        rz += 0.5
        np.multiply(gt[0], u[2], out=tmp)
        np.add(a[2], tmp, out=gt[2])
        np.tanh(gt[2], out=gt[2])
        np.subtract(hs[t], gt[2], out=hs[t + 1])
        hs[t + 1] *= gt[1]
        hs[t + 1] += gt[2]


def _gru_backward_steps(ws, W_h, dys_tm, dh):
    """Walk time in reverse, filling ``ws["dz"]`` with du and ``ws["da_n"]``; ``dh`` ends as
    the gradient of h0.

    h' = n + z (h - n), n = tanh(a_n + r u_n):
      da_n = dh (1-z)(1-n^2)        du_z = da_z = dh (h-n) z(1-z)
      du_r = da_r = da_n u_n r(1-r)    du_n = da_n r    dh_prev = dh z + du W_h^T
    """
    gates, us, hs, du, d, da_n = (ws[k] for k in ("gates", "us", "hs", "dz", "d", "da_n"))
    one_minus_z, tmp, dh_next = ws["tmp"], ws["tmp2"], ws["slope"][0]
    W_hT = np.ascontiguousarray(W_h.T)
    for t in reversed(range(len(du))):
        r, z, n = gates[t]
        if dys_tm is not None:
            dh += dys_tm[t]
        np.subtract(1, z, out=one_minus_z)
        np.multiply(n, n, out=tmp)
        np.subtract(1, tmp, out=tmp)
        tmp *= dh
        np.multiply(tmp, one_minus_z, out=da_n[t])
        np.subtract(hs[t], n, out=tmp)
        tmp *= dh
        tmp *= one_minus_z
        np.multiply(tmp, z, out=d[1])
        np.subtract(1, r, out=tmp)
        tmp *= r
        tmp *= us[t, 2]
        np.multiply(tmp, da_n[t], out=d[0])
        np.multiply(da_n[t], r, out=d[2])
        np.copyto(_by_gate(du[t], 3), d)
        np.matmul(du[t], W_hT, out=dh_next)
        np.multiply(dh, z, out=tmp)
        np.add(dh_next, tmp, out=dh)
