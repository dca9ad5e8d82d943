"""Fused causal softmax for masked self-attention (Chapter 6), as Numba kernels with NumPy twins.

Causal attention turns the scores S = Q K^T (one (Tq, Tk) matrix per batch row and head) into
weights with a softmax that only sees the past. Query i sits at absolute position i + (Tk - Tq)
(Tq < Tk when earlier keys come from a KV cache, Chapter 7), so key j is visible when
j <= i + Tk - Tq:

    P[i, j] = exp(s * S[i, j] - m_i) / sum_{j' <= i + Tk - Tq} exp(s * S[i, j'] - m_i)   (visible j)
    P[i, j] = 0                                                                      (future j)

with s = 1/sqrt(head_size) and m_i the row maximum of s * S (for stability). Masking, scaling
and normalising in one pass over each row means the masked (B, nh, T, T) score tensor, the
-inf filled copy and the exponentials are never materialised, and the future half of every row
is never read. The backward pass is the softmax Jacobian-vector product, restricted to the
visible keys:

    dS[i, j] = s * P[i, j] * (dP[i, j] - sum_j' dP[i, j'] P[i, j'])

Kernels take (N, Tq, Tk) C-contiguous arrays (callers fold batch and head axes into N) and a
positive scale; each `*_ref` twin has the same signature and is what the tests compare with.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, fastmath=True)
def causal_softmax_forward(scores, scale):
    """(N, Tq, Tk) scores -> (N, Tq, Tk) causal attention weights (zero above the diagonal)."""
    N, Tq, Tk = scores.shape
    probs = np.empty_like(scores)
    offset = Tk - Tq
    for n in range(N):
        for i in range(Tq):
            row, out = scores[n, i], probs[n, i]
            visible = i + offset + 1
            m = row[0]
            for j in range(1, visible):
                m = max(m, row[j])
            shift = m * scale  # scale > 0, so max(s * S) = s * max(S)
            for j in range(visible):
                out[j] = np.exp(row[j] * scale - shift)
            inv = 1.0 / out[:visible].sum()
            for j in range(visible):
                out[j] *= inv
            out[visible:] = 0.0
    return probs


@njit(cache=True, fastmath=True)
def causal_softmax_backward(probs, grad_probs, scale):
    """Gradient of the loss with respect to the scores, given P and dL/dP (both (N, Tq, Tk))."""
    N, Tq, Tk = probs.shape
    grad_scores = np.empty_like(probs)
    offset = Tk - Tq
    for n in range(N):
        for i in range(Tq):
            p, g, out = probs[n, i], grad_probs[n, i], grad_scores[n, i]
            visible = i + offset + 1
            dot = 0.0
            for j in range(visible):
                dot += g[j] * p[j]
            for j in range(visible):
                out[j] = scale * p[j] * (g[j] - dot)
            for j in range(visible, Tk):
                out[j] = 0.0
    return grad_scores


def causal_mask(Tq: int, Tk: int) -> np.ndarray:
    """(Tq, Tk) boolean mask, True where query i may attend to key j (j <= i + Tk - Tq)."""
    return np.tri(Tq, Tk, k=Tk - Tq, dtype=bool)


def causal_softmax_forward_ref(scores, scale):
    """NumPy twin of `causal_softmax_forward`: mask with -inf, then a stable softmax."""
    Tq, Tk = scores.shape[-2:]
    z = np.where(causal_mask(Tq, Tk), scores * scale, -np.inf)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return (z / z.sum(axis=-1, keepdims=True)).astype(scores.dtype, copy=False)


def causal_softmax_backward_ref(probs, grad_probs, scale):
    """NumPy twin of `causal_softmax_backward` (future entries of P are 0, so they get 0)."""
    dot = (grad_probs * probs).sum(axis=-1, keepdims=True)
    return (scale * probs * (grad_probs - dot)).astype(probs.dtype, copy=False)
