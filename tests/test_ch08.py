"""Chapter 8 runs in --quick mode, writes its figures, its numbers hang together, and the same seed
gives the same numbers."""

import math

import pytest

from chapter_helpers import without_timings

FIGURES = ("ch08_learning_curves", "ch08_vanishing", "ch08_bilm")
TIMINGS = ("seconds", "ms_per_step", "seconds_per_epoch")   # wall-clock numbers differ from run to run


def test_chapter_8_quick(run_chapter):
    out, results = run_chapter("ch08_recurrent")
    for name in FIGURES:
        assert (out / f"{name}.png").stat().st_size > 10_000, name
    res = results["ch08_results"]

    # 8.1: the fused loop is the recurrence worked out by hand
    assert res["by_hand"]["fused"] == pytest.approx(res["by_hand"]["h"], abs=1e-12)

    # 8.1, 8.3: before training a model guesses uniformly (the evaluation at step 0), and training helps;
    # the reported valid perplexity is the last evaluation, test is scored over the whole stream
    ln_v = math.log(res["data"]["vocab_size"])
    for name in ("rnn", "lstm"):
        model = res[name]
        assert math.log(model["history"]["valid_ppl"][0]) == pytest.approx(ln_v, abs=0.2), name
        assert model["valid_ppl"] == model["history"]["valid_ppl"][-1] < model["history"]["valid_ppl"][0] / 2, name
        assert 1 < model["test_ppl"] < res["data"]["vocab_size"], name

    # 8.2: the curves are relative to k = 0
    for name in ("RNN", "LSTM"):
        assert res["vanishing"][name][0] == 1.0 and len(res["vanishing"][name]) == len(res["vanishing"]["k"])

    # 8.3: a gate open or shut keeps or writes the cell; the fused loop is the cell-by-cell one
    demo = res["cell_demo"]
    assert demo["keep_c"] == pytest.approx(0.7, abs=1e-6) and demo["write_c"] == pytest.approx(math.tanh(0.5), abs=1e-6)
    assert demo["fused_max_diff"] < 1e-12

    # 8.4: both sides see more than the left alone; a word's embedding is the same in every context
    bilm = res["bilm"]
    assert bilm["test_ppl"]["forward"] == bilm["fill_blank"]["forward_ppl"]
    assert len(bilm["example"]["top5"]["both"]) == 5
    sim = bilm["self_similarity"]
    assert sim["words"] > 0 and sim["self"][0] == pytest.approx(1.0, abs=1e-5)

    # 8.5: the table holds every model, with the earlier chapters' numbers from their JSON
    table = {row["model"].split(" (")[0].split(",")[0]: row for row in res["table"]}
    assert {"KN5", "NPLM", "NPLM + KN5", "RNN", "LSTM", "biLM forward direction"} <= set(table)
    assert table["LSTM"]["test_ppl"] == res["lstm"]["test_ppl"] and table["LSTM"]["literature"] == 114.5

    _, again = run_chapter("ch08_recurrent")
    assert without_timings(again["ch08_results"], TIMINGS) == without_timings(res, TIMINGS)
