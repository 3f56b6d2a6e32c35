"""The embedding layer: integer ids (batch, ...) -> vectors (batch, ..., dim)."""
from .. import initializers
from ..ops.embedding import embedding
from .base import Layer, layer_constructor, positive_int


@layer_constructor
def Embedding(vocab_size, dim, init="glorot_uniform"):
    """A learned table of ``vocab_size`` vectors of size ``dim``, looked up by id.

    Input: integer ids ``(batch, time)`` (any number of axes after the batch);
    output ``(batch, time, dim)``; params ``{"table": (vocab_size, dim)}``. An id
    outside ``0..vocab_size-1`` is a DataError naming it. The ids have no gradient.
    """
    vocab_size = positive_int(vocab_size, "Embedding: vocab_size")
    dim = positive_int(dim, "Embedding: dim")
    table_init = initializers.get(init)

    def init_fn(key, in_shape, dtype):
        return tuple(in_shape) + (dim,), {"table": table_init(key, (vocab_size, dim), dtype)}, {}

    def apply(params, state, x, train, key):
        return embedding(x, params["table"]), state

    return Layer("embedding", init_fn, apply)
