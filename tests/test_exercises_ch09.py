"""Exercises of Chapter 9 (pretrained Transformers), one group of tests per exercise, each marked exN_M.

Run one exercise with `python -m pytest -m ex9_2 tests/test_exercises_ch09.py`.

    9.1  visible_keys (models/masks.py): which keys a query may see, checked on masks small enough to
         write down, then against the weights of the library's attention op
    9.2  bert_mask (objectives.py): BERT's 15% and 80/10/10, against their exact rates with tolerances
         of a few binomial standard deviations (seeded, so the same numbers every run)
    9.3  span_noise_mask (objectives.py): where T5's noise spans go; on short rows the drawn masks are
         compared with the exact distribution over all 2**L masks, derived here from the docstring's rule
    9.4  span_corrupt (objectives.py): inputs and targets from a given noise mask (so these tests do not
         need 9.3), on the paper's example and on random masks

Unmarked tests at the end check the pieces around the exercises (bad input, stochastic_round, the
whole span corruption end to end).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.models.attention import scaled_dot_product_attention
from scratchlm.models.masks import visible_keys, visible_mask
from scratchlm.objectives import IGNORE, bert_mask, span_corrupt, span_noise_mask, stochastic_round
from scratchlm.tokenizers import PAD, WordVocab, sentinels

SD = 4.5   # tolerance in standard deviations: a correct implementation fails one check in ~150,000


def within(observed: float, p: float, n: int) -> bool:
    """Is an observed frequency out of n trials within SD binomial standard deviations of p?"""
    return abs(observed - p) <= SD * math.sqrt(p * (1 - p) / n) + 1e-12


# ---------------------------------------------------------------------------------------------
# Exercise 9.1: the keys a query may see (models/masks.py, visible_keys)
# ---------------------------------------------------------------------------------------------

@pytest.mark.ex9_1
@pytest.mark.parametrize("Tq, Tk, causal, want", [
    (4, 4, True, [1, 2, 3, 4]),          # a decoder: each position sees itself and the past
    (2, 5, True, [4, 5]),                # two new queries after three cached keys (Chapter 7's KV cache)
    (1, 6, True, [6]),                   # one new token sees everything so far
    (3, 3, False, [3, 3, 3]),            # an encoder: every query sees the whole sequence
    (2, 5, False, [5, 5]),               # cross-attention: 2 decoder queries over 5 source keys
])
def test_visible_keys_without_padding(Tq, Tk, causal, want):
    got = visible_keys(Tq, Tk, causal)
    assert got.tolist() == want, (f"visible_keys({Tq}, {Tk}, causal={causal}) should be {want}: a causal query i "
                                  f"sits at position i + Tk - Tq and sees keys 0 .. its own; otherwise all Tk")
    assert got.dtype == np.int64


@pytest.mark.ex9_1
@pytest.mark.parametrize("Tq, Tk, causal, lengths, want", [
    (3, 4, False, [4, 2, 0], [[4, 4, 4], [2, 2, 2], [0, 0, 0]]),   # padding is never seen; an empty row sees 0
    (4, 4, True, [4, 2], [[1, 2, 3, 4], [1, 2, 2, 2]]),            # causal and padded: the smaller of the two
    (2, 5, True, [3, 5], [[3, 3], [4, 5]]),                         # ... with cached keys too
])
def test_visible_keys_with_key_lengths(Tq, Tk, causal, lengths, want):
    got = visible_keys(Tq, Tk, causal, np.array(lengths))
    assert got.tolist() == want, (f"visible_keys({Tq}, {Tk}, causal={causal}, key_lengths={lengths}) should be "
                                  f"{want}: row b sees only its key_lengths[b] real keys, causal or not")
    assert got.shape == (len(lengths), Tq)


@pytest.mark.ex9_1
def test_visible_keys_with_one_length_and_more_queries_than_keys():
    assert visible_keys(3, 3, False, 2).tolist() == [2, 2, 2], "an int key_lengths is one sequence's: shape (Tq,)"
    # causal queries are the LAST Tq positions: with Tq > Tk the first ones come before every key
    assert visible_keys(3, 1, True).tolist() == [0, 0, 1], "a count of keys is never negative"


@pytest.mark.ex9_1
@pytest.mark.parametrize("causal, Tq, Tk", [(True, 5, 5), (True, 3, 6), (False, 4, 4), (False, 3, 6)])
def test_visible_mask_is_where_the_attention_op_puts_weight(causal, Tq, Tk):
    rng = np.random.default_rng(0)
    lengths = np.array([Tk, Tk - 2, 1])
    q, k, v = (rng.normal(size=(3, 2, T, 4)) for T in (Tq, Tk, Tk))     # (B, heads, T, hs)
    _, P = scaled_dot_product_attention(q, k, v, causal=causal, key_lengths=lengths, return_weights=True)
    np.testing.assert_array_equal(P > 0, np.broadcast_to(visible_mask(Tq, Tk, causal, lengths)[:, None], P.shape),
                                  err_msg="the attention kernel gives weight exactly to the keys visible_keys allows")


# ---------------------------------------------------------------------------------------------
# Exercise 9.2: BERT's masking (objectives.py, bert_mask)
# ---------------------------------------------------------------------------------------------

V, PAD_ID, CLS_ID, MASK_ID = 30, 27, 28, 29          # ordinary ids 0..26
SPECIAL = [PAD_ID, CLS_ID, MASK_ID]


def bert_batch(rng, B=400, T=250):
    """Rows <cls> w1 .. wn <pad> ...: ordinary ids, a <cls> in front, padding after a random length."""
    ids = rng.integers(0, 27, size=(B, T))
    ids[:, 0] = CLS_ID
    ids[np.arange(T) >= rng.integers(T // 2, T + 1, size=B)[:, None]] = PAD_ID
    return ids


@pytest.mark.ex9_2
def test_bert_mask_statistics():
    rng = np.random.default_rng(0)
    ids = bert_batch(rng)
    inputs, targets = bert_mask(ids, MASK_ID, V, SPECIAL, rng=rng)
    eligible = ~np.isin(ids, SPECIAL)
    chosen = targets != IGNORE
    n_eligible, n_chosen = int(eligible.sum()), int(chosen.sum())
    assert within(n_chosen / n_eligible, 0.15, n_eligible), \
        f"{n_chosen / n_eligible:.4f} of the non-special tokens chosen, expected 0.15 (mask_prob)"
    masked = (inputs == MASK_ID) & chosen
    same = (inputs == ids) & chosen
    assert within(masked.sum() / n_chosen, 0.8, n_chosen), \
        f"{masked.sum() / n_chosen:.4f} of the chosen tokens became <mask>, expected 0.8 (mask_frac)"
    # a random token is the original one with probability 1/27: unchanged = 0.1 + 0.1 / 27
    assert within(same.sum() / n_chosen, 0.1 + 0.1 / 27, n_chosen), \
        f"{same.sum() / n_chosen:.4f} of the chosen tokens kept, expected 0.1 (+ random draws of the same token)"
    random = chosen & ~masked & ~same
    assert within(random.sum() / n_chosen, 0.1 * 26 / 27, n_chosen), "random_frac = 0.1 of the chosen tokens"
    # random tokens: uniform over the 27 ordinary ids, never a special
    counts = np.bincount(inputs[random], minlength=V)
    assert counts[27:].sum() == 0, "a random token is never a special token (<pad>, <cls>, <mask>)"
    assert all(within(c / random.sum(), 1 / 27, int(random.sum())) for c in counts[:27]), \
        "random tokens are drawn uniformly from the ordinary ids"


@pytest.mark.ex9_2
def test_bert_mask_targets_are_exact():
    rng = np.random.default_rng(1)
    ids = bert_batch(rng, B=50, T=40)
    inputs, targets = bert_mask(ids, MASK_ID, V, SPECIAL, mask_prob=0.5, rng=rng)
    chosen = targets != IGNORE
    assert inputs.shape == targets.shape == ids.shape and inputs.dtype == targets.dtype == np.int64
    np.testing.assert_array_equal(targets[chosen], ids[chosen], err_msg="the target of a chosen token is the original")
    np.testing.assert_array_equal(inputs[~chosen], ids[~chosen], err_msg="tokens not chosen are left as they are")
    assert not chosen[np.isin(ids, SPECIAL)].any(), "<cls> and <pad> are never chosen"
    changed = inputs != ids
    assert np.isin(inputs[changed], [*range(27), MASK_ID]).all(), "a changed input is <mask> or an ordinary token"
    # same generator state -> same masking
    first, again = (bert_mask(ids, MASK_ID, V, SPECIAL, rng=np.random.default_rng(7)) for _ in range(2))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b, err_msg="draw every random number from `rng`")


@pytest.mark.ex9_2
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


@pytest.mark.ex9_2
def test_bert_mask_with_a_tokenizer():
    tok = WordVocab.fit("the cat sat on the mat").with_specials([PAD, "<mask>", "<cls>"])
    ids = np.concatenate([[tok.cls_id], tok.encode("the cat sat on the mat"), [tok.pad_id] * 3])
    inputs, targets = bert_mask(ids[None], tok.mask_id, tok.vocab_size, tok.special_ids(), mask_prob=0.99,
                                rng=np.random.default_rng(0))
    chosen = targets[0] != IGNORE
    assert chosen[1:7].all() and not chosen[[0, 7, 8, 9]].any()
    assert "<mask>" in tok.decode(inputs[0])


# ---------------------------------------------------------------------------------------------
# Exercise 9.3: where T5's noise spans go (objectives.py, span_noise_mask)
# ---------------------------------------------------------------------------------------------

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


def span_starts(mask: np.ndarray) -> np.ndarray:
    return mask & ~np.pad(mask, ((0, 0), (1, 0)))[:, :-1]


@pytest.mark.ex9_3
@pytest.mark.parametrize("L,density,mean_span", [(10, 0.15, 3), (13, 0.15, 3), (16, 0.15, 3), (12, 0.4, 2)])
def test_short_rows_get_the_exact_mask_distribution(L, density, mean_span):
    R = 30_000
    drawn = span_noise_mask(np.full(R, L), density, mean_span, rng=np.random.default_rng(0))
    masks, starts, prob = exact_mask_distribution(L, density, mean_span)
    # every position: how often it is noise and how often a span starts there
    drawn_starts = span_starts(drawn)
    for what, observed, exact in (("noise", drawn.mean(0), prob @ masks), ("a span start", drawn_starts.mean(0),
                                                                           prob @ starts)):
        assert all(within(o, e, R) for o, e in zip(observed, exact)), \
            f"how often each position is {what}: drawn {np.round(observed, 3)}, exact {np.round(exact, 3)}"
    # spans start wherever they can (everywhere but the last N_min - 1 positions; at L = 10, where
    # N = 1 half the time, everywhere); the last token is not always noise, the first sometimes is
    assert ((drawn_starts.sum(0) > 0) == (prob @ starts > 0)).all(), "a span can start at any position"
    assert (drawn_starts[:, :L - 2].sum(0) > 0).all(), "a span can start at any position"
    assert 0 < drawn[:, -1].mean() < 0.5 and drawn[:, 0].mean() > 0, \
        "T5's own layout always ends a row with noise and never starts one with it: place spans uniformly"
    # the masks themselves: each with its exact probability (chi-square), none outside the support
    code = drawn @ (1 << np.arange(L))
    freq = np.bincount(code, minlength=2 ** L)
    assert freq[prob == 0].sum() == 0, "a mask the rule never draws (spans touching, too many noise tokens)"
    expected = R * prob[prob > 0]
    chi2 = (((freq[prob > 0] - expected) ** 2) / expected).sum()
    df = len(expected) - 1
    assert chi2 < df + SD * math.sqrt(2 * df), \
        f"the masks are not equally likely given N and K (chi2 {chi2:.0f}, df {df})"


@pytest.mark.ex9_3
@pytest.mark.parametrize("L", [10, 20, 30, 64])
def test_noise_and_span_counts_match_their_expectation(L):
    R = 20_000
    drawn = span_noise_mask(np.full(R, L), rng=np.random.default_rng(1))
    n_noise = drawn.sum(1)
    n_spans = span_starts(drawn).sum(1)
    # N = L d exactly on average (the clip to [1, L-1] does not bind for L >= 7)
    sd_n = math.sqrt((L * 0.15 % 1) * (1 - L * 0.15 % 1))
    assert abs(n_noise.mean() - L * 0.15) <= SD * sd_n / math.sqrt(R) + 1e-12, \
        f"mean noise tokens {n_noise.mean():.3f}, expected L * 0.15 = {L * 0.15} (stochastic_round, not round)"
    # K = stochastic_round(N / 3), clipped to at least 1: its mean given the drawn N
    expected_k = np.where(n_noise < 3, 1, n_noise / 3)
    assert abs(n_spans.mean() - expected_k.mean()) <= SD * 0.5 / math.sqrt(R), \
        f"mean spans {n_spans.mean():.3f}, expected {expected_k.mean():.3f} = stochastic_round(N / mean_span_length)"


@pytest.mark.ex9_3
def test_long_rows_have_density_and_mean_span_length():
    drawn = span_noise_mask(np.full(200, 1000), rng=np.random.default_rng(2))
    n_spans = span_starts(drawn).sum()
    assert abs(drawn.mean() - 0.15) < 0.001, f"noise density {drawn.mean():.4f}, expected 0.15"
    assert abs(drawn.sum() / n_spans - 3) < 0.02, f"mean span length {drawn.sum() / n_spans:.3f}, expected 3"


@pytest.mark.ex9_3
def test_rows_of_different_lengths():
    lengths = np.array([2, 5, 30, 7])
    mask = span_noise_mask(lengths, rng=np.random.default_rng(3))
    assert mask.shape == (4, 30) and mask.dtype == bool
    assert not mask[np.arange(30) >= lengths[:, None]].any(), "nothing is noise past a row's end"
    assert (mask.sum(1) >= 1).all() and (mask.sum(1) <= lengths - 1).all(), \
        "every row hides at least one token and keeps at least one"


# ---------------------------------------------------------------------------------------------
# Exercise 9.4: T5's corrupted inputs and targets (objectives.py, span_corrupt), from a given mask
# ---------------------------------------------------------------------------------------------

def reconstruct(src, targets, sentinel_ids):
    """The original tokens: each sentinel of src replaced by what follows it in targets (plain Python)."""
    spans, current = {}, None
    for t in targets:
        if t in sentinel_ids:
            current = spans.setdefault(t, [])
        else:
            current.append(t)
    return [x for s in src for x in (spans[s] if s in sentinel_ids else [s])]


def check_corruption(ids, lengths, b, sentinel_ids, eos, pad) -> list[int]:
    """Every row of the Seq2SeqBatch b undoes to the original, sentinels in order, teacher forcing;
    returns the number of spans of each row."""
    spans = []
    for row, n in enumerate(lengths):
        src = b.src[row, :b.src_lengths[row]].tolist()
        tgt = b.targets[row][b.targets[row] != IGNORE].tolist()
        assert src[-1] == eos and tgt[-1] == eos, "the source and the target each end with eos"
        assert (b.src[row, b.src_lengths[row]:] == pad).all(), "sources are padded with pad_id after src_lengths"
        assert reconstruct(src[:-1], tgt[:-1], set(sentinel_ids)) == ids[row, :n].tolist(), \
            "putting each span back in place of its sentinel must give the original row"
        k = sum(t in sentinel_ids for t in src)
        assert [t for t in src if t in sentinel_ids] == sentinel_ids[:k], "one sentinel per span, in order"
        assert [t for t in tgt if t in sentinel_ids] == sentinel_ids[:k + 1], \
            "the target lists the spans' sentinels in order, then one more"
        # teacher forcing: the decoder reads <pad> then the targets but the last
        assert b.dec_in[row, 0] == pad and b.dec_in[row, 1:len(tgt)].tolist() == tgt[:-1]
        spans.append(k)
    return spans


@pytest.mark.ex9_4
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


@pytest.mark.ex9_4
def test_spans_at_both_ends_and_rows_of_different_lengths():
    ids = np.array([[1, 2, 3, 4, 5, 6], [7, 8, 9, 0, 0, 0]])
    noise = np.array([[1, 1, 0, 0, 1, 1], [0, 1, 0, 1, 1, 1]], bool)    # row 1's noise past its end is ignored
    b = span_corrupt(ids, [50, 51, 52, 53], lengths=[6, 3], noise=noise, pad_id=99)
    assert b.src.tolist() == [[50, 3, 4, 51], [7, 50, 9, 99]], "kept tokens and sentinels, in order; pad_id after"
    assert b.src_lengths.tolist() == [4, 3]
    assert b.targets.tolist() == [[50, 1, 2, 51, 5, 6, 52], [50, 8, 51, IGNORE, IGNORE, IGNORE, IGNORE]], \
        "sentinel, span, sentinel, span, ..., the final sentinel; IGNORE after a shorter target"


@pytest.mark.ex9_4
@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(2, 40), min_size=1, max_size=6), st.floats(0.0, 1.0), st.integers(0, 10**6))
def test_span_corruption_of_any_mask_loses_nothing(lengths, density, seed):
    rng = np.random.default_rng(seed)
    L, sentinel_ids = max(lengths), list(range(100, 141))
    ids = rng.integers(0, 50, size=(len(lengths), L))
    noise = rng.random((len(lengths), L)) < density        # any mask: spans may touch the ends or each other
    noise &= np.arange(L) < np.array(lengths)[:, None]
    b = span_corrupt(ids, sentinel_ids, lengths=lengths, noise=noise, eos_id=99, pad_id=98)
    spans = check_corruption(ids, lengths, b, sentinel_ids, eos=99, pad=98)
    assert spans == span_starts(noise).sum(1).tolist(), "one sentinel for each run of noise tokens"
    assert (b.src_lengths == np.array(lengths) - noise.sum(1) + spans + 1).all(), \
        "the source: the kept tokens, one sentinel per span, eos"


# ---------------------------------------------------------------------------------------------
# Around the exercises (not marked)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    ((3, 4, True, [5]), r"key_lengths \[5\] must be in \[0, n_keys=4\]"),
    ((3, 4, True, [-1]), r"key_lengths \[-1\] must be in"),
    ((3, 4, False, [[1]]), r"key_lengths must be an int or \(B,\) ints"),
    ((3, 4, False, [1.5]), r"key_lengths must be an int or \(B,\) ints"),
    ((-1, 4, False), r"n_queries must be an integer >= 0, got -1"),
    ((3, 2.0, False), r"n_keys must be an integer >= 0, got 2.0"),
])
def test_visible_keys_refuses_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        visible_keys(*args)


def test_stochastic_round():
    r = stochastic_round(np.full(100_000, 2.3), np.random.default_rng(0))
    assert set(np.unique(r)) == {2, 3} and within((r == 3).mean(), 0.3, len(r))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(2, 40), min_size=1, max_size=6), st.floats(0.05, 0.9), st.floats(1, 6),
       st.integers(0, 10**6))
def test_span_corruption_end_to_end_loses_nothing(lengths, density, mean_span, seed):
    rng = np.random.default_rng(seed)
    L, sentinel_ids = max(lengths), list(range(100, 141))
    ids = rng.integers(0, 50, size=(len(lengths), L))
    b = span_corrupt(ids, sentinel_ids, lengths=lengths, noise_density=density, mean_span_length=mean_span,
                     eos_id=99, pad_id=98, rng=rng)
    spans = check_corruption(ids, lengths, b, sentinel_ids, eos=99, pad=98)
    n_noise = (b.targets != IGNORE).sum(1) - np.array(spans) - 2        # target: spans' tokens, K + 1 sentinels, eos
    assert (n_noise >= 1).all() and (n_noise <= np.array(lengths) - 1).all()
