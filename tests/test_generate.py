"""Decoding (Chapter 7): truncated distributions, seeded sampling, beam search, and KV-cache
generation identical to full recomputation."""

import itertools

import numpy as np
import pytest

from scratchlm import generate as G
from scratchlm.models.gpt import GPT, GPTConfig
from scratchlm.rng import manual_seed


class Bigram:
    """A model whose next-token logits depend on the last id only: exhaustive search is easy."""

    def __init__(self, V=5, seed=0, block_size=8):
        self.table = np.random.default_rng(seed).normal(0, 2, (V, V))
        self.block_size = block_size

    def next_logits(self, idx):
        assert idx.shape[1] <= self.block_size
        return self.table[idx[:, -1]]


def tiny_gpt(block_size=16, dtype=np.float32):
    manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=block_size, n_layer=2, n_head=2, n_embd=16), dtype=dtype)
    rng = np.random.default_rng(1)
    for p in model.parameters():  # large weights: peaked, varied distributions
        p.data += rng.normal(0, 0.3, p.shape).astype(dtype)
    return model


# ---- distributions ----------------------------------------------------------------------------

def test_next_token_probs_truncation():
    logits = np.log(np.array([[0.1, 0.4, 0.2, 0.3], [0.25, 0.25, 0.25, 0.25]]))
    np.testing.assert_allclose(G.next_token_probs(logits), np.exp(logits))
    np.testing.assert_allclose(G.next_token_probs(logits, top_k=2)[0], [0, 4 / 7, 0, 3 / 7])
    # top-p: the smallest set of most likely tokens with mass >= p
    np.testing.assert_allclose(G.next_token_probs(logits, top_p=0.65)[0], [0, 4 / 7, 0, 3 / 7])
    np.testing.assert_allclose(G.next_token_probs(logits, top_p=0.75)[0], [0, 4 / 9, 2 / 9, 3 / 9])
    np.testing.assert_allclose(G.next_token_probs(logits, top_p=1e-9)[0], [0, 1, 0, 0])
    np.testing.assert_allclose(G.next_token_probs(logits, top_p=1.0), np.exp(logits))
    # temperature: T -> 0 tends to argmax, T large tends to uniform; every row sums to 1
    cold, hot = G.next_token_probs(logits, temperature=0.01), G.next_token_probs(logits, temperature=100)
    assert cold[0, 1] > 0.999 and np.abs(hot[0] - 0.25).max() < 0.01
    np.testing.assert_allclose(np.concatenate([cold.sum(-1), hot.sum(-1)]), 1)
    with pytest.raises(ValueError, match="temperature"):
        G.next_token_probs(logits, temperature=0)
    with pytest.raises(ValueError, match="top_p"):
        G.next_token_probs(logits, top_p=1.5)


def test_sample_from_matches_distribution():
    probs = np.array([0.5, 0.0, 0.3, 0.2])
    draws = G.sample_from(np.tile(probs, (40000, 1)), np.random.default_rng(0))
    freq = np.bincount(draws, minlength=4) / len(draws)
    assert freq[1] == 0
    np.testing.assert_allclose(freq, probs, atol=0.01)


def test_sampling_is_seeded():
    model, prompt = Bigram(), np.zeros((3, 1), dtype=np.int64)
    a = G.generate(model, prompt, 20, temperature=1.0, top_p=0.9, rng=np.random.default_rng(5))
    b = G.generate(model, prompt, 20, temperature=1.0, top_p=0.9, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (3, 21)


# ---- beam search ------------------------------------------------------------------------------

def _exhaustive_best(model, prompt, n):
    logp = G.log_softmax(model.table)
    best = max(itertools.product(range(len(logp)), repeat=n),
               key=lambda seq: sum(logp[a, b] for a, b in zip((prompt[-1],) + seq, seq)))
    return list(prompt) + list(best)


def test_beam_search_width_one_is_greedy_and_wide_beam_is_exact():
    model, prompt = Bigram(V=4, seed=3), np.array([2])
    greedy = G.generate(model, prompt[None], 5, temperature=0)[0]
    assert G.beam_search(model, prompt, 5, beam_width=1)[0][0].tolist() == greedy.tolist()
    # with as many beams as tokens, a first-order model's best sequence is never pruned
    (best, score), *_ = G.beam_search(model, prompt, 5, beam_width=4)
    assert best.tolist() == _exhaustive_best(model, prompt, 5)
    assert abs(score - G.log_likelihood(model, best[None], 1)[0]) < 1e-9


def test_beam_search_stops_at_eos():
    model = Bigram(V=4, seed=1)
    model.table[:, 3] += 1.0  # token 3 ends sequences
    hyps = G.beam_search(model, np.array([0]), 10, beam_width=3, eos_id=3)
    assert len(hyps) == 3
    scores = [s for _, s in hyps]
    assert scores == sorted(scores, reverse=True)
    for seq, score in hyps:
        assert 3 not in seq[1:-1].tolist()  # eos only at the end
        assert abs(score - G.log_likelihood(model, seq[None], 1)[0]) < 1e-9


# ---- KV cache ---------------------------------------------------------------------------------

@pytest.mark.parametrize("new_tokens", [10, 30])  # 30 runs past block_size: the window slides
def test_cached_generation_equals_recomputation(new_tokens):
    model = tiny_gpt(block_size=16, dtype=np.float64)
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    greedy = G.generate(model, prompt, new_tokens, temperature=0, use_cache=True)
    np.testing.assert_array_equal(greedy, G.generate(model, prompt, new_tokens, temperature=0, use_cache=False))
    sampled = [G.generate(model, prompt, new_tokens, temperature=1.0, top_k=5, rng=np.random.default_rng(0),
                          use_cache=cache) for cache in (True, False)]
    np.testing.assert_array_equal(*sampled)
    beams = [G.beam_search(model, prompt[0], new_tokens, beam_width=3, use_cache=cache) for cache in (True, False)]
    for (a, sa), (b, sb) in zip(*beams):
        np.testing.assert_array_equal(a, b)
        assert abs(sa - sb) < 1e-9


def test_cached_greedy_float32_and_log_likelihood():
    model = tiny_gpt(block_size=32)
    prompt = np.array([[3]])
    out = G.generate(model, prompt, 31, temperature=0)
    np.testing.assert_array_equal(out, G.generate(model, prompt, 31, temperature=0, use_cache=False))
    # log-likelihood by the decoder's context = teacher-forced log-softmax of one full forward pass
    logits = model(out[:, :-1])[0].data
    expected = np.take_along_axis(G.log_softmax(logits), out[:, 1:, None], -1).sum()
    np.testing.assert_allclose(G.log_likelihood(model, out, 1), expected, rtol=1e-5)
    np.testing.assert_allclose(G.log_likelihood(model, out, 1, use_cache=False), expected, rtol=1e-5)
