"""The attention's batched products (scratchlm/models/attention_products.py): the kernel against its
NumPy twin over every kind of attention, layout and dtype; its sums against the in-order sum of fused
multiply-adds it promises (emulated here in float64); NumPy's own bits at the chapters' shapes where
this machine's OpenBLAS sums in that order; which products go to NumPy instead; and bad arguments."""

import zlib

import numpy as np
import pytest

from scratchlm.models import attention_kernels as kernels
from scratchlm.models import attention_products as products

# (causal, Tq, Tk, key_lengths for B = 3 or None): Tq, Tk and hs around the kernel's blocks of
# ROWS rows and 16-float vectors, lengths 0 (no real key) to Tk
KINDS = {
    "causal": (True, 13, 13, None),
    "causal_cached": (True, 5, 12, None),                # 5 new queries after 7 cached keys
    "causal_more_queries": (True, 9, 6, None),           # the first queries see no key
    "padded_causal_cached": (True, 5, 12, [12, 7, 0]),
    "bidirectional": (False, 9, 9, None),
    "padded_bidirectional": (False, 11, 11, [11, 6, 0]),
    "padded_causal": (True, 10, 10, [10, 3, 1]),
    "cross": (False, 4, 17, None),
    "padded_cross": (False, 9, 19, [19, 2, 0]),
}


def _seed(*case) -> int:
    return zlib.crc32(repr(case).encode())


def kernel_calls(monkeypatch, name: str) -> list:
    """Records each call of products.<name> (the kernel still runs): empty if the dispatcher never used it."""
    calls = []
    kernel = getattr(products, name)
    monkeypatch.setattr(products, name, lambda *args: calls.append(args) or kernel(*args))
    return calls


def packed(B, T, nh, hs, rng, parts=3, part=0):
    """One of `parts` (B, nh, T, hs) views of a packed (B, T, parts * nh * hs) projection, as attention
    slices q, k, v (or k, v of cross-attention) out of c_attn's output: rows parts * nh * hs numbers apart."""
    x = rng.normal(size=(B, T, parts * nh * hs)).astype(np.float32)
    return x.reshape(B, T, parts, nh, hs).transpose(2, 0, 3, 1, 4)[part]


def weights(kind, hs, dtype, nh=2, seed=0):
    """Attention weights P and their gradient dS (B, nh, Tq, Tk) from the softmax kernels (both 0 where
    a query does not see a key; dS of either sign), key_lengths (B * nh,), and the right-hand sides of
    both products: (B, nh, Tk, hs) for P V and (B, nh, Tq, hs) for P^T dY."""
    causal, Tq, Tk, lengths = KINDS[kind]
    B = 3
    rng = np.random.default_rng(seed)
    lengths = np.repeat(np.full(B, Tk) if lengths is None else np.asarray(lengths), nh).astype(np.int64)
    P, dS = (np.empty((B * nh, Tq, Tk), dtype) for _ in range(2))
    kernels.attention_softmax_forward(rng.normal(size=P.shape).astype(dtype), dtype(0.5), causal, lengths, P)
    kernels.attention_softmax_backward(P, rng.normal(size=P.shape).astype(dtype), dtype(0.5), causal, lengths, dS)
    v, dy = (rng.normal(size=(B, nh, T, hs)).astype(dtype) for T in (Tk, Tq))
    return causal, P.reshape(B, nh, Tq, Tk), dS.reshape(B, nh, Tq, Tk), lengths, v, dy


def operands(kind, hs, dtype, transposed, gradient, seed):
    """(causal, a, b, key_lengths) of one of the four products: P V, dS K, or with transposed=True
    P^T dY, dS^T Q."""
    causal, P, dS, lengths, v, dy = weights(kind, hs, dtype, seed=seed)
    a = dS if gradient else P
    return (causal, a.swapaxes(-1, -2), dy, lengths) if transposed else (causal, a, v, lengths)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hs", [1, 7, 16, 20, 32, 40, 64])
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("transposed", [False, True])
def test_kernel_matches_numpy_twin(kind, hs, dtype, transposed):
    gradient = hs % 2 == 1                              # P for even hs, dS for odd
    causal, a, b, lengths = operands(kind, hs, dtype, transposed, gradient, _seed(kind, hs, transposed))
    out, ref = (np.full(a.shape[:-1] + (hs,), np.nan, dtype) for _ in range(2))
    products.attention_matmul(a, b, causal, lengths, transposed, out)
    products.attention_matmul_ref(a, b, causal, lengths, transposed, ref)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(out, ref, **tol)


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
@pytest.mark.parametrize("gradient", [False, True])
def test_kernel_sums_in_order_of_k_with_fused_adds(kind, transposed, gradient):
    causal, a, b, lengths = operands(kind, 40, np.float32, transposed, gradient, _seed(kind, "order", transposed))
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
    P, dS = (np.empty((B * nh, Tq, Tk), np.float32) for _ in range(2))
    kernels.attention_softmax_forward(rng.normal(size=P.shape).astype(np.float32), np.float32(0.2), causal,
                                      lengths, P)
    kernels.attention_softmax_backward(P, rng.normal(size=P.shape).astype(np.float32), np.float32(0.2), causal,
                                       lengths, dS)
    P, dS = P.reshape(B, nh, Tq, Tk), dS.reshape(B, nh, Tq, Tk)
    v = packed(B, Tk, nh, hs, rng, part=2)                                   # a view, rows 3C apart
    dy = packed(B, Tq, nh, hs, rng, parts=1)
    for a, b, transposed in [(P, v, False), (dS.swapaxes(-1, -2), dy, True)]:
        kernel = a.shape[-1] <= products.MAX_TERMS and hs % 16 == 0
        if kernel and not np.array_equal(np.matmul(a, b), in_order_fma(a, b)):
            pytest.skip("this machine's BLAS does not sum these products in order (another kernel, another "
                        "order): the attention op's bits differ from NumPy's matmul here, its values do not")
        out = np.empty((B, Tq, nh, hs) if not transposed else (B, Tk, nh, hs), np.float32).transpose(0, 2, 1, 3)
        products.visible_matmul(a, b, causal, lengths, transposed, out=out)
        np.testing.assert_array_equal(out, np.matmul(a, b))


def test_visible_matmul_leaves_to_numpy_what_openblas_sums_in_other_orders(monkeypatch):
    """A one-query step, rows of 24 numbers, sums of over MAX_TERMS terms (each summed in another order
    than the kernel's by this machine's OpenBLAS at these sizes), strided rows, more leading axes and
    arguments that do not fit each other go to NumPy's matmul; the chapters' products to the kernel."""
    calls = kernel_calls(monkeypatch, "attention_matmul")
    causal, P, _, lengths, v, _ = weights("causal", 64, np.float32)
    P64 = np.tril(np.random.default_rng(1).random((3, 2, 64, 64), dtype=np.float32))
    v64 = np.random.default_rng(2).normal(size=(3, 2, 64, 64)).astype(np.float32)
    full = np.full(6, 64, np.int64)
    terms = products.MAX_TERMS + 224                    # 480: OpenBLAS sums it in two blocks
    long = np.tile(P64, terms // 64 + 1)[..., :terms]
    tall = np.tile(v64, (1, 1, terms // 64 + 1, 1))[..., :terms, :]
    numpy_cases = [(P64[:, :, -1:], v64, True, full),     # one query
                   (P64, v64[..., :24], True, full),       # rows of 24
                   (long, tall, False, np.full(6, terms, np.int64)),
                   (P, v[..., ::2], causal, lengths),      # rows not contiguous: no vector loads
                   (P[None], v[None], causal, lengths),    # a leading axis more than (B, nh)
                   (P, v[0], causal, lengths),             # b broadcast over the batch
                   (P, v, causal, lengths[:3]),            # key_lengths of the wrong size
                   (P, np.broadcast_to(v[:, :, :1], v.shape), causal, lengths),   # NumPy's own loop: one
                   (np.tile(P, 2)[..., ::2], v, causal, lengths)]                 # row broadcast, or a strided
    for a, b, is_causal, key_lengths in numpy_cases:
        np.testing.assert_array_equal(products.visible_matmul(a, b, is_causal, key_lengths), np.matmul(a, b))
    buffer = np.concatenate([P, np.zeros(P.shape[:-1] + (64,), np.float32)], axis=-1)
    expected = np.matmul(P, v)
    products.visible_matmul(buffer[..., :P.shape[-1]], v, causal, lengths, out=buffer[..., -64:])  # out shares a's
    np.testing.assert_array_equal(buffer[..., -64:], expected)                                     # memory
    frozen = np.zeros(expected.shape, np.float32)
    frozen.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        products.visible_matmul(P, v, causal, lengths, out=frozen)
    assert not calls
    products.visible_matmul(P, v, causal, lengths)
    assert calls


def test_attention_matmul_refuses_arguments_that_do_not_fit():
    causal, P, _, lengths, v, _ = weights("causal", 32, np.float32)
    out = np.empty(P.shape[:-1] + (32,), np.float32)
    with pytest.raises(ValueError, match="shapes"):
        products.attention_matmul(P, v[:, :, :-1], causal, lengths, False, out)
    with pytest.raises(ValueError, match="contiguous"):
        products.attention_matmul(P, np.asfortranarray(v), causal, lengths, False, out)
    with pytest.raises(Exception, match="(?i)typ"):         # Numba's typing error: one dtype for all three
        products.attention_matmul(P, v.astype(np.float64), causal, lengths, False, out)


# ---- the scores S = Q K^T and dP = dY V^T ------------------------------------------------------------

def small_kernel_sum(a, b):
    """a @ b^T as attention_scores promises to sum it (OpenBLAS's small-matrix kernel for A^T B):
    partial c = the fused sum of the terms k = c, c + 16, ... in order from +0, then the 16 partials
    added pairwise in order, in float32. The fused add is emulated as in `in_order_fma`."""
    terms = a[..., :, None, :].astype(np.float64) * b[..., None, :, :]          # (..., M, N, K), exact
    partial = np.zeros(terms.shape[:-1] + (16,), np.float32)
    for k in range(0, a.shape[-1], 16):
        partial = (terms[..., k:k + 16] + partial).astype(np.float32)
    while partial.shape[-1] > 1:
        partial = partial[..., 0::2] + partial[..., 1::2]
    return partial[..., 0]


SCORE_SHAPES = [(16, 64, 32), (16, 16, 32), (2, 16, 32), (6, 48, 32), (4, 16, 64), (20, 48, 64), (12, 96, 32)]


@pytest.mark.parametrize("Tq, Tk, hs", SCORE_SHAPES)
def test_scores_kernel_matches_numpy_twin_and_sums_as_promised(Tq, Tk, hs):
    """The kernel against its twin (NumPy's matmul) on the strided views attention multiplies, and
    against the order of summation it promises, exactly (the twin's order is its BLAS's)."""
    rng = np.random.default_rng(_seed("scores", Tq, Tk, hs))
    q, k = packed(3, Tq, 2, hs, rng), packed(3, Tk, 2, hs, rng, parts=2)
    out, ref = (np.full((3, 2, Tq, Tk), np.nan, np.float32) for _ in range(2))
    products.attention_scores(q, k, out)
    products.attention_scores_ref(q, k, ref)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out, small_kernel_sum(q, k))


@pytest.mark.parametrize("name", ["t5_decoder", "t5_cross"])
def test_scores_same_bits_as_numpy_at_t5s_shapes(name, monkeypatch):
    """T5's scores and dP (Chapter 9: 16 decoder tokens over themselves and over 64 encoder tokens, heads
    of 32) are what scores_matmul gives the kernel; OpenBLAS sums them with its small-matrix kernel, in
    the order the kernel sums them, so the op keeps NumPy's bits there."""
    B, nh, Tq, Tk, hs, _, _ = SHAPES[name]
    rng = np.random.default_rng(_seed("scores", name))
    q, dy = packed(B, Tq, nh, hs, rng), packed(B, Tq, nh, hs, rng, parts=1)
    k, v = packed(B, Tk, nh, hs, rng, parts=2), packed(B, Tk, nh, hs, rng, parts=2, part=1)
    calls = kernel_calls(monkeypatch, "attention_scores")
    for a, b in [(q, k), (dy, v)]:
        expected = np.matmul(a, b.swapaxes(-1, -2))
        if not np.array_equal(expected, small_kernel_sum(a, b)):
            pytest.skip("this machine's BLAS sums these products in another order: the op's bits differ from "
                        "NumPy's matmul here, its values do not")
        np.testing.assert_array_equal(products.scores_matmul(a, b), expected)
    assert len(calls) == 2


def test_scores_matmul_leaves_to_numpy_what_the_kernel_does_not_sum_as_openblas(monkeypatch):
    """Products OpenBLAS sums in its GEMM order (M * N > 1200: the GPT's and BERT's 64 x 64 scores), heads
    of 16, 24 or 48 numbers, float64, an odd number of queries, keys not in blocks of 16, one query,
    strided columns, more leading axes, arguments that do not fit, and what NumPy does not hand to
    OpenBLAS's small-matrix kernel (a @ a^T: syrk; broadcast or overlapping rows: NumPy's own loop) go
    to NumPy's matmul, as does an out that is read-only or shares memory with a or b."""
    calls = kernel_calls(monkeypatch, "attention_scores")
    rng = np.random.default_rng(3)

    def qk(Tq, Tk, hs, dtype=np.float32):
        return packed(2, Tq, 2, hs, rng).astype(dtype, copy=False), packed(2, Tk, 2, hs, rng, parts=2)
    q, k = qk(16, 64, 32)
    x = rng.normal(size=(2, 2, 16, 32)).astype(np.float32)
    numpy_cases = [qk(64, 64, 32), qk(16, 64, 16), qk(16, 16, 24), qk(16, 16, 48),
                   (q.astype(np.float64), k.astype(np.float64)), qk(15, 16, 32), qk(16, 40, 32), qk(1, 64, 32),
                   (packed(2, 16, 2, 64, rng)[..., ::2], k), (q[None], k[None]), (q, k[0]),
                   (x, x), (x[0, 0], x[0, 0]),                                  # a @ a^T
                   (q, np.broadcast_to(k[:, :, :1], k.shape)),                  # one key row, broadcast
                   (np.lib.stride_tricks.as_strided(x, (2, 2, 16, 32), x.strides[:2] + (64, 4)), k)]  # rows overlap
    for a, b in numpy_cases:
        np.testing.assert_array_equal(products.scores_matmul(a, b), np.matmul(a, b.swapaxes(-1, -2)))
    with pytest.raises(ValueError, match="mismatch"):                       # NumPy's own error
        products.scores_matmul(q[..., :16], k)
    buffer = rng.normal(size=(2, 2, 16, 96)).astype(np.float32)
    expected = np.matmul(buffer[..., :32], k.swapaxes(-1, -2))
    products.scores_matmul(buffer[..., :32], k, out=buffer[..., 32:])      # out overlaps a's memory
    np.testing.assert_array_equal(buffer[..., 32:], expected)
    frozen = np.zeros((2, 2, 16, 64), np.float32)
    frozen.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        products.scores_matmul(q, k, out=frozen)
    assert not calls


def test_scores_matmul_through_the_kernel_equals_numpy_with_any_leading_axes_and_out(monkeypatch):
    """None, one or two leading axes, a new array or a given out (here heads side by side in rows), a
    packed q and k of one projection (self-attention): the kernel's result is NumPy's."""
    calls = kernel_calls(monkeypatch, "attention_scores")
    rng = np.random.default_rng(5)
    qkv = rng.normal(size=(3, 16, 3, 2, 32)).astype(np.float32).transpose(2, 0, 3, 1, 4)
    q, k = qkv[0], qkv[1]                                                  # (3, 2, 16, 32) each, one buffer
    expected = np.matmul(q, k.swapaxes(-1, -2))
    out = np.empty((3, 16, 2, 16), np.float32).transpose(0, 2, 1, 3)
    assert products.scores_matmul(q, k, out=out) is out
    for a, b, result in [(q, k, out), (q, k, products.scores_matmul(q, k)),
                         (q[0], k[0], products.scores_matmul(q[0], k[0])),
                         (q[1, 1], k[1, 1], products.scores_matmul(q[1, 1], k[1, 1]))]:
        np.testing.assert_array_equal(result, np.matmul(a, b.swapaxes(-1, -2)))
    np.testing.assert_array_equal(out, expected)
    assert len(calls) == 4


def test_attention_scores_refuses_arguments_that_do_not_fit():
    rng = np.random.default_rng(4)
    q, k = packed(2, 16, 2, 32, rng), packed(2, 64, 2, 32, rng, parts=2)
    out = np.empty((2, 2, 16, 64), np.float32)
    with pytest.raises(ValueError, match="shapes"):
        products.attention_scores(q, k[:, :, :48], out)
    with pytest.raises(ValueError, match="SCORE_TERMS"):
        products.attention_scores(q[..., :16], k[..., :16], out)
    with pytest.raises(ValueError, match="M even"):
        products.attention_scores(q[:, :, :15], k, out[:, :, :15])
    with pytest.raises(ValueError, match="contiguous"):
        products.attention_scores(q, np.asfortranarray(k), out)
    with pytest.raises(Exception, match="(?i)typ"):         # Numba's typing error: float32 only
        products.attention_scores(q.astype(np.float64), k.astype(np.float64), np.zeros(out.shape))
