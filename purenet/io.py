"""Files: parameter trees in ``.npz`` with JSON metadata, written atomically.

No pickle anywhere: arrays go into an ``.npz`` archive under their tree paths
(``"dense_0/W"``) and everything else (architecture, history, settings) into
one JSON document stored as a byte array. Loading checks every array against
what the model expects, so a truncated, corrupted or mismatched file raises
``ModelFileError`` naming the file and the problem.

    save_model("model.npz", model, params, state, in_shape=(13,))
    model, params, state, meta = load_model("model.npz")
"""
import inspect
import json
import os
import tempfile
import zipfile

import numpy as np

from . import initializers
from .errors import ConfigError, ModelFileError
from .layers.base import LAYER_TYPES, Layer
from .ops import activations
from .ops.core import Primitive
from .random import key as make_key
from .tree import tree_flatten_with_paths, tree_map

META_KEY = "__purenet__"
FORMAT = "purenet-model-1"


def atomic_write(path, write):
    """Call ``write(file_object)`` on a temporary file, then move it onto ``path``.

    A crash midway leaves the old file (if any) untouched, never a half-written one.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json(path, obj):
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2, default=_json_default).encode()))


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def save_arrays(path, arrays, meta):
    """Save a dict ``{name: ndarray}`` and a JSON-able ``meta`` dict to ``path`` (.npz)."""
    payload = {name: np.asarray(a) for name, a in arrays.items()}
    text = json.dumps(meta, default=_json_default)
    payload[META_KEY] = np.frombuffer(text.encode(), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **payload))


def load_arrays(path):
    """``(arrays, meta)`` from a file written by ``save_arrays``."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelFileError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as err:
        raise ModelFileError(f"{path}: not a readable purenet file (truncated or corrupted?): {err}") from None
    if META_KEY not in arrays:
        raise ModelFileError(f"{path}: not a purenet file (no metadata entry)")
    try:
        meta = json.loads(arrays.pop(META_KEY).tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{path}: metadata is corrupted: {err}") from None
    return arrays, meta


def tree_to_arrays(tree, prefix):
    """``{"prefix/path": leaf}`` for every leaf of ``tree``."""
    return {f"{prefix}/{p}": np.asarray(a) for p, a in tree_flatten_with_paths(tree)}


def arrays_to_tree(template, arrays, prefix, path="file"):
    """Fill a tree shaped like ``template`` from ``arrays``; every shape must match."""
    def fill(leaf_path, leaf):
        name = f"{prefix}/{leaf_path}"
        if name not in arrays:
            raise ModelFileError(f"{path}: missing array '{name}'")
        got = arrays[name]
        if got.shape != np.shape(leaf):
            raise ModelFileError(f"{path}: array '{name}' has shape {got.shape}, "
                                 f"the model expects {np.shape(leaf)}")
        return got
    leaves = [fill(p, a) for p, a in tree_flatten_with_paths(template)]
    it = iter(leaves)
    return tree_map(lambda _: next(it), template)


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
    if isinstance(value, Primitive):
        name = activations.name_of(value)
    elif callable(value):
        name = initializers.name_of(value)
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
