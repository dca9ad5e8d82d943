"""The training loop shared by the neural language models (Chapter 4's NPLM, Chapter 6's GPT).

The contract with a model: `logits, loss = model(x, targets)`, where loss is a scalar Tensor, the
mean cross-entropy in nats over the targets (targets < 0 are ignored). Batches are (x, targets)
pairs of NumPy int arrays. The building blocks:

    configure_optimizer(model, lr, weight_decay, betas)   AdamW; decay only on matrices (ndim >= 2)
    decayed_parameter_names(model)                        which parameters those are, by name
    train_step(model, optimizer, micro_batches, lr, grad_clip) -> (loss, grad norm)
        one optimiser step: for each micro-batch, forward and backward of loss / n (gradient
        accumulation: the gradients add up to those of the mean over all micro-batches), then
        global-norm clipping, then AdamW at learning rate lr
    evaluate(model, batches) -> mean loss per target      (eval mode, no graph)
    train(model, optimizer, get_batch, config, ...)       the step-based loop of nanoGPT: warmup +
        cosine learning rate, evaluation every `eval_interval` steps with one log line each, and a
        checkpoint there that `resume=True` continues from with bit-identical numbers

An epoch loop with early stopping (Chapter 4) is the same blocks in a different order: train_step
over each epoch's batches, evaluate on valid after each epoch, keep the best checkpoint.

Why decay only the matrices: weight decay pulls weights towards 0, a prior that suits the matrices
that mix features; biases, LayerNorm gains and offsets set scales and shifts, and pulling them to 0
(a gain of 0 silences a channel) only hurts. Embeddings are matrices and are decayed, as in nanoGPT;
minGPT, and nanoGPT's early versions, exempted them (`decay_embeddings=False`). On the baby GPT the
difference is about a thousandth of a nat (`benchmarks/gpt_seeds.py --no-decay-embeddings`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scratchlm.autograd import no_grad
from scratchlm.checkpoint import load_checkpoint, save_checkpoint
from scratchlm.nn import Embedding
from scratchlm.optim import AdamW, clip_grad_norm, cosine_lr
from scratchlm.rng import get_rng


@dataclass
class TrainConfig:
    max_iters: int = 2000
    learning_rate: float = 1e-3    # peak, reached after warmup
    min_lr: float = 1e-4           # the cosine ends here at lr_decay_iters
    warmup_iters: int = 100
    lr_decay_iters: int = 2000
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0         # 0 disables clipping
    grad_accum: int = 1            # micro-batches per optimiser step
    eval_interval: int = 250
    eval_iters: int = 20           # batches per split for each evaluation (the caller draws them once)

    def lr(self, step: int) -> float:
        return cosine_lr(step, max_lr=self.learning_rate, min_lr=self.min_lr,
                         warmup_steps=self.warmup_iters, total_steps=self.lr_decay_iters)


def decayed_parameter_names(model, embeddings: bool = True) -> set[str]:
    """Names (as model.named_parameters() gives them) of the parameters that AdamW decays: those with
    ndim >= 2, nanoGPT's rule today. embeddings=False also leaves out the Embedding tables and any
    weight tied to one, the rule of minGPT and of nanoGPT when it reported the baby GPT's 1.88."""
    exempt = set()
    if not embeddings:
        exempt = {id(p) for m in model.modules() if isinstance(m, Embedding) for p in m.parameters()}
    return {name for name, p in model.named_parameters() if p.ndim >= 2 and id(p) not in exempt}


def configure_optimizer(model, lr: float, weight_decay: float, betas=(0.9, 0.99), eps: float = 1e-8,
                        decay_embeddings: bool = True) -> AdamW:
    """AdamW with weight decay on the parameters decayed_parameter_names picks and none on the others."""
    decayed = decayed_parameter_names(model, embeddings=decay_embeddings)
    named = list(model.named_parameters())
    decay = [p for name, p in named if name in decayed]
    no_decay = [p for name, p in named if name not in decayed]
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return AdamW(groups, lr=lr, betas=tuple(betas), eps=eps)


def train_step(model, optimizer, micro_batches, lr: float, grad_clip: float = 0.0) -> tuple[float, float]:
    """One optimiser step over `micro_batches` [(x, y), ...]; returns (mean loss, gradient norm).

    The norm is the global gradient norm before clipping (clipping when grad_clip > 0)."""
    micro_batches = list(micro_batches)
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad()
    total = 0.0
    for x, y in micro_batches:
        _, loss = model(x, y)
        (loss * (1.0 / len(micro_batches))).backward()
        total += loss.item()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    norm = clip_grad_norm(params, grad_clip if grad_clip > 0 else float("inf"))
    optimizer.step()
    return total / len(micro_batches), norm


def evaluate(model, batches: Iterable) -> float:
    """Mean loss per target over `batches` (each batch weighted by its number of targets >= 0)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with no_grad():
        for x, y in batches:
            n = int((np.asarray(y) >= 0).sum())
            _, loss = model(x, y)
            total += loss.item() * n
            count += n
    model.train(was_training)
    if count == 0:
        raise ValueError("evaluate() got no batches with targets")
    return total / count


def train(model, optimizer, get_batch: Callable, config: TrainConfig, *,
          eval_batches: dict[str, list], rng: np.random.Generator | None = None,
          checkpoint: str | Path | None = None, resume: bool = False, log=print) -> dict:
    """Train for config.max_iters optimiser steps; returns the history of the run.

    get_batch(rng) -> (x, y) draws one training micro-batch from `rng` (default: the library's).
    eval_batches = {"train": [...], "valid": [...]}: fixed batches evaluated every eval_interval
    steps and at the end, each evaluation printing one line. With `checkpoint`, the model, optimiser,
    history and random state are saved there after each evaluation; `resume=True` continues from it.

    history = {"step": [...], "<split>": [...] per evaluation, "loss": [...] per step, "ms_per_step"}
    """
    rng = get_rng(rng)
    history = {"step": [], **{split: [] for split in eval_batches}, "loss": [], "ms_per_step": []}
    # What a resumed run must share with the saved one (max_iters may grow: a run can be extended).
    model_config = getattr(model, "config", None)
    run_config = {"model": dataclasses.asdict(model_config) if dataclasses.is_dataclass(model_config) else None,
                  "train": {k: v for k, v in dataclasses.asdict(config).items() if k != "max_iters"}}
    start, resumed = 0, resume and checkpoint is not None and Path(checkpoint).exists()
    if resumed:
        meta = load_checkpoint(checkpoint, model, optimizer, config=run_config)
        start, history = meta["step"], meta["extra"]["history"]
        rng.bit_generator.state = meta["extra"]["rng"]
        get_rng().bit_generator.state = meta["extra"]["library_rng"]  # dropout masks

    step, elapsed, steps_timed = start, 0.0, 0
    while True:
        logged = resumed and step == start  # the checkpoint was saved right after this step's line
        if (step % config.eval_interval == 0 or step == config.max_iters) and not logged:
            losses = {split: evaluate(model, batches) for split, batches in eval_batches.items()}
            ms = 1000 * elapsed / max(steps_timed, 1)
            history["step"].append(step)
            for split, value in losses.items():
                history[split].append(value)
            history["ms_per_step"].append(ms)
            log(f"step {step:5d} | " + " | ".join(f"{s} loss {v:.4f}" for s, v in losses.items())
                + f" | lr {config.lr(max(step - 1, 0)):.2e} | {ms:.1f} ms/step")
            elapsed, steps_timed = 0.0, 0
            if checkpoint is not None:
                extra = {"history": history, "rng": rng.bit_generator.state,
                         "library_rng": get_rng().bit_generator.state}
                save_checkpoint(checkpoint, model, optimizer, config=run_config, step=step, extra=extra)
        if step == config.max_iters:
            return history
        t0 = time.perf_counter()
        batches = [get_batch(rng) for _ in range(config.grad_accum)]
        loss, _ = train_step(model, optimizer, batches, config.lr(step), config.grad_clip)
        elapsed += time.perf_counter() - t0
        steps_timed += 1
        history["loss"].append(loss)
        step += 1
