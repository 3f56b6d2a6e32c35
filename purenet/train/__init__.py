"""Training: the pure step, the ``fit`` loop, callbacks, checkpoints, evaluation.

    from purenet.train import fit, evaluate, EarlyStopping
    result = fit(model, params, "mse", optimizer, X, y, epochs=10, validation_split=0.2)
    evaluate(model, result.params, X_test, y_test, loss="mse", metrics=["mae"])
"""
from .callbacks import (Best, Callback, CSVLogger, EarlyStopping, LambdaCallback,
                        ModelCheckpoint, ReduceLROnPlateau, Run, TerminateOnNaN)
from .checkpoint import BackupAndRestore, Checkpoint, load_checkpoint, save_checkpoint
from .evaluate import evaluate, predict, predict_averaged
from .fit import FitResult, fit
from .history import History
from .step import loss_and_grads, train_step

__all__ = [
    "Best", "Callback", "CSVLogger", "EarlyStopping", "LambdaCallback", "ModelCheckpoint",
    "ReduceLROnPlateau", "Run", "TerminateOnNaN",
    "BackupAndRestore", "Checkpoint", "load_checkpoint", "save_checkpoint",
    "evaluate", "predict", "predict_averaged", "FitResult", "fit", "History", "loss_and_grads", "train_step",
]
