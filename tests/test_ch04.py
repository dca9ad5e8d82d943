"""Chapter 4 runs in --quick mode, writes its figures, its numbers hang together, and the same seed
gives the same numbers."""

import math

import pytest

from chapter_helpers import without_timings

FIGURES = ("ch04_learning_curves", "ch04_embeddings", "ch04_mixture", "ch04_names_context")
TIMINGS = ("seconds", "tokens_per_s", "train_seconds")   # wall-clock numbers differ from run to run


def test_chapter_4_quick(run_chapter):
    out, results = run_chapter("ch04_neural_lm")
    for name in FIGURES:
        assert (out / f"{name}.png").stat().st_size > 10_000, name
    res = results["ch04_results"]
    ptb, nplm = res["ptb"], res["ptb"]["nplm"]

    # 4.3: an untrained model guesses uniformly; 4.4: training helps, and the best epoch is kept
    assert nplm["initial_loss"] == pytest.approx(nplm["ln_V"], abs=0.3)
    assert math.log(nplm["valid_ppl"]) < nplm["initial_loss"] - 1.0
    history = nplm["history"]
    best = history["best_epoch"]
    assert nplm["valid_ppl"] == pytest.approx(math.exp(history["valid"][best - 1]), rel=1e-5)

    # 4.5: the buckets partition the test tokens
    buckets = ptb["by_longest_seen_ngram"]
    assert sum(b["tokens"] for b in buckets.values()) == ptb["tokens"]["test"]

    # 4.6: lambda = 0 and 1 are on the grid, so the tuned mixture is no worse than either model on valid
    mix = ptb["mixture"]
    assert mix["valid_ppl"] <= min(nplm["valid_ppl"], ptb["kn"]["kn5"]["valid_ppl"]) * (1 + 1e-9)
    assert mix["valid_ppl_by_lambda"][0] == pytest.approx(ptb["kn"]["kn5"]["valid_ppl"], rel=1e-9)
    assert mix["valid_ppl_by_lambda"][-1] == pytest.approx(nplm["valid_ppl"], rel=1e-9)

    # 4.7: neighbours are other words, most similar first
    for word, neighbours in ptb["nearest_neighbours"].items():
        sims = [s for _, s in neighbours]
        assert word not in [w for w, _ in neighbours] and sims == sorted(sims, reverse=True)

    # 4.8-4.9: names NLL in nats per character, below a uniform guess over the alphabet
    names = res["names"]
    assert names["valid_nll"] < math.log(names["vocab_size"]) - 0.5
    assert len(names["context_sweep"]["context"]) == len(names["context_sweep"]["nplm_valid_nll"]) >= 2

    _, again = run_chapter("ch04_neural_lm")
    assert without_timings(again["ch04_results"], TIMINGS) == without_timings(res, TIMINGS)
