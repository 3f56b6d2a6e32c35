"""Recurrence over a time axis: the ``scan`` combinator and the fused sequence kernels.

``scan(step, params, carry, xs)`` runs ANY step function over the time axis
of ``xs`` (B, T, ...):

    step(params, carry, x_t) -> (y_t, new_carry)

``step`` is a plain function of primitives (``@``, ``+``, ``*``, slicing,
``sigmoid``, ``tanh``, ...) with no backward of its own: inside ``grad`` the
engine records every step and backpropagates through time by itself. The
reference cells ``rnn_step``, ``lstm_step`` and ``gru_step`` of
``ops.reference`` are steps of this kind.

The fused kernels compute ``scan`` over those three steps as ONE primitive
each, with a hand-derived backward through the whole sequence, much faster:

    rnn_sequence(xs, h0, W_x, W_h, b)          -> (ys, h_T)        ``rnn``
    lstm_sequence(xs, h0, c0, W_x, W_h, b)     -> (ys, h_T, c_T)   ``lstm``
    gru_sequence(xs, h0, W_x, W_h, b, b_h)     -> (ys, h_T)        ``gru``

with xs (B, T, F), carries (B, H), ys (B, T, H) and the gates side by side in
the weights' last axis (gate orders [i, f, g, o] and [r, z, n], PyTorch's).
Their backward takes gradients for any subset of their outputs and returns
gradients for every argument that needs one, the initial carries included;
the input gradient ``dxs`` (one matmul) is skipped when ``xs`` is data.
"""
import numpy as np

from ...errors import ShapeError
from ..numeric import stack, unstack
from .gru import gru_sequence
from .lstm import lstm_sequence
from .rnn import rnn_sequence

__all__ = ["scan", "rnn_sequence", "lstm_sequence", "gru_sequence"]


def scan(step, params, carry, xs):
    """Run ``step`` over the time axis of ``xs`` (B, T, ...): ``(ys, carry_T)``.

    ``ys`` stacks the per-step outputs on axis 1, (B, T, ...); ``carry_T`` is the
    carry after the last step. Differentiable by the engine in ``params``,
    ``carry`` and ``xs`` (trees of arrays are fine for ``params`` and ``carry``).
    """
    _check_time_axis(xs)
    ys = []
    for x_t in unstack(xs, axis=1):
        y_t, carry = step(params, carry, x_t)
        ys.append(y_t)
    return stack(ys, axis=1), carry


def _check_time_axis(xs):
    if np.ndim(xs) < 2 or np.shape(xs)[1] == 0:
        raise ShapeError(f"expected a sequence of shape (batch, time, ...) with at least one "
                         f"time step, got shape {np.shape(xs)}")


