"""NumPy-like primitives, and the operators of traced values that call them.

Each is a primitive with its hand-derived backward; on plain arrays each is the
NumPy function it names (no recording). Inside ``grad`` a traced value ``x``
supports ``x + y``, ``x - y``, ``x * y``, ``x / y``, ``x ** p``, ``x @ w``,
``-x``, ``abs(x)``, ``x[index]``, ``x.T``, ``x.transpose(axes)``,
``x.reshape(shape)``, ``x.sum/mean/max(axis, keepdims)``; comparisons give plain
boolean arrays (they have no gradient). Binary operators broadcast like NumPy;
the engine sums gradients back to each input's shape.

Ties: ``max`` and ``maximum``/``minimum`` split the gradient equally among the
tied elements (the average of the one-sided derivatives).
"""
import numpy as np

from .activations import tanh
from .core import Traced, TracingError, primitive
from .linear import matmul, reshape

try:
    from numpy.exceptions import AxisError
except ImportError:                     # NumPy < 1.25
    from numpy import AxisError


# --- elementwise arithmetic -----------------------------------------------------

@primitive
def add(a, b):
    # d(a + b) = da + db; broadcast axes are summed back by the engine
    return np.add(a, b), lambda g: (g, g)


@primitive
def subtract(a, b):
    # d(a - b) = da - db
    return np.subtract(a, b), lambda g, needed: (g, -g if needed[1] else None)


@primitive
def multiply(a, b):
    def backward(g, needed):
        # d(a b) = b da + a db
        return (g * b if needed[0] else None), (g * a if needed[1] else None)

    return np.multiply(a, b), backward


@primitive
def divide(a, b):
    y = np.divide(a, b)

    def backward(g, needed):
        # d(a / b) = da / b - (a / b^2) db = (da - y db) / b
        ga = g / b
        return (ga if needed[0] else None), (-ga * y if needed[1] else None)

    return y, backward


@primitive
def power(x, p):
    y = np.power(x, p)

    def backward(g, needed):
        # d x^p / dx = p x^(p-1);  d x^p / dp = x^p log x  (x > 0), which tends to 0 at x = 0
        dx = g * p * np.power(x, p - 1) if needed[0] else None
        dp = None
        if needed[1]:
            zero = x == 0
            dp = g * np.where(zero, 0, y * np.log(np.where(zero, 1, x)))
        return dx, dp

    return y, backward


@primitive
def negative(x):
    return np.negative(x), lambda g: (-g,)


@primitive
def exp(x):
    y = np.exp(x)
    # d e^x / dx = e^x
    return y, lambda g: (g * y,)


@primitive
def log(x):
    # d log x / dx = 1 / x
    return np.log(x), lambda g: (g / x,)


@primitive
def sqrt(x):
    y = np.sqrt(x)
    # d sqrt(x) / dx = 1 / (2 sqrt(x))
    return y, lambda g: (g / (2 * y),)


@primitive
def absolute(x):
    # d |x| / dx = sign(x) (0 at 0)
    return np.abs(x), lambda g: (g * np.sign(x),)


def _tie_split(mask_a, mask_b, dtype):
    """Weights of the two inputs of maximum/minimum: 1 where one wins, 1/2 at ties.

    They are made in the gradient's dtype, so float32 gradients stay float32."""
    half = np.asarray(0.5, dtype) * (mask_a == mask_b)
    return mask_a + half, mask_b + half


@primitive
def maximum(a, b):
    def backward(g):
        # the gradient goes to the larger input; ties split it in half
        wa, wb = _tie_split(a > b, b > a, g.dtype)
        return g * wa, g * wb

    return np.maximum(a, b), backward


@primitive
def minimum(a, b):
    def backward(g):
        # the gradient goes to the smaller input; ties split it in half
        wa, wb = _tie_split(a < b, b < a, g.dtype)
        return g * wa, g * wb

    return np.minimum(a, b), backward


@primitive
def where(condition, a, b):
    """``a`` where ``condition`` holds, else ``b``; each branch gets the gradient where it was chosen."""
    condition = np.asarray(condition, dtype=bool)

    def backward(g, needed):
        # y = a on the chosen positions, b elsewhere
        zero = np.zeros((), g.dtype)
        return (None, np.where(condition, g, zero) if needed[1] else None,
                np.where(condition, zero, g) if needed[2] else None)

    return np.where(condition, a, b), backward


@primitive
def cast(x, dtype):
    """``x`` as ``dtype``; the gradient is cast back to ``x``'s dtype."""
    return np.asarray(x, dtype=dtype), lambda g: (g.astype(x.dtype), None)


# --- reductions -------------------------------------------------------------------

def _axes(axis, ndim):
    """``axis`` (None, an int or a sequence of ints) as a tuple of non-negative axes.

    An axis outside ``[-ndim, ndim)`` is an AxisError, as in NumPy (wrapping it
    around would silently reduce or permute the wrong axis)."""
    if axis is None:
        return tuple(range(ndim))
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    for a in axes:
        if not -ndim <= a < ndim:
            raise AxisError(a, ndim)
    return tuple(a % ndim for a in axes)


def _spread(g, shape, axes, keepdims):
    """``g`` of a reduction over ``axes`` broadcast back to ``shape`` (a new array)."""
    if not keepdims:
        g = np.expand_dims(g, axes)
    out = np.empty(shape, dtype=g.dtype)
    out[...] = g
    return out


@primitive
def sum(x, *, axis=None, keepdims=False):   # noqa: A001  (NumPy's name)
    axes = _axes(axis, np.ndim(x))
    # d sum(x) / dx_i = 1: every element of a reduced group gets the group's gradient
    return np.sum(x, axis=axes, keepdims=keepdims), lambda g: (_spread(g, x.shape, axes, keepdims),)


@primitive
def mean(x, *, axis=None, keepdims=False):
    axes = _axes(axis, np.ndim(x))
    count = int(np.prod([x.shape[a] for a in axes]))

    def backward(g):
        # d mean(x) / dx_i = 1 / count
        return (_spread(g / count, x.shape, axes, keepdims),)

    return np.mean(x, axis=axes, keepdims=keepdims), backward


@primitive
def max(x, *, axis=None, keepdims=False):   # noqa: A001
    axes = _axes(axis, np.ndim(x))
    y = np.max(x, axis=axes, keepdims=True)

    def backward(g):
        # the gradient goes to the maximum of each group, split equally among ties
        hit = x == y
        share = (hit / hit.sum(axis=axes, keepdims=True)).astype(g.dtype, copy=False)
        return (share * (g if keepdims else np.expand_dims(g, axes)),)

    return (y if keepdims else np.squeeze(y, axes)), backward


# --- indexing and rearranging -----------------------------------------------------

def _is_basic(index):
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, np.integer, slice)) or p is None or p is Ellipsis
               for p in parts)


@primitive
def getitem(x, index):
    """``x[index]``: basic (slices, ints) or advanced (integer or boolean arrays) indexing."""
    def backward(g):
        # each selected element passes its gradient back; repeated picks add up
        dx = np.zeros(x.shape, dtype=g.dtype)
        if _is_basic(index):
            dx[index] = g
        else:
            np.add.at(dx, index, g)
        return dx, None

    return x[index], backward


@primitive
def transpose(x, axes=None):
    axes = tuple(reversed(range(np.ndim(x)))) if axes is None else _axes(axes, np.ndim(x))

    def backward(g, needed):
        # a permutation of axes: the gradient is permuted back by the inverse permutation;
        # one gradient per positional argument, whether ``axes`` was passed or not
        return (np.transpose(g, np.argsort(axes)),) + (None,) * (len(needed) - 1)

    return np.transpose(x, axes), backward


@primitive
def _concatenate(*xs, axis=0):
    ends = np.cumsum([x.shape[axis] for x in xs])[:-1]
    # each input receives its own slice of the gradient
    return np.concatenate(xs, axis=axis), lambda g: tuple(np.split(g, ends, axis=axis))


def concatenate(xs, axis=0):
    """Join a sequence of arrays along an existing axis."""
    return _concatenate(*xs, axis=axis)


@primitive
def _stack(*xs, axis=0):
    # input k is slice k of the output along the new axis
    y = np.stack(xs, axis=axis)
    return y, lambda g: tuple(np.moveaxis(g, axis, 0))


def stack(xs, axis=0):
    """Join a sequence of same-shaped arrays along a new axis."""
    return _stack(*xs, axis=axis)


@primitive
def unstack(x, *, axis=0):
    """The slices of ``x`` along ``axis``, as a tuple (the adjoint of ``stack``)."""
    def backward(gs):
        # the gradient of x stacks the slices' gradients; slices nobody used get zeros
        zero = None
        parts = []
        for gi in gs:
            if gi is None:
                if zero is None:
                    zero = np.zeros(np.delete(x.shape, axis), x.dtype)
                gi = zero
            parts.append(gi)
        return (np.stack(parts, axis=axis),)

    return tuple(np.moveaxis(x, axis, 0)), backward


# --- operators of traced values ---------------------------------------------------

def _method(fn, reflected=False):
    if reflected:
        return lambda self, other: fn(other, self)
    return lambda self, other: fn(self, other)


def _method_axes(axes):
    """The axes of ``x.transpose()``, ``x.transpose(1, 0, 2)`` or ``x.transpose((1, 0, 2))``."""
    if len(axes) == 1 and not isinstance(axes[0], (int, np.integer)):
        axes = axes[0]
    return axes or None


def _comparison(op):
    return lambda self, other: op(self.value, other.value if type(other) is Traced else other)


for _name, _fn in (("add", add), ("sub", subtract), ("mul", multiply), ("truediv", divide),
                   ("pow", power), ("matmul", matmul)):
    setattr(Traced, f"__{_name}__", _method(_fn))
    setattr(Traced, f"__r{_name}__", _method(_fn, reflected=True))
for _name, _op in (("lt", np.less), ("le", np.less_equal), ("gt", np.greater),
                   ("ge", np.greater_equal), ("eq", np.equal), ("ne", np.not_equal)):
    setattr(Traced, f"__{_name}__", _comparison(_op))

_UFUNCS = {np.add: add, np.subtract: subtract, np.multiply: multiply, np.true_divide: divide,
           np.power: power, np.negative: negative, np.exp: exp, np.log: log, np.sqrt: sqrt,
           np.absolute: absolute, np.maximum: maximum, np.minimum: minimum, np.matmul: matmul,
           np.tanh: tanh}
_COMPARISONS = (np.less, np.less_equal, np.greater, np.greater_equal, np.equal, np.not_equal)


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    """NumPy ufuncs on traced values: the ones with a primitive run it (``np.exp(x)``,
    ``ndarray + x``); comparisons compare values; any other is a clear error."""
    if method == "__call__" and not kwargs:
        if ufunc in _UFUNCS:
            return _UFUNCS[ufunc](*inputs)
        if ufunc in _COMPARISONS:
            return ufunc(*(i.value if type(i) is Traced else i for i in inputs))
    how = "" if method == "__call__" and not kwargs else f" (as {method} with {sorted(kwargs)})"
    raise TracingError(f"np.{ufunc.__name__}{how} has no gradient in purenet; use a purenet.ops "
                       "primitive, or define one with @purenet.primitive")


Traced.__array_ufunc__ = _array_ufunc
Traced.__neg__ = lambda self: negative(self)
Traced.__abs__ = lambda self: absolute(self)
Traced.__getitem__ = lambda self, index: getitem(self, index)
Traced.T = property(lambda self: transpose(self))
Traced.transpose = lambda self, *axes: transpose(self, _method_axes(axes))
Traced.reshape = lambda self, *shape: reshape(self, shape[0] if len(shape) == 1 else shape)
Traced.astype = lambda self, dtype: cast(self, dtype)


def _reduction_method(fn):
    """``x.sum/mean/max(axis, keepdims)``; NumPy's ``np.sum(x)`` (and mean, max) call these
    with ``dtype=`` and ``out=`` too, so they are accepted: a dtype casts the result."""
    def method(self, axis=None, keepdims=False, *, dtype=None, out=None):
        if out is not None:
            raise TracingError(f"{fn.name}(out=...) would write a traced value into a plain "
                               "array; use the returned value instead")
        y = fn(self, axis=axis, keepdims=keepdims)
        return y if dtype is None else cast(y, dtype)
    return method


Traced.sum = _reduction_method(sum)
Traced.mean = _reduction_method(mean)
Traced.max = _reduction_method(max)
