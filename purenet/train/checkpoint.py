"""Training checkpoints: everything a run needs to continue bit-identically.

One ``.npz`` file (written atomically, no pickle) holds, as arrays named by
their tree paths:

    params/<path>        the params after the checkpoint's last epoch
    state/<path>         the model state (batch-norm statistics, ...)
    opt_state/<path>     the optimizer state (moments, step counters)
    best/params/<path>   params and state of the best validation loss so far,
    best/state/<path>    if any (what ``fit`` returns if the loss turns NaN)
    callbacks/<i>/...    arrays of callback states (EarlyStopping's best params)

and one JSON document (``meta``) with ``format``, ``epoch`` (completed
epochs: the index of the next epoch to run), ``seed``, ``settings``, the
``history``, ``stop_reason``, the best value and epoch, and each callback's
``{"type", "state"}`` with arrays replaced by ``{"__array__": name}``.

The random state of a run is just ``seed`` and ``epoch`` (per-epoch keys are
``fold_in(key(seed), epoch)``), so nothing else is needed to resume. Loading
checks every array against the caller's params, state and optimizer state:
a missing, extra or mis-shaped array is a ``ModelFileError``.
"""
import math
import os
from typing import NamedTuple

import numpy as np

from ..errors import ModelFileError
from ..files import arrays_to_tree, load_arrays, save_arrays, tree_to_arrays
from ..tree import tree_flatten_with_paths
from .history import History

FORMAT = "purenet-checkpoint-1"
LAST, BEST = "last.npz", "best.npz"


class Checkpoint(NamedTuple):
    """The contents of a checkpoint file (see the module docstring)."""
    params: object
    state: object
    opt_state: object
    epoch: int
    seed: int
    history: History
    best: dict            # {"value", "epoch", "params", "state"}; params None if no evaluation yet
    callbacks: list       # [{"type": class name, "state": dict}]
    settings: dict        # batch_size, eval_every, validation_split of the run
    stop_reason: str = None


def resolve_path(path):
    """A checkpoint file from a file path or a checkpoint directory (its ``last.npz``)."""
    path = os.fspath(path)
    return os.path.join(path, LAST) if os.path.isdir(path) else path


# --- callback states: trees with arrays <-> JSON plus named arrays --------------

def encode(value, name, arrays):
    """JSON-able form of ``value``; its arrays go into ``arrays`` under ``name/...``."""
    if isinstance(value, np.ndarray):
        arrays[name] = value
        return {"__array__": name}
    if isinstance(value, dict):
        return {str(k): encode(v, f"{name}/{k}", arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [encode(v, f"{name}/{i}", arrays) for i, v in enumerate(value)]
        return {"__tuple__": items} if isinstance(value, tuple) else items
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": str(value)}
    return value


def decode(value, arrays, path="checkpoint"):
    """Inverse of ``encode``."""
    if isinstance(value, dict):
        if "__array__" in value:
            if value["__array__"] not in arrays:
                raise ModelFileError(f"{path}: missing array '{value['__array__']}'")
            return arrays[value["__array__"]]
        if "__tuple__" in value:
            return tuple(decode(v, arrays, path) for v in value["__tuple__"])
        if "__float__" in value:
            return float(value["__float__"])
        return {k: decode(v, arrays, path) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v, arrays, path) for v in value]
    return value


# --- save and load ---------------------------------------------------------------

def save_checkpoint(path, ckpt):
    """Write ``ckpt`` (a Checkpoint) to ``path`` atomically."""
    arrays = {**tree_to_arrays(ckpt.params, "params"), **tree_to_arrays(ckpt.state, "state"),
              **tree_to_arrays(ckpt.opt_state, "opt_state")}
    if ckpt.best.get("params") is not None:
        arrays.update(tree_to_arrays(ckpt.best["params"], "best/params"))
        arrays.update(tree_to_arrays(ckpt.best["state"], "best/state"))
    callbacks = [{"type": c["type"], "state": encode(c["state"], f"callbacks/{i}", arrays)}
                 for i, c in enumerate(ckpt.callbacks)]
    meta = {"format": FORMAT, "epoch": int(ckpt.epoch), "seed": int(ckpt.seed),
            "settings": ckpt.settings, "history": ckpt.history.to_dict(),
            "stop_reason": ckpt.stop_reason, "callbacks": callbacks,
            "best": {"value": encode(ckpt.best.get("value"), "", {}),
                     "epoch": ckpt.best.get("epoch"),
                     "has_params": ckpt.best.get("params") is not None}}
    save_arrays(path, arrays, meta)


def _restore(template, arrays, prefix, path):
    """``arrays_to_tree`` plus checks for dtype and for arrays the template lacks."""
    tree = arrays_to_tree(template, arrays, prefix, path)
    for leaf_path, leaf in tree_flatten_with_paths(template):
        got = arrays[f"{prefix}/{leaf_path}"]
        if got.dtype != np.asarray(leaf).dtype:
            raise ModelFileError(f"{path}: array '{prefix}/{leaf_path}' has dtype {got.dtype}, "
                                 f"the model expects {np.asarray(leaf).dtype}")
    expected = {f"{prefix}/{p}" for p, _ in tree_flatten_with_paths(template)}
    extra = sorted(n for n in arrays if n.startswith(prefix + "/") and n not in expected)
    if extra:
        raise ModelFileError(f"{path}: array(s) {extra[:3]} do not belong to this model "
                             f"or optimizer (was the checkpoint made with another one?)")
    return tree


def load_checkpoint(path, params, state, opt_state):
    """Read a checkpoint, checking it against templates of the caller's trees.

    ``params``, ``state`` and ``opt_state`` are trees shaped like the run's
    (e.g. the initial params and ``optimizer.init(params)``); their values are
    not used. Returns a Checkpoint.
    """
    path = resolve_path(path)
    arrays, meta = load_arrays(path)
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a purenet checkpoint (format {meta.get('format')!r})")
    try:
        best = meta["best"]
        restored_best = {"value": decode(best["value"], {}), "epoch": best["epoch"],
                         "params": None, "state": None}
        if best["has_params"]:
            restored_best["params"] = _restore(params, arrays, "best/params", path)
            restored_best["state"] = _restore(state, arrays, "best/state", path)
        callbacks = [{"type": c["type"], "state": decode(c["state"], arrays, path)}
                     for c in meta["callbacks"]]
        return Checkpoint(
            _restore(params, arrays, "params", path), _restore(state, arrays, "state", path),
            _restore(opt_state, arrays, "opt_state", path), int(meta["epoch"]),
            int(meta["seed"]), History.from_dict(meta["history"]), restored_best, callbacks,
            meta["settings"], meta.get("stop_reason"))
    except (KeyError, TypeError, ValueError) as err:
        if isinstance(err, ModelFileError):
            raise
        raise ModelFileError(f"{path}: malformed checkpoint metadata: {err!r}") from None
