"""Chapter 2 runs in --quick mode, writes its figures, and its numbers check out."""

from __future__ import annotations

import numpy as np


def test_ch02_quick(run_chapter):
    out, results = run_chapter("ch02_smoothing")
    for name in ("ch02_ptb_table", "ch02_training_size", "ch02_discounts"):
        assert (out / f"{name}.png").stat().st_size > 10_000
    r = results["ch02_results"]
    assert r["quick"] is True

    table = r["ptb_table"]
    assert set(table) == {"mle", "add_k", "good_turing", "witten_bell", "jelinek_mercer", "absolute_discounting",
                          "kneser_ney", "modified_kneser_ney", "stupid_backoff"}
    assert all(v is None for v in table["mle"].values())  # unseen test n-grams: infinite
    for order in table["kneser_ney"]:
        smoothed = {m: row[order] for m, row in table.items() if m not in ("mle", "stupid_backoff")}
        assert all(10 < v < 10_000 for v in smoothed.values())
        # the textbook ranking: modified KN <= KN < absolute discounting, add-one far worst
        assert smoothed["modified_kneser_ney"] <= smoothed["kneser_ney"] < smoothed["absolute_discounting"]
        assert smoothed["add_k"] == max(smoothed.values())

    d = r["discounts"]
    gt, held = np.array(d["good_turing"]), np.array(d["heldout"])
    assert np.all(np.diff(gt[1:6]) > 0) and np.all(gt[1:4] < np.arange(1, 4))  # discounted, but ordered
    assert np.all((np.arange(1, 4) - held[1:4] > 0.3) & (np.arange(1, 4) - held[1:4] < 2))  # held-out: discounted too
    assert r["stupid_backoff"]["score_mass_after_s_the"] > 1

    size = r["training_size"]
    assert len(size["tokens"]) >= 2 and np.all(np.diff(size["tokens"]) > 0)
    for order, curves in size["relative_bits"].items():
        assert np.all(np.array(curves["modified_kneser_ney"]) < 0)  # better than Jelinek-Mercer
