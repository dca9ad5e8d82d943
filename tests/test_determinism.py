"""Same seed, same numbers, whether Numba compiles the kernels now or loads them from its cache.

Each kernel that calls a scratchlm.numerics helper is run on fixed inputs in two fresh processes that
share one empty cache folder: the first compiles everything (and fills the cache), the second loads
it. Their results must be equal bit for bit (before the helpers were inlined by Numba, they were not:
see the numerics module docstring)."""

import os
import subprocess
import sys

import numpy as np

KERNELS = r"""
import sys
import numpy as np
from scratchlm.autograd import kernels as K
from scratchlm.models import attention_kernels as A

rng = np.random.default_rng(0)
x = (rng.standard_normal((64, 999)) * 3).astype(np.float32)
t = rng.integers(0, 999, 64)
out = {}
loss, m, lse, d = np.empty(64, np.float32), np.empty(64, np.float32), np.empty(64, np.float32), np.empty_like(x)
K.cross_entropy_forward_backward(x, t, -1, np.full(64, 1 / 64, np.float32), loss, m, lse, d)
out["cross_entropy"], out["cross_entropy_grad"] = loss, d
out["softmax"] = np.empty_like(x); K.softmax_forward(x, out["softmax"])
out["log_softmax"] = np.empty_like(x); K.log_softmax_forward(x, out["log_softmax"])
for tanh in (True, False):
    out[f"gelu_{tanh}"] = np.empty(x.size, np.float32); K.gelu_forward(x.ravel(), tanh, out[f"gelu_{tanh}"])
scores = x[:, :16 * 16].reshape(64, 16, 16).copy()
out["causal_softmax"] = np.empty_like(scores); A.causal_softmax_forward(scores, np.float32(0.25), out["causal_softmax"])
np.savez(sys.argv[1], **out)
"""


def test_kernels_give_the_same_bits_compiled_or_loaded_from_the_cache(tmp_path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    runs = []
    for name in ("compiled", "cached"):
        proc = subprocess.run([sys.executable, "-c", KERNELS, str(tmp_path / f"{name}.npz")], env=env,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs.append(np.load(tmp_path / f"{name}.npz"))
    assert any((tmp_path / "numba-cache").rglob("*.nbc")), "the first run should have filled the cache"
    compiled, cached = runs
    for key in compiled.files:
        np.testing.assert_array_equal(compiled[key], cached[key], err_msg=key)
