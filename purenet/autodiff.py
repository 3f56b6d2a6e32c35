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
import numpy as np

from .ops.core import ACTIVE, Node, Trace, Traced, TracingError, backward_pass


def _is_leaf_array(x):
    return isinstance(x, (np.ndarray, np.generic, float, int, bool, complex)) or x is None


def _trace_tree(tree, trace, where):
    """``(traced tree, [(path, argument node or None, value)])`` for one argument."""
    leaves = []

    def visit(node, path):
        if isinstance(node, dict):
            return {k: visit(v, f"{path}/{k}") for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return type(node)(visit(v, f"{path}/{i}") for i, v in enumerate(node))
        if type(node) is Traced:
            raise TracingError("higher-order gradients (grad of grad) are not supported: "
                               f"{where}{path} is already being differentiated")
        if not _is_leaf_array(node):
            raise TypeError(f"{where}{path} is a {type(node).__name__}; differentiated arguments "
                            "must be arrays, numbers, or dicts/lists/tuples of them")
        if isinstance(node, float) or (isinstance(node, (np.ndarray, np.generic))
                                       and node.dtype.kind in "fc"):
            value = np.asarray(node)
            arg_node = Node("argument", trace)
            leaves.append((path, arg_node, value))
            return Traced(value, arg_node)
        leaves.append((path, None, node))
        return node

    return visit(tree, ""), leaves


def _gradient_tree(tree, leaves, grads):
    """The gradient of one argument, shaped like it, from the backward pass's results."""
    it = iter(leaves)

    def build(node):
        if isinstance(node, dict):
            return {k: build(v) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return type(node)(build(v) for v in node)
        _, arg_node, value = next(it)
        if arg_node is None:
            return None
        g = grads.get(arg_node)
        return np.zeros_like(value) if g is None else g
    return build(tree)


def _run(f, args, argnums, kwargs):
    """Call ``f`` with the arguments in ``argnums`` traced: ``(out, [(arg, leaves)])``."""
    trace = Trace()
    traced_args, record = list(args), []
    for i in argnums:
        if not -len(args) <= i < len(args):
            raise TypeError(f"argnums {i} is out of range for {len(args)} positional argument(s)")
        traced_args[i], leaves = _trace_tree(args[i], trace, f"argument {i}")
        record.append((args[i], leaves))
    ACTIVE.append(trace)
    try:
        out = f(*traced_args, **kwargs)
    finally:
        ACTIVE.pop()
    return out, record


def stop_gradient(x):
    """``x`` with every traced value replaced by its plain array: a constant for ``grad``."""
    if isinstance(x, dict):
        return {k: stop_gradient(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(stop_gradient(v) for v in x)
    return x.value if type(x) is Traced else x


def _scalar_seed(value, fname):
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
        out, record = _run(f, args, nums, kwargs)
        if has_aux:
            if not (isinstance(out, tuple) and len(out) == 2):
                raise TypeError(f"grad: with has_aux=True, {fname} must return (value, aux)")
            out, aux = out
        seed = _scalar_seed(out, fname)
        grads = backward_pass([(out, seed)], consume=True) if type(out) is Traced else {}
        gradients = tuple(_gradient_tree(arg, leaves, grads) for arg, leaves in record)
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
    out, record = _run(f, args, range(len(args)), {})

    def pullback(g):
        seeds = []
        for o, gi in zip(_leaves(out), _leaves_like(g, out)):
            if type(o) is Traced and gi is not None:
                if np.shape(gi) != o.shape:
                    raise TypeError(f"vjp: cotangent has shape {np.shape(gi)}, output has "
                                    f"shape {o.shape}")
                seeds.append((o, np.asarray(gi, dtype=o.dtype)))
        grads = backward_pass(seeds)
        return tuple(_gradient_tree(arg, leaves, grads) for arg, leaves in record)

    return stop_gradient(out), pullback


def _leaves(tree):
    if isinstance(tree, dict):
        return [leaf for v in tree.values() for leaf in _leaves(v)]
    if isinstance(tree, (list, tuple)):
        return [leaf for v in tree for leaf in _leaves(v)]
    return [tree]


def _leaves_like(g, out):
    """The leaves of cotangent ``g``, which must have ``out``'s tree structure."""
    leaves = _leaves(g)
    if len(leaves) != len(_leaves(out)):
        raise TypeError("vjp: the cotangent's tree structure differs from the output's")
    return leaves
