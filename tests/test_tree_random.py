"""Param trees and explicit random keys."""
import numpy as np
import pytest

from purenet import random as pr
from purenet.tree import (tree_flatten_with_paths, tree_global_norm, tree_map, tree_size,
                          tree_unflatten_like, tree_vdot)


def test_tree_map_keeps_structure_and_paths():
    tree = {"a": {"W": np.ones((2, 2)), "b": np.zeros(2)}, "c": [np.ones(1), (np.ones(3),)], "d": {}}
    doubled = tree_map(lambda x: 2 * x, tree)
    assert [p for p, _ in tree_flatten_with_paths(doubled)] == ["a/W", "a/b", "c/0", "c/1/0"]
    assert isinstance(doubled["c"][1], tuple) and doubled["d"] == {}
    assert tree_size(tree) == 10
    assert tree_vdot(tree, doubled) == 2 * 8
    assert tree_global_norm(doubled) == pytest.approx(np.sqrt(4 * 8))
    rebuilt = tree_unflatten_like(tree, [np.full(np.shape(x), 5.0) for _, x in tree_flatten_with_paths(tree)])
    assert rebuilt["a"]["W"][0, 0] == 5.0 and rebuilt["c"][1][0].shape == (3,)


def test_keys_are_deterministic_and_independent():
    k = pr.key(42)
    a, b = pr.split(k)
    assert pr.generator(a).random() == pr.generator(pr.split(pr.key(42))[0]).random()
    assert pr.generator(a).random() != pr.generator(b).random()
    assert pr.generator(pr.fold_in(k, 3)).random() != pr.generator(pr.fold_in(k, 4)).random()
    with pytest.raises(ValueError):
        pr.key(-1)
    with pytest.raises(TypeError, match="key"):
        pr.generator(42)
