"""ARPA files: KenLM's reference files read and scored, modified Kneser-Ney fitted to match them,
write -> read round trips, and errors that name the line.

The reference files (../shared/fixtures/kenlm, see its README) were made by lmplz and scored by
KenLM's query. Two differences between them and a correct implementation, both found here:

1. names.txt has no final newline. lmplz then adds no </s> to the last name ("zzyzx"), so the
   model lacks "z x </s>", "y z x </s>", "z y z x </s>" and the contexts "z x", "y z x",
   "z y z x" have no continuation. KenLM's query counts that last line's 5 words as tokens but
   drops their log-probabilities (it stops at end of file before adding the line's total).
2. lmplz assumes every context not ending in </s> has a continuation. With one that has none,
   the back-off column of that order is shifted by one entry in lmplz's suffix order from that
   context on: each n-gram gets the back-off of the one after it. Probabilities are unaffected.

The README's "known quirk" (one k-gram per order counted in its raw-count bucket) changes no
discount in these files: our discounts equal lmplz's printed ones to 1e-6 and every log10
probability agrees to < 1e-6.
"""

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from scratchlm import data, ngram
from scratchlm.ngram import ArpaError
from scratchlm.ngram.smoothing import modified_kneser_ney

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "kenlm"
LN10 = math.log(10)


@pytest.fixture
def fixtures():
    if not (FIXTURES / "ptb_valid.o3.arpa").is_file():
        pytest.skip(f"no KenLM reference files at {FIXTURES} (see the project's shared/fixtures)")
    return FIXTURES


def ptb(split):
    """PTB sentences with <unk> renamed <ptbunk>, as the fixtures were made (lmplz refuses <unk>)."""
    return [["<ptbunk>" if w == "<unk>" else w for w in line.split()] for line in data.load_lines("ptb", split)]


def names():
    return [list(name) for name in data.path("names", "names.txt").read_text().splitlines()]


def log10_table(lm):
    """{order: (n-gram texts in table order, log10 p, log10 back-off)}."""
    words = np.array(lm.vocab.words, dtype=object)
    out = {}
    for k in range(1, lm.order + 1):
        grams = words[lm.ngrams(k)]
        text = [" ".join(g) for g in grams]
        bo = lm.logbo_table[k - 1] / LN10 if k < lm.order else np.zeros(len(text))
        out[k] = (text, lm.logp_table[k - 1] / LN10, bo)
    return out


def aligned(ref, mine, k):
    """Our order-k log10 p and back-off, reordered to the reference's n-grams (same set asserted)."""
    text_r, p_r, bo_r = ref[k]
    text_m, p_m, bo_m = mine[k]
    assert sorted(text_r) == sorted(text_m), f"order {k}: the n-grams differ"
    where = {t: i for i, t in enumerate(text_m)}
    i = np.array([where[t] for t in text_r])
    keep = np.array([t != "<s>" for t in text_r])  # <s>'s probability is never used
    return p_r[keep], p_m[i][keep], bo_r[keep], bo_m[i][keep]


def test_ptb_fixture_reproduces_kenlm_query(fixtures, data_dir):
    lm = ngram.read_arpa(fixtures / "ptb_valid.o3.arpa")
    assert lm.sizes() == [6024, 38515, 58346]
    ev = lm.evaluate(ptb("test"))
    assert (ev.oovs, ev.tokens) == (3368, 82430)
    assert ev.perplexity == pytest.approx(271.9585941942738, rel=1e-6)
    assert ev.perplexity_excl_oov == pytest.approx(215.0525113649404, rel=1e-6)


def test_names_fixture_reproduces_kenlm_query(fixtures, data_dir):
    lm = ngram.read_arpa(fixtures / "names_chars.o5.arpa")
    text = names()
    ev = lm.evaluate(text)
    last = lm.evaluate(text[-1:])
    # KenLM's query on a file without a final newline: the last line's words count as tokens,
    # their log-probabilities are dropped, and it gets no </s>
    tokens, logprob = ev.tokens - 1, ev.logprob - last.logprob
    assert tokens == 228145
    assert math.exp(-logprob / tokens) == pytest.approx(5.626025836315402, rel=1e-6)
    assert ev.perplexity == pytest.approx(5.6264, abs=1e-4)  # every line scored, with </s>


def test_modified_kneser_ney_matches_lmplz_on_ptb_valid(fixtures, data_dir):
    ref = log10_table(ngram.read_arpa(fixtures / "ptb_valid.o3.arpa"))
    mine = log10_table(ngram.fit(ptb("valid"), 3, "modified_kneser_ney"))
    for k in (1, 2, 3):
        p_r, p_m, bo_r, bo_m = aligned(ref, mine, k)
        assert np.abs(p_r - p_m).max() < 1e-6, k
        assert np.abs(bo_r - bo_m).max() < 1e-6, k


def test_modified_kneser_ney_matches_lmplz_on_names(fixtures, data_dir):
    text = names()
    vocab = ngram.build_vocab(text)
    ids = ngram.encode(vocab, text)[:-1]  # lmplz saw no </s> after the last name (no final newline)
    counts = ngram.count_ngrams(ids, 5, vocab)
    with pytest.warns(ngram.DiscountFallbackWarning, match="order 1"):
        lm = modified_kneser_ney(counts)
    printed = [[0.5, 1, 1.5], [0.448276, 0.823276, 1.8046], [0.492776, 1.04803, 1.53024],
               [0.619677, 1.11929, 1.52607], [0.596917, 1.22786, 1.65662]]  # the fixture README
    assert [[float(f"{d:.6g}") for d in order] for order in lm.info["discounts"]] == printed

    ref = log10_table(ngram.read_arpa(fixtures / "names_chars.o5.arpa"))
    mine = log10_table(lm)
    for k in range(1, 6):
        p_r, p_m, bo_r, bo_m = aligned(ref, mine, k)
        assert np.abs(p_r - p_m).max() < 1e-6, k
        if k in (1, 5):
            assert np.abs(bo_r - bo_m).max() < 1e-6, k
    # orders 2-4: lmplz's back-offs are ours shifted by one in its suffix order, from the context
    # with no continuation on (see the module docstring)
    words = np.array(vocab.words, dtype=object)
    for k, childless in ((2, "z x"), (3, "y z x"), (4, "z y z x")):
        grams = counts.ngrams(k)
        grams = grams[np.lexsort(grams.T)]                    # lmplz's suffix order
        grams = grams[grams[:, -1] != vocab.eos_id]           # n-grams ending in </s> have bo 0
        text_k = [" ".join(g) for g in words[grams]]
        ref_bo = dict(zip(ref[k][0], ref[k][2]))
        my_bo = dict(zip(mine[k][0], mine[k][2]))
        r = np.array([ref_bo[t] for t in text_k])
        m = np.array([my_bo[t] for t in text_k])
        start = text_k.index(childless)
        assert my_bo[childless] == 0.0                        # no continuation: weight 1
        assert np.abs(r[:start] - m[:start]).max() < 1e-6      # before it, identical
        assert np.abs(r[start:-1] - m[start + 1:]).max() < 1e-6  # from it on, shifted by one
        assert r[-1] == 0.0


@pytest.mark.filterwarnings("ignore::scratchlm.ngram.DiscountFallbackWarning")  # toy data
def test_kenlm_reads_what_we_write(tmp_path):
    kenlm = pytest.importorskip("kenlm")
    train = [list("abcab"), list("bcab"), list("aab"), list("cbd"), list("abcd")] * 4
    test = [list("abcd"), list("dcba"), list("zab")]
    for smoothing in ("modified_kneser_ney", "good_turing", "witten_bell"):
        lm = ngram.fit(train, 4, smoothing)
        ngram.write_arpa(lm, tmp_path / "lm.arpa")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ken = kenlm.Model(str(tmp_path / "lm.arpa"))
        for s in test:
            theirs = [score for score, _, _ in ken.full_scores(" ".join(s), bos=True, eos=True)]
            ours = lm.logprob_ids(lm.encode([s]))[1:] / LN10
            np.testing.assert_allclose(ours, theirs, atol=1e-5)


@pytest.mark.parametrize("smoothing", ["modified_kneser_ney", "kneser_ney", "witten_bell", "jelinek_mercer",
                                       "absolute_discounting", "good_turing"])
def test_write_read_round_trip(tmp_path, smoothing):
    train = [list("abcab"), list("bcab"), list("aab"), list("cbd"), list("abcd"), list("ba")] * 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ngram.DiscountFallbackWarning)  # toy data
        lm = ngram.fit(train, 3, smoothing)
    ngram.write_arpa(lm, tmp_path / "lm.arpa")
    back = ngram.read_arpa(tmp_path / "lm.arpa")
    assert back.vocab.words == lm.vocab.words and back.sizes() == lm.sizes()
    for k in range(3):
        np.testing.assert_array_equal(back.word[k], lm.word[k])
        np.testing.assert_allclose(back.logp_table[k], lm.logp_table[k], rtol=1e-14)
        if k < 2:  # a zero weight (log -inf) is written as ARPA's -99
            want = np.maximum(lm.logbo_table[k], -99 * LN10)
            np.testing.assert_allclose(back.logbo_table[k], want, rtol=1e-14, atol=1e-300)
    test = [list("abcd"), list("dcbaz"), []]
    np.testing.assert_allclose(back.logprob_ids(back.encode(test)), lm.logprob_ids(lm.encode(test)), rtol=1e-13)


@pytest.mark.filterwarnings("ignore::scratchlm.ngram.DiscountFallbackWarning")  # toy data
@pytest.mark.parametrize("smoothing", ["witten_bell", "modified_kneser_ney"])
def test_unigram_model_round_trips(tmp_path, smoothing):
    """An order-1 file has no back-off column at all (its one order is the highest)."""
    lm = ngram.fit([list("abcab"), list("bca")], 1, smoothing)
    ngram.write_arpa(lm, tmp_path / "uni.arpa")
    back = ngram.read_arpa(tmp_path / "uni.arpa")
    assert back.order == 1 and back.vocab.words == lm.vocab.words
    np.testing.assert_allclose(back.logp_table[0], lm.logp_table[0], rtol=1e-14)
    test = [list("abz"), []]
    np.testing.assert_allclose(back.logprob_ids(back.encode(test)), lm.logprob_ids(lm.encode(test)), rtol=1e-13)


GOOD = """\\data\\
ngram 1=4
ngram 2=2

\\1-grams:
-1.0\t<unk>\t0
0\t<s>\t-0.3
-0.5\t</s>
-0.4\ta\t-0.2

\\2-grams:
-0.2\t<s> a
-0.3\ta </s>

\\end\\
"""


def test_read_small_file_and_its_semantics(tmp_path):
    path = tmp_path / "ok.arpa"
    path.write_text(GOOD)
    lm = ngram.read_arpa(path)
    assert lm.vocab.words == ["<unk>", "<s>", "</s>", "a"]
    assert lm.logprob("a", ["<s>"]) == pytest.approx(-0.2 * LN10)
    assert lm.logprob("</s>", ["a"]) == pytest.approx(-0.3 * LN10)
    assert lm.logprob("a", ["a"]) == pytest.approx((-0.2 - 0.4) * LN10)  # back-off a, then p(a)
    assert lm.logprob("b", ["<s>"]) == pytest.approx((-0.3 - 1.0) * LN10)  # unknown word: <unk>


@pytest.mark.parametrize("old, new, line, message", [
    ("\\data\\\n", "\\dta\\\n", 1, "expected '\\\\data"),
    ("ngram 2=2", "ngram 2=x", 3, "ngram K=COUNT"),
    ("ngram 2=2", "ngram 3=2", 3, "order 2"),
    ("-0.4\ta\t-0.2", "-0.4\ta\t-0.2\textra", 9, "needs 2 or 3 fields"),
    ("-0.4\ta\t-0.2", "minus\ta\t-0.2", 9, "not a number"),
    ("-0.4\ta\t-0.2", "nan\ta\t-0.2", 9, "finite"),
    ("-0.3\ta </s>", "-0.3\ta b", 13, "'b'.*not among the unigrams"),
    ("-0.3\ta </s>", "-0.3\t<s> a", 13, "listed twice .first at line 12"),
    ("-0.3\ta </s>", "-0.3\ta </s>\t-0.1", 13, "needs 3 fields"),
    ("-0.3\ta </s>\n", "", 13, "declares 2 2-grams, the section has 1"),
    ("\\2-grams:", "\\3-grams:", 11, "expected '\\\\2-grams:'"),
    ("\\end\\\n", "", 15, "expected '\\\\end"),
    ("0\t<s>\t-0.3", "0\t<t>\t-0.3", 6, "lack '<s>'"),
])
def test_malformed_files_name_the_line(tmp_path, old, new, line, message):
    path = tmp_path / "bad.arpa"
    assert old in GOOD
    path.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(ArpaError, match=f"bad.arpa:{line}: .*{message}"):
        ngram.read_arpa(path)


def test_missing_context_is_an_error(tmp_path):
    text = GOOD.replace("ngram 2=2", "ngram 2=2\nngram 3=1").replace(
        "\\end\\", "\\3-grams:\n-0.1\ta a </s>\n\n\\end\\").replace("-0.3\ta </s>", "-0.3\ta </s>\t0")
    path = tmp_path / "ctx.arpa"
    path.write_text(text)
    with pytest.raises(ArpaError, match=r"ctx.arpa:17: 3-gram 'a a </s>': its context 'a a' is not a 2-gram"):
        ngram.read_arpa(path)


def test_missing_unk_warns_and_gets_kenlm_probability(tmp_path):
    path = tmp_path / "nounk.arpa"
    path.write_text(GOOD.replace("ngram 1=4", "ngram 1=3").replace("-1.0\t<unk>\t0\n", ""))
    with pytest.warns(UserWarning, match="no <unk>"):
        lm = ngram.read_arpa(path)
    assert lm.logprob("zzz", []) == pytest.approx(-100 * LN10)
