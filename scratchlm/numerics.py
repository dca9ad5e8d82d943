"""Scalar and row helpers shared by every Numba kernel: a fast exp and erfc, and one-pass row
reductions. Chapter 3 (the autograd kernels, scratchlm/autograd/kernels.py); Chapter 6 (causal
attention, scratchlm/models/attention_kernels.py).

Called from inside @njit code only (from Python, call NumPy):

    exp(x)                  e^x in x's precision: exp32 for float32, math.exp otherwise
    normal_cdf(x)           Phi(x) = (1 + erf(x / sqrt 2)) / 2, through erfc32 for float32
    exp32(x)                e^x for float32, vectorisable, within 2 ulp
    erfc32(z)               erfc(z) for float32 z >= 0, vectorisable, within 1e-6 relative for z <= 3
    row_max(row)            max_j row_j
    row_sum(row)            sum_j row_j
    row_dot(a, b)           sum_j a_j b_j
    row_exp_into(row, m, out)   out_j = e^(row_j - m), returning sum_j out_j
    row_sum64(a)            sum_j a_j, accumulated in float64 (the norms' short rows of float32)
    row_sq_dev64(a, mu)     sum_j (a_j - mu)^2 in float64
    row_sq64(a)             sum_j a_j^2, the squares in a's dtype, summed in float64
    row_dot_dev_scaled64(a, b, c, d)  sum_j (a_j (b_j - c)) d, terms in a's dtype, summed in float64
    row_dot_scaled64(a, b, d)         sum_j a_j (b_j d), terms in a's dtype, summed in float64

Every helper is inlined into the kernel that calls it (`inline="always"`, at Numba's level, before
LLVM sees the code), so it compiles with that kernel's flags, as part of that kernel. Left to LLVM,
the inlining happened when the helpers were compiled in the same process as the kernel and not when
they came from Numba's on-disk cache: a kernel's float32 results then depended on which functions
happened to be cached (Chapter 4's perplexity changed in the 9th digit between a first and a second
run; tests/test_determinism.py). The row reductions fix their order of additions (8 interleaved
partial sums, below) and run it on 8-wide vectors written out in LLVM IR (`_lanes`), so they are
vectorised without fastmath flags and give the same bits in any kernel compiled without them, on any
machine (a kernel compiled with `reassoc`, below, may still regroup the last few additions, which are
ordinary Python code inlined into it: the lanes' pairwise sum and the tail). `FAST` is
the set of fastmath flags a kernel may still compile with (the attention softmax does).

Why a separate exp: NumPy's own exp is vectorised, Numba's (the C library's) is not, so a float32
kernel that calls math.exp in its inner loop runs one element at a time. exp32 is range reduction
plus a polynomial in plain arithmetic, which LLVM vectorises:

    e^x = 2^n e^r,   n = round(x / ln 2),   |r| <= ln(2) / 2,

with e^r the Taylor polynomial 1 + r + ... + r^7/7! (the next term is below 6e-9 on that interval)
and 2^n built directly as the bits of a float32 (exponent field n + 127, mantissa 0). Likewise the
exact GELU needs Phi, i.e. erf, which Numba only has as a scalar C call; erfc32 is a fitted formula
(see ERFC_P). float64 kernels, used for gradient checks, call math.exp and math.erf: exact to the
last bit matters more there than speed.

Stability is the callers' part: they pass exp arguments <= 0 (x - max(x), the log-sum-exp trick),
so nothing overflows however large the inputs.
"""

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

# A kernel compiled with these flags may reorder its sums (`reassoc`), which lets LLVM vectorise
# them; only kernels whose arithmetic is all sums of that kind use it (the autograd kernels do not, so
# that (x - m) - log_sum is never regrouped as x - (m + log_sum), which rounds). No flag assumes away
# inf or nan: masked logits are -inf.
FAST = {"reassoc", "contract", "nsz", "arcp"}


# ---- a vectorisable exp ------------------------------------------------------------------------

@intrinsic
def _float32_from_bits(typingctx, bits):
    """Reinterpret an int32's bits as a float32 (no conversion)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@njit(cache=True, inline="always")
def exp32(x):
    """e^x for a float32 x, in plain arithmetic that LLVM can vectorise.

    Like exp for -inf (0), nan and large x (inf; from 88 on, a little below float32's true limit 88.72).
    """
    f = np.float32
    c = min(max(x, f(-87.0)), f(88.0))                # where 2^n is a normal float32
    n = np.floor(c * f(1.4426950408889634) + f(0.5))  # round(c / ln 2)
    r = (c - n * f(0.693359375)) + n * f(2.12194440e-4)  # c - n ln 2, ln 2 split for exactness
    # Horner form of 1 + r + r^2/2! + ... + r^7/7!; the next term, r^8/8!, is below 6e-9.
    p = f(1 / 5040) * r + f(1 / 720)
    p = p * r + f(1 / 120)
    p = p * r + f(1 / 24)
    p = p * r + f(1 / 6)
    p = p * r + f(1 / 2)
    p = p * r + f(1.0)
    p = p * r + f(1.0)
    y = p * _float32_from_bits((np.int32(n) + np.int32(127)) << np.int32(23))
    if x < f(-87.0):
        y = f(0.0)                                     # true value is below float32's normal range
    if x > f(88.0):
        y = f(np.inf)
    return y if x == x else x                          # nan stays nan


def exp(x):
    """e^x inside kernels: exp32 for float32, math.exp otherwise (chosen when Numba compiles)."""
    return math.exp(x)


@overload(exp)
def _exp_typed(x):
    if x == types.float32:
        return lambda x: exp32(x)
    return lambda x: math.exp(x)


# ---- a vectorisable erfc, for the exact GELU ---------------------------------------------------
# For z >= 0, erfc(z) = t e^(-z^2 + P(t)) with t = 1 / (1 + z/2) and P a smooth polynomial. The
# coefficients below are our least-squares fit of P(t) = log(erfc(z) / t) + z^2 at 4000 Chebyshev
# points of t in [1/6, 1] (z in [0, 10]; beyond, erfc < 1e-44 is 0 in float32), degree 9, against
# math.erfc. In float64 the fit is good to 5e-8; evaluated in float32, to 1e-6 relative for z <= 3.
ERFC_P = (-1.265447996901718, 0.9986327833392245, 0.3866404121410002, 0.03460280004417535,
          0.0012675862478780128, -0.08028043195467544, -0.6962518991765025, 1.156733757315753,
          -0.6808271778572349, 0.14493021373338408)


@njit(cache=True, error_model="numpy", inline="always")  # no ZeroDivisionError check in t = 1 / ...: it would
def erfc32(z):                            # stop LLVM from vectorising the loops that call this
    """erfc(z) for a float32 z >= 0, vectorisable (see ERFC_P)."""
    f = np.float32
    c0, c1, c2, c3, c4, c5, c6, c7, c8, c9 = ERFC_P
    t = f(1.0) / (f(1.0) + f(0.5) * z)
    p = f(c9) * t + f(c8)                              # Horner, highest power first
    p = p * t + f(c7)
    p = p * t + f(c6)
    p = p * t + f(c5)
    p = p * t + f(c4)
    p = p * t + f(c3)
    p = p * t + f(c2)
    p = p * t + f(c1)
    p = p * t + f(c0)
    return t * exp32(-z * z + p)


def normal_cdf(x):
    """Phi(x) = (1 + erf(x / sqrt 2)) / 2 inside kernels: erfc32 for float32, math.erf otherwise."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


@overload(normal_cdf)
def _normal_cdf_typed(x):
    if x == types.float32:
        def phi32(x):                                  # Phi(x) = erfc(-x / sqrt 2) / 2, no cancellation
            half = np.float32(0.5) * erfc32(abs(x) * np.float32(1 / math.sqrt(2.0)))
            return half if x < 0 else np.float32(1.0) - half
        return phi32
    return lambda x: 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


# ---- one pass over a row -----------------------------------------------------------------------
# Sums are accumulated in 8 interleaved partial sums, s_k adding a_k, a_k+8, a_k+16, ... in turn, and
# then those in pairs, ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)): the order of every addition is
# fixed (no `reassoc` flag needed, so the same bits whatever the kernel's flags, on any machine), and it
# is the order an 8-lane vector unit adds in. LLVM does not find that vectorisation by itself (it
# leaves 8 scalar chains, one add per element), so `_lanes` writes it out: one 8-wide vector of
# partial sums updated by one vector operation per 8 entries, in LLVM IR. The max is the same with
# `x > m ? x : m` for the add.

def _lanes(term, widen: bool = False, first: bool = False):
    """An intrinsic lanes(a, b, c, d, n) -> the 8 lanes (a UniTuple) of a reduction over j < n (n a
    multiple of 8) of 1-D arrays a, b (b is ignored by terms that read one array) and scalars c, d:
    lane k holds term(..., term(term(init, x_k), x_k+8), ...). The lanes start at 0, or, with
    first=True, at a[0:8] (the loop then starts at j = 8). Accumulated in a's dtype, or in float64 with
    widen=True. `term(builder, acc, x, y, c, d, wide)` builds one step on 8-wide vectors: x, y hold
    entries of a and b in their own dtype, c and d the scalars in theirs (the caller types them), and
    wide(v) converts a vector to the accumulator's type -- so a term says exactly which arithmetic is
    done in float32 and which in float64. Any strides: a contiguous row is read 8 entries at a time, a
    strided one entry by entry into the vector."""
    @intrinsic
    def lanes(typingctx, a, b, c, d, n):
        acc_type = types.float64 if widen else a.dtype
        signature = types.UniTuple(acc_type, 8)(a, b, c, d, n)

        def codegen(context, builder, sig, args):
            vec = ir.VectorType(context.get_value_type(acc_type), 8)
            i32 = ir.IntType(32)
            arrays = [(context.make_array(t)(context, builder, v), t) for t, v in zip(sig.args[:2], args[:2])]

            def broadcast(value):
                v = ir.VectorType(value.type, 8)
                one = builder.insert_element(ir.Constant(v, ir.Undefined), value, ir.Constant(i32, 0))
                return builder.shuffle_vector(one, one, ir.Constant(ir.VectorType(i32, 8), [0] * 8))

            def wide(v):
                return builder.fpext(v, vec) if v.type != vec else v

            c_vec, d_vec = broadcast(args[2]), broadcast(args[3])
            n_value = context.cast(builder, args[4], sig.args[4], types.intp)
            contiguous = cgutils.true_bit
            for array, t in arrays:
                stride = cgutils.unpack_tuple(builder, array.strides, 1)[0]
                contiguous = builder.and_(contiguous, builder.icmp_signed(
                    "==", stride, context.get_constant(types.intp, context.get_abi_sizeof(
                        context.get_data_type(t.dtype)))))

            def load(j, array, t, unit_stride: bool):
                """Entries j .. j+7 of a 1-D array as an 8-vector of its dtype."""
                elem = context.get_data_type(t.dtype)
                if unit_stride:
                    ptr = builder.bitcast(builder.gep(array.data, [j]), ir.VectorType(elem, 8).as_pointer())
                    return builder.load(ptr, align=context.get_abi_alignment(elem))
                stride = cgutils.unpack_tuple(builder, array.strides, 1)[0]
                x = ir.Constant(ir.VectorType(elem, 8), ir.Undefined)
                for k in range(8):
                    offset = builder.mul(builder.add(j, context.get_constant(types.intp, k)), stride)
                    ptr = builder.bitcast(builder.gep(builder.bitcast(array.data, cgutils.voidptr_t), [offset]),
                                          elem.as_pointer())
                    x = builder.insert_element(x, builder.load(ptr), ir.Constant(i32, k))
                return x

            acc = cgutils.alloca_once(builder, vec)
            eight = context.get_constant(types.intp, 8)
            with builder.if_else(contiguous) as (then, otherwise):
                for unit_stride in (True, False):   # the same loop, two ways of reading the rows
                    with (then if unit_stride else otherwise):
                        zero = context.get_constant(types.intp, 0)
                        start = eight if first else zero
                        builder.store(wide(load(zero, *arrays[0], unit_stride)) if first else ir.Constant(vec, None),
                                      acc)
                        blocks = builder.sdiv(builder.sub(n_value, start), eight)
                        with cgutils.for_range(builder, blocks) as loop:
                            j = builder.add(start, builder.mul(loop.index, eight))
                            x, y = (load(j, *array, unit_stride) for array in arrays)
                            builder.store(term(builder, builder.load(acc), x, y, c_vec, d_vec, wide), acc)
            result = builder.load(acc)
            return context.make_tuple(builder, sig.return_type,
                                      [builder.extract_element(result, ir.Constant(i32, k)) for k in range(8)])
        return signature, codegen
    return lanes


# one term each: acc + x, acc + x y, max(acc, x), and the norms' float64 sums (module docstring)
_sum_lanes = _lanes(lambda b, acc, x, y, c, d, wide: b.fadd(acc, x))
_dot_lanes = _lanes(lambda b, acc, x, y, c, d, wide: b.fadd(acc, b.fmul(x, y)))
_max_lanes = _lanes(lambda b, acc, x, y, c, d, wide: b.select(b.fcmp_ordered(">", x, acc), x, acc), first=True)
_sum64_lanes = _lanes(lambda b, acc, x, y, c, d, wide: b.fadd(acc, wide(x)), widen=True)
_sq_dev64_lanes = _lanes(lambda b, acc, x, y, c, d, wide: b.fadd(acc, b.fmul(b.fsub(wide(x), c), b.fsub(wide(x), c))),
                         widen=True)
_sq64_lanes = _lanes(lambda b, acc, x, y, c, d, wide: b.fadd(acc, wide(b.fmul(x, x))), widen=True)
_dot_dev_scaled64_lanes = _lanes(lambda b, acc, x, y, c, d, wide: b.fadd(acc, wide(b.fmul(b.fmul(x, b.fsub(y, c)), d))),
                                 widen=True)
_dot_scaled64_lanes = _lanes(lambda b, acc, x, y, c, d, wide: b.fadd(acc, wide(b.fmul(x, b.fmul(y, d)))), widen=True)


@njit(cache=True, inline="always")
def _pairwise(s):
    """The 8 lanes added in pairs, in a fixed order."""
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]))


@njit(cache=True, inline="always")
def row_max(row):
    """max_j row_j of a 1-D array (no axis= or keepdims= inside @njit: reduce one row at a time)."""
    n = row.shape[0]
    if n < 8:
        m = row[0]
        for j in range(1, n):
            m = row[j] if row[j] > m else m
        return m
    full = n - n % 8
    m = _max_lanes(row, row, row[0], row[0], full)
    m0 = m[0]
    for j in range(full, n):
        m0 = row[j] if row[j] > m0 else m0
    for k in range(1, 8):
        m0 = m[k] if m[k] > m0 else m0
    return m0


@njit(cache=True, inline="always")
def row_sum(a):
    """sum_j a_j of a 1-D array, in 8 interleaved partial sums (s_k adds a_k, a_k+8, ...), then
    those in pairs: a fixed order of additions, one vector add per 8 entries."""
    n = a.shape[0]
    full = n - n % 8
    s = _pairwise(_sum_lanes(a, a, 0.0, 0.0, full))
    for j in range(full, n):
        s += a[j]
    return s


@njit(cache=True, inline="always")
def row_dot(a, b):
    """sum_j a_j b_j of two 1-D arrays of one length, in the partial sums of row_sum."""
    n = a.shape[0]
    full = n - n % 8
    s = _pairwise(_dot_lanes(a, b, 0.0, 0.0, full))
    for j in range(full, n):
        s += a[j] * b[j]
    return s


@njit(cache=True, inline="always")
def row_exp_into(row, m, out):
    """out_j = e^(row_j - m); returns sum_j out_j. Two passes (the exps, then row_sum of them): a
    loop that only computes exps vectorises, one that also sums them in order does not."""
    for j in range(row.shape[0]):
        out[j] = exp(row[j] - m)
    return row_sum(out)


# The norms' statistics (LayerNorm, RMSNorm) sum a short row (the model width) in float64, in the same 8
# partial sums; each helper's name and docstring say which arithmetic happens before an entry is
# converted to float64 (the kernels' own, from before they summed this way: their float32 terms).

@njit(cache=True, inline="always")
def row_sum64(a):
    """sum_j a_j of a 1-D array, in float64, in row_sum's order."""
    n = a.shape[0]
    full = n - n % 8
    s = _pairwise(_sum64_lanes(a, a, 0.0, 0.0, full))
    for j in range(full, n):
        s += np.float64(a[j])
    return s


@njit(cache=True, inline="always")
def row_sq_dev64(a, mu):
    """sum_j (a_j - mu)^2 of a 1-D array, all in float64 (mu a float64), in row_sum's order."""
    n = a.shape[0]
    full = n - n % 8
    s = _pairwise(_sq_dev64_lanes(a, a, mu, mu, full))
    for j in range(full, n):
        dev = np.float64(a[j]) - mu
        s += dev * dev
    return s


@njit(cache=True, inline="always")
def row_sq64(a):
    """sum_j a_j^2 of a 1-D array, each square in a's dtype, summed in float64."""
    n = a.shape[0]
    full = n - n % 8
    s = _pairwise(_sq64_lanes(a, a, 0.0, 0.0, full))
    for j in range(full, n):
        s += np.float64(a[j] * a[j])
    return s


@njit(cache=True, inline="always")
def row_dot_dev_scaled64(a, b, c, d):
    """sum_j (a_j (b_j - c)) d, each term in a's dtype (c, d of that dtype), summed in float64."""
    n = a.shape[0]
    full = n - n % 8
    s = _pairwise(_dot_dev_scaled64_lanes(a, b, c, d, full))
    for j in range(full, n):
        s += np.float64(a[j] * (b[j] - c) * d)
    return s


@njit(cache=True, inline="always")
def row_dot_scaled64(a, b, d):
    """sum_j a_j (b_j d), each term in a's dtype (d of that dtype), summed in float64."""
    n = a.shape[0]
    full = n - n % 8
    s = _pairwise(_dot_scaled64_lanes(a, b, d, d, full))
    for j in range(full, n):
        s += np.float64(a[j] * (b[j] * d))
    return s
