"""purenet: deep learning from scratch on NumPy, in a functional style.

The layout is the architecture, bottom to top:

    ops/          primitives: forward + hand-derived backward in one function;
                  the engine that records them (ops/core.py)
    autodiff      grad, value_and_grad, vjp of any function of primitives
    layers/       (init, apply) pairs built from primitives; ``serial``
    losses, initializers, metrics
    optim/        optax-style gradient transformations and schedules
    train/        loss_and_grads, train_step, fit, callbacks, checkpoints
    data/         CSV, IDX and text readers, shipped data sets, batching
    io, files     model files and atomic writes (no pickle)
    summary       the table of a model's layers, shapes and parameters
    recipes/, cli the ``purenet`` command

Everything a model needs is imported here; only NumPy is required.
"""
__version__ = "0.1.0"

from . import memory

memory.apply_default()           # freed big arrays stay in the process (see memory.py)

from . import data, export, initializers, layers, losses, metrics, ops, optim, random, tree
from .autodiff import grad, stop_gradient, value_and_grad, vjp
from .io import load_model, save_model
from .layers import *  # noqa: F401,F403  (layer constructors and serial)
from .ops import Primitive, primitive
from .random import key
from .summary import summary
from .testing import check_grads, check_layer_grads, check_model_grads
from .train import (BackupAndRestore, Best, Callback, CSVLogger, EarlyStopping, FitResult, History,
                    LambdaCallback, ModelCheckpoint, ReduceLROnPlateau, TerminateOnNaN, evaluate,
                    fit, loss_and_grads, predict, predict_averaged, train_step)
