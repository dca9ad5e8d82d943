"""Exercises of Chapter 1 (n-gram models), one group of tests per exercise, each marked exN_M.

Run one exercise with `python -m pytest -m ex1_2 tests/test_exercises_ch01.py`. Each test checks one
library function on a corpus small enough to count on paper, against numbers worked out by hand
(or against a Numba kernel that is not part of the exercise), so it fails only on its own exercise.
"""

import math

import numpy as np
import pytest

from scratchlm import ngram
from scratchlm.ngram import kernels
from scratchlm.ngram.smoothing import relative_frequencies

NEVER = 0.0  # a back-off weight of 0: a context's listed continuations are the only ones


def arpa_lm(tmp_path, probs: dict[str, float], backoff: dict[str, float] | None = None) -> ngram.NgramLM:
    """A back-off model with exactly these probabilities, read from an ARPA file written here.

    probs: {"a": 0.5, "<s> a": 1.0, ...} (n-grams as space-separated words); backoff: {"<s>": NEVER}
    (default weight 1). `<s>`, `<unk>` and `</s>` are added to the unigrams when missing (with
    probability 0), and every (k-1)-gram context of an n-gram must be listed itself. Order 2 or more
    (read_arpa does not take a file of unigrams only: see unigram_lm).
    """
    backoff = backoff or {}
    probs = {"<s>": 0.0, "<unk>": 0.0, "</s>": 0.0, **probs}

    def log10(p: float) -> str:
        return repr(math.log10(p)) if p > 0 else "-99"

    by_order: dict[int, list[str]] = {}
    for g in probs:
        by_order.setdefault(len(g.split()), []).append(g)
    order = max(by_order)
    lines = ["\\data\\", *(f"ngram {k}={len(by_order[k])}" for k in range(1, order + 1))]
    for k in range(1, order + 1):
        lines += ["", f"\\{k}-grams:"]
        for g in by_order[k]:
            bo = f"\t{log10(backoff.get(g, 1.0))}" if k < order else ""
            lines.append(f"{log10(probs[g])}\t{g}{bo}")
    path = tmp_path / "model.arpa"
    path.write_text("\n".join([*lines, "", "\\end\\", ""]), encoding="utf-8")
    return ngram.read_arpa(path)


def unigram_lm(probs: dict[str, float]) -> ngram.NgramLM:
    """A unigram model with exactly these probabilities ({"a": 0.5, "</s>": 0.5, ...})."""
    vocab = ngram.build_vocab([list(probs)])
    with np.errstate(divide="ignore"):
        logprob = np.log([probs.get(w, 0.0) for w in vocab.words])
    return ngram.NgramLM(vocab, [np.full(len(vocab), -1)], [np.arange(len(vocab))], [logprob], [])


def index_of(counts: ngram.NgramCounts, *words: str) -> int:
    """Row of the n-gram `words` in its order's table."""
    want = counts.vocab.ids(words).tolist()
    rows = counts.ngrams(len(words)).tolist()
    assert want in rows, f"{' '.join(words)!r} is not an n-gram of the test corpus"
    return rows.index(want)


# ---------------------------------------------------------------------------------------------
# Exercise 1.1: counting n-grams with packed keys (kernels.count_order_ref)
# ---------------------------------------------------------------------------------------------
# Two sentences, "a b" and "a b b". Ids: <unk> 0, <s> 1, </s> 2, a 3, b 4, so the stream is
#   position  0    1  2  3     4    5  6  7  8
#   ids       <s>  a  b  </s>  <s>  a  b  b  </s>
TWO_SENTENCES = np.array([1, 3, 4, 2, 1, 3, 4, 4, 2])
V, BOS = 5, 1


def check_order(got, want: dict, what: str) -> None:
    names = ["context", "word", "count", "suffix", "cur"]
    assert isinstance(got, tuple) and len(got) == 5, \
        "count_order_ref returns a tuple of five arrays: (context, word, count, suffix, cur)"
    for name, array in zip(names, got):
        array = np.asarray(array)
        assert np.issubdtype(array.dtype, np.integer), f"{name} should be an integer (int64) array"
        assert array.tolist() == want[name], f"{what}: {name} should be {want[name]}, got {array.tolist()}"


@pytest.mark.ex1_1
def test_count_bigrams_by_hand():
    # For k = 2 the (k-1)-gram ending at i is the word ids[i] itself, so prev = ids.
    got = kernels.count_order_ref(TWO_SENTENCES, TWO_SENTENCES, V, V, BOS)
    # bigrams in (context, word) order: <s> a (1,3) x2, a b (3,4) x2, b </s> (4,2) x2, b b (4,4) x1.
    # "</s> <s>" (positions 3-4) is not a bigram: a sentence boundary, nothing ends at <s>.
    check_order(got, {"context": [1, 3, 4, 4], "word": [3, 4, 2, 4], "count": [2, 2, 2, 1],
                      "suffix": [3, 4, 2, 4],  # w_2 of each bigram, as a unigram index = its word id
                      "cur": [-1, 0, 1, 2, -1, 0, 1, 3, 2]},  # which bigram ends at each position
                "bigrams of '<s> a b </s> <s> a b b </s>'")


@pytest.mark.ex1_1
def test_count_trigrams_from_where_the_bigrams_end():
    bigram_at = np.array([-1, 0, 1, 2, -1, 0, 1, 3, 2])  # `cur` of the bigram test: <s>a=0 ab=1 b</s>=2 bb=3
    got = kernels.count_order_ref(TWO_SENTENCES, bigram_at, 4, V, BOS)
    # trigrams, named (context = its first two words as a bigram index, word):
    #   <s> a b (0, b) x2,  a b </s> (1, </s>) x1,  a b b (1, b) x1,  b b </s> (3, </s>) x1
    # suffix = the bigram of its last two words: a b -> 1, b </s> -> 2, b b -> 3, b </s> -> 2
    check_order(got, {"context": [0, 1, 1, 3], "word": [4, 2, 4, 2], "count": [2, 1, 1, 1],
                      "suffix": [1, 2, 3, 2], "cur": [-1, -1, 0, 1, -1, -1, 0, 2, 3]},
                "trigrams of '<s> a b </s> <s> a b b </s>'")


@pytest.mark.ex1_1
def test_count_order_matches_the_numba_kernel():
    rng = np.random.default_rng(0)
    for trial in range(20):
        sentences = [list(rng.choice(list("abcd"), size=rng.integers(0, 6))) for _ in range(rng.integers(1, 6))]
        vocab = ngram.build_vocab(sentences)
        ids = ngram.encode(vocab, sentences)
        prev, n_prev = ids, len(vocab)
        for k in range(2, 5):
            want = kernels.count_order(ids, prev, n_prev, len(vocab), vocab.bos_id)
            got = kernels.count_order_ref(ids, prev, n_prev, len(vocab), vocab.bos_id)
            for name, a, b in zip(["context", "word", "count", "suffix", "cur"], got, want):
                assert np.asarray(a).tolist() == b.tolist(), \
                    f"order {k} of {sentences}: {name} differs from the Numba kernel count_order"
            prev, n_prev = want[4], len(want[0])


# ---------------------------------------------------------------------------------------------
# Exercise 1.2: maximum-likelihood probabilities (smoothing.relative_frequencies)
# ---------------------------------------------------------------------------------------------
TOY = [["a", "b"], ["a", "b", "b"], ["b", "a"]]
# unigram counts: a 3, b 4, </s> 3 -- 10 predicted tokens (<s> starts a sentence, it is never predicted)
# bigrams: <s> a 2, <s> b 1, a b 2, a </s> 1, b </s> 2, b b 1, b a 1


def toy_counts(order: int) -> ngram.NgramCounts:
    vocab = ngram.build_vocab(TOY)
    return ngram.count_ngrams(ngram.encode(vocab, TOY), order, vocab)


@pytest.mark.ex1_2
def test_unigram_probabilities():
    counts = toy_counts(2)
    ml, seen = relative_frequencies(counts)
    assert len(ml) == 2 and len(seen) == 2, "one array of probabilities and one of `seen` per order"
    p, ids = ml[0], counts.vocab.index
    assert len(p) == len(counts.vocab), "unigram probabilities: one per word id"
    assert p[ids["b"]] == pytest.approx(4 / 10), "P(b) = C(b) / C(.) = 4 / 10: the 10 tokens are words and </s>"
    assert p[ids["</s>"]] == pytest.approx(3 / 10), "P(</s>) = 3 / 10: one </s> ends each of the 3 sentences"
    assert p[ids["<s>"]] == 0.0, "P(<s>) = 0: <s> is only ever a context; do not count it (use _raw)"
    assert p.sum() == pytest.approx(1.0), "the unigram probabilities should sum to 1"
    assert np.asarray(seen[0]).tolist() == [True], "the empty context of the unigrams is seen: seen[0] = [True]"


@pytest.mark.ex1_2
def test_bigram_probabilities():
    counts = toy_counts(2)
    ml, seen = relative_frequencies(counts)
    assert len(ml[1]) == len(counts.count[1]), "ml[1] holds one probability per bigram, in table order"
    for (h, w), want, why in [(("a", "b"), 2 / 3, "C(a b) / C(a .) = 2 / 3"),
                              (("a", "</s>"), 1 / 3, "C(a </s>) / C(a .) = 1 / 3"),
                              (("<s>", "a"), 2 / 3, "2 of the 3 sentences start with a"),
                              (("b", "b"), 1 / 4, "b is followed 4 times: by </s> twice, b once, a once")]:
        assert ml[1][index_of(counts, h, w)] == pytest.approx(want), f"P({w} | {h}) = {why}"
    # contexts of the bigrams are the unigrams, indexed by word id
    ids = counts.vocab.index
    for word, want in [("<s>", True), ("a", True), ("b", True), ("</s>", False), ("<unk>", False)]:
        assert bool(seen[1][ids[word]]) == want, \
            f"seen[1][{word}] should be {want}: is '{word}' followed by anything in the corpus?"


@pytest.mark.ex1_2
def test_every_seen_context_sums_to_one():
    rng = np.random.default_rng(1)
    sentences = [list(rng.choice(list("abcde"), size=rng.integers(0, 8))) for _ in range(30)]
    vocab = ngram.build_vocab(sentences)
    counts = ngram.count_ngrams(ngram.encode(vocab, sentences), 3, vocab)
    ml, seen = relative_frequencies(counts)
    for k in (2, 3):
        per_context = np.bincount(counts.context[k - 1], weights=ml[k - 1], minlength=len(counts.count[k - 2]))
        has_continuation = np.bincount(counts.context[k - 1], minlength=len(counts.count[k - 2])) > 0
        assert np.asarray(seen[k - 1]).tolist() == has_continuation.tolist(), \
            f"order {k}: seen[{k - 1}] should say which (k-1)-grams are followed by something"
        np.testing.assert_allclose(per_context[has_continuation], 1.0, rtol=1e-12, err_msg=(
            f"order {k}: P(w | h) summed over the words w seen after each context h should be 1"))


# ---------------------------------------------------------------------------------------------
# Exercise 1.3: log-probability of a text for perplexity (NgramLM.evaluate)
# ---------------------------------------------------------------------------------------------
UNIGRAMS = {"a": 1 / 2, "b": 1 / 4, "</s>": 1 / 8, "<unk>": 1 / 8}


@pytest.mark.ex1_3
def test_evaluate_scores_the_words_and_one_end_per_sentence():
    lm = unigram_lm(UNIGRAMS)
    ev = lm.evaluate([["a", "b"], ["a"]])
    # scored: a b </s> a </s> (never <s>): 1/2 * 1/4 * 1/8 * 1/2 * 1/8 = 2^-10
    assert ev.tokens == 5, ("'a b' and 'a' score 5 tokens: the 3 words and one </s> per sentence "
                            f"(<s> is a context, never scored); got {ev.tokens}")
    assert ev.logprob == pytest.approx(-10 * math.log(2)), \
        "total natural log-probability should be ln(1/2 · 1/4 · 1/8 · 1/2 · 1/8) = -10 ln 2"
    assert ev.oovs == 0 and ev.logprob_oov == 0.0, "no word of this text is unknown"
    assert ev.perplexity == pytest.approx(4.0), "perplexity = exp(10 ln 2 / 5) = 2^2 = 4"


@pytest.mark.ex1_3
def test_evaluate_counts_unknown_words():
    lm = unigram_lm(UNIGRAMS)
    ev = lm.evaluate([["a", "zebra"], ["<unk>"]])
    # scored: a <unk> </s> <unk> </s>: 1/2 * (1/8)^4 = 2^-13; the two <unk> give 2 * ln(1/8)
    assert ev.tokens == 5, f"5 scored tokens (3 words, 2 </s>), got {ev.tokens}"
    assert ev.oovs == 2, f"'zebra' is outside the vocabulary and '<unk>' is the unknown word: 2 OOVs, got {ev.oovs}"
    assert ev.logprob == pytest.approx(-13 * math.log(2)), "total should be ln(1/2 · (1/8)^4) = -13 ln 2"
    assert ev.logprob_oov == pytest.approx(-6 * math.log(2)), \
        "logprob_oov is the OOV tokens' share of the total: 2 ln(1/8) = -6 ln 2"
    assert ev.perplexity_excl_oov == pytest.approx(2 ** (7 / 3)), "excluding OOVs: exp(7 ln 2 / 3)"


@pytest.mark.ex1_3
def test_evaluate_starts_each_sentence_after_its_own_start(tmp_path):
    lm = arpa_lm(tmp_path, {"a": 0.4, "b": 0.4, "</s>": 0.2,
                            "<s> a": 1 / 2, "<s> b": 1 / 2, "a b": 1 / 4, "a </s>": 3 / 4,
                            "b a": 1 / 3, "b </s>": 2 / 3},
                 backoff={"<s>": NEVER, "a": NEVER, "b": NEVER})
    ev = lm.evaluate([["a", "b"], ["b"]])
    want = math.log(1 / 2 * 1 / 4 * 2 / 3) + math.log(1 / 2 * 2 / 3)
    assert ev.tokens == 5, f"5 scored tokens, got {ev.tokens}"
    assert ev.logprob == pytest.approx(want), (
        "total should be ln P(a|<s>) P(b|a) P(</s>|b) + ln P(b|<s>) P(</s>|b): the second sentence's "
        "'b' follows its own <s>, not the first sentence's </s> (score the whole encoded stream)")


# ---------------------------------------------------------------------------------------------
# Exercise 1.4: sampling a sentence, Shannon's game (NgramLM.generate)
# ---------------------------------------------------------------------------------------------
THE_CAT = {"the": 1 / 3, "cat": 1 / 3, "</s>": 1 / 3, "<s> the": 1.0, "the cat": 1.0, "cat </s>": 1.0}
CERTAIN = {"<s>": NEVER, "the": NEVER, "cat": NEVER}


@pytest.mark.ex1_4
def test_generate_follows_a_certain_chain(tmp_path):
    lm = arpa_lm(tmp_path, THE_CAT, CERTAIN)
    got = lm.generate(np.random.default_rng(0))
    assert got == ["the", "cat"], ("with P(the | <s>) = P(cat | the) = P(</s> | cat) = 1 the sentence is "
                                   f"['the', 'cat']: start after <s>, stop at </s> and return neither; got {got}")
    got = lm.generate(np.random.default_rng(0), context=["the"])
    assert got == ["cat"], f"with context ['the'] sampling continues from '<s> the' and returns ['cat']; got {got}"


@pytest.mark.ex1_4
def test_generate_stops_after_max_tokens(tmp_path):
    lm = arpa_lm(tmp_path, {"a": 0.5, "</s>": 0.5, "<s> a": 1.0, "a a": 1.0}, {"<s>": NEVER, "a": NEVER})
    got = lm.generate(np.random.default_rng(0), max_tokens=5)
    assert got == ["a"] * 5, f"a model that never ends should stop after max_tokens=5 words; got {got}"
    assert lm.generate(np.random.default_rng(0), max_tokens=0) == [], "max_tokens=0 gives an empty sentence"


@pytest.mark.ex1_4
def test_generate_conditions_on_the_last_n_minus_1_words(tmp_path):
    # a trigram model: after "a b" comes c, after a lone "b" comes d; after c the sentence ends
    lm = arpa_lm(tmp_path, {"a": 0.25, "b": 0.25, "c": 0.25, "d": 0.125, "</s>": 0.125,
                            "<s> a": 1.0, "a b": 1.0, "b d": 1.0, "c </s>": 1.0, "d </s>": 1.0,
                            "<s> a b": 1.0, "a b c": 1.0},
                 backoff={w: NEVER for w in ["<s>", "a", "b", "c", "d", "<s> a", "a b"]})
    got = lm.generate(np.random.default_rng(0))
    assert got == ["a", "b", "c"], ("a trigram model conditions on the last 2 words: after '<s> a b' it says "
                                    f"P(c | a b) = 1 (P(d | b) = 1 only after b alone); got {got}")


@pytest.mark.ex1_4
def test_generate_samples_in_proportion_to_the_scores(tmp_path):
    # scores 0.3 and 0.1 after <s> (they need not sum to 1): a three times as often as b
    lm = arpa_lm(tmp_path, {"a": 0.5, "b": 0.5, "<s> a": 0.3, "<s> b": 0.1, "a </s>": 1.0, "b </s>": 1.0},
                 {"<s>": NEVER, "a": NEVER, "b": NEVER})
    rng = np.random.default_rng(2024)
    samples = [lm.generate(rng) for _ in range(800)]
    assert all(s in (["a"], ["b"]) for s in samples), f"every sentence is ['a'] or ['b']; got {samples[:5]} ..."
    share = sum(s == ["a"] for s in samples) / len(samples)
    assert share == pytest.approx(0.75, abs=0.06), (
        f"'a' should be drawn 0.3 / (0.3 + 0.1) = 75% of the time, got {share:.1%}: "
        "sample from the normalised probabilities exp(logprob) / sum")
    again = [lm.generate(np.random.default_rng(7)) for _ in range(2)]
    assert again[0] == again[1], "the same seed should give the same sentence: draw only from `rng`"
