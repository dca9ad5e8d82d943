"""Same seed, same numbers, whether Numba compiles the kernels now or loads them from its cache.

Each kernel that calls a scratchlm.numerics helper (the autograd and attention kernels, and Chapter 8's
LSTM and RNN cells) is run on fixed inputs in two fresh processes that share one empty cache folder:
the first compiles everything (and fills the cache), the second loads it. Their results must be
equal bit for bit (before the helpers were inlined by Numba, they were not: see the numerics module
docstring)."""

import os
import subprocess
import sys

import numpy as np
import pytest

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
out["attention_softmax"] = np.empty_like(scores)          # the general kernel the models run (Chapter 9)
A.attention_softmax_forward(scores, np.float32(0.25), False, np.arange(64) % 17, out["attention_softmax"])
np.savez(sys.argv[1], **out)
"""

CELLS = r"""
import sys
import numpy as np
from scratchlm.models import rnn_kernels as K

rng = np.random.default_rng(0)
B, H = 7, 33
xp, hh = (rng.standard_normal((B, 4 * H)) * 3).astype(np.float32), rng.standard_normal((B, 4 * H)).astype(np.float32)
c_prev, dh, dc = (rng.standard_normal((3, B, H))).astype(np.float32)
gates, dgates = np.empty((B, 4 * H), np.float32), np.empty((B, 4 * H), np.float32)
c, tanh_c, h, dc_prev, pre = (np.empty((B, H), np.float32) for _ in range(5))
K.lstm_cell_forward(xp, hh, c_prev, gates, c, tanh_c, h)
K.lstm_cell_backward(gates, c_prev, tanh_c, dh, dh, dc, dc, dgates, dc_prev)
rnn_h = np.empty((B, H), np.float32)
K.rnn_cell_forward(xp[:, :H].copy(), hh[:, :H].copy(), rnn_h)
K.rnn_cell_backward(rnn_h, dh, dh, pre)
np.savez(sys.argv[1], gates=gates, c=c, h=h, dgates=dgates, dc_prev=dc_prev, rnn_h=rnn_h, pre=pre)
"""


@pytest.mark.parametrize("script", [KERNELS, CELLS], ids=["autograd and attention kernels", "LSTM and RNN cells"])
def test_kernels_give_the_same_bits_compiled_or_loaded_from_the_cache(tmp_path, script):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    runs = []
    for name in ("compiled", "cached"):
        proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / f"{name}.npz")], env=env,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs.append(np.load(tmp_path / f"{name}.npz"))
    assert any((tmp_path / "numba-cache").rglob("*.nbc")), "the first run should have filled the cache"
    compiled, cached = runs
    for key in compiled.files:
        np.testing.assert_array_equal(compiled[key], cached[key], err_msg=key)
