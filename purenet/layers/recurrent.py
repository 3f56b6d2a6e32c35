"""Recurrent layers: a cell run over the time axis, with backpropagation through time.

Inputs are ``(batch, time, features)``; ``in_shape`` is ``(time, features)``
(``time`` may be ``None``: any length works at apply time).

    SimpleRNN(units, return_sequences=False, stateful=False)        kind "simple_rnn"
    LSTM(units, forget_bias=1.0, return_sequences=False, stateful=False)   kind "lstm"
    GRU(units, return_sequences=False, stateful=False)              kind "gru"
    Recurrent(cell, return_sequences=False, stateful=False)         any ``Cell``, yours too
    Bidirectional(layer)                                            kind "bidirectional"
    reset_states(state)

A layer runs its cell with ``purenet.ops.recurrent.scan`` or, for the built-in
cells, with the fused kernel that computes the same thing faster. The output
is every step's ``h`` ``(batch, time, units)`` with ``return_sequences=True``,
else the last one ``(batch, units)``. Stacking is plain ``serial``: give every
recurrent layer but the last ``return_sequences=True``.

State: the initial carry is zeros unless the layer's state holds one under
``"carry"`` (``h``, or ``(h, c)`` for the LSTM, each ``(batch, units)``).
With ``stateful=True`` the final carry is stored there and starts the next
call (truncated backpropagation through time: no gradient flows into the
previous batch); ``reset_states`` drops every carry of a state tree, so the
next batch starts from zeros again, at any batch size. A gradient with
respect to a given initial carry is returned by the sequence functions of
``purenet.ops.recurrent`` (``lstm_sequence(params, (h0, c0), xs)``).
"""
from typing import Callable, NamedTuple, Optional

import numpy as np

from .. import initializers
from ..errors import ConfigError, ShapeError
from ..ops import recurrent as ops
from ..random import split
from ..tree import tree_leaves, tree_map
from .base import Layer, layer_constructor


class Cell(NamedTuple):
    """A recurrent cell, as ``Recurrent`` runs it.

    init(key, n_in, dtype) -> params
    step(params, carry, x_t) -> ((y_t, carry), backward)     the step protocol of ``scan``
    zero_carry(batch, dtype) -> carry
    units: the size of ``y_t``
    sequence: optional ``(params, carry, xs, input_grad) -> ((ys, carry_T), backward)``
        computing ``scan(step, ...)`` faster (``dxs`` may be None when ``input_grad``
        is False); ``None`` runs ``scan``.
    """
    init: Callable
    step: Callable
    zero_carry: Callable
    units: int
    sequence: Optional[Callable] = None


def _gate_blocks(init, key, rows, units, gates, dtype):
    """One (rows, units) block per gate, drawn separately, side by side: (rows, gates*units)."""
    return np.concatenate([init(k, (rows, units), dtype) for k in split(key, gates)], axis=1)


def _gated_cell_params(key, n_in, units, gates, dtype, w_x_init, w_h_init):
    k_x, k_h = split(key)
    return {"W_x": _gate_blocks(initializers.get(w_x_init), k_x, n_in, units, gates, dtype),
            "W_h": _gate_blocks(initializers.get(w_h_init), k_h, units, units, gates, dtype),
            "b": np.zeros(gates * units, dtype)}


def _check_units(kind, units):
    if not isinstance(units, (int, np.integer)) or units <= 0:
        raise ConfigError(f"{kind}: units must be a positive integer, got {units!r}")


def make_simple_rnn_cell(units, w_x_init="glorot_uniform", w_h_init="orthogonal"):
    """The vanilla (tanh) RNN as a ``Cell``."""
    def init(key, n_in, dtype):
        return _gated_cell_params(key, n_in, units, 1, dtype, w_x_init, w_h_init)

    return Cell(init, ops.rnn_step, lambda batch, dtype: np.zeros((batch, units), dtype),
                units, ops.rnn_sequence)


def make_lstm_cell(units, forget_bias=1.0, w_x_init="glorot_uniform", w_h_init="orthogonal"):
    """The LSTM as a ``Cell``; the forget gate's bias starts at ``forget_bias``."""
    def init(key, n_in, dtype):
        params = _gated_cell_params(key, n_in, units, 4, dtype, w_x_init, w_h_init)
        params["b"][units:2 * units] = forget_bias
        return params

    def zero_carry(batch, dtype):
        return np.zeros((batch, units), dtype), np.zeros((batch, units), dtype)

    return Cell(init, ops.lstm_step, zero_carry, units, ops.lstm_sequence)


def make_gru_cell(units, w_x_init="glorot_uniform", w_h_init="orthogonal"):
    """The GRU (reset-after form, as PyTorch's) as a ``Cell``."""
    def init(key, n_in, dtype):
        params = _gated_cell_params(key, n_in, units, 3, dtype, w_x_init, w_h_init)
        params["b_h"] = np.zeros(3 * units, dtype)
        return params

    return Cell(init, ops.gru_step, lambda batch, dtype: np.zeros((batch, units), dtype),
                units, ops.gru_sequence)


def _initial_carry(kind, cell, state, batch, dtype):
    """The carry stored in ``state``, or zeros; a stored carry must fit the batch."""
    zeros = cell.zero_carry(batch, dtype)
    carry = state.get("carry")
    if carry is None:
        return zeros
    got = [np.shape(a) for a in tree_leaves(carry)]
    want = [np.shape(a) for a in tree_leaves(zeros)]
    if got != want:
        raise ShapeError(f"{kind}: the stored state has shapes {got} but this batch needs {want}; "
                         "a stateful layer needs the same batch size every call "
                         "(call reset_states(state) to start afresh)")
    return tree_map(lambda a: np.asarray(a, dtype), carry)


def _sequence_layer(kind, cell, return_sequences, stateful):
    """A Layer running ``cell`` over time; see the module docstring."""
    if cell.sequence is None:
        def run(params, carry, xs, input_grad):
            return ops.scan(cell.step, params, carry, xs)
    else:
        run = cell.sequence

    def init(key, in_shape, dtype):
        if len(in_shape) != 2:
            raise ShapeError(f"{kind} expects inputs of shape (batch, time, features), "
                             f"got per-example shape {in_shape}")
        out_shape = (in_shape[0], cell.units) if return_sequences else (cell.units,)
        return out_shape, cell.init(key, in_shape[1], dtype), {}

    def apply(params, state, x, train, key, input_grad):
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[1] == 0:
            raise ShapeError("expected inputs of shape (batch, time >= 1, features), "
                             f"got {x.shape}")
        dtype = tree_leaves(params)[0].dtype
        carry0 = _initial_carry(kind, cell, state, len(x), dtype)
        (ys, carry), back = run(params, carry0, x, input_grad)
        new_state = {**state, "carry": carry} if stateful else state

        def backward(dy):
            if return_sequences:
                dys = dy
            else:
                dys = np.zeros_like(ys)
                dys[:, -1] = dy
            dparams, _, dx = back((dys, None))
            return dparams, dx

        return (ys if return_sequences else ys[:, -1]), new_state, backward

    return Layer(kind, init, apply)


@layer_constructor
def Recurrent(cell, return_sequences=False, stateful=False):
    """Run any ``Cell`` over time (a user-defined one too; it is not saveable by name)."""
    if not isinstance(cell, Cell):
        raise ConfigError(f"Recurrent: expected a Cell, got {type(cell).__name__}")
    return _sequence_layer("recurrent", cell, return_sequences, stateful)


@layer_constructor
def SimpleRNN(units, return_sequences=False, stateful=False,
              w_x_init="glorot_uniform", w_h_init="orthogonal"):
    """Vanilla RNN ``h_t = tanh(x_t W_x + h_{t-1} W_h + b)``.

    Params ``{"W_x": (F, units), "W_h": (units, units), "b": (units,)}``; input
    weights glorot, recurrent weights orthogonal, bias zeros.
    """
    _check_units("SimpleRNN", units)
    return _sequence_layer("simple_rnn", make_simple_rnn_cell(units, w_x_init, w_h_init),
                           return_sequences, stateful)


@layer_constructor
def LSTM(units, forget_bias=1.0, return_sequences=False, stateful=False,
         w_x_init="glorot_uniform", w_h_init="orthogonal"):
    """Long short-term memory, gates ``[i, f, g, o]`` (PyTorch's order).

    Params ``{"W_x": (F, 4 units), "W_h": (units, 4 units), "b": (4 units,)}``;
    the forget gate's bias starts at ``forget_bias`` (1.0 keeps memories early in
    training), the other biases at zero. Carry ``(h, c)``.
    """
    _check_units("LSTM", units)
    return _sequence_layer("lstm", make_lstm_cell(units, forget_bias, w_x_init, w_h_init),
                           return_sequences, stateful)


@layer_constructor
def GRU(units, return_sequences=False, stateful=False,
        w_x_init="glorot_uniform", w_h_init="orthogonal"):
    """Gated recurrent unit, reset-after form (PyTorch's), gates ``[r, z, n]``:
    ``h_t = (1 - z) n + z h_{t-1}`` with ``n = tanh(x W_xn + b_n + r (h W_hn + b_hn))``.

    Params ``{"W_x": (F, 3 units), "W_h": (units, 3 units), "b": (3 units,),
    "b_h": (3 units,)}``.
    """
    _check_units("GRU", units)
    return _sequence_layer("gru", make_gru_cell(units, w_x_init, w_h_init),
                           return_sequences, stateful)


@layer_constructor
def Bidirectional(layer):
    """Run ``layer`` forwards and, with separate params, over the time-reversed input;
    concatenate their features: ``(batch, time, 2 units)`` or ``(batch, 2 units)``.

    Params and state ``{"forward": ..., "backward": ...}``. The backward run's
    sequence output is flipped back, so step ``t`` of both halves describes input
    step ``t``. A stateful layer cannot be wrapped (its reversed run would need
    the future).
    """
    if not isinstance(layer, Layer):
        raise ConfigError(f"Bidirectional wraps a recurrent layer, got {type(layer).__name__}")
    if layer.config and layer.config["args"].get("stateful"):
        raise ConfigError("Bidirectional cannot wrap a stateful layer")
    fwd, bwd = layer.renamed(f"{layer.name}_forward"), layer.renamed(f"{layer.name}_backward")

    def init(key, in_shape, dtype):
        k_f, k_b = split(key)
        out_shape, p_f, s_f = fwd.init(k_f, in_shape, dtype)
        _, p_b, s_b = bwd.init(k_b, in_shape, dtype)
        out_shape = tuple(out_shape[:-1]) + (2 * out_shape[-1],)
        return out_shape, {"forward": p_f, "backward": p_b}, {"forward": s_f, "backward": s_b}

    def apply(params, state, x, train, key, input_grad):
        k_f, k_b = split(key) if key is not None else (None, None)
        y_f, s_f, back_f = fwd.apply(params["forward"], state.get("forward", {}), x,
                                     train=train, key=k_f, input_grad=input_grad)
        y_b, s_b, back_b = bwd.apply(params["backward"], state.get("backward", {}), x[:, ::-1],
                                     train=train, key=k_b, input_grad=input_grad)
        sequences = y_b.ndim == 3
        units = y_f.shape[-1]
        y = np.concatenate([y_f, y_b[:, ::-1] if sequences else y_b], axis=-1)

        def backward(dy):
            dp_f, dx_f = back_f(dy[..., :units])
            dy_b = dy[..., units:]
            dp_b, dx_b = back_b(dy_b[:, ::-1] if sequences else dy_b)
            dx = None if dx_f is None or dx_b is None else dx_f + dx_b[:, ::-1]
            return {"forward": dp_f, "backward": dp_b}, dx

        return y, {"forward": s_f, "backward": s_b}, backward

    return Layer("bidirectional", init, apply, children=(fwd, bwd))


def reset_states(state):
    """A copy of a state tree with every recurrent carry removed: the next call starts
    from zeros (at whatever batch size it brings)."""
    if isinstance(state, dict):
        return {k: reset_states(v) for k, v in state.items() if k != "carry"}
    if isinstance(state, (list, tuple)):
        return type(state)(reset_states(v) for v in state)
    return state
