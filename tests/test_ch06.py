"""Chapter 6 runs in --quick mode and its numbers make sense."""

import math

import numpy as np

from scratchlm.models.gpt import GPT


def test_chapter_6_quick(run_chapter):
    out, results = run_chapter("ch06_transformer")
    for name in ("ch06_loss.png", "ch06_attention.png"):
        assert (out / name).stat().st_size > 10_000, name
    res = results["ch06_results"]

    # 6.1-6.2: the kernel and the fused op agree with plain NumPy and with head-by-head Tensor ops
    P = np.array(res["one_head"]["weights"])
    np.testing.assert_allclose(P.sum(axis=1), 1, atol=1e-5)
    assert np.all(P[np.triu_indices(len(P), k=1)] == 0)
    assert res["one_head"]["max_abs_diff_numpy"] < 1e-12
    assert max(res["multi_head_max_abs_diff"].values()) < 1e-12

    # 6.3-6.5: an untrained model guesses uniformly; training and the baselines beat that
    uniform_bits = math.log2(65)
    assert abs(res["model"]["initial_loss"] - math.log(65)) < 0.05
    history = res["shakespeare"]["history"]
    assert history["valid"][-1] < history["valid"][0] - 0.3
    assert res["shakespeare"]["valid_bits_per_char"] < uniform_bits
    baselines = res["shakespeare_baselines"]
    assert all(1.0 < b < uniform_bits for b in baselines["ngram_bits_per_char"].values())
    assert 1.0 < baselines["nplm_bits_per_char"] < uniform_bits
    assert len(res["shakespeare"]["sample"]["text"]) == 100

    # 6.8: names
    names = res["names"]
    assert names["valid_bits_per_char"] < math.log2(27)
    assert len(names["samples"]) == 20
    assert all(set(s) <= set("abcdefghijklmnopqrstuvwxyz") for s in names["samples"])

    # the checkpoint Chapter 7 decodes: it loads, and scores valid as the chapter reported
    model, meta = GPT.from_checkpoint(out / "ch06_baby_gpt.npz")
    assert meta["extra"]["valid_loss"] == res["shakespeare"]["valid_loss_full"]
    assert model.config.block_size == 32 and model.config.vocab_size == 65
