"""Training checkpoints, and ``BackupAndRestore``, the callback that writes and resumes them.

A checkpoint holds everything a run needs to continue bit-identically, in one
``.npz`` file (written atomically, no pickle), arrays named by tree paths:

    params/<path>        the params after the checkpoint's last epoch
    state/<path>         the model state (batch-norm statistics, ...)
    opt_state/<path>     the optimizer state (moments, step counters, lr_scale)
    callbacks/<i>/...    arrays of callback states (EarlyStopping's best params)

and one JSON document (``meta``) with ``format``, ``epoch`` (completed epochs:
the index of the next epoch to run), ``seed``, the ``history``,
``stop_reason``, the best ``val_loss`` and its epoch, each callback's
``{"type", "state"}`` with arrays replaced by ``{"__array__": name}``, and the
run's ``fingerprint``: its settings (loss, batch size, ...) and, for each data
array, its shape, dtype and a digest of a strided sample and the sum
(``array_fingerprint``; cheap, and enough to tell other data apart).

The random state of a run is just ``seed`` and ``epoch`` (per-epoch keys are
``fold_in(key(seed), epoch)``), so nothing else is needed to resume. Loading
checks every array against the caller's params, state and optimizer state: a
missing, extra or mis-shaped array is a ``ModelFileError``. Resuming a run whose
fingerprint differs is a ``ConfigError`` that says what differs.
"""
import hashlib
import json
import math
import os
from typing import NamedTuple

import numpy as np

from ..errors import ConfigError, ModelFileError
from ..files import arrays_to_tree, load_arrays, save_arrays, tree_to_arrays
from ..tree import tree_flatten_with_paths
from .callbacks import Best, Callback, warn
from .history import History

FORMAT = "purenet-checkpoint-2"
LAST, BEST = "last.npz", "best.npz"


class Checkpoint(NamedTuple):
    """The contents of a checkpoint file (see the module docstring)."""
    params: object
    state: object
    opt_state: object
    epoch: int
    seed: int
    history: History
    best: dict            # {"value", "epoch"} of the best val_loss so far (None before any)
    callbacks: list       # [{"type": class name, "state": dict}]
    fingerprint: dict     # {"settings": {...}, "data": {name: array_fingerprint}}
    stop_reason: str = None


def resolve_path(path):
    """A checkpoint file from a file path or a checkpoint directory (its ``last.npz``)."""
    path = os.fspath(path)
    return os.path.join(path, LAST) if os.path.isdir(path) else path


# --- fingerprints -------------------------------------------------------------------

def array_fingerprint(a, samples=4096):
    """``{"shape", "dtype", "digest"}``: the digest hashes ``samples`` evenly strided
    values and the sum of all of them, so it costs one pass over the array."""
    a = np.asarray(a)
    flat = a.reshape(-1)
    digest = hashlib.sha256(np.ascontiguousarray(flat[::max(1, flat.size // samples)]).tobytes())
    if a.dtype.kind in "biuf":
        digest.update(repr(float(flat.sum(dtype=np.float64))).encode())
    return {"shape": list(a.shape), "dtype": str(a.dtype), "digest": digest.hexdigest()[:16]}


def fingerprint_differences(saved, now):
    """What differs between two run fingerprints, as phrases (empty when nothing does)."""
    saved, now = json.loads(json.dumps(saved)), json.loads(json.dumps(now))
    out = []
    for name in _keys(saved.get("settings", {}), now.get("settings", {})):
        old, new = saved["settings"].get(name), now["settings"].get(name)
        if old != new:
            out.append(f"{name} was {old!r}, now {new!r}")
    for name in _keys(saved.get("data", {}), now.get("data", {})):
        old, new = saved["data"].get(name), now["data"].get(name)
        if old == new:
            continue
        if old and new and (old["shape"], old["dtype"]) == (new["shape"], new["dtype"]):
            out.append(f"{name} has the same shape {tuple(new['shape'])} but other values")
        else:
            out.append(f"{name} was {_describe(old)}, now {_describe(new)}")
    return out


def _keys(a, b):
    return list(a) + [k for k in b if k not in a]


def _describe(fp):
    return "absent" if not fp else f"{fp['dtype']} of shape {tuple(fp['shape'])}"


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
    callbacks = [{"type": c["type"], "state": encode(c["state"], f"callbacks/{i}", arrays)}
                 for i, c in enumerate(ckpt.callbacks)]
    meta = {"format": FORMAT, "epoch": int(ckpt.epoch), "seed": int(ckpt.seed),
            "fingerprint": ckpt.fingerprint, "history": ckpt.history.to_dict(),
            "stop_reason": ckpt.stop_reason, "callbacks": callbacks,
            "best": {"value": encode(ckpt.best.get("value"), "", {}),
                     "epoch": ckpt.best.get("epoch")}}
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


def _read(path):
    """``(arrays, meta)`` of a checkpoint file, its format checked."""
    arrays, meta = load_arrays(path)
    found = meta.get("format")
    if found != FORMAT:
        older = isinstance(found, str) and found.startswith("purenet-checkpoint-")
        raise ModelFileError(f"{path}: " + (f"a checkpoint of an older purenet ({found}); this "
                                            "version cannot continue it" if older else
                                            f"not a purenet checkpoint (format {found!r})"))
    return arrays, meta


def checkpoint_seed(path):
    """The seed of the run a checkpoint file (or directory) holds."""
    path = resolve_path(path)
    return int(_read(path)[1]["seed"])


def load_checkpoint(path, params, state, opt_state):
    """Read a checkpoint, checking it against templates of the caller's trees.

    ``params``, ``state`` and ``opt_state`` are trees shaped like the run's
    (e.g. the initial params and ``optimizer.init(params)``); their values are
    not used. Returns a Checkpoint.
    """
    path = resolve_path(path)
    arrays, meta = _read(path)
    try:
        best = {"value": decode(meta["best"]["value"], {}), "epoch": meta["best"]["epoch"]}
        callbacks = [{"type": c["type"], "state": decode(c["state"], arrays, path)}
                     for c in meta["callbacks"]]
        return Checkpoint(
            _restore(params, arrays, "params", path), _restore(state, arrays, "state", path),
            _restore(opt_state, arrays, "opt_state", path), int(meta["epoch"]),
            int(meta["seed"]), History.from_dict(meta["history"]), best, callbacks,
            meta["fingerprint"], meta.get("stop_reason"))
    except (KeyError, TypeError, ValueError) as err:
        if isinstance(err, ModelFileError):
            raise
        raise ModelFileError(f"{path}: malformed checkpoint metadata: {err!r}") from None


# --- the callback ---------------------------------------------------------------------

class BackupAndRestore(Callback):
    """Back a run up after every epoch and continue it from the backup (Keras's name).

    ``backup_dir``: after each completed epoch ``last.npz`` there holds the run
    (format above), and ``best.npz`` a copy of it whenever ``val_loss`` improves.
    ``None`` writes nothing (to resume only). The backup stays when training ends,
    so a finished run can be continued with more epochs.

    ``resume``: ``True`` (as Keras) continues from ``backup_dir``'s ``last.npz`` if
    there is one and starts afresh otherwise; ``False`` always starts afresh (and
    overwrites the backup); a path continues from that checkpoint file or directory,
    which must exist. Resuming restores params, state, optimizer state (with a
    reduced learning rate), the epoch, the history and every callback's state
    (matched by class and order), and refuses a run whose data or settings differ
    from the checkpointed one's (see the module docstring). ``fit`` checks the seed
    and runs this callback after every other one.
    """

    runs_last = True

    def __init__(self, backup_dir, resume=True):
        if backup_dir is not None:
            backup_dir = os.fspath(backup_dir)
            if os.path.exists(backup_dir) and not os.path.isdir(backup_dir):
                raise ConfigError(f"checkpoint directory {backup_dir} is a file, not a directory")
        if resume is None or (resume is True and backup_dir is None):
            raise ConfigError("BackupAndRestore: give a backup_dir, or resume=<checkpoint path>")
        self.backup_dir = backup_dir
        self.resume = resume if isinstance(resume, bool) else os.fspath(resume)
        self.best = Best("val_loss", "min", owner="BackupAndRestore")

    def resume_path(self):
        """The checkpoint file this run will continue from, or None (a fresh start)."""
        if self.resume is False:
            return None
        if self.resume is True:
            path = os.path.join(self.backup_dir, LAST)
            return path if os.path.isfile(path) else None
        path = resolve_path(self.resume)
        if not os.path.isfile(path):
            raise ModelFileError(f"{path}: no such checkpoint to resume from")
        return path

    def run_seed(self, seed):
        """The run's seed: ``seed``, else the checkpoint's when resuming, else 0. A seed
        other than the checkpoint's is a ConfigError (it would change the run)."""
        path = self.resume_path()
        saved = checkpoint_seed(path) if path is not None else None
        if seed is None:
            return 0 if saved is None else saved
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
        if saved is not None and seed != saved:
            raise ConfigError(f"seed={seed} differs from the checkpoint's seed {saved}; "
                              "omit seed to continue the checkpointed run")
        return int(seed)

    def on_train_begin(self, run):
        self.best = Best("val_loss", "min", owner="BackupAndRestore")
        path = self.resume_path()
        if path is not None:
            self._restore(path, run)

    def _restore(self, path, run):
        ckpt = load_checkpoint(path, run.params, run.state, run.opt_state)
        differences = fingerprint_differences(ckpt.fingerprint, run.fingerprint)
        if differences:
            raise ConfigError(f"cannot resume from {path}: this run differs from the "
                              f"checkpointed one: {'; '.join(differences)}. Resume with the "
                              "same data and settings, or start afresh")
        run.params, run.state, run.opt_state = ckpt.params, ckpt.state, ckpt.opt_state
        run.history, run.epoch = ckpt.history, ckpt.epoch
        if ckpt.stop_reason:
            run.stop(ckpt.stop_reason)
        self.best.set_state(ckpt.best)
        restore_states(run.callbacks, ckpt.callbacks)
        run.log(f"resuming from {path} after epoch {ckpt.epoch}")

    def on_epoch_end(self, epoch, logs, run):
        if self.backup_dir is None:
            return
        improved = self.best.update(logs, epoch)
        if not run.writes:
            return
        ckpt = Checkpoint(run.params, run.state, run.opt_state, epoch + 1, run.seed, run.history,
                          self.best.get_state(),
                          [{"type": type(cb).__name__, "state": cb.get_state()}
                           for cb in run.callbacks],
                          run.fingerprint, run.stop_reason)
        save_checkpoint(os.path.join(self.backup_dir, LAST), ckpt)
        if improved:
            save_checkpoint(os.path.join(self.backup_dir, BEST), ckpt)


def restore_states(callbacks, saved):
    """Give each callback the saved state of the one of its class at the same place
    among those of that class; warn about saved states nobody takes."""
    unclaimed, seen = {}, {}
    for entry in saved:
        n = seen[entry["type"]] = seen.get(entry["type"], -1) + 1
        unclaimed[(entry["type"], n)] = entry["state"]
    seen = {}
    for cb in callbacks:
        name = type(cb).__name__
        n = seen[name] = seen.get(name, -1) + 1
        if (name, n) in unclaimed:
            cb.set_state(unclaimed.pop((name, n)))
    for (name, n), state in unclaimed.items():
        if state:
            warn(f"the checkpoint's state of callback {name} (number {n + 1} of its kind) was "
                 "not restored: pass the same callbacks to resume")
