"""A printable table of a model: layers, output shapes, parameter counts.

    print(purenet.summary(model, (13,), params))

Combinators are shown with their sub-layers indented below them. The
sub-layers of ``serial`` and ``residual`` run one after the other, each on the
previous one's output, with their params under their names; those of
``Bidirectional`` run side by side on the same input, with their params under
``"forward"`` and ``"backward"``.
"""
import numpy as np

from .layers.base import check_params
from .random import key as make_key
from .tree import tree_size

# combinators whose children all see the combinator's input, and the param key of each
PARALLEL = {"bidirectional": ("forward", "backward")}


def _children(layer, params):
    """``[(child, its params, runs on the previous child's output?)]``."""
    if layer.kind in PARALLEL:
        keys = PARALLEL[layer.kind]
        return [(child, _get(params, k), False) for child, k in zip(layer.children, keys)]
    return [(child, _get(params, child.name), True) for child in layer.children]


def _get(params, k):
    return params.get(k, {}) if isinstance(params, dict) else {}


def summary_rows(model, in_shape, params, depth=0):
    """``[(indented name, output shape, parameter count)]`` for ``model`` and its sub-layers."""
    rows = []
    shape = tuple(in_shape)
    children = _children(model, params) if model.children else [(model, params, True)]
    for layer, layer_params, sequential in children:
        layer_in = shape
        out_shape = layer.init(make_key(0), layer_in, np.float32)[0]
        rows.append(("  " * depth + layer.name, out_shape, tree_size(layer_params)))
        if layer.children:
            rows.extend(summary_rows(layer, layer_in, layer_params, depth + 1))
        if sequential:
            shape = out_shape
    return rows


def summary(model, in_shape, params=None):
    """The model table as text (shapes exclude the batch axis).

    ``params`` default to those ``model.init`` draws; given, they must be the model's
    (``layers.check_params``), so the counts are those of the params at hand.
    """
    in_shape = tuple(in_shape)
    if params is None:
        params = model.init(make_key(0), in_shape, np.float32)[1]
    else:
        check_params(model, params, in_shape)
    rows = summary_rows(model, in_shape, params)
    lines = [f"{'layer':<28}{'output shape':<20}{'params':>10}", "-" * 58]
    lines += [f"{name:<28}{str(shape):<20}{count:>10,}" for name, shape, count in rows]
    lines += ["-" * 58, f"input shape {in_shape}; total parameters {tree_size(params):,}"]
    return "\n".join(lines)
