"""The layer protocol and the combinators ``serial`` and ``residual``.

A layer is a pure (init, apply) pair with a slot for state:

    init(key, in_shape, dtype) -> (out_shape, params, state)
    apply(params, state, x, *, train=False, key=None) -> (y, new_state)

``apply`` is a plain function of primitives: it returns no backward pass, since
``purenet.grad`` differentiates it (see ``purenet.autodiff``). A layer needs no
gradient code of its own, and a first dense or convolutional layer skips its
input-gradient matmul because the engine sees that its input is data.

Shapes exclude the batch axis: a dense layer on 13 features has
``in_shape == (13,)``. ``params`` and ``state`` are plain trees (dicts of
arrays); ``state`` holds what changes without gradients (batch-norm running
statistics). ``key`` is an explicit random key (see ``purenet.random``), used
by layers such as dropout; ``train`` switches training behaviour.

``Layer`` bundles the two functions with a name and the constructor call that
built it (``config``), so a saved model can be rebuilt without pickle. Layer
constructors are CamelCase (``Dense``) and are registered with
``@layer_constructor``, which also gives every one a ``name=`` argument: a
named layer's params sit under its name in ``serial``. Combinators are
snake_case (``serial``).
"""
import functools
import inspect

import numpy as np

from ..errors import ConfigError, ShapeError
from ..random import split

LAYER_TYPES = {}


class Layer:
    """A named (init, apply) pair. See the module docstring for the protocol."""

    def __init__(self, kind, init_fn, apply_fn, children=(), config=None, name=None):
        self.kind = kind              # e.g. "dense"
        self.name = name or kind      # e.g. "dense_2" once placed in a serial
        self.named = name is not None     # a name the user chose, kept by serial
        self.init_fn = init_fn
        self.apply_fn = apply_fn      # (params, state, x, train, key) -> (y, new_state)
        self.children = tuple(children)   # sub-layers of a combinator, for summaries
        self.config = config              # {"type": constructor, "args": {...}}

    def renamed(self, name):
        layer = Layer(self.kind, self.init_fn, self.apply_fn, self.children, self.config, name)
        layer.named = self.named
        return layer

    def init(self, key, in_shape, dtype=np.float32):
        """``(out_shape, params, state)`` for inputs of shape ``(batch, *in_shape)``."""
        try:
            return self.init_fn(key, tuple(in_shape), np.dtype(dtype))
        except ShapeError as err:
            raise self._named(err) from None

    def apply(self, params, state, x, *, train=False, key=None):
        """``(y, new_state)``: the output and the state after this call."""
        try:
            return self.apply_fn(params, state, x, train, key)
        except ShapeError as err:
            raise self._named(err) from None

    def __call__(self, params, x, state=None):
        """Inference: the output only."""
        return self.apply(params, {} if state is None else state, x)[0]

    def _named(self, err):
        """A ShapeError prefixed with this layer's name (nested layers prefix in turn)."""
        return ShapeError(f"layer '{self.name}': {err}")

    def __repr__(self):
        return f"<layer {self.name}>"


def layer_constructor(fn):
    """Register a layer constructor, give it a ``name=`` argument, and record each
    call's arguments as ``config``."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def build(*args, name=None, **kwargs):
        layer = fn(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        layer.config = {"type": fn.__name__, "args": dict(bound.arguments)}
        if name is not None:
            if not isinstance(name, str) or not name or "/" in name:
                raise ConfigError(f"{fn.__name__}: name must be a non-empty string without '/', "
                                  f"got {name!r}")
            layer = layer.renamed(name)
            layer.named = True
            layer.config["args"]["name"] = name
        return layer

    LAYER_TYPES[fn.__name__] = build
    return build


def _unique_names(layers):
    """Each layer's key in a serial: its own name if it was given one, else ``kind_i``."""
    names = [layer.name if layer.named else f"{layer.kind}_{i}" for i, layer in enumerate(layers)]
    seen = set()
    for n in names:
        if n in seen:
            raise ConfigError(f"serial: two layers are named '{n}'; names must be unique")
        seen.add(n)
    return names


@layer_constructor
def serial(*layers):
    """Compose layers in order: ``serial(f, g)(x) == g(f(x))``.

    Params and state are dicts keyed by each layer's ``name=`` when it was given
    one, else ``"<kind>_<position>"`` (``dense_0``, ...); keys must be unique.
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

    def apply(params, state, x, train, key):
        keys = split(key, len(layers)) if key is not None else [None] * len(layers)
        new_state = {}
        for layer, k in zip(layers, keys):
            x, new_state[layer.name] = layer.apply(params[layer.name], state.get(layer.name, {}),
                                                   x, train=train, key=k)
        return x, new_state

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

    def apply(params, state, x, train, key):
        y, new_state = body.apply(params, state, x, train=train, key=key)
        return x + y, new_state

    return Layer("residual", init, apply, children=body.children)
