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

A layer may offer ``fuse(next_layer)``: a function computing it and the layer after
it at once from its own params (the next one has none), or None; ``serial`` runs such
pairs fused (a Conv2D with the tiling MaxPool2D after it, ``ops.conv_pool``).

``check_params(model, params, in_shape)`` compares params (and state) with
what ``model.init`` builds and names the first array that differs; ``predict``,
``evaluate``, ``save_model`` and ``fit`` call it before using params.
"""
import functools
import inspect
import numbers
import weakref

import numpy as np

from ..errors import ConfigError, DataError, ShapeError
from ..random import key as make_key
from ..random import split

LAYER_TYPES = {}
_NAMED_ERRORS = (ShapeError, ConfigError, DataError)   # prefixed with the layer's name


class Layer:
    """A named (init, apply) pair. See the module docstring for the protocol."""

    def __init__(self, kind, init_fn, apply_fn, children=(), config=None, name=None, fuse=None):
        self.kind = kind              # e.g. "dense"
        self.name = name or kind      # e.g. "dense_2" once placed in a serial
        self.named = name is not None     # a name the user chose, kept by serial
        self.init_fn = init_fn
        self.apply_fn = apply_fn      # (params, state, x, train, key) -> (y, new_state)
        self.children = tuple(children)   # sub-layers of a combinator, for summaries
        self.config = config              # {"type": constructor, "args": {...}}
        # fuse(next_layer) -> None, or fused(params, x) -> y computing both layers at once
        # from this layer's params (the next one has none), for serial
        self.fuse = fuse

    def renamed(self, name):
        layer = Layer(self.kind, self.init_fn, self.apply_fn, self.children, self.config, name,
                      self.fuse)
        layer.named = self.named
        return layer

    def init(self, key, in_shape, dtype=np.float32):
        """``(out_shape, params, state)`` for inputs of shape ``(batch, *in_shape)``."""
        return self._naming_errors(self.init_fn, key, tuple(in_shape), np.dtype(dtype))

    def apply(self, params, state, x, *, train=False, key=None):
        """``(y, new_state)``: the output and the state after this call."""
        return self._naming_errors(self.apply_fn, params, state, x, train, key)

    def apply_fused(self, fused, params, x):
        """``fused(params, x)``, a function ``self.fuse`` gave, its errors named like ``apply``'s."""
        return self._naming_errors(fused, params, x)

    def _naming_errors(self, fn, *args):
        """``fn(*args)``, its shape, config and data errors prefixed with this layer's name
        (nested layers prefix in turn)."""
        try:
            return fn(*args)
        except _NAMED_ERRORS as err:
            if type(err) not in _NAMED_ERRORS:
                raise
            raise type(err)(f"layer '{self.name}': {err}") from None

    def __call__(self, params, x, state=None):
        """Inference: the output only."""
        return self.apply(params, {} if state is None else state, x)[0]

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


def _fusions(layers):
    """``{i: fused}`` for each layer i that runs together with layer i + 1 (see ``serial``)."""
    fused, i = {}, 0
    while i < len(layers) - 1:
        joint = layers[i].fuse(layers[i + 1]) if layers[i].fuse else None
        if joint is not None:
            fused[i] = joint
        i += 2 if joint is not None else 1
    return fused


@layer_constructor
def serial(*layers):
    """Compose layers in order: ``serial(f, g)(x) == g(f(x))``.

    Params and state are dicts keyed by each layer's ``name=`` when it was given
    one, else ``"<kind>_<position>"`` (``dense_0``, ...); keys must be unique.

    Two neighbours that one primitive computes faster run as one (a Conv2D followed by
    a MaxPool2D of tiling windows: ``ops.conv_pool``): same values and gradients, same
    params, state and layer names.
    """
    if not layers:
        raise ValueError("serial() needs at least one layer")
    names = _unique_names(layers)
    layers = [layer.renamed(name) for layer, name in zip(layers, names)]
    fusions = _fusions(layers)

    def init(key, in_shape, dtype):
        params, state, shape = {}, {}, in_shape
        for layer, k in zip(layers, split(key, len(layers))):
            shape, params[layer.name], state[layer.name] = layer.init(k, shape, dtype)
        return shape, params, state

    def apply(params, state, x, train, key):
        keys = split(key, len(layers)) if key is not None else [None] * len(layers)
        new_state, skip = {}, False
        for i, (layer, k) in enumerate(zip(layers, keys)):
            if skip:                    # computed with the layer before it
                new_state[layer.name], skip = state.get(layer.name, {}), False
            elif i in fusions:
                x = layer.apply_fused(fusions[i], params[layer.name], x)
                new_state[layer.name], skip = state.get(layer.name, {}), True
            else:
                x, new_state[layer.name] = layer.apply(params[layer.name],
                                                       state.get(layer.name, {}), x,
                                                       train=train, key=k)
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


# --- checks of constructor arguments ---------------------------------------------

def positive_int(value, what):
    """``value`` as an int if it is a positive integer (a bool is not), else ConfigError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def real_number(value, what):
    """``value`` as a float if it is a real number (a bool is not), else ConfigError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{what} must be a number, got {value!r}")
    return float(value)


# --- params and state against the model -------------------------------------------

class _Leaf:
    """An expected array: its shape (all ``check_params`` keeps of ``init``'s output)."""
    __slots__ = ("shape",)

    def __init__(self, shape):
        self.shape = tuple(shape)


def _spec(tree):
    if isinstance(tree, dict):
        return {k: _spec(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        items = [_spec(v) for v in tree]
        return items if isinstance(tree, list) else tuple(items)
    return _Leaf(np.shape(tree))


_EXPECTED = weakref.WeakKeyDictionary()      # model -> {(in_shape, dtype): (params, state)}
_CACHE_SIZE = 16                             # input shapes remembered per model


def expected_shapes(model, in_shape, dtype=np.float32):
    """``(params, state)`` as ``model.init`` builds them for ``in_shape``, with every
    array replaced by its shape; computed once per model, input shape and dtype."""
    in_shape, dtype = _as_in_shape(in_shape), np.dtype(dtype)
    cache = _EXPECTED.setdefault(model, {})
    entry = (in_shape, dtype.str)
    if entry not in cache:
        if len(cache) >= _CACHE_SIZE:
            cache.pop(next(iter(cache)))
        _, params, state = model.init(make_key(0), in_shape, dtype)
        cache[entry] = (_spec(params), _spec(state))
    return cache[entry]


def _as_in_shape(in_shape):
    """``in_shape`` as a tuple of sizes (``None`` for a free axis such as time)."""
    try:
        shape = tuple(in_shape)
    except TypeError:
        raise ConfigError(f"in_shape must be a tuple of sizes (without the batch axis), "
                          f"got {in_shape!r}") from None
    for n in shape:
        if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0):
            raise ConfigError(f"in_shape must be a tuple of sizes (without the batch axis), "
                              f"got {in_shape!r}")
    return tuple(None if n is None else int(n) for n in shape)


def check_params(model, params, in_shape, dtype=np.float32, state=None):
    """Raise unless ``params`` (and ``state``, when given) fit ``model`` for inputs of
    shape ``in_shape`` (without the batch axis).

    Compares with what ``model.init`` builds: the same dicts and keys, and arrays of
    the same shapes. The error names the first place that differs:

        ConfigError  params is None / params has no 'dense_2' / params['dense_0']
                     has 'gamma', which the model does not have / ...
        ShapeError   params['dense_1']['W'] has shape (13, 8), the model expects (13, 4)

    State may hold more than ``init`` gives (a stateful layer's carry); what
    ``init`` gives must be there, so a batch-norm model without its running
    statistics is an error. The expected shapes are computed once per model and
    input shape, so a call costs a walk over the params.
    """
    if not (callable(getattr(model, "init", None)) and callable(getattr(model, "apply", None))):
        raise ConfigError(f"model must be a layer with init and apply (e.g. purenet.serial(...)), "
                          f"got {type(model).__name__}")
    in_shape = _as_in_shape(in_shape)
    want_params, want_state = expected_shapes(model, in_shape, dtype)
    context = f" for inputs of shape {in_shape}"
    if params is None:
        raise ConfigError("params is None: pass the params returned by model.init or fit")
    _compare(params, want_params, "params", context, extra_ok=False)
    if state is not None:
        _compare(state, want_state, "state", context, extra_ok=True)


def _has_leaves(spec):
    if isinstance(spec, dict):
        return any(_has_leaves(v) for v in spec.values())
    if isinstance(spec, (list, tuple)):
        return any(_has_leaves(v) for v in spec)
    return True


def _describe(value):
    if value is None:
        return "None"
    if isinstance(value, dict):
        return f"a dict with keys {list(value)}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)}"
    return f"a {type(value).__name__}"


def _expectation(spec):
    if isinstance(spec, _Leaf):
        return f"an array of shape {spec.shape}"
    if isinstance(spec, dict):
        return f"a dict with keys {list(spec)}"
    return f"a {type(spec).__name__} of {len(spec)}"


def _hint(path):
    if path.startswith("state"):
        return "pass the state returned by model.init or fit, as it came"
    return "are these the params of another model?"


def _compare(got, want, path, context, extra_ok):
    """Walk ``got`` along the expected tree ``want``; raise at the first difference."""
    if isinstance(want, _Leaf):
        if got is None or isinstance(got, (dict, list, tuple, str, bytes)):
            raise ConfigError(f"{path} is {_describe(got)}, the model expects "
                              f"{_expectation(want)}")
        dtype = getattr(got, "dtype", None)
        if dtype is None:
            dtype = np.asarray(got).dtype
        if np.dtype(dtype).kind not in "biufc":
            raise ConfigError(f"{path} holds {dtype} values, the model expects numbers")
        if tuple(np.shape(got)) != want.shape:
            raise ShapeError(f"{path} has shape {tuple(np.shape(got))}, the model expects "
                             f"{want.shape}{context}")
        return
    if isinstance(want, dict):
        if not isinstance(got, dict):
            raise ConfigError(f"{path} is {_describe(got)}, the model expects {_expectation(want)}")
        for k, sub in want.items():
            if k in got:
                _compare(got[k], sub, f"{path}[{k!r}]", context, extra_ok)
            elif not extra_ok or _has_leaves(sub):
                raise ConfigError(f"{path} has no {k!r} (the model expects keys {list(want)}): "
                                  f"{_hint(path)}")
        if not extra_ok:
            extra = [k for k in got if k not in want]
            if extra:
                raise ConfigError(f"{path} has {extra[0]!r}, which the model does not have "
                                  f"(it expects keys {list(want)}): {_hint(path)}")
        return
    if not isinstance(got, (list, tuple)) or len(got) != len(want):
        raise ConfigError(f"{path} is {_describe(got)}, the model expects {_expectation(want)}")
    for i, (g, w) in enumerate(zip(got, want)):
        _compare(g, w, f"{path}[{i}]", context, extra_ok)
