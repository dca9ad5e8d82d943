"""Training throughput of Chapter 4's NPLM on PTB, scratchlm beside an identical PyTorch model.

    python benchmarks/bench_nplm.py [--threads 2] [--steps 30] [--batch-size 512]

One step = forward, backward and an AdamW update (decay on the matrices only) on one batch of
(context, next word) windows, with the chapter's PTB configuration: V = 10,001, n-1 = 4, m = 128,
h = 256, dropout 0.3. Both models start from the same weights and see the same batches. The table
gives the median step time after warm-up, training tokens per second, the ratio scratchlm / PyTorch
of the throughputs, and the achieved GFLOP/s of the matrix products (6 flops per weight per token:
forward, and the two products of the backward) against NumPy's float32 GEMM on this machine.
BLAS, Numba and PyTorch are all limited to `--threads` threads, set before NumPy is imported.

The PyTorch twin (`torch_nplm_loss`) is a functional forward over the scratchlm model's own
parameter arrays; tests/test_nplm.py checks it gives the same loss and gradients.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import gemm_gflops, machine, median_step_seconds, set_threads, torch_adamw, torch_parameters  # noqa: E402

if __name__ == "__main__":  # thread counts must be set before NumPy (and its BLAS) load
    set_threads(default=2)


import numpy as np  # noqa: E402

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # the benchmark still times scratchlm alone
    torch = None

# ---------------------------------------------------------------------------------------------
# The PyTorch twin: the same computation over the same named parameters
# ---------------------------------------------------------------------------------------------


def torch_nplm_loss(params: dict, config, context, targets, dropout: bool = False):
    """The NPLM's forward (scratchlm.models.nplm) in PyTorch over `params` -> (logits, mean loss)."""
    x = TF.embedding(context, params["C.weight"]).reshape(len(context), -1)  # (B, (n-1) m)
    a = TF.dropout(torch.tanh(TF.linear(x, params["H.weight"], params["H.bias"])), config.dropout,
                   training=dropout)                                         # (B, h)
    logits = TF.linear(a, params["U.weight"], params["U.bias"])              # (B, V)
    if config.direct:
        logits = logits + TF.linear(x, params["W.weight"])
    return logits, TF.cross_entropy(logits, targets)


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------

def main() -> None:
    from scratchlm.models.nplm import NPLM, NPLMConfig
    from scratchlm.rng import manual_seed
    from scratchlm.train import configure_optimizer, decayed_parameter_names, train_step

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=512)
    args = parser.parse_args()

    config = NPLMConfig(vocab_size=10_001, context=4, n_embd=128, n_hidden=256, dropout=0.3, weight_decay=0.1)
    lr, B = 2e-3, args.batch_size
    manual_seed(0)
    model = NPLM(config)
    optimizer = configure_optimizer(model, lr, config.weight_decay)
    rng = np.random.default_rng(0)
    # Zipf-like word ids, as in text: the embedding's scatter-add sees repeated rows
    batches = [(np.minimum(rng.zipf(1.2, (B, config.context)) - 1, config.vocab_size - 1),
                np.minimum(rng.zipf(1.2, B) - 1, config.vocab_size - 1)) for _ in range(args.steps + 2)]
    weights = sum(p.data.size for name, p in model.named_parameters() if name.endswith("weight")
                  and not name.startswith("C."))
    flops_per_token = 6 * weights

    steps = {"scratchlm": lambda i: train_step(model, optimizer, [batches[i]], lr)}
    if torch is not None:
        torch.set_num_threads(args.threads)
        params = torch_parameters(model)
        t_opt = torch_adamw(params, decayed_parameter_names(model), lr, config.weight_decay)

        def torch_step(x, y):
            t_opt.zero_grad(set_to_none=True)
            _, loss = torch_nplm_loss(params, config, x, y, dropout=True)
            loss.backward()
            t_opt.step()
            return loss.item()
        name = f"PyTorch {torch.__version__}"
        t_batches = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]
        steps[name] = lambda i: torch_step(*t_batches[i])
    rows = list(median_step_seconds(steps, args.steps).items())

    peak = gemm_gflops(n=2048)
    print(f"NPLM training step on PTB's configuration: V={config.vocab_size}, n-1={config.context}, "
          f"m={config.n_embd}, h={config.n_hidden}, batch {B}, AdamW; {args.threads} threads; "
          f"NumPy float32 GEMM peak {peak:.0f} GFLOP/s")
    print(f"machine: {machine()}")
    print(f"{'implementation':<22} {'ms/step':>9} {'tokens/s':>10} {'GFLOP/s':>9} {'of peak':>8}")
    for name, seconds in rows:
        gflops = flops_per_token * B / seconds / 1e9
        print(f"{name:<22} {seconds * 1e3:9.1f} {B / seconds:10,.0f} {gflops:9.1f} {gflops / peak:8.0%}")
    if len(rows) == 2:
        print(f"throughput ratio scratchlm / PyTorch: {rows[1][1] / rows[0][1]:.2f}x")
    else:
        print("PyTorch is not installed: no reference row")


if __name__ == "__main__":
    main()
