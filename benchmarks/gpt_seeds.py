"""How much of the baby GPT's valid loss is the seed: nanoGPT's recipe (Chapter 6) trained from
several seeds by scratchlm and by the PyTorch twin of bench_gpt.py, side by side.

    python benchmarks/gpt_seeds.py [--seeds 8] [--jobs 2] [--steps 2000] [--no-decay-embeddings] [--bias]

For each seed s, scratchlm's GPT is initialised from seed s and the PyTorch twin starts from a copy
of the same weights; both then see the same batches (a generator seeded s) and the same learning
rates (scratchlm.train.TrainConfig's defaults are the recipe: AdamW, 1e-3 -> 1e-4 cosine with 100
warmup steps, weight decay 0.1, beta2 0.99, clip 1.0). Every (implementation, seed) run is a child
process with one thread, `--jobs` at a time. Each reports its loss on the valid split two ways:

    full      every character of the valid split predicted once (non-overlapping windows of 64),
              what Chapter 6 reports
    20 x 12   the mean over 20 random batches of 12 windows, nanoGPT's own estimate on a CPU
              (`--eval_iters=20`), the number behind its "1.88"

The table shows each run, then the mean, standard deviation, minimum and maximum of each column.
Two switches try what nanoGPT's code may have done differently when its README reported 1.88:
`--no-decay-embeddings` uses its optimiser groups of early 2023 (no weight decay on the embedding
tables, scratchlm.train.decayed_parameter_names), and `--bias` gives the Linear and LayerNorm layers
biases, as in GPT-2 (nanoGPT's GPTConfig defaults to bias=True; its train.py sets False).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

if __name__ == "__main__":  # thread counts must be set before NumPy (and its BLAS) load
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import set_threads
    set_threads(default=1)   # one thread per run; the runs go in parallel instead

import multiprocessing  # noqa: E402

import numpy as np  # noqa: E402

NANOGPT_REPORTED = 1.88
ESTIMATE_BATCHES = 20


def mean_loss(loss_of, batches) -> float:
    """Mean loss per target over (x, y) batches, loss_of(x, y) -> the batch's mean loss."""
    total, count = 0.0, 0
    for x, y in batches:
        total += loss_of(x, y) * y.size
        count += y.size
    return total / count


def run(impl: str, seed: int, steps: int, decay_embeddings: bool = True, bias: bool = False) -> dict:
    """Train the baby GPT from `seed` with one implementation; its valid losses and time."""
    from scratchlm import data
    from scratchlm.autograd import no_grad
    from scratchlm.models.gpt import GPT, GPTConfig
    from scratchlm.rng import manual_seed
    from scratchlm.tokenizers import CharTokenizer
    from scratchlm.train import TrainConfig, configure_optimizer, decayed_parameter_names, train_step

    texts = {split: data.load_text("tinyshakespeare", split) for split in ("train", "valid")}
    chars = CharTokenizer.fit(texts["train"])
    ids = {split: chars.encode(text) for split, text in texts.items()}
    config, batch_size = GPTConfig(vocab_size=chars.vocab_size, bias=bias), 12   # the defaults are the recipe's
    recipe = TrainConfig(max_iters=steps, lr_decay_iters=steps, warmup_iters=min(100, steps - 1))
    manual_seed(seed)
    model = GPT(config)

    if impl == "torch":
        import torch

        from _common import torch_adamw, torch_parameters
        from bench_gpt import torch_gpt_loss
        torch.set_num_threads(1)
        params = torch_parameters(model)
        optimizer = torch_adamw(params, decayed_parameter_names(model, embeddings=decay_embeddings),
                                recipe.learning_rate, recipe.weight_decay, (recipe.beta1, recipe.beta2))

        def step(x, y, lr):
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            _, loss = torch_gpt_loss(params, config, torch.from_numpy(x), torch.from_numpy(y))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(params.values()), recipe.grad_clip)
            optimizer.step()

        def loss_of(x, y):
            with torch.no_grad():
                return torch_gpt_loss(params, config, torch.from_numpy(x), torch.from_numpy(y))[1].item()
    else:
        optimizer = configure_optimizer(model, recipe.learning_rate, recipe.weight_decay,
                                        (recipe.beta1, recipe.beta2), decay_embeddings=decay_embeddings)

        def step(x, y, lr):
            train_step(model, optimizer, [(x, y)], lr, recipe.grad_clip)

        def loss_of(x, y):
            with no_grad():
                return model(x, y)[1].item()

    batches = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for i in range(recipe.max_iters):
        step(*data.get_batch(ids["train"], batch_size, config.block_size, rng=batches), recipe.lr(i))
    seconds = time.perf_counter() - t0
    estimate_rng = np.random.default_rng([seed, 1])
    estimate = [data.get_batch(ids["valid"], batch_size, config.block_size, rng=estimate_rng)
                for _ in range(ESTIMATE_BATCHES)]
    return {"impl": impl, "seed": seed, "seconds": seconds,
            "full": mean_loss(loss_of, data.iter_batches(ids["valid"], 256, config.block_size)),
            "estimate": mean_loss(loss_of, estimate)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=8, help="seeds 0 .. N-1")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time, one thread each")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--decay-embeddings", action=argparse.BooleanOptionalAction, default=True,
                        help="weight decay on the embedding tables (nanoGPT today; the default)")
    parser.add_argument("--bias", action="store_true", help="biases in the Linear and LayerNorm layers")
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)  # read by set_threads
    args = parser.parse_args()
    try:
        import torch  # noqa: F401
        impls = ["scratchlm", "torch"]
    except ImportError:
        impls = ["scratchlm"]
        print("PyTorch is not installed: scratchlm alone")

    jobs = [(impl, seed, args.steps, args.decay_embeddings, args.bias)
            for seed in range(args.seeds) for impl in impls]
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(run, *zip(*jobs)))

    by = {(r["impl"], r["seed"]): r for r in results}
    changes = ("" if args.decay_embeddings else ", embeddings not decayed") + (", with biases" if args.bias else "")
    print(f"baby GPT, nanoGPT's recipe{changes}, {args.steps} steps; valid loss in nats/char "
          f"(full split | mean of {ESTIMATE_BATCHES} random batches of 12 x 64)")
    print(f"{'seed':>5}" + "".join(f"{impl + ' full':>17}{'20 x 12':>9}" for impl in impls))
    for seed in range(args.seeds):
        print(f"{seed:>5}" + "".join(f"{by[impl, seed]['full']:>17.4f}{by[impl, seed]['estimate']:>9.4f}"
                                     for impl in impls))
    for name, stat in (("mean", statistics.mean), ("sd", statistics.stdev), ("min", min), ("max", max)):
        if name == "sd" and args.seeds < 2:
            continue
        print(f"{name:>5}" + "".join(
            f"{stat([by[impl, s]['full'] for s in range(args.seeds)]):>17.4f}"
            f"{stat([by[impl, s]['estimate'] for s in range(args.seeds)]):>9.4f}" for impl in impls))
    for impl in impls:
        full = sum(by[impl, s]["full"] <= NANOGPT_REPORTED for s in range(args.seeds))
        est = sum(by[impl, s]["estimate"] <= NANOGPT_REPORTED for s in range(args.seeds))
        secs = statistics.mean(by[impl, s]["seconds"] for s in range(args.seeds))
        print(f"{impl}: {full} of {args.seeds} runs at or below {NANOGPT_REPORTED} on the full split, "
              f"{est} by the 20-batch estimate; {secs:.0f} s of training per run")


if __name__ == "__main__":
    main()
