"""The training loops shared by the neural language models (Chapter 4's NPLM, Chapter 6's GPT, and
the models after them).

The contract with a model: `logits, loss = model(x, targets)`, where loss is a scalar Tensor, the
mean cross-entropy in nats over the targets (targets < 0 are ignored). Batches are (x, targets)
pairs of NumPy int arrays. A model or a method that needs something else (a recurrent state carried
from one window to the next, another loss) passes its own

    loss_fn(model, batch) -> (loss, n_targets)    loss: scalar Tensor, the mean over its n_targets

to train_step, evaluate, train and train_epochs; the default, `model_loss`, is the contract above
with n_targets = the number of targets >= 0. loss_fn is called once per batch, in order, so it may
be a closure that keeps state between calls: truncated backpropagation through time (Chapter 8)
carries the hidden state of one window into the next that way, through these same loops.

The building blocks:

    configure_optimizer(model, lr, weight_decay, betas)   AdamW over the trainable parameters,
                                                          decay only on matrices (ndim >= 2)
    decayed_parameter_names(model)                        which parameters those are, by name
    train_step(model, optimizer, micro_batches, lr, grad_clip, *, loss_fn, on_gradients, step)
        -> (mean loss, gradient norm): one optimiser step
        1. learning rate: optimizer.set_lr(lr), the schedule's rate for the optimiser's own lr; each
           parameter group runs at its own base rate times the schedule's factor (scratchlm.optim)
        2. forward and backward of every micro-batch: the gradient is that of the mean loss over
           all N targets of the step, sum_i (n_i / N) grad L_i for micro-batch i with mean loss L_i
           over n_i targets (gradient accumulation; a single micro-batch is used as it is)
        3. on_gradients(params), when given: the gradients are complete and not yet clipped, the
           place for loss scaling, an all-reduce across workers, or skipping a step
        4. a non-finite loss or gradient norm raises TrainingDiverged before anything is updated
        5. global-norm clipping (grad_clip > 0), then the optimiser's step
    evaluate(model, batches) -> mean loss per target      (eval mode, no graph)
    token_logprobs(model, X, Y) -> ln P of every target   (eval mode, no graph)
    train(model, optimizer, get_batch, config, ...)       the step-based loop of nanoGPT: warmup +
        cosine learning rate, an evaluation every `eval_interval` steps with one log line each
    train_epochs(model, optimizer, train, valid, settings, ...)   epoch by epoch over fixed rows
        (Chapter 4), evaluation on valid after each epoch, early stopping, the best epoch kept

Both loops save a checkpoint after each evaluation when given a path (never before the first step:
a fresh run does not replace what the path holds with untrained weights), and `resume=True`
continues from it with bit-identical numbers; one piece of code (`_RunCheckpoint`) does both for
both loops. A checkpoint holds the model (its config compared on load), the optimiser, the run's
settings (compared on resume), the history and the random state of the data order and of the
library (dropout masks).

Frozen parameters (Module.requires_grad_(False)) get no gradient, and optimisers, this module's
included, hold only trainable ones: the optimiser's state and checkpoint hold only those, the
model's state_dict all of them.

Divergence. A loss or gradient norm that is NaN or infinite (a learning rate too high, no clipping,
bad data) stops training with TrainingDiverged, naming the step, the loss, the norm, the learning
rate and what to try, before the optimiser steps on it; a non-finite evaluation loss stops it
before the checkpoint. save_checkpoint itself refuses non-finite arrays, so no path can replace a
good checkpoint with a diverged one.

Why decay only the matrices: weight decay pulls weights towards 0, a prior that suits the matrices
that mix features; biases, LayerNorm gains and offsets set scales and shifts, and pulling them to 0
(a gain of 0 silences a channel) only hurts. Embeddings are matrices and are decayed, as in nanoGPT;
minGPT, and nanoGPT's early versions, exempted them (`decay_embeddings=False`). On the baby GPT the
difference is about a thousandth of a nat (`benchmarks/gpt_seeds.py --no-decay-embeddings`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import scratchlm.autograd.functional as F
from scratchlm.autograd import no_grad
from scratchlm.checkpoint import load_checkpoint, save_checkpoint
from scratchlm.data import minibatches
from scratchlm.nn import Embedding
from scratchlm.optim import AdamW, clip_grad_norm, cosine_lr
from scratchlm.rng import get_rng


class TrainingDiverged(FloatingPointError):
    """A loss or gradient norm that is NaN or infinite: training stopped before updating or saving."""

    def __init__(self, what: str, step: int | None, lr: float | None) -> None:
        at = "" if step is None else f" at step {step}"
        rate = "" if lr is None else f" with learning rate {lr:.3g}"
        super().__init__(f"training diverged{at}: {what}{rate}. The weights were not updated with it and "
                         f"no checkpoint was written. Try a lower learning rate (10x lower) or a longer "
                         f"warmup, clip gradients (grad_clip=1.0), and check the data (ids inside the "
                         f"vocabulary, not every target ignored)")
        self.step, self.lr = step, lr


def _check_settings(settings, positive_ints=(), non_negative=()) -> None:
    """A settings dataclass's fields: integers >= 1 and numbers >= 0, each error naming the field."""
    name = type(settings).__name__
    for field in positive_ints:
        value = getattr(settings, field)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: {field} must be an integer >= 1, got {value!r}")
    for field in non_negative:
        value = getattr(settings, field)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not value >= 0:
            raise ValueError(f"{name}: {field} must be a number >= 0, got {value!r}")


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

    def __post_init__(self) -> None:
        _check_settings(self, positive_ints=("max_iters", "lr_decay_iters", "grad_accum", "eval_interval",
                                             "eval_iters"),
                        non_negative=("learning_rate", "min_lr", "warmup_iters", "weight_decay", "grad_clip"))
        if not self.warmup_iters < self.lr_decay_iters:
            raise ValueError(f"TrainConfig: warmup_iters must be < lr_decay_iters, got warmup_iters="
                             f"{self.warmup_iters}, lr_decay_iters={self.lr_decay_iters}")

    def lr(self, step: int) -> float:
        return cosine_lr(step, max_lr=self.learning_rate, min_lr=self.min_lr,
                         warmup_steps=self.warmup_iters, total_steps=self.lr_decay_iters)


@dataclass
class EpochSettings:
    epochs: int = 10
    batch_size: int = 512
    learning_rate: float = 2e-3    # peak, after warmup
    min_lr: float = 0.0            # the cosine ends here after the last epoch
    warmup_steps: int = 200
    grad_clip: float = 0.0         # 0: no clipping
    patience: int = 2              # stop after this many epochs without a better valid loss
    eval_batch_size: int = 4096

    def __post_init__(self) -> None:
        _check_settings(self, positive_ints=("epochs", "batch_size", "patience", "eval_batch_size"),
                        non_negative=("learning_rate", "min_lr", "warmup_steps", "grad_clip"))


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
    """AdamW over the model's trainable parameters, with weight decay on those decayed_parameter_names
    picks and none on the others (frozen parameters are left out of both groups)."""
    decayed = decayed_parameter_names(model, embeddings=decay_embeddings)
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError(f"configure_optimizer: every parameter of the {type(model).__name__} is frozen "
                         f"(requires_grad=False); unfreeze some with module.requires_grad_(True)")
    decay = [p for name, p in named if name in decayed]
    no_decay = [p for name, p in named if name not in decayed]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return AdamW([g for g in groups if g["params"]], lr=lr, betas=tuple(betas), eps=eps)


# ---- one step ----------------------------------------------------------------------------------

LossFn = Callable[..., tuple]   # loss_fn(model, batch) -> (scalar loss Tensor, number of targets)


def model_loss(model, batch) -> tuple:
    """The default loss_fn: `model(x, y)`'s mean cross-entropy over the targets y >= 0, and their number."""
    x, y = batch
    _, loss = model(x, y)
    return loss, int((np.asarray(y) >= 0).sum())


def train_step(model, optimizer, micro_batches, lr: float | None = None, grad_clip: float = 0.0, *,
               loss_fn: LossFn | None = None, on_gradients: Callable | None = None,
               step: int | None = None) -> tuple[float, float]:
    """One optimiser step over `micro_batches` [batch, ...]; returns (mean loss per target, gradient norm).

    lr: the schedule's learning rate now (None: keep the groups' rates); see optimizer.set_lr.
    The norm is the global gradient norm before clipping (clipping when grad_clip > 0).
    loss_fn(model, batch) -> (mean loss Tensor, n_targets), default model_loss.
    on_gradients(params) is called with the optimiser's parameters once their gradients are complete,
    before the divergence check and clipping. `step` (counted from 1) only names the step in errors.
    """
    loss_fn = loss_fn or model_loss
    micro_batches = list(micro_batches)
    if not micro_batches:
        raise ValueError("train_step: got no micro-batches")
    if lr is not None:
        optimizer.set_lr(lr)
    optimizer.zero_grad()
    single = len(micro_batches) == 1
    losses, counts = [], []
    for batch in micro_batches:
        loss, n = loss_fn(model, batch)
        # One micro-batch: its mean is the step's. Several: the backward of each one's summed loss
        # n_i L_i now, and one division by N below once N is known.
        (loss if single else loss * float(n)).backward()
        losses.append(loss.item())
        counts.append(int(n))
    total = sum(counts)
    if total == 0:
        raise ValueError(f"train_step: the step's {len(micro_batches)} micro-batch(es) hold no targets "
                         f"(loss_fn counted 0: is every target ignored, -1?)")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if single:
        mean = losses[0]
    else:
        mean = float(np.dot(losses, counts)) / total
        for p in params:
            if p.grad is not None:
                p.grad *= 1.0 / total
    if on_gradients is not None:
        on_gradients(params)
    norm = clip_grad_norm(params, grad_clip if grad_clip > 0 else float("inf"))
    if not (math.isfinite(mean) and math.isfinite(norm)):
        rates = sorted({group["lr"] for group in optimizer.param_groups})
        raise TrainingDiverged(f"loss {mean:.4g}, gradient norm {norm:.4g}", step,
                               rates[-1] if rates else None)
    optimizer.step()
    return mean, norm


# ---- evaluation --------------------------------------------------------------------------------

@contextmanager
def _evaluating(model):
    """Eval mode (no dropout) and no graph inside the block; the model's mode restored after it."""
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            yield
    finally:
        model.train(was_training)


def evaluate(model, batches: Iterable, loss_fn: LossFn | None = None) -> float:
    """Mean loss per target over `batches` (each batch weighted by its number of targets)."""
    loss_fn = loss_fn or model_loss
    total, count = 0.0, 0
    with _evaluating(model):
        for batch in batches:
            loss, n = loss_fn(model, batch)
            total += loss.item() * n
            count += n
    if count == 0:
        raise ValueError("evaluate() got no batches with targets")
    return total / count


def token_logprobs(model, X: np.ndarray, Y: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """ln P(Y[t] | X[t]) of every target, float64 with Y's shape, in eval mode. The mixture with an
    n-gram model and the per-token comparisons of Chapter 4 need these token by token, not as
    evaluate's mean. Any model of the contract works: logits (..., V) for targets (...) in [0, V)."""
    Y = np.asarray(Y)
    out = np.empty(Y.shape, dtype=np.float64)
    with _evaluating(model):
        for i in range(0, len(X), batch_size):
            logits, _ = model(X[i:i + batch_size])
            y = Y[i:i + batch_size]
            nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none")
            out[i:i + batch_size] = -nll.data.reshape(y.shape)
    return out


def _check_evaluation(losses: dict[str, float], step: int, lr: float) -> None:
    for split, value in losses.items():
        if not math.isfinite(value):
            raise TrainingDiverged(f"{split} loss {value:.4g} at its evaluation", step, lr)


# ---- runs: checkpoints and resuming, shared by both loops ---------------------------------------

class _RunCheckpoint:
    """Save a run after an evaluation, or resume it, the same way for both loops. `settings`: what a
    resumed run must share with the saved one (compared on load, as is the model's config)."""

    def __init__(self, path, model, optimizer, settings: dict, rng: np.random.Generator) -> None:
        self.path = None if path is None else Path(path)
        self.model, self.optimizer, self.settings, self.rng = model, optimizer, settings, rng

    def resume(self) -> dict | None:
        """Load the saved run into the model, optimiser and random generators; its metadata, or None
        when there is nothing to resume from."""
        if self.path is None or not self.path.exists():
            return None
        meta = load_checkpoint(self.path, self.model, self.optimizer, config=self.settings)
        self.rng.bit_generator.state = meta["extra"]["rng"]
        get_rng().bit_generator.state = meta["extra"]["library_rng"]  # dropout masks
        return meta

    def save(self, step: int, history: dict) -> None:
        if self.path is not None:
            extra = {"history": history, "rng": self.rng.bit_generator.state,
                     "library_rng": get_rng().bit_generator.state}
            save_checkpoint(self.path, self.model, self.optimizer, config=self.settings, step=step, extra=extra)


def train(model, optimizer, get_batch: Callable, config: TrainConfig, *,
          eval_batches: dict[str, list], rng: np.random.Generator | None = None,
          checkpoint: str | Path | None = None, resume: bool = False, log=print,
          loss_fn: LossFn | None = None, on_gradients: Callable | None = None) -> dict:
    """Train for config.max_iters optimiser steps; returns the history of the run.

    get_batch(rng) -> batch draws one training micro-batch from `rng` (default: the library's).
    eval_batches = {"train": [...], "valid": [...]}: fixed batches evaluated every eval_interval
    steps and at the end, each evaluation printing one line. With `checkpoint`, the model, optimiser,
    history and random state are saved there after each evaluation past step 0; `resume=True`
    continues from it. loss_fn and on_gradients go to train_step (and loss_fn to evaluate).

    history = {"step": [...], "<split>": [...] per evaluation, "loss": [...] per step, "ms_per_step"}
    """
    rng = get_rng(rng)
    history = {"step": [], **{split: [] for split in eval_batches}, "loss": [], "ms_per_step": []}
    # What a resumed run must share with the saved one (max_iters may grow: a run can be extended).
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k != "max_iters"}
    run = _RunCheckpoint(checkpoint, model, optimizer, settings, rng)
    start, resumed = 0, False
    if resume and (meta := run.resume()) is not None:
        start, history, resumed = meta["step"], meta["extra"]["history"], True

    step, elapsed, steps_timed = start, 0.0, 0
    while True:
        logged = resumed and step == start  # the checkpoint was saved right after this step's line
        if (step % config.eval_interval == 0 or step == config.max_iters) and not logged:
            losses = {split: evaluate(model, batches, loss_fn) for split, batches in eval_batches.items()}
            lr = config.lr(max(step - 1, 0))
            _check_evaluation(losses, step, lr)
            ms = 1000 * elapsed / max(steps_timed, 1)
            history["step"].append(step)
            for split, value in losses.items():
                history[split].append(value)
            history["ms_per_step"].append(ms)
            log(f"step {step:5d} | " + " | ".join(f"{s} loss {v:.4f}" for s, v in losses.items())
                + f" | lr {lr:.2e} | {ms:.1f} ms/step")
            elapsed, steps_timed = 0.0, 0
            if step > 0:
                run.save(step, history)
        if step == config.max_iters:
            return history
        t0 = time.perf_counter()
        batches = [get_batch(rng) for _ in range(config.grad_accum)]
        loss, _ = train_step(model, optimizer, batches, config.lr(step), config.grad_clip, loss_fn=loss_fn,
                             on_gradients=on_gradients, step=step + 1)
        elapsed += time.perf_counter() - t0
        steps_timed += 1
        history["loss"].append(loss)
        step += 1


def train_epochs(model, optimizer, train: tuple[np.ndarray, np.ndarray], valid: tuple[np.ndarray, np.ndarray],
                 settings: EpochSettings, *, rng: np.random.Generator | None = None,
                 checkpoint: str | Path | None = None, resume: bool = False, log=print,
                 loss_fn: LossFn | None = None, on_gradients: Callable | None = None) -> dict:
    """Train epoch by epoch over the rows (X, Y) of `train`, with early stopping on `valid`; returns
    the history of the run.

    history = {"epoch": [1, 2, ...], "train": [mean training loss (dropout on) per epoch],
               "valid": [valid loss per epoch], "seconds": [...], "tokens_per_s": [...],
               "best_epoch": int, "best_valid": float, "stopped_early": bool}   (losses in nats)

    Each epoch visits the training rows in a fresh permutation drawn from `rng`, one train_step per
    batch (the learning rate: warmup, then a cosine to min_lr at the end of the last epoch). The
    model ends with the weights of its best valid epoch. With `checkpoint`, the run's state is saved
    there after every epoch (and the best weights beside it, as <name>.best.npz); `resume=True`
    continues from it with the same numbers as an uninterrupted run.
    """
    rng = get_rng(rng)
    X, Y = train
    if len(X) == 0:
        raise ValueError("train_epochs: the training set has no rows")
    steps_per_epoch = math.ceil(len(X) / settings.batch_size)
    total_steps = settings.epochs * steps_per_epoch
    history = {"epoch": [], "train": [], "valid": [], "seconds": [], "tokens_per_s": [],
               "best_epoch": 0, "best_valid": math.inf, "stopped_early": False}
    run = _RunCheckpoint(checkpoint, model, optimizer, dataclasses.asdict(settings), rng)
    best_state = None                                  # the best weights, in memory when not checkpointing
    best_path = None if checkpoint is None else Path(checkpoint).with_suffix(".best.npz")
    if resume and (meta := run.resume()) is not None:
        history = meta["extra"]["history"]

    while len(history["epoch"]) < settings.epochs and not history["stopped_early"]:
        epoch = len(history["epoch"]) + 1
        step = (epoch - 1) * steps_per_epoch
        t0 = time.perf_counter()
        total = 0.0
        for x, y in minibatches(X, Y, settings.batch_size, rng.permutation(len(X))):
            lr = cosine_lr(step, max_lr=settings.learning_rate, min_lr=settings.min_lr,
                           warmup_steps=min(settings.warmup_steps, total_steps - 1), total_steps=total_steps)
            loss, _ = train_step(model, optimizer, [(x, y)], lr, settings.grad_clip, loss_fn=loss_fn,
                                 on_gradients=on_gradients, step=step + 1)
            total += loss * len(y)
            step += 1
        seconds = time.perf_counter() - t0
        valid_loss = evaluate(model, minibatches(*valid, settings.eval_batch_size), loss_fn)
        _check_evaluation({"valid": valid_loss}, step, lr)
        history["epoch"].append(epoch)
        history["train"].append(total / len(X))
        history["valid"].append(valid_loss)
        history["seconds"].append(seconds)
        history["tokens_per_s"].append(len(X) / seconds)
        if valid_loss < history["best_valid"]:
            history["best_epoch"], history["best_valid"] = epoch, valid_loss
            if best_path is None:
                best_state = model.state_dict()
            else:
                save_checkpoint(best_path, model, config=run.settings, step=step)
        elif epoch - history["best_epoch"] >= settings.patience:
            history["stopped_early"] = True
        log(f"epoch {epoch:2d} | train loss {history['train'][-1]:.4f} (ppl {math.exp(history['train'][-1]):7.2f})"
            f" | valid loss {valid_loss:.4f} (ppl {math.exp(valid_loss):7.2f}) | lr {lr:.2e}"
            f" | {len(X) / seconds:,.0f} tokens/s | {seconds:.0f} s")
        run.save(step, history)
    if best_state is not None:
        model.load_state_dict(best_state)
    elif best_path is not None and history["best_epoch"]:
        load_checkpoint(best_path, model, config=run.settings)
    return history
