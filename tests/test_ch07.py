"""Chapter 7 runs in --quick mode (training Chapter 6's quick model first) and its numbers make sense."""

import math


def test_chapter_7_quick(run_chapter):
    out, results = run_chapter("ch07_decoding")
    for name in ("ch07_tradeoff.png", "ch07_kv_cache.png"):
        assert (out / name).stat().st_size > 10_000, name
    assert (out / "ch06_baby_gpt.npz").exists()  # Chapter 6 ran first and saved its model
    res = results["ch07_results"]
    top5 = list(res["next_char_after_prompt"].values())
    assert top5 == sorted(top5, reverse=True) and 0 < sum(top5) <= 1 + 1e-9  # the top 5 of a distribution

    settings = [res["greedy"], res["top_k"], res["real_text"], *res["temperature"].values(),
                *res["top_p"].values()]
    for s in settings:
        assert 0 < s["bits_per_char"] < 2 * math.log2(65)
        assert 0 <= s["distinct_1"] <= 1 and 0 <= s["distinct_2"] <= 1
    # colder sampling is more likely under the model; greedy is the most likely of all the samplers
    temps = sorted(res["temperature"], key=float)
    assert res["temperature"][temps[0]]["bits_per_char"] < res["temperature"][temps[-1]]["bits_per_char"]
    assert res["greedy"]["bits_per_char"] < min(v["bits_per_char"] for v in res["temperature"].values())
    assert set(res["beam_search"]) == {"1", "4"}
    assert all(0 < b["bits_per_char"] < 2 * math.log2(65) for b in res["beam_search"].values())

    kv = res["kv_cache"]
    assert kv["identical_greedy_tokens"]
    assert len(kv["cached_ms"]) == len(kv["recompute_ms"]) == len(kv["length"])
