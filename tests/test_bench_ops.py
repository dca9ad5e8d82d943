"""benchmarks/bench_ops.py: each row times scratchlm's op beside PyTorch's, so both sides of every
row must compute the same numbers; and the script prints its table (a smoke run)."""

import subprocess
import sys

import numpy as np
import pytest

from benchmark_modules import BENCHMARKS, load_benchmark

torch = pytest.importorskip("torch")


def _arrays(result) -> list:
    """An op's result (array, tensor, or a list or tuple of them) as a list of float64 arrays."""
    items = result if isinstance(result, (list, tuple)) else [result]
    return [np.asarray(r.detach().numpy() if isinstance(r, torch.Tensor) else r, dtype=np.float64) for r in items]


@pytest.mark.parametrize("model", ["gpt", "bert", "t5", "lstm", "lora"])
def test_every_row_computes_what_its_pytorch_twin_computes(model):
    bench = load_benchmark("bench_ops")
    rows = bench.ops((model,))
    assert len({(op.model, op.name) for op in rows}) == len(rows)          # no row twice
    for op in rows:
        assert op.theirs is not None, op.name
        ours, theirs = _arrays(op.ours()), _arrays(op.theirs())
        assert [a.shape for a in ours] == [b.shape for b in theirs], op.name
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a, b, rtol=op.rtol, atol=op.rtol * np.abs(b).max(), err_msg=op.name)


def test_the_exp_floor_is_the_time_of_that_many_exps():
    bench = load_benchmark("bench_ops")
    small, large = bench.exp_floor_seconds(1_000, 0.01), bench.exp_floor_seconds(1_000_000, 0.01)
    assert 0 < small < large < 1                                  # more exps take longer, and not forever


def test_the_script_prints_the_machine_and_a_row_per_op():
    bench = load_benchmark("bench_ops")
    names = [op.name for op in bench.ops(("gpt",))]
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "bench_ops.py"), "--models", "gpt", "--seconds", "0.0001"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("machine: ") and "vector ISA" in line for line in lines)
    rows = [line for line in lines if line.startswith("gpt ")]
    assert len(rows) == len(names)
    for line, name in zip(rows, names):
        assert name in line
        assert line.rstrip().endswith("%")                                  # a number for every column
    slow = [line for line in lines if line.startswith("pointwise ops below 50% of the copy bandwidth")]
    assert len(slow) == 1
    exp_ops = [f"gpt {op.name} (" for op in bench.ops(("gpt",)) if op.exps]
    for listed in slow[0].split("bytes): ", 1)[1].split("), "):  # an op that takes exps comes with its floor
        assert ("e^x alone" in listed) == any(listed.startswith(name) for name in exp_ops), listed
    assert any(line.startswith("attention batched products, scratchlm / torch.bmm: worst ") for line in lines)
