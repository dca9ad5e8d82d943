"""The batched products of attention (Chapters 6 and 9): two Numba kernels, each with a NumPy twin.

Attention multiplies one small matrix pair per batch row and head, B * nh of them a step (48 products
of (64, 64) by (64, 32) for the baby GPT). Four of its six products are by the weights P or their
gradient dS (attention.py's _attend and _attend_backward):

    out[n, i, :] = sum_k a[n, i, k] b[n, k, :]        a (N, M, K), b (N, K, W), out (N, M, W)

    Y  = P   V      dQ = dS   K       rows i: queries, k: keys      (a = P, dS)
    dV = P^T dY     dK = dS^T Q       rows i: keys, k: queries      (a = P^T, dS^T: transposed views)

and a is zero wherever a query does not see a key (attention_kernels.py writes P and dS as 0 there).
With L the number of real keys and offset = Tk - Tq (query i sits at position i + offset), the terms
that can be nonzero are

    query row i:  keys    0 <= k < min(L, i + offset + 1) (causal),  k < L (not causal)
    key row j:    queries max(0, j - offset) <= i < Tq (causal),     all (not causal);  none if j >= L

so causal attention needs about half of every product and a padded batch none of its padding. The
other two products, the scores S = Q K^T and dP = dY V^T, are `scores_matmul` (below the first kernel).

NumPy's matmul calls OpenBLAS once per matrix. `attention_matmul` runs the whole batch in one call. Its
inner kernel (`_fma_block`, written in LLVM IR like numerics.py's lanes) holds ROWS rows of out in
registers, a few 64-byte vectors each, while k runs over the block's range, one fused multiply-add
per vector and step:

    acc[r, :] <- fma(a[i + r, k], b[k, :], acc[r, :])      k = k0, k0 + 1, ..., k1 - 1,  acc from +0

Each entry is the sum of its terms in order of k, each product rounded once inside its fused add.
That is how NumPy's OpenBLAS sums the attention's products on the machine the figures were made on
(its SkylakeX kernels, with hardware FMA) for rows of whole vectors and up to a few hundred terms;
`visible_matmul` gives the kernel only those and leaves the rest to NumPy, so there the op keeps
NumPy's bits and every figure its numbers (tests/test_attention_products.py checks it on the machine
it runs on, and says so where that machine's BLAS sums in another order: then the values agree, not
the bits). A block's range is the union of its rows' ranges; the terms it adds beyond a row's own
range are zeros of a, and adding +-0 to a sum that started at +0 leaves it as it was -- for finite b:
a NaN or inf in b spreads to the rows whose terms the kernel adds, not to every row as in NumPy's
product (the loss is NaN either way). The vectors are 16 float32 or 8 float64; on a machine with
narrower vector registers LLVM splits them, the same arithmetic in the same order.

The kernel needs a, b and out of one float dtype, b's and out's rows contiguous (vectors are read and
written whole) and shapes that agree; `visible_matmul`, what attention.py calls, checks all of that
and hands anything else to NumPy's matmul.

The scores multiply rows by rows, S[i, j] = sum_d q[i, d] k[j, d], each a dot product of two contiguous
rows. For small matrices (M * N <= 1200, K >= 32: e.g. a T5 decoder of 16 tokens over itself or over 64
encoder tokens) OpenBLAS sums them with its small-matrix kernel for A^T B: 16 partial sums per score
(one 64-byte vector; partial c adds the terms d = c, c + 16, ... with fused multiply-adds from +0),
then the 16 added pairwise in order, ((p0 + p1) + (p2 + p3)) + ... -- at about a fifth of its GEMM
rate, since each score ends in a horizontal sum. `attention_scores` sums them the same way, faster:
it first transposes each block of 16 keys (`_transpose16`, in registers), so that lane t of a vector
holds key t; then the 16 partial sums of 16 scores are 16 vectors, fused from broadcast q's, and the
pairwise sum is 15 whole-vector adds (`_score_block`). Each score's sum is OpenBLAS's, to the bit (a
NaN's payload aside: where two NaNs meet in one product, either may survive); elsewhere OpenBLAS sums in
order of d in its GEMM kernel, and `scores_matmul` leaves those to NumPy.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from scratchlm.models.attention_kernels import _visible_keys, attention_mask

ROWS = 8         # rows of out a block keeps in registers: 8 rows x 2 vectors = 16 accumulators
# OpenBLAS splits longer sums into blocks it adds up afterwards (its SkylakeX sgemm kernels here: 448
# terms still in order, 480 not): beyond MAX_TERMS visible_matmul leaves the product to NumPy
MAX_TERMS = 256
LANES = 16       # float32 in a 64-byte vector: the scores kernel's lanes, one per key


def _address(builder, array, strides, i, j, kind):
    """&array[i, j] of a 2-D array (a Numba array struct, its strides in bytes) as a pointer to `kind`."""
    offset = builder.add(builder.mul(i, strides[0]), builder.mul(j, strides[1]))
    return builder.bitcast(builder.gep(builder.bitcast(array.data, cgutils.voidptr_t), [offset]), kind.as_pointer())


def _fma_block(vectors: int, scalar: bool = False):
    """An intrinsic block(a, b, out, i0, rows, j0, k0, k1) for 2-D a (M, K), b (K, W), out (M, W):
    out[i0 + r, j0 : j0 + vectors * L] = sum_{k0 <= k < k1} a[i0 + r, k] b[k, j0 : ...] for r < rows
    (rows <= ROWS), one fused multiply-add per vector and k, in order of k, from +0; L = lanes = 64
    bytes of the dtype (16 float32, 8 float64), or 1 with scalar=True (the columns left over). a, b
    and out share one float dtype (typing refuses others); b's and out's rows must be contiguous. The
    accumulators are LLVM values (allocas that LLVM turns into registers); a row index past `rows`
    reads row i0 and stores nothing."""
    @intrinsic
    def block(typingctx, a, b, out, i0, rows, j0, k0, k1):
        if not all(isinstance(t, types.Array) and t.ndim == 2 and t.dtype == a.dtype for t in (a, b, out)) \
                or a.dtype not in (types.float32, types.float64):
            return None
        signature = types.void(a, b, out, i0, rows, j0, k0, k1)

        def codegen(context, builder, sig, args):
            dtype = sig.args[0].dtype
            element = context.get_value_type(dtype)
            lanes = 1 if scalar else 64 // context.get_abi_sizeof(element)
            vec = element if scalar else ir.VectorType(element, lanes)
            i32, intp = ir.IntType(32), context.get_value_type(types.intp)
            name = "llvm.fma." + ("" if scalar else f"v{lanes}") + ("f32" if dtype == types.float32 else "f64")
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3), name)
            arrays = [context.make_array(t)(context, builder, v) for t, v in zip(sig.args[:3], args[:3])]
            A, Bm, O = ((arr, cgutils.unpack_tuple(builder, arr.strides, 2)) for arr in arrays)
            i0, rows, j0, k0, k1 = (context.cast(builder, v, t, types.intp) for v, t in zip(args[3:], sig.args[3:]))

            def address(array, i, j, kind):
                return _address(builder, *array, i, j, kind)

            def column(v):
                return builder.add(j0, ir.Constant(intp, v * lanes))

            def broadcast(x):
                if scalar:
                    return x
                one = builder.insert_element(ir.Constant(vec, ir.Undefined), x, ir.Constant(i32, 0))
                return builder.shuffle_vector(one, one, ir.Constant(ir.VectorType(i32, lanes), [0] * lanes))

            zero = ir.Constant(vec, None)
            acc = [[cgutils.alloca_once_value(builder, zero) for _ in range(vectors)] for _ in range(ROWS)]
            live = [builder.icmp_signed("<", ir.Constant(intp, r), rows) for r in range(ROWS)]
            row = [builder.select(live[r], builder.add(i0, ir.Constant(intp, r)), i0) for r in range(ROWS)]
            align = context.get_abi_sizeof(element)
            with cgutils.for_range(builder, builder.sub(k1, k0)) as loop:
                k = builder.add(k0, loop.index)
                bk = [builder.load(address(Bm, k, column(v), vec), align=align) for v in range(vectors)]
                for r in range(ROWS):
                    x = broadcast(builder.load(address(A, row[r], k, element)))
                    for v in range(vectors):
                        builder.store(builder.call(fma, [x, bk[v], builder.load(acc[r][v])]), acc[r][v])
            for r in range(ROWS):
                with builder.if_then(live[r]):
                    for v in range(vectors):
                        builder.store(builder.load(acc[r][v]), address(O, row[r], column(v), vec), align=align)
            return context.get_dummy_value()
        return signature, codegen
    return block


_two_vectors, _one_vector, _one_column = _fma_block(2), _fma_block(1), _fma_block(1, scalar=True)


@njit(cache=True)
def attention_matmul(a, b, causal, key_lengths, transposed, out):
    """out[z, h] = a[z, h] @ b[z, h] over the visible terms, for a (Z, H, M, K), b (Z, H, K, W), out (Z, H,
    M, W) of one float dtype (b's and out's last axis contiguous); key_lengths (Z * H,) int64 in [0, Tk]
    as in attention_kernels.py, matrix n = z * H + h. a holds weights (rows: queries, k: keys) or, with
    transposed=True, their transpose (rows: keys, k: queries), zero wherever a query does not see a
    key: the kernel skips most of those terms and adds the rest."""
    Z, H, M, K = a.shape
    W = out.shape[3]
    if b.shape != (Z, H, K, W) or out.shape[:3] != (Z, H, M) or key_lengths.shape[0] != Z * H:
        raise ValueError("attention_matmul: shapes must be a (Z, H, M, K), b (Z, H, K, W), out (Z, H, M, W), "
                         "key_lengths (Z * H,)")
    if W > 0 and (b.strides[3] != b.itemsize or out.strides[3] != out.itemsize):
        raise ValueError("attention_matmul: b's and out's rows must be contiguous")
    Tq, Tk = (K, M) if transposed else (M, K)
    offset = Tk - Tq                           # query i sits at position i + offset (attention_kernels.py)
    lanes = 64 // out.itemsize
    for z in range(Z):
        for h in range(H):
            length = key_lengths[z * H + h]
            an, bn, on = a[z, h], b[z, h], out[z, h]
            for i in range(0, M, ROWS):
                rows = min(ROWS, M - i)
                # the block's k: the union of its rows' ranges, which grow with the row
                if not transposed:             # query rows i .. i + rows - 1: the last row's keys
                    k0, k1 = 0, _visible_keys(i + rows - 1, length, offset, causal)
                elif i < length:               # key rows: the queries from position i on (causal) see them
                    k0, k1 = min(K, max(0, i - offset)) if causal else 0, K
                else:                          # padding keys: no query sees them
                    k0, k1 = 0, 0
                k1 = max(k0, k1)
                j = 0
                while j + 2 * lanes <= W:
                    _two_vectors(an, bn, on, i, rows, j, k0, k1)
                    j += 2 * lanes
                if j + lanes <= W:
                    _one_vector(an, bn, on, i, rows, j, k0, k1)
                    j += lanes
                while j < W:
                    _one_column(an, bn, on, i, rows, j, k0, k1)
                    j += 1


def attention_matmul_ref(a, b, causal, key_lengths, transposed, out):
    """NumPy twin of `attention_matmul`: a zeroed where no query sees the key, then NumPy's matmul."""
    M, K = a.shape[-2:]
    mask = attention_mask(K, M, causal, key_lengths).swapaxes(-1, -2) if transposed else \
        attention_mask(M, K, causal, key_lengths)
    np.matmul(np.where(mask.reshape(a.shape), a, 0).astype(a.dtype, copy=False), b, out=out)


def visible_matmul(a, b, causal: bool, key_lengths, transposed: bool = False, out=None):
    """a @ b for weights a (..., Tq, Tk) (or their transpose a (..., Tk, Tq), transposed=True) that are
    zero wherever a query does not see a key (P and dS are), b (..., Tk, W) (or (..., Tq, W)), with the
    same N leading matrices, key_lengths (N,) int64: `attention_matmul` where the layout allows,
    NumPy's matmul otherwise (the same numbers: the terms it skips are zeros). Returns out (..., M, W),
    a new array if None. The kernel takes up to two leading axes ((B, nh), (N,) or none), NumPy more.

    The kernel takes the products NumPy's OpenBLAS also sums in order of k, so that it changes no bits:
    not a single row (a decoding step's one query: NumPy hands a one-row product to BLAS's
    matrix-vector routine, which sums in another order), nor rows whose width W is not a multiple of 16
    numbers, nor sums of more than MAX_TERMS terms (OpenBLAS's kernels sum those in other orders too:
    measured, tests/test_attention_products.py), nor matrices NumPy sums in its own loop (`_blas_matrix`),
    nor an out it may not write (`_free_out`)."""
    M, K = a.shape[-2:]
    W = b.shape[-1]
    lead = a.shape[:-2]
    item = a.itemsize
    if (a.ndim <= 4 and a.dtype.char in "fd" and b.dtype == a.dtype and b.shape == lead + (K, W)
            and b.strides[-1] == item and key_lengths.shape == (math.prod(lead),)
            and M > 1 and W % 16 == 0 and K <= MAX_TERMS and _blas_matrix(a) and _blas_matrix(b)
            and (out is None or (out.dtype == a.dtype and out.shape == lead + (M, W) and out.strides[-1] == item
                                 and _free_out(out, a, b)))):
        out = np.empty(lead + (M, W), a.dtype) if out is None else out
        attention_matmul(_four_axes(a), _four_axes(b), causal, key_lengths, transposed, _four_axes(out))
        return out
    return np.matmul(a, b, out=out)


def _blas_matrix(x) -> bool:
    """Whether NumPy's matmul hands the matrices x (..., m, n) to BLAS: rows (or columns) contiguous and at
    least a row (a column) apart. It sums others (broadcast or overlapping rows) in its own loop, in
    another order than OpenBLAS's and the kernels'."""
    (s0, s1), (m, n), i = x.strides[-2:], x.shape[-2:], x.itemsize
    return (s1 == i and s0 >= n * i) or (s0 == i and s1 >= m * i)


def _free_out(out, *inputs) -> bool:
    """Whether a kernel may write into out: writeable and sharing no memory with its inputs (NumPy's
    matmul buffers such an out; a kernel would read what it has already written)."""
    return out.flags.writeable and not any(np.may_share_memory(out, x) for x in inputs)


def _four_axes(x):
    """x (..., m, n) with at most two leading axes as (Z, H, m, n): (1, N, m, n) or (1, 1, m, n), a view."""
    return x if x.ndim == 4 else x.reshape((1,) * (4 - x.ndim) + x.shape)


# ---- the scores S = Q K^T and dP = dY V^T -------------------------------------------------------

def _float32_matrices(*types_):
    """Whether Numba's types are all 2-D float32 arrays (what the scores' intrinsics take)."""
    return all(isinstance(t, types.Array) and t.ndim == 2 and t.dtype == types.float32 for t in types_)


@intrinsic
def _transpose16(typingctx, src, r0, c0, dst, slot):
    """dst[slot + c, r] = src[r0 + r, c0 + c] for r, c < 16: a 16 x 16 block of float32 transposed in
    registers (four rounds of zipping row r with row r + 8); src's rows contiguous, dst (n, 16) C-contiguous."""
    if not _float32_matrices(src, dst):
        return None
    signature = types.void(src, r0, c0, dst, slot)

    def codegen(context, builder, sig, args):
        vec, i32 = ir.VectorType(ir.FloatType(), LANES), ir.IntType(32)
        intp = context.get_value_type(types.intp)
        S, D = (context.make_array(sig.args[n])(context, builder, args[n]) for n in (0, 3))
        r0, c0, slot = (context.cast(builder, args[n], sig.args[n], types.intp) for n in (1, 2, 4))
        strides = cgutils.unpack_tuple(builder, S.strides, 2)
        first = _address(builder, S, strides, r0, c0, ir.IntType(8))
        v = [builder.load(builder.bitcast(builder.gep(first, [builder.mul(strides[0], ir.Constant(intp, r))]),
                                          vec.as_pointer()), align=4) for r in range(LANES)]
        zip_lo = ir.Constant(ir.VectorType(i32, LANES), [t // 2 + LANES * (t % 2) for t in range(LANES)])
        zip_hi = ir.Constant(ir.VectorType(i32, LANES), [LANES // 2 + t // 2 + LANES * (t % 2) for t in range(LANES)])
        for _ in range(4):
            v = [w for r in range(LANES // 2) for w in (builder.shuffle_vector(v[r], v[r + 8], zip_lo),
                                                         builder.shuffle_vector(v[r], v[r + 8], zip_hi))]
        out = _address(builder, D, cgutils.unpack_tuple(builder, D.strides, 2), slot, ir.Constant(intp, 0), vec)
        for c in range(LANES):
            builder.store(v[c], builder.gep(out, [ir.Constant(intp, c)]), align=4)
        return context.get_dummy_value()
    return signature, codegen


def _score_block(term_vectors: int, key_blocks: int):
    """An intrinsic block(a, kt, out, i, slot, j0) for a (M, K) with K = 16 * term_vectors, out (M, N) and
    kt (n, 16) holding the keys transposed, kt[slot + 16 kb + c, t] = b[j0 + t, 16 kb + c] (the next 16
    keys' at slot + K): out[i + r, j0 + t] = sum_k a[i + r, k] b[j0 + t, k] for rows r < 2 and keys
    t < 16 * key_blocks, summed as OpenBLAS's small-matrix kernel sums A^T B: 16 partial sums, partial c
    adding the terms k = c, c + 16, ... in order with fused multiply-adds from +0, then the 16 added
    pairwise in order, ((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7)) + ... Lane t of each vector is
    key j0 + t, so the partial sums of 16 keys are 16 vectors and the pairwise adds whole-vector adds (no
    shuffles); each load serves 2 rows or key_blocks blocks of 16 keys."""
    @intrinsic
    def block(typingctx, a, kt, out, i, slot, j0):
        if not _float32_matrices(a, kt, out):
            return None
        signature = types.void(a, kt, out, i, slot, j0)

        def codegen(context, builder, sig, args):
            f32, i32 = ir.FloatType(), ir.IntType(32)
            vec, intp = ir.VectorType(f32, LANES), context.get_value_type(types.intp)
            fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3), "llvm.fma.v16f32")
            A, KT, O = (context.make_array(t)(context, builder, v) for t, v in zip(sig.args[:3], args[:3]))
            As, Ks, Os = (cgutils.unpack_tuple(builder, x.strides, 2) for x in (A, KT, O))
            i, slot, j0 = (context.cast(builder, v, t, types.intp) for v, t in zip(args[3:], sig.args[3:]))
            zero, splat = ir.Constant(intp, 0), ir.Constant(ir.VectorType(i32, LANES), [0] * LANES)
            rows = [_address(builder, A, As, builder.add(i, ir.Constant(intp, r)), zero, f32) for r in range(2)]
            keys = _address(builder, KT, Ks, slot, zero, vec)
            pending = [[[] for _ in range(key_blocks)] for _ in rows]   # per row and key block: (level, sum)
            for c in range(LANES):
                acc = [[ir.Constant(vec, None)] * key_blocks for _ in rows]
                for kb in range(term_vectors):
                    kv = [builder.load(builder.gep(keys, [ir.Constant(intp, LANES * (term_vectors * j + kb) + c)]),
                                       align=4) for j in range(key_blocks)]
                    for r, row in enumerate(rows):
                        x = builder.load(builder.gep(row, [ir.Constant(intp, LANES * kb + c)]))
                        one = builder.insert_element(ir.Constant(vec, ir.Undefined), x, ir.Constant(i32, 0))
                        x = builder.shuffle_vector(one, one, splat)
                        for j in range(key_blocks):
                            acc[r][j] = builder.call(fma, [x, kv[j], acc[r][j]])
                for r in range(len(rows)):
                    for j in range(key_blocks):            # pairwise, in order
                        stack = pending[r][j]
                        stack.append((0, acc[r][j]))
                        while len(stack) > 1 and stack[-1][0] == stack[-2][0]:
                            (level, right), (_, left) = stack.pop(), stack.pop()
                            stack.append((level + 1, builder.fadd(left, right)))
            for r in range(len(rows)):
                for j in range(key_blocks):
                    where = _address(builder, O, Os, builder.add(i, ir.Constant(intp, r)),
                                     builder.add(j0, ir.Constant(intp, LANES * j)), vec)
                    builder.store(pending[r][j][0][1], where, align=4)
            return context.get_dummy_value()
        return signature, codegen
    return block


# the kernel's blocks by head size (SCORE_TERMS) and keys (32, or 16: the last block of an odd number)
SCORE_TERMS = (32, 64)
_scores_32x2, _scores_32x1, _scores_64x2, _scores_64x1 = (_score_block(K // LANES, keys // LANES)
                                                          for K in SCORE_TERMS for keys in (32, 16))


@njit(cache=True)
def attention_scores(a, b, out):
    """out[z, h] = a[z, h] @ b[z, h]^T for a (Z, H, M, K), b (Z, H, N, K), out (Z, H, M, N) float32: the
    scores Q K^T (a = Q, b = K) or dP = dY V^T (a = dY, b = V) of small attention matrices (Chapter 9's
    T5), summed as OpenBLAS's small-matrix kernel sums them (`_score_block`); K in SCORE_TERMS, M even,
    N a multiple of 16, rows contiguous, out not overlapping a or b."""
    Z, H, M, K = a.shape
    N = b.shape[2]
    if b.shape != (Z, H, N, K) or out.shape != (Z, H, M, N):
        raise ValueError("attention_scores: shapes must be a (Z, H, M, K), b (Z, H, N, K), out (Z, H, M, N)")
    if K not in SCORE_TERMS or M % 2 != 0 or N % LANES != 0:
        raise ValueError("attention_scores: needs K in SCORE_TERMS (32, 64), M even and N a multiple of 16")
    if a.strides[3] != 4 or b.strides[3] != 4 or out.strides[3] != 4:
        raise ValueError("attention_scores: a's, b's and out's rows must be contiguous")
    blocks, vectors = N // LANES, K // LANES
    # one batch row's keys, transposed, in whole 64-byte lines (a vector across two lines costs two loads)
    n = H * blocks * vectors * LANES * LANES
    line = np.empty(n + LANES, np.float32)
    first = (-(line.ctypes.data // 4)) % LANES
    kt = line[first:first + n].reshape(n // LANES, LANES)
    for z in range(Z):
        for jb in range(blocks):                # key rows 16 jb ... of every head: neighbours in memory
            for h in range(H):
                for kb in range(vectors):
                    _transpose16(b[z, h], LANES * jb, LANES * kb, kt, ((h * blocks + jb) * vectors + kb) * LANES)
        for h in range(H):
            an, on = a[z, h], out[z, h]
            for jb in range(0, blocks, 2):
                slot = (h * blocks + jb) * vectors * LANES
                two = jb + 1 < blocks
                for i in range(0, M, 2):
                    if K == 32 and two:
                        _scores_32x2(an, kt, on, i, slot, LANES * jb)
                    elif K == 32:
                        _scores_32x1(an, kt, on, i, slot, LANES * jb)
                    elif two:
                        _scores_64x2(an, kt, on, i, slot, LANES * jb)
                    else:
                        _scores_64x1(an, kt, on, i, slot, LANES * jb)


def attention_scores_ref(a, b, out):
    """NumPy twin of `attention_scores`: NumPy's matmul by b's transpose."""
    np.matmul(a, b.swapaxes(-1, -2), out=out)


def scores_matmul(a, b, out=None):
    """a @ b^T for a (..., M, K), b (..., N, K) with the same leading axes: the scores Q K^T, or dP = dY V^T
    in the backward (Chapter 9's T5, any attention). Returns out (..., M, N), a new array if None. The
    kernel `attention_scores` takes the products for which NumPy calls OpenBLAS's small-matrix kernel
    for A^T B (float32, M * N <= 1200 and K >= 32: e.g. a T5 decoder of 16 tokens over itself or over 64
    encoder tokens), so that they keep NumPy's bits at 1.1-1.6 times its speed there, and of those the
    ones it is built for: K in SCORE_TERMS, M even, N a multiple of 16, contiguous rows, at most two
    leading axes. NumPy's matmul takes the rest: the larger products (OpenBLAS's GEMM, at full speed),
    and those NumPy does not hand to that kernel -- rows that overlap (row strides below K numbers,
    broadcast rows: NumPy's own loop) or a = b (BLAS's syrk) -- and an out that is read-only or shares
    memory with a or b."""
    M, K = a.shape[-2:]
    N = b.shape[-2]
    lead = a.shape[:-2]
    if (a.ndim <= 4 and a.dtype == np.float32 and b.dtype == np.float32 and b.shape == lead + (N, K)
            and K in SCORE_TERMS and M % 2 == 0 and N % LANES == 0 and 0 < M * N <= 1200
            and a.strides[-1] == 4 and b.strides[-1] == 4 and _blas_matrix(a) and _blas_matrix(b)
            and not _same_matrices(a, b)
            and (out is None or (out.dtype == np.float32 and out.shape == lead + (M, N) and out.strides[-1] == 4
                                 and _free_out(out, a, b)))):
        out = np.empty(lead + (M, N), np.float32) if out is None else out
        attention_scores(_four_axes(a), _four_axes(b), _four_axes(out))
        return out
    return np.matmul(a, b.swapaxes(-1, -2), out=out)


def _same_matrices(a, b) -> bool:
    """Whether some matrix of a may be the same memory, with the same strides, as b's (NumPy then calls
    BLAS's syrk for a @ a^T, which sums in another order): exactly, when both step through their
    matrices alike (then only a common start makes them meet); conservatively otherwise. q and k,
    slices of one packed projection, are not."""
    if a.strides[-2:] != b.strides[-2:]:
        return False
    if a.strides[:-2] == b.strides[:-2]:
        return a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    return np.may_share_memory(a, b)
