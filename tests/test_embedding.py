"""Embedding lookup: gradient (scatter-add) against central differences, errors, the layer."""
import numpy as np
import pytest

import purenet
from purenet.errors import ConfigError, DataError
from purenet.layers.embedding import Embedding
from purenet.ops.embedding import embedding, scatter_add_rows
from purenet.random import key
from purenet.testing import check_grads, check_layer_grads


def table(v=6, d=3, seed=0):
    return np.random.default_rng(seed).standard_normal((v, d))


@pytest.mark.parametrize("ids", [np.array([2]), np.array([[0, 5, 5], [1, 0, 5]]),
                                 np.zeros((2, 3, 2), dtype=np.int32)])
def test_embedding_gradient(ids):
    check_grads(embedding, ids, table())


def test_lookup_values_and_repeated_ids_sum():
    t = table()
    ids = np.array([[1, 1], [4, 1]])
    np.testing.assert_array_equal(embedding(ids, t), t[ids])
    _, back = purenet.vjp(embedding, ids, t)
    none, dt = back(np.ones((2, 2, 3)))
    assert none is None
    _, backward = embedding.fn(ids, t)                   # the primitive's own backward
    assert backward(np.ones((2, 2, 3)))[0] is None
    np.testing.assert_array_equal(dt[:, 0], [0, 3, 0, 0, 1, 0])


def test_scatter_add_matches_add_at():
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 50, 400)
    grads = rng.standard_normal((400, 7)).astype(np.float32)
    expected = np.zeros((50, 7), np.float32)
    np.add.at(expected, ids, grads)
    got = scatter_add_rows(ids, grads, 50)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert scatter_add_rows(np.array([], int), np.zeros((0, 7)), 3).shape == (3, 7)


@pytest.mark.parametrize("bad, named", [(6, "6"), (-1, "-1"), (100, "100")])
def test_out_of_range_id_is_named(bad, named):
    with pytest.raises(DataError, match=rf"id {named}\b.*6 rows"):
        embedding(np.array([[0, bad]]), table())


def test_non_integer_ids_are_rejected():
    with pytest.raises(DataError, match="integers"):
        embedding(np.array([0.0, 1.0]), table())


def test_layer():
    layer = Embedding(10, 4)
    out_shape, params, state = layer.init(key(0), (7,))
    assert out_shape == (7, 4) and params["table"].shape == (10, 4) and state == {}
    assert params["table"].dtype == np.float32
    ids = np.random.default_rng(0).integers(0, 10, (2, 7))
    y = layer(params, ids)
    assert y.shape == (2, 7, 4) and y.dtype == np.float32
    _, params64, _ = layer.init(key(0), (7,), np.float64)
    check_layer_grads(layer, params64, ids)
    with pytest.raises(DataError, match="id 10 "):
        layer(params, np.array([[3, 10]]))
    with pytest.raises(ConfigError):
        Embedding(0, 4)
