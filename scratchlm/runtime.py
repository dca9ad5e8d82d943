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

Thread counts, on request. BLAS, OpenMP and Numba read how many threads to start from environment
variables (THREAD_VARS) once, when NumPy or the first kernel loads them, so a program that wants to
choose must set them before it imports NumPy. `set_threads(n)` does that (the benchmarks'
--threads N). `start_mpi()` does it for a process started by an MPI launcher (Chapter 11's sweep):

    from scratchlm.runtime import start_mpi   # the first lines of the script, before numpy
    comm = start_mpi()                         # MPI.COMM_WORLD, or None when mpi4py is absent
    import numpy as np

Each of the K ranks that share a machine gets cores // K threads in every pool: K ranks with all
the cores each would start K times as many threads as there are cores, and a BLAS thread that has
to wait for a core stalls everyone else's (a baby-GPT step went from 84 ms to over 600 ms on two
cores). A count already in the environment is kept: the user's choice wins over the division.
"""

from __future__ import annotations

import ctypes
import os
import sys

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
               "RAYON_NUM_THREADS")  # OpenMP, OpenBLAS, MKL, Numba, Rust's rayon (Hugging Face tokenizers)
# Set by the MPI launchers in every process they start: MPICH and Intel MPI, Open MPI, PMIx.
_LAUNCHER_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK")
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


def set_threads(n: int, keep_set: bool = False) -> None:
    """Set every THREAD_VARS variable to `n` (keep_set=True: only those not set yet). Must run
    before NumPy is imported: the pools read the variables once, when they start."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_threads: the number of threads must be an integer >= 1, got {n!r}")
    if "numpy" in sys.modules:
        raise RuntimeError("set_threads() must run before NumPy is imported: the thread pools have read "
                           "their counts already (put it, or start_mpi(), above `import numpy`)")
    for var in THREAD_VARS:
        if not (keep_set and var in os.environ):
            os.environ[var] = str(n)


def start_mpi(threads: int | None = None):
    """MPI.COMM_WORLD with this process's thread pools pinned (module docstring); call it before
    NumPy is imported. Without mpi4py: None (one process), unless an MPI launcher started this
    process, which is an error (each rank would run the whole sweep on its own).

    threads: per process; default the cores this process may use divided by the ranks on its
    machine (at least 1), each pool's count already in the environment kept."""
    try:
        from mpi4py import MPI     # optional (scratchlm[mpi]); mpi4py does not import NumPy
    except ImportError:
        launcher = [var for var in _LAUNCHER_VARS if var in os.environ]
        if launcher:
            raise RuntimeError(f"this process was started by an MPI launcher ({launcher[0]} is set) but mpi4py "
                               f"is not installed, so every rank would run alone; install it with "
                               f"pip install 'scratchlm[mpi]' (mpi4py and MPICH)") from None
        comm, local_ranks = None, 1
    else:
        comm = MPI.COMM_WORLD
        local_ranks = comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()   # the ranks on this machine
    if threads is not None:
        set_threads(threads)
    else:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        set_threads(max(1, cores // local_ranks), keep_set=True)
    return comm


os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
KEPT_FREED_MEMORY = keep_freed_memory()
