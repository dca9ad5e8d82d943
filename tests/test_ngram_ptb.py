"""Penn Treebank (Mikolov's split, <unk> as in the text): the published n-gram perplexities.

Mikolov et al. (2011), "Empirical evaluation and combination of advanced language modeling
techniques", table 2: GT3 165.2, KN3 148.3, KN5 141.2 on the test set (SRILM, one </s> scored per
sentence). Their KN is interpolated *modified* Kneser-Ney with no count cutoffs -- exactly lmplz's
default, our `modified_kneser_ney` (148.28, 141.19). Single-discount `kneser_ney` lands higher
(150.6, 143.5). GT3 is SRILM's default Katz model: Good-Turing on counts up to 7 (unigrams: up to
1, which leaves them undiscounted), trigrams seen once dropped: 165.23.
"""

import pytest

from scratchlm import data, ngram


@pytest.fixture(scope="module")
def ptb():
    if data.find("ptb", "ptb.train.txt") is None:
        pytest.skip("no PTB: set SCRATCHLM_DATA_DIR to a folder holding the data sets (../shared/data)")
    return {split: [line.split() for line in data.load_lines("ptb", split)] for split in ("train", "test")}


@pytest.mark.slow
@pytest.mark.parametrize("order, published", [(3, 148.3), (5, 141.2)])
def test_modified_kneser_ney_matches_mikolov(ptb, order, published):
    lm = ngram.fit(ptb["train"], order, "modified_kneser_ney")
    assert lm.perplexity(ptb["test"]) == pytest.approx(published, abs=0.5)


@pytest.mark.slow
def test_katz_good_turing_trigram_matches_mikolov(ptb):
    with pytest.warns(ngram.DiscountFallbackWarning, match=r"counts \[1\] are \[0.0\]"):  # d_1 = 0 when K = 1
        lm = ngram.fit(ptb["train"], 3, "good_turing", max_count=[1, 7, 7], min_count=[1, 1, 2])
    assert lm.perplexity(ptb["test"]) == pytest.approx(165.2, abs=0.5)
