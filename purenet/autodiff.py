"""Reverse-mode automatic differentiation of plain Python functions of primitives.

    grad(f, argnums=0)(*args)                       -> gradient(s) of scalar f
    value_and_grad(f, argnums=0, has_aux=False)     -> (value, gradient(s))
    vjp(f, *args)                                   -> (out, pullback)
    stop_gradient(x)                                -> x as a constant

Arguments may be arrays or trees of them (dicts, lists, tuples), and gradients
come back shaped like the argument trees. The floating-point leaves of the
differentiated arguments are traced (see ``ops.core`` for what that records);
everything else passes through untouched and costs nothing: a value that does
not depend on a differentiated argument is never traced, so no gradient is
computed for it (data, labels, keys). A float leaf the output does not depend
on gets a zero gradient; a non-float leaf (integer ids, ``None``) gets ``None``.

Gradients of gradients are not supported: differentiating a function that
itself calls ``grad`` on a traced value is a ``TracingError``.
"""
import functools

import numpy as np

from .ops.core import ACTIVE, Node, Primitive, Trace, Traced, TracingError, backward_pass


def _is_leaf_array(x):
    return isinstance(x, (np.ndarray, np.generic, float, int, bool, complex)) or x is None


def _path_to(tree, leaf, path=""):
    """The "/"-joined path of ``leaf`` (by identity) in ``tree``, for error messages."""
    if tree is leaf:
        return path
    items = (tree.items() if isinstance(tree, dict) else
             enumerate(tree) if isinstance(tree, (list, tuple)) else ())
    for k, v in items:
        found = _path_to(v, leaf, f"{path}/{k}")
        if found is not None:
            return found
    return None


def _trace_tree(tree, trace, where, strict=True):
    """``(traced tree, [(argument node or None, value)])`` for one argument.

    ``strict``: a leaf that is neither an array nor a number is a TypeError (``grad``);
    otherwise it passes through untraced (``vjp`` of a function with settings)."""
    leaves = []
    return _trace_leaves(tree, tree, trace, where, strict, leaves), leaves


def _trace_leaves(node, tree, trace, where, strict, leaves):
    """``_trace_tree``'s walk: ``node`` traced, its leaves appended to ``leaves``."""
    kind = type(node)
    if kind is dict:
        return {k: _trace_leaves(v, tree, trace, where, strict, leaves) for k, v in node.items()}
    if kind is np.ndarray and node.dtype.kind in "fc":
        arg_node = Node("argument", trace)
        leaves.append((arg_node, node))
        return Traced(node, arg_node)
    if isinstance(node, (list, tuple)):
        return type(node)(_trace_leaves(v, tree, trace, where, strict, leaves) for v in node)
    if kind is Traced:
        raise TracingError("higher-order gradients (grad of grad) are not supported: "
                           f"{where}{_path_to(tree, node)} is already being differentiated")
    if strict and not _is_leaf_array(node):
        raise TypeError(f"{where}{_path_to(tree, node)} is a {kind.__name__}; differentiated "
                        "arguments must be arrays, numbers, or dicts/lists/tuples of them")
    if isinstance(node, (float, np.floating, np.complexfloating, complex)):
        value = np.asarray(node)
        arg_node = Node("argument", trace)
        leaves.append((arg_node, value))
        return Traced(value, arg_node)
    leaves.append((None, node))
    return node


def _gradient_tree(tree, leaves, grads, handed_out):
    """The gradient of one argument, shaped like it, from the backward pass's results.

    Two leaves never share one array (``a + b`` sends the same gradient to both), so
    a caller may change one in place; ``handed_out`` holds the ids already returned."""
    return _gradient_leaves(tree, iter(leaves), grads, handed_out)


def _gradient_leaves(node, leaves, grads, handed_out):
    """``_gradient_tree``'s walk, taking the leaves from the iterator ``leaves`` in order."""
    kind = type(node)
    if kind is dict:
        return {k: _gradient_leaves(v, leaves, grads, handed_out) for k, v in node.items()}
    if kind is not np.ndarray and isinstance(node, (list, tuple)):
        return type(node)(_gradient_leaves(v, leaves, grads, handed_out) for v in node)
    arg_node, value = next(leaves)
    if arg_node is None:
        return None
    g = grads.get(arg_node)
    if g is None:
        return np.zeros_like(value)
    if id(g) in handed_out:
        g = np.array(g)
    handed_out.add(id(g))
    return g


def _run(f, args, argnums, kwargs, strict=True):
    """Call ``f`` with the arguments in ``argnums`` traced: ``(out, [(arg, leaves)], trace)``.

    The trace and its nodes refer to each other (each node names its trace, the trace
    lists its nodes), so a trace no longer needed must have its tape cleared: left to
    the garbage collector, every step's activations would outlive the step."""
    trace = Trace()
    traced_args, record = list(args), []
    for i in argnums:
        if not -len(args) <= i < len(args):
            raise TypeError(f"argnums {i} is out of range for {len(args)} positional argument(s)")
        traced_args[i], leaves = _trace_tree(args[i], trace, f"argument {i}", strict)
        record.append((args[i], leaves))
    ACTIVE.append(trace)
    try:
        out = f(*traced_args, **kwargs)
    except BaseException:
        trace.tape.clear()
        raise
    finally:
        ACTIVE.pop()
    return out, record, trace


def stop_gradient(x):
    """``x`` with every traced value replaced by its plain array: a constant for ``grad``."""
    if isinstance(x, dict):
        return {k: stop_gradient(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(stop_gradient(v) for v in x)
    return x.value if type(x) is Traced else x


def _scalar_seed(value, fname):
    if isinstance(value, (tuple, list, dict)):
        raise TypeError(f"grad: {fname} returned a {type(value).__name__}, not a scalar; pass "
                        "has_aux=True if it returns (value, aux), or use purenet.vjp")
    v = value.value if type(value) is Traced else value
    if np.ndim(v) != 0 or getattr(np.asarray(v), "dtype", np.dtype(object)).kind not in "fc":
        raise TypeError(f"grad: {fname} must return a float scalar (shape ()), got "
                        f"{type(v).__name__} of shape {np.shape(v)}; use purenet.vjp for "
                        "non-scalar outputs" + (", or has_aux=True to return (value, aux)"
                                                if isinstance(v, tuple) else ""))
    return np.ones((), dtype=np.asarray(v).dtype)


def value_and_grad(f, argnums=0, has_aux=False):
    """A function returning ``(f(*args), gradient)``: the gradient of scalar ``f`` with
    respect to argument ``argnums`` (a tuple of ints gives a tuple of gradients).

    With ``has_aux=True``, ``f`` returns ``(value, aux)`` and the result is
    ``((value, aux), gradient)``; ``aux`` (a batch-norm state, say) is not differentiated.
    """
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)
    fname = getattr(f, "__name__", "the function")

    def wrapped(*args, **kwargs):
        out, record, trace = _run(f, args, nums, kwargs)
        try:
            if has_aux:
                if not (isinstance(out, tuple) and len(out) == 2):
                    raise TypeError(f"grad: with has_aux=True, {fname} must return (value, aux)")
                out, aux = out
            seed = _scalar_seed(out, fname)
            grads = backward_pass([(out, seed)], consume=True) if type(out) is Traced else {}
        finally:
            trace.tape.clear()
        handed_out = set()
        gradients = tuple(_gradient_tree(arg, leaves, grads, handed_out) for arg, leaves in record)
        value = stop_gradient(out)
        result = (value, stop_gradient(aux)) if has_aux else value
        return result, gradients[0] if single else gradients

    return wrapped


def grad(f, argnums=0, has_aux=False):
    """The gradient function of scalar ``f``: ``grad(f)(x)`` is shaped like ``x``.

        grad(lambda x: (4 * x + 3) ** 2)(2.0)       # 8 (4x + 3) = 88.0

    With ``has_aux=True`` it returns ``(gradient, aux)``.
    """
    vg = value_and_grad(f, argnums, has_aux)

    def wrapped(*args, **kwargs):
        value, gradient = vg(*args, **kwargs)
        return (gradient, value[1]) if has_aux else gradient

    return wrapped


def vjp(f, *args):
    """``(out, pullback)``: ``out = f(*args)`` (any tree of arrays) and ``pullback(g)``,
    which maps a cotangent ``g`` shaped like ``out`` to one gradient per argument.

    The pullback may be called more than once.
    """
    out, record, _ = _run(f, args, range(len(args)), {}, strict=False)

    def pullback(g):
        seeds = []
        for o, gi in _paired_leaves(out, g):
            if type(o) is Traced and gi is not None:
                if np.shape(gi) != o.shape:
                    raise TypeError(f"vjp: cotangent has shape {np.shape(gi)}, output has "
                                    f"shape {o.shape}")
                seeds.append((o, np.asarray(gi, dtype=o.dtype)))
        grads, handed_out = backward_pass(seeds), set()
        return tuple(_gradient_tree(arg, leaves, grads, handed_out) for arg, leaves in record)

    return stop_gradient(out), pullback


def _paired_leaves(out, g):
    """``[(output leaf, cotangent leaf)]``, matching dict keys by name and sequences by
    position; a cotangent of another structure is a TypeError."""
    if isinstance(out, dict):
        if not isinstance(g, dict) or set(g) != set(out):
            raise TypeError(f"vjp: the cotangent's structure differs from the output's: "
                            f"expected a dict with keys {sorted(out)}")
        return [pair for k in out for pair in _paired_leaves(out[k], g[k])]
    if isinstance(out, (list, tuple)):
        if not isinstance(g, (list, tuple)) or len(g) != len(out):
            raise TypeError(f"vjp: the cotangent's structure differs from the output's: "
                            f"expected a sequence of {len(out)} items")
        return [pair for o, gi in zip(out, g) for pair in _paired_leaves(o, gi)]
    return [(out, g)]


def _primitive_vjp(prim, *args, **settings):
    """``prim.vjp(*args, **settings)``: ``vjp`` of the primitive with those settings."""
    return vjp(functools.partial(prim, **settings) if settings else prim, *args)


Primitive.vjp = _primitive_vjp      # defined here, so the engine's core never imports this module
