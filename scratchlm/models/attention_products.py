"""The batched products of attention by its weights (Chapters 6 and 9): one Numba kernel with a NumPy twin.

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
other two products, the scores S = Q K^T and dP = dY V^T, stay NumPy's matmul.

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

            def address(array, i, j, kind):           # &array[i, j] as a pointer to `kind`, strides in bytes
                data, strides = array
                offset = builder.add(builder.mul(i, strides[0]), builder.mul(j, strides[1]))
                return builder.bitcast(builder.gep(builder.bitcast(data.data, cgutils.voidptr_t), [offset]),
                                       kind.as_pointer())

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
    measured, tests/test_attention_products.py)."""
    M, K = a.shape[-2:]
    W = b.shape[-1]
    lead = a.shape[:-2]
    item = a.itemsize
    if (a.ndim <= 4 and a.dtype.char in "fd" and b.dtype == a.dtype and b.shape == lead + (K, W)
            and b.strides[-1] == item and key_lengths.shape == (math.prod(lead),)
            and M > 1 and W % 16 == 0 and K <= MAX_TERMS
            and (out is None or (out.dtype == a.dtype and out.shape == lead + (M, W) and out.strides[-1] == item))):
        out = np.empty(lead + (M, W), a.dtype) if out is None else out
        if a.ndim == 4:
            attention_matmul(a, b, causal, key_lengths, transposed, out)
        else:                                  # (Z, H) = (1, N) or (1, 1)
            four = (1,) * (4 - a.ndim)
            attention_matmul(a.reshape(four + a.shape), b.reshape(four + b.shape), causal, key_lengths, transposed,
                             out.reshape(four + out.shape))
        return out
    return np.matmul(a, b, out=out)
