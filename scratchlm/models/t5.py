"""T5: a Transformer encoder-decoder (Chapter 9; Raffel et al. 2020), trained by span corruption.

An encoder-decoder reads one sequence (the source) and writes another (the target). The encoder is
BERT's body -- bidirectional self-attention over the source -- and the decoder is a GPT whose every
block has a third sub-layer, cross-attention, whose queries come from the decoder's stream and whose
keys and values come from the encoder's output (the "memory"):

    m   = Encoder(E[src] + P_enc)                    bidirectional Blocks, source padding masked, final norm
    h_0 = E[dec_in] + P_dec                          dec_in = <s> then the target shifted right
    h   = h + SelfAttention_causal(Norm(h))          the decoder's Blocks, n_decoder_layer times:
    h   = h + CrossAttention(Norm(h), m)               queries from h, keys and values from m
    h   = h + MLP(Norm(h))
    p(y_t | y_<t, src) = softmax(Norm(h_t) E^T)      one token embedding E for the encoder's input,
                                                     the decoder's input and the output head

    loss = mean over the target positions (>= 0) of -log p(y_t | y_<t, src)

Both stacks are bert.Stack (positions, gpt.Block's, a final norm); the attention is attention.py's
one op (causal, bidirectional, padded, cross). T5's pretraining objective is span corruption
(scratchlm.objectives.span_corrupt: spans of the text replaced by sentinels in the source, the
target lists the sentinels and the spans); Chapter 9 also trains it on number words -> digits.

Differences from the original T5, to keep Chapter 9's three architectures one design: positions are
learned absolute embeddings, one table per stack (or RoPE in every self-attention with
position="rope"), not T5's relative position buckets added to the attention scores; LayerNorm with
GELU by default (T5 used an RMS-style norm without bias and ReLU; norm="rmsnorm" and mlp="swiglu"
are its successors' choices); GPT-2's initialisation, so the tied head needs no rescaling by
n_embd^-0.5 as T5's did. Residual projections are scaled by each stack's own branch count: 2
sub-layers per encoder block, 3 per decoder block.

Decoding (scratchlm.generate with source=...): `encode` runs the encoder once per source;
`next_logits(idx, memory, cache)` runs the decoder on the new ids. The KV cache keeps the decoder's
self-attention keys and values, and each layer's cross-attention keys and values of the memory,
computed on the first step only (KVCache.cross), so a step costs O(t + S) attention, not a full pass:

    tokens = generate(model, start_ids, 20, temperature=0, eos_id=eos, source=src, source_lengths=lengths)

Parameters: wte, encoder.{wpe, h.i.*, ln_f}, decoder.{wpe, h.i.* (with ln_cross, cross_attn.c_q,
cross_attn.c_kv, cross_attn.c_proj), ln_f}.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

import scratchlm.autograd.functional as F
from scratchlm.autograd import Tensor, no_grad
from scratchlm.models.attention import KVCache
from scratchlm.models.bert import Stack, check_ids
from scratchlm.models.gpt import check_config, init_weights
from scratchlm.nn import Embedding, Module, init

__all__ = ["T5Config", "T5", "seq2seq_loss"]


@dataclass
class T5Config:
    vocab_size: int = 65
    block_size: int = 64      # longest source and longest target, in tokens (positions of each stack)
    n_layer: int = 4          # blocks of each stack, unless n_encoder_layer / n_decoder_layer say otherwise
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = False        # biases in Linear and LayerNorm layers
    gelu: str = "tanh"        # GPT-2's tanh approximation of GELU; "none" for the exact erf form
    norm: str = "layernorm"   # or "rmsnorm"
    position: str = "learned"  # or "rope": rotary positions in every self-attention, no wpe
    mlp: str = "gelu"         # or "swiglu"
    rope_base: float = 10000.0
    n_encoder_layer: int | None = None   # None: n_layer
    n_decoder_layer: int | None = None   # None: n_layer

    def __post_init__(self):
        if self.n_encoder_layer is None:
            self.n_encoder_layer = self.n_layer
        if self.n_decoder_layer is None:
            self.n_decoder_layer = self.n_layer
        check_config(self, sizes=("vocab_size", "block_size", "n_layer", "n_encoder_layer", "n_decoder_layer",
                                  "n_head", "n_embd"))


class T5(Module):
    """The encoder-decoder: shared token embedding -> encoder Stack -> memory; decoder Stack with
    cross-attention to the memory -> head tied to the embedding."""

    def __init__(self, config: T5Config, dtype=np.float32):
        super().__init__()
        self.config = config
        self.wte = Embedding(config.vocab_size, config.n_embd)
        self.encoder = Stack(config, config.n_encoder_layer, causal=False)
        self.decoder = Stack(config, config.n_decoder_layer, causal=True, cross_attention=True)
        init_weights(self, 2 * config.n_encoder_layer, dtype)    # the encoder's stream: 2 branches a block
        for name, p in self.decoder.named_parameters():           # the decoder's: 3 (cross-attention too)
            if name.endswith("c_proj.weight"):
                init.normal_(p, 0.0, 0.02 / math.sqrt(3 * config.n_decoder_layer))

    @property
    def block_size(self) -> int:
        return self.config.block_size

    def num_parameters(self, non_embedding: bool = True) -> int:
        """Parameter count; by default without the position embeddings (GPT.num_parameters' convention)."""
        n = sum(p.size for p in self.parameters())
        if non_embedding:
            n -= sum(stack.wpe.weight.size for stack in (self.encoder, self.decoder) if hasattr(stack, "wpe"))
        return n

    # -- training ----------------------------------------------------------------------------------

    def encoder_states(self, src, src_lengths=None) -> Tensor:
        """The memory: src (B, S) ids -> (B, S, C), each source position after seeing the whole
        source (its first src_lengths[b] tokens when the batch is padded)."""
        src = check_ids(src, "src", "T5", self.config.block_size)
        return self.encoder(self.wte(src), src_lengths)

    def decoder_states(self, dec_in, memory, memory_lengths=None, cache: KVCache | None = None) -> Tensor:
        """dec_in (B, T) ids, memory (B, S, C) -> decoder hidden states (B, T, C). With a `cache`,
        dec_in are the positions after the cached ones (and memory is only read on the first step)."""
        dec_in = check_ids(dec_in, "dec_in", "T5", self.config.block_size)
        start = 0 if cache is None else cache.length
        if start + dec_in.shape[1] > self.config.block_size:
            raise ValueError(f"T5: {start + dec_in.shape[1]} decoder positions are more than block_size "
                             f"{self.config.block_size}")
        return self.decoder(self.wte(dec_in), None, memory, memory_lengths, cache)

    def head(self, h: Tensor) -> Tensor:
        """The language-model head: decoder states (B, T, C) -> logits (B, T, V), tied to the embedding."""
        return F.linear(h, self.wte.weight)                                # h E^T

    def forward(self, src, src_lengths, dec_in, targets=None):
        """src (B, S) source ids, src_lengths (B,) real source tokens (None: no padding), dec_in (B, T)
        the decoder's input -> (logits (B, T, V), mean cross-entropy in nats over targets >= 0, or None).

        targets (B, T): the id each decoder position predicts (-1: ignored). The decoder's padding
        (after a shorter target) needs no mask: a causal query never sees the positions after it."""
        memory = self.encoder_states(src, src_lengths)                      # (B, S, C)
        dec_in = np.asarray(dec_in)
        if dec_in.ndim != 2 or memory.shape[0] != dec_in.shape[0]:
            raise ValueError(f"T5: dec_in must be (B, T) ids with B = {memory.shape[0]} rows as src, got "
                             f"shape {dec_in.shape}")
        logits = self.head(self.decoder_states(dec_in, memory, src_lengths))  # (B, T, V)
        if targets is None:
            return logits, None
        B, T, V = logits.shape
        if np.shape(targets) != (B, T):
            raise ValueError(f"T5: targets must have the shape of dec_in {(B, T)}, got {np.shape(targets)}")
        return logits, F.cross_entropy(logits.reshape(B * T, V), np.asarray(targets).reshape(-1), ignore_index=-1)

    # -- decoding (scratchlm.generate's EncoderDecoderContext) --------------------------------------

    def encode(self, src, src_lengths=None) -> tuple[np.ndarray, np.ndarray]:
        """memory = (states (B, S, C) array, lengths (B,) int64): the encoder run once per source, no
        graph; lengths are S where src_lengths is None. generate reorders both with the beams."""
        src = np.asarray(src)
        with no_grad():
            states = self.encoder_states(src, src_lengths).data
        lengths = np.full(len(src), src.shape[1], np.int64) if src_lengths is None else \
            np.asarray(src_lengths, np.int64)
        return states, lengths

    def next_logits(self, idx, memory, cache: KVCache | None = None) -> np.ndarray:
        """Logits (B, V) of the token after each row of the decoder's ids idx (B, T), given memory from
        `encode`. Without a cache the last block_size ids are the context; with one, idx are the new ids."""
        states, lengths = memory
        idx = np.asarray(idx)
        if cache is None:
            idx = idx[:, -self.config.block_size:]
        with no_grad():
            h = self.decoder_states(idx, Tensor(states), lengths, cache)
            return self.head(h[:, -1:]).data[:, 0]                           # only the last position's

    def new_cache(self, batch_size: int) -> KVCache:
        """A KV cache for the decoder's n_decoder_layer layers (and their cross-attention memory)."""
        return KVCache(dataclasses.replace(self.config, n_layer=self.config.n_decoder_layer), batch_size,
                       self.wte.weight.dtype)


def seq2seq_loss(model: T5, batch) -> tuple[Tensor, int]:
    """loss_fn for scratchlm.train (train / train_step / evaluate) on a Seq2SeqBatch (objectives.py):
    the model's mean loss over the batch's targets, and their number."""
    _, loss = model(batch.src, batch.src_lengths, batch.dec_in, batch.targets)
    return loss, int((np.asarray(batch.targets) >= 0).sum())
