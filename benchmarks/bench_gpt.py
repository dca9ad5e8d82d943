"""Training-step time of the baby GPT (Chapter 6), scratchlm beside an identical PyTorch model.

    python benchmarks/bench_gpt.py [--threads 2] [--steps 30] [--dtype float32]

One step = forward, backward, gradient clipping and an AdamW update, on nanoGPT's "baby GPT"
(n_layer 4, n_head 4, n_embd 128, block_size 64, batch 12, vocab 65, no bias, tied embeddings).
Both models start from the same weights and see the same batches, each in child processes of its
own (alternating, `--repeats` each); the table gives the best of their median step times over
`--steps` steps after warm-up, the ratio scratchlm / PyTorch, and the achieved GFLOP/s (the
step's matrix-product FLOPs / time) against NumPy's measured float32 GEMM throughput. BLAS, Numba
and PyTorch are all limited to `--threads` threads, set before NumPy is imported.

The PyTorch twin (`torch_gpt_loss`) is a functional forward over the scratchlm model's own
parameter arrays, with torch's scaled_dot_product_attention (as nanoGPT), made of the block twins in
_common.py; the parity tests in tests/test_gpt.py use it too (GPT-2-style and the modern decoder).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (gemm_gflops, machine, median_step_seconds, set_threads, torch_adamw,  # noqa: E402
                     torch_block, torch_norm, torch_parameters)

if __name__ == "__main__":  # thread counts must be set before NumPy (and its BLAS) load
    set_threads(default=2)

import json  # noqa: E402
import math  # noqa: E402
import subprocess  # noqa: E402

import numpy as np  # noqa: E402

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # the benchmark still times scratchlm alone
    torch = None


# ---------------------------------------------------------------------------------------------
# The PyTorch twin: the same computation over the same named parameters
# ---------------------------------------------------------------------------------------------

def torch_gpt_loss(params: dict, config, idx, targets=None):
    """nanoGPT's forward in PyTorch over `params` (names as in scratchlm.models.gpt) -> (logits, loss);
    with the modern decoder's options (RMSNorm, RoPE, SwiGLU) when the config asks for them."""
    B, T = idx.shape
    x = TF.embedding(idx, params["wte.weight"])
    if config.position == "learned":
        x = x + params["wpe.weight"][:T]
    for i in range(config.n_layer):
        x = torch_block(x, params, f"h.{i}", config)
    head = params["wte.weight"] if config.tie_weights else params["lm_head.weight"]
    logits = TF.linear(torch_norm(x, params, "ln_f", config), head)
    loss = None if targets is None else TF.cross_entropy(logits.view(B * T, -1), targets.view(-1),
                                                         ignore_index=-1)
    return logits, loss


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------

BATCH_SIZE = 12

def step_flops(config, batch_size: int) -> float:
    """Matrix-product FLOPs of one training step: 2 per multiply-add, backward = 2 x forward."""
    tokens, C, T = batch_size * config.block_size, config.n_embd, config.block_size
    per_token = config.n_layer * (3 * C * C + C * C + 8 * C * C) + C * config.vocab_size  # weights used
    attention = config.n_layer * 2 * batch_size * T * T * C                               # QK^T and PV
    return 3 * 2 * (tokens * per_token + attention)


def scratchlm_step_fn(model, lr: float = 1e-3):
    from scratchlm.optim import clip_grad_norm
    from scratchlm.train import configure_optimizer

    optimizer = configure_optimizer(model, lr=lr, weight_decay=0.1, betas=(0.9, 0.99))
    params = model.parameters()

    def step(x, y):
        optimizer.zero_grad()
        _, loss = model(x, y)
        loss.backward()
        clip_grad_norm(params, 1.0)
        optimizer.step()
    return step


def torch_step_fn(model, lr: float = 1e-3):
    from scratchlm.train import decayed_parameter_names

    params = torch_parameters(model)
    optimizer = torch_adamw(params, decayed_parameter_names(model), lr, weight_decay=0.1)

    def step(x, y):
        optimizer.zero_grad(set_to_none=True)
        _, loss = torch_gpt_loss(params, model.config, torch.from_numpy(x), torch.from_numpy(y))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
        optimizer.step()
    return step


def time_one(impl: str, steps: int, dtype: str) -> float:
    """Median step time of one implementation, in this process (the child's job)."""
    from scratchlm.models.gpt import GPT, GPTConfig
    from scratchlm.rng import manual_seed

    manual_seed(0)
    config, warmup = GPTConfig(), 5
    model = GPT(config, dtype=np.dtype(dtype))
    rng = np.random.default_rng(0)
    batches = [(rng.integers(0, config.vocab_size, (BATCH_SIZE, config.block_size)),
                rng.integers(0, config.vocab_size, (BATCH_SIZE, config.block_size)))
               for _ in range(warmup + steps)]
    if impl == "torch":
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        torch.set_default_dtype(torch.float64 if dtype == "float64" else torch.float32)
    step = torch_step_fn(model) if impl == "torch" else scratchlm_step_fn(model)
    return 1000 * median_step_seconds({impl: lambda i: step(*batches[i])}, steps, warmup)[impl]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30, help="timed steps (after 5 warm-up steps)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=2, help="child processes per implementation; "
                                                              "the best median counts")
    parser.add_argument("--impl", choices=["scratchlm", "torch"], help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    if args.impl:
        print(json.dumps({"ms": time_one(args.impl, args.steps, args.dtype)}))
        return

    # Each implementation runs in child processes of its own, alternating: PyTorch and Numba each
    # keep an OpenMP thread pool, and two pools spinning in one process on two cores starve each other.
    from numba import config as numba_config

    from scratchlm.models.gpt import GPTConfig

    impls = (["torch"] if torch is not None else []) + ["scratchlm"]
    best = {impl: math.inf for impl in impls}
    for _ in range(args.repeats):
        for impl in impls:
            out = subprocess.run([sys.executable, __file__, "--impl", impl, "--threads", str(args.threads),
                                  "--steps", str(args.steps), "--dtype", args.dtype],
                                 check=True, capture_output=True, text=True).stdout
            best[impl] = min(best[impl], json.loads(out.splitlines()[-1])["ms"])
    config = GPTConfig()
    flops = step_flops(config, BATCH_SIZE)
    peak = gemm_gflops(args.dtype)
    names = {"torch": f"PyTorch {torch.__version__}" if torch is not None else "", "scratchlm": "scratchlm"}

    print(f"baby GPT training step: n_layer {config.n_layer}, n_head {config.n_head}, n_embd {config.n_embd}, "
          f"block {config.block_size}, batch {BATCH_SIZE}, {args.dtype}, {args.threads} threads "
          f"(numba {numba_config.NUMBA_NUM_THREADS}); best of {args.repeats} processes x median of "
          f"{args.steps} steps")
    print(f"machine: {machine()}")
    print(f"{'implementation':<22}{'ms/step':>10}{'GFLOP/s':>10}{'% of GEMM':>11}")
    for impl, ms in best.items():
        gflops = flops / ms / 1e6
        print(f"{names[impl]:<22}{ms:>10.1f}{gflops:>10.1f}{100 * gflops / peak:>10.0f}%")
    print(f"{'numpy GEMM 1024^3':<22}{'':>10}{peak:>10.1f}")
    if torch is not None:
        print(f"ratio scratchlm / PyTorch: {best['scratchlm'] / best['torch']:.2f}")


if __name__ == "__main__":
    main()
