"""A GPT-style decoder-only Transformer language model (Chapter 6; decoded in Chapter 7).

The model reads ids x_1..x_T and predicts every next id at once:

    h_0 = E[x_t] + P[t]                                  token + learned position embeddings
    h   = h + Attention(LayerNorm(h))                    pre-LayerNorm residual blocks, n_layer times
    h   = h + MLP(LayerNorm(h))                          MLP(u) = W_2 GELU(W_1 u), 4C wide
    p(x_{t+1} | x_<=t) = softmax(LayerNorm(h_t) E^T)     output head tied to the token embedding

Causal multi-head self-attention splits C = n_embd into n_head heads of size hs = C / n_head; each
head mixes the values of the positions it may see, weighted by how well their keys match its query:

    Attention_head(u) = softmax_causal(Q K^T / sqrt(hs)) V,   Q, K, V = u W_q, u W_k, u W_v

and the heads' outputs are concatenated and projected back to C. The causal softmax (mask, scale,
normalise) is one fused Numba kernel, forward and backward (`attention_kernels.py`), and the whole
of attention is one graph node around it and two batched matrix products (four in the backward)
(`causal_self_attention`, the counterpart of PyTorch's scaled_dot_product_attention), with its
backward pass written out. GELU is GPT-2's tanh approximation unless the config asks for the
exact erf form (nanoGPT's choice); both are in scratchlm.autograd.functional.gelu.

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

Any module with a `record_weights` flag takes part, so the encoder's bidirectional attention and the
decoder's cross attention of later chapters record the same way. Outside the block nothing is kept.
"""

from __future__ import annotations

import dataclasses
import math
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

import scratchlm.autograd.functional as F
from scratchlm.autograd import Tensor, is_grad_enabled, no_grad
from scratchlm.checkpoint import load_checkpoint, read_checkpoint
from scratchlm.models import attention_kernels as kernels
from scratchlm.nn import GELU, Dropout, Embedding, LayerNorm, Linear, Module, ModuleList, init
from scratchlm.rng import get_rng


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

    def __post_init__(self):
        """Refuse a config no model can be built from, naming the field (rather than failing deep inside)."""
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"GPTConfig: {name} must be an integer >= 1, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig: n_embd={self.n_embd} is not a multiple of n_head={self.n_head} "
                             "(each head gets n_embd / n_head of the width)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig: dropout must be in [0, 1), got {self.dropout!r}")
        if self.gelu not in ("tanh", "none"):
            raise ValueError(f"GPTConfig: gelu must be 'tanh' or 'none', got {self.gelu!r}")


def causal_softmax(scores: Tensor, scale: float) -> Tensor:
    """Attention weights softmax(scale * scores) over the keys each query may see; (..., Tq, Tk).

    With Tq < Tk the queries are the last Tq positions (the earlier keys came from a KV cache)."""
    shape, scale = scores.shape, scores.dtype.type(scale)  # the kernels compute in the scores' dtype
    s = np.ascontiguousarray(scores.data).reshape(-1, *shape[-2:])  # (B * nh, Tq, Tk)
    probs = np.empty_like(s)
    kernels.causal_softmax_forward(s, scale, probs)

    def backward(g):  # the softmax's Jacobian-vector product; future entries get 0
        ds = np.empty_like(probs)
        kernels.causal_softmax_backward(probs, np.ascontiguousarray(g).reshape(probs.shape), scale, ds)
        scores._accumulate(ds.reshape(shape), owned=True)
    return Tensor._make(probs.reshape(shape), (scores,), backward, "causal_softmax")


def causal_self_attention(qkv: Tensor, n_head: int, dropout: float = 0.0, cache: KVCache | None = None,
                          layer: int = 0, return_weights: bool = False) -> Tensor | tuple[Tensor, np.ndarray]:
    """Multi-head causal self-attention as one graph node: packed (B, T, 3C) -> (B, T, C).

    The same as splitting qkv into heads and writing dropout(causal_softmax(q @ k^T, 1/sqrt(hs))) @ v
    in Tensor ops (Chapter 6 does that, and the tests check the two agree), but the gradients of q,
    k and v are written straight into one (B, T, 3C) array instead of being zero-padded and summed,
    and no intermediate Tensor is kept. `dropout` zeroes attention weights with that probability
    (training only; the mask comes from scratchlm.rng). With a `cache` (inference) the keys and
    values of the earlier positions come from it, and these positions' are added to it. With
    `return_weights` it returns (output, P) where P (B, nh, T, Tk) are the attention weights before
    dropout (the array the op computes anyway: recording them costs nothing)."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    hs = C // n_head
    scale = qkv.dtype.type(1.0 / math.sqrt(hs))
    q, k, v = qkv.data.reshape(B, T, 3, n_head, hs).transpose(2, 0, 3, 1, 4)  # 3 x (B, nh, T, hs) views
    if cache is not None:
        if qkv.requires_grad and is_grad_enabled():
            raise RuntimeError("the KV cache is for inference: no gradient flows through it; use no_grad()")
        k, v = cache.extend(layer, k, v)                                     # (B, nh, Tk, hs)
    Tk = k.shape[2]
    scores = q @ k.swapaxes(-1, -2)                                          # (B, nh, T, Tk)
    att = np.empty_like(scores)
    kernels.causal_softmax_forward(scores.reshape(-1, T, Tk), scale, att.reshape(-1, T, Tk))
    mask = None
    if dropout > 0:                                                          # inverted dropout on P
        mask = (get_rng().random(att.shape, dtype=att.dtype) >= dropout) * att.dtype.type(1 / (1 - dropout))
    y = (att if mask is None else att * mask) @ v                            # (B, nh, T, hs)

    def backward(g):  # g: (B, T, C) -> dq, dk, dv written into their thirds of one array
        dy = g.reshape(B, T, n_head, hs).transpose(0, 2, 1, 3)              # (B, nh, T, hs)
        dqkv = np.empty((B, T, 3, n_head, hs), qkv.dtype)
        dq, dk, dv = dqkv.transpose(2, 0, 3, 1, 4)                          # views, like q, k, v
        np.matmul((att if mask is None else att * mask).swapaxes(-1, -2), dy, out=dv)  # dV = P^T dY
        datt = dy @ v.swapaxes(-1, -2)                                       # dP = dY V^T
        if mask is not None:
            datt *= mask
        dscores = np.empty_like(datt)                                        # dS, scale included
        kernels.causal_softmax_backward(att.reshape(-1, T, T), datt.reshape(-1, T, T), scale,
                                        dscores.reshape(-1, T, T))
        np.matmul(dscores, k, out=dq)                                        # dQ = dS K
        np.matmul(dscores.swapaxes(-1, -2), q, out=dk)                       # dK = dS^T Q
        qkv._accumulate(dqkv.reshape(B, T, C3), owned=True)
    out = Tensor._make(y.transpose(0, 2, 1, 3).reshape(B, T, C), (qkv,), backward, "causal_self_attention")
    return (out, att) if return_weights else out


def causal_self_attention_ref(qkv: Tensor, n_head: int) -> Tensor:
    """Tensor-op twin of `causal_self_attention` (no dropout, no cache): one head at a time, the
    way Chapter 6 builds it; the tests check that the fused op matches it, gradients included."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    hs = C // n_head
    heads = []
    for h in range(n_head):
        q, k, v = (qkv[:, :, i * C + h * hs: i * C + (h + 1) * hs] for i in range(3))  # (B, T, hs) each
        att = causal_softmax(q @ k.transpose(0, 2, 1), 1.0 / math.sqrt(hs))          # (B, T, T)
        heads.append(att @ v)                                                        # (B, T, hs)
    return F.concatenate(heads, axis=-1)                                             # (B, T, C)


class KVCache:
    """Keys and values of the positions processed so far, for every layer (Chapter 7).

    Buffers of shape (n_layer, B, n_head, block_size, hs) are filled left to right; `length` is the
    number of positions already in them. Inference only: no gradient flows through the cache."""

    def __init__(self, config: GPTConfig, batch_size: int, dtype=np.float32):
        hs = config.n_embd // config.n_head
        shape = (config.n_layer, batch_size, config.n_head, config.block_size, hs)
        self.k, self.v = np.zeros(shape, dtype), np.zeros(shape, dtype)
        self.length = 0

    def extend(self, layer: int, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Write the new positions' k, v (B, nh, T, hs) of `layer` after the `length` cached ones; return
        all keys and values so far, (B, nh, length + T, hs) each. `length` itself is advanced by the
        caller (GPT.forward), once every layer has written its share."""
        # BEGIN SOLUTION 7.2: Extending the KV cache (chapters/ch07_decoding.py §7.7)
        end = self.length + k.shape[2]
        self.k[layer, :, :, self.length:end] = k
        self.v[layer, :, :, self.length:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]
        # END SOLUTION

    def reorder(self, rows: np.ndarray) -> None:
        """Keep batch rows `rows` (in that order, repeats allowed): beam search follows its beams."""
        self.k, self.v = self.k[:, rows], self.v[:, rows]


@contextmanager
def record_attention(model: Module):
    """Within the block, every attention module of `model` keeps the weights of its last forward
    pass in `.last_weights`, (B, n_head, T_query, T_key). Yields those modules, in model order.

    A module takes part when it has a `record_weights` flag (False by default, so training keeps
    nothing and pays nothing) and, while it is set, stores its weights in `last_weights`. Chapter 6
    draws the GPT's; the bidirectional and cross attention of later chapters follow the same rule.
    The weights stay readable after the block; the flags go back to what they were."""
    modules = [m for m in model.modules() if hasattr(m, "record_weights")]
    if not modules:
        raise ValueError(f"record_attention: {type(model).__name__} has no attention module that can "
                         "record its weights (one with a `record_weights` flag)")
    before = [m.record_weights for m in modules]
    for m in modules:
        m.record_weights, m.last_weights = True, None
    try:
        yield modules
    finally:
        for m, flag in zip(modules, before):
            m.record_weights = flag


class CausalSelfAttention(Module):
    record_weights = False  # set by record_attention(): keep the weights P of the last forward pass
    last_weights = None     # (B, n_head, T_query, T_key) when recorded

    def __init__(self, config: GPTConfig, layer: int):
        super().__init__()
        self.n_head, self.layer, self.attn_dropout = config.n_head, layer, config.dropout
        self.c_attn = Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v of all heads
        self.c_proj = Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = Dropout(config.dropout)

    def forward(self, x: Tensor, cache: KVCache | None = None) -> Tensor:
        p = self.attn_dropout if self.training else 0.0
        y = causal_self_attention(self.c_attn(x), self.n_head, p, cache, self.layer,
                                  return_weights=self.record_weights)                    # (B, T, C)
        if self.record_weights:
            y, self.last_weights = y                                                     # (y, P)
        return self.resid_dropout(self.c_proj(y))


class MLP(Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = GELU(approximate=config.gelu)
        self.c_proj = Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(Module):
    def __init__(self, config: GPTConfig, layer: int):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config, layer)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, cache: KVCache | None = None) -> Tensor:
        """x (B, T, C) -> (B, T, C): each sub-layer reads the normalised stream and adds to it. The
        KV `cache` (Chapter 7's decoding; None in training) goes on to the attention, which reads and
        extends it."""
        # BEGIN SOLUTION 6.3: A pre-LayerNorm residual block (chapters/ch06_transformer.py §6.3)
        x = x + self.attn(self.ln_1(x), cache)
        return x + self.mlp(self.ln_2(x))
        # END SOLUTION


class GPT(Module):
    def __init__(self, config: GPTConfig, dtype=np.float32):
        super().__init__()
        self.config = config
        self.wte = Embedding(config.vocab_size, config.n_embd)
        self.wpe = Embedding(config.block_size, config.n_embd)
        self.drop = Dropout(config.dropout)
        self.h = ModuleList(Block(config, i) for i in range(config.n_layer))
        self.ln_f = LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.wte.weight  # one (V, C) matrix reads and writes tokens
        self._init_weights(dtype)

    def _init_weights(self, dtype) -> None:
        residual_std = 0.02 / math.sqrt(2 * self.config.n_layer)
        for name, p in self.named_parameters():
            p.data = p.data.astype(dtype, copy=False)
            if name.endswith("c_proj.weight"):
                init.normal_(p, 0.0, residual_std)
            elif p.ndim == 2:                      # Linear and Embedding weights
                init.normal_(p, 0.0, 0.02)
            elif name.endswith("bias"):
                init.zeros_(p)                     # LayerNorm weights stay 1

    @classmethod
    def from_checkpoint(cls, path) -> tuple[GPT, dict]:
        """(model, metadata) from a file written by save_checkpoint (or by train): the model config
        stored in it builds the model, then load_checkpoint fills in the weights."""
        meta, arrays = read_checkpoint(path)          # read once: the config, then the weights
        config = meta.get("model_config") or meta.get("config")  # files from before model_config: "config"
        weights = arrays.get("model/wte.weight")
        if weights is None:
            raise ValueError(f"{path} is not a checkpoint of a GPT: it has no token embedding "
                             f"(model/wte.weight)")
        if not isinstance(config, dict) or set(config) != {f.name for f in dataclasses.fields(GPTConfig)}:
            raise ValueError(f"{path}: its config is not a GPTConfig: {config!r}")
        try:
            config = GPTConfig(**config)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        model = cls(config, dtype=weights.dtype)
        return model, load_checkpoint(path, model, contents=(meta, arrays))

    @property
    def block_size(self) -> int:
        return self.config.block_size

    def num_parameters(self, non_embedding: bool = True) -> int:
        """Parameter count; by default without the position embeddings (nanoGPT's convention: the tied
        token embedding counts, since it is also the output layer)."""
        n = sum(p.size for p in self.parameters())
        return n - self.wpe.weight.size if non_embedding else n

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
        pos = np.arange(start, start + T)
        x = self.drop(self.wte(idx) + self.wpe(pos))  # (B, T, C) + (T, C)
        for block in self.h:
            x = block(x, cache)
        if cache is not None:
            cache.length += T
        logits = self.lm_head(self.ln_f(x))           # (B, T, V)
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
