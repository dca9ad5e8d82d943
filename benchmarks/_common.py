"""Shared by the benchmark scripts: pin every thread pool before NumPy loads, and build the PyTorch
twins of a scratchlm model's parameters and optimiser.

    from _common import set_threads      # first lines of a benchmark, before `import numpy`
    THREADS = set_threads()              # reads --threads N from the command line (default 1)

BLAS (OpenMP / OpenBLAS / MKL), Numba and Rust's rayon (Hugging Face tokenizers) read these
variables once, when they start, so setting them after NumPy is imported has no effect.
"""

from __future__ import annotations

import os
import sys

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
               "RAYON_NUM_THREADS")


def set_threads(default: int = 1) -> int:
    """Set every thread-count variable to --threads N from sys.argv (or `default`); return N."""
    n = default
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            n = int(sys.argv[i + 1])
        elif arg.startswith("--threads="):
            n = int(arg.split("=", 1)[1])
    if "numpy" in sys.modules:
        raise RuntimeError("set_threads() must run before NumPy is imported")
    for var in THREAD_VARS:
        os.environ[var] = str(n)
    return n


def torch_parameters(model) -> dict:
    """{name: leaf torch tensor requiring grad} copied from a scratchlm model's parameters."""
    import torch  # only the benchmarks that have a PyTorch reference need it
    return {name: torch.tensor(p.data, requires_grad=True) for name, p in model.named_parameters()}


def torch_adamw(params: dict, decayed: set, lr: float, weight_decay: float, betas=(0.9, 0.99)):
    """PyTorch's AdamW over `params` grouped as scratchlm.train.configure_optimizer groups them: weight
    decay on the parameters named in `decayed` (scratchlm.train.decayed_parameter_names), none on the
    others."""
    import torch
    groups = [{"params": [p for name, p in params.items() if name in decayed], "weight_decay": weight_decay},
              {"params": [p for name, p in params.items() if name not in decayed], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas))
