"""Exercises of Chapter 2 (smoothing), one group of tests per exercise, each marked exN_M.

Run one exercise with `python -m pytest -m ex2_4 tests/test_exercises_ch02.py`. Each test checks one
library function on its own, on count-of-counts or a corpus small enough to count on paper, against
numbers worked out by hand, so it fails only on its own exercise.
"""

import re
import warnings

import numpy as np
import pytest

from scratchlm import ngram
from scratchlm.ngram import DiscountFallbackWarning
from scratchlm.ngram.counts import adjust_counts
from scratchlm.ngram.discounts import good_turing_discounts, kneser_ney_discounts
from scratchlm.ngram.smoothing import initial_probabilities, witten_bell

TOY = [["a", "b"], ["a", "b", "b"], ["b", "a"]]
# unigram counts: a 3, b 4, </s> 3 -- 10 predicted tokens; |V| = 4 words can be predicted (<unk>, </s>, a, b)
# bigrams: <s> a 2, <s> b 1, a b 2, a </s> 1, b </s> 2, b b 1, b a 1


def count(sentences, order: int) -> ngram.NgramCounts:
    vocab = ngram.build_vocab(sentences)
    return ngram.count_ngrams(ngram.encode(vocab, sentences), order, vocab)


def index_of(counts: ngram.NgramCounts, *words: str) -> int:
    """Row of the n-gram `words` in its order's table."""
    want = counts.vocab.ids(words).tolist()
    rows = counts.ngrams(len(words)).tolist()
    assert want in rows, f"{' '.join(words)!r} is not an n-gram of the test corpus"
    return rows.index(want)


def fallback_warned(call, match: str = ""):
    """call() -> (its result, whether it warned DiscountFallbackWarning with `match` in the message).

    Not `pytest.warns`: in a student copy the stub's NotImplementedError must be the test's failure,
    and an exception leaving a `pytest.warns` block is reported as "DID NOT WARN" instead."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    return result, any(issubclass(w.category, DiscountFallbackWarning) and re.search(match, str(w.message))
                       for w in caught)


def random_corpus(seed: int, n: int = 40) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    return [list(rng.choice(list("abcde"), size=rng.integers(0, 8))) for _ in range(n)]


# ---------------------------------------------------------------------------------------------
# Exercise 2.1: Katz's discount ratios from Good-Turing (discounts.good_turing_discounts)
# ---------------------------------------------------------------------------------------------

@pytest.mark.ex2_1
def test_katz_ratios_by_hand():
    n = np.array([0, 10, 4, 2])  # n_1 = 10 n-grams seen once, n_2 = 4 twice, n_3 = 2 three times
    d = good_turing_discounts(n, 2, order=2)
    assert len(d) == 3 and d[0] == 1.0, "d has one ratio per count 0..max_count, d[0] = 1 (unused)"
    assert d[1] == pytest.approx(0.5), ("d_1 = (r*/r - A) / (1 - A) with Good-Turing r* = 2 n_2 / n_1 = 0.8 "
                                        "and A = (K+1) n_(K+1) / n_1 = 3 * 2 / 10 = 0.6: (0.8 - 0.6) / 0.4 = 0.5")
    assert d[2] == pytest.approx(0.375), ("d_2: r* = 3 n_3 / n_2 = 1.5, r*/r = 0.75, A = 0.6: "
                                          "(0.75 - 0.6) / 0.4 = 0.375")


@pytest.mark.ex2_1
def test_katz_takes_exactly_the_good_turing_mass_for_the_unseen():
    n = np.array([0, 120, 40, 20, 10, 6, 4])
    d = good_turing_discounts(n, 5, order=3)
    assert len(d) == 6, "max_count = 5: ratios for counts 0..5 (counts above 5 are not discounted)"
    taken = sum(n[r] * r * (1 - d[r]) for r in range(1, 6))
    assert taken == pytest.approx(n[1]), (
        f"the counts taken from n-grams seen 1..5 times, sum_r n_r r (1 - d_r) = {taken:.4g}, should equal "
        "n_1 = 120: Good-Turing's estimate of the mass of everything unseen is n_1 / N")


@pytest.mark.ex2_1
def test_katz_falls_back_when_a_is_at_least_one():
    n = np.array([0, 10, 4, 20])  # A = 3 * 20 / 10 = 6 >= 1: Katz's rescaling is impossible
    d, warned = fallback_warned(lambda: good_turing_discounts(n, 2, order=1))
    assert warned, "A >= 1: warn with _fallback(why, order) (a DiscountFallbackWarning)"
    np.testing.assert_allclose(d, [1.0, 0.5, 0.5], err_msg=(
        "when A = (K+1) n_(K+1) / n_1 >= 1, call _fallback(why, order) and return "
        "_ratios_from_absolute(max_count): D = 0.5, 1 as ratios (r - D_r) / r = 0.5, 0.5"))


@pytest.mark.ex2_1
def test_katz_ratio_above_one_is_left_undiscounted():
    n = np.array([0, 100, 40, 30, 10])  # A = 4 * 10 / 100 = 0.4
    d, warned = fallback_warned(lambda: good_turing_discounts(n, 3, order=2), match="outside")
    assert warned, "d_2 > 1: the check after your code warns that it is outside (0, 1]; keep it"
    # d_1 = (2*40/100 - 0.4) / 0.6 = 2/3;  d_2 = (3*30/(2*40) - 0.4) / 0.6 = 1.208 > 1 -> 1;
    # d_3 = (4*10/(3*30) - 0.4) / 0.6 = 2/27
    np.testing.assert_allclose(d, [1.0, 2 / 3, 1.0, 2 / 27], err_msg=(
        "Katz ratios for n = [0, 100, 40, 30, 10], K = 3: d_1 = 2/3, d_2 = 1.208 (outside (0, 1], so "
        "left at 1 by the check after your code), d_3 = 2/27; store them in d[1:]"))


# ---------------------------------------------------------------------------------------------
# Exercise 2.2: Witten-Bell interpolation weights (smoothing.witten_bell)
# ---------------------------------------------------------------------------------------------
P_A = (3 + 3 / 4) / 13  # unigrams: c(a) = 3; c(.) = 10 tokens, N1+(.) = 3 types seen, |V| = 4
P_B = (4 + 3 / 4) / 13


@pytest.mark.ex2_2
def test_witten_bell_unigrams():
    lm = witten_bell(count(TOY, 2))
    assert lm.prob("b") == pytest.approx(P_B), (
        "p(b) = u(b) + gamma() / |V| with u(b) = c(b) / (c(.) + N1+(.)) = 4 / 13 and "
        "gamma() = N1+(.) / (c(.) + N1+(.)) = 3 / 13 (3 word types seen: a, b, </s>), |V| = 4")
    assert lm.prob("<unk>") == pytest.approx(3 / 13 / 4), \
        "an unseen word gets only gamma() / |V| = (3 / 13) / 4"


@pytest.mark.ex2_2
def test_witten_bell_bigrams():
    lm = witten_bell(count(TOY, 2))
    # after a: c(a .) = 3 tokens, N1+(a .) = 2 types (b, </s>)
    assert lm.prob("b", ["a"]) == pytest.approx((2 + 2 * P_B) / (3 + 2)), (
        "p(b | a) = u(b | a) + gamma(a) p(b) = c(a b) / (c(a .) + N1+(a .)) + N1+(a .) / (c(a .) + N1+(a .)) p(b)"
        " = 2/5 + 2/5 p(b)")
    assert lm.prob("a", ["a"]) == pytest.approx(2 / 5 * P_A), "p(a | a) = 0 + gamma(a) p(a): a never follows a"
    assert lm.prob("a", ["</s>"]) == pytest.approx(P_A), \
        "a context never followed by anything (</s>) has gamma = 1: p(a | </s>) = p(a)"


@pytest.mark.ex2_2
def test_witten_bell_sums_to_one():
    lm = witten_bell(count(random_corpus(3), 3))
    for context in ([], ["<s>"], ["<s>", "a"], ["b", "c"], ["e", "e"], ["</s>", "a"]):
        total = np.exp(lm.next_logprobs(context)).sum()
        assert total == pytest.approx(1.0, abs=1e-9), \
            f"p(. | {' '.join(context) or 'empty context'}) sums to {total:.6f}, not 1: check u and gamma"


# ---------------------------------------------------------------------------------------------
# Exercise 2.3: discounted probabilities and back-off weights (smoothing.initial_probabilities)
# ---------------------------------------------------------------------------------------------

def raw_counts(counts: ngram.NgramCounts) -> list[np.ndarray]:
    """The counts each order uses, raw here; the unigram <s> is 0 (never predicted), as the callers pass it."""
    used = [c.astype(np.int64) for c in counts.count]
    used[0][counts.vocab.bos_id] = 0
    return used


@pytest.mark.ex2_3
def test_one_discount_by_hand():
    counts = count(TOY, 2)
    D = np.array([0.0, 0.5, 0.5, 0.5])
    u, gamma = initial_probabilities(counts, raw_counts(counts), [D, D])
    ids = counts.vocab.index
    assert len(u) == 2 and len(gamma) == 2, "one u and one gamma array per order"
    assert u[0][ids["b"]] == pytest.approx(0.35), "u(b) = (c(b) - D) / c(.) = (4 - 0.5) / 10"
    assert u[0][ids["<unk>"]] == 0.0, "a count of 0 is not discounted (D[0] = 0): u(<unk>) = 0"
    assert np.asarray(gamma[0]).tolist() == pytest.approx([0.15]), \
        "gamma() = D * (number of words seen) / c(.) = 0.5 * 3 / 10, one value for the empty context"
    assert u[1][index_of(counts, "a", "b")] == pytest.approx(0.5), "u(b | a) = (c(a b) - D) / c(a .) = (2 - 0.5) / 3"
    assert gamma[1][ids["a"]] == pytest.approx(1 / 3), "gamma(a) = D * N1+(a .) / c(a .) = 0.5 * 2 / 3"
    assert gamma[1][ids["</s>"]] == 1.0, "a context with no continuation (</s>) gives all its mass away: gamma = 1"


@pytest.mark.ex2_3
def test_three_discounts_by_count():
    counts = count(TOY, 2)
    D = np.array([0.0, 0.5, 1.0, 1.5])  # D1, D2, D3+: index with min(count, 3)
    u, gamma = initial_probabilities(counts, raw_counts(counts), [D, D])
    ids = counts.vocab.index
    assert u[0][ids["b"]] == pytest.approx(0.25), "u(b) = (4 - D3+) / 10 = (4 - 1.5) / 10: counts of 3 or more use D3+"
    assert gamma[0][0] == pytest.approx(0.45), "gamma() = (D3+ + D3+ + D3+) / 10: a, b and </s> are all seen 3+ times"
    assert u[1][index_of(counts, "<s>", "a")] == pytest.approx(1 / 3), "u(a | <s>) = (2 - D2) / 3"
    assert u[1][index_of(counts, "<s>", "b")] == pytest.approx(1 / 6), "u(b | <s>) = (1 - D1) / 3"
    assert gamma[1][ids["<s>"]] == pytest.approx(0.5), "gamma(<s>) = (D2 + D1) / c(<s> .) = 1.5 / 3"


@pytest.mark.ex2_3
def test_discounted_mass_plus_back_off_weight_is_one():
    counts = count(random_corpus(4), 3)
    D = np.array([0.0, 0.6, 1.1, 1.4])
    u, gamma = initial_probabilities(counts, raw_counts(counts), [D, D, D])
    for k in (2, 3):
        per_context = np.bincount(counts.context[k - 1], weights=u[k - 1], minlength=len(counts.count[k - 2]))
        seen = np.bincount(counts.context[k - 1], minlength=len(counts.count[k - 2])) > 0
        np.testing.assert_allclose((per_context + gamma[k - 1])[seen], 1.0, rtol=1e-12, err_msg=(
            f"order {k}: for every seen context, sum_w u(w | h) + gamma(h) should be 1"))
        assert (np.asarray(gamma[k - 1])[~seen] == 1.0).all(), f"order {k}: gamma = 1 where a context has no continuation"
    assert u[0].sum() + gamma[0][0] == pytest.approx(1.0), "unigrams: sum_w u(w) + gamma() should be 1"


# ---------------------------------------------------------------------------------------------
# Exercise 2.4: Kneser-Ney continuation counts (counts.adjust_counts)
# ---------------------------------------------------------------------------------------------
SAN_FRANCISCO = [["san", "francisco"], ["san", "francisco"], ["in", "san", "francisco"],
                 ["the", "cat"], ["a", "cat"], ["the", "cat"]]


@pytest.mark.ex2_4
def test_unigrams_count_the_words_they_follow():
    counts = count(SAN_FRANCISCO, 3)
    adjusted = adjust_counts(counts)
    assert len(adjusted) == 3 and all(len(a) == len(c) for a, c in zip(adjusted, counts.count)), \
        "one array per order, aligned with counts.count"
    a, ids = adjusted[0], counts.vocab.index
    for word, want, why in [("francisco", 1, "it occurs 3 times, always after 'san'"),
                            ("san", 2, "it follows <s> and 'in'"),
                            ("cat", 2, "it follows 'the' and 'a'"),
                            ("</s>", 2, "sentences end after 'francisco' and 'cat'"),
                            ("<s>", 0, "<s> is never predicted: it gets 0"),
                            ("<unk>", 0, "a word never seen follows nothing")]:
        assert a[ids[word]] == want, f"continuation count of '{word}' should be {want}: {why}; got {a[ids[word]]}"


@pytest.mark.ex2_4
def test_middle_orders_count_distinct_left_words_unless_they_start_with_s():
    counts = count(SAN_FRANCISCO, 3)
    a = adjust_counts(counts)[1]
    for words, want, why in [(("san", "francisco"), 2, "follows <s> and 'in' (seen 3 times)"),
                             (("cat", "</s>"), 2, "follows 'the' and 'a' (seen 3 times)"),
                             (("francisco", "</s>"), 1, "always follows 'san'"),
                             (("<s>", "san"), 2, "nothing precedes <s>, so it keeps its raw count 2"),
                             (("<s>", "the"), 2, "starts with <s>: raw count 2")]:
        got = a[index_of(counts, *words)]
        assert got == want, f"adjusted count of '{' '.join(words)}' should be {want}: it {why}; got {got}"


@pytest.mark.ex2_4
def test_highest_order_keeps_raw_counts_and_counts_are_not_modified():
    counts = count(SAN_FRANCISCO, 2)
    raw = [c.copy() for c in counts.count]
    adjusted = adjust_counts(counts)
    assert np.asarray(adjusted[1]).tolist() == raw[1].tolist(), \
        "the highest order (here bigrams) keeps its raw counts"
    assert all(np.issubdtype(np.asarray(a).dtype, np.integer) for a in adjusted), "adjusted counts are integers (int64)"
    for k, (before, after) in enumerate(zip(raw, counts.count), 1):
        assert before.tolist() == after.tolist(), \
            f"adjust_counts changed counts.count[{k - 1}]: return new arrays (copy the highest order)"
    unigrams = count(SAN_FRANCISCO, 1)
    raw = unigrams.count[0].copy()
    adjusted = adjust_counts(unigrams)[0]
    bos = unigrams.vocab.bos_id
    assert adjusted[bos] == 0, "<s> is never predicted: its adjusted count is 0, even in a unigram model"
    assert np.delete(adjusted, bos).tolist() == np.delete(raw, bos).tolist(), \
        "in a unigram model the unigrams are the highest order: raw counts (but <s> -> 0)"
    assert unigrams.count[0].tolist() == raw.tolist(), \
        "adjust_counts changed the raw unigram counts while zeroing <s>: copy them first"


# ---------------------------------------------------------------------------------------------
# Exercise 2.5: modified Kneser-Ney discounts (discounts.kneser_ney_discounts)
# ---------------------------------------------------------------------------------------------
N_R = np.array([0, 100, 40, 20, 10])  # n_1..n_4 of one order
Y = 100 / (100 + 2 * 40)              # = 5/9


@pytest.mark.ex2_5
def test_three_discounts_by_hand():
    D = kneser_ney_discounts(N_R, order=2)
    assert len(D) == 4 and D[0] == 0.0, "return [0, D1, D2, D3+] (index 0: a count of 0 is not discounted)"
    np.testing.assert_allclose(D[1:], [5 / 9, 7 / 6, 17 / 9], err_msg=(
        "Chen & Goodman: Y = n1 / (n1 + 2 n2) = 5/9 and D_r = r - (r + 1) Y n_(r+1) / n_r: "
        "D1 = 1 - 2 Y 40/100 = 5/9, D2 = 2 - 3 Y 20/40 = 7/6, D3+ = 3 - 4 Y 10/20 = 17/9"))


@pytest.mark.ex2_5
def test_one_discount_when_not_modified():
    D = kneser_ney_discounts(N_R, order=2, modified=False)
    np.testing.assert_allclose(D, [0.0, Y, Y, Y], err_msg=(
        "modified=False: one discount D = n1 / (n1 + 2 n2) = 5/9 for every count: [0, D, D, D]"))


@pytest.mark.ex2_5
def test_discount_outside_its_range_falls_back():
    n = np.array([0, 10, 1, 30, 1])  # D2 = 2 - 3 (10/12) 30 / 1 < 0: no sensible discount
    D, warned = fallback_warned(lambda: kneser_ney_discounts(n, order=1), match="outside")
    assert warned, "D2 < 0: warn with _fallback(why, order), saying D2 is outside (0, 2]"
    np.testing.assert_allclose(D, [0.0, 0.5, 1.0, 1.5], err_msg=(
        "when a D_r falls outside (0, r], call _fallback(why, order) and return [0, *FALLBACK]"))
