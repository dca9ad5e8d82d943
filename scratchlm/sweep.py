"""A sweep of training runs, each trained once and cached, on one process or spread over MPI ranks
(Chapter 11: the runs behind the scaling laws).

A scaling law is fitted to the final losses of many runs, each a model size N trained on D tokens.
This module trains such a list of runs so that the numbers mean what the fits assume:

The corpus. Characters of Penn Treebank (Mikolov's train, valid and test files, 5.85 M characters
of lower-case newswire) followed by all of tiny Shakespeare (1.12 M, mixed case and verse): 6.97 M
characters in 80 symbols, every one ASCII, so the largest runs can train on 6.6 M tokens without
repeating one. The Chinese classics would bring thousands of symbols, whose embedding rows would
outweigh the rest of the small models. The held-out slice is every 20th piece of 10,000 characters
(34 of 697 pieces, 340 K characters): taken from everywhere, it holds both sources in their
proportions, where a tail slice would be all Shakespeare. The pieces of each split are joined end
to end (a seam every 10,000 characters, which a few windows cross).

Single epoch, no token seen twice. Kaplan et al. (2020) and Hoffmann et al. (2022) fit losses of
runs that never repeat data, so that L(N, D) measures learning, not memorisation. A run of D
tokens takes S = D // (B T) optimiser steps of B windows of T tokens. The training stream is cut
into non-overlapping windows, window k holding ids[kT : kT + T + 1] (inputs ids[kT : kT + T],
targets one later), so every id is the target of at most one window; a run visits S B of them in an
order drawn from its seed (a permutation, not a sample with replacement as data.get_batch draws).
Runs with the same seed and block size visit them in the same order, so a shorter run's data is
the beginning of a longer one's. D is at most the number of training windows times T.

The learning-rate schedule is tied to the run's own length: linear warmup over the first 2% of its
steps, then a cosine down to 10% of the peak at its last step (Hoffmann et al.'s setting). Kaplan
et al. decayed every run over one long horizon, so a short run was stopped with its learning rate
still high and its loss above what its D could give; Hoffmann et al. showed that this is one
reason Kaplan's N_opt grows as C^0.73 and theirs as C^0.5.

Evaluation: the loss on `eval_tokens` of the held-out slice, windows evenly spaced through it, the
same windows for every run of a block size, so that two runs' losses differ by what they learned
and not by which text they were scored on. `evals` evaluations are spread over the run (history);
a few are enough, because in a single epoch each step's training loss is already measured on text
the model has never seen, a learning curve for free (history["loss"]).

    corpus = scaling_corpus()                      # or make_corpus(text, name) for any text
    runs = [Run(n_layer=2, n_embd=64, n_head=4, tokens=1_000_000), ...]
    results = run_sweep(runs, "sweep_cache", corpus, comm=start_mpi())

Each result (run_one):
    key, name, run (the Run's fields), corpus (its fingerprint), config (the GPTConfig)
    N                 every parameter, embeddings included (the tied head counted once; Hoffmann)
    N_non_embedding   N less the token and position embeddings (Kaplan et al.'s N)
    D                 tokens trained on, S B T;   steps S
    C_6ND             6 N D, the training FLOPs of the forward (2 N D) and backward (4 N D) passes
    C                 (run_sweep) the caller's flops(config, D), or C_6ND when none is given
    valid_loss        final held-out loss, nats per character
    history           {"step", "valid" (per evaluation), "loss" (per step, each on unseen text),
                       "ms_per_step"}
    seconds           wall time of the run, evaluations included;  train_seconds: the steps only

The cache. Each run's result is written atomically as `<cache_dir>/<key>.json`, the key a hash of
every field of the Run. run_sweep first reads what the cache holds and trains only the runs that
are missing, so an interrupted sweep resumes where it stopped and a rerun trains nothing. A
cached file is used only when it is JSON of the same run on the same corpus (fingerprint of its
ids); anything else is an error naming the file, never a silent retraining: writes are atomic, so a
bad file was not left by a killed sweep but written by something else, or the folder belongs to
another corpus; delete the file (or choose another folder) to retrain. A change to the training
code does not change any key: delete the folder after one.

MPI. `run_sweep(..., comm=MPI.COMM_WORLD)` under `mpiexec -n K`: rank 0 reads the cache and hands
the missing runs to every rank; each is given to one rank, balanced by estimated cost (the largest
first, each to the rank with the least work so far: Graham's longest-processing-time rule, within
4/3 of the best makespan); every rank trains and caches its runs; rank 0 gathers the results, in run
order, and hands them to every rank. The cache folder must be one that every rank reads and writes
(a shared file system across machines). Start the script with `comm = start_mpi()`
(scratchlm.runtime) above `import numpy`, so that each rank's thread pools get cores // K threads.

Determinism. A run is seeded by its own seed only: its initial weights and its window order come
from it, never from the rank it lands on or the runs before it, so one process and K ranks give
the same numbers run for run. The last bits of float32 matrix products depend on the number of BLAS
threads, so for bit-identical results both must run with the same thread counts (tests pin 1).

A run that fails (an error, a diverged loss) does not stop the others: every run is tried, the
finished ones are cached, and then every rank raises one SweepError naming the failed runs.
KeyboardInterrupt stops at once (what finished is cached).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from scratchlm import data
from scratchlm.fileio import read_text, write_json
from scratchlm.models.gpt import GPT, GPTConfig
from scratchlm.rng import manual_seed
from scratchlm.runtime import THREAD_VARS
from scratchlm.tokenizers.char import CharTokenizer
from scratchlm.train import TrainConfig, _check_settings, configure_optimizer, train

PIECE = 10_000      # characters per piece of the corpus
VALID_EVERY = 20    # every 20th piece is held out


# ---- the corpus ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Corpus:
    """A character-level corpus: its tokenizer and the training and held-out id streams."""
    name: str
    tokenizer: CharTokenizer
    train: np.ndarray     # (n_train,) int64 ids
    valid: np.ndarray     # (n_valid,) int64 ids

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    @cached_property
    def fingerprint(self) -> str:
        """sha256 (16 hex digits) of the characters and both id streams: what a cached result was
        trained and scored on."""
        h = hashlib.sha256("".join(self.tokenizer.chars).encode("utf-8"))
        for ids in (self.train, self.valid):
            h.update(np.ascontiguousarray(ids, dtype=np.int64).tobytes())
        return h.hexdigest()[:16]


def make_corpus(text: str, name: str, piece: int = PIECE, valid_every: int = VALID_EVERY) -> Corpus:
    """The corpus of `text`: its characters as the vocabulary, every `valid_every`-th piece of
    `piece` characters held out (the last piece of each group of valid_every), the rest for training."""
    for what, value in (("piece", piece), ("valid_every", valid_every)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"make_corpus: {what} must be an integer >= 1, got {value!r}")
    if valid_every < 2:
        raise ValueError(f"make_corpus: valid_every={valid_every} would hold out every piece; use >= 2")
    tokenizer = CharTokenizer.fit(text)
    ids = tokenizer.encode(text)
    held_out = np.arange(len(ids)) // piece % valid_every == valid_every - 1    # (n,) in a held-out piece
    if not held_out.any():
        raise ValueError(f"make_corpus: {len(text):,} characters make fewer than {valid_every} pieces of "
                         f"{piece:,}, so nothing is held out; use a smaller piece")
    return Corpus(name, tokenizer, ids[~held_out], ids[held_out])


def scaling_corpus() -> Corpus:
    """Chapter 11's corpus (module docstring): PTB's train, valid and test text, then tiny Shakespeare."""
    ptb = "".join(data.load_text("ptb", split) for split in ("train", "valid", "test"))
    shakespeare = data.load_text("tinyshakespeare", "train") + data.load_text("tinyshakespeare", "valid")
    return make_corpus(ptb + shakespeare, "ptb+tinyshakespeare")


# ---- one run -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Run:
    """One training run: the model (a GPT of Chapter 6, no dropout), its token budget D = `tokens`
    and its recipe. Every field enters the key, so a changed field is a different run."""
    n_layer: int
    n_embd: int
    n_head: int
    tokens: int                    # D requested; the run trains on tokens // (B T) whole steps
    block_size: int = 64           # T
    batch_size: int = 32           # B
    learning_rate: float = 2e-3    # peak, after warmup
    final_lr_ratio: float = 0.1    # the cosine ends at this fraction of the peak, at the last step
    warmup_fraction: float = 0.02  # of the run's steps
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    evals: int = 4                 # evaluations over the run (and one at step 0)
    eval_tokens: int = 65_536      # held-out tokens per evaluation
    seed: int = 0

    def __post_init__(self) -> None:
        _check_settings(self, positive_ints=("n_layer", "n_embd", "n_head", "tokens", "block_size", "batch_size",
                                             "evals", "eval_tokens"),
                        non_negative=("learning_rate", "weight_decay", "grad_clip", "seed"))
        if isinstance(self.seed, float):
            raise ValueError(f"Run: seed must be an integer >= 0, got {self.seed!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"Run: n_embd={self.n_embd} is not a multiple of n_head={self.n_head}")
        if not 0.0 <= self.final_lr_ratio <= 1.0 or not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f"Run: final_lr_ratio must be in [0, 1] and warmup_fraction in [0, 1), got "
                             f"{self.final_lr_ratio!r} and {self.warmup_fraction!r}")
        if self.steps < 1:
            raise ValueError(f"Run: tokens={self.tokens:,} is less than one step of batch_size x block_size = "
                             f"{self.batch_size * self.block_size:,} tokens")
        for field in dataclasses.fields(self):  # plain ints and floats: one key, one JSON, whatever was passed
            value = getattr(self, field.name)
            object.__setattr__(self, field.name, float(value) if field.type == "float" else int(value))

    @property
    def steps(self) -> int:
        """Optimiser steps S = tokens // (B T)."""
        return self.tokens // (self.batch_size * self.block_size)

    @property
    def name(self) -> str:
        """For people: layers, width, tokens, peak learning rate, seed (L2-d64-D1000000-lr0.002-s0)."""
        return f"L{self.n_layer}-d{self.n_embd}-D{self.tokens}-lr{self.learning_rate:g}-s{self.seed}"

    @property
    def key(self) -> str:
        """The cache's name for the run: its name and a hash of every field (sorted JSON)."""
        fields = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return f"{self.name}-{hashlib.sha256(fields.encode('utf-8')).hexdigest()[:12]}"

    def model_config(self, vocab_size: int) -> GPTConfig:
        return GPTConfig(vocab_size=vocab_size, block_size=self.block_size, n_layer=self.n_layer,
                         n_head=self.n_head, n_embd=self.n_embd, dropout=0.0)

    def train_config(self) -> TrainConfig:
        """The run's schedule over its own S steps: warmup, then a cosine to final_lr_ratio at step S."""
        return TrainConfig(max_iters=self.steps, learning_rate=self.learning_rate,
                           min_lr=self.final_lr_ratio * self.learning_rate,
                           warmup_iters=round(self.warmup_fraction * self.steps), lr_decay_iters=self.steps,
                           weight_decay=self.weight_decay, grad_clip=self.grad_clip,
                           eval_interval=math.ceil(self.steps / self.evals), eval_iters=1)


def training_windows(n_ids: int, block_size: int, batch_size: int, steps: int,
                     rng: np.random.Generator) -> np.ndarray:
    """Start positions (steps, batch_size) of the windows a single-epoch run trains on: distinct
    windows of the non-overlapping grid k T (k < (n_ids - 1) // T), in an order drawn from `rng`."""
    n_windows = (n_ids - 1) // block_size
    if steps * batch_size > n_windows:
        raise ValueError(f"a single-epoch run of {steps:,} steps of {batch_size} windows needs "
                         f"{steps * batch_size:,} windows of {block_size} tokens "
                         f"({steps * batch_size * block_size:,} tokens), but the training ids hold "
                         f"{n_windows:,} ({n_windows * block_size:,} tokens)")
    order = rng.permutation(n_windows)[:steps * batch_size]
    return order.reshape(steps, batch_size) * block_size


def validation_windows(n_ids: int, block_size: int, n_windows: int) -> np.ndarray:
    """Start positions of `n_windows` non-overlapping windows evenly spaced through the ids."""
    available = (n_ids - 1) // block_size
    if not 1 <= n_windows <= available:
        raise ValueError(f"asked for {n_windows:,} evaluation windows of {block_size} tokens; the held-out ids "
                         f"hold {available:,}: lower eval_tokens")
    return np.linspace(0, available - 1, n_windows).round().astype(np.int64) * block_size


def _windows(ids: np.ndarray, starts: np.ndarray, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    idx = starts[:, None] + np.arange(block_size)                    # (B, T)
    return ids[idx].astype(np.int64), ids[idx + 1].astype(np.int64)


def run_one(run: Run, corpus: Corpus, log=print) -> dict:
    """Train `run` on `corpus`, single epoch, and return its result (module docstring). Seeded by
    run.seed alone, split into one stream for the initial weights (the library's generator is
    reseeded with it) and one for the window order: the same run gives the same numbers in any
    process, at the same thread counts."""
    t0 = time.perf_counter()
    weights_seed, order_seed = np.random.SeedSequence(run.seed).spawn(2)
    T, B = run.block_size, run.batch_size
    starts = training_windows(len(corpus.train), T, B, run.steps, np.random.default_rng(order_seed))
    valid_starts = validation_windows(len(corpus.valid), T, max(1, run.eval_tokens // T))
    eval_batches = [_windows(corpus.valid, valid_starts[i:i + B], T) for i in range(0, len(valid_starts), B)]
    steps = iter(starts)

    config = run.model_config(corpus.vocab_size)
    manual_seed(weights_seed)
    model = GPT(config)
    settings = run.train_config()
    optimizer = configure_optimizer(model, settings.learning_rate, settings.weight_decay,
                                    (settings.beta1, settings.beta2))
    history = train(model, optimizer, lambda _rng: _windows(corpus.train, next(steps), T), settings,
                    eval_batches={"valid": eval_batches}, log=lambda line: log(f"{run.name} | {line}"))

    N = sum(p.size for p in model.parameters())                      # the tied head counted once
    embeddings = model.wte.weight.size + model.wpe.weight.size
    D = run.steps * B * T
    between = np.diff(history["step"], prepend=0)                    # steps timed by each ms_per_step
    return {"key": run.key, "name": run.name, "run": dataclasses.asdict(run), "corpus": corpus.fingerprint,
            "config": dataclasses.asdict(config), "N": N, "N_non_embedding": N - embeddings, "D": D,
            "steps": run.steps, "C_6ND": 6 * N * D, "valid_loss": history["valid"][-1], "history": history,
            "seconds": time.perf_counter() - t0,
            "train_seconds": float(np.dot(between, history["ms_per_step"])) / 1000}


# ---- the cache -----------------------------------------------------------------------------------

def load_result(path, run: Run, corpus: Corpus) -> dict:
    """The cached result at `path`, checked to be `run`'s on `corpus`; an error naming the file otherwise."""
    fix = "delete it to train the run again"
    try:
        record = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not a cached run: not JSON (line {e.lineno}: {e.msg}); {fix}") from None
    if not isinstance(record, dict) or record.get("run") != dataclasses.asdict(run):
        got = record.get("run") if isinstance(record, dict) else record
        raise ValueError(f"{path}: holds the result of another run ({str(got)[:200]}), not of {run}; {fix}")
    if record.get("corpus") != corpus.fingerprint:
        raise ValueError(f"{path}: was trained on corpus {record.get('corpus')!r}, this sweep's "
                         f"{corpus.name!r} is {corpus.fingerprint!r}; {fix}, or use another cache folder")
    needed = ("N", "N_non_embedding", "D", "C_6ND", "valid_loss", "history")
    missing = [field for field in needed if field not in record]
    if missing:
        raise ValueError(f"{path}: a result without {', '.join(missing)}; {fix}")
    return record


# ---- the sweep -----------------------------------------------------------------------------------

class SweepError(RuntimeError):
    """Some runs of a sweep failed; the others finished and are cached."""


def balance(costs, ranks: int) -> list[int]:
    """The rank of each job: the costliest first, each to the rank with the least cost so far (ties
    to the lower rank, and between equal costs the earlier job first): Graham's LPT rule."""
    load = [0.0] * ranks
    owner = [0] * len(costs)
    for i in sorted(range(len(costs)), key=lambda i: -costs[i]):
        rank = min(range(ranks), key=lambda r: load[r])
        owner[i] = rank
        load[rank] += costs[i]
    return owner


def _estimated_flops(run: Run) -> float:
    """Kaplan et al.'s approximation of a run's training FLOPs, 6 D (N + n_layer T d) with
    N = 12 n_layer d^2 (the attention term: the scores and the weighted sum), for balancing only.
    run_sweep uses the caller's flops(config, D) instead when it is given one."""
    d, L = run.n_embd, run.n_layer
    return 6.0 * run.steps * run.batch_size * run.block_size * (12 * L * d * d + L * run.block_size * d)


def _on_root(comm, fn: Callable):
    """fn() on rank 0, and what it returned (or the error it raised) on every rank."""
    value, error = None, None
    if comm is None or comm.Get_rank() == 0:
        try:
            value = fn()
        except Exception as e:          # handed to the other ranks, which would otherwise wait forever
            error = e
    if comm is not None and comm.Get_size() > 1:
        value, error = comm.bcast((value, error), root=0)
    if error is not None:
        raise error
    return value


def run_sweep(runs, cache_dir, corpus: Corpus, comm=None, log=print,
              flops: Callable[[GPTConfig, int], float] | None = None) -> list[dict]:
    """Every run's result, in the order of `runs`, on every rank: read from `cache_dir` when there,
    else trained (by one of comm's ranks; comm None: this process) and written there.

    flops(config, D) -> the training FLOPs of a run, the result's "C" and the cost that spreads the
    runs over the ranks (default: the result's C_6ND, and Kaplan's estimate for the spreading)."""
    runs = list(runs)
    keys = {}
    for i, run in enumerate(runs):
        if not isinstance(run, Run):
            raise TypeError(f"run_sweep: runs[{i}] is a {type(run).__name__}, not a Run")
        if run.key in keys:
            raise ValueError(f"run_sweep: runs[{keys[run.key]}] and runs[{i}] are the same run ({run.name})")
        keys[run.key] = i
    cache_dir = Path(cache_dir)
    rank, size = (0, 1) if comm is None else (comm.Get_rank(), comm.Get_size())
    say = log if size == 1 else (lambda line: log(f"[rank {rank}] {line}"))
    if size > 1 and not any(var in os.environ for var in THREAD_VARS):
        say(f"warning: no thread count is set, so each of the {size} ranks starts a thread per core; start the "
            f"script with scratchlm.runtime.start_mpi() above `import numpy`")

    def read_cache() -> tuple[dict, list[int]]:
        cache_dir.mkdir(parents=True, exist_ok=True)
        cached = {i: load_result(cache_dir / f"{run.key}.json", run, corpus) for i, run in enumerate(runs)
                  if (cache_dir / f"{run.key}.json").exists()}
        return cached, [i for i in range(len(runs)) if i not in cached]

    cached, missing = _on_root(comm, read_cache)
    if rank == 0:
        say(f"sweep of {len(runs)} runs: {len(cached)} cached in {cache_dir}, {len(missing)} to train on "
            f"{size} rank(s)")
    cost = (lambda run: flops(run.model_config(corpus.vocab_size), run.steps * run.batch_size * run.block_size)) \
        if flops is not None else _estimated_flops
    owner = balance([cost(runs[i]) for i in missing], size)
    mine = [i for i, r in zip(missing, owner) if r == rank]

    outcomes = {}                       # run index -> its result, or the error that stopped it
    for n, i in enumerate(mine, 1):
        run = runs[i]
        say(f"run {n}/{len(mine)}: {run.name} ({run.steps} steps)")
        try:
            outcomes[i] = run_one(run, corpus, log=say)
            write_json(cache_dir / f"{run.key}.json", outcomes[i])
        except Exception as e:          # the other runs go on; one SweepError at the end names them all
            say(f"run {run.name} failed:\n{traceback.format_exc()}")
            outcomes[i] = f"{type(e).__name__}: {e}"
        else:
            say(f"run {run.name}: valid loss {outcomes[i]['valid_loss']:.4f} in {outcomes[i]['seconds']:.1f} s")
    gathered = [outcomes] if comm is None or size == 1 else comm.gather(outcomes, root=0)

    def collect() -> list[dict]:
        done = {**cached, **{i: out for part in gathered for i, out in part.items()}}
        failed = [(runs[i], out) for i, out in sorted(done.items()) if isinstance(out, str)]
        if failed:
            raise SweepError(f"{len(failed)} of {len(runs)} runs failed (the others are cached in {cache_dir}):\n"
                             + "\n".join(f"  {run.name} ({run.key}): {error}" for run, error in failed))
        results = [done[i] for i in range(len(runs))]
        for run, result in zip(runs, results):
            result["C"] = flops(run.model_config(corpus.vocab_size), result["D"]) if flops else result["C_6ND"]
        return results

    return _on_root(comm, collect)
