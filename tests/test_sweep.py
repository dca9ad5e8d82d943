"""The sweep runner: the corpus and its held-out pieces, single-epoch windows, one run's result and
its determinism, the cache (an interrupted sweep resumes, a rerun trains nothing, bad files are
errors), balancing runs over ranks, the MPI launcher helper, and a sweep over 2 MPI ranks identical
run for run to one process."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from chapter_helpers import without_timings
from scratchlm import runtime, sweep
from scratchlm.fileio import write_json
from scratchlm.models.gpt import GPT
from scratchlm.sweep import (Run, SweepError, balance, load_result, make_corpus, run_one, run_sweep, scaling_corpus,
                             training_windows, validation_windows)

# words drawn at random: a corpus with something to learn, 20,000 characters
TEXT = " ".join(np.random.default_rng(0).choice(["the", "cat", "sat", "on", "a", "mat", "dog", "ran"], 5000)) + "\n"
CORPUS = make_corpus(TEXT, "words", piece=1000, valid_every=5)
TINY = dict(n_layer=1, n_embd=16, n_head=2, block_size=16, batch_size=4, evals=2, eval_tokens=128)
RUNS = [Run(tokens=3 * 64, **TINY), Run(tokens=5 * 64, **TINY), Run(tokens=3 * 64, seed=1, **TINY),
        Run(tokens=4 * 64, **{**TINY, "n_embd": 8})]
TIMINGS = ("seconds", "train_seconds", "ms_per_step")   # what the clock measured in a run's result


# ---- the corpus ----------------------------------------------------------------------------------

def test_every_nth_piece_is_held_out():
    text = "".join(chr(ord("a") + i % 26) * 10 for i in range(100))          # 1,000 characters
    corpus = make_corpus(text, "letters", piece=100, valid_every=4)
    pieces = [text[i:i + 100] for i in range(0, 1000, 100)]
    assert corpus.tokenizer.decode(corpus.valid) == pieces[3] + pieces[7]
    assert corpus.tokenizer.decode(corpus.train) == "".join(p for k, p in enumerate(pieces) if k % 4 != 3)
    assert corpus.vocab_size == 26 and corpus.train.dtype == np.int64
    assert make_corpus(text, "again", piece=100, valid_every=4).fingerprint == corpus.fingerprint
    assert make_corpus(text, "other", piece=100, valid_every=5).fingerprint != corpus.fingerprint
    with pytest.raises(ValueError, match="fewer than 20 pieces"):
        make_corpus(text, "short", piece=100)


def test_the_scaling_corpus_is_ptb_and_shakespeare(data_dir):
    corpus = scaling_corpus()
    assert (len(corpus.train), len(corpus.valid)) == (6_628_341, 340_000)   # 697 pieces, 34 held out
    assert corpus.vocab_size == 80 and all(ord(c) < 128 for c in corpus.tokenizer.chars)
    assert corpus.tokenizer.decode(corpus.train[:12]) == "aer banknote"
    assert corpus.fingerprint == scaling_corpus().fingerprint


# ---- single epoch --------------------------------------------------------------------------------

def test_no_target_is_seen_twice():
    T, B = 16, 4
    n_windows = (1001 - 1) // T
    starts = training_windows(1001, T, B, n_windows // B, np.random.default_rng(0))      # (S, B), all windows
    assert starts.shape == (n_windows // B, B) and np.all(starts % T == 0)
    targets = (starts.reshape(-1, 1) + 1 + np.arange(T)).ravel()                       # every target position
    assert len(np.unique(targets)) == len(targets) and targets.max() < 1001
    shorter = training_windows(1001, T, B, 5, np.random.default_rng(0))
    np.testing.assert_array_equal(shorter, starts[:5])     # a shorter run reads the start of a longer one's data
    assert not np.array_equal(training_windows(1001, T, B, 5, np.random.default_rng(1)), shorter)
    with pytest.raises(ValueError, match="needs 64 windows .* hold 62"):
        training_windows(1000, T, B, 16, np.random.default_rng(0))


def test_a_run_longer_than_the_corpus_is_an_error():
    run = Run(tokens=len(CORPUS.train) + 64, **TINY)
    with pytest.raises(ValueError, match="single-epoch run"):
        run_one(run, CORPUS, log=lambda line: None)


def test_validation_windows_are_spread_and_distinct():
    starts = validation_windows(1001, 10, 5)
    np.testing.assert_array_equal(starts, [0, 250, 500, 740, 990])
    with pytest.raises(ValueError, match="lower eval_tokens"):
        validation_windows(1001, 10, 101)


# ---- one run -------------------------------------------------------------------------------------

def test_the_schedule_spans_the_run():
    run = Run(n_layer=1, n_embd=16, n_head=2, tokens=100 * 2048)
    settings = run.train_config()
    assert run.steps == 100 and settings.lr_decay_iters == 100 and settings.warmup_iters == 2
    assert settings.lr(100) == pytest.approx(0.1 * run.learning_rate)      # 10% of the peak at the run's end
    assert settings.lr(2) == pytest.approx(run.learning_rate)


def test_run_fields_are_checked_and_keyed():
    assert Run(tokens=192, **TINY).key == Run(tokens=np.int64(192), **TINY).key
    assert Run(tokens=192, **{**TINY, "eval_tokens": 64}).key != Run(tokens=192, **TINY).key
    assert Run(tokens=192, **TINY).key.startswith("L1-d16-D192-lr0.002-s0-")
    for bad, match in [({"tokens": 63}, "less than one step"), ({"n_head": 3}, "multiple of n_head"),
                       ({"seed": 1.0}, "seed"), ({"batch_size": 0}, "batch_size"),
                       ({"final_lr_ratio": 2.0}, "final_lr_ratio")]:
        with pytest.raises(ValueError, match=match):
            Run(**{**TINY, "tokens": 192, **bad})


def test_run_one_reports_n_d_c_and_its_history():
    run = RUNS[1]
    result = run_one(run, CORPUS, log=lambda line: None)
    model = GPT(run.model_config(CORPUS.vocab_size))
    N = sum(p.size for p in model.parameters())
    assert result["N"] == N and result["N_non_embedding"] == N - (CORPUS.vocab_size + 16) * 16
    assert (result["D"], result["steps"], result["C_6ND"]) == (5 * 64, 5, 6 * N * 5 * 64)
    history = result["history"]
    assert history["step"] == [0, 3, 5] and len(history["loss"]) == 5
    assert result["valid_loss"] == history["valid"][-1] < history["valid"][0]
    assert json.loads(json.dumps(result)) == result


def test_same_seed_same_numbers_whatever_ran_before():
    first = run_one(RUNS[0], CORPUS, log=lambda line: None)
    run_one(RUNS[3], CORPUS, log=lambda line: None)
    again = run_one(RUNS[0], CORPUS, log=lambda line: None)
    assert without_timings(again, TIMINGS) == without_timings(first, TIMINGS)
    other_seed = run_one(RUNS[2], CORPUS, log=lambda line: None)
    assert other_seed["valid_loss"] != first["valid_loss"]


# ---- the cache -----------------------------------------------------------------------------------

@pytest.fixture
def counted(monkeypatch):
    """run_one counted by run name; `fail` names runs whose training raises instead."""
    trained, fail = [], {}

    def counting(run, corpus, log=print):
        trained.append(run.name)
        if run.name in fail:
            raise fail[run.name]
        return run_one(run, corpus, log)

    monkeypatch.setattr(sweep, "run_one", counting)
    return trained, fail


def test_a_failed_run_is_retried_and_finished_runs_are_not(tmp_path, counted):
    trained, fail = counted
    fail[RUNS[1].name] = RuntimeError("the machine went away")
    with pytest.raises(SweepError, match=rf"1 of 4 runs failed(.|\n)*{RUNS[1].name}.*the machine went away"):
        run_sweep(RUNS, tmp_path, CORPUS, log=lambda line: None)
    assert trained == [r.name for r in RUNS]                      # the runs after the failure went on
    files = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.json")}
    assert sorted(files) == sorted(f"{r.key}.json" for r in RUNS if r is not RUNS[1])

    fail.clear()
    trained.clear()
    results = run_sweep(RUNS, tmp_path, CORPUS, log=lambda line: None)
    assert trained == [RUNS[1].name]                              # only the missing run is trained
    assert all(tmp_path.joinpath(name).stat().st_mtime_ns == t for name, t in files.items())
    assert [r["key"] for r in results] == [run.key for run in RUNS]

    trained.clear()
    again = run_sweep(RUNS, tmp_path, CORPUS, log=lambda line: None)
    assert trained == [] and again == results


def test_an_interrupted_sweep_resumes(tmp_path, counted):
    trained, fail = counted
    fail[RUNS[2].name] = KeyboardInterrupt()                      # stops the sweep at once
    with pytest.raises(KeyboardInterrupt):
        run_sweep(RUNS, tmp_path, CORPUS, log=lambda line: None)
    assert trained == [r.name for r in RUNS[:3]]
    fail.clear()
    trained.clear()
    run_sweep(RUNS, tmp_path, CORPUS, log=lambda line: None)
    assert trained == [r.name for r in RUNS[2:]]


def test_flops_give_c(tmp_path):
    results = run_sweep(RUNS[:2], tmp_path, CORPUS, log=lambda line: None,
                        flops=lambda config, D: 7.0 * config.n_embd * D)
    assert [r["C"] for r in results] == [7.0 * 16 * 192, 7.0 * 16 * 320]
    assert run_sweep(RUNS[:2], tmp_path, CORPUS, log=lambda line: None)[0]["C"] == results[0]["C_6ND"]


def test_bad_cache_files_are_errors_naming_them(tmp_path):
    run = RUNS[0]
    path = tmp_path / f"{run.key}.json"
    path.write_text('{"run": {"n_layer": 1')                       # cut short
    with pytest.raises(ValueError, match=rf"{path.name}: not a cached run: not JSON.*delete it"):
        run_sweep([run], tmp_path, CORPUS, log=lambda line: None)
    good = run_one(run, CORPUS, log=lambda line: None)
    write_json(path, {**good, "run": dataclasses.asdict(RUNS[2])})
    with pytest.raises(ValueError, match=f"{path.name}: holds the result of another run"):
        run_sweep([run], tmp_path, CORPUS, log=lambda line: None)
    write_json(path, {**good, "corpus": "0123456789abcdef"})
    with pytest.raises(ValueError, match=f"{path.name}: was trained on corpus '0123456789abcdef'"):
        run_sweep([run], tmp_path, CORPUS, log=lambda line: None)
    write_json(path, {k: v for k, v in good.items() if k != "history"})
    with pytest.raises(ValueError, match="without history"):
        load_result(path, run, CORPUS)
    write_json(path, good)
    assert load_result(path, run, CORPUS) == good


def test_a_run_listed_twice_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"runs\[0\] and runs\[2\] are the same run"):
        run_sweep([RUNS[0], RUNS[1], Run(tokens=192, **TINY)], tmp_path, CORPUS)


# ---- spreading runs over ranks -------------------------------------------------------------------

def test_balance_gives_the_costliest_first_to_the_least_loaded():
    assert balance([5, 4, 3, 3, 3], 2) == [0, 1, 1, 0, 1]        # loads 8 and 10
    assert balance([1, 1, 1], 1) == [0, 0, 0]
    assert balance([1, 2], 4) == [1, 0]
    owner = balance(list(range(1, 21)), 3)
    loads = [sum(c for c, r in zip(range(1, 21), owner) if r == rank) for rank in range(3)]
    assert sorted(loads) == [69, 70, 71]                          # the best split is 70 each


def test_start_mpi_refuses_a_launcher_without_mpi4py(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)              # as if it were not installed
    monkeypatch.setenv("PMI_SIZE", "2")
    with pytest.raises(RuntimeError, match="PMI_SIZE is set.*pip install 'scratchlm\\[mpi\\]'"):
        runtime.start_mpi()


def test_set_threads_refuses_after_numpy():
    with pytest.raises(RuntimeError, match="before NumPy is imported"):
        runtime.set_threads(1)


def mpiexec() -> str:
    """The mpiexec beside this Python (pip's mpich puts it there), else the one on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if found is None:
        pytest.skip("no mpiexec: pip install 'scratchlm[mpi]' installs MPICH's")
    return found


def threads_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in runtime.THREAD_VARS}
    return {**env, **extra}


def test_start_mpi_divides_the_cores_among_the_ranks():
    pytest.importorskip("mpi4py")
    # rank 0 prints every rank's line: two ranks writing to one pipe may interleave mid-line
    code = ("import os; from scratchlm.runtime import start_mpi; comm = start_mpi(); "
            "lines = comm.gather(f\"{comm.Get_rank()} {os.environ['OPENBLAS_NUM_THREADS']} "
            "{os.environ['NUMBA_NUM_THREADS']}\"); comm.Get_rank() == 0 and print('\\n'.join(lines))")
    proc = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-c", code], env=threads_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    threads = str(max(1, len(os.sched_getaffinity(0)) // 2))
    assert sorted(proc.stdout.split("\n")[:2]) == [f"0 {threads} {threads}", f"1 {threads} {threads}"]


SWEEP_SCRIPT = '''
import json, sys
from scratchlm.runtime import start_mpi
comm = start_mpi()                      # before numpy
from scratchlm.sweep import Run, make_corpus, run_sweep
text, runs, cache, out = sys.argv[1:]
corpus = make_corpus(open(text).read(), "words", piece=1000, valid_every=5)
results = run_sweep([Run(**r) for r in json.load(open(runs))], cache, corpus, comm=comm)
if comm.Get_rank() == 0:
    json.dump(results, open(out, "w"))
'''


def test_mpi_sweep_matches_one_process(tmp_path):
    pytest.importorskip("mpi4py")
    launcher = mpiexec()
    script, text, runs = tmp_path / "sweep.py", tmp_path / "text.txt", tmp_path / "runs.json"
    script.write_text(SWEEP_SCRIPT)
    text.write_text(TEXT)
    runs.write_text(json.dumps([dataclasses.asdict(r) for r in RUNS]))
    env = threads_env(**{var: "1" for var in runtime.THREAD_VARS})   # the same BLAS threads in both modes
    results = {}
    for mode, prefix in (("one", []), ("mpi", [launcher, "-n", "2"])):
        proc = subprocess.run([*prefix, sys.executable, str(script), str(text), str(runs), str(tmp_path / mode),
                               str(tmp_path / f"{mode}.json")], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{mode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        results[mode] = json.loads((tmp_path / f"{mode}.json").read_text())
        if mode == "mpi":                                            # both ranks trained some of the runs
            assert "[rank 0] run 1/" in proc.stdout and "[rank 1] run 1/" in proc.stdout
    assert [r["key"] for r in results["mpi"]] == [r.key for r in RUNS]
    assert without_timings(results["mpi"], TIMINGS) == without_timings(results["one"], TIMINGS)
