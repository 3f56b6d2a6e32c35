"""Keep freed memory in the process, so a training step's big arrays reuse warm pages.

Every step allocates and frees the same large arrays: activations, gradients, patch
matrices of a few megabytes each. glibc's malloc serves a block above its mmap
threshold (128 KB at first, then raised only as far as the largest block freed so
far) with a fresh mapping from the kernel and unmaps it when it is freed, and it
gives the top of its heap back once more than 128 KB is free there. Either way the
next step's arrays arrive as new pages that the kernel zeroes on first touch. For
the Fashion-MNIST ``cnn`` recipe's training step that was 10,000-13,000 page faults
and 262-290 ms a step, against 19-55 faults and 166 ms with the memory kept
(``bench/bench_memory.py``, AMD EPYC, 2 threads; on a virtual machine a page fault
can cost far more than on bare metal).

``keep_freed_memory()`` sets the mmap threshold to glibc's upper limit (32 MB on
64-bit systems) and never trims the heap, so freed blocks up to 32 MB stay in the
process for the next allocation. It runs when purenet is imported unless the
environment has ``PURENET_KEEP_MEMORY=0``; where the C library is not glibc it does
nothing. The price: memory freed after a peak stays with the process until it exits,
as with the caching allocators of other frameworks.
"""
import ctypes
import os
import platform

M_TRIM_THRESHOLD = -1       # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 << 20       # glibc refuses more on 64-bit systems
NEVER_TRIM = (1 << 31) - 1          # the largest value mallopt's int takes


def keep_freed_memory():
    """Ask glibc to keep freed blocks up to 32 MB for reuse; True if it agreed."""
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)
                and libc.mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))


def apply_default():
    """``keep_freed_memory()`` unless ``PURENET_KEEP_MEMORY=0``; True if applied."""
    if os.environ.get("PURENET_KEEP_MEMORY", "1").strip() == "0":
        return False
    return keep_freed_memory()
