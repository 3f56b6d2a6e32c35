"""Data-parallel training over MPI: ``fit`` on N processes equals ``fit`` on one.

    from purenet.distributed import DataParallel
    result = fit(model, params, "mse", sgd(0.01), X, y, batch_size=64,
                 distributed=DataParallel())          # run with: mpiexec -n 4 python train.py

Every process (rank) runs the same script on the same data with the same seed, so
each one draws the same global batches in the same order as one process would.
At each step a rank:

1. takes its shard of the global batch: a contiguous slice, the shards as equal as
   they can be (``np.array_split``'s sizes), so shards may differ by one example;
2. computes its loss (an average over its shard) and gradients;
3. weights its gradients by its shard's share of the global batch, ``b_r / B``, so
   that their sum is the gradient of the global batch's average loss; packs them,
   with the shard's loss and metric sums, into one flat buffer and sums that buffer
   over the ranks with one ``Allreduce``;
4. applies the same optimizer update to the same params, so params stay identical
   on every rank. Every ``check_every`` steps, and at the end of each epoch, the
   ranks compare a checksum of their params; any difference is a
   ``DistributedError`` (it would mean the ranks no longer train one model).

Batch norm: by default each rank normalises by its own shard's statistics (as
PyTorch's DistributedDataParallel does) and keeps its own running averages
(as DDP with ``broadcast_buffers=False``: the result and checkpoints hold rank 0's
layer state); with ``sync_batch_norm=True`` the statistics (and the sums in batch
norm's backward) are taken over the global batch, which makes training equal to
one process's. Dropout draws the global batch's masks on every rank and keeps its
shard's rows, and augmentation runs on the global batch before it is split, so
both match one process exactly.

Only rank 0 writes (checkpoints, ``ModelCheckpoint``, ``CSVLogger``) and shows
progress; every rank runs the callbacks, on the same logs, so they all make the
same decisions (early stopping, learning-rate changes). ``BackupAndRestore``
resumes on any number of ranks: a run's randomness depends on ``(seed, epoch)``
only. Validation is shared out: each rank predicts its part of the validation set
and every rank scores all the predictions (the same numbers everywhere).

An exception on one rank would leave the others waiting in the next collective:
``abort_on_error`` (which ``purenet`` commands use) prints ``rank k: message`` and
aborts every rank instead.
"""
import os
import signal
import sys
import threading
import zlib
from contextlib import contextmanager, nullcontext

import numpy as np

from .errors import ConfigError, PurenetError
from .ops.normalization import shared_statistics
from .random import batch_rows
from .tree import tree_leaves, tree_unflatten_like

INSTALL_HINT = 'pip install "purenet[mpi]"'

# Set by every common MPI launcher (MPICH's hydra, Open MPI, Slurm's PMI).
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "PMIX_SIZE")


# What BLAS and OpenMP libraries read for their thread counts, once, as they load.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def cores():
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def thread_settings(processes, environ, available=None):
    """Environment variables giving each of ``processes`` processes on this machine its
    share of the cores for BLAS (at least one thread); nothing when ``environ`` already
    sets any of ``THREAD_VARIABLES`` (the user's choice stands).

    Without them every process's BLAS starts as many threads as there are cores, so N
    processes run N times too many threads, which spin against each other and slow
    every step.
    """
    if any(name in environ for name in THREAD_VARIABLES):
        return {}
    share = str(max(1, (available or cores()) // processes))
    return {name: share for name in THREAD_VARIABLES}


class DistributedError(PurenetError, RuntimeError):
    """The ranks of a data-parallel run disagree, or MPI is missing."""


def mpi():
    """The ``mpi4py.MPI`` module; a DistributedError saying how to install it if absent."""
    try:
        from mpi4py import MPI
    except ImportError:
        raise DistributedError(f"training on more than one process needs MPI: {INSTALL_HINT} "
                               "(installs mpi4py and the MPICH library)") from None
    return MPI


def launched_size():
    """How many processes the MPI launcher started this one among (1 if none), read
    from the environment so that nothing imports MPI when no launcher ran."""
    for name in _SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


class DataParallel:
    """What ``fit(..., distributed=...)`` uses to train on every rank of ``comm``.

    Args:
        comm: an mpi4py communicator (default ``MPI.COMM_WORLD``).
        sync_batch_norm: batch norm's statistics over the global batch (default:
            each rank's own shard).
        check_every: compare the params of all ranks every this many steps
            (and at every epoch's end).
    """

    def __init__(self, comm=None, *, sync_batch_norm=False, check_every=100):
        if isinstance(check_every, bool) or not isinstance(check_every, int) or check_every < 1:
            raise ConfigError(f"check_every must be a positive integer, got {check_every!r}")
        self.MPI = mpi()
        self.comm = self.MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.sync_batch_norm, self.check_every = bool(sync_batch_norm), check_every
        self._steps, self._interrupted = 0, False

    def __repr__(self):
        return (f"DataParallel(rank {self.rank} of {self.size}, "
                f"sync_batch_norm={self.sync_batch_norm})")

    @property
    def writes(self):
        """Whether this rank writes files and shows progress (rank 0 only)."""
        return self.rank == 0

    # --- one step ------------------------------------------------------------------

    def shard(self, xb, yb):
        """This rank's part of the global batch: ``(xb, yb, its rows (a slice), global
        batch size)``."""
        n = len(xb)
        if n < self.size:
            raise ConfigError(f"a batch of {n} example(s) cannot be split over {self.size} "
                              "processes: use a batch size (and a data set) of at least one "
                              "example per process")
        rows = self._rows(n)
        return xb[rows], None if yb is None else yb[rows], rows, n

    def _rows(self, n):
        """This rank's contiguous share of ``n`` rows, as a slice (``np.array_split``'s sizes)."""
        share, extra = divmod(n, self.size)
        start = self.rank * share + min(self.rank, extra)
        return slice(start, start + share + (self.rank < extra))

    @contextmanager
    def batch(self, rows, global_n):
        """The context the forward and backward of a step run in: dropout draws the global
        batch's masks and keeps this rank's ``rows``; with ``sync_batch_norm`` batch norm
        takes its statistics over the global batch."""
        local_n = rows.stop - rows.start
        with batch_rows(rows.start, global_n), (
                shared_statistics(self._sum, local_n, global_n) if self.sync_batch_norm
                else nullcontext()):
            yield

    def reduce(self, grads, scores, weight):
        """``(sum of weight·grads, sum of scores)`` over the ranks: one Allreduce of one
        flat buffer holding every gradient leaf, then the scores, then the number of
        ranks that were interrupted (``interrupts``): if any, every rank raises
        KeyboardInterrupt here, after the same step."""
        leaves = [np.asarray(g) for g in tree_leaves(grads)]
        dtype = np.result_type(*leaves) if leaves else np.float64
        sizes = [leaf.size for leaf in leaves]
        buffer = np.empty(sum(sizes) + len(scores) + 1, dtype)
        at = 0
        for leaf, size in zip(leaves, sizes):
            np.multiply(leaf.reshape(-1), weight, out=buffer[at:at + size])
            at += size
        buffer[at:-1] = scores
        buffer[-1] = self._interrupted
        self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
        if buffer[-1] > 0:
            raise KeyboardInterrupt
        out, at = [], 0
        for leaf, size in zip(leaves, sizes):
            out.append(buffer[at:at + size].reshape(leaf.shape))
            at += size
        return tree_unflatten_like(grads, out), [float(v) for v in buffer[at:-1]]

    @contextmanager
    def interrupts(self):
        """While ``fit`` trains, Ctrl-C (SIGINT) in any rank only marks it interrupted;
        the next step's Allreduce tells every rank, and all of them stop after that same
        step. (A KeyboardInterrupt raised in one rank alone would leave the others
        waiting in a collective, or stop them after different steps.)"""
        self._interrupted = False
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGINT, self._mark_interrupted)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _mark_interrupted(self, signum, frame):
        self._interrupted = True

    def map_rows(self, fn, x):
        """``fn(x)`` computed in parts: each rank applies ``fn`` to its contiguous share
        of the rows of ``x`` (validation), and every rank gets all the results, in order."""
        if len(x) < self.size:          # too few rows to give every rank one
            return fn(x)
        return np.concatenate(self.comm.allgather(fn(x[self._rows(len(x))])))

    def after_step(self, params):
        """Count the step; compare the ranks' params every ``check_every`` steps."""
        self._steps += 1
        if self._steps % self.check_every == 0:
            self.check(params)

    # --- agreement -----------------------------------------------------------------

    def check(self, params):
        """Raise DistributedError unless every rank holds bit-identical params."""
        sums = self.comm.allgather(_checksum(params))
        if len(set(sums)) > 1:
            differ = [r for r, s in enumerate(sums) if s != sums[0]]
            raise DistributedError(
                f"the params of rank(s) {differ} differ from rank 0's after {self._steps} "
                "steps: the ranks no longer train the same model (were they given the same "
                "data, params and seed?)")

    def end_epoch(self, params, state):
        """The epoch's final check; the layer state each rank continues with (its own)."""
        self.check(params)
        return state

    def same_everywhere(self, tree):
        """Raise DistributedError unless ``tree`` is bit-identical on every rank (used
        before training, on the initial params)."""
        self.check(tree)

    def _sum(self, a):
        a = np.ascontiguousarray(a)
        out = np.empty_like(a)
        self.comm.Allreduce(a, out, op=self.MPI.SUM)
        return out


def _checksum(tree):
    """A CRC of every leaf's bytes, in tree order."""
    crc = 0
    for leaf in tree_leaves(tree):
        crc = zlib.crc32(np.ascontiguousarray(leaf).tobytes(), crc)
    return crc


class SingleProcess:
    """``fit``'s default: one process, nothing shared (every method is the identity)."""
    writes, size, rank = True, 1, 0

    def shard(self, xb, yb):
        return xb, yb, slice(0, len(xb)), len(xb)

    def batch(self, rows, global_n):
        return nullcontext()

    def reduce(self, grads, scores, weight):
        return grads, scores

    def map_rows(self, fn, x):
        return fn(x)

    def interrupts(self):
        return nullcontext()

    def after_step(self, params):
        pass

    def same_everywhere(self, tree):
        pass

    def end_epoch(self, params, state):
        return state


@contextmanager
def abort_on_error(comm=None, prefix="", passing=()):
    """Run a block on every rank; an exception on any rank prints ``rank k: message``
    on stderr and aborts all ranks (exit status 1), instead of leaving the others
    waiting for it. KeyboardInterrupt aborts too. Exceptions of the ``passing``
    types (ones every rank raises alike) go on as usual."""
    MPI = mpi()
    comm = MPI.COMM_WORLD if comm is None else comm
    try:
        yield
    except BaseException as err:            # noqa: B902 -- every rank must stop
        if isinstance(err, passing) or (isinstance(err, SystemExit) and not err.code):
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        if not isinstance(err, PurenetError):
            message = f"{type(err).__name__}: {message}"
        print(f"{prefix}rank {comm.Get_rank()}: {message}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        comm.Abort(1)

