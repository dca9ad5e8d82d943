"""benchmarks/bench_threads.py, the measurement behind kernels.PARALLEL_MIN_SIZE: a smoke run prints a
row per kernel and size, and its verdict; every kernel it times is a parallel kernel of the library."""

import subprocess
import sys

import numpy as np
from benchmark_modules import BENCHMARKS, load_benchmark

from scratchlm.autograd import kernels as K


def test_it_times_parallel_kernels_the_gpt_step_calls():
    bench = load_benchmark("bench_threads")
    for name, (kernel, args) in bench.calls(4096, np.random.default_rng(0)).items():
        assert kernel is getattr(K, name.split()[0]), name
        assert hasattr(kernel, "kernel") and hasattr(kernel, "serial"), name    # a parallel_kernel's two
        kernel(*args)


def test_the_script_prints_a_row_per_kernel_and_size_and_the_verdict():
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "bench_threads.py"), "--sizes", "4096,8192",
                           "--repeats", "2"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("machine: ") for line in lines)
    rows = [line.split() for line in lines if line.lstrip().startswith(("4,096", "8,192"))]
    assert len(rows) == 2 * 6
    assert all(float(r[-1]) > 0 for r in rows)                     # a speed-up for every row
    assert lines[-1].startswith("two threads faster for every kernel from: ")
    assert f"{K.PARALLEL_MIN_SIZE:,}" in lines[-1]
