"""Bad input to the n-gram stack (Chapters 1-2) is refused with an error that names the problem.

Each case: what is called, the exception type, and a pattern the message must match -- the
argument, order, value, file or line at fault, and what to do instead. Silent wrong answers come
first: a string where a list of tokens is meant would otherwise be read as its characters, and an
out-of-range discount would give perplexity nan with only NumPy warnings.
"""

import math
import warnings

import numpy as np
import pytest

from scratchlm import ngram
from scratchlm.ngram import ArpaError

TOY = [["a", "b"], ["a", "b", "b"], ["b", "a"]]


def fit(smoothing="kneser_ney", order=2, sentences=TOY, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ngram.DiscountFallbackWarning)  # toy data
        return ngram.fit(sentences, order, smoothing, **params)


# -- strings where lists of tokens are meant (TypeError, pointing at line.split()) -------------

SPLIT = r"pass a list of tokens .*line\.split\(\)"

STRINGS = {
    "fit: sentences as strings": (lambda: fit(sentences=["the cat sat", "a dog"]),
                                  r"sentences\[0\] is the string 'the cat sat'; " + SPLIT),
    "fit: one string": (lambda: fit(sentences="the cat sat"),
                        r"sentences is one string; .*\[line\.split\(\) for line in lines\]"),
    "fit: a later sentence": (lambda: fit(sentences=[["a"], "b c"]), r"sentences\[1\] is the string 'b c'"),
    "fit: heldout as strings": (lambda: fit("jelinek_mercer", heldout=["a b"]),
                                r"heldout\[0\] is the string 'a b'; " + SPLIT),
    "fit: vocab as a string": (lambda: fit(vocab="ab"), r"vocab is the string 'ab'; " + SPLIT),
    "fit: tokens not strings": (lambda: fit(sentences=[[1, 2]]), r"tokens must be strings, got 1 \(int\)"),
    "build_vocab": (lambda: ngram.build_vocab(["a b"]), r"sentences\[0\] is the string 'a b'"),
    "prob: context as a string": (lambda: fit().prob("b", "a"), r"context is the string 'a'; " + SPLIT),
    "logprob: context as a string": (lambda: fit().logprob("b", "<s> a"), r"context is the string '<s> a'"),
    "prob: word as a list": (lambda: fit().prob(["b"], ["a"]), r"word must be one token \(a string\), got \['b'\]"),
    "next_logprobs": (lambda: fit().next_logprobs("a"), r"context is the string 'a'"),
    "generate: context": (lambda: fit().generate(np.random.default_rng(0), context="a b"),
                          r"context is the string 'a b'; " + SPLIT),
    "perplexity": (lambda: fit().perplexity(["a b", "b a"]), r"sentences\[0\] is the string 'a b'"),
    "evaluate": (lambda: fit().evaluate("a b"), r"sentences is one string"),
    "encode": (lambda: fit().encode(["a", ["b"]]), r"sentences\[0\] is the string 'a'"),
    "add_k: context": (lambda: fit("add_k").prob("b", "a"), r"context is the string 'a'"),
    "add_k: sentences": (lambda: fit("add_k").perplexity(["a b"]), r"sentences\[0\] is the string"),
    "long string shortened": (lambda: fit().prob("b", "x" * 100), r"context is the string 'x{37}\.\.\.'"),
}


@pytest.mark.parametrize("case", STRINGS, ids=list(STRINGS))
def test_strings_for_token_lists_are_refused(case):
    call, message = STRINGS[case]
    with pytest.raises(TypeError, match=message):
        call()


def test_lists_of_tokens_still_work_and_strings_would_have_been_characters():
    """The refused calls above, written as intended, give the numbers they should."""
    lm = fit()
    assert lm.prob("b", ["a"]) == lm.prob("b", ("a",)) > lm.prob("a", ["a"])
    assert fit(sentences=[s.split() for s in ["a b", "a b b", "b a"]]).perplexity(TOY) == lm.perplexity(TOY)


# -- values out of range (ValueError or TypeError naming the order, the value and the range) ---

NAN = math.nan
VALUES = {
    "kneser_ney discount 1.5": (lambda: fit("kneser_ney", 3, discount=[1.5] * 3), ValueError,
                                r"order 1: the discount = 1\.5 is outside \[0, 1\]"),
    "kneser_ney discount negative": (lambda: fit("kneser_ney", 2, discount=[0.5, -0.1]), ValueError,
                                     r"order 2: the discount = -0\.1 is outside \[0, 1\]"),
    "kneser_ney discount nan": (lambda: fit("kneser_ney", 2, discount=[NAN, 0.5]), ValueError,
                                r"order 1: the discount = nan is outside \[0, 1\]"),
    "kneser_ney discount not a number": (lambda: fit("kneser_ney", 2, discount=[0.5, "big"]), ValueError,
                                         r"order 2: discount must be a number, got 'big'"),
    "kneser_ney one discount too few": (lambda: fit("kneser_ney", 3, discount=[0.5, 0.5]), ValueError,
                                        r"need one discount per order \(orders 1\.\.3\), got \[0\.5, 0\.5\]"),
    "absolute_discounting discount 1.2": (lambda: fit("absolute_discounting", 2, discount=[0.5, 1.2]), ValueError,
                                          r"order 2: the discount = 1\.2 is outside \[0, 1\]"),
    "modified_kneser_ney D1 above 1": (lambda: fit("modified_kneser_ney", 2, discounts=[(0.5, 1, 1.5), (1.2, 1, 1.5)]),
                                       ValueError, r"order 2: D1 = 1\.2 is outside \[0, 1\]"),
    "modified_kneser_ney D2 above 2": (lambda: fit("modified_kneser_ney", 2, discounts=[(0.5, 2.5, 1.5)] * 2),
                                       ValueError, r"order 1: D2 = 2\.5 is outside \[0, 2\]"),
    "modified_kneser_ney D3+ above 3": (lambda: fit("modified_kneser_ney", 2, discounts=[(0.5, 1, 3.5)] * 2),
                                        ValueError, r"order 1: D3\+ = 3\.5 is outside \[0, 3\]"),
    "modified_kneser_ney negative": (lambda: fit("modified_kneser_ney", 2, discounts=[(0.5, 1, 1.5), (-1, 1, 1)]),
                                     ValueError, r"order 2: D1 = -1\.0 is outside \[0, 1\]"),
    "modified_kneser_ney two discounts": (lambda: fit("modified_kneser_ney", 2, discounts=[(0.5, 1)] * 2),
                                          ValueError, r"order 1: need three discounts \(D1, D2, D3\+\), got 2"),
    "modified_kneser_ney orders": (lambda: fit("modified_kneser_ney", 3, discounts=[(0.5, 1, 1.5)]), ValueError,
                                   r"need one \(D1, D2, D3\+\) per order \(orders 1\.\.3\)"),
    "stupid_backoff alpha 0": (lambda: fit("stupid_backoff", alpha=0), ValueError,
                               r"stupid_backoff needs alpha > 0 .*got alpha=0"),
    "stupid_backoff alpha negative": (lambda: fit("stupid_backoff", alpha=-0.4), ValueError, r"got alpha=-0\.4"),
    "good_turing max_count negative": (lambda: fit("good_turing", 2, max_count=[-1, 7]), ValueError,
                                       r"max_count for order 1 must be an int >= 0, got -1"),
    "good_turing max_count not an int": (lambda: fit("good_turing", 2, max_count=[7, 2.5]), ValueError,
                                         r"max_count for order 2 must be an int >= 0, got 2\.5"),
    "good_turing min_count orders": (lambda: fit("good_turing", 2, min_count=[1]), ValueError,
                                     r"min_count needs one value per order \(1\.\.2\), got \[1\]"),
    "add_k k negative": (lambda: fit("add_k", k=-1), ValueError, r"add_k needs k > 0 .*got k=-1"),
    "add_k k infinite": (lambda: fit("add_k", k=math.inf), ValueError, r"got k=inf"),
    "order 2.5": (lambda: fit(order=2.5), TypeError, r"order must be an int >= 1, got 2\.5 \(float\)"),
    "order '3'": (lambda: fit(order="3"), TypeError, r"order must be an int >= 1, got '3' \(str\)"),
    "order 0": (lambda: fit(order=0), ValueError, r"order must be an int >= 1, got 0"),
    "count_ngrams order": (lambda: ngram.count_ngrams(np.array([1, 3, 2]), 1.0, ngram.build_vocab(TOY)),
                           TypeError, r"order must be an int >= 1, got 1\.0"),
    "perplexity of no sentences": (lambda: fit().perplexity([]), ValueError,
                                   r"perplexity: the text has no scored tokens .*pass at least one sentence"),
    "bits_per_token of no sentences": (lambda: fit().evaluate([]).bits_per_token, ValueError,
                                       r"bits_per_token: the text has no scored tokens"),
    "perplexity_excl_oov of no sentences": (lambda: fit().evaluate([]).perplexity_excl_oov, ValueError,
                                     r"perplexity_excl_oov: the text has no in-vocabulary tokens"),
}


@pytest.mark.parametrize("case", VALUES, ids=list(VALUES))
def test_values_out_of_range_are_refused(case):
    call, error, message = VALUES[case]
    with pytest.raises(error, match=message):
        call()


def test_discounts_at_the_edges_of_their_range_give_distributions():
    """D_r = 0 and D_r = r are allowed (as lmplz allows them) and still give distributions.
    (Estimated discounts out of range still fall back with a DiscountFallbackWarning, unchanged:
    test_ngram_estimators.py::test_fit_warns_when_discounts_fall_back.)"""
    for lm in (fit("kneser_ney", 3, discount=[1, 0, 1]), fit("absolute_discounting", 2, discount=[0, 1]),
               fit("modified_kneser_ney", 2, discounts=[(1, 2, 3), (0, 0, 0)])):
        for context in (["a"], ["<s>"], ["b", "b"], []):
            assert np.exp(lm.next_logprobs(context)).sum() == pytest.approx(1, abs=1e-12)
        assert np.isfinite(lm.perplexity(TOY))


# -- ARPA files --------------------------------------------------------------------------------

GOOD = "\\data\\\nngram 1=4\nngram 2=1\n\n\\1-grams:\n-1.0\t<unk>\t0\n0\t<s>\t-0.3\n-0.5\t</s>\n-0.4\ta\t-0.2\n\n" \
       "\\2-grams:\n-0.2\t<s> a\n\n\\end\\\n"


def write(tmp_path, text, name="bad.arpa"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


ARPA = {
    "positive log10 p, unigram": (lambda p: ngram.read_arpa(write(p, GOOD.replace("-0.4\ta", "0.4\ta"))), ArpaError,
                                  r"bad\.arpa:9: 1-gram 'a' has log10 probability 0\.4 > 0"),
    "positive log10 p, bigram": (lambda p: ngram.read_arpa(write(p, GOOD.replace("-0.2\t<s> a", "1e-3\t<s> a"))),
                                 ArpaError, r"bad\.arpa:12: 2-gram '<s> a' has log10 probability 1e-3 > 0"),
    "not UTF-8": (lambda p: ngram.read_arpa(write(p, GOOD.encode().replace(b"\ta\t", b"\t\xe9\t"))), ValueError,
                  r"bad\.arpa: not UTF-8 text: byte 0xe9 at offset 77"),
    "write into a missing folder": (lambda p: ngram.write_arpa(fit(), p / "nowhere" / "lm.arpa"), FileNotFoundError,
                                    r"cannot write .*nowhere/lm\.arpa: folder .*nowhere does not exist"),
    "write add_k": (lambda p: ngram.write_arpa(fit("add_k"), p / "lm.arpa"), TypeError,
                    r"add_k is not a back-off model, so it has no ARPA form"),
    "write stupid_backoff": (lambda p: ngram.write_arpa(fit("stupid_backoff"), p / "lm.arpa"), TypeError,
                             r"stupid_backoff backs off from unseen contexts with weight"),
}


@pytest.mark.parametrize("case", ARPA, ids=list(ARPA))
def test_arpa_errors_name_the_file_and_line(tmp_path, case):
    call, error, message = ARPA[case]
    with pytest.raises(error, match=message):
        call(tmp_path)
    assert not list(tmp_path.glob(".*.tmp"))  # a refused write leaves no temporary file


def test_the_good_file_reads_and_zero_log_probability_is_allowed(tmp_path):
    """The control for the cases above: GOOD itself reads, and log10 p = 0 (p = 1) is no error."""
    lm = ngram.read_arpa(write(tmp_path, GOOD.replace("-0.2\t<s> a", "0\t<s> a"), "ok.arpa"))
    assert lm.prob("a", ["<s>"]) == 1.0
    assert GOOD.encode().index(b"\ta\t") + 1 == 77  # the byte offset the non-UTF-8 case names
