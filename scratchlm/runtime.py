"""Process-wide settings scratchlm makes once, when it is first imported (Chapters 3 onwards).

Two habits of the machine, not of the math, decide how fast the autograd engine runs:

Thread pools. Numba's OpenMP threads spin-wait after every parallel loop, taking the cores away
from the BLAS threads of the matrix product that usually comes next; with both pools on 2 cores this
made a GPT training step 1.7x slower. OMP_WAIT_POLICY=PASSIVE makes them sleep at once, for a few
microseconds per kernel. (OpenMP reads it when it starts, at the first parallel kernel.)

Fresh memory. Every op of a training step allocates its output and its gradient anew, arrays of
1-20 MB that live for one step. glibc's malloc hands arrays above its "mmap threshold" (128 KiB at
first, growing with what is freed, up to 32 MiB) straight from the kernel and gives them back when
they are freed, so the next step's array of the same size starts as untouched pages: the kernel
faults them in and zeroes them 4 KiB at a time, which cost a baby-GPT training step 13 of its 56 ms
on 2 cores. `keep_freed_memory` raises the thresholds with mallopt(3), so freed arrays stay in the
process's heap and the next step reuses them (43 ms). The price: up to TRIM_THRESHOLD of freed memory
stays with the process instead of going back to the system.

Either is left alone when the environment already says otherwise (OMP_WAIT_POLICY set, or glibc's
malloc tunables in GLIBC_TUNABLES / MALLOC_*_ variables), and SCRATCHLM_KEEP_FREED_MEMORY=0 turns the
second off. Only Linux with glibc has mallopt; elsewhere nothing changes.
"""

from __future__ import annotations

import ctypes
import os
import sys

MMAP_THRESHOLD = 64 << 20   # arrays below 64 MiB come from (and go back to) the heap
TRIM_THRESHOLD = 256 << 20  # keep up to 256 MiB of freed heap before returning any to the system
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers in glibc's <malloc.h>


def keep_freed_memory() -> bool:
    """Set glibc's malloc thresholds (above) unless the environment decides; True if they were set."""
    if os.environ.get("SCRATCHLM_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    if "malloc" in os.environ.get("GLIBC_TUNABLES", "") or any(k.startswith("MALLOC_") for k in os.environ):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl, or no libc.so.6)
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
KEPT_FREED_MEMORY = keep_freed_memory()
