"""BERT: a Transformer encoder trained as a masked language model (Chapter 9; Devlin et al. 2019).

A decoder (GPT, Chapter 6) predicts each token from the ones before it. An encoder reads the whole
sequence at once, every position attending to every other (bidirectional self-attention), so it
cannot be trained to predict the next token -- it would see it. Instead some tokens are hidden
(scratchlm.objectives.bert_mask: 15% chosen, of those 80% -> <mask>, 10% -> a random token, 10%
unchanged) and the model predicts the originals from both sides:

    h_0 = E[x_t] + P[t]                                  token + learned position embeddings
    h   = h + Attention_bidirectional(LayerNorm(h))      pre-LayerNorm blocks, n_layer times
    h   = h + MLP(LayerNorm(h))
    p(x_t | x_masked) = softmax(LayerNorm(h_t) E^T)      masked-LM head tied to the token embedding
    loss = mean over the chosen positions of -log p(x_t | x_masked)    (targets elsewhere are -1)

It is the GPT with one change, causal=False in every Block (gpt.Block; the attention op of
attention.py with its fused softmax kernel), and one addition, `key_lengths` (B,): the real tokens
of each row of a right-padded batch, so that no query attends to padding. Differences from the
original BERT, to keep the three architectures of Chapter 9 one design: pre-LayerNorm blocks
(GPT-2's; BERT was post-LN), GPT-2's initialisation, no token-type (segment) embeddings and no
next-sentence objective (RoBERTa dropped it too), and the simplest MLM head: the final norm then the
tied embedding, without BERT's extra dense + GELU + LayerNorm transform and output bias. The
config's norm / position / mlp fields build the modern variants (RMSNorm, RoPE, SwiGLU) as in GPTConfig.

    model = BERT(BERTConfig(vocab_size=V))
    inputs, targets = bert_mask(ids, tok.mask_id, V, tok.special_ids())
    logits, loss = model(inputs, targets, key_lengths=lengths)     # (B, T, V), mean loss in nats
    h = model.hidden_states(inputs, key_lengths)                   # (B, T, C): the body, for a new head
    train(model, optimizer, get_batch, settings, loss_fn=mlm_loss)  # batches (inputs, targets[, key_lengths])

`mlm_loss` is the same loss computed the way BERT's own pretraining code does (gather_indexes in
run_pretraining.py): the head and the softmax run on the ~15% of positions that have a target only.
At V = 10,000 and C = 128 the head's V C multiply-adds per position are more than the whole 4-layer
encoder's, so this roughly halves a training step (benchmarks/bench_transformer.py), with the same
loss and gradients.

`Stack` -- position embeddings, a stack of Blocks, a final norm -- is the body of both of Chapter 9's
new models: BERT is one bidirectional stack; T5 (t5.py) is a bidirectional encoder stack and a
causal decoder stack with cross-attention, sharing one token embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import scratchlm.autograd.functional as F
from scratchlm.autograd import Tensor
from scratchlm.models.attention import KVCache
from scratchlm.models.gpt import Block, check_config, init_weights, norm_layer
from scratchlm.nn import Dropout, Embedding, Module, ModuleList

__all__ = ["BERTConfig", "BERT", "Stack", "check_ids", "mlm_loss"]


@dataclass
class BERTConfig:
    vocab_size: int = 65
    block_size: int = 64      # longest sequence, in tokens (number of learned positions)
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = False        # biases in Linear and LayerNorm layers
    gelu: str = "tanh"        # GPT-2's tanh approximation of GELU; "none" for the exact erf form
    norm: str = "layernorm"   # or "rmsnorm"
    position: str = "learned"  # or "rope": rotary positions in the attention, no wpe
    mlp: str = "gelu"         # or "swiglu"
    rope_base: float = 10000.0

    def __post_init__(self):
        check_config(self)


def check_ids(ids, name: str, model: str, block_size: int) -> np.ndarray:
    """ids as a (B, T) array with 1 <= T <= block_size, or a ValueError naming the model and argument."""
    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.shape[1] == 0:
        hint = " (one sequence? add a batch axis: ids[None])" if ids.ndim == 1 else ""
        raise ValueError(f"{model}: {name} must be token ids of shape (B, T) with T >= 1, got shape "
                         f"{ids.shape}{hint}")
    if ids.shape[1] > block_size:
        raise ValueError(f"{model}: {name} has {ids.shape[1]} tokens, longer than block_size {block_size}")
    return ids


class Stack(Module):
    """Position embeddings, n_layer Blocks and a final norm, over token embeddings x (B, T, C).

    causal=False: an encoder (BERT, T5's encoder); causal=True with cross_attention=True: T5's
    decoder, whose blocks also attend to the encoder's output `memory`. Parameters: wpe (learned
    positions; none with RoPE), h.0 ... h.{n_layer-1} (gpt.Block's names), ln_f."""

    def __init__(self, config, n_layer: int, causal: bool, cross_attention: bool = False):
        super().__init__()
        if config.position == "learned":           # RoPE puts positions into the attention instead
            self.wpe = Embedding(config.block_size, config.n_embd)
        self.drop = Dropout(config.dropout)
        self.h = ModuleList(Block(config, i, causal, cross_attention) for i in range(n_layer))
        self.ln_f = norm_layer(config)

    def forward(self, x: Tensor, key_lengths=None, memory=None, memory_lengths=None,
                cache: KVCache | None = None) -> Tensor:
        """x (B, T, C) token embeddings -> hidden states (B, T, C). key_lengths (B,): real tokens of
        a padded batch; memory (B, S, C), memory_lengths (B,): the encoder's output and real source
        tokens, for cross-attention. With a `cache` (decoding), x are the positions after the cached
        ones, and the cache is extended with them."""
        start = 0 if cache is None else cache.length
        if hasattr(self, "wpe"):
            x = x + self.wpe(np.arange(start, start + x.shape[1]))       # + (T, C)
        x = self.drop(x)
        for block in self.h:
            x = block(x, cache, key_lengths, memory, memory_lengths)
        if cache is not None:
            cache.length += x.shape[1]                                     # every layer has written
        return self.ln_f(x)


class BERT(Module):
    """The encoder-only masked language model: token embeddings -> bidirectional Stack -> tied head."""

    def __init__(self, config: BERTConfig, dtype=np.float32):
        super().__init__()
        self.config = config
        self.wte = Embedding(config.vocab_size, config.n_embd)
        self.encoder = Stack(config, config.n_layer, causal=False)
        init_weights(self, 2 * config.n_layer, dtype)

    @property
    def block_size(self) -> int:
        return self.config.block_size

    def num_parameters(self, non_embedding: bool = True) -> int:
        """Parameter count; by default without the position embeddings (GPT.num_parameters' convention)."""
        n = sum(p.size for p in self.parameters())
        return n - self.encoder.wpe.weight.size if non_embedding and hasattr(self.encoder, "wpe") else n

    def hidden_states(self, idx, key_lengths=None) -> Tensor:
        """The body: idx (B, T) ids -> (B, T, C), each position's state after seeing the whole row
        (its first key_lengths[b] tokens, when the batch is padded)."""
        idx = check_ids(idx, "idx", "BERT", self.config.block_size)
        return self.encoder(self.wte(idx), key_lengths)

    def head(self, h: Tensor) -> Tensor:
        """The masked-LM head: hidden states (B, T, C) -> logits (B, T, V), tied to the embedding."""
        return F.linear(h, self.wte.weight)                                # h E^T

    def forward(self, idx, targets=None, key_lengths=None):
        """idx (B, T) ids (some masked) -> (logits (B, T, V), mean cross-entropy in nats over the
        targets >= 0, or None). targets (B, T): the original ids at the chosen positions, -1 elsewhere."""
        logits = self.head(self.hidden_states(idx, key_lengths))             # (B, T, V)
        if targets is None:
            return logits, None
        B, T, V = logits.shape
        if np.shape(targets) != (B, T):
            raise ValueError(f"BERT: targets must have the shape of idx {(B, T)}, got {np.shape(targets)}")
        return logits, F.cross_entropy(logits.reshape(B * T, V), np.asarray(targets).reshape(-1), ignore_index=-1)


def mlm_loss(model: BERT, batch) -> tuple[Tensor, int]:
    """loss_fn for scratchlm.train on batches (inputs, targets) or (inputs, targets, key_lengths):
    model(inputs, targets, key_lengths)'s loss and the number of targets, with the head run only on
    the positions that have a target (module docstring): their hidden states are gathered first."""
    idx, targets = batch[0], np.asarray(batch[1])
    key_lengths = batch[2] if len(batch) > 2 else None
    h = model.hidden_states(idx, key_lengths)                                # (B, T, C)
    B, T, C = h.shape
    if targets.shape != (B, T):
        raise ValueError(f"mlm_loss: targets must have the shape of inputs {(B, T)}, got {targets.shape}")
    rows = np.flatnonzero(targets.reshape(-1) >= 0)                          # (n,) positions with a target
    if len(rows) == 0:
        raise ValueError("mlm_loss: no position has a target (all -1), so there is no loss to compute")
    logits = model.head(h.reshape(B * T, C)[rows])                           # (n, V)
    return F.cross_entropy(logits, targets.reshape(-1)[rows]), len(rows)
