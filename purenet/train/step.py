"""One step of training, as pure functions: loss and gradients, then an update."""
from .. import losses as losses_module
from ..autodiff import value_and_grad
from ..errors import ConfigError
from ..ops.core import Traced
from ..optim import apply_updates


def loss_and_grads(model, loss, params, state, x, y, *, key=None, train=True):
    """Loss of ``model`` on a batch and its gradients with respect to ``params``.

    Returns ``(loss_value: float, grads: tree shaped like params, new_state)``. It is
    ``value_and_grad`` of loss ∘ model; ``x`` and ``y`` are data, never traced.
    """
    loss = losses_module.get(loss)

    def objective(p):
        pred, new_state = model.apply(p, state, x, train=train, key=key)
        value = loss(pred, y)
        if type(pred) is Traced and type(value) is not Traced:
            raise ConfigError(f"loss {getattr(loss, '__name__', loss)!r} returned a value that does "
                              "not depend on the prediction, so it has no gradient: a loss must be "
                              "a primitive or a function of primitives of the prediction")
        return value, new_state

    (value, new_state), grads = value_and_grad(objective, has_aux=True)(params)
    return float(value), grads, new_state


def train_step(model, loss, optimizer, params, state, opt_state, x, y, key=None):
    """Forward, backward and one optimizer update.

    Returns ``(params, state, opt_state, loss_value)``.
    """
    value, grads, state = loss_and_grads(model, loss, params, state, x, y, key=key)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return apply_updates(params, updates), state, opt_state, value
