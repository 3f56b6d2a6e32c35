"""History: the per-epoch logs of a ``fit`` run.

Each completed epoch adds one logs dict (Keras names: ``epoch``, ``loss``,
``<metric>`` on the training batches, ``val_loss``, ``val_<metric>``, ``lr``,
``seconds``). ``epoch`` is stored 0-based, as Keras stores it
(``history.epoch == [0, 1, ...]``); everything ``fit`` prints counts from 1.
``history.history`` is the Keras-style dict of lists, aligned with
``history.epoch``; an entry is ``None`` for an epoch that did not log that key
(validation runs only every ``validation_freq`` epochs). ``series(key)`` gives
just the epochs that have it, ready to plot.

How the run ended: ``stop_reason`` says why training ended early (``None`` when
it ran all its epochs); ``interrupted`` is True when Ctrl-C stopped it and
``diverged`` when the training loss became NaN or inf. ``to_dict``/``from_dict``
round-trip through JSON.
"""
import math


def _plain(value):
    """A JSON-able copy of a log value (NumPy scalars become Python numbers)."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value


class History:
    """Per-epoch logs of a training run; see the module docstring."""

    def __init__(self, logs=(), stop_reason=None, interrupted=False, diverged=False):
        self.logs = [dict(entry) for entry in logs]
        self.stop_reason = stop_reason
        self.interrupted, self.diverged = bool(interrupted), bool(diverged)

    def append(self, logs):
        """Record one epoch's logs (a dict with at least ``"epoch"``). The dict itself is
        kept, its NumPy scalars made Python numbers, so keys a callback adds to an
        epoch's logs in ``on_epoch_end`` are part of the history."""
        logs.update((k, _plain(v)) for k, v in list(logs.items()))
        self.logs.append(logs)

    def __len__(self):
        return len(self.logs)

    @property
    def epoch(self):
        """Epoch numbers (0-based, as in Keras), one per recorded epoch."""
        return [entry["epoch"] for entry in self.logs]

    @property
    def history(self):
        """``{key: [value or None per epoch]}``, aligned with ``self.epoch``."""
        keys = [k for k in merged_keys(self.logs) if k != "epoch"]
        return {k: [entry.get(k) for entry in self.logs] for k in keys}

    def series(self, key):
        """``(epochs, values)`` for the epochs that logged ``key`` (epochs 0-based)."""
        pairs = [(e["epoch"], e[key]) for e in self.logs if e.get(key) is not None]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def last(self, key, default=None):
        """The most recent value logged for ``key``."""
        for entry in reversed(self.logs):
            if entry.get(key) is not None:
                return entry[key]
        return default

    def to_dict(self):
        """A JSON-able dict; non-finite numbers are written as strings ("nan", "inf")."""
        return {"logs": [{k: _finite_or_text(_plain(v)) for k, v in e.items()} for e in self.logs],
                "stop_reason": self.stop_reason, "interrupted": self.interrupted,
                "diverged": self.diverged}

    @classmethod
    def from_dict(cls, data):
        """Inverse of ``to_dict``."""
        logs = [{k: _number_from_text(v) for k, v in e.items()} for e in data.get("logs", [])]
        return cls(logs, data.get("stop_reason"), data.get("interrupted", False),
                   data.get("diverged", False))

    def __repr__(self):
        flags = "".join(f", {f}=True" for f in ("interrupted", "diverged") if getattr(self, f))
        return (f"History({len(self)} epochs, keys={list(self.history)}, "
                f"stop_reason={self.stop_reason!r}{flags})")


def merged_keys(rows):
    """Every key of the dict ``rows``, each placed after the key it follows where it
    first appears (so ``val_loss``, first logged in a later epoch, still comes
    right after the metrics)."""
    keys = []
    for row in rows:
        previous = None
        for k in row:
            if k not in keys:
                keys.insert(keys.index(previous) + 1 if previous in keys else len(keys), k)
            previous = k
    return keys


def _finite_or_text(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _number_from_text(value):
    if value in ("nan", "inf", "-inf"):
        return float(value)
    return value
