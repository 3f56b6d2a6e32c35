"""What every recipe shares: checked command-line values, output and checkpoint
directories checked before training, how a run ended, and its metadata.

Where a run writes. A run that completes writes into ``--out``. A run that
does not complete writes into a subdirectory of ``--out`` instead, so it never
replaces the files of an earlier, finished run with worse or untrained ones:

* ``<out>/interrupted/``: stopped with Ctrl-C. It holds the model(s) of the
  last completed epoch (for a text model, of the best validation so far; none
  before the first) and a ``metrics.json`` with ``"interrupted": true`` and the
  epochs actually run (the test set is not scored). The command exits 130.
* ``<out>/diverged/``: the training loss became NaN or inf (or, for a text
  model, ended worse than chance). ``metrics.json`` says ``"diverged": true``
  and why; no score of a diverged model is reported. The command exits 1.

Each subdirectory holds only the latest run that ended that way.
"""
import argparse
import math
import os
import platform
import sys
import tempfile

import numpy as np

from ..errors import ConfigError, PurenetError
from ..train.checkpoint import LAST

COMPLETE, INTERRUPTED, DIVERGED = "complete", "interrupted", "diverged"


# --- argparse types: a bad value is an error naming the flag ----------------------

def _number(text, convert, kind):
    try:
        value = convert(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}")
    return value


def positive_int(text):
    """A whole number of at least 1."""
    value = _number(text, int, "a whole number of at least 1")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def non_negative_int(text):
    """A whole number of at least 0."""
    value = _number(text, int, "a whole number of at least 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    return value


def positive_float(text):
    """A finite number above 0."""
    value = _number(text, float, "a finite number above 0")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text!r}")
    return value


def probability(text):
    """A number in [0, 1)."""
    value = _number(text, float, "a number from 0 up to (not including) 1")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be from 0 up to (not including) 1, got {text!r}")
    return value


def add_common_arguments(parser, name):
    """``--out``, ``--checkpoint-dir``, ``--resume`` and ``--no-progress``, on every recipe."""
    parser.add_argument("--out", default=f"runs/{name}", metavar="OUT",
                        help=f"output directory (default: runs/{name}); a run stopped with "
                             "Ctrl-C writes into OUT/interrupted/ and a diverged one into "
                             "OUT/diverged/, never over a finished run's files")
    parser.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                        help="write a checkpoint (last.npz, best.npz) there after every "
                             "epoch (default: none)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from --checkpoint-dir's last.npz (default: off, "
                             "start afresh)")
    parser.add_argument("--workers", type=positive_int, default=None, metavar="N",
                        help="train on N processes (data-parallel over MPI, the same result "
                             "as one process): starts mpiexec -n N itself; needs "
                             'pip install "purenet[mpi]" (default: one process, or as many '
                             "as mpiexec started)")
    parser.add_argument("--sync-batch-norm", action="store_true",
                        help="on more than one process, batch norm's statistics over the "
                             "whole batch rather than each process's part (default: off)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="a plain line per epoch instead of live progress bars (default: "
                             "bars when the output is a terminal)")


# --- paths checked before training --------------------------------------------------

def _probe(directory):
    """Create and remove a file in ``directory``; an ``OSError`` if that fails."""
    fd, probe = tempfile.mkstemp(dir=directory, prefix=".purenet-probe-")
    os.close(fd)
    os.remove(probe)


def check_writable_dir(path, flag, entries=(), subdirs=()):
    """Fail now, not after training, if ``path`` cannot become a directory we write
    ``entries`` (files) and ``subdirs`` into."""
    shown = f"{flag} {path}"
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise ConfigError(f"{shown}: exists and is not a directory")
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ConfigError(f"{shown}: {existing} is a file, not a directory")
    try:
        _probe(existing)
    except OSError as err:
        raise ConfigError(f"{shown}: cannot write in {existing} ({err.strerror or err})") from None
    for name in entries:
        if os.path.isdir(os.path.join(path, name)):
            raise ConfigError(f"{shown}: {name} there is a directory, and the run writes a file "
                              "of that name")
    for name in subdirs:
        target = os.path.join(path, name)
        if os.path.exists(target) and not os.path.isdir(target):
            raise ConfigError(f"{shown}: {name} there is a file, and the run may need it as a "
                              "directory")


def check_paths(args, entries, checkpoint_names=("",)):
    """Check ``--out`` (for ``entries``), ``--checkpoint-dir`` and ``--resume``
    before any training. ``checkpoint_names`` are the subdirectories of the
    checkpoint directory the recipe uses (one per model; ``""`` for the directory
    itself). With ``--resume``, returns those with a checkpoint to resume from."""
    check_writable_dir(args.out, "--out", entries, subdirs=(INTERRUPTED, DIVERGED))
    for sub in (INTERRUPTED, DIVERGED):
        check_writable_dir(os.path.join(args.out, sub), "--out", entries)
    if args.checkpoint_dir is None:
        if args.resume:
            raise ConfigError("--resume needs --checkpoint-dir DIR: the directory an earlier "
                              "run wrote its checkpoints to")
        return set()
    for name in checkpoint_names:
        check_writable_dir(os.path.join(args.checkpoint_dir, name), "--checkpoint-dir")
    if not args.resume:
        return set()
    found = {name for name in checkpoint_names
             if os.path.isfile(os.path.join(args.checkpoint_dir, name, LAST))}
    if not found:
        where = os.path.join(args.checkpoint_dir, checkpoint_names[0], LAST)
        raise ConfigError(f"--resume: no checkpoint {where} (was --checkpoint-dir "
                          f"{args.checkpoint_dir} given to the earlier run?)")
    return found


def verbosity(args):
    """``fit``'s ``verbose``: its own choice (bars on a terminal), or lines only."""
    return "auto" if args.progress else 2


def checkpoint_options(args, name="", found=()):
    """``fit``'s ``checkpoint_dir`` and ``resume_from`` for the model ``name``."""
    if args.checkpoint_dir is None:
        return {}
    directory = os.path.join(args.checkpoint_dir, name)
    resume = os.path.join(directory, LAST) if name in found else None
    return {"checkpoint_dir": directory, "resume_from": resume}


def run_options(args, name="", found=()):
    """``fit``'s checkpoint options (``checkpoint_options``) and, on more than one
    process, its ``distributed``."""
    options = checkpoint_options(args, name, found)
    if getattr(args, "distributed", None) is not None:
        options["distributed"] = args.distributed
    return options


def writes(args):
    """Whether this process writes the run's outputs (the only one, or MPI's rank 0)."""
    parallel = getattr(args, "distributed", None)
    return parallel is None or parallel.writes


# --- how a run ended ----------------------------------------------------------------

class RunInterrupted(Exception):
    """Raised once an interrupted run's outputs are written: the command exits 130."""


class RunDiverged(PurenetError):
    """Raised once a diverged run's outputs are written: the command exits 1."""


def was_interrupted(history):
    """Whether ``fit`` stopped on Ctrl-C."""
    return bool(getattr(history, "interrupted", False)) \
        or "interrupted" in (history.stop_reason or "")


def has_diverged(history):
    """Whether ``fit`` stopped on a NaN or inf training loss."""
    return bool(getattr(history, "diverged", False)) or "non-finite" in (history.stop_reason or "")


def destination(args, status):
    """The directory this run writes into (see the module docstring)."""
    return args.out if status == COMPLETE else os.path.join(args.out, status)


def out_path(directory, name):
    os.makedirs(directory, exist_ok=True)
    return os.path.join(directory, name)


def resume_hint(args):
    if args.checkpoint_dir is None:
        return ""
    return "; to continue, run the same command with --resume"


def end_run(args, status, directory, what):
    """After an incomplete run's files are written: the exception that ends the command."""
    if status == INTERRUPTED:
        return RunInterrupted(f"interrupted: {what}; wrote {directory} (files in {args.out} "
                              f"itself untouched){resume_hint(args)}")
    return RunDiverged(f"training diverged: {what}; wrote {directory} (files in {args.out} "
                       "itself untouched)")


def plural(count, noun):
    """``"1 epoch"``, ``"2 epochs"``."""
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def short_reason(reason):
    """The first clause of a stop reason ("non-finite training loss (inf) at epoch 0")."""
    return str(reason).split(":")[0].split(";")[0].strip()


def describe_time(seconds):
    """A rough duration for the estimate printed at the start of a run."""
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def on_cores(args):
    """Where a printed estimate holds: "on 2 cores", or, on several processes, for one
    process (the estimates are measured that way; processes sharing the work take less)."""
    parallel = getattr(args, "distributed", None)
    processes = getattr(parallel, "size", 1)
    if processes < 2:
        return "on 2 cores"
    return f"for one process on 2 cores, less as {processes} processes"


def draw(plot, path):
    """Draw one figure; a figure that cannot be drawn is reported and skipped
    (the run's model and metrics are already written)."""
    try:
        plot(path)
    except ImportError as err:
        print(f"no plot: {err}")
        return False
    except (ValueError, TypeError, OSError) as err:
        print(f"could not draw {os.path.basename(path)}: {err}")
        return False
    return True


# --- metadata -----------------------------------------------------------------------

def versions():
    from .. import __version__
    return {"purenet": __version__, "numpy": np.__version__, "python": platform.python_version()}


def run_header(args, seconds, status=COMPLETE):
    """The fields every ``metrics.json`` starts with."""
    argv = getattr(args, "argv", None)
    argv = sys.argv[1:] if argv is None else argv
    return {"command": "purenet " + " ".join(argv), "seed": args.seed,
            "status": status, "interrupted": status == INTERRUPTED,
            "diverged": status == DIVERGED, "wall_seconds": round(seconds, 2),
            "versions": versions()}
