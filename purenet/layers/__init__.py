"""Layers: pure (init, apply) pairs built from primitives, and combinators."""
from .base import LAYER_TYPES, Layer, layer_constructor, serial
from .core import Activation, Dense, Dropout, Flatten, Reshape
