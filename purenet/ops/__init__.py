"""Primitives: pure forward functions with their hand-derived backward passes."""
from .core import Primitive, Traced, TracingError, primitive, unbroadcast
from .activations import (elu, identity, leaky_relu, log_softmax, relu, sigmoid, softmax,
                          softplus, tanh)
from .conv import conv1d, conv2d
from .conv_transpose import conv_transpose1d, conv_transpose2d, upsample2d
from .embedding import embedding
from .linear import add_bias, flatten, linear, matmul, reshape
from .normalization import batch_norm, batch_norm_inference
from .numeric import (absolute, add, cast, concatenate, divide, exp, getitem, log, max, maximum,
                      mean, minimum, multiply, negative, power, sqrt, stack, subtract, sum,
                      transpose, unstack, where)
from .pooling import avg_pool1d, avg_pool2d, global_avg_pool2d, max_pool1d, max_pool2d
from .recurrent import gru_sequence, lstm_sequence, rnn_sequence, scan
