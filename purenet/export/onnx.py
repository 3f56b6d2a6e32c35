"""ONNX export: a trained model as a standard graph that ONNX Runtime (and others) run.

    export_onnx(model, params, state, in_shape, "model.onnx")

The graph takes ``input`` of shape ``(N, *in_shape)`` with a dynamic batch axis
``N`` (float32, or int64 ids when the model starts with an ``Embedding``) and
gives ``output``. Each layer becomes the ONNX operators that compute the same
thing at inference: dropout disappears, batch norm uses its running statistics.
Layouts are translated, not assumed:

* kernels are stored HWIO here and OIHW in ONNX; padding ``((top, bottom),
  (left, right))`` becomes ONNX's ``[top, left, bottom, right]``;
* recurrent weights are stored ``x @ W_x`` with gates ``[i, f, g, o]`` (LSTM) and
  ``[r, z, n]`` (GRU); ONNX wants ``W @ x`` with gates ``[i, o, f, c]`` and
  ``[z, r, h]``, time-major inputs, and two bias halves (input and recurrent);
  our GRU is the reset-after form, ONNX's ``linear_before_reset=1``.

A stateful recurrent layer is exported starting every call from a zero carry
(the carry lives in purenet's state, outside the graph). A layer ONNX cannot
express here (a user-defined function, a custom cell) is a ``ConfigError``
naming it. Integer ids for an ``Embedding`` must be int64. Needs the ``onnx``
package (``pip install purenet[onnx]``).
"""
import numpy as np

from ..errors import ConfigError
from ..ops import activations
from ..ops.geometry import Geometry, as_pair, settings_1d
from ..ops.conv_transpose import transposed_geometry
from ..ops.pooling import pool_geometry
from ..ops.pooling import settings_1d as pool_settings_1d

OPSET = 17


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ConfigError("ONNX export needs the onnx package: pip install 'purenet[onnx]'") from None
    return onnx


class _Graph:
    """The nodes and initialisers being built, with fresh names for intermediate values."""

    def __init__(self, onnx):
        self.onnx, self.helper = onnx, onnx.helper
        self.nodes, self.initializers, self.count = [], [], 0

    def name(self, hint):
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, array, hint, dtype=np.float32):
        name = self.name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(array, dtype), name))
        return name

    def op(self, op_type, inputs, hint=None, outputs=1, **attrs):
        names = [self.name(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names


# --- activations --------------------------------------------------------------------

_SIMPLE_ACTIVATIONS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh",
                       "softplus": "Softplus"}


def _activation(g, x, act, layer_name):
    """Apply an activation given by name or primitive (default settings)."""
    name = "identity" if act is None else act if isinstance(act, str) else activations.name_of(act)
    if name in ("identity", "linear"):
        return x
    if name in _SIMPLE_ACTIVATIONS:
        return g.op(_SIMPLE_ACTIVATIONS[name], [x])
    if name == "leaky_relu":
        return g.op("LeakyRelu", [x], alpha=0.01)
    if name == "elu":
        return g.op("Elu", [x], alpha=1.0)
    if name in ("softmax", "log_softmax"):
        return g.op("Softmax" if name == "softmax" else "LogSoftmax", [x], axis=-1)
    raise ConfigError(f"layer '{layer_name}': activation {act!r} has no ONNX form here; "
                      "export supports the built-in activations")


# --- layers ---------------------------------------------------------------------------

def _dense(g, layer, p, s, x, shape):
    y = g.op("Add", [g.op("MatMul", [x, g.const(p["W"], "W")]), g.const(p["b"], "b")])
    return _activation(g, y, layer.config["args"]["activation"], layer.name), \
        shape[:-1] + (p["W"].shape[1],)


def _conv(g, layer, p, s, x, shape):
    args, rank = layer.config["args"], 2 if layer.config["type"] == "Conv2D" else 1
    settings = {k: args[k] for k in ("stride", "padding", "dilation")}
    if rank == 2:
        kernel, in_hw = as_pair(args["kernel_size"], "kernel_size"), shape[1:]
        w = np.transpose(p["W"], (3, 2, 0, 1))                       # HWIO -> OIHW
    else:
        settings = settings_1d(**settings)
        kernel, in_hw = (1, p["W"].shape[0]), (1, shape[1])
        w = np.transpose(p["W"], (2, 1, 0))                          # WIO -> OIW
    geom = Geometry(in_hw, kernel, **settings)
    (top, bottom), (left, right) = geom.pads
    pads = [top, left, bottom, right] if rank == 2 else [left, right]
    keep = slice(2 - rank, None)
    inputs = [x, g.const(w, "W")] + ([g.const(p["b"], "b")] if "b" in p else [])
    y = g.op("Conv", inputs, kernel_shape=list(kernel[keep]), strides=list(geom.stride[keep]),
             dilations=list(geom.dilation[keep]), pads=pads)
    out = (p["W"].shape[-1],) + geom.out_hw[keep]
    return _activation(g, y, args["activation"], layer.name), out


def _conv_transpose(g, layer, p, s, x, shape):
    args, rank = layer.config["args"], 2 if layer.config["type"] == "Conv2DTranspose" else 1
    settings = {k: args[k] for k in ("stride", "padding", "output_padding", "dilation")}
    if rank == 2:
        kernel, in_hw = as_pair(args["kernel_size"], "kernel_size"), shape[1:]
        w = np.transpose(p["W"], (3, 2, 0, 1))                 # (kh, kw, out, in) -> (in, out, kh, kw)
    else:
        one = settings_1d(settings["stride"], settings["padding"], settings["dilation"])
        settings = dict(one, output_padding=(0, int(np.ravel([settings["output_padding"]])[0])))
        kernel, in_hw = (1, p["W"].shape[0]), (1, shape[1])
        w = np.transpose(p["W"], (2, 1, 0))
    geom = transposed_geometry(in_hw, kernel, **settings)      # the adjoint convolution's
    (top, bottom), (left, right) = geom.pads
    # ONNX's output size is s (in - 1) + (k - 1) d + 1 - pads + output_padding: solve for the last
    extra = [o - (s * (n - 1) + (k - 1) * d + 1 - a - b) for o, n, s, k, d, (a, b)
             in zip(geom.in_hw, in_hw, geom.stride, kernel, geom.dilation, geom.pads)]
    keep = slice(2 - rank, None)
    inputs = [x, g.const(w, "W")] + ([g.const(p["b"], "b")] if "b" in p else [])
    y = g.op("ConvTranspose", inputs, kernel_shape=list(kernel[keep]),
             strides=list(geom.stride[keep]), dilations=list(geom.dilation[keep]),
             pads=[top, left, bottom, right] if rank == 2 else [left, right],
             output_padding=extra[keep])
    out = (p["W"].shape[-2],) + geom.in_hw[keep]
    return _activation(g, y, args["activation"], layer.name), out


def _upsampling(g, layer, p, s, x, shape):
    args = layer.config["args"]
    sh, sw = as_pair(args["size"], "size")
    scales = g.const([1.0, 1.0, sh, sw], "scales")
    if args["interpolation"] == "nearest":
        attrs = dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    else:           # PyTorch's align_corners=False rule
        attrs = dict(mode="linear", coordinate_transformation_mode="half_pixel")
    return g.op("Resize", [x, "", scales], **attrs), (shape[0], shape[1] * sh, shape[2] * sw)


def _pool(g, layer, p, s, x, shape):
    args, kind = layer.config["args"], layer.config["type"]
    rank = 2 if kind.endswith("2D") else 1
    settings = {k: args[k] for k in ("pool_size", "stride", "padding")}
    in_hw = shape[1:] if rank == 2 else (1, shape[1])
    geom = pool_geometry(in_hw, **(settings if rank == 2 else pool_settings_1d(**settings)))
    (top, bottom), (left, right) = geom.pads
    keep = slice(2 - rank, None)
    attrs = dict(kernel_shape=list(geom.kernel_hw[keep]), strides=list(geom.stride[keep]),
                 pads=[top, left, bottom, right] if rank == 2 else [left, right])
    if kind.startswith("Max"):
        y = g.op("MaxPool", [x], **attrs)
    else:
        y = g.op("AveragePool", [x], count_include_pad=1, **attrs)   # padding counts as zeros
    return y, shape[:1] + geom.out_hw[keep]


def _global_avg_pool(g, layer, p, s, x, shape):
    return g.op("Flatten", [g.op("GlobalAveragePool", [x])], axis=1), shape[:1]


def _batch_norm(g, layer, p, s, x, shape):
    if "mean" not in s or "var" not in s:
        raise ConfigError(f"layer '{layer.name}': batch norm needs its state (running mean and "
                          "variance) to be exported; pass the state from init or fit")
    y = g.op("BatchNormalization", [x, g.const(p["gamma"], "gamma"), g.const(p["beta"], "beta"),
                                    g.const(s["mean"], "mean"), g.const(s["var"], "var")],
             epsilon=float(layer.config["args"]["eps"]))
    return y, shape


def _activation_layer(g, layer, p, s, x, shape):
    return _activation(g, x, layer.config["args"]["activation"], layer.name), shape


def _identity(g, layer, p, s, x, shape):
    return x, shape


def _flatten(g, layer, p, s, x, shape):
    return g.op("Flatten", [x], axis=1), (int(np.prod(shape)),)


def _reshape(g, layer, p, s, x, shape):
    target = tuple(layer.config["args"]["shape"])
    return g.op("Reshape", [x, g.const([0, *target], "shape", np.int64)]), target


def _embedding(g, layer, p, s, x, shape):
    return g.op("Gather", [g.const(p["table"], "table"), x], axis=0), shape + (p["table"].shape[1],)


def _residual(g, layer, p, s, x, shape):
    y, out = _sequence_of(g, layer.children, p, s, x, shape)
    return g.op("Add", [x, y]), out


def _serial(g, layer, p, s, x, shape):
    return _sequence_of(g, layer.children, p, s, x, shape)


def _sequence_of(g, layers, p, s, x, shape):
    for child in layers:
        x, shape = _layer(g, child, p.get(child.name, {}), s.get(child.name, {}), x, shape)
    return x, shape


# --- recurrent layers ------------------------------------------------------------------

# our gate blocks -> ONNX's order, by index into our blocks
_GATES = {"LSTM": [0, 3, 1, 2],          # [i, f, g, o] -> [i, o, f, c]
          "GRU": [1, 0, 2],              # [r, z, n]    -> [z, r, h]
          "SimpleRNN": [0]}
_OP = {"LSTM": "LSTM", "GRU": "GRU", "SimpleRNN": "RNN"}


def _reorder(a, order):
    """Gate blocks along the last axis of ``a`` put in ``order``."""
    blocks = np.split(a, len(order), axis=-1)
    return np.concatenate([blocks[i] for i in order], axis=-1)


def _onnx_weights(kind, p):
    """(W, R, B) of one direction in ONNX layout: (G*H, F), (G*H, H), (2*G*H,)."""
    order = _GATES[kind]
    w, r = _reorder(p["W_x"], order).T, _reorder(p["W_h"], order).T
    wb = _reorder(p["b"], order)
    rb = _reorder(p["b_h"], order) if kind == "GRU" else np.zeros_like(wb)
    return w, r, np.concatenate([wb, rb])


def _recurrent_op(g, kind, directions, x, units):
    """Run the ONNX recurrent op on batch-first ``x``: ``(Y (T, D, N, H), Y_h (D, N, H))``."""
    w, r, b = (np.stack(parts) for parts in zip(*(_onnx_weights(kind, p) for p in directions)))
    attrs = dict(hidden_size=units, direction="bidirectional" if len(directions) == 2 else "forward")
    if kind == "GRU":
        attrs["linear_before_reset"] = 1
    time_major = g.op("Transpose", [x], perm=[1, 0, 2])
    y, y_h = g.op(_OP[kind], [time_major, g.const(w, "W"), g.const(r, "R"), g.const(b, "B")],
                  outputs=2, **attrs)[:2]
    return y, y_h


def _check_recurrent(layer):
    args = layer.config["args"]
    if layer.config["type"] not in _OP:
        raise ConfigError(f"layer '{layer.name}': a custom recurrent cell has no ONNX form")
    return args         # a stateful layer's carry is not in the graph: each call starts from zeros


def _recurrent(g, layer, p, s, x, shape):
    args = _check_recurrent(layer)
    kind, units = layer.config["type"], int(args["units"])
    y, y_h = _recurrent_op(g, kind, [p], x, units)
    if args["return_sequences"]:                           # (T, 1, N, H) -> (N, T, H)
        out = g.op("Transpose", [g.op("Squeeze", [y, g.const([1], "axes", np.int64)])],
                   perm=[1, 0, 2])
        return out, (shape[0], units)
    return g.op("Squeeze", [y_h, g.const([0], "axes", np.int64)]), (units,)


def _bidirectional(g, layer, p, s, x, shape):
    inner = layer.config["args"]["layer"]
    args = _check_recurrent(inner)
    kind, units = inner.config["type"], int(args["units"])
    y, y_h = _recurrent_op(g, kind, [p["forward"], p["backward"]], x, units)
    if args["return_sequences"]:                           # (T, 2, N, H) -> (N, T, 2H)
        out = g.op("Reshape", [g.op("Transpose", [y], perm=[2, 0, 1, 3]),
                               g.const([0, 0, -1], "shape", np.int64)])
        return out, (shape[0], 2 * units)
    out = g.op("Reshape", [g.op("Transpose", [y_h], perm=[1, 0, 2]),
                           g.const([0, -1], "shape", np.int64)])
    return out, (2 * units,)


_EXPORTERS = {"Dense": _dense, "Conv2D": _conv, "Conv1D": _conv, "Conv2DTranspose": _conv_transpose,
              "Conv1DTranspose": _conv_transpose, "UpSampling2D": _upsampling, "MaxPool2D": _pool,
              "AvgPool2D": _pool, "MaxPool1D": _pool, "AvgPool1D": _pool,
              "GlobalAvgPool2D": _global_avg_pool, "BatchNorm": _batch_norm,
              "Activation": _activation_layer, "Dropout": _identity, "Flatten": _flatten,
              "Reshape": _reshape, "Embedding": _embedding, "residual": _residual,
              "serial": _serial, "SimpleRNN": _recurrent, "LSTM": _recurrent, "GRU": _recurrent,
              "Recurrent": _recurrent, "Bidirectional": _bidirectional}


def _layer(g, layer, p, s, x, shape):
    kind = (layer.config or {}).get("type")
    if kind not in _EXPORTERS:
        raise ConfigError(f"layer '{layer.name}' ({kind or 'not built by a registered constructor'})"
                          " has no ONNX form here")
    return _EXPORTERS[kind](g, layer, p, s, x, tuple(shape))


def _first_is_embedding(model):
    layer = model
    while layer.children and layer.config and layer.config["type"] == "serial":
        layer = layer.children[0]
    return bool(layer.config) and layer.config["type"] == "Embedding"


def to_onnx(model, params, state, in_shape):
    """The model as an ``onnx.ModelProto`` (float32 weights, dynamic batch axis ``N``)."""
    onnx = _onnx()
    g = _Graph(onnx)
    in_shape = tuple(in_shape)
    ids = _first_is_embedding(model)
    in_type = onnx.TensorProto.INT64 if ids else onnx.TensorProto.FLOAT
    y, out_shape = _layer(g, model, params, state or {}, "input", in_shape)
    g.nodes.append(g.helper.make_node("Identity", [y], ["output"]))
    dims = lambda shape: ["N"] + [d if d is not None else f"d{i}" for i, d in enumerate(shape)]
    graph = g.helper.make_graph(
        g.nodes, "purenet", [g.helper.make_tensor_value_info("input", in_type, dims(in_shape))],
        [g.helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, dims(out_shape))],
        g.initializers)
    proto = g.helper.make_model(graph, producer_name="purenet",
                                opset_imports=[g.helper.make_opsetid("", OPSET)])
    proto.ir_version = min(proto.ir_version, 9)       # readable by older runtimes too
    onnx.checker.check_model(proto)
    return proto


def export_onnx(model, params, state, in_shape, path):
    """Write the model to ``path`` as ONNX (atomically); returns the path."""
    from ..files import atomic_write
    data = to_onnx(model, params, state, in_shape).SerializeToString()
    atomic_write(path, lambda f: f.write(data))
    return path
