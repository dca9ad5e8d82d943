"""Exercises of Chapter 6 (the Transformer), one group of tests per exercise, each marked exN_M.

Run one exercise with `python -m pytest -m ex6_1 tests/test_exercises_ch06.py`. The attention kernels
(6.1, 6.2) are checked on score matrices whose softmax can be worked out on paper; the tests of the
backward make their attention weights with the forward kernel's NumPy twin (not an exercise), so
that each test fails only on its own exercise. The block (6.3) is checked by what a residual, pre-LayerNorm
block must do, and is called before any of its sub-layers; the same block serves Chapter 9's encoder
(padded batches: key_lengths) and encoder-decoder (a cross-attention sub-layer), checked last.
"""

import math

import numpy as np
import pytest

from scratchlm.autograd import Tensor, no_grad
from scratchlm.models.attention_kernels import (causal_softmax_backward, causal_softmax_forward,
                                                causal_softmax_forward_ref)
from scratchlm.models.gpt import Block, GPTConfig, KVCache

LN3 = math.log(3.0)


def forward(scores, scale=1.0, dtype=np.float64) -> np.ndarray:
    """Run the student's forward kernel on (Tq, Tk) or (N, Tq, Tk) scores, into a NaN-filled output
    (so entries the kernel forgets to write show up)."""
    s = np.array(scores, dtype=dtype)
    s3 = s.reshape(-1, *s.shape[-2:])
    out = np.full_like(s3, np.nan)
    causal_softmax_forward(s3, s3.dtype.type(scale), out)
    return out.reshape(s.shape)


# ---------------------------------------------------------------------------------------------
# Exercise 6.1: causal softmax (models/attention_kernels.py, causal_softmax_forward)
# ---------------------------------------------------------------------------------------------

@pytest.mark.ex6_1
def test_each_row_is_a_softmax_over_the_past_only():
    P = forward([[1.0, 100.0, 100.0],      # row 0 sees key 0 alone, however large the future scores
                 [0.0, LN3, 7.0],          # row 1: e^0 : e^ln3 = 1 : 3
                 [2.0, 2.0, 2.0]])         # row 2: equal scores, equal weights
    assert not np.isnan(P).any(), "every entry must be written, the future ones as 0"
    np.testing.assert_allclose(P, [[1, 0, 0], [0.25, 0.75, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-12, atol=1e-15,
                               err_msg="P[i, j] = softmax over j <= i of scale * S[i, j]; 0 for j > i")


@pytest.mark.ex6_1
def test_scale_multiplies_the_scores_before_the_softmax():
    P = forward([[0.0, 0.0], [0.0, 2 * LN3]], scale=0.5)
    np.testing.assert_allclose(P[1], [0.25, 0.75], rtol=1e-12, err_msg="softmax(0.5 * [0, 2 ln 3]) = [1/4, 3/4]")


@pytest.mark.ex6_1
def test_fewer_queries_than_keys_are_the_last_positions():
    # With a KV cache, 2 new queries meet 3 keys: query i sits at position i + 1, so row 0 sees keys 0
    # and 1, row 1 sees all three.
    P = forward([[0.0, LN3, 5.0], [0.0, 0.0, 0.0]])  # (Tq, Tk) = (2, 3)
    np.testing.assert_allclose(P, [[0.25, 0.75, 0.0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-12, atol=1e-15,
                               err_msg="query i of Tq may see key j when j <= i + Tk - Tq")


@pytest.mark.ex6_1
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_scores_do_not_overflow(dtype):
    P = forward([[0.0, 0.0], [1000.0, 1001.0]], dtype=dtype)
    assert np.isfinite(P).all(), "subtract the row's maximum before exponentiating: e^1000 overflows"
    np.testing.assert_allclose(P[1], [1 / (1 + math.e), math.e / (1 + math.e)], rtol=1e-6)


@pytest.mark.ex6_1
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_maximum_is_over_the_visible_scores(dtype):
    # A huge future score must not enter the row's maximum: e^(0 - 1e4) underflows to 0, and 0 / 0 = nan.
    P = forward([[0.0, 1e4], [0.0, 0.0]], dtype=dtype)
    np.testing.assert_allclose(P, [[1.0, 0.0], [0.5, 0.5]], rtol=1e-6,
                               err_msg="take the maximum over the keys query i may see (j <= i + Tk - Tq) only")


@pytest.mark.ex6_1
def test_every_matrix_of_a_batch_is_done():
    P = forward(np.stack([np.zeros((2, 2)), [[0.0, 0.0], [LN3, 0.0]]]))
    np.testing.assert_allclose(P, [[[1, 0], [0.5, 0.5]], [[1, 0], [0.75, 0.25]]], rtol=1e-12,
                               err_msg="loop over the first axis (batch x heads) too")


# ---------------------------------------------------------------------------------------------
# Exercise 6.2: its backward, dS = scale P (dP - sum_j dP P) (causal_softmax_backward)
# ---------------------------------------------------------------------------------------------

def softmax_by_numpy(scores, scale):
    """Attention weights from the NumPy twin of the forward kernel (not an exercise)."""
    out = np.empty_like(scores)
    causal_softmax_forward_ref(scores, scale, out)
    return out


def backward(probs, grad_probs, scale=1.0) -> np.ndarray:
    p, g = np.array(probs, dtype=np.float64), np.array(grad_probs, dtype=np.float64)
    p3, g3 = p.reshape(-1, *p.shape[-2:]), g.reshape(-1, *g.shape[-2:])
    out = np.full_like(p3, np.nan)
    causal_softmax_backward(p3, g3, np.float64(scale), out)
    return out.reshape(p.shape)


@pytest.mark.ex6_2
def test_backward_by_hand():
    P = [[1.0, 0.0], [0.25, 0.75]]
    dS = backward(P, [[5.0, 9.0], [1.0, 0.0]])
    # row 0: one visible key, so its weight is 1 whatever the score: dS = 0 (and 0 for the future key)
    # row 1: sum_j dP P = 1/4, dS = [1/4 (1 - 1/4), 3/4 (0 - 1/4)] = [3/16, -3/16]
    assert not np.isnan(dS).any(), "every entry must be written, the future ones as 0"
    np.testing.assert_allclose(dS, [[0, 0], [3 / 16, -3 / 16]], rtol=1e-12, atol=1e-15,
                               err_msg="dS[i, j] = scale * P[i, j] * (dP[i, j] - sum_j' dP[i, j'] P[i, j'])")


@pytest.mark.ex6_2
def test_backward_includes_the_scale():
    P = [[1.0, 0.0], [0.25, 0.75]]
    dS = backward(P, [[0.0, 0.0], [1.0, 0.0]], scale=0.5)
    np.testing.assert_allclose(dS[1], [3 / 32, -3 / 32], rtol=1e-12,
                               err_msg="the forward multiplied the scores by scale: so does the backward")


@pytest.mark.ex6_2
def test_backward_ignores_gradients_of_future_weights():
    P = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]]
    clean = backward(P, [[1.0, 0.0, 0.0], [1.0, 2.0, 0.0], [1.0, 2.0, 3.0]])
    noisy = backward(P, [[1.0, 7.0, 7.0], [1.0, 2.0, 7.0], [1.0, 2.0, 3.0]])
    np.testing.assert_allclose(noisy, clean, rtol=1e-12, atol=1e-15,
                               err_msg="a future weight is always 0: its dP must not change dS")


@pytest.mark.ex6_2
@pytest.mark.parametrize("Tq, Tk", [(4, 4), (2, 5)])
def test_backward_matches_finite_differences(Tq, Tk):
    rng = np.random.default_rng(0)
    S, dP, scale = rng.normal(size=(Tq, Tk)), rng.normal(size=(Tq, Tk)), 0.7
    dS = backward(softmax_by_numpy(S, scale), dP, scale)
    eps, numeric = 1e-6, np.zeros_like(S)
    for idx in np.ndindex(S.shape):   # L = sum(dP * P(S)); dL/dS by central differences
        up, down = S.copy(), S.copy()
        up[idx] += eps
        down[idx] -= eps
        numeric[idx] = (np.sum(dP * softmax_by_numpy(up, scale)) - np.sum(dP * softmax_by_numpy(down, scale))) / (2 * eps)
    np.testing.assert_allclose(dS, numeric, rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------------------------------------
# Exercise 6.3: a pre-LayerNorm residual block (models/gpt.py, Block.forward)
# ---------------------------------------------------------------------------------------------

def tiny_block() -> Block:
    block = Block(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=2, n_embd=8, bias=True), layer=0)
    rng = np.random.default_rng(1)
    for p in block.parameters():     # float64, and non-trivial LayerNorm gains and biases
        p.data = rng.normal(size=p.shape) * (0.3 if p.ndim == 2 else 1.0)
    return block.eval()


def stream(scale: float = 1.0) -> Tensor:
    return Tensor(scale * np.random.default_rng(2).normal(size=(2, 4, 8)))


def silence(layer) -> None:
    """Make a sub-layer's output 0 by zeroing its output projection."""
    layer.c_proj.weight.data[:] = 0.0
    layer.c_proj.bias.data[:] = 0.0


@pytest.mark.ex6_3
def test_silent_sub_layers_leave_the_stream_unchanged():
    block = tiny_block()
    silence(block.attn)
    silence(block.mlp)
    x = stream()
    np.testing.assert_allclose(block(x).data, x.data, rtol=1e-14, atol=1e-14,
                               err_msg="each sub-layer is added to the stream (x + ...), so sub-layers that "
                                       "output 0 must give back x itself")


@pytest.mark.ex6_3
def test_attention_reads_the_normalised_stream():
    # Pre-LayerNorm: the sub-layer sees ln_1(x), and LayerNorm(3 x) = LayerNorm(x), so with the MLP
    # silent, block(3 x) - 3 x must equal block(x) - x (up to LayerNorm's eps, negligible for a stream
    # this large).
    block = tiny_block()
    silence(block.mlp)
    x, x3 = stream(100.0), stream(300.0)
    got, got3 = block(x).data, block(x3).data
    np.testing.assert_allclose(got3 - x3.data, got - x.data, rtol=1e-7, atol=1e-9,
                               err_msg="feed ln_1(x) to the attention, not x (pre-LayerNorm)")
    assert not np.allclose(got, x.data), "the attention's output must be added to the stream"


@pytest.mark.ex6_3
def test_block_hands_the_kv_cache_to_its_attention():
    # Chapter 7 decodes with a KV cache: the block run on positions 0-1, then on 2-3 with the cache of
    # the first call, must give what it gives on all four positions at once.
    block, x = tiny_block(), stream()
    cache = KVCache(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=2, n_embd=8), batch_size=2,
                    dtype=np.float64)
    with no_grad():
        first = block(Tensor(x.data[:, :2]), cache).data
        cache.length += 2                       # GPT.forward does this after its last block
        second = block(Tensor(x.data[:, 2:]), cache).data
        whole = block(x).data
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, rtol=1e-12, atol=1e-12,
                               err_msg="pass `cache` on to the attention: self.attn(self.ln_1(x), cache, key_lengths)")


@pytest.mark.ex6_3
def test_block_is_attention_then_mlp_each_with_its_own_layernorm():
    block, x = tiny_block(), stream()
    got = block(x).data                                 # the student's block first, then its pieces:
    h = x.data + block.attn(block.ln_1(x)).data         # the stream after the attention sub-layer
    want = h + block.mlp(block.ln_2(Tensor(h))).data    # the MLP reads ln_2 of *that* stream
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12,
                               err_msg="x = x + attn(ln_1(x)); then x = x + mlp(ln_2(x)) on the updated x")



def tiny_block_of(**kind) -> Block:
    block = Block(GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=2, n_embd=8, bias=True), layer=0, **kind)
    rng = np.random.default_rng(3)
    for p in block.parameters():
        p.data = rng.normal(size=p.shape) * (0.3 if p.ndim == 2 else 1.0)
    return block.eval()


@pytest.mark.ex6_3
def test_block_hands_key_lengths_to_its_attention():
    # A padded batch (Chapter 9's encoder): sequence 1 has 2 real tokens, then padding. Whatever the
    # padding holds, the real positions' outputs must not change -- the attention masks it, if it is told.
    block, x = tiny_block_of(causal=False), stream()
    other = x.data.copy()
    other[1, 2:] = 50.0
    lengths = np.array([4, 2])
    a, b = block(x, key_lengths=lengths).data, block(Tensor(other), key_lengths=lengths).data
    np.testing.assert_allclose(b[1, :2], a[1, :2], rtol=1e-12, atol=1e-12,
                               err_msg="pass key_lengths on to the attention: self.attn(self.ln_1(x), cache, key_lengths)")


@pytest.mark.ex6_3
def test_a_block_with_cross_attention_adds_it_between_attention_and_mlp():
    block, x = tiny_block_of(cross_attention=True), stream()
    memory = Tensor(np.random.default_rng(4).normal(size=(2, 5, 8)))
    got = block(x, memory=memory).data
    h = x.data + block.attn(block.ln_1(x)).data                          # self-attention sub-layer
    h = h + block.cross_attn(block.ln_cross(Tensor(h)), memory).data     # cross-attention sub-layer
    want = h + block.mlp(block.ln_2(Tensor(h))).data
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12,
                               err_msg="when self.cross_attn is not None, add x = x + self.cross_attn(self.ln_cross(x), "
                                       "memory, memory_lengths, cache) after the attention and before the MLP")
