"""Counting (stage 1-2) and the Numba kernels against plain-Python and NumPy references."""

from collections import Counter

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from scratchlm import ngram
from scratchlm.ngram import kernels

corpora = st.lists(st.lists(st.sampled_from("abcde"), max_size=7), min_size=1, max_size=8)


def brute_counts(sentences, order):
    """{k-gram tuple: count} over `<s> w1 .. wm </s>`, windows inside each sentence."""
    c = Counter()
    for s in sentences:
        toks = ["<s>", *s, "</s>"]
        for k in range(1, order + 1):
            for i in range(len(toks) - k + 1):
                c[tuple(toks[i:i + k])] += 1
    return c


def table(counts, k, values):
    words = np.array(counts.vocab.words, dtype=object)
    return {tuple(words[row]): int(v) for row, v in zip(counts.ngrams(k), values) if k > 1 or v}


@settings(max_examples=60, deadline=None)
@given(corpora, st.integers(1, 5))
def test_counts_match_brute_force(sentences, order):
    vocab = ngram.build_vocab(sentences)
    counts = ngram.count_ngrams(ngram.encode(vocab, sentences), order, vocab)
    ref = brute_counts(sentences, order)
    for k in range(1, order + 1):
        assert table(counts, k, counts.count[k - 1]) == {g: c for g, c in ref.items() if len(g) == k}
        grams = counts.ngrams(k)
        assert (np.diff(grams.dot(len(vocab) ** np.arange(k - 1, -1, -1))) > 0).all()  # sorted, distinct
        if k > 1:  # context and suffix links point at the right (k-1)-grams
            assert (counts.ngrams(k - 1)[counts.context[k - 1]] == grams[:, :-1]).all()
            assert (counts.ngrams(k - 1)[counts.suffix[k - 1]] == grams[:, 1:]).all()


@settings(max_examples=40, deadline=None)
@given(corpora, st.integers(1, 4))
def test_adjusted_counts_are_continuation_counts(sentences, order):
    vocab = ngram.build_vocab(sentences)
    counts = ngram.count_ngrams(ngram.encode(vocab, sentences), order, vocab)
    adjusted = ngram.adjust_counts(counts)
    ref = brute_counts(sentences, order)
    for k in range(1, order + 1):
        for g, a in table(counts, k, adjusted[k - 1]).items():
            if k == order or g[0] == "<s>":
                want = ref[g] if g != ("<s>",) else 0
            else:  # distinct words seen before g
                want = len({h[0] for h in ref if len(h) == k + 1 and h[1:] == g})
            assert a == want, (g, a, want)


@settings(max_examples=40, deadline=None)
@given(corpora, st.integers(2, 5))
def test_count_kernel_matches_numpy_twin(sentences, order):
    vocab = ngram.build_vocab(sentences)
    ids = ngram.encode(vocab, sentences)
    prev = ids
    n_prev = len(vocab)
    for _ in range(2, order + 1):
        fast = kernels.count_order(ids, prev, n_prev, len(vocab), vocab.bos_id)
        slow = kernels.count_order_ref(ids, prev, n_prev, len(vocab), vocab.bos_id)
        for a, b in zip(fast, slow):
            np.testing.assert_array_equal(a, b)
        prev, n_prev = fast[4], len(fast[0])


@settings(max_examples=40, deadline=None)
@given(corpora, st.lists(st.lists(st.sampled_from("abcdefz"), max_size=7), max_size=4), st.integers(1, 4))
@example(train=[[]], test=[], order=4)  # orders with no n-grams at all
def test_lookup_and_scoring_kernels_match_numpy_twins(train, test, order):
    lm = ngram.fit(train, order, "witten_bell")
    ids = np.concatenate([lm.encode(test), lm.vocab.ids(list("abz"))])  # ends mid-sentence
    idx, avail = lm.trie.lookup(ids)
    idx2, avail2 = lm.trie.lookup(ids, use_numba=False)
    np.testing.assert_array_equal(idx, idx2)
    np.testing.assert_array_equal(avail, avail2)
    for missing in (0.0, np.log(0.4), -np.inf):
        a = kernels.backoff_logprobs(idx, avail, lm._logprob, lm._logbo, missing)
        b = kernels.backoff_logprobs_ref(idx, avail, lm._logprob, lm._logbo, missing)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def test_lookup_finds_the_longest_ngrams():
    lm = ngram.fit([["a", "b", "c"], ["b", "c", "d"]], 3, "witten_bell")
    ids = lm.vocab.ids(["<s>", "a", "b", "c", "c", "</s>", "b", "c"])
    idx, avail = lm.trie.lookup(ids)
    assert avail.tolist() == [0, 2, 3, 3, 3, 3, 3, 3]  # the stream goes on after </s> without <s>
    found = (idx >= 0).sum(axis=1)
    # <s>: itself; a: "<s> a"; b: "<s> a b"; c: "a b c"; c: "c" only; </s>: "c </s>"; b: "b"; c: "b c"
    assert found.tolist() == [1, 2, 3, 3, 1, 2, 1, 2]


def test_prune_keeps_links_consistent():
    sentences = [list("abab"), list("abc"), list("ab")]
    vocab = ngram.build_vocab(sentences)
    counts = ngram.count_ngrams(ngram.encode(vocab, sentences), 3, vocab)
    pruned = ngram.prune(counts, [1, 2, 2])
    for k in (2, 3):
        assert (pruned.count[k - 1] >= 2).all()
        kept = {tuple(r) for r in pruned.ngrams(k).tolist()}
        assert kept == {tuple(r) for r, c in zip(counts.ngrams(k).tolist(), counts.count[k - 1]) if c >= 2}
        assert (pruned.ngrams(k - 1)[pruned.suffix[k - 1]] == pruned.ngrams(k)[:, 1:]).all()
    with pytest.raises(ValueError, match="non-decreasing"):
        ngram.prune(counts, [1, 3, 2])


def test_count_of_counts():
    assert ngram.count_of_counts(np.array([0, 1, 1, 2, 5, 3, 4, 4])).tolist() == [0, 2, 1, 1, 2]


def test_encode_conventions():
    vocab = ngram.build_vocab([["b", "a"], ["a", "c"]])
    assert vocab.words == ["<unk>", "<s>", "</s>", "b", "a", "c"]  # first appearance, like lmplz
    ids = ngram.encode(vocab, [["a", "zzz", "<unk>"], []])
    assert ids.tolist() == [1, 4, 0, 0, 2, 1, 2]
    with pytest.raises(ValueError, match="sentence 1 contains"):
        ngram.encode(vocab, [["a"], ["a", "</s>"]])
    with pytest.raises(TypeError, match="list of tokens"):
        ngram.encode(vocab, ["a b"])
