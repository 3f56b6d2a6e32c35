"""A printable table of a model: layers, output shapes, parameter counts."""
import numpy as np

from .random import key as make_key
from .tree import tree_size


def summary_rows(model, in_shape, params, depth=0):
    """``[(indented name, output shape, parameter count)]`` for ``model`` and its sub-layers."""
    rows = []
    shape = tuple(in_shape)
    for layer in model.children or (model,):
        out_shape = layer.init(make_key(0), shape, np.float32)[0]
        layer_params = params.get(layer.name, {}) if model.children else params
        rows.append(("  " * depth + layer.name, out_shape, tree_size(layer_params)))
        if layer.children:
            rows.extend(summary_rows(layer, shape, layer_params, depth + 1))
        shape = out_shape
    return rows


def summary(model, in_shape, params):
    """The model table as text (shapes exclude the batch axis)."""
    rows = summary_rows(model, in_shape, params)
    lines = [f"{'layer':<28}{'output shape':<20}{'params':>10}", "-" * 58]
    lines += [f"{name:<28}{str(shape):<20}{count:>10,}" for name, shape, count in rows]
    lines += ["-" * 58, f"input shape {tuple(in_shape)}; total parameters {tree_size(params):,}"]
    return "\n".join(lines)
