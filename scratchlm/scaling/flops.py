"""Counting a GPT's parameters and training FLOPs (Chapter 11, §11.1).

A FLOP here is one multiply or one add, so a multiply-add is 2 FLOPs and the product of an (m, k)
and a (k, n) matrix costs 2 m k n. Only matrix products are counted (Kaplan et al. 2020 and
Hoffmann et al. 2022 count the same way): norms, GELU, the softmax and the cross-entropy are O(C) or
O(T) per token, a small fraction of the O(C^2) products at any width worth fitting a law to.

Parameters (C = n_embd, L = n_layer, V = vocab_size, H the MLP's hidden width: 4C, or SwiGLU's
swiglu_hidden(C)), for GPTConfig's choices:

    per block   c_attn 3C^2, attention c_proj C^2, MLP 2CH (GELU) or 3CH (SwiGLU),
                and with bias=True the Linear biases 3C + C + H (2H for SwiGLU) + C;
                ln_1, ln_2 C each (+ C bias for a LayerNorm with bias; RMSNorm has none)
    ln_f        C (+ C)
    embeddings  wte V C; wpe block_size C (position="learned"; RoPE has none);
                lm_head V C only with tie_weights=False (tied, it *is* wte)

    n_params(config, embeddings=False)   Kaplan's N: the blocks and ln_f, no wte, wpe or head
    n_params(config, embeddings=True)    every parameter (Chinchilla's N): = GPT(config).parameters()

An untied lm_head counts among the embeddings: it is the de-embedding, V C weights read once per
token like wte. (GPT.num_parameters() is nanoGPT's count, which leaves out only wpe.)

Forward FLOPs per token at context length T (every position attends over T keys: the attention op
computes the whole T x T score matrix and masks it, so the causal half is computed too):

    qkv     2 L 3C^2       the packed c_attn
    scores  2 L T C        S = Q K^T, per head T hs, over n_head heads
    mix     2 L T C        Y = P V
    proj    2 L C^2        attention's c_proj
    mlp     2 L 2CH        c_fc and c_proj (SwiGLU: 2 L 3CH)
    head    2 C V          the logits, tied or not

The backward pass costs twice the forward: each y = x W^T needs dX = G W and dW = G^T X, two
products of its own size (every input of every Linear needs its gradient, since the embeddings
train), and the attention's two products need four, dP = dY V^T, dV = P^T dY, dQ = dS K, dK = dS^T Q.
So a training step costs 3 x forward: `flops_per_token(config)`. Kaplan's approximation (their
Table 1) drops the head and counts the attention once, as if each query read only the n_ctx/2 keys
it sees on average:

    C_forward ~ 2N + 2 L n_ctx C,   C = 3 C_forward D ~ 6 N D + 6 L n_ctx C D      (method="kaplan")

which undercounts most where the head and the context are large next to the blocks: by 10% for
C = 32, L = 2, T = 16, V = 65 (2 N omits the head's 2 C V = 4160 of 57 408 forward FLOPs), by 5% for
C = 128, L = 4, T = 64. At the sizes of Chapter 11 report both. `count_flops()` counts the products a real forward and backward execute, so the
formula can be checked against the model (tests/test_scaling.py; §11.1 prints both).
"""

from __future__ import annotations

import math
import numbers
from contextlib import contextmanager
from dataclasses import dataclass

import scratchlm.autograd.functional as F
from scratchlm.autograd import Tensor
from scratchlm.models import attention
from scratchlm.models.gpt import swiglu_hidden

METHODS = ("exact", "kaplan")


def _mlp_hidden(config) -> int:
    return swiglu_hidden(config.n_embd) if config.mlp == "swiglu" else 4 * config.n_embd


def n_params(config, embeddings: bool = False) -> int:
    """Parameters of GPT(config): without the embeddings (wte, wpe, an untied lm_head; Kaplan's N)
    or with them (every parameter; Chinchilla's N). The tied head is wte, counted once."""
    C, H, V = config.n_embd, _mlp_hidden(config), config.vocab_size
    linear_bias = config.bias
    norm = C + (C if config.norm == "layernorm" and config.bias else 0)   # RMSNorm has no bias
    mlp_in = 2 * H if config.mlp == "swiglu" else H                       # SwiGLU's c_fc holds W and V
    block = (3 * C * C + C * C + C * mlp_in + H * C                       # c_attn, c_proj, c_fc, c_proj
             + linear_bias * (3 * C + C + mlp_in + C)
             + 2 * norm)                                                  # ln_1, ln_2
    body = config.n_layer * block + norm                                  # + ln_f
    if not embeddings:
        return body
    wpe = config.block_size * C if config.position == "learned" else 0
    head = 0 if config.tie_weights else V * C
    return body + V * C + wpe + head


def _n_ctx(config, n_ctx: int | None) -> int:
    T = config.block_size if n_ctx is None else n_ctx
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"n_ctx must be an integer >= 1 (the context length trained on), got {n_ctx!r}")
    return T


def flops_breakdown(config, n_ctx: int | None = None, training: bool = False) -> dict[str, int]:
    """FLOPs per token of each kind of matrix product of GPT(config) at context length n_ctx
    (default config.block_size): {"qkv", "scores", "mix", "proj", "mlp", "head"}, summed over the
    layers; of the forward pass, or with training=True of the forward and backward passes together
    (module docstring). FLOPs = 2 x multiply-adds."""
    T = _n_ctx(config, n_ctx)
    C, L, V, H = config.n_embd, config.n_layer, config.vocab_size, _mlp_hidden(config)
    swiglu = config.mlp == "swiglu"
    # BEGIN SOLUTION 11.1: FLOPs of one forward and backward pass (chapters/ch11_scaling_laws.py §11.1)
    forward = {
        "qkv": 2 * L * C * 3 * C,                      # x (1, C) @ W_qkv^T (C, 3C)
        "scores": 2 * L * T * C,                       # each head: q (1, hs) @ K^T (hs, T); n_head hs = C
        "mix": 2 * L * T * C,                          # each head: p (1, T) @ V (T, hs)
        "proj": 2 * L * C * C,
        "mlp": 2 * L * (C * (2 * H if swiglu else H) + H * C),
        "head": 2 * C * V,                             # h (1, C) @ E^T (C, V)
    }
    # backward: two products the size of each forward one (dX and dW; dP, dV and dQ, dK)
    return {name: 3 * f for name, f in forward.items()} if training else forward
    # END SOLUTION


def flops_per_token(config, n_ctx: int | None = None, method: str = "exact", training: bool = True,
                    embeddings: bool = False) -> int:
    """FLOPs per token of a training step (forward + backward; training=False: forward only).

    method="exact": this implementation's matrix products (flops_breakdown, head and the full T x T
    attention included). method="kaplan": 2N + 2 n_layer n_ctx n_embd forward, x3 for training,
    with N = n_params(config, embeddings); `embeddings` applies to "kaplan" only."""
    if method not in METHODS:
        raise ValueError(f"flops_per_token: method must be one of {METHODS}, got {method!r}")
    if method == "exact":
        if embeddings:
            raise ValueError("flops_per_token: embeddings=True is for method='kaplan' (its 2N term); the "
                             "exact count has the head's product instead and no lookup costs")
        return sum(flops_breakdown(config, n_ctx, training).values())
    T = _n_ctx(config, n_ctx)
    forward = 2 * n_params(config, embeddings) + 2 * config.n_layer * T * config.n_embd
    return 3 * forward if training else forward


def training_flops(config, tokens: float, n_ctx: int | None = None, method: str = "exact",
                   embeddings: bool = False) -> float:
    """C: the FLOPs of training GPT(config) on `tokens` tokens (D), flops_per_token x D."""
    if isinstance(tokens, bool) or not isinstance(tokens, numbers.Real) or not 0 <= tokens < math.inf:
        raise ValueError(f"training_flops: tokens must be a finite number >= 0, got {tokens!r}")
    return flops_per_token(config, n_ctx, method, True, embeddings) * tokens


@dataclass
class FlopCount:
    """FLOPs (2 per multiply-add) of the matrix products executed, forward and backward."""
    forward: int = 0
    backward: int = 0

    @property
    def total(self) -> int:
        return self.forward + self.backward


@contextmanager
def count_flops():
    """Count the matrix-product FLOPs executed inside the block, from the operands' shapes:

        with count_flops() as count:
            _, loss = model(x, y)
            loss.backward()
        count.forward, count.backward

    It wraps F.linear (every nn.Linear, the tied head) and the attention op's array functions while the
    block runs, and puts them back after; these are all the products a GPT executes. The backward of
    a linear layer counts dX only if x requires a gradient and dW only if W does, as it computes
    them. Not thread-safe: the wrappers are module attributes."""
    count = FlopCount()
    linear, attend, attend_backward = F.linear, attention._attend, attention._attend_backward

    def counted_linear(x, weight, bias=None):
        out = linear(x, weight, bias)
        n_out, n_in = weight.shape
        size = 2 * (out.data.size // n_out) * n_in * n_out     # 2 N in out
        count.forward += size
        if out._backward is not None:
            backward = out._backward
            products = sum(isinstance(t, Tensor) and t.requires_grad for t in (x, weight))  # dX, dW

            def counted_backward(g):
                count.backward += products * size
                backward(g)
            out._backward = counted_backward
        return out

    def counted_attend(q, k, v, *args):
        y, att, mask = attend(q, k, v, *args)
        count.forward += 2 * att.size * (q.shape[-1] + v.shape[-1])   # S = Q K^T, Y = P V
        return y, att, mask

    def counted_attend_backward(dy, q, k, v, att, mask, scale, causal, lengths, dq, dk, dv):
        hs, hv = q.shape[-1], v.shape[-1]
        products = ((dv is not None) * hv + (dq is not None or dk is not None) * hv  # dV = P^T dY, dP = dY V^T
                    + (dq is not None) * hs + (dk is not None) * hs)                  # dQ = dS K, dK = dS^T Q
        count.backward += 2 * att.size * products
        attend_backward(dy, q, k, v, att, mask, scale, causal, lengths, dq, dk, dv)

    F.linear, attention._attend, attention._attend_backward = counted_linear, counted_attend, \
        counted_attend_backward
    try:
        yield count
    finally:
        F.linear, attention._attend, attention._attend_backward = linear, attend, attend_backward
