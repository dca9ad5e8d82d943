"""Attention, one op for every Transformer of the book (Chapters 6, 7 and 9): the op in three
layouts, the attention modules built on it, the KV cache, and recording weights for figures.

Each head mixes the values of the keys its query may see, weighted by how well they match:

    Attention(Q, K, V) = P V,   P = softmax_visible(s Q K^T),   s = 1 / sqrt(hs)
    Q (Tq, hs) from the queries' positions, K, V (Tk, hs) from the keys' positions

Which keys a query sees is always a prefix of the keys, j < hi (attention_kernels.py):

    kind                                   queries, keys               hi for query i
    causal self-attention (GPT, decoders)  the same sequence           min(L, i + Tk - Tq + 1)
    bidirectional self-attention (BERT)    the same sequence           L
    cross-attention (T5's decoder)         decoder, encoder (Tq != Tk) L

L is the number of real keys of the sequence: `key_lengths` (B,) ints in [0, Tk] for a padded batch
(each sequence's real tokens first, padding after: right padding), Tk without padding. Causal queries
are the last Tq of the Tk positions (Tq < Tk when the earlier keys come from a KV cache) -- PyTorch's
`is_causal=True` aligns them to the first instead, so with Tq != Tk compare with an explicit mask. A
query that sees no key (L = 0) gets weights 0, output 0 and gradient 0, not 0/0 = NaN (as PyTorch
2.13's scaled_dot_product_attention; a softmax over a row of -inf gives NaN): the row means "nothing
to attend to", and whatever reads that position (a padded query) is ignored by the loss anyway.

The op, in the three layouts the models need (all the same computation, `_attend` and
`_attend_backward`, one graph node each, the softmax fused in one Numba kernel forward and backward, and
the four products by the weights, P V, P^T dY, dS K, dS^T Q, over only the keys each query sees: one
Numba kernel for the whole batch of heads, attention_products.py):

    scaled_dot_product_attention(q, k, v, causal, key_lengths, dropout, scale)
        q (B, nh, Tq, hs), k, v (B, nh, Tk, hs) Tensors -> (B, nh, Tq, hs); PyTorch's function of the
        same name, with key_lengths for its boolean attn_mask.
    self_attention(qkv, n_head, causal, key_lengths, dropout, cache, layer, rope)
        packed qkv (B, T, 3C) = [q | k | v], heads side by side in each -> (B, T, C). The models' path:
        the gradients of q, k and v are written straight into one (B, T, 3C) array, and q, k, v are
        views of the input (no split, no copies).
    cross_attention(q, kv, n_head, key_lengths, dropout)
        q (B, Tq, C), packed kv (B, Tk, 2C) = [k | v] (a Tensor, or an array from the cache) -> (B, Tq, C).

`return_weights=True` makes each return (output, P), P (B, nh, Tq, Tk) the weights before dropout.
Dropout (training) zeroes weights of P with probability `dropout` (the mask from scratchlm.rng).
Chapter 6 builds attention up from `causal_softmax` (one head, exercises 6.1-6.2's kernels) and
`causal_self_attention_ref` (heads one at a time in Tensor ops); `causal_self_attention` is
self_attention with causal=True; `scaled_dot_product_attention_ref` is the op in Tensor ops.

Modules (config: any object with n_embd, n_head, dropout, bias, block_size, and for RoPE position
and rope_base; GPTConfig is one):

    SelfAttention(config, layer, causal=True)   c_attn (C -> 3C), c_proj (C -> C)
        forward(x (B, T, C), cache=None, key_lengths=None) -> (B, T, C)
        with config.position == "rope", q and k are rotated by their positions inside the op (F.rope's
        kernel; the cache keeps rotated keys)
    CrossAttention(config, layer)                c_q (C -> C), c_kv (C -> 2C), c_proj (C -> C)
        forward(x (B, Tq, C), memory (B, Tk, C), memory_lengths=None, cache=None) -> (B, Tq, C)

KVCache(config, batch_size) keeps, for decoding (Chapter 7), every layer's self-attention keys and
values, and the cross-attention keys and values of the encoder's output (`memory`), computed once per
source on the first decoding step (Chapter 9). `record_attention(model)` makes every attention module
keep its last weights for a figure (Chapters 6, 9).
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np

import scratchlm.autograd.functional as F
from scratchlm.autograd import Tensor, is_grad_enabled
from scratchlm.autograd import kernels as autograd_kernels
from scratchlm.models import attention_kernels as kernels
from scratchlm.models import attention_products as products
from scratchlm.nn import Dropout, Linear, Module
from scratchlm.rng import get_rng


# ---- the op, on arrays -------------------------------------------------------------------------

def _attend(q, k, v, scale, causal: bool, lengths: np.ndarray, dropout: float, out=None):
    """Forward on arrays (any strides): q (..., Tq, hs), k (..., Tk, hs), v (..., Tk, hv) ->
    (y (..., Tq, hv), P (..., Tq, Tk), dropout mask or None). `lengths` (N,) int64: real keys of
    each of the N = prod(...) matrices. y is written into `out` when given (any strides: the modules
    pass a (B, nh, Tq, hv) view of a (B, Tq, nh, hv) array, so that heads side by side need no copy)."""
    Tq, Tk = q.shape[-2], k.shape[-2]
    scores = products.scores_matmul(q, k)                                    # (..., Tq, Tk)
    att = np.empty_like(scores)
    kernels.attention_softmax_forward(scores.reshape(-1, Tq, Tk), scale, causal, lengths,
                                      att.reshape(-1, Tq, Tk))
    mask = None
    if dropout > 0:                                                          # inverted dropout on P
        mask = (get_rng().random(att.shape, dtype=att.dtype) >= dropout) * att.dtype.type(1 / (1 - dropout))
    y = products.visible_matmul(att if mask is None else att * mask, v, causal, lengths, out=out)  # (..., Tq, hv)
    return y, att, mask


def _attend_backward(dy, q, k, v, att, mask, scale, causal: bool, lengths: np.ndarray, dq, dk, dv) -> None:
    """Backward on arrays: writes dq, dk, dv (arrays of q's, k's, v's shapes, any strides; None for
    one not wanted) from dy = dL/dy."""
    Tq, Tk = att.shape[-2:]
    if dv is not None:                                                       # dV = P^T dY
        products.visible_matmul((att if mask is None else att * mask).swapaxes(-1, -2), dy, causal, lengths,
                                transposed=True, out=dv)
    if dq is None and dk is None:
        return
    datt = products.scores_matmul(dy, v)                                     # dP = dY V^T
    if mask is not None:
        datt *= mask
    dscores = np.empty_like(datt)                                            # dS, scale included
    kernels.attention_softmax_backward(att.reshape(-1, Tq, Tk), datt.reshape(-1, Tq, Tk), scale, causal,
                                       lengths, dscores.reshape(-1, Tq, Tk))
    if dq is not None:                                                       # dQ = dS K
        products.visible_matmul(dscores, k, causal, lengths, out=dq)
    if dk is not None:                                                       # dK = dS^T Q
        products.visible_matmul(dscores.swapaxes(-1, -2), q, causal, lengths, transposed=True, out=dk)


def _lengths(key_lengths, B: int, N: int, Tk: int, op: str) -> np.ndarray:
    """The (N,) int64 number of real keys of each of the N = B * heads matrices, from key_lengths (B,)
    (None: no padding), refusing lengths outside [0, Tk]."""
    if key_lengths is None:
        return np.full(N, Tk, np.int64)
    lengths = np.asarray(key_lengths.data if isinstance(key_lengths, Tensor) else key_lengths)
    if lengths.shape != (B,) or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(f"{op}: key_lengths must be B={B} integers (the real keys of each sequence), got "
                         f"shape {lengths.shape} dtype {lengths.dtype}")
    bad = (lengths < 0) | (lengths > Tk)
    if bad.any():
        b = int(np.argmax(bad))
        raise ValueError(f"{op}: key_lengths[{b}] = {lengths[b]} is outside [0, {Tk}] (there are Tk = {Tk} keys)")
    return np.repeat(lengths.astype(np.int64), N // B)


def _check_dropout(dropout: float, op: str) -> None:
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{op}: dropout must be in [0, 1), got {dropout!r}")


# ---- the op, as graph nodes ---------------------------------------------------------------------

def scaled_dot_product_attention(q, k, v, causal: bool = False, key_lengths=None, dropout: float = 0.0,
                                 scale: float | None = None, return_weights: bool = False):
    """softmax_visible(scale q k^T) v for q (B, ..., Tq, hs), k (B, ..., Tk, hs), v (B, ..., Tk, hv),
    -> (B, ..., Tq, hv); scale defaults to 1/sqrt(hs). The counterpart of PyTorch's
    scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal, scale), with the mask given
    as `causal` (queries = the last Tq positions) and `key_lengths` (B,) (keys j >= key_lengths[b] of
    batch row b are padding). Gradients flow to whichever of q, k, v are Tensors that require them."""
    q, k, v = (t if isinstance(t, Tensor) else Tensor(np.asarray(t)) for t in (q, k, v))
    op = "scaled_dot_product_attention"
    if (q.ndim < 3 or k.ndim != q.ndim or v.ndim != q.ndim or q.shape[:-2] != k.shape[:-2]
            or k.shape[:-1] != v.shape[:-1] or q.shape[-1] != k.shape[-1]):
        raise ValueError(f"{op}: need q (B, ..., Tq, hs), k (B, ..., Tk, hs), v (B, ..., Tk, hv) with the same "
                         f"leading axes; got q {q.shape}, k {k.shape}, v {v.shape}")
    if not (q.dtype == k.dtype == v.dtype) or not np.issubdtype(q.dtype, np.floating):
        raise TypeError(f"{op}: q, k, v must share one floating dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    _check_dropout(dropout, op)
    Tk = k.shape[-2]
    lengths = _lengths(key_lengths, q.shape[0], math.prod(q.shape[:-2]), Tk, op)
    scale = q.dtype.type(1.0 / math.sqrt(q.shape[-1]) if scale is None else scale)
    y, att, mask = _attend(q.data, k.data, v.data, scale, causal, lengths, dropout)

    def backward(g):
        dq, dk, dv = (np.empty(t.shape, t.dtype) if t.requires_grad else None for t in (q, k, v))
        _attend_backward(g, q.data, k.data, v.data, att, mask, scale, causal, lengths, dq, dk, dv)
        for t, d in ((q, dq), (k, dk), (v, dv)):
            if d is not None:
                t._accumulate(d, owned=True)
    out = Tensor._make(y, (q, k, v), backward, op)
    return (out, att) if return_weights else out


def _rotate(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """x (B, nh, T, hs) rotated by RoPE's angles (F.rope's kernel), into `out` (a new array if None)."""
    out = np.empty(x.shape, x.dtype) if out is None else out
    autograd_kernels.rope_forward(x, cos, sin, out)
    return out


def self_attention(qkv: Tensor, n_head: int, causal: bool = True, key_lengths=None, dropout: float = 0.0,
                   cache: KVCache | None = None, layer: int = 0, rope: tuple | None = None,
                   return_weights: bool = False):
    """Multi-head self-attention as one graph node: packed qkv (B, T, 3C) -> (B, T, C).

    The same as splitting qkv into heads and calling scaled_dot_product_attention (the tests check
    it), but q, k, v are views of qkv and their gradients are written straight into one (B, T, 3C)
    array instead of being zero-padded and summed. With a `cache` (inference, causal only) the keys
    and values of the earlier positions come from it, and these positions' are added to it (`layer`
    says whose). With `rope` = (cos, sin) (T, hs/2) of these T positions (F.rope_tables), q and k are
    rotated (RoPE) before the scores, and the cache keeps the rotated keys."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    hs = C // n_head
    if C3 != 3 * C or C != n_head * hs:
        raise ValueError(f"self_attention: qkv must be (B, T, 3C) with C a multiple of n_head={n_head}, got "
                         f"{qkv.shape}")
    _check_dropout(dropout, "self_attention")
    scale = qkv.dtype.type(1.0 / math.sqrt(hs))
    q, k, v = qkv.data.reshape(B, T, 3, n_head, hs).transpose(2, 0, 3, 1, 4)  # 3 x (B, nh, T, hs) views
    if rope is not None:
        cos, sin = (np.asarray(t, qkv.dtype) for t in rope)
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
    if cache is not None:
        if not causal:
            raise ValueError("self_attention: a KV cache is for causal (decoder) attention, one new position "
                             "at a time; bidirectional attention sees every position at once")
        if qkv.requires_grad and is_grad_enabled():
            raise RuntimeError("the KV cache is for inference: no gradient flows through it; use no_grad()")
        k, v = cache.extend(layer, k, v)                                     # (B, nh, Tk, hs)
    lengths = _lengths(key_lengths, B, B * n_head, k.shape[2], "self_attention")
    y = np.empty((B, T, n_head, hs), qkv.dtype)                              # heads side by side
    _, att, mask = _attend(q, k, v, scale, causal, lengths, dropout, y.transpose(0, 2, 1, 3))

    def backward(g):  # g: (B, T, C) -> dq, dk, dv written into their thirds of one array
        dy = g.reshape(B, T, n_head, hs).transpose(0, 2, 1, 3)              # (B, nh, T, hs)
        dqkv = np.empty((B, T, 3, n_head, hs), qkv.dtype)
        dq, dk, dv = dqkv.transpose(2, 0, 3, 1, 4)                          # views, like q, k, v
        if rope is None:
            _attend_backward(dy, q, k, v, att, mask, scale, causal, lengths, dq, dk, dv)
        else:                           # gradients of the rotated q, k, then rotated back (by -angle)
            dq_rot, dk_rot = np.empty_like(q), np.empty_like(k)
            _attend_backward(dy, q, k, v, att, mask, scale, causal, lengths, dq_rot, dk_rot, dv)
            _rotate(dq_rot, cos, -sin, dq)
            _rotate(dk_rot, cos, -sin, dk)
        qkv._accumulate(dqkv.reshape(B, T, C3), owned=True)
    out = Tensor._make(y.reshape(B, T, C), (qkv,), backward, "self_attention")
    return (out, att) if return_weights else out


def cross_attention(q: Tensor, kv, n_head: int, key_lengths=None, dropout: float = 0.0,
                    return_weights: bool = False):
    """Multi-head cross-attention as one graph node: queries q (B, Tq, C) of the decoder attend to the
    packed keys and values kv (B, Tk, 2C) = [k | v] of the encoder's output -> (B, Tq, C). No mask but
    the source's padding (key_lengths (B,)): every query sees the whole source. kv may be a Tensor or
    a constant array (the encoder's keys and values cached for decoding)."""
    kv = kv if isinstance(kv, Tensor) else Tensor(np.asarray(kv))
    B, Tq, C = q.shape
    hs = C // n_head
    if q.ndim != 3 or kv.ndim != 3 or kv.shape[0] != B or kv.shape[2] != 2 * C or C != n_head * hs:
        raise ValueError(f"cross_attention: need q (B, Tq, C) and kv (B, Tk, 2C) with C a multiple of "
                         f"n_head={n_head}; got q {q.shape}, kv {kv.shape}")
    if q.dtype != kv.dtype:
        raise TypeError(f"cross_attention: q and kv must share one dtype, got {q.dtype} and {kv.dtype}")
    _check_dropout(dropout, "cross_attention")
    Tk = kv.shape[1]
    scale = q.dtype.type(1.0 / math.sqrt(hs))
    qh = q.data.reshape(B, Tq, n_head, hs).transpose(0, 2, 1, 3)            # (B, nh, Tq, hs) view
    k, v = kv.data.reshape(B, Tk, 2, n_head, hs).transpose(2, 0, 3, 1, 4)   # 2 x (B, nh, Tk, hs) views
    lengths = _lengths(key_lengths, B, B * n_head, Tk, "cross_attention")
    y = np.empty((B, Tq, n_head, hs), q.dtype)                               # heads side by side
    _, att, mask = _attend(qh, k, v, scale, False, lengths, dropout, y.transpose(0, 2, 1, 3))

    def backward(g):
        dy = g.reshape(B, Tq, n_head, hs).transpose(0, 2, 1, 3)
        dq = np.empty((B, Tq, n_head, hs), q.dtype) if q.requires_grad else None
        dkv = np.empty((B, Tk, 2, n_head, hs), q.dtype) if kv.requires_grad else None
        dk, dv = dkv.transpose(2, 0, 3, 1, 4) if dkv is not None else (None, None)
        _attend_backward(dy, qh, k, v, att, mask, scale, False, lengths,
                         None if dq is None else dq.transpose(0, 2, 1, 3), dk, dv)
        if dq is not None:
            q._accumulate(dq.reshape(B, Tq, C), owned=True)
        if dkv is not None:
            kv._accumulate(dkv.reshape(B, Tk, 2 * C), owned=True)
    out = Tensor._make(y.reshape(B, Tq, C), (q, kv), backward, "cross_attention")
    return (out, att) if return_weights else out


# ---- Chapter 6's pieces: the causal softmax alone, and heads one at a time -----------------------

def causal_softmax(scores: Tensor, scale: float) -> Tensor:
    """Attention weights softmax(scale * scores) over the keys each query may see; (..., Tq, Tk).

    With Tq < Tk the queries are the last Tq positions (the earlier keys came from a KV cache). Runs
    exercise 6.1's kernel forward and 6.2's backward."""
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
                          layer: int = 0, return_weights: bool = False):
    """Causal multi-head self-attention of packed qkv (B, T, 3C) -> (B, T, C): Chapter 6's name for
    self_attention(qkv, n_head, causal=True, ...)."""
    return self_attention(qkv, n_head, True, None, dropout, cache, layer, None, return_weights)


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


def scaled_dot_product_attention_ref(q: Tensor, k: Tensor, v: Tensor, causal: bool = False,
                                     key_lengths=None, scale: float | None = None) -> Tensor:
    """Tensor-op twin of `scaled_dot_product_attention` (no dropout): scores, a -inf mask, F.softmax,
    and weights 0 on rows that see no key, as the op defines them."""
    Tq, Tk = q.shape[-2], k.shape[-2]
    lengths = _lengths(key_lengths, q.shape[0], math.prod(q.shape[:-2]), Tk, "scaled_dot_product_attention_ref")
    visible = kernels.attention_mask(Tq, Tk, causal, lengths).reshape(*q.shape[:-2], Tq, Tk)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    axes = list(range(k.ndim))
    axes[-2:] = axes[-1], axes[-2]
    scores = (q @ k.transpose(*axes)) * scale                                # (..., Tq, Tk)
    # a row with no visible key would be softmax of all -inf (NaN): give it finite scores, then weight 0
    anything = visible.any(axis=-1, keepdims=True)
    P = F.softmax(F.masked_fill(scores, ~visible & anything, -np.inf))
    return F.where(visible, P, 0.0) @ v


# ---- the modules --------------------------------------------------------------------------------

class SelfAttention(Module):
    """Multi-head self-attention of the stream x (B, T, C): causal (a decoder) or bidirectional (an
    encoder), optionally over a padded batch (key_lengths) and with rotary positions (RoPE)."""

    record_weights = False  # set by record_attention(): keep the weights P of the last forward pass
    last_weights = None     # (B, n_head, T_query, T_key) when recorded

    def __init__(self, config, layer: int = 0, causal: bool = True):
        super().__init__()
        self.n_head, self.layer, self.causal, self.attn_dropout = config.n_head, layer, causal, config.dropout
        self.c_attn = Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v of all heads
        self.c_proj = Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = Dropout(config.dropout)
        # RoPE: cos and sin of every position's angles, (block_size, hs/2) float64, shared by the layers
        self.rope = (_rope_tables(config.block_size, config.n_embd // config.n_head, config.rope_base)
                     if getattr(config, "position", "learned") == "rope" else None)

    def forward(self, x: Tensor, cache: KVCache | None = None, key_lengths=None) -> Tensor:
        """x (B, T, C) -> (B, T, C). With a `cache` the T positions come after the cached ones (their
        keys and values are added to it); key_lengths (B,): real tokens of each padded sequence."""
        p = self.attn_dropout if self.training else 0.0
        rope = None
        if self.rope is not None:
            start, T = (0 if cache is None else cache.length), x.shape[1]
            rope = (self.rope[0][start:start + T], self.rope[1][start:start + T])  # (T, hs/2) each
        y = self_attention(self.c_attn(x), self.n_head, self.causal, key_lengths, p, cache, self.layer, rope,
                           return_weights=self.record_weights)                    # (B, T, C)
        if self.record_weights:
            y, self.last_weights = y                                              # (y, P)
        return self.resid_dropout(self.c_proj(y))

    def extra_repr(self) -> str:
        return f"n_head={self.n_head}, causal={self.causal}, rope={self.rope is not None}"


class CrossAttention(Module):
    """Multi-head cross-attention: the decoder's stream x (B, Tq, C) queries the encoder's output
    `memory` (B, Tk, C), whose keys and values are projected once per source (and cached when
    decoding)."""

    record_weights = False
    last_weights = None     # (B, n_head, T_query, T_source) when recorded

    def __init__(self, config, layer: int = 0):
        super().__init__()
        self.n_head, self.layer, self.attn_dropout = config.n_head, layer, config.dropout
        self.c_q = Linear(config.n_embd, config.n_embd, bias=config.bias)        # queries from the decoder
        self.c_kv = Linear(config.n_embd, 2 * config.n_embd, bias=config.bias)   # keys, values from memory
        self.c_proj = Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = Dropout(config.dropout)

    def forward(self, x: Tensor, memory=None, memory_lengths=None, cache: KVCache | None = None) -> Tensor:
        """x (B, Tq, C), memory (B, Tk, C) -> (B, Tq, C); memory_lengths (B,): real source tokens. With
        a `cache`, the first call computes memory's keys and values and keeps them (with
        memory_lengths); later calls read them, and need no memory."""
        p = self.attn_dropout if self.training else 0.0
        if cache is not None:
            kv, memory_lengths = cache.cross(self.layer, lambda: self._project_memory(memory, memory_lengths))
        else:
            kv = self._project_memory(memory, memory_lengths)[0]
        y = cross_attention(self.c_q(x), kv, self.n_head, memory_lengths, p, return_weights=self.record_weights)
        if self.record_weights:
            y, self.last_weights = y
        return self.resid_dropout(self.c_proj(y))

    def _project_memory(self, memory, memory_lengths):
        if memory is None:
            raise ValueError("CrossAttention: no memory (the encoder's output) to attend to: pass memory=, "
                             "or a cache whose first decoding step was given it")
        return self.c_kv(memory), memory_lengths                                  # (B, Tk, 2C)

    def extra_repr(self) -> str:
        return f"n_head={self.n_head}"


_ROPE_TABLES: dict = {}


def _rope_tables(T: int, hs: int, base: float) -> tuple[np.ndarray, np.ndarray]:
    """F.rope_tables(T, hs, base), computed once per (T, hs, base) and shared (read-only)."""
    key = (T, hs, float(base))
    if key not in _ROPE_TABLES:
        tables = F.rope_tables(T, hs, base)
        for t in tables:
            t.flags.writeable = False
        _ROPE_TABLES[key] = tables
    return _ROPE_TABLES[key]


# ---- the KV cache -------------------------------------------------------------------------------

class KVCache:
    """Keys and values of the positions processed so far, for every layer (Chapter 7), and the
    cross-attention keys and values of the source (Chapter 9's encoder-decoder).

    Buffers of shape (n_layer, B, n_head, block_size, hs) are filled left to right; `length` is the
    number of positions already in them. `config` is any object with n_layer, n_head, n_embd and
    block_size (a GPTConfig, or an encoder-decoder's decoder config). Inference only: no gradient
    flows through the cache."""

    def __init__(self, config, batch_size: int, dtype=np.float32):
        hs = config.n_embd // config.n_head
        shape = (config.n_layer, batch_size, config.n_head, config.block_size, hs)
        self.k, self.v = np.zeros(shape, dtype), np.zeros(shape, dtype)
        self.length = 0
        self.memory = [None] * config.n_layer   # per layer: (kv (B, Tk, 2C) array, memory_lengths or None)

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

    def cross(self, layer: int, compute) -> tuple[np.ndarray, np.ndarray | None]:
        """(kv (B, Tk, 2C), memory_lengths) of `layer`'s cross-attention: `compute()` -> (kv Tensor or
        array, memory_lengths) runs on the first call only (the source does not change while decoding)."""
        if self.memory[layer] is None:
            kv, lengths = compute()
            kv = kv.data if isinstance(kv, Tensor) else np.asarray(kv)
            self.memory[layer] = (kv, None if lengths is None else np.asarray(lengths))
        return self.memory[layer]

    def reorder(self, rows: np.ndarray) -> None:
        """Keep batch rows `rows` (in that order, repeats allowed): beam search follows its beams."""
        self.k, self.v = self.k[:, rows], self.v[:, rows]
        self.memory = [None if m is None else (m[0][rows], None if m[1] is None else m[1][rows])
                       for m in self.memory]


# ---- recording the weights ----------------------------------------------------------------------

@contextmanager
def record_attention(model: Module):
    """Within the block, every attention module of `model` keeps the weights of its last forward
    pass in `.last_weights`, (B, n_head, T_query, T_key). Yields those modules, in model order.

    A module takes part when it has a `record_weights` flag (False by default, so training keeps
    nothing and pays nothing) and, while it is set, stores its weights in `last_weights`: the causal
    and bidirectional SelfAttention and the CrossAttention all do (Chapters 6, 9). The weights stay
    readable after the block; the flags go back to what they were.

        with no_grad(), record_attention(model) as attention:   # the attention modules, layer by layer
            model(idx)
        P = attention[0].last_weights                            # (B, n_head, T, T) of the first layer
    """
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
