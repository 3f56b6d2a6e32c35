"""The engine: primitives, traced values, and the tape that differentiates them.

A primitive is defined by ONE Python function that computes the forward value
and returns it together with its backward pass (a vector-Jacobian product):

    @primitive
    def square(x):
        y = x * x
        def backward(g):
            # d(x^2)/dx = 2x
            return (2 * x * g,)
        return y, backward

``backward(g)`` receives the gradient of the loss with respect to the output
and returns one gradient per positional argument. ``None`` declares the output
constant in that argument: right for integer labels or ids, but for a float
argument it means no gradient flows there (as with ``stop_gradient``), so a
primitive returns real gradients for its float arguments. Keyword arguments
are settings (an axis, a slope), never differentiated. A backward may take a
second argument, ``backward(g, needed)``: ``needed[i]`` says whether argument
``i`` wants a gradient, so an expensive one nobody asked for (the input
gradient of a network's first layer) can be skipped and returned as ``None``.

The output may be one array or a tuple (nested tuples allowed) of arrays, as
batch norm's ``(y, mean, var)``; then ``g`` has the same structure, with
``None`` for every output no gradient reached.

``square(x)`` gives ``y``; ``square.vjp(x)`` gives ``(y, pullback)`` (see
``purenet.autodiff``).

What is recorded, and when. Called on plain arrays, a primitive runs its
forward and nothing else: inference costs what NumPy costs. Inside ``grad``
(see ``purenet.autodiff``) the arguments being differentiated are wrapped in
``Traced`` values; a primitive that receives one or more of them unwraps them,
runs the same forward, and appends a ``Node`` to the trace's tape: its
backward, which of its arguments were traced (its parents) and their shapes.
Its outputs come back wrapped, so everything computed from a differentiated
argument is traced and everything else (data, labels, keys) is not.

How gradients flow. Nodes are appended in the order they run, so the tape in
reverse is a topological order. The backward pass seeds the output's gradient,
walks the tape backwards, calls each reached node's backward once with the sum
of the gradients of its outputs (a value used twice gets both contributions),
and adds what it returns into the parents. The engine, not each primitive,
does the generic parts:

* broadcasting: a gradient returned with the OUTPUT's shape for an input that
  was broadcast is summed back to the input's shape (``unbroadcast``);
* shape checks: any other gradient whose shape differs from its input's is a
  ``ShapeError`` naming the primitive and the argument.
"""
import functools
import itertools

import numpy as np

from ..errors import PurenetError, ShapeError


class TracingError(PurenetError, TypeError):
    """A traced value was used in a way the engine cannot differentiate."""


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched to reach ``shape``."""
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def _broadcasts_to(shape, target):
    """True when an array of ``shape`` broadcasts to ``target`` unchanged in size."""
    extra = len(target) - len(shape)
    return extra >= 0 and all(n == 1 or n == t for n, t in zip(shape, target[extra:]))


def fit_grad(name, i, grad, arg_shape, out_shape):
    """Give ``grad`` the shape ``arg_shape``, or raise a ShapeError naming the primitive."""
    grad_shape = grad.shape if type(grad) is np.ndarray else np.shape(grad)
    if grad_shape == arg_shape:
        return grad
    if grad_shape == out_shape and _broadcasts_to(arg_shape, out_shape):
        return unbroadcast(np.asarray(grad), arg_shape)
    raise ShapeError(
        f"primitive '{name}': gradient for argument {i} has shape {grad_shape}, "
        f"but the argument has shape {arg_shape}"
    )


# --- traced values and the tape ------------------------------------------------

class Trace:
    """One differentiation in progress: the tape of nodes in the order they ran."""

    __slots__ = ("tape",)

    def __init__(self):
        self.tape = []


ACTIVE = []     # the traces being recorded, innermost last


class Node:
    """One recorded primitive call (or, with ``backward=None``, one traced argument)."""

    __slots__ = ("name", "trace", "backward", "parents", "needed", "outputs")

    def __init__(self, name, trace, backward=None, parents=(), needed=(), outputs=None):
        self.name = name
        self.trace = trace
        self.backward = backward        # g -> gradients, one per positional argument
        self.parents = parents          # [(argnum, Traced, its shape), ...] of the traced arguments
        self.needed = needed            # (bool, ...): which arguments want a gradient
        self.outputs = outputs          # None: one array output; else the output tree


class Traced:
    """An array being differentiated: its ``value`` and the node (and output index) that made it.

    It behaves like an ndarray under NumPy-like operators (``+ * @ [] .T .sum()``,
    defined in ``ops.numeric``), each a primitive. It refuses to turn into a plain
    array silently, since that would drop its gradient: use ``stop_gradient`` for that.
    """

    __slots__ = ("value", "node", "index")
    __array_ufunc__ = None          # ndarray (op) Traced -> Traced's reflected operator
    __hash__ = object.__hash__

    def __init__(self, value, node, index=0):
        self.value = value
        self.node = node
        self.index = index

    shape = property(lambda self: self.value.shape)
    ndim = property(lambda self: self.value.ndim)
    dtype = property(lambda self: self.value.dtype)
    size = property(lambda self: self.value.size)

    def __len__(self):
        return len(self.value)

    def __array__(self, dtype=None, copy=None):
        raise TracingError(
            "a traced value (one being differentiated) cannot become a plain NumPy array: "
            "use purenet.ops functions and operators on it, or purenet.stop_gradient(x) "
            "to treat it as a constant")

    def __float__(self):
        self.__array__()

    def __bool__(self):
        return bool(self.value)     # control flow may read a value; it has no gradient

    def __repr__(self):
        return f"Traced({self.value!r})"


def _shape(v):
    return v.shape if type(v) is np.ndarray else np.shape(v)


def _foreign_trace_error():
    return TracingError(
        "a traced value was used outside the grad that made it, or inside a nested grad: "
        "higher-order gradients (grad of grad) are not supported" if ACTIVE else
        "a traced value escaped the grad that made it (it was kept past the call); "
        "return plain results or use purenet.stop_gradient")


def _is_float(value):
    if type(value) is np.ndarray:
        return value.dtype.kind in "fc"
    return getattr(value, "dtype", None) is not None and value.dtype.kind in "fc"


# The tree walks below recurse through module-level functions, not nested closures:
# a closure that calls itself is a reference cycle, which would keep whatever it
# refers to (nodes, gradients) alive until the garbage collector happens to run.

def _wrap_outputs(out, node, counter=None):
    """Wrap the floating-point leaves of a tuple output, numbering them in flatten order."""
    counter = itertools.count() if counter is None else counter
    if isinstance(out, tuple):
        return tuple(_wrap_outputs(v, node, counter) for v in out)
    index = next(counter)
    return Traced(out, node, index) if _is_float(out) else out


class Primitive:
    """A forward function paired with its hand-derived backward; see the module docstring."""

    def __init__(self, fn, name=None):
        self.fn = fn
        self.name = name or fn.__name__
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **settings):
        for a in args:
            if type(a) is Traced:
                return self._record(args, settings)
        return self.fn(*args, **settings)[0]

    def _record(self, args, settings):
        trace = ACTIVE[-1] if ACTIVE else None
        values, needed, parents = list(args), [False] * len(args), []
        for i, a in enumerate(args):
            if type(a) is Traced:
                if a.node.trace is not trace:
                    raise _foreign_trace_error()
                values[i] = v = a.value
                needed[i] = True
                parents.append((i, a, v.shape))
        out, backward = self.fn(*values, **settings)
        tree = type(out) is tuple
        node = Node(self.name, trace, backward, parents, tuple(needed), out if tree else None)
        trace.tape.append(node)
        if tree:
            return _wrap_outputs(out, node)
        return Traced(out, node) if _is_float(out) else out

    def bind(self, **settings):
        """This primitive with some settings fixed: ``loss.bind(label_smoothing=0.1)``."""
        bound = functools.partial(self.fn, **settings)
        shown = ", ".join(f"{k}={v!r}" for k, v in settings.items())
        return Primitive(functools.update_wrapper(bound, self.fn), f"{self.name}({shown})")

    def __repr__(self):
        return f"<primitive {self.name}>"


def primitive(fn=None, *, name=None):
    """Decorator turning a ``forward -> (out, backward)`` function into a Primitive."""
    if fn is None:
        return lambda f: Primitive(f, name)
    return Primitive(fn, name)


# --- the backward pass ---------------------------------------------------------

def _output_grads(outputs, slots, counter=None):
    """The gradient a multi-output node's backward receives: a tree like its ``outputs``,
    leaf ``k`` (in flatten order) being ``slots.get(k)``."""
    counter = itertools.count() if counter is None else counter
    if isinstance(outputs, tuple):
        return tuple(_output_grads(v, slots, counter) for v in outputs)
    return slots.get(next(counter))


def _call_backward(node, g):
    backward = node.backward
    try:
        takes_needed = backward.__code__.co_argcount >= 2
    except AttributeError:          # a callable object or partial: backward(g)
        takes_needed = False
    grads = backward(g, node.needed) if takes_needed else backward(g)
    if type(grads) is not tuple or len(grads) != len(node.needed):
        raise ShapeError(f"primitive '{node.name}': backward must return a tuple of "
                         f"{len(node.needed)} gradient(s), one per positional argument")
    return grads


def _accumulate(grads, box, g):
    """Add ``g`` into the gradient of ``box``: an array per single-output node, a dict
    ``{output index: array}`` per multi-output node."""
    node = box.node
    if node.outputs is None:
        total = grads.get(node)
        grads[node] = g if total is None else total + g
    else:
        slots = grads.setdefault(node, {})
        total = slots.get(box.index)
        slots[box.index] = g if total is None else total + g


def backward_pass(seeds, consume=False):
    """Run the tape backwards from ``seeds``, a list of ``(Traced, gradient)``.

    Returns ``{argument node: gradient}`` for the argument nodes reached (the caller
    reads those). ``consume=True`` drops each backward once it has run, freeing what
    it kept of the forward pass as early as possible.
    """
    grads = {}
    for box, g in seeds:
        _accumulate(grads, box, g)
    if not seeds:
        return grads
    for node in reversed(seeds[0][0].node.trace.tape):
        g = grads.pop(node, None)
        if g is None:
            continue
        single = node.outputs is None
        all_grads = _call_backward(node, g if single else _output_grads(node.outputs, g))
        if consume:
            node.backward = None
        for i, parent, shape in node.parents:
            gi = all_grads[i]
            if gi is None:          # the primitive is constant in this argument
                continue
            if type(gi) is not np.ndarray or gi.shape != shape:
                gi = fit_grad(node.name, i, gi, shape, _shape(g) if single else None)
            target = parent.node
            if target.outputs is None:          # inline _accumulate: the common case
                total = grads.get(target)
                grads[target] = gi if total is None else total + gi
            else:
                _accumulate(grads, parent, gi)
    return grads
