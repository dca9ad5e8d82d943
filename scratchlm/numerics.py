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
    row_sum_exp(row, m)     sum_j e^(row_j - m)
    row_exp_into(row, m, out)   out_j = e^(row_j - m), returning sum_j out_j

Every helper is inlined into the kernel that calls it (`inline="always"`, at Numba's level, before
LLVM sees the code), so it compiles with that kernel's flags, as part of that kernel. Left to LLVM,
the inlining happened when the helpers were compiled in the same process as the kernel and not when
they came from Numba's on-disk cache: a kernel's float32 results then depended on which functions
happened to be cached (Chapter 4's perplexity changed in the 9th digit between a first and a second
run; tests/test_determinism.py). The row sums fix their order of additions in the source (8
interleaved partial sums, below), so they vectorise without fastmath flags and give the same bits in
any kernel. `FAST` is the set of fastmath flags a kernel may still compile with (the attention
softmax does).

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
# Sums are accumulated in the row's dtype, in 8 interleaved partial sums written out in the code: the
# order of the additions is fixed by the source (no `reassoc` needed, so the same bits whatever the
# kernel's flags), and it is the order a vector unit adds in, so the loops still vectorise.

@njit(cache=True, inline="always")
def row_max(row):
    """max_j row_j of a 1-D array (no axis= or keepdims= inside @njit: reduce one row at a time)."""
    n = row.shape[0]
    if n < 8:
        m = row[0]
        for j in range(1, n):
            m = row[j] if row[j] > m else m
        return m
    m0, m1, m2, m3, m4, m5, m6, m7 = row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7]
    full = n - n % 8
    for j in range(8, full, 8):      # 8 running maxima, as row_sum's partial sums: they vectorise
        m0 = row[j] if row[j] > m0 else m0
        m1 = row[j + 1] if row[j + 1] > m1 else m1
        m2 = row[j + 2] if row[j + 2] > m2 else m2
        m3 = row[j + 3] if row[j + 3] > m3 else m3
        m4 = row[j + 4] if row[j + 4] > m4 else m4
        m5 = row[j + 5] if row[j + 5] > m5 else m5
        m6 = row[j + 6] if row[j + 6] > m6 else m6
        m7 = row[j + 7] if row[j + 7] > m7 else m7
    for j in range(full, n):
        m0 = row[j] if row[j] > m0 else m0
    for mk in (m1, m2, m3, m4, m5, m6, m7):
        m0 = mk if mk > m0 else m0
    return m0


@njit(cache=True, inline="always")
def row_sum(a):
    """sum_j a_j of a 1-D array, in 8 interleaved partial sums (s_k adds a_k, a_k+8, ...), then
    those in pairs: a fixed order of additions, which LLVM turns into one vector add per 8 entries."""
    n, z = a.shape[0], a.dtype.type(0.0)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = z
    full = n - n % 8
    for j in range(0, full, 8):
        s0 += a[j]
        s1 += a[j + 1]
        s2 += a[j + 2]
        s3 += a[j + 3]
        s4 += a[j + 4]
        s5 += a[j + 5]
        s6 += a[j + 6]
        s7 += a[j + 7]
    s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    for j in range(full, n):
        s += a[j]
    return s


@njit(cache=True, inline="always")
def row_dot(a, b):
    """sum_j a_j b_j of two 1-D arrays of one length, in the partial sums of row_sum."""
    n, z = a.shape[0], a.dtype.type(0.0)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = z
    full = n - n % 8
    for j in range(0, full, 8):
        s0 += a[j] * b[j]
        s1 += a[j + 1] * b[j + 1]
        s2 += a[j + 2] * b[j + 2]
        s3 += a[j + 3] * b[j + 3]
        s4 += a[j + 4] * b[j + 4]
        s5 += a[j + 5] * b[j + 5]
        s6 += a[j + 6] * b[j + 6]
        s7 += a[j + 7] * b[j + 7]
    s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
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


@njit(cache=True, inline="always")
def row_sum_exp(row, m):
    """sum_j e^(row_j - m), accumulated in the row's dtype (in the partial sums of row_sum)."""
    n, z = row.shape[0], row.dtype.type(0.0)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = z
    full = n - n % 8
    for j in range(0, full, 8):
        s0 += exp(row[j] - m)
        s1 += exp(row[j + 1] - m)
        s2 += exp(row[j + 2] - m)
        s3 += exp(row[j + 3] - m)
        s4 += exp(row[j + 4] - m)
        s5 += exp(row[j + 5] - m)
        s6 += exp(row[j + 6] - m)
        s7 += exp(row[j + 7] - m)
    s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    for j in range(full, n):
        s += exp(row[j] - m)
    return s
