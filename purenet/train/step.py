"""One step of training, as pure functions: loss and gradients, then an update."""
import numpy as np

from .. import losses as losses_module
from ..optim import apply_updates


def loss_and_grads(model, loss, params, state, x, y, *, key=None, train=True):
    """Loss of ``model`` on a batch and its gradients with respect to ``params``.

    Returns ``(loss_value: float, grads: tree shaped like params, new_state)``.
    """
    loss = losses_module.get(loss)
    pred, new_state, backward = model.apply(params, state, x, train=train, key=key,
                                            input_grad=False)  # x is data: no dx needed
    value, loss_backward = loss.vjp(pred, y)
    dpred, _ = loss_backward(1.0)
    grads, _ = backward(dpred)
    return float(value), grads, new_state


def train_step(model, loss, optimizer, params, state, opt_state, x, y, key=None):
    """Forward, backward and one optimizer update.

    Returns ``(params, state, opt_state, loss_value)``.
    """
    value, grads, state = loss_and_grads(model, loss, params, state, x, y, key=key)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return apply_updates(params, updates), state, opt_state, value
