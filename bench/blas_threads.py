"""Fix the BLAS thread count from ``--threads`` BEFORE NumPy is imported.

OpenBLAS reads its thread count once, at import, so every benchmark imports
this module first: ``THREADS = blas_threads.apply()`` then ``import numpy``.
PyTorch gets the same number through ``torch.set_num_threads(THREADS)``.
"""
import os
import sys


def from_argv(argv):
    """The ``--threads N`` / ``--threads=N`` value in ``argv``, or the core count."""
    for i, arg in enumerate(argv):
        if arg.startswith("--threads="):
            return int(arg.split("=", 1)[1])
        if arg == "--threads" and i + 1 < len(argv):
            return int(argv[i + 1])
    return os.cpu_count()


def apply(argv=None):
    """Set the BLAS thread variables from the command line; return the count."""
    threads = from_argv(sys.argv[1:] if argv is None else argv)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    return threads


def cpu_model():
    """The processor's model name (for printing beside every measured ratio)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or "unknown CPU"
