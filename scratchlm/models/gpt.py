"""A GPT-style decoder-only Transformer language model (Chapter 6; decoded in Chapter 7; the
modern decoder and the block shared with the encoder and the encoder-decoder in Chapter 9).

The model reads ids x_1..x_T and predicts every next id at once:

    h_0 = E[x_t] + P[t]                                  token + learned position embeddings
    h   = h + Attention(LayerNorm(h))                    pre-LayerNorm residual blocks, n_layer times
    h   = h + MLP(LayerNorm(h))                          MLP(u) = W_2 GELU(W_1 u), 4C wide
    p(x_{t+1} | x_<=t) = softmax(LayerNorm(h_t) E^T)     output head tied to the token embedding

in three steps a later chapter can take apart (a classification or reward head reads the body):

    x = model.embed(idx)            (B, T) ids -> (B, T, C)    token (+ position) embeddings, dropout
    h = model.hidden_states(x)      (B, T, C) -> (B, T, C)     the blocks and the final norm (the body)
    logits = model.head(h)          (B, T, C) -> (B, T, V)     the language-model head

Causal multi-head self-attention splits C = n_embd into n_head heads of size hs = C / n_head; each
head mixes the values of the positions it may see, weighted by how well their keys match its query:

    Attention_head(u) = softmax_causal(Q K^T / sqrt(hs)) V,   Q, K, V = u W_q, u W_k, u W_v

and the heads' outputs are concatenated and projected back to C. The attention op, its modules and
the KV cache live in attention.py (one op for causal, bidirectional, padded and cross attention;
the softmax fused in one Numba kernel forward and backward, attention_kernels.py). GELU is GPT-2's
tanh approximation unless the config asks for the exact erf form (nanoGPT's choice).

`Block` is the one Transformer block of the library: pre-LayerNorm residual sub-layers, its
self-attention causal (a decoder) or bidirectional (an encoder, Chapter 9's BERT), with an optional
cross-attention sub-layer between self-attention and MLP (an encoder-decoder's decoder, T5):

    Block(config, layer, causal=True, cross_attention=False)
    block(x, cache=None, key_lengths=None, memory=None, memory_lengths=None) -> x   (B, T, C)

The modern decoder (Chapter 9; LLaMA's changes to GPT-2) is a choice of config fields:

    norm="rmsnorm"     RMSNorm (x / rms(x) * w, no mean, no bias) instead of LayerNorm
    position="rope"    rotary position embeddings of q and k in every attention instead of wpe
                       (rotate-half convention of GPT-NeoX / LLaMA in Hugging Face, base rope_base)
    mlp="swiglu"       W_2 (silu(W u) * (V u)), hidden size H = 8C/3 rounded up to a multiple of 8
                       (LLaMA's rule with its multiple of 256 made 8 for small widths), so that its
                       3 C H weights match GELU's 8 C^2 (C=128: H=344)
    bias=False         no biases in Linear and LayerNorm layers (already the default here)

Initialisation follows GPT-2: weights ~ N(0, std 0.02) (GPT-1's), biases 0, and the projections that
write into the residual stream (attention's and the MLP's c_proj) ~ N(0, std 0.02 / sqrt(2 n_layer))
(GPT-2's addition), so the total variance the 2 n_layer residual branches add stays about the same
whatever the depth. Parameter names follow nanoGPT's (wte, wpe, h.0.attn.c_attn.weight, ...),
without its `transformer.` prefix, so weights copy across to and from PyTorch.

A `KVCache` (Chapter 7) keeps every layer's keys and values, so that generating one more token runs
the model on that token alone: `model(idx_new, cache=cache)` attends over the cached positions too.

To look at what the heads attend to (Chapter 6's figure), run the model inside `record_attention`:

    with no_grad(), record_attention(model) as attention:   # the attention modules, layer by layer
        model(idx)
    P = attention[0].last_weights                            # (B, n_head, T, T) of the first layer
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

import scratchlm.autograd.functional as F
from scratchlm.autograd import Tensor, no_grad
from scratchlm.checkpoint import load_checkpoint, read_checkpoint
from scratchlm.models.attention import (CrossAttention, KVCache, SelfAttention, causal_self_attention,  # noqa: F401
                                        causal_self_attention_ref, causal_softmax, record_attention)
from scratchlm.nn import GELU, Dropout, Embedding, LayerNorm, Linear, Module, ModuleList, RMSNorm, init

# Chapters 6 and 7 import the attention pieces from here, as before they moved to attention.py.
__all__ = ["GPTConfig", "GPT", "Block", "MLP", "norm_layer", "swiglu_hidden", "check_config", "init_weights", "KVCache", "SelfAttention",
           "CrossAttention", "causal_self_attention", "causal_self_attention_ref", "causal_softmax",
           "record_attention"]


@dataclass
class GPTConfig:
    vocab_size: int = 65
    block_size: int = 64      # longest context, in tokens (number of learned positions)
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = False        # biases in Linear and LayerNorm layers
    tie_weights: bool = True  # output head shares the token-embedding matrix
    gelu: str = "tanh"        # GPT-2's tanh approximation of GELU; "none" for the exact erf form
    norm: str = "layernorm"   # "rmsnorm": the modern decoder's RMSNorm (Chapter 9)
    position: str = "learned"  # "rope": rotary position embeddings in the attention, no wpe
    mlp: str = "gelu"         # "swiglu": the gated MLP W_2 (silu(W u) * V u)
    rope_base: float = 10000.0  # RoPE's theta_i = rope_base^(-2i / hs)

    def __post_init__(self):
        check_config(self)


def check_config(config, sizes=("vocab_size", "block_size", "n_layer", "n_head", "n_embd")) -> None:
    """Refuse a config no model can be built from, naming its class and the field (rather than
    failing deep inside): the fields a Block reads, and the positive integers `sizes`. GPTConfig and
    Chapter 9's BERTConfig and T5Config all check themselves with it."""
    what = type(config).__name__
    for name in sizes:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{what}: {name} must be an integer >= 1, got {value!r}")
    if config.n_embd % config.n_head:
        raise ValueError(f"{what}: n_embd={config.n_embd} is not a multiple of n_head={config.n_head} "
                         "(each head gets n_embd / n_head of the width)")
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"{what}: dropout must be in [0, 1), got {config.dropout!r}")
    if config.gelu not in ("tanh", "none"):
        raise ValueError(f"{what}: gelu must be 'tanh' or 'none', got {config.gelu!r}")
    for name, choices in (("norm", ("layernorm", "rmsnorm")), ("position", ("learned", "rope")),
                          ("mlp", ("gelu", "swiglu"))):
        if getattr(config, name) not in choices:
            raise ValueError(f"{what}: {name} must be one of {choices}, got {getattr(config, name)!r}")
    if config.position == "rope" and (config.n_embd // config.n_head) % 2:
        raise ValueError(f"{what}: position='rope' rotates pairs of dimensions, so the head size "
                         f"n_embd / n_head = {config.n_embd // config.n_head} must be even")
    base = config.rope_base
    if isinstance(base, bool) or not isinstance(base, (int, float)) or not base > 0:
        raise ValueError(f"{what}: rope_base must be a number > 0, got {base!r}")


# Fields added after checkpoints were first written: a stored config without them has their defaults.
_LATER_FIELDS = {"norm", "position", "mlp", "rope_base"}


def norm_layer(config) -> Module:
    """The normalisation the config asks for: LayerNorm (GPT-2) or RMSNorm (the modern decoder)."""
    if config.norm == "rmsnorm":
        return RMSNorm(config.n_embd)
    return LayerNorm(config.n_embd, bias=config.bias)


def swiglu_hidden(n_embd: int, multiple_of: int = 8) -> int:
    """SwiGLU's hidden size: 2/3 of GELU's 4C (three matrices instead of two, the same weights),
    rounded up to a multiple of `multiple_of` (LLaMA's rule, which uses 256)."""
    hidden = int(2 * 4 * n_embd / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


def init_weights(model: Module, n_residual: int, dtype) -> None:
    """GPT-2's initialisation of every parameter of `model`, cast to `dtype`: weights ~ N(0, 0.02),
    biases 0, norm gains 1, and the projections into the residual stream (*c_proj.weight) ~ N(0,
    0.02 / sqrt(n_residual)), n_residual = the number of residual branches that add to one stream
    (2 n_layer in a GPT; module docstring)."""
    residual_std = 0.02 / math.sqrt(n_residual)
    for name, p in model.named_parameters():
        p.data = p.data.astype(dtype, copy=False)
        if name.endswith("c_proj.weight"):
            init.normal_(p, 0.0, residual_std)
        elif p.ndim == 2:                      # Linear and Embedding weights
            init.normal_(p, 0.0, 0.02)
        elif name.endswith("bias"):
            init.zeros_(p)                     # LayerNorm and RMSNorm weights stay 1


class MLP(Module):
    """The position-wise feed-forward sub-layer: W_2 GELU(W_1 u), 4C wide (GPT-2), or SwiGLU's
    W_2 (silu(W u) * V u) (config.mlp == "swiglu"), where c_fc holds W and V stacked, (2H, C)."""

    def __init__(self, config):
        super().__init__()
        self.swiglu = config.mlp == "swiglu"
        hidden = swiglu_hidden(config.n_embd) if self.swiglu else 4 * config.n_embd
        self.c_fc = Linear(config.n_embd, 2 * hidden if self.swiglu else hidden, bias=config.bias)
        if not self.swiglu:
            self.gelu = GELU(approximate=config.gelu)
        self.c_proj = Linear(hidden, config.n_embd, bias=config.bias)
        self.dropout = Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        u = self.c_fc(x)                                      # (B, T, H), or (B, T, 2H) for SwiGLU
        return self.dropout(self.c_proj(F.swiglu(u) if self.swiglu else self.gelu(u)))


class Block(Module):
    """One Transformer block: pre-LayerNorm residual sub-layers over the stream (B, T, C).

    causal=True: a decoder's block (GPT); causal=False: an encoder's (BERT). cross_attention=True adds
    the encoder-decoder's sub-layer (T5's decoder) that attends to the encoder's output `memory`.
    `config` is a GPTConfig or any object with its fields n_embd, n_head, dropout, bias, block_size
    (RoPE's table length), norm, position, rope_base, mlp and gelu. Parameter names: ln_1, attn.c_attn,
    attn.c_proj, [ln_cross, cross_attn.c_q, cross_attn.c_kv, cross_attn.c_proj,] ln_2, mlp.c_fc, mlp.c_proj."""

    def __init__(self, config, layer: int = 0, causal: bool = True, cross_attention: bool = False):
        super().__init__()
        self.ln_1 = norm_layer(config)
        self.attn = SelfAttention(config, layer, causal=causal)
        self.cross_attn = None
        if cross_attention:
            self.ln_cross = norm_layer(config)
            self.cross_attn = CrossAttention(config, layer)
        self.ln_2 = norm_layer(config)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, cache: KVCache | None = None, key_lengths=None, memory=None,
                memory_lengths=None) -> Tensor:
        """x (B, T, C) -> (B, T, C): each sub-layer reads the normalised stream and adds to it. The
        KV `cache` (Chapter 7's decoding; None in training) goes on to the attention, which reads and
        extends it; `key_lengths` (B,) are the real tokens of a padded batch (None: no padding).

        A block with cross-attention (Chapter 9) has a third sub-layer between the two, which reads
        the normalised stream and the encoder's output, x = x + cross_attn(ln_cross(x), memory,
        memory_lengths, cache); a GPT's blocks have none (self.cross_attn is None)."""
        # BEGIN SOLUTION 6.3: A pre-LayerNorm residual block (chapters/ch06_transformer.py §6.3)
        x = x + self.attn(self.ln_1(x), cache, key_lengths)
        if self.cross_attn is not None:
            x = x + self.cross_attn(self.ln_cross(x), memory, memory_lengths, cache)
        return x + self.mlp(self.ln_2(x))
        # END SOLUTION


class GPT(Module):
    """The decoder-only language model: embed -> hidden_states (blocks, final norm) -> head."""

    def __init__(self, config: GPTConfig, dtype=np.float32):
        super().__init__()
        self.config = config
        self.wte = Embedding(config.vocab_size, config.n_embd)
        if config.position == "learned":           # RoPE puts positions into the attention instead
            self.wpe = Embedding(config.block_size, config.n_embd)
        self.drop = Dropout(config.dropout)
        self.h = ModuleList(Block(config, i) for i in range(config.n_layer))
        self.ln_f = norm_layer(config)
        self.lm_head = Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.wte.weight  # one (V, C) matrix reads and writes tokens
        self._init_weights(dtype)

    def _init_weights(self, dtype) -> None:
        init_weights(self, 2 * self.config.n_layer, dtype)

    @classmethod
    def from_checkpoint(cls, path) -> tuple[GPT, dict]:
        """(model, metadata) from a file written by save_checkpoint (or by train): the model config
        stored in it builds the model, then load_checkpoint fills in the weights. A config saved
        before the modern-decoder fields existed gets their defaults (GPT-2's choices)."""
        meta, arrays = read_checkpoint(path)          # read once: the config, then the weights
        key = "model_config" if meta.get("model_config") is not None else "config"  # older files: "config"
        config = meta.get(key)
        weights = arrays.get("model/wte.weight")
        if weights is None:
            raise ValueError(f"{path} is not a checkpoint of a GPT: it has no token embedding "
                             f"(model/wte.weight)")
        fields = {f.name for f in dataclasses.fields(GPTConfig)}
        if not isinstance(config, dict) or not set(config) <= fields or not fields - set(config) <= _LATER_FIELDS:
            raise ValueError(f"{path}: its config is not a GPTConfig: {config!r}")
        try:
            config = GPTConfig(**config)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        meta = {**meta, key: dataclasses.asdict(config)}  # the later fields' defaults, for the check
        model = cls(config, dtype=weights.dtype)
        return model, load_checkpoint(path, model, contents=(meta, arrays))

    @property
    def block_size(self) -> int:
        return self.config.block_size

    def num_parameters(self, non_embedding: bool = True) -> int:
        """Parameter count; by default without the position embeddings (nanoGPT's convention: the tied
        token embedding counts, since it is also the output layer)."""
        n = sum(p.size for p in self.parameters())
        return n - self.wpe.weight.size if non_embedding and hasattr(self, "wpe") else n

    # -- the three steps ---------------------------------------------------------------------------

    def embed(self, idx, start: int = 0, prefix: Tensor | None = None) -> Tensor:
        """idx (B, T) ids at positions start .. start + T - 1 -> (B, T, C): token embeddings, plus the
        learned position embeddings (with RoPE the positions enter the attention instead), dropout.

        `prefix` (B, P, C): embeddings that go before the tokens (Chapter 10's soft prompt) -> (B, P + T, C),
        the prefix taking positions start .. start + P - 1 and the tokens the P positions after."""
        x = self.wte(idx)                                   # (B, T, C)
        if prefix is not None:
            x = F.concatenate([prefix, x], axis=1)          # (B, P + T, C)
        if hasattr(self, "wpe"):
            x = x + self.wpe(np.arange(start, start + x.shape[1]))  # + (T, C)
        return self.drop(x)

    def hidden_states(self, x: Tensor, cache: KVCache | None = None, key_lengths=None) -> Tensor:
        """The body: x (B, T, C) from embed -> (B, T, C), the blocks then the final norm. With a
        `cache`, x are the positions after the cached ones, and the cache is extended with them.
        key_lengths (B,): real tokens of a right-padded batch (a causal query never sees the padding
        after it, so only the padded positions' own outputs differ, which a loss ignores)."""
        for block in self.h:
            x = block(x, cache, key_lengths)
        if cache is not None:
            cache.length += x.shape[1]
        return self.ln_f(x)

    def head(self, h: Tensor) -> Tensor:
        """The language-model head: hidden states (B, T, C) -> logits (B, T, V)."""
        return self.lm_head(h)

    def forward(self, idx, targets=None, cache: KVCache | None = None):
        """idx (B, T) ids -> (logits (B, T, V) Tensor, mean cross-entropy in nats or None).

        `targets` (B, T) are the next ids (-1 = ignore that position). With a `cache`, idx are the
        positions after the cached ones, and the cache is extended with them."""
        idx = np.asarray(idx)
        if idx.ndim != 2 or idx.shape[1] == 0:
            hint = " (one sequence? add a batch axis: idx[None])" if idx.ndim == 1 else ""
            raise ValueError(f"GPT: idx must be token ids of shape (B, T) with T >= 1, got shape {idx.shape}"
                             + hint)
        if targets is not None and np.shape(targets) != idx.shape:
            raise ValueError(f"GPT: targets must have the shape of idx {idx.shape}, got {np.shape(targets)}")
        B, T = idx.shape
        start = 0 if cache is None else cache.length
        if start + T > self.config.block_size:
            raise ValueError(f"sequence of {start + T} tokens is longer than block_size "
                             f"{self.config.block_size}")
        logits = self.head(self.hidden_states(self.embed(idx, start), cache))  # (B, T, V)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.reshape(B * T, -1), np.asarray(targets).reshape(-1), ignore_index=-1)
        return logits, loss

    def new_cache(self, batch_size: int) -> KVCache:
        return KVCache(self.config, batch_size, self.wte.weight.dtype)

    def next_logits(self, idx, cache: KVCache | None = None) -> np.ndarray:
        """Logits (B, V) of the token after each row of idx (B, T) (Chapter 7's decoding interface).

        Without a cache the last block_size ids are the context; with one, idx are the new ids."""
        idx = np.asarray(idx)
        if cache is None:
            idx = idx[:, -self.config.block_size:]
        with no_grad():
            logits, _ = self(idx, cache=cache)
        return logits.data[:, -1]
