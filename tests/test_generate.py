"""Decoding (Chapter 7): truncated distributions, seeded sampling, beam search, and KV-cache
generation identical to full recomputation; stopping at eos and decoding an encoder-decoder (Chapter 9)."""

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


# ---- end of sequence (Chapter 9) --------------------------------------------------------------

def eos_bigram():
    model = Bigram(V=5, seed=2, block_size=40)
    model.table[:, 4] += 0.5       # token 4 ends sequences, sooner or later
    return model


@pytest.mark.parametrize("temperature", [0, 1.0])
def test_generation_stops_at_eos_and_fills_finished_rows(temperature):
    model, prompt = eos_bigram(), np.array([[0], [1], [2], [3]])
    plain = G.generate(model, prompt, 30, temperature=temperature, rng=np.random.default_rng(3))
    ended = G.generate(model, prompt, 30, temperature=temperature, rng=np.random.default_rng(3), eos_id=4)
    assert ended.shape[1] <= plain.shape[1]
    for p, e in zip(plain, ended):
        first = int(np.argmax(e[1:] == 4)) + 1 if (e[1:] == 4).any() else len(e)
        np.testing.assert_array_equal(e[:first + 1], p[:first + 1])   # the same ids up to the first eos
        assert (e[first:] == 4).all()                                 # then only eos
        assert G.until_eos(e[1:], 4).tolist() == e[1:first].tolist()
    assert (ended[:, 1:] == 4).any(axis=1).all()                      # every row ended: stopped there
    assert ended.shape[1] == max(int(np.argmax(row[1:] == 4)) + 2 for row in ended) < plain.shape[1]


def test_generation_stops_as_soon_as_every_row_has_ended():
    model = Bigram(V=3, block_size=40)
    model.table[:] = [0, 0, 5]     # token 2 always comes next
    out = G.generate(model, np.array([[0], [1]]), 10, temperature=0, eos_id=2)
    assert out.tolist() == [[0, 2], [1, 2]]
    assert G.generate(model, np.array([[0]]), 10, temperature=0, eos_id=None).shape == (1, 11)
    assert G.until_eos(np.array([[5, 2, 2], [5, 5, 5]]), 2)[1].tolist() == [5, 5, 5]


# ---- encoder-decoder decoding --------------------------------------------------------------------

class ToyCache:
    def __init__(self):
        self.length = 0

    def reorder(self, rows):
        pass   # the toy decoder keeps no per-row state in its cache, only the position


class ToySeq2Seq:
    """An 'encoder-decoder' whose decoder at step t favours the source's t-th token (then eos = 0),
    plus a bigram on its last token: the output depends on the source, the position and the prefix."""
    block_size = 12

    def __init__(self, V=6, seed=0):
        self.V, self.encoded = V, 0
        self.bigram = np.random.default_rng(seed).normal(0, 1, (V, V))

    def encode(self, source, source_lengths=None):
        self.encoded += 1
        B, S = source.shape
        lengths = np.full(B, S) if source_lengths is None else source_lengths
        wanted = np.where(np.arange(S + self.block_size) < lengths[:, None],
                          np.pad(source, ((0, 0), (0, self.block_size))), 0)      # eos after the source
        return (3.0 * np.eye(self.V)[wanted],)                                     # memory: (B, S', V)

    def new_cache(self, batch_size):
        return ToyCache()

    def next_logits(self, idx, memory, cache=None):
        t = idx.shape[1] - 1 + (cache.length if cache is not None else 0)          # last position
        if cache is not None:
            cache.length += idx.shape[1]
        return memory[0][:, t] + self.bigram[idx[:, -1]]


def test_encoder_decoder_greedy_copies_its_source_once_encoded():
    model = ToySeq2Seq()
    source, lengths = np.array([[3, 5, 2, 1], [4, 4, 0, 0]]), np.array([4, 2])
    start = np.full((2, 1), 0)
    out = G.generate(model, start, 10, temperature=0, eos_id=0, source=source, source_lengths=lengths)
    assert model.encoded == 1                        # the source was encoded once for all steps
    assert [G.until_eos(row[1:], 0).tolist() for row in out] == [[3, 5, 2, 1], [4, 4]]


def test_encoder_decoder_cache_and_beams_equal_recomputation():
    model = ToySeq2Seq(seed=1)
    source = np.array([[3, 5, 2, 1, 1], [4, 4, 3, 0, 0]])
    lengths, start = np.array([5, 3]), np.zeros((2, 1), np.int64)
    runs = {cache: G.generate(model, start, 8, temperature=1.0, rng=np.random.default_rng(0), eos_id=0,
                              source=source, source_lengths=lengths, use_cache=cache) for cache in (True, False)}
    np.testing.assert_array_equal(runs[True], runs[False])
    beams = {cache: G.beam_search(model, np.array([0]), 8, beam_width=3, eos_id=0, source=source[1],
                                  source_length=3, use_cache=cache) for cache in (True, False)}
    for (a, sa), (b, sb) in zip(beams[True], beams[False]):
        np.testing.assert_array_equal(a, b)
        assert abs(sa - sb) < 1e-9
    best, score = beams[True][0]
    assert best.tolist() == [0, 4, 4, 3, 0]          # the copy, then eos
    ll = G.log_likelihood(model, best[None], 1, source=source[1:], source_lengths=[3])
    assert abs(score - ll[0]) < 1e-9
