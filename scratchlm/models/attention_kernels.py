"""Fused softmax for attention (Chapters 6 and 9), as Numba kernels with NumPy twins.

Attention turns the scores S = Q K^T (one (Tq, Tk) matrix per batch row and head) into weights with
a softmax over the keys each query may see. Causal attention (Chapter 6) only sees the past. Query i
sits at absolute position i + (Tk - Tq) (Tq < Tk when earlier keys come from a KV cache, Chapter 7),
so key j is visible when j <= i + Tk - Tq:

    P[i, j] = exp(s * S[i, j] - m_i) / sum_{j' <= i + Tk - Tq} exp(s * S[i, j'] - m_i)   (visible j)
    P[i, j] = 0                                                                      (future j)

with s = 1/sqrt(head_size) and m_i the maximum of s * S[i, j] over the visible j (for
stability). Masking, scaling and normalising in one kernel call means no masked or -inf filled
copy of the (B, nh, T, T) scores and no separate array of exponentials (they are written into
`out` and normalised in place), and the future half of every row is never read. The backward
pass is the softmax Jacobian-vector product, restricted to the visible keys:

    dS[i, j] = s * P[i, j] * (dP[i, j] - sum_j' dP[i, j'] P[i, j'])

`causal_softmax_forward/backward` are exactly that (and exercises 6.1, 6.2). Their general sibling,
`attention_softmax_forward/backward` (Chapter 9), serves every attention of the library: the keys a
query sees are always a prefix j < hi of the keys,

    hi = min(L_n, i + Tk - Tq + 1)   causal                  (a decoder's self-attention)
    hi = L_n                         not causal              (an encoder's self-attention, cross-attention)

where L_n (`key_lengths[n]`, 0 <= L_n <= Tk) is the number of real keys of matrix n: a padded batch
puts each sequence's L real tokens first and padding after (right padding), and padding is never
attended to. A row with hi <= 0 (a sequence of no real key) gets weights 0, not 0/0 = NaN.

The kernels compile with numerics.FAST (reassoc, contract): LLVM may vectorise and regroup their own
sums (`total`), and the last additions of the numerics row helpers inlined into them (row_max,
row_dot, whose 8-lane loops keep their fixed order); the same compiled kernel always gives the same bits.

Kernels take (N, Tq, Tk) C-contiguous arrays (callers fold batch and head axes into N) and a
positive scale in the arrays' dtype, and write into an output array passed last, as the autograd
kernels do (scratchlm/autograd/kernels.py). Each `*_ref` twin has the same signature and is what the
tests compare with.

Writing one (exercises 6.1, 6.2): Numba compiles plain Python loops over array elements; take
softmax_forward in scratchlm/autograd/kernels.py as the model. Make constants in the array's dtype
(`scores.dtype.type(0.0)`), so that float32 stays float32; reduce one row at a time with the helpers
of scratchlm/numerics.py (`numerics.row_max`, `numerics.row_dot`, `numerics.exp`) on a 1-D slice such
as `scores[n, i, :visible]`; write every entry of `out`, the future ones as 0. The first call
compiles (a second or two); later calls run from the cache.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from scratchlm import numerics
from scratchlm.numerics import FAST

# One thread: a (B * nh, T, T) score tensor is a fraction of a millisecond of work, less than the
# cost of waking a thread pool on a busy machine.


@njit(cache=True, fastmath=FAST)
def causal_softmax_forward(scores, scale, out):
    """out (N, Tq, Tk) = causal attention weights of scores (N, Tq, Tk); zero above the diagonal.

    What Numba accepts inside @njit: loops, indexing, slices, arithmetic, math.* and NumPy on whole
    arrays (`row.max()`, `np.exp(row)`, `row.sum()`), but not max or min along an axis:
    `scores.max(axis=-1, keepdims=True)` or `np.max(s, axis=1)` fails with a long TypingError. So
    loop over (n, i) and reduce the 1-D row `scores[n, i, :visible]`, e.g. with numerics.row_max.
    """
    # BEGIN SOLUTION 6.1: Causal softmax of attention scores (chapters/ch06_transformer.py §6.1)
    N, Tq, Tk = scores.shape
    offset = Tk - Tq
    for n in range(N):
        for i in range(Tq):
            visible = i + offset + 1
            row, p = scores[n, i, :visible], out[n, i]
            shift = numerics.row_max(row) * scale  # scale > 0, so max(s * S) = s * max(S)
            total = scores.dtype.type(0.0)
            for j in range(visible):
                p[j] = numerics.exp(row[j] * scale - shift)
                total += p[j]
            inv = scores.dtype.type(1.0) / total
            for j in range(visible):
                p[j] *= inv
            p[visible:] = 0.0
    # END SOLUTION


@njit(cache=True, fastmath=FAST)
def causal_softmax_backward(probs, grad_probs, scale, out):
    """out (N, Tq, Tk) = dL/dscores from the weights P and dL/dP (both (N, Tq, Tk))."""
    # BEGIN SOLUTION 6.2: Backward of the causal softmax (chapters/ch06_transformer.py §6.1)
    N, Tq, Tk = probs.shape
    offset = Tk - Tq
    for n in range(N):
        for i in range(Tq):
            visible = i + offset + 1
            p, g, d = probs[n, i], grad_probs[n, i], out[n, i]
            dot = numerics.row_dot(g[:visible], p[:visible])
            for j in range(visible):
                d[j] = scale * p[j] * (g[j] - dot)
            d[visible:] = 0.0
    # END SOLUTION


def causal_mask(Tq: int, Tk: int) -> np.ndarray:
    """(Tq, Tk) boolean mask, True where query i may attend to key j (j <= i + Tk - Tq)."""
    return np.tri(Tq, Tk, k=Tk - Tq, dtype=bool)


def causal_softmax_forward_ref(scores, scale, out):
    """NumPy twin of `causal_softmax_forward`: mask with -inf, then a stable softmax."""
    Tq, Tk = scores.shape[-2:]
    z = np.where(causal_mask(Tq, Tk), scores * scale, -np.inf)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    out[...] = z / z.sum(axis=-1, keepdims=True)


def causal_softmax_backward_ref(probs, grad_probs, scale, out):
    """NumPy twin of `causal_softmax_backward` (future entries of P are 0, so they get 0)."""
    out[...] = scale * probs * (grad_probs - (grad_probs * probs).sum(axis=-1, keepdims=True))


# ---- the general sibling: causal or not, padded or not (Chapter 9) ------------------------------
# The same loops as the causal kernels above, with the visible prefix hi computed per row; for a
# causal, unpadded batch they give the same bits.

@njit(cache=True, inline="always")
def _visible_keys(i, length, offset, causal):
    """hi: query i, at position i + offset among the keys, of a matrix with `length` real keys sees the
    keys j < hi (none when hi <= 0). The softmax kernels below and attention_products.py's kernel."""
    return min(length, i + offset + 1) if causal else length


@njit(cache=True, fastmath=FAST)
def attention_softmax_forward(scores, scale, causal, key_lengths, out):
    """out (N, Tq, Tk) = attention weights of scores (N, Tq, Tk); query i of matrix n sees keys
    j < hi = min(key_lengths[n], i + Tk - Tq + 1) if causal else key_lengths[n] (int64 (N,))."""
    N, Tq, Tk = scores.shape
    offset = Tk - Tq
    for n in range(N):
        for i in range(Tq):
            visible = _visible_keys(i, key_lengths[n], offset, causal)
            p = out[n, i]
            if visible <= 0:                       # no key to attend to: weights 0, output 0
                p[:] = 0.0
                continue
            row = scores[n, i, :visible]
            shift = numerics.row_max(row) * scale  # scale > 0, so max(s * S) = s * max(S)
            total = scores.dtype.type(0.0)
            for j in range(visible):
                p[j] = numerics.exp(row[j] * scale - shift)
                total += p[j]
            inv = scores.dtype.type(1.0) / total
            for j in range(visible):
                p[j] *= inv
            p[visible:] = 0.0


@njit(cache=True, fastmath=FAST)
def attention_softmax_backward(probs, grad_probs, scale, causal, key_lengths, out):
    """out (N, Tq, Tk) = dL/dscores from the weights P and dL/dP; 0 on keys the query does not see."""
    N, Tq, Tk = probs.shape
    offset = Tk - Tq
    for n in range(N):
        for i in range(Tq):
            visible = max(0, _visible_keys(i, key_lengths[n], offset, causal))
            p, g, d = probs[n, i], grad_probs[n, i], out[n, i]
            dot = numerics.row_dot(g[:visible], p[:visible])
            for j in range(visible):
                d[j] = scale * p[j] * (g[j] - dot)
            d[visible:] = 0.0


def attention_mask(Tq: int, Tk: int, causal: bool, key_lengths: np.ndarray) -> np.ndarray:
    """(N, Tq, Tk) boolean mask, True where query i of matrix n may attend to key j."""
    visible = np.arange(Tk) < np.asarray(key_lengths)[:, None, None]         # (N, 1, Tk)
    return visible & causal_mask(Tq, Tk) if causal else np.broadcast_to(visible, (len(key_lengths), Tq, Tk))


def attention_softmax_forward_ref(scores, scale, causal, key_lengths, out):
    """NumPy twin of `attention_softmax_forward`: mask with -inf, a stable softmax, 0 for empty rows."""
    mask = attention_mask(*scores.shape[-2:], causal, key_lengths)
    z = np.where(mask, scores * scale, -np.inf)
    m = z.max(axis=-1, keepdims=True)
    e = np.exp(z - np.where(np.isfinite(m), m, 0))                            # empty rows: e = 0
    total = e.sum(axis=-1, keepdims=True)
    out[...] = e / np.where(total > 0, total, 1)


def attention_softmax_backward_ref(probs, grad_probs, scale, causal, key_lengths, out):
    """NumPy twin of `attention_softmax_backward` (unseen entries of P are 0, so they get 0)."""
    mask = attention_mask(*probs.shape[-2:], causal, key_lengths)
    g = np.where(mask, grad_probs, 0)
    out[...] = scale * probs * (g - (g * probs).sum(axis=-1, keepdims=True))
