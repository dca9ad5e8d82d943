"""Chapter 5 runs in --quick mode, writes its figures, and its numbers check out."""

from __future__ import annotations

import time

import numpy as np

from scratchlm import data


def test_ch05_quick(run_chapter):
    t0 = time.perf_counter()
    out, results = run_chapter("ch05_tokenization")
    assert time.perf_counter() - t0 < 60
    for name in ("ch05_oov", "ch05_compression", "ch05_zipf"):
        assert (out / f"{name}.png").stat().st_size > 10_000
    r = results["ch05_results"]
    assert r["quick"] is True

    # 5.1: the OOV rate, recounted with plain sets (PTB's literal <unk> is unknown to every vocabulary)
    train, valid = data.load_text("ptb", "train").split(), data.load_text("ptb", "valid").split()
    oov = r["oov"]
    for k, rate in zip(oov["train_words"], oov["oov_rate"]):
        seen = set(train[:k])
        assert rate == np.mean([w not in seen or w == "<unk>" for w in valid])
    assert np.all(np.diff(oov["oov_rate"]) < 0) and oov["literal_unk_rate"] == 3_485 / 70_390

    # 5.3 and 5.4: BPE's first merge on Shakespeare, and compression
    assert r["first_merges"][0] == "' ' + 't' -> ' t'"
    c = r["compression"]
    for name in ("tinyshakespeare", "chinese-classics"):
        assert c[name]["valid"][0] == c[name]["train"][0] == 1.0  # 256 tokens: one byte each
        assert np.all(np.diff(c[name]["train"]) > 0)  # every merge shortens its own training text
    assert r["characters"]["chinese-classics"]["bytes_per_char"] > 2.9
    assert r["characters"]["chinese-classics"]["valid_char_oov_rate"] > 0

    # 5.5: both unit kinds follow Zipf's law roughly; BPE has far fewer rare types than words
    zipf = r["zipf"]
    assert all(0.7 < z["zipf_exponent"] < 1.3 for z in zipf.values())
    assert zipf["words"]["types_seen_once"] > 10 * zipf["BPE-512 tokens"]["types_seen_once"]
