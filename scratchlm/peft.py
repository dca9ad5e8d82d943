"""Parameter-efficient fine-tuning: LoRA and prompt tuning on a frozen pretrained model (Chapter 10).

Full fine-tuning updates, stores and keeps optimiser state for every weight of the model, once per
task. These two methods train a few new parameters beside a frozen base, so that a task costs an
adapter of kilobytes instead of a whole model.

LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"). A frozen Linear W (out, in)
gets a trainable update of rank r << min(out, in):

    y = x W^T + b + (alpha / r) (x A^T) B^T,    A (r, in),  B (out, r)
    W_eff = W + (alpha / r) B A

B starts at 0, so the adapted model starts exactly where the base is; A starts random (below), so
the gradient of B, (alpha/r) G^T (x A^T), is not 0 and training moves off that start. alpha / r
fixes the size of the update as r changes (the paper sets alpha once and does not tune it).
`merge()` folds (alpha/r) B A into W for inference, so the merged model costs what the base costs;
`unmerge()` takes it out again.

A's initial values: the paper writes "a random Gaussian initialization for A"; its reference code
(loralib) and Hugging Face PEFT's default draw Kaiming-uniform, U(-1/sqrt(in), 1/sqrt(in)), which is
torch's default Linear initialisation and ours (nn.layers.Linear). We follow the code: each entry of
x A^T then has variance about |x|^2 / (3 in), the same at every width, whereas PEFT's Gaussian option
N(0, std 1/r) makes x A^T grow with sqrt(in). The draws come from scratchlm.rng (`rng` or the library's).

The GPT projects q, k, v with one packed Linear, c_attn (C -> 3C, rows [q | k | v]). LoRA on "q and v
only" (the paper's choice) therefore adapts only rows 0..C-1 and 2C..3C-1 of that matrix: `rows` lists
the (start, stop) blocks of output rows that get an update, B has only those rows, and the update
of the other rows (k) is 0, with no parameters. The full-height B is assembled from B's row blocks
and zero blocks (F.concatenate) on the small (out, r) matrix, never on the activations.

    LoRALinear(linear, r, alpha, rows=None, rng=None)  wraps an existing Linear's weight and bias
    apply_lora(model, r, alpha, targets="qv")          wraps layers in place, freezes the rest
    lora_layers(model), merge_lora(model), unmerge_lora(model)
    save_adapter(path, model), load_adapter(path, model)
    trainable_parameters(model), adapter_bytes(model), model_bytes(model)

targets: "qv" (the q and v rows of every self-attention's c_attn), "all" (every Linear inside a
Transformer Block: attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj, and a decoder block's
cross-attention's), or a list of glob patterns over module names ("h.*.mlp.c_fc"). The tied output
head is never adapted: merging into it would change the token embedding too. After apply_lora only A
and B require gradients; a new head trains too when the caller unfreezes it:

    clf = SequenceClassifier(gpt, n_classes=2)
    apply_lora(clf, r=4, alpha=8, targets="qv")    # freezes clf, then adds trainable A, B
    clf.score.requires_grad_(True)                 # the new head trains too
    optimizer = configure_optimizer(clf, ...)      # built afterwards: holds only what trains

Prompt tuning (Lester et al. 2021, "The Power of Scale for Parameter-Efficient Prompt Tuning"). Only P
"virtual token" embeddings are trained, prepended to every input of the frozen model:

    h_0 = [p_1 .. p_P, E[x_1] .. E[x_T]] + [pos_0 .. pos_{P+T-1}]

(the prompt takes the first positions, Hugging Face PEFT's convention). The prompt starts as the
embeddings of P vocabulary tokens (the paper's "sampled vocab" initialisation). `SoftPrompt` wraps a
GPT and has its interface (embed / hidden_states / head, forward, next_logits, new_cache), so the
training loops, Chapter 7's decoding and a classification head run on it unchanged; its block_size
is the base's minus P, and its KV cache holds the prompt's P positions before the text's.

Adapter checkpoints are checkpoints (scratchlm.checkpoint: atomic, no pickles, NaN refused) that
hold only the trainable parameters (LoRA's A and B, a soft prompt, a head: whatever requires
gradients), with each LoRA layer's name, r, alpha and rows, so that load_adapter can wrap a fresh
base the same way before loading.
"""

from __future__ import annotations

import fnmatch
import math
from pathlib import Path

import numpy as np

import scratchlm.autograd.functional as F
from scratchlm.autograd import Tensor, no_grad
from scratchlm.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from scratchlm.models.attention import KVCache, SelfAttention
from scratchlm.models.gpt import Block
from scratchlm.nn import Linear, Module, Parameter, init
from scratchlm.rng import get_rng

__all__ = ["LoRALinear", "apply_lora", "lora_layers", "merge_lora", "unmerge_lora", "save_adapter",
           "load_adapter", "trainable_parameters", "adapter_bytes", "model_bytes", "SoftPrompt"]


# ---- LoRA ------------------------------------------------------------------------------------

def _row_blocks(rows, out_features: int) -> tuple[tuple[int, int], ...] | None:
    """`rows` as sorted, disjoint (start, stop) blocks inside [0, out_features), or None (every row)."""
    if rows is None:
        return None
    try:
        blocks = sorted((int(start), int(stop)) for start, stop in rows)
    except (TypeError, ValueError):
        raise ValueError(f"LoRALinear: rows must be (start, stop) pairs of output rows, got {rows!r}") from None
    at = 0
    for start, stop in blocks:
        if not at <= start < stop <= out_features:
            raise ValueError(f"LoRALinear: rows {rows!r} must be non-empty, non-overlapping blocks inside "
                             f"[0, {out_features}) (the layer's output rows)")
        at = stop
    if not blocks:
        raise ValueError("LoRALinear: rows is empty: no output row would be adapted")
    return tuple(blocks)


class LoRALinear(Linear):
    """A frozen Linear plus a trainable low-rank update: y = x W^T + b + (alpha/r) (x A^T) B_full^T.

    Wraps `linear`'s own weight and bias Parameters (same names, so a pretrained state_dict still
    names them) and freezes them; adds lora_A (r, in) ~ U(-1/sqrt(in), 1/sqrt(in)) and lora_B
    (n_rows, r) = 0, where n_rows is the number of adapted output rows: all of them, or those of the
    (start, stop) blocks in `rows`. B_full (out, r) is B with zero rows for the rows not adapted."""

    def __init__(self, linear: Linear, r: int, alpha: float, rows=None,
                 rng: np.random.Generator | None = None) -> None:
        Module.__init__(self)       # not Linear's: the weights are the wrapped layer's, not new draws
        if not isinstance(linear, Linear) or isinstance(linear, LoRALinear):
            raise TypeError(f"LoRALinear wraps a plain Linear, got {type(linear).__name__}")
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 1:
            raise ValueError(f"LoRALinear: rank r must be an integer >= 1, got {r!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
            raise ValueError(f"LoRALinear: alpha must be a number > 0, got {alpha!r}")
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight, self.bias = linear.weight, linear.bias
        self.weight.requires_grad = False
        if self.bias is not None:
            self.bias.requires_grad = False
        self.r, self.alpha, self.scaling = int(r), alpha, alpha / r
        self.rows = _row_blocks(rows, self.out_features)
        n_rows = self.out_features if self.rows is None else sum(stop - start for start, stop in self.rows)
        dtype = self.weight.dtype
        k = 1.0 / math.sqrt(self.in_features)  # Kaiming-uniform, as loralib (module docstring)
        self.lora_A = init.uniform_(Parameter(np.empty((self.r, self.in_features), dtype)), -k, k, rng)
        self.lora_B = Parameter(np.zeros((n_rows, self.r), dtype))
        self.merged = False

    def full_B(self) -> Tensor:
        """B_full (out, r): B's row blocks in their rows, zeros in the rows that are not adapted."""
        if self.rows is None:
            return self.lora_B
        pieces, done, at = [], 0, 0
        for start, stop in self.rows:
            if start > done:
                pieces.append(np.zeros((start - done, self.r), self.lora_B.dtype))
            pieces.append(self.lora_B[at:at + stop - start])
            at, done = at + stop - start, stop
        if done < self.out_features:
            pieces.append(np.zeros((self.out_features - done, self.r), self.lora_B.dtype))
        return F.concatenate(pieces, axis=0)

    def delta_weight(self) -> np.ndarray:
        """The update of W, (alpha/r) B_full A, (out, in): W_eff = W + delta_weight() while unmerged."""
        with no_grad():
            return self.scaling * (self.full_B().data @ self.lora_A.data)

    def forward(self, x):
        """x (..., in) -> (..., out). Once merged, W already holds the update: the plain Linear."""
        # BEGIN SOLUTION 10.1: LoRA's forward and merge (chapters/ch10_finetuning.py §10.3)
        y = F.linear(x, self.weight, self.bias)                       # the frozen base
        if self.merged:
            return y
        h = F.linear(x, self.lora_A) * self.scaling                   # (..., r): scaled before B, r << out
        return y + F.linear(h, self.full_B())                         # + (alpha/r) (x A^T) B_full^T
        # END SOLUTION

    def merge(self) -> LoRALinear:
        """Fold the update into the weight, W <- W + (alpha/r) B A, for inference at the base's cost (and
        remember it, so forward does not add it again). Merging a merged layer changes nothing.
        Train only unmerged: a merged layer's forward does not involve A and B."""
        if not self.merged:
            self.weight.data += self.delta_weight()
            self.merged = True
        return self

    def unmerge(self) -> LoRALinear:
        """Take the update out of the weight again, W <- W - (alpha/r) B A (W as before, to rounding)."""
        if self.merged:
            self.weight.data -= self.delta_weight()
            self.merged = False
        return self

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, r={self.r}, alpha={self.alpha}, rows={self.rows}, merged={self.merged}"


def lora_layers(model: Module) -> dict[str, LoRALinear]:
    """Dotted name -> LoRALinear for every LoRA layer of `model`, in model order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def _lora_targets(model: Module, targets) -> dict[str, tuple | None]:
    """Name -> rows of each Linear that `targets` ("qv", "all", or glob patterns) picks."""
    linears = {name: m for name, m in model.named_modules() if isinstance(m, Linear)}
    if targets == "qv":       # q and v: the first and last thirds of the packed c_attn (C -> 3C)
        chosen = {}
        for name, m in model.named_modules():
            if isinstance(m, SelfAttention):
                C = m.c_attn.out_features // 3
                chosen[f"{name}.c_attn" if name else "c_attn"] = ((0, C), (2 * C, 3 * C))
    elif targets == "all":    # every Linear of every Transformer block
        chosen = {sub: None for name, m in model.named_modules() if isinstance(m, Block)
                  for sub, layer in m.named_modules(name) if isinstance(layer, Linear)}
    elif isinstance(targets, (list, tuple)) and targets and all(isinstance(t, str) for t in targets):
        chosen = {}
        for pattern in targets:
            hits = [name for name in linears if fnmatch.fnmatchcase(name, pattern)]
            if not hits:
                raise ValueError(f"apply_lora: pattern {pattern!r} matches no Linear layer of the "
                                 f"{type(model).__name__}; its Linear layers are {list(linears)}")
            chosen.update({name: None for name in hits})
    else:
        raise ValueError(f"apply_lora: targets must be 'qv', 'all' or a list of name patterns, got {targets!r}")
    if not chosen:
        raise ValueError(f"apply_lora: the {type(model).__name__} has no layer that targets={targets!r} picks "
                         f"(no self-attention for 'qv', no Transformer block for 'all')")
    return chosen


def _slot(model: Module, name: str) -> tuple[Module, str, Linear]:
    """(parent module, attribute, Linear) of the layer at dotted `name`, if LoRA may wrap it."""
    parent_name, _, attr = name.rpartition(".")
    parent = dict(model.named_modules())[parent_name]
    linear = getattr(parent, attr)
    if isinstance(linear, LoRALinear):
        raise ValueError(f"apply_lora: {name} already has LoRA (unmerge and keep it, or start from the base)")
    shared = [n for n, p in model.named_parameters(remove_duplicate=False)
              if p is linear.weight and n != f"{name}.weight"]
    if shared:   # the tied output head: W + delta would change the token embedding too
        raise ValueError(f"apply_lora: {name}.weight is shared with {shared}; LoRA adapts only untied layers")
    return parent, attr, linear


def apply_lora(model: Module, r: int, alpha: float, targets="qv",
               rng: np.random.Generator | None = None) -> dict[str, LoRALinear]:
    """Freeze `model`, then replace the Linear layers `targets` picks ("qv", "all", or a list of glob
    patterns over module names; module docstring) by LoRALinear layers of rank r and scale alpha/r,
    in place. Only their A and B require gradients afterwards (unfreeze a head yourself). Returns the
    layers it wrapped, name -> LoRALinear."""
    chosen = _lora_targets(model, targets)
    slots = {name: _slot(model, name) for name in chosen}     # every layer checked before any is changed
    model.requires_grad_(False)
    wrapped = {}
    for name, (parent, attr, linear) in slots.items():
        wrapped[name] = LoRALinear(linear, r, alpha, chosen[name], rng)
        setattr(parent, attr, wrapped[name])
    return wrapped


def merge_lora(model: Module) -> dict[str, LoRALinear]:
    """merge() every LoRA layer of `model` (inference at the base's cost); returns them."""
    layers = _lora_layers_or_error(model, "merge_lora")
    for layer in layers.values():
        layer.merge()
    return layers


def unmerge_lora(model: Module) -> dict[str, LoRALinear]:
    """unmerge() every LoRA layer of `model` (to train or save them again); returns them."""
    layers = _lora_layers_or_error(model, "unmerge_lora")
    for layer in layers.values():
        layer.unmerge()
    return layers


def _lora_layers_or_error(model: Module, what: str) -> dict[str, LoRALinear]:
    layers = lora_layers(model)
    if not layers:
        raise ValueError(f"{what}: the {type(model).__name__} has no LoRA layers (apply_lora adds them)")
    return layers


# ---- adapter checkpoints ---------------------------------------------------------------------

def save_adapter(path, model: Module) -> Path:
    """Write the trainable parameters of `model` (LoRA's A and B, a soft prompt, a head: what requires
    gradients) and each LoRA layer's name, r, alpha and rows to `path`, atomically (save_checkpoint
    with trainable_only=True; NaN refused). The frozen base is not written."""
    return save_checkpoint(path, model, extra={"adapter": {"lora": _lora_settings(model)}}, trainable_only=True)


def _lora_settings(model: Module) -> dict:
    """Name -> {"r", "alpha", "rows"} of each LoRA layer, as JSON values (rows: [[start, stop], ...] or None)."""
    return {name: {"r": m.r, "alpha": m.alpha, "rows": None if m.rows is None else [list(b) for b in m.rows]}
            for name, m in lora_layers(model).items()}


def load_adapter(path, model: Module, rng: np.random.Generator | None = None) -> dict:
    """Load an adapter written by save_adapter onto `model`, the same base (and head, soft prompt) it
    was trained on. A model without LoRA layers is first wrapped as the file says (apply_lora's
    wrapping: the base frozen); one that has them must have the same layers, r, alpha and rows. Then
    the arrays are loaded (each name and shape checked; the model's config compared with the saved
    one), and exactly the saved parameters are left trainable, as when it was saved. Returns the
    file's metadata. Errors name the file."""
    path = Path(path)
    meta, arrays = read_checkpoint(path)
    adapter = (meta.get("extra") or {}).get("adapter")
    if not isinstance(adapter, dict) or not isinstance(adapter.get("lora"), dict):
        raise ValueError(f"{path} is a checkpoint but not an adapter (no 'adapter' entry; save_adapter writes "
                         f"them); load a whole model's checkpoint with load_checkpoint")
    saved, slots = adapter["lora"], {}
    trainable = {id(p): p.requires_grad for p in model.parameters()}
    if saved and not lora_layers(model):
        modules = dict(model.named_modules())
        missing = [name for name in saved if not isinstance(modules.get(name), Linear)]
        if missing:
            raise ValueError(f"{path}: the adapter adapts layers {missing}, which are not Linear layers of the "
                             f"{type(model).__name__}: is this the base it was trained on?")
        slots = {name: _slot(model, name) for name in saved}
    try:
        for name, (parent, attr, linear) in slots.items():
            setattr(parent, attr, LoRALinear(linear, saved[name]["r"], saved[name]["alpha"], saved[name]["rows"], rng))
        mine = _lora_settings(model)
        if mine != saved:
            raise ValueError(f"{path}: the model's LoRA layers {mine} differ from the adapter's {saved}")
        meta = load_checkpoint(path, model, contents=(meta, arrays), strict=False)
    except ValueError:          # not this base: give the model back as it was
        for parent, attr, linear in slots.values():
            setattr(parent, attr, linear)
        for p in model.parameters():
            p.requires_grad = trainable[id(p)]
        raise
    loaded = {key[len("model/"):] for key in arrays}
    for name, p in model.named_parameters():
        p.requires_grad = name in loaded
    return meta


# ---- costs -----------------------------------------------------------------------------------

def trainable_parameters(model: Module) -> int:
    """Number of parameters that require gradients (what the optimiser updates and keeps state for)."""
    return sum(p.size for p in model.parameters() if p.requires_grad)


def adapter_bytes(model: Module) -> int:
    """Bytes of the trainable parameters: the arrays save_adapter writes for one task."""
    return sum(p.data.nbytes for p in model.parameters() if p.requires_grad)


def model_bytes(model: Module) -> int:
    """Bytes of every parameter (a tied matrix once): what a whole fine-tuned model costs per task."""
    return sum(p.data.nbytes for p in model.parameters())


# ---- prompt tuning ---------------------------------------------------------------------------

class SoftPrompt(Module):
    """P trainable prompt embeddings before every input of a frozen GPT (Lester et al. 2021).

    `prompt` (P, C) starts as the token embeddings (rows of base.wte) of `init_ids`, or of P ids
    drawn uniformly from the vocabulary (without repeats when P <= V) with `rng`. The base is frozen
    (requires_grad_(False)); only the prompt trains. It reads like a GPT: block_size = the base's
    minus P (the text tokens that fit), n_prefix = P (the positions before the text, which a
    classification head skips), config = the base's, and forward returns the logits of the text
    positions only."""

    def __init__(self, base: Module, n_tokens: int, init_ids=None, rng: np.random.Generator | None = None):
        super().__init__()
        V, C = base.wte.weight.shape
        if isinstance(n_tokens, bool) or not isinstance(n_tokens, (int, np.integer)) or n_tokens < 1:
            raise ValueError(f"SoftPrompt: n_tokens must be an integer >= 1, got {n_tokens!r}")
        if n_tokens >= base.block_size:
            raise ValueError(f"SoftPrompt: {n_tokens} prompt tokens leave no room for text in the base's "
                             f"block_size {base.block_size}")
        if init_ids is None:
            init_ids = get_rng(rng).choice(V, size=n_tokens, replace=n_tokens > V)
        init_ids = np.asarray(init_ids)
        if (init_ids.shape != (n_tokens,) or not np.issubdtype(init_ids.dtype, np.integer)
                or ((init_ids < 0) | (init_ids >= V)).any()):
            raise ValueError(f"SoftPrompt: init_ids must be {n_tokens} token ids in [0, {V}), got {init_ids!r}")
        self.base = base.requires_grad_(False)
        self.prompt = Parameter(base.wte.weight.data[init_ids])        # (P, C), a copy
        self.n_prefix = int(n_tokens)

    @property
    def config(self):
        """The base's config (a classification head reads n_embd and vocab_size from it; its block_size
        counts the prompt's positions too, and `self.block_size` is what remains for text)."""
        return self.base.config

    @property
    def block_size(self) -> int:
        return self.base.block_size - self.n_prefix

    def embed(self, idx, start: int = 0) -> Tensor:
        """idx (B, T) text ids at text positions start .. start + T - 1 -> (B, P + T, C) at start 0: the
        prompt, then the tokens, at the base's positions 0 .. P + T - 1. With start > 0 (decoding with a
        KV cache, which already holds the prompt) -> (B, T, C), the tokens at positions P + start ..."""
        idx = np.asarray(idx)
        # BEGIN SOLUTION 10.3: Prepending a soft prompt (chapters/ch10_finetuning.py §10.3)
        if start > 0:
            return self.base.embed(idx, self.n_prefix + start)
        rows = np.broadcast_to(np.arange(self.n_prefix), (idx.shape[0], self.n_prefix))  # (B, P)
        return self.base.embed(idx, 0, prefix=F.embedding(rows, self.prompt))  # each row gets the prompt
        # END SOLUTION

    def hidden_states(self, x: Tensor, cache: KVCache | None = None, key_lengths=None) -> Tensor:
        """The base's body (key_lengths count the prompt's P positions too)."""
        return self.base.hidden_states(x, cache, key_lengths)

    def head(self, h: Tensor) -> Tensor:
        return self.base.head(h)

    def forward(self, idx, targets=None, cache: KVCache | None = None):
        """idx (B, T) text ids -> (logits (B, T, V) of the text positions, mean cross-entropy or None),
        as GPT.forward. With a `cache`, idx are the text positions after the cached ones; a new cache's
        first call puts the prompt in it."""
        idx = np.asarray(idx)
        if idx.ndim != 2 or idx.shape[1] == 0:
            raise ValueError(f"SoftPrompt: idx must be token ids of shape (B, T) with T >= 1, got shape {idx.shape}")
        if targets is not None and np.shape(targets) != idx.shape:
            raise ValueError(f"SoftPrompt: targets must have the shape of idx {idx.shape}, got {np.shape(targets)}")
        B, T = idx.shape
        start = 0 if cache is None or cache.length == 0 else cache.length - self.n_prefix  # text positions cached
        if start + T > self.block_size:
            raise ValueError(f"sequence of {start + T} tokens is longer than block_size {self.block_size} (the "
                             f"base's {self.base.block_size} minus the {self.n_prefix} prompt tokens)")
        h = self.hidden_states(self.embed(idx, start), cache)          # (B, P + T, C), or (B, T, C)
        logits = self.head(h[:, -T:])                                  # (B, T, V): the text positions
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.reshape(B * T, -1), np.asarray(targets).reshape(-1), ignore_index=-1)
        return logits, loss

    def new_cache(self, batch_size: int) -> KVCache:
        """The base's cache: room for the prompt's P positions and block_size text positions."""
        return self.base.new_cache(batch_size)

    def next_logits(self, idx, cache: KVCache | None = None) -> np.ndarray:
        """Logits (B, V) of the token after each row of idx (B, T) (Chapter 7's decoding interface).

        Without a cache the last block_size ids are the context; with one, idx are the new ids."""
        idx = np.asarray(idx)
        if cache is None:
            idx = idx[:, -self.block_size:]
        with no_grad():
            logits, _ = self(idx, cache=cache)
        return logits.data[:, -1]

    def extra_repr(self) -> str:
        return f"n_tokens={self.n_prefix}"
