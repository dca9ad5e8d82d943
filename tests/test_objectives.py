"""scratchlm.objectives (Chapter 9): BERT's masking and T5's span corruption.

Statistics are checked against their exact values with tolerances of a few binomial standard
deviations (seeded, so the same numbers every run); the span distribution of short rows is compared
with the exact distribution over all 2**L masks, derived here from the rule in the docstring.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.objectives import (IGNORE, bert_mask, seq2seq_batch, span_corrupt, span_noise_mask,
                                  stochastic_round)
from scratchlm.tokenizers import PAD, WordVocab, sentinels

SD = 4.5   # tolerance in standard deviations: a correct implementation fails one check in ~150,000


def within(observed: float, p: float, n: int) -> bool:
    """Is an observed frequency out of n trials within SD binomial standard deviations of p?"""
    return abs(observed - p) <= SD * math.sqrt(p * (1 - p) / n) + 1e-12


# ---- BERT ---------------------------------------------------------------------------------------

V, PAD_ID, CLS_ID, MASK_ID = 30, 27, 28, 29          # ordinary ids 0..26
SPECIAL = [PAD_ID, CLS_ID, MASK_ID]


def bert_batch(rng, B=400, T=250):
    """Rows <cls> w1 .. wn <pad> ...: ordinary ids, a <cls> in front, padding after a random length."""
    ids = rng.integers(0, 27, size=(B, T))
    ids[:, 0] = CLS_ID
    ids[np.arange(T) >= rng.integers(T // 2, T + 1, size=B)[:, None]] = PAD_ID
    return ids


def test_bert_mask_statistics():
    rng = np.random.default_rng(0)
    ids = bert_batch(rng)
    inputs, targets = bert_mask(ids, MASK_ID, V, SPECIAL, rng=rng)
    eligible = ~np.isin(ids, SPECIAL)
    chosen = targets != IGNORE
    n_eligible, n_chosen = int(eligible.sum()), int(chosen.sum())
    assert within(n_chosen / n_eligible, 0.15, n_eligible)
    masked = (inputs == MASK_ID) & chosen
    same = (inputs == ids) & chosen
    assert within(masked.sum() / n_chosen, 0.8, n_chosen)
    # a random token is the original one with probability 1/27: unchanged = 0.1 + 0.1 / 27
    assert within(same.sum() / n_chosen, 0.1 + 0.1 / 27, n_chosen)
    random = chosen & ~masked & ~same
    assert within(random.sum() / n_chosen, 0.1 * 26 / 27, n_chosen)
    # random tokens: uniform over the 27 ordinary ids, never a special
    counts = np.bincount(inputs[random], minlength=V)
    assert counts[27:].sum() == 0
    assert all(within(c / random.sum(), 1 / 27, int(random.sum())) for c in counts[:27])


def test_bert_mask_targets_are_exact():
    rng = np.random.default_rng(1)
    ids = bert_batch(rng, B=50, T=40)
    inputs, targets = bert_mask(ids, MASK_ID, V, SPECIAL, mask_prob=0.5, rng=rng)
    chosen = targets != IGNORE
    assert inputs.shape == targets.shape == ids.shape and inputs.dtype == targets.dtype == np.int64
    np.testing.assert_array_equal(targets[chosen], ids[chosen])       # the original token where chosen
    np.testing.assert_array_equal(inputs[~chosen], ids[~chosen])      # everything else untouched
    assert not chosen[np.isin(ids, SPECIAL)].any()                    # <cls>, <pad> are never chosen
    changed = inputs != ids
    assert np.isin(inputs[changed], [*range(27), MASK_ID]).all()     # <mask> or an ordinary token
    # same generator state -> same masking
    first, again = (bert_mask(ids, MASK_ID, V, SPECIAL, rng=np.random.default_rng(7)) for _ in range(2))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 6), st.integers(0, 12), st.floats(0.01, 0.99), st.floats(0, 1), st.integers(0, 10**6))
def test_bert_mask_keeps_its_contract_on_any_shape(B, T, p, mask_frac, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, size=(B, T))
    inputs, targets = bert_mask(ids, MASK_ID, V, SPECIAL, mask_prob=p, mask_frac=mask_frac,
                                random_frac=(1 - mask_frac) / 2, rng=rng)
    chosen = targets != IGNORE
    assert (targets[chosen] == ids[chosen]).all() and (inputs[~chosen] == ids[~chosen]).all()
    assert not chosen[np.isin(ids, SPECIAL)].any()


def test_bert_mask_with_a_tokenizer():
    tok = WordVocab.fit("the cat sat on the mat").with_specials([PAD, "<mask>", "<cls>"])
    ids = np.concatenate([[tok.cls_id], tok.encode("the cat sat on the mat"), [tok.pad_id] * 3])
    inputs, targets = bert_mask(ids[None], tok.mask_id, tok.vocab_size, tok.special_ids(), mask_prob=0.99,
                                rng=np.random.default_rng(0))
    chosen = targets[0] != IGNORE
    assert chosen[1:7].all() and not chosen[[0, 7, 8, 9]].any()
    assert "<mask>" in tok.decode(inputs[0])


# ---- T5: the noise mask -----------------------------------------------------------------------

def exact_mask_distribution(L: int, density: float, mean_span: float):
    """Every mask of length L, its span starts, and its probability under the docstring's rule."""
    masks = ((np.arange(2 ** L)[:, None] >> np.arange(L)) & 1).astype(bool)          # (2^L, L)
    starts = masks & ~np.pad(masks, ((0, 0), (1, 0)))[:, :-1]
    N, K = masks.sum(1), starts.sum(1)

    def rounded(x, low, high):      # {value: probability} of clip(stochastic_round(x), low, high)
        f = math.floor(x)
        out = {}
        for v, p in ((f, 1 - (x - f)), (f + 1, x - f)):
            if p > 0:
                v = min(max(v, low), high)
                out[v] = out.get(v, 0) + p
        return out

    prob = np.zeros(len(masks))
    for n, pn in rounded(L * density, 1, L - 1).items():
        for k, pk in rounded(n / mean_span, 1, min(n, L - n + 1)).items():
            same = (N == n) & (K == k)
            assert same.sum() == math.comb(n - 1, k - 1) * math.comb(L - n + 1, k)   # the masks counted
            prob[same] += pn * pk / same.sum()                                      # all equally likely
    return masks, starts, prob


@pytest.mark.parametrize("L,density,mean_span", [(10, 0.15, 3), (13, 0.15, 3), (16, 0.15, 3), (12, 0.4, 2)])
def test_short_rows_get_the_exact_mask_distribution(L, density, mean_span):
    R = 30_000
    drawn = span_noise_mask(np.full(R, L), density, mean_span, rng=np.random.default_rng(0))
    masks, starts, prob = exact_mask_distribution(L, density, mean_span)
    # every position: how often it is noise and how often a span starts there
    drawn_starts = drawn & ~np.pad(drawn, ((0, 0), (1, 0)))[:, :-1]
    for observed, exact in ((drawn.mean(0), prob @ masks), (drawn_starts.mean(0), prob @ starts)):
        assert all(within(o, e, R) for o, e in zip(observed, exact)), (observed, exact)
    # spans start wherever they can (everywhere but the last N_min - 1 positions; at L = 10, where
    # N = 1 half the time, everywhere); the last token is not always noise, the first sometimes is
    assert ((drawn_starts.sum(0) > 0) == (prob @ starts > 0)).all()
    assert (drawn_starts[:, :L - 2].sum(0) > 0).all()
    assert 0 < drawn[:, -1].mean() < 0.5 and drawn[:, 0].mean() > 0
    # the masks themselves: each with its exact probability (chi-square), none outside the support
    code = drawn @ (1 << np.arange(L))
    freq = np.bincount(code, minlength=2 ** L)
    assert freq[prob == 0].sum() == 0
    expected = R * prob[prob > 0]
    chi2 = (((freq[prob > 0] - expected) ** 2) / expected).sum()
    df = len(expected) - 1
    assert chi2 < df + SD * math.sqrt(2 * df), (chi2, df)


@pytest.mark.parametrize("L", [10, 20, 30, 64])
def test_noise_and_span_counts_match_their_expectation(L):
    R = 20_000
    drawn = span_noise_mask(np.full(R, L), rng=np.random.default_rng(1))
    n_noise = drawn.sum(1)
    n_spans = (drawn & ~np.pad(drawn, ((0, 0), (1, 0)))[:, :-1]).sum(1)
    # N = L d exactly on average (the clip to [1, L-1] does not bind for L >= 7)
    sd_n = math.sqrt((L * 0.15 % 1) * (1 - L * 0.15 % 1))
    assert abs(n_noise.mean() - L * 0.15) <= SD * sd_n / math.sqrt(R) + 1e-12
    # K = stochastic_round(N / 3), clipped to at least 1: its mean given the drawn N
    expected_k = np.where(n_noise < 3, 1, n_noise / 3)
    assert abs(n_spans.mean() - expected_k.mean()) <= SD * 0.5 / math.sqrt(R)


def test_long_rows_have_density_and_mean_span_length():
    drawn = span_noise_mask(np.full(200, 1000), rng=np.random.default_rng(2))
    n_spans = (drawn & ~np.pad(drawn, ((0, 0), (1, 0)))[:, :-1]).sum()
    assert abs(drawn.mean() - 0.15) < 0.001
    assert abs(drawn.sum() / n_spans - 3) < 0.02


def test_rows_of_different_lengths_and_stochastic_round():
    lengths = np.array([2, 5, 30, 7])
    mask = span_noise_mask(lengths, rng=np.random.default_rng(3))
    assert mask.shape == (4, 30)
    assert not mask[np.arange(30) >= lengths[:, None]].any()          # nothing past a row's end
    assert (mask.sum(1) >= 1).all() and (mask.sum(1) <= lengths - 1).all()
    r = stochastic_round(np.full(100_000, 2.3), np.random.default_rng(0))
    assert set(np.unique(r)) == {2, 3} and within((r == 3).mean(), 0.3, len(r))


# ---- T5: the corrupted pairs --------------------------------------------------------------------

def test_span_corruption_on_the_papers_example():
    text = "Thank you for inviting me to your party last week ."
    tok = WordVocab.fit(text).with_specials([PAD, *sentinels(3)])
    ids = tok.encode(text)[None]
    noise = np.isin(np.array(text.split()), ["for", "inviting", "last"])[None]
    batch = span_corrupt(ids, tok.sentinel_ids(), noise=noise, eos_id=tok.eos_id, pad_id=tok.pad_id)
    assert tok.decode(batch.src[0]) == "Thank you <extra_id_0> me to your party <extra_id_1> week . </s>"
    assert tok.decode(batch.targets[0]) == "<extra_id_0> for inviting <extra_id_1> last <extra_id_2> </s>"
    assert tok.decode(batch.dec_in[0]) == "<pad> <extra_id_0> for inviting <extra_id_1> last <extra_id_2>"
    assert batch.src_lengths.tolist() == [11]


def reconstruct(src, targets, sentinel_ids):
    """The original tokens: each sentinel of src replaced by what follows it in targets (plain Python)."""
    spans, current = {}, None
    for t in targets:
        if t in sentinel_ids:
            current = spans.setdefault(t, [])
        else:
            current.append(t)
    return [x for s in src for x in (spans[s] if s in sentinel_ids else [s])]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(2, 40), min_size=1, max_size=6), st.floats(0.05, 0.9), st.floats(1, 6),
       st.integers(0, 10**6))
def test_span_corruption_loses_nothing(lengths, density, mean_span, seed):
    rng = np.random.default_rng(seed)
    L, sentinel_ids = max(lengths), list(range(100, 141))
    ids = rng.integers(0, 50, size=(len(lengths), L))
    b = span_corrupt(ids, sentinel_ids, lengths=lengths, noise_density=density, mean_span_length=mean_span,
                     eos_id=99, pad_id=98, rng=rng)
    for row, n in enumerate(lengths):
        src = b.src[row, :b.src_lengths[row]].tolist()
        tgt = b.targets[row][b.targets[row] != IGNORE].tolist()
        assert src[-1] == 99 and tgt[-1] == 99 and (b.src[row, b.src_lengths[row]:] == 98).all()
        assert reconstruct(src[:-1], tgt[:-1], set(sentinel_ids)) == ids[row, :n].tolist()
        k = sum(t in sentinel_ids for t in src)               # spans; sentinels used in order
        assert [t for t in tgt if t in sentinel_ids] == sentinel_ids[:k + 1]
        assert len(tgt) - 1 == (n - (len(src) - 1 - k)) + k + 1    # noise tokens + K + final sentinel
        # teacher forcing: the decoder reads <pad> then the targets but the last
        assert b.dec_in[row, 0] == 98 and b.dec_in[row, 1:len(tgt)].tolist() == tgt[:-1]


def test_span_corruption_is_seeded_and_needs_sentinels():
    ids = np.arange(60).reshape(2, 30)
    a = span_corrupt(ids, range(100, 110), rng=np.random.default_rng(4))
    b = span_corrupt(ids, range(100, 110), rng=np.random.default_rng(4))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match=r"row 0 has \d+ spans and needs \d+ sentinels .* 1 sentinel_ids"):
        span_corrupt(ids, [100], rng=np.random.default_rng(4))


def test_seq2seq_batch_pads_and_shifts():
    b = seq2seq_batch([[5, 6, 7], [8]], [[1], [2, 3]], pad_id=0, start_id=9, eos_id=4)
    assert b.src.tolist() == [[5, 6, 7, 4], [8, 4, 0, 0]] and b.src_lengths.tolist() == [4, 2]
    assert b.targets.tolist() == [[1, 4, IGNORE], [2, 3, 4]]
    assert b.dec_in.tolist() == [[9, 1, 0], [9, 2, 3]]
