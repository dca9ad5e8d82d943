"""Chapter 1 runs in --quick mode, writes its figures, and its numbers check out."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scratchlm import data


def test_ch01_quick(run_chapter):
    out, results = run_chapter("ch01_ngrams")
    for name in ("ch01_zipf", "ch01_bigram_counts", "ch01_sparsity"):
        assert (out / f"{name}.png").stat().st_size > 10_000
    r = results["ch01_results"]
    assert r["quick"] is True

    # 1.1: the chain rule's factors multiply to the printed probability, each a bigram MLE
    chain = r["chain_rule"]
    assert math.isclose(math.prod(chain["factors"]), chain["probability"])
    assert all(0 < f < 1 for f in chain["factors"])

    # 1.3: the 27 x 27 matrix counts every bigram of the names used ('.' at both ends)
    names = data.load_lines("names", "train")[:2_000]
    m = np.array(r["names_bigram"]["counts"])
    assert r["names_bigram"]["letters"][0] == "." and m.shape == (27, 27)
    assert m.sum() == sum(len(n) + 1 for n in names)
    assert m[0].sum() == m[:, 0].sum() == len(names)          # one start and one end per name
    a, n = r["names_bigram"]["letters"].index("a"), r["names_bigram"]["letters"].index("n")
    assert m[a, n] == sum(name.count("an") for name in names)
    assert chain["factors"][0] == pytest.approx(m[0, r["names_bigram"]["letters"].index("e")] / len(names))

    # 1.4: perplexity falls with the order on train; MLE bigrams fail on valid
    p = r["names_perplexity"]
    train = [p[f"{k}-gram"]["train"] for k in (1, 2, 3, 4)]
    assert np.all(np.diff(train) < 0) and train[0] < p["uniform"]
    assert p["2-gram"]["valid"] is None and p["unseen_valid_bigram_types"] > 0

    # 1.6: sparsity grows with the order; MLE valid perplexity is finite only for unigrams
    s = r["sparsity"]
    assert s["unseen_tokens"][0] == 0 and np.all(np.diff(s["unseen_tokens"]) > 0) and s["unseen_tokens"][-1] > 0.5
    assert s["valid_ppl"][0] is not None and all(v is None for v in s["valid_ppl"][1:])
    assert np.all(np.diff(s["train_ppl"]) < 0)
    assert 0 < s["oov_rate"] <= s["unk_rate"] < 0.5
    assert all(-1.3 < z["slope"] < -0.7 for z in r["zipf"].values())
    assert len(r["shannon"]) == 4
