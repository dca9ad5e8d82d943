"""The attention's batched products (scratchlm/models/attention_products.py): the kernel against its
NumPy twin over every kind of attention, layout and dtype; its sums against the in-order sum of fused
multiply-adds it promises (emulated here in float64); NumPy's own bits at the chapters' shapes where
this machine's OpenBLAS sums in that order; and the layouts that fall back to NumPy."""

import zlib

import numpy as np
import pytest

from scratchlm.models import attention_kernels as K
from scratchlm.models import attention_products as products

# (causal, Tq, Tk, key_lengths for B = 3 or None): Tq, Tk and hs around the kernel's blocks of
# ROWS rows and 16-float vectors, lengths 0 (no real key) to Tk
KINDS = {
    "causal": (True, 13, 13, None),
    "causal_cached": (True, 5, 12, None),
    "bidirectional": (False, 9, 9, None),
    "padded_bidirectional": (False, 11, 11, [11, 6, 0]),
    "padded_causal": (True, 10, 10, [10, 3, 1]),
    "cross": (False, 4, 17, None),
    "padded_cross": (False, 9, 19, [19, 2, 0]),
}


def _seed(*case) -> int:
    return zlib.crc32(repr(case).encode())


def weights(kind, hs, dtype, nh=2, seed=0):
    """Attention weights P (B, nh, Tq, Tk) from the softmax kernel (0 where a query does not see a key),
    key_lengths (B * nh,), and the right-hand sides of both products: (B, nh, Tk, hs) for P V and
    (B, nh, Tq, hs) for P^T dY."""
    causal, Tq, Tk, lengths = KINDS[kind]
    B = 3
    rng = np.random.default_rng(seed)
    lengths = np.repeat(np.full(B, Tk) if lengths is None else np.asarray(lengths), nh).astype(np.int64)
    scores = rng.normal(size=(B * nh, Tq, Tk)).astype(dtype)
    P = np.empty_like(scores)
    K.attention_softmax_forward(scores, dtype(0.5), causal, lengths, P)
    v, dy = (rng.normal(size=(B, nh, T, hs)).astype(dtype) for T in (Tk, Tq))
    return causal, P.reshape(B, nh, Tq, Tk), lengths, v, dy


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hs", [1, 7, 16, 20, 32, 40, 64])
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("transposed", [False, True])
def test_kernel_matches_numpy_twin(kind, hs, dtype, transposed):
    causal, P, lengths, v, dy = weights(kind, hs, dtype, seed=_seed(kind, hs, transposed))
    a, b = (P.swapaxes(-1, -2), dy) if transposed else (P, v)
    out, ref = (np.full(a.shape[:-1] + (hs,), np.nan, dtype) for _ in range(2))
    products.attention_matmul(a, b, causal, lengths, transposed, out)
    products.attention_matmul_ref(a, b, causal, lengths, transposed, ref)
    np.testing.assert_allclose(out, ref, rtol=1e-5 if dtype == np.float32 else 1e-13, atol=1e-6 if dtype == np.float32 else 1e-14)
    np.testing.assert_allclose(ref, a @ b, rtol=1e-5, atol=1e-6)   # the twin is the plain product on such weights


def in_order_fma(a, b):
    """a @ b as the kernel sums it: acc = fl(a_k b_k + acc) for k = 0, 1, ..., from +0, in float32. The
    product of two float32 is exact in float64; the one rounding of the fused add is emulated by
    rounding to float64 and then to float32, which is exact unless the float64 result lands on a
    float32 halfway point (then this emulation rounds twice and the test would show it)."""
    acc = np.zeros(a.shape[:-1] + b.shape[-1:], np.float32)
    for k in range(a.shape[-1]):
        acc = (a[..., k, None].astype(np.float64) * b[..., k, None, :] + acc).astype(np.float32)
    return acc


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("transposed", [False, True])
def test_kernel_sums_in_order_of_k_with_fused_adds(kind, transposed):
    causal, P, lengths, v, dy = weights(kind, 40, np.float32, seed=_seed(kind, "order", transposed))
    a, b = (P.swapaxes(-1, -2), dy) if transposed else (P, v)
    out = np.empty(a.shape[:-1] + (40,), np.float32)
    products.attention_matmul(a, b, causal, lengths, transposed, out)
    np.testing.assert_array_equal(out, in_order_fma(a, b))


# The chapters' attention shapes (B, nh, Tq, Tk, hs, causal, padded): the baby GPT (Chapters 6, 10's
# 128-token fine-tuning), the names model (Chapter 6, 24-wide heads), BERT and T5's self- and
# cross-attention (Chapter 9), Chapter 11's 16-wide heads, and Chapter 7's 512-token context.
SHAPES = {
    "gpt": (12, 4, 64, 64, 32, True, False),
    "gpt_128": (4, 4, 128, 128, 32, True, True),
    "names": (8, 4, 16, 16, 24, True, False),
    "bert": (16, 4, 64, 64, 32, False, True),
    "t5_decoder": (16, 4, 16, 16, 32, True, False),
    "t5_cross": (16, 4, 16, 64, 32, False, True),
    "scaling": (4, 8, 64, 64, 16, True, False),
    "context_512": (1, 2, 512, 512, 32, True, False),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_same_bits_as_numpy_where_openblas_sums_in_order(name):
    """The kernel replaced NumPy's matmul in the attention op without moving any figure's numbers: it
    takes the products this machine's OpenBLAS sums in order of k with fused adds, as the kernel does,
    and leaves the others to NumPy, so the op gives NumPy's bits, also on the strided views of the
    packed q, k, v it multiplies."""
    B, nh, Tq, Tk, hs, causal, padded = SHAPES[name]
    rng = np.random.default_rng(_seed(name))
    lengths = np.repeat(rng.integers(Tk // 2, Tk + 1, B) if padded else np.full(B, Tk), nh).astype(np.int64)
    P = np.empty((B * nh, Tq, Tk), np.float32)
    K.attention_softmax_forward(rng.normal(size=P.shape).astype(np.float32), np.float32(0.2), causal, lengths, P)
    P = P.reshape(B, nh, Tq, Tk)
    kv = rng.normal(size=(B, Tk, 3 * nh * hs)).astype(np.float32).reshape(B, Tk, 3, nh, hs)
    v = kv.transpose(2, 0, 3, 1, 4)[2]                                        # a view, rows 3C apart
    dy = rng.normal(size=(B, Tq, nh, hs)).astype(np.float32).transpose(0, 2, 1, 3)
    for a, b, transposed in [(P, v, False), (P.swapaxes(-1, -2), dy, True)]:
        kernel = a.shape[-1] <= products.MAX_TERMS and hs % 16 == 0
        if kernel and not np.array_equal(np.matmul(a, b), in_order_fma(a, b)):
            pytest.skip("this machine's OpenBLAS does not sum these products in order (another kernel, another "
                        "order): the attention op's bits differ from NumPy's matmul here, its values do not")
        out = np.empty((B, Tq, nh, hs) if not transposed else (B, Tk, nh, hs), np.float32).transpose(0, 2, 1, 3)
        products.visible_matmul(a, b, causal, lengths, transposed, out=out)
        np.testing.assert_array_equal(out, np.matmul(a, b))


def test_visible_matmul_leaves_to_numpy_what_openblas_sums_otherwise_and_strided_rows():
    causal, P, lengths, v, dy = weights("causal_cached", 32, np.float32)
    one = P[:, :, -1:]                                       # a decoding step: one query
    np.testing.assert_array_equal(products.visible_matmul(one, v, causal, lengths), np.matmul(one, v))
    strided = v[..., ::2]                                    # rows not contiguous: no vector loads
    np.testing.assert_array_equal(products.visible_matmul(P, strided, causal, lengths), np.matmul(P, strided))
    narrow = v[..., :24]                                     # rows of 24: not whole 16-number vectors
    np.testing.assert_array_equal(products.visible_matmul(P, narrow, causal, lengths), np.matmul(P, narrow))
    long = np.tile(P, products.MAX_TERMS // P.shape[-1] + 1)  # more terms than MAX_TERMS
    tall = np.tile(v, (1, 1, long.shape[-1] // v.shape[-2], 1))
    np.testing.assert_array_equal(products.visible_matmul(long, tall, False, np.full(len(lengths), long.shape[-1])),
                                  np.matmul(long, tall))
    five = P[None]                                           # more leading axes than (B, nh)
    np.testing.assert_allclose(products.visible_matmul(five, v[None], causal, lengths), np.matmul(five, v[None]),
                               rtol=1e-5, atol=1e-6)
