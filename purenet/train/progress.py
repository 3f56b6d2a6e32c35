"""What ``fit`` prints while it trains, chosen by ``verbose`` as in Keras.

* ``0``: nothing.
* ``1``: one live bar for the current epoch (tqdm when installed, else a text
  line redrawn in place, cut to the terminal's width) with the running loss.
  When the epoch ends the bar is removed and the epoch's summary line takes its
  place, so a finished run shows exactly one line per epoch.
* ``2``: only the summary lines, one per epoch (what a log file wants).
* ``"auto"`` (the default): 1 when stdout is a terminal, else 2.

A summary line holds every number the epoch logged, counting epochs from 1:

    epoch 3/10  loss 0.4123  accuracy 0.8521  val_loss 0.4410  val_accuracy 0.8433  lr 0.001  1.52s

It is printed as a line of its own, never squeezed into a bar, so the terminal
wraps it rather than cutting it. Callbacks' messages (``run.log``) come after
the summary line of the epoch that sent them. Everything goes to stdout; tqdm is
imported here, lazily, so ``import purenet`` needs only NumPy.

``progress_bar`` is a single bar for training loops other than ``fit``.
"""
import shutil
import sys
import time

from ..errors import ConfigError


def format_logs(logs):
    """``"loss 0.1234  val_loss 0.2345 ...  1.52s"``: the numeric entries but the epoch."""
    parts = []
    for k, v in logs.items():
        if k == "epoch" or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        parts.append(f"{v:.2f}s" if k == "seconds" else f"{k} {v:.4g}")
    return "  ".join(parts)


# --- bars -----------------------------------------------------------------------

class TextBar:
    """A text line redrawn in place with a carriage return, at most every ``interval`` s;
    ``close`` blanks it."""

    def __init__(self, total, desc, unit, stream, interval=0.5):
        self.total, self.desc, self.unit, self.stream = total, desc, unit, stream
        self.interval, self.drawn = interval, 0
        self.started = time.perf_counter()
        self.next_draw = self.started + interval

    def update(self, done, loss):
        now = time.perf_counter()
        if now < self.next_draw:
            return
        self.next_draw = now + self.interval
        rate = done / max(now - self.started, 1e-9)
        count = f"{done}/{self.total}" if self.total else f"{done}"
        text = f"{self.desc}  {count}  {rate:,.0f} {self.unit}/s  loss {loss:.4g}"
        text = text[:max(shutil.get_terminal_size().columns - 1, 20)]
        self.stream.write("\r" + text.ljust(self.drawn))
        self.stream.flush()
        self.drawn = len(text)

    def close(self):
        if self.drawn:
            self.stream.write("\r" + " " * self.drawn + "\r")
            self.stream.flush()


class TqdmBar:
    """A tqdm bar, removed when closed; its count and loss are refreshed at most every
    ``interval`` s."""

    def __init__(self, tqdm, total, desc, unit, stream, interval=0.1):
        self.bar = tqdm(total=total, desc=desc, unit=f" {unit}", unit_scale=True, leave=False,
                        dynamic_ncols=True, file=stream)
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

    def close(self):
        self.bar.close()


def _tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


def make_bar(kind, total, desc, unit, stream):
    """A bar: ``kind`` ``"tqdm"``, ``"text"``, or ``"auto"`` (tqdm when installed)."""
    tqdm = _tqdm() if kind in ("auto", "tqdm") else None
    if tqdm is None:
        if kind == "tqdm":
            raise ConfigError("progress='tqdm' needs the tqdm package; use progress='text'")
        return TextBar(total, desc, unit, stream)
    return TqdmBar(tqdm, total, desc, unit, stream)


# --- fit's display ----------------------------------------------------------------

def resolve_verbose(verbose="auto", progress=None, stream=None):
    """``(level, bar kind)`` from ``fit``'s ``verbose`` and its older ``progress``
    argument (``True``: as ``"auto"``; ``False``: 0; ``"tqdm"``/``"text"``: 1 with
    that bar)."""
    if progress is not None:
        if verbose != "auto":
            raise ConfigError("give verbose or progress, not both (progress is the older name)")
        check_mode(progress)
        if progress is False or progress in ("tqdm", "text"):
            return (0, "auto") if progress is False else (1, progress)
    if verbose == "auto":
        stream = stream or sys.stdout
        return (1 if getattr(stream, "isatty", lambda: False)() else 2), "auto"
    if verbose not in (0, 1, 2) or isinstance(verbose, float):
        raise ConfigError(f"verbose must be 0 (silent), 1 (a bar per epoch), 2 (a line per "
                          f"epoch) or 'auto', got {verbose!r}")
    return int(verbose), "auto"


class Display:
    """The progress of one ``fit`` (see the module docstring)."""

    def __init__(self, level, epochs, bar="auto", stream=None):
        self.level, self.epochs, self.kind = level, epochs, bar
        self.stream = stream or sys.stdout
        self.bar, self.pending, self.open = None, [], False

    def begin_epoch(self, epoch, total, unit):
        """A bar for epoch ``epoch`` (0-based) of ``total`` ``unit`` (None: unknown)."""
        self.open = True
        if self.level == 1:
            self.bar = make_bar(self.kind, total, f"epoch {epoch + 1}/{self.epochs}", unit,
                                self.stream)

    def update(self, done, loss):
        if self.bar is not None:
            self.bar.update(done, loss)

    def end_epoch(self, epoch, logs):
        """Remove the bar and print the epoch's summary line, then pending messages."""
        self._close_bar()
        if self.level:
            self._write(f"epoch {epoch + 1}/{self.epochs}  {format_logs(logs)}")
        self.abandon()

    def abandon(self):
        """End an epoch without a summary (it did not complete)."""
        self._close_bar()
        self.open = False
        pending, self.pending = self.pending, []
        for text in pending:
            self._write(text)

    def message(self, text):
        """A line from a callback: now, or after the summary if an epoch is running."""
        if not self.level:
            return
        if self.open:
            self.pending.append(text)
        else:
            self._write(text)

    def _close_bar(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _write(self, text):
        self.stream.write(text + "\n")
        self.stream.flush()


# --- a bar for other loops ----------------------------------------------------------

def check_mode(mode):
    """ConfigError unless ``mode`` is True, False, None, "tqdm" or "text"."""
    if not any(mode is m for m in (True, False, None)) and mode not in ("tqdm", "text"):
        raise ConfigError(f"progress must be True, False, 'tqdm' or 'text', got {mode!r}")
    return mode


class _LoopBar:
    """A bar that ends in a summary line: ``update(done, loss)``, ``close(logs)``."""

    def __init__(self, bar, desc, stream):
        self.bar, self.desc, self.stream = bar, desc, stream

    def update(self, done, loss):
        if self.bar is not None:
            self.bar.update(done, loss)

    def close(self, logs):
        if self.bar is not None:
            self.bar.close()
            self.stream.write(f"{self.desc}  {format_logs(logs)}\n")
            self.stream.flush()


def progress_bar(mode, total, epoch, epochs, unit="examples", desc=None):
    """A bar for ``total`` ``unit`` labelled ``desc`` (default "epoch e/E", 1-based),
    ending in a summary line; ``mode`` is True (tqdm when installed, else text),
    ``"tqdm"``, ``"text"`` or False/None (nothing)."""
    check_mode(mode)
    desc = desc or f"epoch {epoch + 1}/{epochs}"
    stream = sys.stdout
    if mode is False or mode is None:
        return _LoopBar(None, desc, stream)
    return _LoopBar(make_bar("auto" if mode is True else mode, total, desc, unit, stream),
                    desc, stream)
