"""Parameter trees: nested dicts, lists and tuples whose leaves are arrays.

Params, gradients and optimizer state are all trees of the same structure, so
one small set of functions serves optimizers, checkpoints and gradient tools.
A leaf is anything that is not a dict, list or tuple (usually an ndarray).
"""
import numpy as np


def is_container(node):
    return isinstance(node, (dict, list, tuple))


def tree_map(fn, tree, *rest):
    """Apply ``fn`` leaf-wise over ``tree`` and trees of the same structure."""
    if type(tree) is np.ndarray:            # the common leaf, tested first
        return fn(tree, *rest)
    if isinstance(tree, dict):
        if not rest:                        # the common cases, spelt out
            return {k: fn(v) if type(v) is np.ndarray else tree_map(fn, v)
                    for k, v in tree.items()}
        if len(rest) == 1:
            other = rest[0]
            return {k: fn(v, other[k]) if type(v) is np.ndarray else tree_map(fn, v, other[k])
                    for k, v in tree.items()}
        return {k: fn(v, *[r[k] for r in rest]) if type(v) is np.ndarray
                else tree_map(fn, v, *[r[k] for r in rest]) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        mapped = [tree_map(fn, v, *[r[i] for r in rest]) for i, v in enumerate(tree)]
        return type(tree)(mapped)
    return fn(tree, *rest)


def tree_leaves(tree):
    """All leaves in a fixed (insertion) order."""
    return [leaf for _, leaf in tree_flatten_with_paths(tree)]


def tree_flatten_with_paths(tree, prefix=""):
    """List of ``(path, leaf)``; paths join keys with "/" (e.g. "dense_0/W")."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, (list, tuple)):
        items = enumerate(tree)
    else:
        return [(prefix, tree)]
    out = []
    for k, v in items:
        out.extend(tree_flatten_with_paths(v, f"{prefix}/{k}" if prefix else str(k)))
    return out


def tree_unflatten_like(template, leaves):
    """Rebuild a tree shaped like ``template`` from leaves in flatten order."""
    it = iter(leaves)
    tree = tree_map(lambda _: next(it), template)
    if next(it, None) is not None:
        raise ValueError("more leaves than the template tree holds")
    return tree


def tree_zeros_like(tree):
    return tree_map(np.zeros_like, tree)


def tree_copy(tree):
    return tree_map(lambda a: np.array(a, copy=True), tree)


def tree_vdot(a, b):
    """Sum over leaves of <a_leaf, b_leaf> (as a Python float)."""
    return float(sum(np.vdot(x, y) for x, y in zip(tree_leaves(a), tree_leaves(b))))


def tree_global_norm(tree):
    return float(np.sqrt(sum(np.vdot(x, x) for x in tree_leaves(tree))))


def tree_size(tree):
    """Total number of scalars in the tree."""
    return int(sum(np.size(x) for x in tree_leaves(tree)))


def tree_astype(tree, dtype):
    return tree_map(lambda a: np.asarray(a, dtype=dtype), tree)


def tree_structure_equal(a, b):
    """True when both trees have the same containers, keys and leaf shapes."""
    pa, pb = tree_flatten_with_paths(a), tree_flatten_with_paths(b)
    return [(p, np.shape(x)) for p, x in pa] == [(p, np.shape(x)) for p, x in pb]
