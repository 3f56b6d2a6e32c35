"""The layer protocol and the combinators ``serial`` and ``residual``.

A layer is a pure (init, apply) pair with a slot for state:

    init(key, in_shape, dtype) -> (out_shape, params, state)
    apply(params, state, x, train, key, input_grad) -> (y, new_state, backward)
    backward(dy) -> (dparams, dx)

Shapes exclude the batch axis: a dense layer on 13 features has
``in_shape == (13,)``. ``params`` and ``state`` are plain trees (dicts of
arrays); ``state`` holds what changes without gradients (batch-norm running
statistics). ``key`` is an explicit random key (see ``purenet.random``), used
by layers such as dropout; ``train`` switches training behaviour.
``input_grad=False`` says nobody needs ``dx`` (the network's first layer, whose
input is data): a layer may then skip computing it and return ``None``, which
saves a whole matrix product in a dense or convolutional first layer.

``Layer`` bundles the two functions with a name and the constructor call that
built it (``config``), so a saved model can be rebuilt without pickle. Layer
constructors are CamelCase (``Dense``) and are registered with
``@layer_constructor``; combinators are snake_case (``serial``).
"""
import functools
import inspect

import numpy as np

from ..errors import ShapeError
from ..random import split
from ..tree import tree_flatten_with_paths

LAYER_TYPES = {}


class Layer:
    """A named (init, apply) pair. See the module docstring for the protocol."""

    def __init__(self, kind, init_fn, apply_fn, children=(), config=None, name=None):
        self.kind = kind              # e.g. "dense"
        self.name = name or kind      # e.g. "dense_2" once placed in a serial
        self.init_fn = init_fn
        self.apply_fn = apply_fn
        self.children = tuple(children)   # sub-layers of a combinator, for summaries
        self.config = config              # {"type": constructor, "args": {...}}

    def renamed(self, name):
        return Layer(self.kind, self.init_fn, self.apply_fn, self.children, self.config, name)

    def init(self, key, in_shape, dtype=np.float32):
        """``(out_shape, params, state)`` for inputs of shape ``(batch, *in_shape)``."""
        with self._named_errors():
            return self.init_fn(key, tuple(in_shape), np.dtype(dtype))

    def apply(self, params, state, x, *, train=False, key=None, input_grad=True):
        """``(y, new_state, backward)``; ``backward(dy) -> (dparams, dx)`` is shape-checked
        (``dx`` may be ``None`` when ``input_grad`` is False)."""
        with self._named_errors():
            y, new_state, backward = self.apply_fn(params, state, x, train, key, input_grad)
        return y, new_state, self._checked(backward, params, x)

    def __call__(self, params, x, state=None):
        """Inference: the output only."""
        return self.apply(params, {} if state is None else state, x)[0]

    def _checked(self, backward, params, x):
        def checked_backward(dy):
            with self._named_errors():
                dparams, dx = backward(dy)
            _check_grad_shapes(self.name, params, dparams, x, dx)
            return dparams, dx
        return checked_backward

    def _named_errors(self):
        return _Prefix(self.name)

    def __repr__(self):
        return f"<layer {self.name}>"


class _Prefix:
    """Context manager that prefixes ShapeErrors with the layer's name."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if kind is not None and issubclass(kind, ShapeError):
            raise ShapeError(f"layer '{self.name}': {err}") from None
        return False


def _check_grad_shapes(name, params, dparams, x, dx):
    if dx is not None and np.shape(dx) != np.shape(x):  # None: input gradient not asked for
        raise ShapeError(f"layer '{name}': input gradient has shape {np.shape(dx)}, "
                         f"input has shape {np.shape(x)}")
    if not _same_shapes(params, dparams):
        expected = [(p, np.shape(a)) for p, a in tree_flatten_with_paths(params)]
        got = [(p, np.shape(a)) for p, a in tree_flatten_with_paths(dparams)]
        raise ShapeError(f"layer '{name}': parameter gradients {got} do not match params {expected}")


def _same_shapes(a, b):
    """True when two trees have the same containers, keys and leaf shapes (a fast walk)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_shapes(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return (isinstance(b, (list, tuple)) and len(a) == len(b)
                and all(_same_shapes(u, v) for u, v in zip(a, b)))
    return np.shape(a) == np.shape(b)


def layer_constructor(fn):
    """Register a layer constructor and record each call's arguments as ``config``."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def build(*args, **kwargs):
        layer = fn(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        layer.config = {"type": fn.__name__, "args": dict(bound.arguments)}
        return layer

    LAYER_TYPES[fn.__name__] = build
    return build


def _unique_names(layers):
    return [f"{layer.kind}_{i}" for i, layer in enumerate(layers)]


@layer_constructor
def serial(*layers):
    """Compose layers in order: ``serial(f, g)(x) == g(f(x))``.

    Params and state are dicts keyed ``"<kind>_<position>"`` (``dense_0``, ...).
    """
    if not layers:
        raise ValueError("serial() needs at least one layer")
    names = _unique_names(layers)
    layers = [layer.renamed(name) for layer, name in zip(layers, names)]

    def init(key, in_shape, dtype):
        params, state, shape = {}, {}, in_shape
        for layer, k in zip(layers, split(key, len(layers))):
            shape, params[layer.name], state[layer.name] = layer.init(k, shape, dtype)
        return shape, params, state

    def apply(params, state, x, train, key, input_grad):
        keys = split(key, len(layers)) if key is not None else [None] * len(layers)
        new_state, backwards = {}, []
        for i, (layer, k) in enumerate(zip(layers, keys)):
            x, new_state[layer.name], back = layer.apply(
                params[layer.name], state.get(layer.name, {}), x, train=train, key=k,
                input_grad=input_grad or i > 0)
            backwards.append(back)

        def backward(g):
            grads = {}
            for layer, back in zip(reversed(layers), reversed(backwards)):
                grads[layer.name], g = back(g)
            return {layer.name: grads[layer.name] for layer in layers}, g

        return x, new_state, backward

    return Layer("serial", init, apply, children=layers)


@layer_constructor
def residual(*layers):
    """A skip connection: ``residual(f, g)(x) == x + g(f(x))``.

    The stack must give back its input's shape (a ShapeError at ``init`` says
    otherwise). Params and state are those of ``serial(*layers)``.
    """
    body = serial(*layers)

    def init(key, in_shape, dtype):
        out_shape, params, state = body.init(key, in_shape, dtype)
        if tuple(out_shape) != tuple(in_shape):
            raise ShapeError(f"residual: the stack maps shape {tuple(in_shape)} to {tuple(out_shape)}; "
                             "it must keep the shape to be added to its input")
        return out_shape, params, state

    def apply(params, state, x, train, key, input_grad):
        y, new_state, back = body.apply(params, state, x, train=train, key=key,
                                        input_grad=input_grad)

        def backward(g):
            # y = x + f(x)  =>  dx = g + J_f^T g
            dparams, dx = back(g)
            return dparams, (g + dx) if input_grad else None

        return x + y, new_state, backward

    return Layer("residual", init, apply, children=body.children)
