"""Gradient checking: compare gradients from the engine with central differences.

The check is the dot-product test: for a random output cotangent ``u`` and a
random input direction ``v``, the backward pass must satisfy

    <backward(u), v>  ==  d/dε <u, f(x + ε v)>  ≈  (<u, f(x+εv)> - <u, f(x-εv)>) / 2ε

which costs two forward passes per direction for inputs of any shape, and
catches every error the full Jacobian would (for generic u and v). Use float64.
"""
import numpy as np

from .autodiff import vjp
from .tree import tree_leaves, tree_map, tree_vdot


def _random_like(rng, tree):
    return tree_map(lambda a: rng.standard_normal(np.shape(a)), tree)


def _is_differentiable(tree):
    leaves = tree_leaves(tree)
    return bool(leaves) and all(np.asarray(a).dtype.kind == "f" for a in leaves)


def _require_float64(name, args):
    for i, arg in enumerate(args):
        for leaf in tree_leaves(arg):
            if np.asarray(leaf).dtype == np.float32:
                raise TypeError(f"{name}: argument {i} is float32; gradient checks need float64")


def check_vjp(vjp_fn, *args, name="function", eps=1e-6, rtol=1e-5, atol=1e-8,
              directions=3, seed=0):
    """Check ``vjp_fn(*args) -> (out, backward)`` where ``backward(u)`` returns one
    gradient (tree or ``None``) per argument. Raises AssertionError naming the
    function, the argument and both numbers on a mismatch."""
    _require_float64(name, args)
    rng = np.random.default_rng(seed)
    out, backward = vjp_fn(*args)
    u = _random_like(rng, out)
    grads = backward(u)
    for i, (arg, grad) in enumerate(zip(args, grads)):
        if grad is None or not _is_differentiable(arg):
            continue
        for _ in range(directions):
            v = _random_like(rng, arg)
            shifted = lambda s: tree_vdot(u, vjp_fn(*_replace(args, i, tree_map(
                lambda a, d: a + s * d, arg, v)))[0])
            numeric = (shifted(eps) - shifted(-eps)) / (2 * eps)
            analytic = tree_vdot(grad, v)
            if not np.isclose(analytic, numeric, rtol=rtol, atol=atol):
                raise AssertionError(f"{name}: gradient of argument {i} is wrong: backward gives "
                                     f"{analytic!r}, central differences give {numeric!r}")


def _replace(args, i, value):
    return args[:i] + (value,) + args[i + 1:]


def check_grads(fn, *args, **options):
    """Gradient-check any function of primitives (a primitive itself, a composed
    function, a loss of a model) at ``args``, through ``purenet.vjp``:

        check_grads(purenet.ops.tanh, np.random.randn(4, 3))
        check_grads(lambda W, x: purenet.ops.sum(purenet.ops.tanh(x @ W)), W, x)
    """
    name = getattr(fn, "name", getattr(fn, "__name__", repr(fn)))
    check_vjp(lambda *a: vjp(fn, *a), *args, name=name, **options)


def check_layer_grads(layer, params, x, state=None, *, train=False, key=None, **options):
    """Gradient-check a layer with respect to its params and its input."""
    state = {} if state is None else state

    def output(p, inputs):
        return layer.apply(p, state, inputs, train=train, key=key)[0]

    check_vjp(lambda p, inputs: vjp(output, p, inputs), params, x,
              name=f"layer '{layer.name}'", **options)


def check_model_grads(model, loss, params, x, y, state=None, *, train=True, key=None, **options):
    """Gradient-check ``loss(model(params, x), y)`` with respect to params."""
    from .losses import get
    state, loss = ({} if state is None else state), get(loss)

    def objective(p):
        return loss(model.apply(p, state, x, train=train, key=key)[0], y)

    check_vjp(lambda p: vjp(objective, p), params, name=f"model '{model.name}' + loss", **options)
