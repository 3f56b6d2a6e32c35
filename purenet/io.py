"""Model files: architecture as JSON plus params and state as arrays, no pickle.

The architecture is the tree of constructor calls recorded by
``@layer_constructor``; params and state go through ``purenet.files`` (an
``.npz`` archive) or ``purenet.export.safetensors`` (a ``.safetensors`` file,
which other frameworks read too; the metadata entries are stored as strings).

    save_model("model.npz", model, params, state, in_shape=(13,))
    save_model("model.safetensors", model, params, state, in_shape=(13,))
    model, params, state, meta = load_model("model.npz")      # either format

Saving checks first and writes nothing unless the file will load: params (and
state) must be those of the model for ``in_shape`` (``layers.check_params``)
and hold only finite numbers, and the architecture must be expressible in
JSON. A model with state (batch norm) needs its state. A stateful recurrent
layer's carry is not saved: a loaded model starts from zeros.

Loading rebuilds the model and checks every array against what it expects; a
damaged or mismatched file raises ``ModelFileError`` naming the file and the
array, metadata entry or layer at fault: a damaged header, a plain ``.npy``,
an array NumPy cannot read, missing or wrong-typed metadata, a layer argument
its constructor refuses, an array the model has no place for, a missing or
mis-shaped one, and NaN or inf weights.
"""
import inspect
import json
import os

import numpy as np

from . import initializers
from .errors import ConfigError, DataError, ModelFileError, PurenetError, ShapeError
from .export.safetensors import (STATE_PREFIX, load_safetensors, looks_like_safetensors,
                                 tensor_names, write_safetensors)
from .files import arrays_to_tree, json_text, load_arrays, save_arrays, tree_to_arrays
from .layers.base import LAYER_TYPES, Layer, check_params, expected_shapes
from .ops import activations
from .random import key as make_key
from .tree import tree_flatten_with_paths

FORMAT = "purenet-model-1"
REQUIRED_META = ("format", "architecture", "in_shape", "dtype")
FILE_FORMATS = ("npz", "safetensors")
JSON_META = ("architecture", "in_shape", "extra")   # stored as JSON text in safetensors


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
    elif isinstance(value, np.generic):
        return value.item()
    else:
        name = None
    if name is None:
        raise ConfigError(f"layer '{layer_name}': argument {arg}={value!r} cannot be saved; "
                          "register custom functions (purenet.ops.activations.register) or use names")
    return name


def layer_from_config(config):
    """Rebuild a layer from ``layer_to_config``'s output.

    A malformed description, an unknown layer type or arguments the constructor
    refuses are a ``ModelFileError`` naming the layer call.
    """
    if not (isinstance(config, dict) and isinstance(config.get("type"), str)
            and isinstance(config.get("args"), dict)):
        raise ModelFileError(f"malformed layer description {_short(config)}: expected "
                             "{'type': constructor name, 'args': {...}}")
    kind = config["type"]
    if kind not in LAYER_TYPES:
        raise ModelFileError(f"unknown layer type {kind!r} in {_call_text(config)}; a layer of "
                             "your own must be imported (registered) before loading")
    build = LAYER_TYPES[kind]
    args = {k: _arg_from_json(v) for k, v in config["args"].items()}
    varargs = [name for name, p in inspect.signature(build).parameters.items()
               if p.kind is inspect.Parameter.VAR_POSITIONAL]
    positional = args.pop(varargs[0], ()) if varargs else ()
    try:
        return build(*positional, **args)
    except (PurenetError, TypeError, ValueError, AttributeError, KeyError) as err:
        raise ModelFileError(f"cannot rebuild layer {_call_text(config)}: {err}") from None


def _arg_from_json(value):
    if isinstance(value, dict) and "type" in value and "args" in value:
        return layer_from_config(value)
    if isinstance(value, list):
        return [_arg_from_json(v) for v in value]
    return value


def _call_text(config, limit=160):
    """``Dense(units=4, ...)``: a layer description as the call that built it (shortened)."""
    def text(value):
        if isinstance(value, dict) and isinstance(value.get("type"), str) and "args" in value:
            return f"{value['type']}(...)"
        if isinstance(value, list):
            return "[" + ", ".join(text(v) for v in value) + "]"
        return repr(value)
    args = config.get("args") if isinstance(config.get("args"), dict) else {}
    call = f"{config.get('type')}(" + ", ".join(f"{k}={text(v)}" for k, v in args.items()) + ")"
    return call if len(call) <= limit else call[:limit - 4] + " ...)"


def _short(value, limit=120):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


# --- model files -------------------------------------------------------------

def save_model(path, model, params, state=None, *, in_shape, extra=None, format=None):
    """Write architecture, input shape, params and state to one file.

    ``format`` is ``"npz"`` or ``"safetensors"``; by default, safetensors for a path
    ending in ``.safetensors`` and npz otherwise. Checks first, so that no file is
    written that would fail to load: params and ``state`` must fit ``model`` for
    inputs of shape ``in_shape`` (a ConfigError or ShapeError names the first array
    that differs) and be finite (DataError).
    """
    format = _file_format(path, format)
    architecture = layer_to_config(model)
    dtype = _dtype_of(params)
    state = {} if state is None else state
    try:
        check_params(model, params, in_shape, dtype, state=state)
    except (ConfigError, ShapeError) as err:
        raise type(err)(f"cannot save {os.fspath(path)}: {err}") from None
    state = _like(state, expected_shapes(model, in_shape, dtype)[1])
    params_arrays, state_arrays = tree_to_arrays(params, "params"), tree_to_arrays(state, "state")
    for name, a in {**params_arrays, **state_arrays}.items():
        if not _all_finite(a):
            raise DataError(f"cannot save {os.fspath(path)}: {_tree_path(name)} holds NaN or inf "
                            "(a model file holds finite weights only)")
    meta = {"format": FORMAT, "architecture": architecture,
            "in_shape": list(in_shape), "dtype": dtype, "extra": extra or {}}
    if format == "npz":
        save_arrays(path, {**params_arrays, **state_arrays}, meta)
        return
    try:
        tensors = tensor_names(params, state)
    except ConfigError as err:
        raise ConfigError(f"cannot save {os.fspath(path)}: {err}") from None
    write_safetensors(path, tensors, {k: json_text(v) if k in JSON_META else v
                                      for k, v in meta.items()})


def _file_format(path, format):
    if format is None:
        return "safetensors" if os.fspath(path).endswith(".safetensors") else "npz"
    if format not in FILE_FORMATS:
        raise ConfigError(f"save_model: format must be one of {', '.join(FILE_FORMATS)}, "
                          f"got {format!r}")
    return format


def _like(tree, spec):
    """The part of ``tree`` that ``spec`` describes (drops a stateful layer's carry)."""
    if isinstance(spec, dict):
        return {k: _like(tree[k], v) for k, v in spec.items() if k in tree}
    if isinstance(spec, (list, tuple)):
        return [_like(t, v) for t, v in zip(tree, spec)]
    return tree


def _tree_path(name):
    """``params['dense_0']['W']`` for the array name ``params/dense_0/W``."""
    root, *keys = name.split("/")
    return root + "".join(f"[{k!r}]" for k in keys)


def _dtype_of(params):
    leaves = [np.asarray(a) for _, a in tree_flatten_with_paths(params)] if params else []
    floats = [a.dtype for a in leaves if a.dtype.kind == "f"]
    return str(floats[0]) if floats else "float32"


def load_model(path):
    """``(model, params, state, meta)`` from a file written by ``save_model``."""
    where = os.fspath(path)
    arrays, meta = _read_safetensors(where) if looks_like_safetensors(where) \
        else load_arrays(where)
    if meta.get("format") != FORMAT:
        hint = "; it is a training checkpoint: load it with load_checkpoint" \
            if str(meta.get("format", "")).startswith("purenet-checkpoint") else ""
        raise ModelFileError(f"{where}: not a purenet model file "
                             f"(format {meta.get('format')!r}){hint}")
    for key in REQUIRED_META:
        if key not in meta:
            raise ModelFileError(f"{where}: the metadata has no '{key}' entry (damaged file, or "
                                 "not written by save_model)")
    in_shape, dtype = _meta_in_shape(meta["in_shape"], where), _meta_dtype(meta["dtype"], where)
    try:
        model = layer_from_config(meta["architecture"])
    except ModelFileError as err:
        raise ModelFileError(f"{where}: {err}") from None
    try:
        _, params_t, state_t = model.init(make_key(0), in_shape, dtype)
    except (PurenetError, TypeError, ValueError) as err:
        raise ModelFileError(f"{where}: the architecture does not accept its recorded input "
                             f"shape {in_shape}: {err}") from None
    _check_array_names(arrays, (params_t, state_t), where)
    for name, a in arrays.items():
        _check_loaded_array(name, a, where)
    params = arrays_to_tree(params_t, arrays, "params", where)
    state = arrays_to_tree(state_t, arrays, "state", where)
    meta.setdefault("extra", {})
    return model, params, state, meta


def _read_safetensors(where):
    """``(arrays, meta)`` of a safetensors model file, named and typed as in an ``.npz``."""
    tensors, metadata = load_safetensors(where)
    if "format" not in metadata:
        raise ModelFileError(f"{where}: a safetensors file without purenet's model metadata "
                             "(arrays only?): read its tensors with "
                             "purenet.export.load_safetensors")
    meta = dict(metadata)
    for key in JSON_META:
        if key in meta:
            try:
                meta[key] = json.loads(meta[key])
            except json.JSONDecodeError as err:
                raise ModelFileError(f"{where}: metadata '{key}' is not valid JSON: "
                                     f"{err}") from None
    arrays = {name if name.startswith(STATE_PREFIX) else f"params/{name}": a
              for name, a in tensors.items()}
    return arrays, meta


def _meta_in_shape(value, where):
    if not isinstance(value, list) or not all(
            n is None or (isinstance(n, int) and not isinstance(n, bool) and n >= 0)
            for n in value):
        raise ModelFileError(f"{where}: metadata 'in_shape' must be a list of sizes, "
                             f"got {_short(value)}")
    return tuple(value)


def _meta_dtype(value, where):
    try:
        dtype = np.dtype(value)
    except TypeError:
        dtype = None
    if not isinstance(value, str) or dtype is None or dtype.kind != "f":
        raise ModelFileError(f"{where}: metadata 'dtype' must name a float dtype such as "
                             f"'float32', got {_short(value)}")
    return dtype


def _check_array_names(arrays, templates, where):
    """Every array in the file must have a place in the model."""
    expected = {f"{prefix}/{p}" for prefix, tree in zip(("params", "state"), templates)
                for p, _ in tree_flatten_with_paths(tree)}
    extra = sorted(set(arrays) - expected)
    if extra:
        raise ModelFileError(f"{where}: array '{extra[0]}' is not part of the model"
                             + (f" (nor are {len(extra) - 1} more)" if len(extra) > 1 else "")
                             + ": the file holds arrays its architecture has no place for")


def _check_loaded_array(name, a, where):
    if a.dtype.kind not in "biufc":
        raise ModelFileError(f"{where}: array '{name}' holds {a.dtype} values, not numbers")
    if not _all_finite(a):
        raise ModelFileError(f"{where}: array '{name}' holds NaN or inf")


def _all_finite(a):
    """False if ``a`` holds NaN or inf (a finite sum proves it does not)."""
    if a.dtype.kind not in "fc":
        return True
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(a.sum()):
            return True
    return bool(np.isfinite(a).all())
