"""Chapter 9 runs in --quick mode, and its numbers hang together."""

import math

import numpy as np


def test_chapter_9_quick(run_chapter):
    out, results = run_chapter("ch09_pretrained_transformers")
    for name in ("ch09_masks.png", "ch09_context.png", "ch09_seq2seq.png", "ch09_modern.png"):
        assert (out / name).stat().st_size > 10_000, name
    res = results["ch09_results"]

    # 9.1: every attention module of the three models (quick: 2 GPT, 2 BERT, T5's encoder self-attention,
    # decoder self-attention and cross-attention) put weight exactly where visible_keys says
    masks = res["masks"]
    assert masks["weights_match_visible_keys"] and masks["modules_checked"] == 7
    gpt_panel, bert_panel, t5_self, t5_cross = masks["panels"].values()
    assert gpt_panel["visible_keys"] == list(range(1, gpt_panel["queries"] + 1))        # causal
    assert len(set(bert_panel["visible_keys"])) == 1 and bert_panel["visible_keys"][0] < bert_panel["keys"]  # padded
    assert t5_self["visible_keys"] == list(range(1, t5_self["queries"] + 1))
    assert t5_cross["queries"] != t5_cross["keys"] and len(set(t5_cross["visible_keys"])) == 1

    # 9.2: the same steps for the three; about the same parameters; each objective's loss falls
    pre = res["pretraining"]
    models = ("GPT", "BERT", "T5")
    counts = [pre[m]["parameters"] for m in models]
    assert max(counts) / min(counts) < 1.1, counts
    for m in models:
        h = pre[m]["history"]
        assert h["step"][-1] == pre["train_config"]["max_iters"] and len(h["loss"]) == h["step"][-1]
        assert h["valid"][-1] < h["valid"][0] - 0.5 and pre[m]["valid_loss"] == h["valid"][-1]
    block = pre["configs"]["GPT"]["block_size"]
    assert pre["GPT"]["targets_per_step"] == pre["batch_size"] * block            # every next word
    assert 0.05 < pre["BERT"]["targets_per_step"] / (pre["batch_size"] * block) < 0.3  # about 15%

    # 9.3: the same words scored five ways and by the unigram; the classes partition them; each margin is
    # a difference of two of the means
    ctx = res["context"]
    by_class = ctx["by_class"]
    n_words = ctx["windows"] * (ctx["window_words"] - 1)
    assert by_class["all"]["words"] == n_words
    assert sum(v["words"] for k, v in by_class.items() if k != "all") == n_words
    for m in ctx["margins"].values():
        left, both = by_class["all"][m["from"]], by_class["all"][m["to"]]
        assert math.isclose(m["mean_nats"], left - both, rel_tol=1e-9, abs_tol=1e-9)
        assert math.isclose(m["ppl_from"], math.exp(left), rel_tol=1e-9) and 0 <= m["share_of_words_likelier"] <= 1
    assert ctx["margins"]["BERT"]["from"] == "BERT (left only)" and ctx["margins"]["BERT"]["to"] == "BERT (both sides)"
    assert len(ctx["by_position"]) == 6          # the unigram reference and the five scorings
    for name, per_position in ctx["by_position"].items():
        assert len(per_position) == ctx["window_words"] - 1
        assert math.isclose(np.mean(per_position), by_class["all"][name], rel_tol=1e-9)
    assert 0 < ctx["bert_loss_15_percent_masked"] < 2 * math.log(pre["configs"]["BERT"]["vocab_size"])

    # 9.4: one exact-match point per evaluation, for both models, on numbers never trained on
    s2s = res["seq2seq"]
    assert s2s["n_train"] + s2s["n_valid"] + s2s["n_test"] == s2s["bound"]
    for m in ("T5", "GPT"):
        assert len(s2s[m]["valid_exact_match"]) == len(s2s[m]["history"]["step"])
        assert all(0 <= v <= 1 for v in s2s[m]["valid_exact_match"]) and 0 <= s2s[m]["test_exact_match"] <= 1
        assert len(s2s[m]["examples"]) == 3
    assert s2s["T5"]["config"]["n_encoder_layer"] == s2s["T5"]["config"]["n_decoder_layer"]

    # 9.5: the two decoders, same steps, parameters within a few per cent, both learn
    modern = res["modern"]
    (_, gpt2_run), (_, new_run) = [(k, v) for k, v in modern.items() if isinstance(v, dict) and "config" in v]
    difference = new_run["valid_loss_full"] - gpt2_run["valid_loss_full"]
    assert math.isclose(modern["difference_modern_minus_gpt2"], difference)
    assert new_run["config"]["norm"] == "rmsnorm" and new_run["config"]["position"] == "rope"
    assert new_run["config"]["mlp"] == "swiglu" and gpt2_run["config"]["mlp"] == "gelu"
    assert abs(new_run["parameters"] / gpt2_run["parameters"] - 1) < 0.05
    for r in (gpt2_run, new_run):
        assert r["history"]["step"] == gpt2_run["history"]["step"]
        assert r["valid_loss_full"] < math.log(65)

    assert set(res["seconds"]) == {"9.1", "9.2", "9.3", "9.4", "9.5", "total"}
