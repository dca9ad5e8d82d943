"""The nine estimators: every distribution sums to 1, the formulas by hand, the conventions."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scratchlm import ngram
from scratchlm.ngram import DiscountFallbackWarning

pytestmark = pytest.mark.filterwarnings("ignore::scratchlm.ngram.DiscountFallbackWarning")

WORDS = "abcde"
corpora = st.lists(st.lists(st.sampled_from(WORDS), max_size=6), min_size=1, max_size=12)
contexts = st.lists(st.sampled_from([*WORDS, "<unk>", "zz"]), max_size=4)


def seen_contexts(sentences):
    """Every sentence prefix `<s> w1 .. wj` (j < m + 1): a context the corpus continues."""
    return [["<s>", *s[:j]] for s in sentences for j in range(len(s) + 1)]


def check_sums_to_one(lm, context):
    p = np.exp(lm.next_logprobs(context))
    assert abs(p.sum() - 1.0) < 1e-9, (lm.smoothing, context, p.sum())
    # the vectorised table and the per-word scorer agree, and <s> is never predicted
    by_word = np.array([lm.prob(w, context) for w in lm.vocab.words])
    np.testing.assert_allclose(by_word, p, rtol=1e-12, atol=1e-300)
    assert p[lm.vocab.bos_id] == 0.0
    assert p[lm.vocab.unk_id] > 0 or lm.smoothing == "mle"


@pytest.mark.parametrize("smoothing", [m for m in ngram.DISTRIBUTIONS if m != "mle"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sentences=corpora, order=st.integers(1, 4), random_context=contexts, data=st.data())
def test_distributions_sum_to_one(smoothing, sentences, order, random_context, data):
    lm = ngram.fit(sentences, order, smoothing)
    seen = data.draw(st.sampled_from(seen_contexts(sentences)))
    for context in (seen, random_context, ["<s>", *random_context], ["<s>"], [], ["<unk>", *seen[-1:]]):
        check_sums_to_one(lm, context)


@settings(max_examples=40, deadline=None)
@given(sentences=corpora, order=st.integers(1, 4), data=st.data())
def test_mle_sums_to_one_for_seen_contexts(sentences, order, data):
    lm = ngram.fit(sentences, order, "mle")
    check_sums_to_one(lm, data.draw(st.sampled_from(seen_contexts(sentences))))


def test_unk_and_unseen_words_get_real_probability():
    train = [list("abcab"), list("bca")]
    test = [list("abzzq")]  # z, q unseen: both are <unk>
    for smoothing in ngram.DISTRIBUTIONS:
        lm = ngram.fit(train, 3, smoothing)
        if smoothing == "mle":
            assert math.isinf(lm.perplexity(test))
            continue
        ev = lm.evaluate(test)
        assert ev.oovs == 3 and ev.tokens == 6 and math.isfinite(ev.perplexity), smoothing
        assert lm.prob("zz", ["a"]) == lm.prob("<unk>", ["a"]) > 0
    assert lm.prob("<s>", ["a"]) == 0.0


# -- the formulas, by hand, on a corpus small enough to count on paper ----------------------

TOY = [["a", "b"], ["a", "b", "b"], ["b", "a"]]
# unigram counts: a 3, b 4, </s> 3 (10 predicted tokens); |V| = {<unk>, </s>, a, b} = 4
# bigrams: <s> a 2, <s> b 1, a b 2, a </s> 1, b </s> 2, b b 1, b a 1


def test_mle_and_add_k_by_hand():
    mle = ngram.fit(TOY, 2, "mle")
    assert mle.prob("b", ["a"]) == pytest.approx(2 / 3)
    assert mle.prob("a", ["<s>"]) == pytest.approx(2 / 3)
    assert mle.prob("b", []) == pytest.approx(4 / 10)
    assert mle.prob("a", ["<unk>"]) == 0.0  # unseen context: no estimate
    lap = ngram.fit(TOY, 2, "add_k", k=1)
    assert lap.prob("b", ["a"]) == pytest.approx((2 + 1) / (3 + 4))
    assert lap.prob("a", ["a"]) == pytest.approx(1 / 7)
    assert lap.prob("a", ["<unk>"]) == pytest.approx(1 / 4)  # unseen context: uniform
    assert ngram.fit(TOY, 2, "add_k", k=0.5).prob("b", []) == pytest.approx(4.5 / 12)


def test_witten_bell_by_hand():
    lm = ngram.fit(TOY, 2, "witten_bell")
    p_b = (4 + 3 * 0.25) / (10 + 3)  # 3 word types seen (a, b, </s>) share 3 / (10 + 3) uniformly
    assert lm.prob("b", []) == pytest.approx(p_b)
    # after a: c(a .) = 3, N1+(a .) = 2 (b, </s>)
    assert lm.prob("b", ["a"]) == pytest.approx((2 + 2 * p_b) / (3 + 2))


def test_absolute_discounting_and_kneser_ney_by_hand():
    d = 0.5
    ad = ngram.fit(TOY, 2, "absolute_discounting", discount=[d, d])
    p_b = (4 - d) / 10 + d * 3 / 10 / 4
    assert ad.prob("b", []) == pytest.approx(p_b)
    assert ad.prob("b", ["a"]) == pytest.approx((2 - d) / 3 + d * 2 / 3 * p_b)
    kn = ngram.fit(TOY, 2, "kneser_ney", discount=[d, d])
    # continuation counts: a follows {<s>, b} -> 2; b follows {<s>, a, b} -> 3; </s> follows {a, b} -> 2
    p_b = (3 - d) / 7 + d * 3 / 7 / 4
    assert kn.prob("b", []) == pytest.approx(p_b)
    assert kn.prob("b", ["a"]) == pytest.approx((2 - d) / 3 + d * 2 / 3 * p_b)


def test_modified_kneser_ney_discounts_follow_chen_goodman():
    n = np.array([0, 100, 40, 20, 10])
    y = 100 / (100 + 80)
    D = ngram.kneser_ney_discounts(n, order=2)
    np.testing.assert_allclose(D[1:], [1 - 2 * y * 40 / 100, 2 - 3 * y * 20 / 40, 3 - 4 * y * 10 / 20])
    assert ngram.kneser_ney_discounts(n, 2, modified=False)[1:] == pytest.approx([y] * 3)
    with pytest.warns(DiscountFallbackWarning, match="no n-gram has count 1"):
        np.testing.assert_array_equal(ngram.kneser_ney_discounts(np.array([0, 0, 5, 3, 1]), 1)[1:], [0.5, 1, 1.5])
    with pytest.warns(DiscountFallbackWarning, match="outside"):
        ngram.kneser_ney_discounts(np.array([0, 10, 1, 30, 1]), 1)


def test_fit_warns_when_discounts_fall_back():
    letters = [list("abcdefgh")] * 3  # every unigram is seen as often: no adjusted count 1
    with pytest.warns(DiscountFallbackWarning, match="order 1"):
        lm = ngram.fit(letters, 2, "modified_kneser_ney")
    assert lm.info["discounts"][0] == [0.5, 1.0, 1.5]


def test_good_turing_katz_by_hand():
    n = np.array([0, 120, 40, 20, 10, 6, 4])
    d = ngram.good_turing_discounts(n, 5, order=2)
    a = 6 * 4 / 120
    r = np.arange(1, 6)
    np.testing.assert_allclose(d[1:], ((r + 1) * n[2:7] / (r * n[1:6]) - a) / (1 - a))
    # the mass Katz takes from counts 1..5 is exactly Good-Turing's n1 / N for everything unseen
    taken = sum(n[r] * r * (1 - d[r]) for r in range(1, 6))
    assert taken == pytest.approx(n[1])


def test_good_turing_backoff_weights_normalise():
    sentences = [list("abcab"), list("bcab"), list("aab"), list("cb")] * 3 + [list("abcd")]
    lm = ngram.fit(sentences, 3, "good_turing", max_count=[2, 2, 2])
    for context in (["a"], ["<s>", "a"], ["c", "a"], ["d"]):
        assert np.exp(lm.next_logprobs(context)).sum() == pytest.approx(1, abs=1e-12)
    cut = ngram.fit(sentences, 3, "good_turing", max_count=[2, 2, 2], min_count=[1, 1, 4])
    assert cut.sizes()[2] < lm.sizes()[2] and (np.exp(cut.logp_table[2]) > 0).all()


def test_jelinek_mercer_tunes_lambdas_on_heldout():
    rng = np.random.default_rng(0)
    # a Markov chain: the bigram context is informative, so lambda_2 should be large
    trans = {"a": "bc", "b": "ca", "c": "ab"}
    def sample(n):
        out = []
        for _ in range(n):
            s = [rng.choice(list("abc"))]
            for _ in range(8):
                s.append(rng.choice(list(trans[s[-1]])))
            out.append(list(s))
        return out
    train, held = sample(200), sample(50)
    lm = ngram.fit(train, 2, "jelinek_mercer", heldout=held)
    lam = lm.info["lambdas"]
    assert lam[1] > 0.9
    best = lm.perplexity(held)
    for other in ([lam[0], 0.5], [lam[0], lam[1] - 0.05], [0.5, lam[1]]):
        assert ngram.fit(train, 2, "jelinek_mercer", lambdas=other).perplexity(held) > best
    # without held-out data, every 10th sentence is held out
    assert ngram.fit(train, 2, "jelinek_mercer").info["lambdas"][1] > 0.9


def test_stupid_backoff_is_a_score_not_a_distribution():
    lm = ngram.fit(TOY, 2, "stupid_backoff")
    assert lm.prob("b", ["a"]) == pytest.approx(2 / 3)
    assert lm.prob("a", ["a"]) == pytest.approx(0.4 * 3 / 10)
    assert lm.prob("<unk>", ["a"]) == pytest.approx(0.4 * 0.4 / 4)
    assert lm.prob("a", ["<unk>"]) == pytest.approx(0.4 * 3 / 10)  # an unseen context costs alpha too
    assert np.exp(lm.next_logprobs(["a"])).sum() != pytest.approx(1)


def test_context_handling():
    lm = ngram.fit(TOY, 3, "kneser_ney")
    # only the last order-1 tokens matter; a context without <s> is mid-sentence
    assert lm.logprob("b", ["b", "b", "a"]) == lm.logprob("b", ["b", "a"])
    assert lm.logprob("b", ["<s>", "a"]) != lm.logprob("b", ["a"])
    assert lm.logprob("b", ["x", "<s>", "a"]) == lm.logprob("b", ["<s>", "a"])
    ids = lm.encode(TOY)
    lp = lm.logprob_ids(ids)
    assert lp[ids == lm.vocab.bos_id].tolist() == [0.0] * 3
    assert lp[2] == pytest.approx(lm.logprob("b", ["<s>", "a"]))
    ev = lm.evaluate(TOY)
    assert ev.tokens == 10 and ev.perplexity == pytest.approx(math.exp(-lp.sum() / 10))


def test_generate_is_reproducible_and_follows_the_model():
    lm = ngram.fit([list("abc")] * 5, 3, "mle")
    assert lm.generate(np.random.default_rng(0)) == list("abc")  # MLE of one sentence repeats it
    kn = ngram.fit([list("abcab"), list("bca"), list("cab")], 2, "kneser_ney")
    a = [kn.generate(np.random.default_rng(1), max_tokens=20) for _ in range(3)]
    b = [kn.generate(np.random.default_rng(1), max_tokens=20) for _ in range(3)]
    assert a == b and all(len(s) <= 20 for s in a)
    assert all(w in "abc<unk>" for s in a for w in s)


def test_fixed_vocabulary_and_errors():
    lm = ngram.fit(TOY, 2, "kneser_ney", vocab=["a", "b", "c"])
    assert lm.vocab.words == ["<unk>", "<s>", "</s>", "a", "b", "c"]
    assert lm.prob("c", []) == pytest.approx(lm.prob("<unk>", []))  # both unseen
    with pytest.raises(ValueError, match="unknown smoothing"):
        ngram.fit(TOY, 2, "kneser-ney")
    with pytest.raises(ValueError, match="k > 0"):
        ngram.fit(TOY, 2, "add_k", k=0)
    with pytest.raises(ValueError, match="lambda"):
        ngram.fit(TOY, 2, "jelinek_mercer", lambdas=[0.5, 1.5])
    with pytest.raises(TypeError, match="ARPA"):
        ngram.write_arpa(ngram.fit(TOY, 2, "add_k"), "/nonexistent/x.arpa")
    with pytest.raises(TypeError, match="ARPA"):
        ngram.write_arpa(ngram.fit(TOY, 2, "stupid_backoff"), "/nonexistent/x.arpa")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ngram.fit(TOY, 2, "witten_bell")  # nothing to warn about
