"""Layers: pure (init, apply) pairs built from primitives, and combinators."""
from .base import LAYER_TYPES, Layer, check_params, layer_constructor, residual, serial
from .conv import AvgPool1D, AvgPool2D, Conv1D, Conv2D, GlobalAvgPool2D, MaxPool1D, MaxPool2D
from .conv_transpose import Conv1DTranspose, Conv2DTranspose, UpSampling2D
from .core import Activation, Dense, Dropout, Flatten, Reshape
from .embedding import Embedding
from .normalization import BatchNorm
from .recurrent import GRU, LSTM, Bidirectional, Recurrent, SimpleRNN, reset_states
