"""Chapter 10 runs in --quick mode, writes its figures and checkpoints, and its numbers hang together."""

import math

import numpy as np

FIGURES = ("ch10_label_efficiency", "ch10_cost_accuracy", "ch10_lora_rank")


def test_chapter_10_quick(run_chapter):
    out, results = run_chapter("ch10_finetuning")
    for name in FIGURES:
        assert (out / f"{name}.png").stat().st_size > 10_000, name
    res = results["ch10_results"]
    C = res["settings"]["model"]["n_embd"]

    # 10.1: the two language-model steps trained, and were saved for later chapters
    pre = res["pretraining"]
    for step in ("general", "domain"):
        assert pre[step]["valid"][-1] < pre[step]["valid"][0], step
    assert pre["sms_valid_loss"]["after_domain"] < pre["sms_valid_loss"]["general"]
    for name in ("ch10_bpe.json", "ch10_gpt_general.npz", "ch10_gpt_sms.npz", "adapters/ch10_sms_lora.npz"):
        assert (out / "checkpoints" / name).stat().st_size > 0, name

    # 10.2-10.3: every method scored on the same test messages; what each trains is what it claims
    methods = {**res["methods"], **res["baselines"]}
    for name, m in methods.items():
        assert 0 <= m["accuracy"] <= 1 and 0 <= m["spam_f1"] <= 1, name
    full = methods["full fine-tuning"]["trainable"]
    assert methods["from scratch"]["trainable"] == full
    assert methods["linear probe"]["trainable"] == 2 * C + 2                 # W (2, C) and b (2,)
    assert methods["last block + head"]["trainable"] < full
    for name, m in methods.items():
        if name.startswith("LoRA"):
            assert m["trainable"] < methods["last block + head"]["trainable"], name
            # AdamW keeps two float32 moments per trained parameter, and a step count per trained array
            assert 2 * 4 * m["trainable"] < m["optimizer_state_bytes"] <= 2 * 4 * m["trainable"] + 8 * 64, name
        if name.startswith("prompt tuning"):
            assert m["trainable"] == int(name.split("P=")[1]) * C, name   # the prompt, nothing else
    assert res["best_lora"] in methods

    # 10.4: every budget and seed, for each method; the means are the runs' means
    eff = res["label_efficiency"]
    n_seeds = len(eff["seeds"])
    for name, runs in eff["runs"].items():
        assert len(runs) == len(eff["budgets"]) * n_seeds, name
        for labels, point in eff["mean"][name].items():
            accs = [r["accuracy"] for r in runs if r["labels"] == int(labels)]
            assert len(accs) == n_seeds and math.isclose(point["accuracy"], np.mean(accs), rel_tol=1e-12)
    for labels, gap in eff["pretrained_minus_scratch_accuracy"].items():
        assert math.isclose(gap, eff["mean"]["full fine-tuning"][labels]["accuracy"]
                            - eff["mean"]["from scratch"][labels]["accuracy"], abs_tol=1e-12)

    # 10.5: an adapter reloaded onto a fresh base gives the same logits; merged, the same to float32 rounding
    cost = res["cost"]
    assert cost["adapter_reload_max_logit_difference"] == 0.0
    assert cost["merged_max_logit_difference"] < 1e-4
    assert cost["methods"]["full fine-tuning"]["bytes_per_task"] == 4 * full
    assert all(c["bytes_per_task"] < 4 * full for n, c in cost["methods"].items() if n.startswith(("LoRA", "prompt")))

    # 10.6: the poems' split covers the 305 poems; each method scored on every seed
    zh = res["chinese"]
    assert sum(zh["split"].values()) == 305
    for name, runs in zh["runs"].items():
        assert len(runs) == n_seeds and 0 <= zh["mean"][name]["accuracy"] <= 1, name
    assert set(res["seconds"]) == {"10.1", "10.2", "10.3", "10.4", "10.5", "10.6"}

