"""Chapter 11 runs in --quick mode, its numbers hang together, and under `mpiexec -n 2` it trains the
same runs to the same numbers as one process (the sweep's own MPI test is in test_sweep.py)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from chapter_helpers import without_timings
from test_sweep import TIMINGS, mpiexec, threads_env

from scratchlm import runtime

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "chapters" / "ch11_scaling_laws.py"
ONE_THREAD = {var: "1" for var in runtime.THREAD_VARS}     # one process and two ranks: the same BLAS threads


def run_quick(out: Path, *launcher: str) -> str:
    proc = subprocess.run([*launcher, sys.executable, str(SCRIPT), "--quick", "--out", str(out)],
                          env=threads_env(**ONE_THREAD), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, \
        f"{' '.join(launcher)} ch11 --quick failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """(out folder, results JSON) of one process's quick run."""
    data = os.environ.get("SCRATCHLM_DATA_DIR")
    if not data or not Path(data).is_dir():
        pytest.skip("no data: set SCRATCHLM_DATA_DIR to a folder holding the data sets (../shared/data)")
    out = tmp_path_factory.mktemp("ch11") / "one"
    run_quick(out)
    return out, json.loads((out / "ch11_results.json").read_text())


def test_chapter_11_quick(quick):
    out, res = quick
    for name in ("ch11_isoflop.png", "ch11_frontier.png", "ch11_parametric.png", "ch11_kaplan.png"):
        assert (out / name).stat().st_size > 10_000, name
    runs = res["runs"]
    assert len(list((out / "sweep_cache").glob("*.json"))) == len(runs)
    budgets = sorted({r["budget"] for r in runs})
    assert len(budgets) >= 3 and all(sum(r["budget"] == b for r in runs) >= 5 for b in budgets)
    for r in runs:                   # D rounded down to whole steps: the run's exact C is at most its budget
        assert 0 < r["C"] <= r["budget"] and r["C_6ND"] == 6 * r["N"] * r["D"]

    # 11.1: the formula counts what a training step executes
    fl = res["flops"]
    step = fl["counted_step"]
    assert step["forward"] + step["backward"] == fl["formula_step"] and step["backward"] == 2 * step["forward"]
    assert fl["formula_step"] == 3 * step["batch"] * step["T"] * sum(fl["breakdown"].values())

    # 11.2: a and b are the slopes of the budgets' minima, both ways of counting N
    for label in ("with embeddings", "without embeddings"):
        iso = res["isoflop"][label]
        assert iso["budgets"] == [b for b in budgets if b not in iso["budgets_without_minimum"]]
        assert iso["a"] == pytest.approx(np.polyfit(np.log(budgets), np.log(iso["N_opt"]), 1)[0], rel=1e-9)
        assert iso["b"] == pytest.approx(np.polyfit(np.log(budgets), np.log(iso["D_opt"]), 1)[0], rel=1e-9)

    # 11.3: the parametric fit's a, its residuals, its intervals
    L = np.array([r["valid_loss"] for r in runs])
    for label, key in (("with embeddings", "N"), ("without embeddings", "N_non_embedding")):
        p = res["parametric"][label]
        assert p["a"] == pytest.approx(p["beta"] / (p["alpha"] + p["beta"]))
        assert p["a_approach_2"] == res["isoflop"][label]["a"] and isinstance(p["approaches_agree"], bool)
        N, D = np.array([r[key] for r in runs], float), np.array([r["D"] for r in runs], float)
        fitted = p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]
        np.testing.assert_allclose(np.log(fitted / L), p["residuals"], rtol=1e-9, atol=1e-12)
        assert all(lo <= hi for lo, hi in p["intervals"].values())
        assert set(p["intervals"]) >= {"E", "alpha", "beta", "a"}

    # 11.4: one run per size for L(N); the L(D) runs are one model's
    k = res["kaplan"]
    assert len({r["size"] for r in k["L_of_N_runs"]}) == len(k["L_of_N_runs"]) >= 3
    assert {r["size"] for r in k["L_of_D_runs"]} == {k["L_of_D_model"]}
    assert k["alpha_N"] == k["L(N), N without embeddings"]["alpha"] and k["alpha_D"] == k[
        f"L(D), {k['L_of_D_model']}, final losses"]["alpha"]

    # 11.5: fitted only on the runs at C <= C_max / hold_out, predicting every run of the largest budget
    pred = res["prediction"]
    assert pred["C"] == budgets[-1] and pred["fit_C_max"] == budgets[-1] / pred["hold_out"]
    assert pred["n_fitted"] == sum(r["budget"] <= pred["fit_C_max"] for r in runs)
    assert len(pred["runs"]) == sum(r["budget"] == budgets[-1] for r in runs)
    for r in pred["runs"]:
        assert r["error_nats"] == pytest.approx(r["predicted"] - r["measured"])
    assert pred["mean_abs_error_nats"] == pytest.approx(np.mean([abs(r["error_nats"]) for r in pred["runs"]]))

    # 11.6: ours beside every anchor
    assert {"Kaplan et al. 2020", "Hoffmann et al. 2022, approach 2", "Hoffmann et al. 2022, approach 3",
            "Besiroglu et al. 2024"} <= set(res["table"])
    assert set(res["seconds"]) == {"sweep", "11.1", "11.2", "11.3", "11.4", "11.5", "11.6", "total"}
    assert all(math.isfinite(v) for v in res["seconds"].values())


def test_chapter_11_under_mpi_trains_the_same_runs(quick, tmp_path):
    pytest.importorskip("mpi4py")
    launcher = mpiexec()
    one_out, one_res = quick
    stdout = run_quick(tmp_path / "mpi", launcher, "-n", "2")
    assert "[rank 0] run 1/" in stdout and "[rank 1] run 1/" in stdout      # both ranks trained runs
    assert stdout.count("11.6 chapter finished") == 1                        # rank 0 alone fits and prints
    one = {p.name: json.loads(p.read_text()) for p in (one_out / "sweep_cache").glob("*.json")}
    mpi = {p.name: json.loads(p.read_text()) for p in (tmp_path / "mpi" / "sweep_cache").glob("*.json")}
    assert sorted(mpi) == sorted(one)
    for name in one:
        assert without_timings(mpi[name], TIMINGS) == without_timings(one[name], TIMINGS), name
    mpi_res = json.loads((tmp_path / "mpi" / "ch11_results.json").read_text())
    assert mpi_res["isoflop"] == one_res["isoflop"] and mpi_res["parametric"] == one_res["parametric"]
    assert mpi_res["prediction"] == one_res["prediction"]
