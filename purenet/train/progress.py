"""Progress display for ``fit``: one bar per epoch with the running loss.

``progress_bar(mode, total, epoch, epochs)`` returns an object with
``update(done, loss)`` (called after every batch with the number of examples
done so far, so the rate reads in examples/s; cheap: it redraws at most
every ``interval`` seconds) and ``close(logs)`` (prints the epoch's summary).
``mode`` is True (tqdm when importable, else plain text), ``"tqdm"``,
``"text"`` or False (nothing at all). tqdm is imported here, lazily, so
``import purenet`` needs only NumPy. Output goes to stderr.
"""
import sys
import time

from ..errors import ConfigError


def format_logs(logs):
    """``"loss 0.1234  val_loss 0.2345 ..."`` for the numeric entries except the epoch."""
    parts = []
    for k, v in logs.items():
        if k == "epoch" or not isinstance(v, (int, float)):
            continue
        parts.append(f"{k} {v:.4g}" if k != "seconds" else f"{v:.2f}s")
    return "  ".join(parts)


class NoProgress:
    """The silent display (``progress=False``)."""

    def update(self, done, loss):
        pass

    def close(self, logs):
        pass


class TextProgress:
    """A one-line text display redrawn with a carriage return."""

    def __init__(self, total, desc, unit, interval=0.5, stream=None):
        self.total, self.interval, self.unit = total, interval, unit
        self.prefix = desc
        self.stream = stream or sys.stderr
        self.started = time.perf_counter()
        self.next_draw = self.started + interval

    def update(self, done, loss):
        now = time.perf_counter()
        if now < self.next_draw:
            return
        self.next_draw = now + self.interval
        rate = done / max(now - self.started, 1e-9)
        self.stream.write(f"\r{self.prefix}  {done}/{self.total}  {rate:,.0f} {self.unit}/s  "
                          f"loss {loss:.4g}")
        self.stream.flush()

    def close(self, logs):
        self.stream.write(f"\r{self.prefix}  {self.total}/{self.total}  {format_logs(logs)}\n")
        self.stream.flush()


class TqdmProgress:
    """A tqdm bar whose count and postfix are refreshed at most every ``interval`` s."""

    def __init__(self, tqdm, total, desc, unit, interval=0.1):
        self.bar = tqdm(total=total, desc=desc, unit=f" {unit}", unit_scale=True, leave=True,
                        dynamic_ncols=True)
        self.interval, self.shown = interval, 0
        self.next_draw = time.perf_counter() + interval

    def update(self, done, loss):
        now = time.perf_counter()
        if now < self.next_draw:
            return
        self.next_draw = now + self.interval
        self.bar.set_postfix_str(f"loss {loss:.4g}", refresh=False)
        self.bar.update(done - self.shown)
        self.shown = done

    def close(self, logs):
        self.bar.set_postfix_str(format_logs(logs), refresh=False)
        self.bar.update(self.bar.total - self.shown)
        self.bar.close()


def _tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


def check_mode(mode):
    """ConfigError unless ``mode`` is True, False, None, "tqdm" or "text"."""
    if not any(mode is m for m in (True, False, None)) and mode not in ("tqdm", "text"):
        raise ConfigError(f"progress must be True, False, 'tqdm' or 'text', got {mode!r}")
    return mode


def progress_bar(mode, total, epoch, epochs, unit="examples", desc=None):
    """A display for one epoch of ``total`` examples; see the module docstring.
    ``desc`` replaces the "epoch e/E" label, ``unit`` names what is counted."""
    if check_mode(mode) is False or mode is None:
        return NoProgress()
    desc = desc or f"epoch {epoch + 1}/{epochs}"
    tqdm = _tqdm() if mode in (True, "tqdm") else None
    if tqdm is None:
        if mode == "tqdm":
            raise ConfigError("progress='tqdm' needs the tqdm package; use progress='text'")
        return TextProgress(total, desc, unit)
    return TqdmProgress(tqdm, total, desc, unit)
