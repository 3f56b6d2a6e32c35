"""One step of training, as pure functions: loss and gradients, then an update.

Nothing here keeps state: params, layer state and optimizer state go in and new
ones come out. ``with_pred=True`` also returns the model's output on the batch
(plain arrays, computed in training mode), which ``fit`` scores with the
training metrics at no extra forward pass.
"""
from .. import losses as losses_module
from ..autodiff import value_and_grad
from ..errors import ConfigError
from ..ops.core import Traced
from ..optim import apply_updates


def loss_and_grads(model, loss, params, state, x, y, *, key=None, train=True, with_pred=False):
    """Loss of ``model`` on a batch and its gradients with respect to ``params``.

    Returns ``(loss_value: float, grads: tree shaped like params, new_state)``, and
    the prediction last when ``with_pred``. It is ``value_and_grad`` of
    loss ∘ model; ``x`` and ``y`` are data, never traced.
    """
    loss = losses_module.get(loss)

    def objective(p):
        pred, new_state = model.apply(p, state, x, train=train, key=key)
        value = loss(pred, y)
        if type(pred) is Traced and type(value) is not Traced:
            raise ConfigError(f"loss {getattr(loss, '__name__', loss)!r} returned a value that does "
                              "not depend on the prediction, so it has no gradient: a loss must be "
                              "a primitive or a function of primitives of the prediction")
        return value, (new_state, pred)

    (value, (new_state, pred)), grads = value_and_grad(objective, has_aux=True)(params)
    if with_pred:
        return float(value), grads, new_state, pred
    return float(value), grads, new_state


def train_step(model, loss, optimizer, params, state, opt_state, x, y, key=None, *,
               with_pred=False):
    """Forward, backward and one optimizer update.

    Returns ``(params, state, opt_state, loss_value)``, and the prediction last when
    ``with_pred``.
    """
    value, grads, state, pred = loss_and_grads(model, loss, params, state, x, y, key=key,
                                               with_pred=True)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = apply_updates(params, updates)
    out = (params, state, opt_state, value)
    return out + (pred,) if with_pred else out
