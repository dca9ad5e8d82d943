"""Training-step time of the encoder (BERT) and the encoder-decoder (T5) of Chapter 9, scratchlm
beside identical PyTorch models.

    python benchmarks/bench_transformer.py [--threads 2] [--steps 20] [--repeats 2] [--no-padding]

One step = forward, backward, gradient clipping and an AdamW update, float32, at a CPU-sized
configuration with Penn Treebank's word vocabulary (10,000 words; Chapter 9 pretrains on PTB):
n_layer 4 (each stack), n_head 4, n_embd 128, batch 16, no bias, tied embeddings;
    BERT  sequences of 64 tokens, 15% of them masked-LM targets; "bert" is model(idx, targets,
          key_lengths) (the head on every position), "bert_mlm" is bert.mlm_loss (the head on the
          targets only, as BERT's pretraining code; PyTorch's twin gathers the same rows)
    T5    sources of 64 tokens, targets of 16 (the shape of span corruption at density 0.15:
          ~10 noise tokens in ~3 spans -> targets of sentinels + spans + </s>)
Batches are padded (each row's real length drawn from [T/2, T], targets -1 after it): the models
mask the padding in every attention (key_lengths), PyTorch with a boolean attn_mask; --no-padding
gives full rows (PyTorch's unmasked scaled_dot_product_attention path).

Each (model, implementation) runs in child processes of its own, alternating, `--repeats` each,
from the same weights on the same batches; the table gives the best of their median step times over
`--steps` steps after 5 warm-up steps, the ratio scratchlm / PyTorch, and the achieved GFLOP/s (the
step's matrix-product FLOPs / time). BLAS, Numba and PyTorch are all limited to `--threads` threads.

The PyTorch twins (`torch_bert_loss`, `torch_t5_loss`) are functional forwards over the scratchlm
model's own parameter arrays, made of _common.py's block and stack twins, with torch's
scaled_dot_product_attention; the parity tests (tests/test_bert.py, tests/test_t5.py) use them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_step_seconds, set_threads, torch_adamw, torch_parameters, torch_stack  # noqa: E402

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
# The PyTorch twins: the same computation over the same named parameters
# ---------------------------------------------------------------------------------------------

def _lm_loss(logits, targets):
    B, T, V = logits.shape
    return None if targets is None else TF.cross_entropy(logits.reshape(B * T, V), targets.reshape(-1),
                                                         ignore_index=-1)


def torch_bert_loss(params: dict, config, idx, targets=None, key_lengths=None, gathered: bool = False):
    """scratchlm.models.bert.BERT's forward in PyTorch over `params` -> (logits (B, T, V), loss);
    gathered=True: bert.mlm_loss's, the head run only where targets >= 0 -> (logits (n, V), loss)."""
    wte = params["wte.weight"]
    h = torch_stack(TF.embedding(idx, wte), params, "encoder", config, config.n_layer, False, key_lengths)
    if gathered:
        rows = (targets.reshape(-1) >= 0).nonzero().squeeze(1)
        logits = TF.linear(h.reshape(-1, h.shape[-1])[rows], wte)
        return logits, TF.cross_entropy(logits, targets.reshape(-1)[rows])
    logits = TF.linear(h, wte)                                                # tied masked-LM head
    return logits, _lm_loss(logits, targets)


def torch_t5_loss(params: dict, config, src, src_lengths, dec_in, targets=None):
    """scratchlm.models.t5.T5's forward in PyTorch over `params` -> (logits (B, T, V), loss)."""
    wte = params["wte.weight"]
    memory = torch_stack(TF.embedding(src, wte), params, "encoder", config, config.n_encoder_layer, False,
                         src_lengths)
    h = torch_stack(TF.embedding(dec_in, wte), params, "decoder", config, config.n_decoder_layer, True, None,
                    memory, src_lengths)
    logits = TF.linear(h, wte)
    return logits, _lm_loss(logits, targets)


# ---------------------------------------------------------------------------------------------
# The configuration, the batches and their FLOPs
# ---------------------------------------------------------------------------------------------

VOCAB, BATCH, SEQ, TARGET_LEN, WARMUP = 10_000, 16, 64, 16, 5
MODELS = ("bert", "bert_mlm", "t5")   # bert_mlm: BERT trained through bert.mlm_loss (head on targets only)


def make_config(model: str):
    from scratchlm.models.bert import BERTConfig
    from scratchlm.models.t5 import T5Config
    sizes = dict(vocab_size=VOCAB, block_size=SEQ, n_layer=4, n_head=4, n_embd=128)
    return T5Config(**sizes) if model == "t5" else BERTConfig(**sizes)


def _lengths(rng, T: int, padded: bool) -> np.ndarray:
    return rng.integers(T // 2, T + 1, BATCH) if padded else np.full(BATCH, T)


def make_batches(model: str, n: int, padded: bool) -> list[tuple]:
    """n batches of random ids: BERT (idx, targets, key_lengths); T5 (src, src_lengths, dec_in, targets).
    Targets are -1 where nothing is predicted (BERT: 85% of the tokens; both: after a row's end)."""
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(n):
        if model != "t5":
            idx = rng.integers(0, VOCAB, (BATCH, SEQ))
            lengths = _lengths(rng, SEQ, padded)
            chosen = (rng.random((BATCH, SEQ)) < 0.15) & (np.arange(SEQ) < lengths[:, None])
            batches.append((idx, np.where(chosen, idx, -1), lengths))
        else:
            src, dec_in = rng.integers(0, VOCAB, (BATCH, SEQ)), rng.integers(0, VOCAB, (BATCH, TARGET_LEN))
            src_lengths, tgt_lengths = _lengths(rng, SEQ, padded), _lengths(rng, TARGET_LEN, padded)
            targets = rng.integers(0, VOCAB, (BATCH, TARGET_LEN))
            batches.append((src, src_lengths, dec_in, np.where(np.arange(TARGET_LEN) < tgt_lengths[:, None],
                                                               targets, -1)))
    return batches


def step_flops(model: str, config, batches) -> float:
    """Matrix-product FLOPs of one training step (2 per multiply-add, backward = 2 x forward), padded
    positions included (both implementations compute them); bert_mlm's head on the batches' mean
    number of targets."""
    C, V = config.n_embd, config.vocab_size
    block = 12 * C * C                                          # c_attn 3C^2, c_proj C^2, MLP 8C^2 per token

    def encoder(T, n_layer):                                    # weights, then QK^T and PV
        return BATCH * T * n_layer * block + n_layer * 2 * BATCH * T * T * C
    if model != "t5":
        head_positions = np.mean([(b[1] >= 0).sum() for b in batches]) if model == "bert_mlm" else BATCH * SEQ
        forward = encoder(SEQ, config.n_layer) + head_positions * C * V
    else:
        T, S, L = TARGET_LEN, SEQ, config.n_decoder_layer
        cross = BATCH * T * L * 2 * C * C + BATCH * S * L * 2 * C * C + L * 2 * BATCH * T * S * C  # c_q, c_proj; c_kv; QK^T, PV
        forward = encoder(S, config.n_encoder_layer) + encoder(T, L) + cross + BATCH * T * C * V
    return 3 * 2 * forward


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------

def scratchlm_step_fn(model, model_name: str, lr: float = 1e-3):
    from scratchlm.models.bert import mlm_loss
    from scratchlm.optim import clip_grad_norm
    from scratchlm.train import configure_optimizer

    optimizer = configure_optimizer(model, lr=lr, weight_decay=0.1, betas=(0.9, 0.99))
    params = model.parameters()

    def step(batch):
        optimizer.zero_grad()
        if model_name == "bert":                                 # idx, targets, key_lengths
            _, loss = model(batch[0], batch[1], key_lengths=batch[2])
        elif model_name == "bert_mlm":
            loss, _ = mlm_loss(model, batch)
        else:                                                    # T5: src, src_lengths, dec_in, targets
            _, loss = model(*batch)
        loss.backward()
        clip_grad_norm(params, 1.0)
        optimizer.step()
    return step


def torch_step_fn(model, model_name: str, lr: float = 1e-3):
    from scratchlm.train import decayed_parameter_names

    params = torch_parameters(model)
    optimizer = torch_adamw(params, decayed_parameter_names(model), lr, weight_decay=0.1)

    def step(batch):
        optimizer.zero_grad(set_to_none=True)
        if model_name != "t5":
            idx, targets, lengths = (torch.from_numpy(a) for a in batch)
            _, loss = torch_bert_loss(params, model.config, idx, targets, lengths, model_name == "bert_mlm")
        else:
            _, loss = torch_t5_loss(params, model.config, *(torch.from_numpy(a) for a in batch))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
        optimizer.step()
    return step


def time_one(model_name: str, impl: str, steps: int, padded: bool) -> float:
    """Median step time of one implementation of one model, in this process (the child's job)."""
    from scratchlm.models.bert import BERT
    from scratchlm.models.t5 import T5
    from scratchlm.rng import manual_seed

    manual_seed(0)
    config = make_config(model_name)
    model = (T5 if model_name == "t5" else BERT)(config, dtype=np.float32)
    batches = make_batches(model_name, WARMUP + steps, padded)
    if impl == "torch":
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    step = torch_step_fn(model, model_name) if impl == "torch" else scratchlm_step_fn(model, model_name)
    return 1000 * median_step_seconds({impl: lambda i: step(batches[i])}, steps, WARMUP)[impl]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help=f"timed steps (after {WARMUP} warm-up steps)")
    parser.add_argument("--repeats", type=int, default=2, help="child processes per implementation and model; "
                                                              "the best median counts")
    parser.add_argument("--no-padding", action="store_true", help="full rows: no key padding to mask")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {','.join(MODELS)}")
    parser.add_argument("--impl", choices=["scratchlm", "torch"], help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    models = args.models.split(",")
    if not set(models) <= set(MODELS):
        parser.error(f"--models: choose from {','.join(MODELS)}, got {args.models!r}")
    if args.impl:
        print(json.dumps({"ms": time_one(models[0], args.impl, args.steps, not args.no_padding)}))
        return

    # Each implementation runs in child processes of its own, alternating: PyTorch and Numba each
    # keep an OpenMP thread pool, and two pools spinning in one process on two cores starve each other.
    impls = (["torch"] if torch is not None else []) + ["scratchlm"]
    best = {(m, impl): math.inf for m in models for impl in impls}
    for _ in range(args.repeats):
        for m in models:
            for impl in impls:
                cmd = [sys.executable, __file__, "--impl", impl, "--models", m, "--threads", str(args.threads),
                       "--steps", str(args.steps)] + (["--no-padding"] if args.no_padding else [])
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                best[m, impl] = min(best[m, impl], json.loads(out.splitlines()[-1])["ms"])

    names = {"torch": f"PyTorch {torch.__version__}" if torch is not None else "", "scratchlm": "scratchlm"}
    print(f"training step (forward, backward, clip, AdamW), float32, n_layer 4 (each stack), n_head 4, "
          f"n_embd 128, vocab {VOCAB}, batch {BATCH}; BERT T {SEQ}; T5 S {SEQ}, T {TARGET_LEN}; "
          f"{'full rows' if args.no_padding else 'padded rows'}; {args.threads} threads; best of "
          f"{args.repeats} processes x median of {args.steps} steps")
    print(f"{'model':<10}{'implementation':<22}{'ms/step':>10}{'GFLOP/s':>10}")
    for m in models:
        flops = step_flops(m, make_config(m), make_batches(m, WARMUP + args.steps, not args.no_padding))
        for impl in impls:
            ms = best[m, impl]
            print(f"{m:<10}{names[impl]:<22}{ms:>10.1f}{flops / ms / 1e6:>10.1f}")
        if torch is not None:
            print(f"{m:<10}ratio scratchlm / PyTorch: {best[m, 'scratchlm'] / best[m, 'torch']:.2f}")


if __name__ == "__main__":
    main()
