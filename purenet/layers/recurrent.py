"""Recurrent layers: a cell run over the time axis, differentiated through time by the engine.

Inputs are ``(batch, time, features)``; ``in_shape`` is ``(time, features)``
(``time`` may be ``None``: any length works at apply time).

    SimpleRNN(units, return_sequences=False, stateful=False, ...)    kind "simple_rnn"
    LSTM(units, forget_bias=1.0, return_sequences=False, ...)        kind "lstm"
    GRU(units, return_sequences=False, stateful=False, ...)          kind "gru"
    Recurrent(cell, return_sequences=False, stateful=False)          any ``Cell``, yours too
    Bidirectional(layer)                                             kind "bidirectional"
    reset_states(state)

A layer runs its cell's ``sequence`` (for the built-in cells, a fused kernel of
``purenet.ops.recurrent``) or, when the cell has none, ``scan`` over its
``step``, a plain function of primitives that needs no backward. The output is
every step's output ``(batch, time, units)`` with ``return_sequences=True``,
else the last one ``(batch, units)``. Stacking is plain ``serial``: give every
recurrent layer but the last ``return_sequences=True``.

Initialisers: input weights ``w_x_init`` (glorot uniform), recurrent weights
``w_h_init`` (orthogonal), each drawn per gate block; biases ``b_init`` (zeros,
and the GRU's hidden bias ``b_h_init``). Bias initialisers get ``fan_in=units``:
PyTorch draws every RNN weight and bias from U(±1/sqrt(units)), so
``b_init="torch"`` gives PyTorch's biases (and ``w_h_init="torch"`` its
recurrent weights; its input weights too only when features == units, since
``w_x_init`` reads its fan-in from the weight's own shape).

State: the initial carry is zeros unless the layer's state holds one under
``"carry"`` (``h``, or ``(h, c)`` for the LSTM, each ``(batch, units)``).
With ``stateful=True`` the final carry is stored there, as plain arrays, and
starts the next call (truncated backpropagation through time: no gradient
flows into the previous batch); ``reset_states`` drops every carry of a state
tree, so the next batch starts from zeros again, at any batch size. A given
initial carry is differentiable like any other input: pass the state to
``purenet.grad`` with the params.
"""
from typing import Callable, NamedTuple, Optional

import numpy as np

from .. import initializers
from ..autodiff import stop_gradient
from ..errors import ConfigError, ShapeError
from ..ops import recurrent as ops
from ..ops import reference
from ..ops.numeric import concatenate
from ..random import split
from ..tree import tree_leaves, tree_map
from .base import Layer, layer_constructor


class Cell(NamedTuple):
    """A recurrent cell, as ``Recurrent`` runs it.

    init(key, n_in, dtype) -> params
    step(params, carry, x_t) -> (y_t, new_carry)    a plain function of primitives
    zero_carry(batch, dtype) -> carry
    units: the size of ``y_t``
    sequence: optional ``(params, carry, xs) -> (ys, carry_T)`` computing
        ``scan(step, params, carry, xs)`` faster (a fused kernel); ``None`` runs ``scan``.
    readout: optional ``carry -> y``, the output of the step that produced
        ``carry`` (``h`` for the built-in cells); with it, ``return_sequences=False``
        takes the last output from the final carry instead of slicing ``ys``, so
        no gradient for the whole ``ys`` is ever built.
    """
    init: Callable
    step: Callable
    zero_carry: Callable
    units: int
    sequence: Optional[Callable] = None
    readout: Optional[Callable] = None


def _gate_blocks(init, key, rows, units, gates, dtype):
    """One (rows, units) block per gate, drawn separately, side by side: (rows, gates*units)."""
    return np.concatenate([init(k, (rows, units), dtype) for k in split(key, gates)], axis=1)


def _gated_cell_params(key, n_in, units, gates, dtype, inits):
    """``{"W_x", "W_h", "b"}`` (and ``"b_h"`` when ``inits`` has a ``b_h`` initialiser).

    The weights' keys are the first two children of ``key``, as they were before
    biases had initialisers, so the weights drawn for a seed did not change.
    """
    keys = dict(zip(("W_x", "W_h", "b", "b_h"), split(key, 4)))
    params = {"W_x": _gate_blocks(initializers.get(inits["W_x"]), keys["W_x"], n_in, units,
                                  gates, dtype),
              "W_h": _gate_blocks(initializers.get(inits["W_h"]), keys["W_h"], units, units,
                                  gates, dtype)}
    for name in ("b", "b_h"):
        if name in inits:
            bias = initializers.get(inits[name])(keys[name], (gates * units,), dtype, fan_in=units)
            params[name] = np.array(bias, dtype=dtype)          # a fresh, writable array
    return params


def _check_units(kind, units):
    if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
        raise ConfigError(f"{kind}: units must be a positive integer, got {units!r}")


def _zero_h(units):
    return lambda batch, dtype: np.zeros((batch, units), dtype)


def _rnn_sequence(params, h0, xs):
    return ops.rnn_sequence(xs, h0, params["W_x"], params["W_h"], params["b"])


def _lstm_sequence(params, carry, xs):
    ys, h, c = ops.lstm_sequence(xs, *carry, params["W_x"], params["W_h"], params["b"])
    return ys, (h, c)


def _gru_sequence(params, h0, xs):
    return ops.gru_sequence(xs, h0, params["W_x"], params["W_h"], params["b"], params["b_h"])


def make_simple_rnn_cell(units, w_x_init="glorot_uniform", w_h_init="orthogonal", b_init="zeros"):
    """The vanilla (tanh) RNN as a ``Cell``: ``reference.rnn_step``, fused as ``rnn_sequence``."""
    inits = {"W_x": w_x_init, "W_h": w_h_init, "b": b_init}

    def init(key, n_in, dtype):
        return _gated_cell_params(key, n_in, units, 1, dtype, inits)

    return Cell(init, reference.rnn_step, _zero_h(units), units, _rnn_sequence, lambda h: h)


def make_lstm_cell(units, forget_bias=1.0, w_x_init="glorot_uniform", w_h_init="orthogonal",
                   b_init="zeros"):
    """The LSTM as a ``Cell``: ``reference.lstm_step``, fused as ``lstm_sequence``.

    The forget gate's bias is set to ``forget_bias`` after ``b_init`` has drawn the
    biases; ``forget_bias=None`` keeps ``b_init``'s values.
    """
    inits = {"W_x": w_x_init, "W_h": w_h_init, "b": b_init}

    def init(key, n_in, dtype):
        params = _gated_cell_params(key, n_in, units, 4, dtype, inits)
        if forget_bias is not None:
            params["b"][units:2 * units] = forget_bias
        return params

    def zero_carry(batch, dtype):
        return np.zeros((batch, units), dtype), np.zeros((batch, units), dtype)

    return Cell(init, reference.lstm_step, zero_carry, units, _lstm_sequence, lambda hc: hc[0])


def make_gru_cell(units, w_x_init="glorot_uniform", w_h_init="orthogonal", b_init="zeros",
                  b_h_init="zeros"):
    """The GRU (reset-after form, as PyTorch's) as a ``Cell``: ``reference.gru_step``,
    fused as ``gru_sequence``."""
    inits = {"W_x": w_x_init, "W_h": w_h_init, "b": b_init, "b_h": b_h_init}

    def init(key, n_in, dtype):
        return _gated_cell_params(key, n_in, units, 3, dtype, inits)

    return Cell(init, reference.gru_step, _zero_h(units), units, _gru_sequence, lambda h: h)


def _as_dtype(a, dtype):
    """``a`` in ``dtype``; a traced value stays traced (cast by a primitive)."""
    if getattr(a, "dtype", None) == dtype:
        return a
    return a.astype(dtype) if hasattr(a, "astype") else np.asarray(a, dtype)


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
    return tree_map(lambda a: _as_dtype(a, dtype), carry)


def _param_dtype(params, x):
    leaves = tree_leaves(params)
    if leaves:
        return leaves[0].dtype
    return x.dtype if x.dtype.kind == "f" else np.dtype(np.float32)


def _sequence_layer(kind, cell, return_sequences, stateful):
    """A Layer running ``cell`` over time; see the module docstring."""
    def run(params, carry, xs):
        if cell.sequence is not None:
            return cell.sequence(params, carry, xs)
        return ops.scan(cell.step, params, carry, xs)

    def init(key, in_shape, dtype):
        if len(in_shape) != 2:
            raise ShapeError(f"{kind} expects inputs of shape (batch, time, features), "
                             f"got per-example shape {in_shape}")
        out_shape = (in_shape[0], cell.units) if return_sequences else (cell.units,)
        return out_shape, cell.init(key, in_shape[1], dtype), {}

    def apply(params, state, x, train, key):
        x = x if hasattr(x, "ndim") else np.asarray(x)
        if x.ndim != 3 or x.shape[1] == 0:
            raise ShapeError("expected inputs of shape (batch, time >= 1, features), "
                             f"got {x.shape}")
        carry0 = _initial_carry(kind, cell, state, len(x), _param_dtype(params, x))
        ys, carry = run(params, carry0, x)
        new_state = {**state, "carry": stop_gradient(carry)} if stateful else state
        if return_sequences:
            return ys, new_state
        return (ys[:, -1] if cell.readout is None else cell.readout(carry)), new_state

    return Layer(kind, init, apply)


@layer_constructor
def Recurrent(cell, return_sequences=False, stateful=False):
    """Run any ``Cell`` over time (a user-defined one too; it is not saveable by name)."""
    if not isinstance(cell, Cell):
        raise ConfigError(f"Recurrent: expected a Cell, got {type(cell).__name__}")
    return _sequence_layer("recurrent", cell, return_sequences, stateful)


@layer_constructor
def SimpleRNN(units, return_sequences=False, stateful=False,
              w_x_init="glorot_uniform", w_h_init="orthogonal", b_init="zeros"):
    """Vanilla RNN ``h_t = tanh(x_t W_x + h_{t-1} W_h + b)``.

    Params ``{"W_x": (F, units), "W_h": (units, units), "b": (units,)}``; input
    weights glorot, recurrent weights orthogonal, bias ``b_init`` (zeros; drawn
    with ``fan_in=units``, see the module docstring).
    """
    _check_units("SimpleRNN", units)
    return _sequence_layer("simple_rnn", make_simple_rnn_cell(units, w_x_init, w_h_init, b_init),
                           return_sequences, stateful)


@layer_constructor
def LSTM(units, forget_bias=1.0, return_sequences=False, stateful=False,
         w_x_init="glorot_uniform", w_h_init="orthogonal", b_init="zeros"):
    """Long short-term memory, gates ``[i, f, g, o]`` (PyTorch's order).

    Params ``{"W_x": (F, 4 units), "W_h": (units, 4 units), "b": (4 units,)}``;
    the biases come from ``b_init`` (zeros; drawn with ``fan_in=units``), then
    the forget gate's are set to ``forget_bias`` (1.0 keeps memories early in
    training; ``None`` leaves ``b_init``'s values). Carry ``(h, c)``.
    """
    _check_units("LSTM", units)
    cell = make_lstm_cell(units, forget_bias, w_x_init, w_h_init, b_init)
    return _sequence_layer("lstm", cell, return_sequences, stateful)


@layer_constructor
def GRU(units, return_sequences=False, stateful=False,
        w_x_init="glorot_uniform", w_h_init="orthogonal", b_init="zeros", b_h_init="zeros"):
    """Gated recurrent unit, reset-after form (PyTorch's), gates ``[r, z, n]``:
    ``h_t = (1 - z) n + z h_{t-1}`` with ``n = tanh(x W_xn + b_n + r (h W_hn + b_hn))``.

    Params ``{"W_x": (F, 3 units), "W_h": (units, 3 units), "b": (3 units,),
    "b_h": (3 units,)}``; ``b`` from ``b_init``, ``b_h`` from ``b_h_init`` (both
    zeros; drawn with ``fan_in=units``).
    """
    _check_units("GRU", units)
    cell = make_gru_cell(units, w_x_init, w_h_init, b_init, b_h_init)
    return _sequence_layer("gru", cell, return_sequences, stateful)


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

    def apply(params, state, x, train, key):
        k_f, k_b = split(key) if key is not None else (None, None)
        y_f, s_f = fwd.apply(params["forward"], state.get("forward", {}), x,
                             train=train, key=k_f)
        y_b, s_b = bwd.apply(params["backward"], state.get("backward", {}), x[:, ::-1],
                             train=train, key=k_b)
        y = concatenate([y_f, y_b[:, ::-1] if y_b.ndim == 3 else y_b], axis=-1)
        return y, {"forward": s_f, "backward": s_b}

    return Layer("bidirectional", init, apply, children=(fwd, bwd))


def reset_states(state):
    """A copy of a state tree with every recurrent carry removed: the next call starts
    from zeros (at whatever batch size it brings)."""
    if isinstance(state, dict):
        return {k: reset_states(v) for k, v in state.items() if k != "carry"}
    if isinstance(state, (list, tuple)):
        return type(state)(reset_states(v) for v in state)
    return state
