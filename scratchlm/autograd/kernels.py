"""Numba kernels for the autograd engine's hot loops, each beside a plain-NumPy twin. Chapter 3.

Every kernel `name` has a twin `name_ref` with the same signature and the same result, written
with whole-array NumPy operations so that it reads like the math; tests/test_kernels.py checks
each pair on random inputs. The kernels exist only for speed: they fuse several passes over
memory into one loop per row and run rows in parallel (`prange`), where NumPy would allocate a
temporary for every intermediate.

    scatter_add_rows    out[idx[i]] += src[i]   gradient of gathering rows (embedding, x[ids])
"""

import numpy as np
from numba import njit


# ---- scatter-add: the gradient of a gather ---------------------------------------------------
# A gather out = W[idx] is the product onehot(idx) @ W, so its gradient is onehot(idx)^T @ g:
# row r of dW is the sum of the g rows whose index is r. Indices repeat (the same token twice
# in a batch), which is why a plain `dW[idx] += g` would be wrong: it keeps only one of them.

@njit(cache=True)
def scatter_add_rows(out, idx, src):
    """out[idx[i], :] += src[i, :] for every i, in place. out (N, D), idx (M,) int64, src (M, D)."""
    for i in range(idx.shape[0]):       # sequential in i: two threads may not add to one row
        r = idx[i]
        for j in range(out.shape[1]):
            out[r, j] += src[i, j]


def scatter_add_rows_ref(out, idx, src):
    onehot = (idx[:, None] == np.arange(out.shape[0])).astype(out.dtype)  # (M, N)
    out += onehot.T @ src
