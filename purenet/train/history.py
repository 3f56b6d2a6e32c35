"""History: the per-epoch logs of a ``fit`` run.

Each completed epoch adds one logs dict (Keras names: ``epoch``, ``loss``,
``val_loss``, ``val_<metric>``, ``lr``, ``seconds``). ``history.history`` is
the Keras-style dict of lists, aligned with ``history.epoch``; an entry is
``None`` for an epoch that did not log that key (validation runs only every
``eval_every`` epochs). ``series(key)`` gives just the epochs that have it,
ready to plot. ``stop_reason`` says why training ended early (``None`` when
it ran all its epochs). ``to_dict``/``from_dict`` round-trip through JSON.
"""
import math


def _plain(value):
    """A JSON-able copy of a log value (NumPy scalars become Python numbers)."""
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value


class History:
    """Per-epoch logs of a training run; see the module docstring."""

    def __init__(self, logs=(), stop_reason=None):
        self.logs = [dict(entry) for entry in logs]
        self.stop_reason = stop_reason

    def append(self, logs):
        """Record one epoch's logs (a dict with at least ``"epoch"``)."""
        self.logs.append({k: _plain(v) for k, v in logs.items()})

    def __len__(self):
        return len(self.logs)

    @property
    def epoch(self):
        """Epoch numbers (0-based), one per recorded epoch."""
        return [entry["epoch"] for entry in self.logs]

    @property
    def history(self):
        """``{key: [value or None per epoch]}``, aligned with ``self.epoch``."""
        keys = []
        for entry in self.logs:
            keys.extend(k for k in entry if k != "epoch" and k not in keys)
        return {k: [entry.get(k) for entry in self.logs] for k in keys}

    def series(self, key):
        """``(epochs, values)`` for the epochs that logged ``key``."""
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
        return {"logs": [{k: _finite_or_text(v) for k, v in e.items()} for e in self.logs],
                "stop_reason": self.stop_reason}

    @classmethod
    def from_dict(cls, data):
        """Inverse of ``to_dict``."""
        logs = [{k: _number_from_text(v) for k, v in e.items()} for e in data.get("logs", [])]
        return cls(logs, data.get("stop_reason"))

    def __repr__(self):
        return f"History({len(self)} epochs, keys={list(self.history)}, stop_reason={self.stop_reason!r})"


def _finite_or_text(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _number_from_text(value):
    if value in ("nan", "inf", "-inf"):
        return float(value)
    return value
