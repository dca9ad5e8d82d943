"""Chapter 3 runs in --quick mode, its numbers make sense, and the same seed gives the same numbers."""

import math

import pytest


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "chapters" / "ch03_autograd.py"
    outs = []
    for k in range(2):
        out = tmp_path_factory.mktemp(f"ch03_run{k}")
        proc = subprocess.run([sys.executable, str(script), "--quick", "--out", str(out)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs.append((out, json.loads((out / "ch03_results.json").read_text())))
    return outs


def test_writes_its_figures(two_runs):
    out, _ = two_runs[0]
    for name in ("ch03_gradcheck.png", "ch03_mlp.png"):
        assert (out / name).stat().st_size > 10_000, name


def test_chain_rule_and_tensor_gradients_match_by_hand(two_runs):
    res = two_runs[0][1]
    for k, v in res["chain_rule"]["by_hand"].items():
        assert res["chain_rule"]["by_autograd"][k] == pytest.approx(v, rel=1e-12)
    assert max(res["tensor_layer_max_abs_diff"].values()) < 1e-12


def test_every_op_passes_gradcheck(two_runs):
    errors = two_runs[0][1]["gradcheck_max_relative_error"]
    assert len(errors) >= 25
    assert all(0 <= e <= 1e-6 for e in errors.values()), errors


def test_mlp_learns(two_runs):
    mlp = two_runs[0][1]["mlp"]
    assert mlp["initial_loss"] == pytest.approx(math.log(3), abs=0.2)
    assert mlp["final_loss"] < 0.7 * mlp["initial_loss"]
    assert mlp["train_accuracy"] > 0.5


def test_same_seed_gives_bit_identical_numbers(two_runs):
    assert two_runs[0][1] == two_runs[1][1]
