"""The benchmark scripts as modules, for the parity tests that share their PyTorch twins
(`from benchmark_modules import load_benchmark`): one twin of each model, used by both.

    load_benchmark("_common")       benchmarks/_common.py: the Transformer pieces' twins
    load_benchmark("bench_gpt")     the GPT's twin (torch_gpt_loss), and so on
"""

import functools
import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@functools.cache
def load_benchmark(name: str):
    """benchmarks/<name>.py imported once (the scripts import `_common` from their own folder)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
