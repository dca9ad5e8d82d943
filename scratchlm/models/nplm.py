"""Bengio et al.'s neural probabilistic language model (NPLM, JMLR 2003). Chapter 4.

An n-gram model that shares what it learns between words. Each word has a learned feature vector
(a row of C), and the next word is predicted from the vectors of the previous n-1 words:

    x = [C[w_{t-n+1}], ..., C[w_{t-1}]]      (n-1)·m   the context's vectors, concatenated
    a = tanh(d + H x)                          h        the hidden layer
    y = b + W x + U a                          V        one unnormalised log-probability per word
                                                        (W x: the optional direct connections)
    P(w_t = i | w_{t-n+1}, ..., w_{t-1}) = exp(y_i) / sum_j exp(y_j)

Training minimises the mean negative log-likelihood -ln P(w_t | context) over the training tokens
(the fused softmax cross-entropy over the full vocabulary). Because similar words end up with
similar vectors, a context never seen in training still gets a sharp prediction when its words
resemble seen ones -- the generalisation n-gram counts cannot make. The price: the context is a
fixed n-1 words, and the output layer costs O(V h) per token, about 6 V h flops with the backward.

Data (`context_windows`): sentences follow Chapter 2's conventions, so perplexities compare with the
n-gram table. Every sentence is `w1 .. wm </s>`; each of those m+1 tokens is predicted once from its
n-1 predecessors in the same sentence, left-padded with `<s>`. `<s>` itself is never a target (its
output unit stays, and training drives its probability towards 0).

Training (`train_epochs`): AdamW from `scratchlm.train.configure_optimizer`, one `train_step` per
batch of a shuffled epoch, warmup + cosine learning rate, evaluation on valid after every epoch,
early stopping when valid has not improved for `patience` epochs, and the best epoch's weights
restored at the end. With a checkpoint path, each epoch is saved so a run resumes exactly. Three
departures from the 2003 recipe: dropout on the hidden layer a (regularisation), AdamW (decoupled
weight decay) in place of SGD with L2 decay, and a warmup + cosine schedule in place of the
paper's eps_0 / (1 + r t), the last two for a short training budget.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import scratchlm.autograd.functional as F
from scratchlm.autograd import no_grad
from scratchlm.checkpoint import load_checkpoint, save_checkpoint
from scratchlm.nn import Dropout, Embedding, Linear, Module
from scratchlm.optim import cosine_lr
from scratchlm.rng import get_rng
from scratchlm.train import evaluate, train_step


@dataclass
class NPLMConfig:
    vocab_size: int              # V: words the output layer scores (PTB: 10,001 ids with <s>)
    context: int = 4             # n - 1: words of context (a 5-gram model)
    n_embd: int = 128            # m: size of each word's feature vector
    n_hidden: int = 256          # h: tanh units
    direct: bool = False         # W: direct connections from x to the output layer
    dropout: float = 0.0         # on the hidden layer a, in training only
    weight_decay: float = 0.0    # AdamW decay of the matrices C, H, U (and W)


class NPLM(Module):
    def __init__(self, config: NPLMConfig, dtype=np.float32) -> None:
        super().__init__()
        self.config = config
        c = config
        self.C = Embedding(c.vocab_size, c.n_embd, dtype=dtype)            # word feature vectors
        self.H = Linear(c.context * c.n_embd, c.n_hidden, dtype=dtype)     # H and d
        self.U = Linear(c.n_hidden, c.vocab_size, dtype=dtype)             # U and b
        self.W = Linear(c.context * c.n_embd, c.vocab_size, bias=False, dtype=dtype) if c.direct else None
        self.drop = Dropout(c.dropout)

    def forward(self, context, targets=None):
        """context (B, n-1) ids -> logits (B, V), and the mean cross-entropy when targets (B,) are given
        (targets < 0 are ignored, the contract of scratchlm.train)."""
        # BEGIN SOLUTION 4.2: The NPLM's forward pass (chapters/ch04_neural_lm.py §4.3)
        B = context.shape[0]
        x = self.C(context).reshape(B, -1)              # (B, n-1, m) -> (B, (n-1) m)
        a = self.drop(self.H(x).tanh())                 # (B, h)
        logits = self.U(a)                              # (B, V)
        if self.W is not None:
            logits = logits + self.W(x)
        # END SOLUTION
        loss = None if targets is None else F.cross_entropy(logits, targets, ignore_index=-1)
        return logits, loss

    def num_parameters(self) -> int:
        return sum(p.data.size for p in self.parameters())


# ---- data --------------------------------------------------------------------------------------

def context_windows(ids, context: int, bos_id: int, eos_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Every prediction in a stream of sentences, as (contexts, targets).

    ids: 1-D stream `w1 .. wm </s> w1 .. </s> ...` (e.g. WordVocab.encode_lines(lines)), each
    sentence closed by eos_id. Returns X (N, context) int64, where X[t] holds the `context` ids
    before ids[t] in its own sentence, left-padded with bos_id, and Y = ids (N,). For makemore's
    names, bos_id = eos_id = the id of '.': one symbol both starts and ends a name.
    """
    # BEGIN SOLUTION 4.1: Context windows padded with <s> (chapters/ch04_neural_lm.py §4.1)
    ids = np.asarray(ids, dtype=np.int64).ravel()
    n = len(ids)
    pos = np.arange(n)
    first = np.concatenate([[True], ids[:-1] == eos_id])         # does a sentence start here?
    start = np.maximum.accumulate(np.where(first, pos, 0))       # (N,) where each token's sentence starts
    X = np.full((n, context), bos_id, dtype=np.int64)
    for k in range(1, context + 1):                              # X[:, -k] = the k-th previous id
        src = pos - k
        inside = src >= start
        X[inside, context - k] = ids[src[inside]]
    return X, ids.copy()
    # END SOLUTION


def batches(X: np.ndarray, Y: np.ndarray, batch_size: int, order: np.ndarray | None = None):
    """(X[rows], Y[rows]) for consecutive groups of `batch_size` rows of `order` (default: in order)."""
    order = np.arange(len(X)) if order is None else order
    for i in range(0, len(order), batch_size):
        rows = order[i:i + batch_size]
        yield X[rows], Y[rows]


def token_logprobs(model: NPLM, X: np.ndarray, Y: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """ln P(Y[t] | X[t]) for every row, float64 (N,), in eval mode. The mixture with an n-gram model
    and the per-bucket comparisons of Chapter 4 need these token by token, not as a mean."""
    was_training = model.training
    model.eval()
    out = np.empty(len(X), dtype=np.float64)
    with no_grad():
        for i in range(0, len(X), batch_size):
            logits, _ = model(X[i:i + batch_size])
            out[i:i + batch_size] = -F.cross_entropy(logits, Y[i:i + batch_size], reduction="none").data
    model.train(was_training)
    return out


# ---- training ----------------------------------------------------------------------------------

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


def train_epochs(model: NPLM, optimizer, train: tuple[np.ndarray, np.ndarray],
                 valid: tuple[np.ndarray, np.ndarray], settings: EpochSettings, *,
                 rng: np.random.Generator | None = None, checkpoint: str | Path | None = None,
                 resume: bool = False, log=print) -> dict:
    """Train epoch by epoch with early stopping on valid; returns the history of the run.

    history = {"epoch": [1, 2, ...], "train": [mean training loss (dropout on) per epoch],
               "valid": [valid loss per epoch], "seconds": [...], "tokens_per_s": [...],
               "best_epoch": int, "best_valid": float, "stopped_early": bool}   (losses in nats)

    Each epoch visits the training windows in a fresh permutation drawn from `rng`. The model ends
    with the weights of its best valid epoch. With `checkpoint`, the run's state is saved there
    after every epoch (and the best weights beside it, as <name>.best.npz); `resume=True` continues
    from it with the same numbers as an uninterrupted run.
    """
    rng = get_rng(rng)
    X, Y = train
    steps_per_epoch = math.ceil(len(X) / settings.batch_size)
    total_steps = settings.epochs * steps_per_epoch
    run_config = {"model": dataclasses.asdict(model.config), "train": dataclasses.asdict(settings)}
    history = {"epoch": [], "train": [], "valid": [], "seconds": [], "tokens_per_s": [],
               "best_epoch": 0, "best_valid": math.inf, "stopped_early": False}
    best_state = None                                  # the best weights, in memory when not checkpointing
    best_path = None if checkpoint is None else Path(checkpoint).with_suffix(".best.npz")
    if resume and checkpoint is not None and Path(checkpoint).exists():
        meta = load_checkpoint(checkpoint, model, optimizer, config=run_config)
        history = meta["extra"]["history"]
        rng.bit_generator.state = meta["extra"]["rng"]
        get_rng().bit_generator.state = meta["extra"]["library_rng"]   # dropout masks

    while len(history["epoch"]) < settings.epochs and not history["stopped_early"]:
        epoch = len(history["epoch"]) + 1
        step = (epoch - 1) * steps_per_epoch
        t0 = time.perf_counter()
        total = 0.0
        for x, y in batches(X, Y, settings.batch_size, rng.permutation(len(X))):
            lr = cosine_lr(step, max_lr=settings.learning_rate, min_lr=settings.min_lr,
                           warmup_steps=min(settings.warmup_steps, total_steps - 1), total_steps=total_steps)
            loss, _ = train_step(model, optimizer, [(x, y)], lr, settings.grad_clip)
            total += loss * len(y)
            step += 1
        seconds = time.perf_counter() - t0
        valid_loss = evaluate(model, batches(*valid, settings.eval_batch_size))
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
                save_checkpoint(best_path, model, config=run_config, step=step)
        elif epoch - history["best_epoch"] >= settings.patience:
            history["stopped_early"] = True
        log(f"epoch {epoch:2d} | train loss {history['train'][-1]:.4f} (ppl {math.exp(history['train'][-1]):7.2f})"
            f" | valid loss {valid_loss:.4f} (ppl {math.exp(valid_loss):7.2f}) | lr {lr:.2e}"
            f" | {len(X) / seconds:,.0f} tokens/s | {seconds:.0f} s")
        if checkpoint is not None:
            extra = {"history": history, "rng": rng.bit_generator.state,
                     "library_rng": get_rng().bit_generator.state}
            save_checkpoint(checkpoint, model, optimizer, config=run_config, step=step, extra=extra)
    if best_state is not None:
        model.load_state_dict(best_state)
    elif best_path is not None and history["best_epoch"]:
        load_checkpoint(best_path, model, config=run_config)
    return history
