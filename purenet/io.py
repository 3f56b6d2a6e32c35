"""Model files: architecture as JSON plus params and state as arrays, no pickle.

The architecture is the tree of constructor calls recorded by
``@layer_constructor``; params and state go through ``purenet.files``. Loading
rebuilds the model and checks every array against what it expects, so a
truncated, corrupted or mismatched file raises ``ModelFileError``.

    save_model("model.npz", model, params, state, in_shape=(13,))
    model, params, state, meta = load_model("model.npz")
"""
import inspect

from . import initializers
from .errors import ConfigError, ModelFileError
from .files import (arrays_to_tree, atomic_write, load_arrays, save_arrays, tree_to_arrays,
                    write_json)
from .layers.base import LAYER_TYPES, Layer
from .ops import activations
from .random import key as make_key
from .tree import tree_flatten_with_paths

FORMAT = "purenet-model-1"


# --- architecture <-> JSON ---------------------------------------------------

def layer_to_config(layer):
    """The JSON-able description of a layer built by a registered constructor."""
    if layer.config is None:
        raise ConfigError(f"layer '{layer.name}' was not built by a registered constructor, "
                          "so it cannot be saved; decorate its constructor with @layer_constructor")
    args = {k: _arg_to_json(layer.name, k, v) for k, v in layer.config["args"].items()}
    return {"type": layer.config["type"], "args": args}


def _arg_to_json(layer_name, arg, value):
    if isinstance(value, Layer):
        return layer_to_config(value)
    if isinstance(value, (list, tuple)):
        return [_arg_to_json(layer_name, arg, v) for v in value]
    if callable(value):
        name = activations.name_of(value) or initializers.name_of(value)
        if name is None and isinstance(getattr(value, "config", None), dict):
            return value.config         # a configured initialiser, e.g. variance_scaling
    elif value is None or isinstance(value, (bool, int, float, str)):
        return value
    else:
        name = None
    if name is None:
        raise ConfigError(f"layer '{layer_name}': argument {arg}={value!r} cannot be saved; "
                          "register custom functions (purenet.ops.activations.register) or use names")
    return name


def layer_from_config(config):
    """Rebuild a layer from ``layer_to_config``'s output."""
    try:
        build = LAYER_TYPES[config["type"]]
        args = {k: _arg_from_json(v) for k, v in config["args"].items()}
    except (KeyError, TypeError, AttributeError) as err:
        raise ModelFileError(f"unknown or malformed layer description {config!r}: {err}") from None
    varargs = [name for name, p in inspect.signature(build).parameters.items()
               if p.kind is inspect.Parameter.VAR_POSITIONAL]
    positional = args.pop(varargs[0]) if varargs else ()
    return build(*positional, **args)


def _arg_from_json(value):
    if isinstance(value, dict) and "type" in value and "args" in value:
        return layer_from_config(value)
    if isinstance(value, list):
        return [_arg_from_json(v) for v in value]
    return value


# --- model files -------------------------------------------------------------

def save_model(path, model, params, state=None, *, in_shape, extra=None):
    """Write architecture, input shape, params and state to one ``.npz`` file."""
    meta = {"format": FORMAT, "architecture": layer_to_config(model),
            "in_shape": list(in_shape), "dtype": _dtype_of(params), "extra": extra or {}}
    arrays = {**tree_to_arrays(params, "params"), **tree_to_arrays(state or {}, "state")}
    save_arrays(path, arrays, meta)


def _dtype_of(params):
    leaves = [a for _, a in tree_flatten_with_paths(params)]
    return str(leaves[0].dtype) if leaves else "float32"


def load_model(path):
    """``(model, params, state, meta)`` from a file written by ``save_model``."""
    arrays, meta = load_arrays(path)
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a purenet model file (format {meta.get('format')!r})")
    model = layer_from_config(meta["architecture"])
    _, params_t, state_t = model.init(make_key(0), tuple(meta["in_shape"]), meta["dtype"])
    params = arrays_to_tree(params_t, arrays, "params", path)
    state = arrays_to_tree(state_t, arrays, "state", path)
    return model, params, state, meta
