"""Numba kernels for the autograd engine's hot loops, each beside a plain-NumPy twin. Chapter 3.

Every kernel `name` has a twin `name_ref` with the same signature and the same result, written with
whole-array NumPy operations so that it reads like the math; tests/test_kernels.py checks each pair
on random inputs. The kernels exist only for speed: they make one trip over each row where NumPy
would allocate a temporary array per intermediate, and they run rows in parallel (`prange`).

Conventions: 2-D kernels take C-contiguous (rows, features) arrays (functional.py reshapes to that),
and every kernel writes its results into output arrays passed as its last arguments, like NumPy's
`out=`. The caller allocates them with NumPy, which asks Linux for huge pages for big arrays; the
same allocation inside a kernel page-faults 4 KiB at a time and made the cross-entropy backward
several times slower. Row loops use `prange`; `parallel_kernel` runs a serial compilation of them
when the input is small (PARALLEL_MIN_SIZE), where waking other threads costs more than it saves.

    scatter_add_rows            out[idx[i]] += src[i]           gradient of a gather (embedding, x[ids])
    softmax_forward/backward    p = e^(x - lse);  dx = p (g - <g, p>)
    log_softmax_forward/backward y = x - lse;  dx = g - e^y sum(g)
    cross_entropy_forward       loss_i = m_i - x[i, t_i] + log sum_j e^(x_ij - m_i), m_i = max_j x_ij
    cross_entropy_backward      dx_i = (softmax(x_i) - onehot(t_i)) * scale_i
    cross_entropy_forward_backward  both in one pass (training)
    layer_norm_forward/backward y = (x - mu) / sigma * w + b over the last axis
    gelu_forward/backward       x Phi(x), or its tanh approximation x sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3));
    gelu_forward_gate           the forward that also keeps the gate Phi(x) or sigmoid(.) for the backward
    rms_norm_forward/backward   y = x / sqrt(mean(x^2) + eps) * w over the last axis (Chapter 9)
    swiglu_forward/backward     y = silu(a) * b, [a, b] the two halves of the last axis (Chapter 9)
    rope_forward                rotary position embedding, rotate-half convention (Chapter 9)
    adam_update                 one Adam / AdamW step of a parameter and its two moments, in place

Stability: every softmax and cross-entropy exponential is of x - max(x) <= 0, so nothing overflows
however large the logits (the log-sum-exp trick); the tanh GELU's gate 1 / (1 + e^(-2u)) relies on
e^(-2u) overflowing to inf for x << 0, which gives the right limit 0. Sums over a row are
accumulated in float64 when the row is short (layer norm); the long softmax rows sum float32 in
index order (for rows of 10,000 logits the softmax is within ~1e-5 relative of float64's).

Speed: the inner loops call scratchlm/numerics.py for e^x, Phi(x) and one-pass row reductions:
`numerics.exp` is a vectorisable exp for float32 (Numba's own calls the C library one element at a
time) and math.exp for float64, used for gradient checks.
"""

import functools
import math
import types

import numpy as np
from numba import njit, prange

from scratchlm import numerics

# The OpenMP wait policy these kernels' thread pool should run with, and the malloc settings that let
# every step reuse the previous step's arrays, are set when scratchlm is imported: scratchlm/runtime.py.

# Below this many elements a kernel runs on one thread: waking a second thread costs about what it
# saves on a small array, and on a busy machine (or beside BLAS's threads) it can cost milliseconds.
# benchmarks/bench_threads.py measures it per kernel and size: on 2 idle cores (Xeon, 2026-11-30) two
# threads won for every kernel from 512 Ki elements in one run (1.07-1.68x) but not in another
# (LayerNorm's backward 0.89x there), and for every kernel from 1 Mi in both (1.11-1.94x); with the
# other core busy they were within 0.83-1.11x of one thread at every size from 256 Ki to 4 Mi.
PARALLEL_MIN_SIZE = 1 << 20


def parallel_kernel(fn):
    """@njit(cache=True, parallel=True), with a serial compilation of the same loops (prange runs as
    range) for inputs whose first argument is small. Calling the serial one skips what a parallel
    call costs even on one thread -- setting Numba's thread count and back, starting the parallel
    region -- about 9 us (a LayerNorm of 8 numbers: 9.7 -> 0.9 us). Both compilations do the same float
    arithmetic in the same order (no fastmath flags; the parallel loops' bodies keep NumPy's error
    model, so the serial one has it too), so they give the same bits (tests/test_kernels.py). One
    exception would be Intel's SVML library, absent here: with it installed, LLVM vectorises the
    float64 kernels' math.exp with SVML's and runs each loop's remainder through the C library's, so
    where the parallel loop is the vectorised one (GELU's), which elements take which exp would depend
    on how the loop is split among threads."""
    kernel = njit(cache=True, parallel=True)(fn)
    # A copy of the function under its own name: Numba's on-disk cache is keyed by a function's name
    # and signature, not by its compile options, so the two compilations must not share a name.
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__,
                              fn.__closure__)
    twin.__qualname__, twin.__kwdefaults__ = fn.__qualname__ + "_serial", fn.__kwdefaults__
    serial = njit(cache=True, error_model="numpy")(twin)

    @functools.wraps(fn)
    def run(*args):
        return (kernel if args[0].size >= PARALLEL_MIN_SIZE else serial)(*args)
    run.kernel = kernel          # the compiled functions themselves
    run.serial = serial
    return run


def _shifted_ref(x):
    """(x - m, log sum e^(x - m)) per row, m the row max: the two parts of x - logsumexp(x)."""
    z = x - x.max(axis=1, keepdims=True)
    return z, np.log(np.exp(z).sum(axis=1, keepdims=True))


# ---- scatter-add: the gradient of a gather -----------------------------------------------------
# A gather y = W[idx] is the product onehot(idx) @ W, so its gradient is onehot(idx)^T @ g:
# row r of dW is the sum of the g rows whose index is r. Indices repeat (the same token twice in a
# batch), which is why a plain `dW[idx] += g` would be wrong: it keeps only one of them.

@njit(cache=True)
def scatter_add_rows(idx, src, out):
    """out[idx[i], :] += src[i, :] for every i. idx (M,) int64, src (M, D), out (N, D)."""
    for i in range(idx.shape[0]):       # sequential in i: two threads may not add to one row
        r = idx[i]
        for j in range(out.shape[1]):
            out[r, j] += src[i, j]


def scatter_add_rows_ref(idx, src, out):
    onehot = (idx[:, None] == np.arange(out.shape[0])).astype(out.dtype)  # (M, N)
    out += onehot.T @ src


# ---- softmax and log-softmax over rows ---------------------------------------------------------
# softmax: p = e^(x - lse). Its Jacobian is diag(p) - p p^T, so the vector-Jacobian product is
# dx = p * (g - <g, p>). log-softmax: y = x - lse, Jacobian I - 1 p^T, so dx = g - p * sum(g).

@parallel_kernel
def softmax_forward(x, out):
    """out (N, V) = softmax of each row of x (N, V)."""
    for i in prange(x.shape[0]):
        xi, pi = x[i], out[i]
        inv = x.dtype.type(1.0) / numerics.row_exp_into(xi, numerics.row_max(xi), pi)
        for j in range(xi.shape[0]):
            pi[j] *= inv


def softmax_forward_ref(x, out):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    out[...] = e / e.sum(axis=1, keepdims=True)


@parallel_kernel
def softmax_backward(p, g, out):
    """out (N, V) = dx from the softmax output p and the output gradient g."""
    for i in prange(p.shape[0]):
        pi, gi, di = p[i], g[i], out[i]
        gp = numerics.row_dot(gi, pi)
        for j in range(pi.shape[0]):
            di[j] = pi[j] * (gi[j] - gp)


def softmax_backward_ref(p, g, out):
    out[...] = p * (g - (g * p).sum(axis=1, keepdims=True))


@parallel_kernel
def log_softmax_forward(x, out):
    """out (N, V) = x - logsumexp of each row (out must not be x: it holds the exps on the way)."""
    for i in prange(x.shape[0]):
        xi, yi = x[i], out[i]
        m = numerics.row_max(xi)
        log_sum = np.log(numerics.row_exp_into(xi, m, yi))   # yi holds the exps until overwritten
        for j in range(xi.shape[0]):
            yi[j] = (xi[j] - m) - log_sum


def log_softmax_forward_ref(x, out):
    z, log_sum = _shifted_ref(x)
    out[...] = z - log_sum


@parallel_kernel
def log_softmax_backward(y, g, out):
    """out (N, V) = dx from the log-softmax output y and the output gradient g."""
    for i in prange(y.shape[0]):
        yi, gi, di = y[i], g[i], out[i]
        gs = numerics.row_sum(gi)
        for j in range(yi.shape[0]):
            di[j] = gi[j] - numerics.exp(yi[j]) * gs


def log_softmax_backward_ref(y, g, out):
    out[...] = g - np.exp(y) * g.sum(axis=1, keepdims=True)


# ---- fused cross-entropy -----------------------------------------------------------------------
# loss_i = -log softmax(x_i)[t_i] = (m_i - x[i, t_i]) + log_sum_i, with m_i the row max and
# log_sum_i = log sum_j e^(x_ij - m_i). The forward keeps m and log_sum (2N numbers) apart: their
# sum, logsumexp, would round in float32 when logits are large (1e4 has a spacing of 1e-3) and take
# softmax's digits with it. The backward rebuilds softmax in the pass that writes the gradient,
# dx_i = (softmax(x_i) - onehot(t_i)) * scale_i, with scale_i = dL/dloss_i (1/n for a mean).
# Rows whose target is ignore_index have loss 0 and gradient 0.
#
# The forward alone (evaluation) writes a row's exponentials into a scratch row and sums them there
# (numerics.row_exp_into): a loop that computes exps and also adds them up in order does not vectorise,
# one that only computes them does (4-5x faster at V = 65 and V = 10,000; same sums, same bits). A
# block of CE_ROWS rows shares one scratch row.
CE_ROWS = 16

@parallel_kernel
def cross_entropy_forward(logits, targets, ignore_index, loss, row_max, log_sum):
    """loss, row_max and log_sum (N,) for logits (N, V) and int64 targets (N,)."""
    N, V = logits.shape
    for block in prange((N + CE_ROWS - 1) // CE_ROWS):
        exps = np.empty(V, logits.dtype)             # one row's e^(x - m): see CE_ROWS
        for i in range(block * CE_ROWS, min((block + 1) * CE_ROWS, N)):
            xi = logits[i]
            m = numerics.row_max(xi)
            row_max[i] = m
            log_sum[i] = np.log(numerics.row_exp_into(xi, m, exps))
            loss[i] = 0 if targets[i] == ignore_index else (m - xi[targets[i]]) + log_sum[i]


def cross_entropy_forward_ref(logits, targets, ignore_index, loss, row_max, log_sum):
    z, ls = _shifted_ref(logits)
    row_max[...], log_sum[...] = logits.max(axis=1), ls[:, 0]
    kept = targets != ignore_index
    picked = z[np.arange(len(targets)), np.where(kept, targets, 0)]
    loss[...] = np.where(kept, log_sum - picked, 0)


@parallel_kernel
def cross_entropy_backward(logits, targets, row_max, log_sum, scale, ignore_index, out):
    """out (N, V) = dlogits = (softmax - onehot) * scale[:, None], zero on ignored rows."""
    for i in prange(logits.shape[0]):
        xi, di = logits[i], out[i]
        if targets[i] == ignore_index:
            di[:] = 0
            continue
        m, ls, s = row_max[i], log_sum[i], scale[i]
        for j in range(xi.shape[0]):
            di[j] = numerics.exp((xi[j] - m) - ls) * s
        di[targets[i]] -= s


def cross_entropy_backward_ref(logits, targets, row_max, log_sum, scale, ignore_index, out):
    # BEGIN SOLUTION 3.5: Gradient of the cross-entropy (chapters/ch03_autograd.py §3.4)
    kept = targets != ignore_index
    onehot = np.arange(logits.shape[1]) == targets[:, None]
    softmax = np.exp((logits - row_max[:, None]) - log_sum[:, None])
    out[...] = np.where(kept[:, None], (softmax - onehot) * scale[:, None], 0)
    # END SOLUTION


@parallel_kernel
def cross_entropy_forward_backward(logits, targets, ignore_index, scale, loss, row_max, log_sum, out):
    """Both of the above in one pass per row, for training: the exponentials computed for the loss
    become the gradient while the row is still in cache (half the memory traffic, half the exps)."""
    for i in prange(logits.shape[0]):
        xi, di = logits[i], out[i]
        m = numerics.row_max(xi)
        s = numerics.row_exp_into(xi, m, di)        # di = e^(x - m), s = its sum
        row_max[i], log_sum[i] = m, np.log(s)
        if targets[i] == ignore_index:
            loss[i] = 0
            di[:] = 0
            continue
        loss[i] = (m - xi[targets[i]]) + log_sum[i]
        c = scale[i] / s                             # softmax = di / s
        for j in range(xi.shape[0]):
            di[j] *= c
        di[targets[i]] -= scale[i]


def cross_entropy_forward_backward_ref(logits, targets, ignore_index, scale, loss, row_max, log_sum, out):
    cross_entropy_forward_ref(logits, targets, ignore_index, loss, row_max, log_sum)
    cross_entropy_backward_ref(logits, targets, row_max, log_sum, scale, ignore_index, out)


# ---- layer normalisation over the last axis ----------------------------------------------------
# Per row: mu = mean(x), var = mean((x - mu)^2), rstd = 1/sqrt(var + eps), xhat = (x - mu) rstd,
# y = xhat * w + b. Backward, with dxhat = g * w:
#     dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)),
#     dw = sum over rows of g * xhat,  db = sum over rows of g.
# Rows are short (the model width), so their sums are accumulated in float64. dw and db sum over
# all rows, so threads would collide on them; one sequential pass computes them instead.
#
# A row's float64 sum is a chain of dependent vector adds (numerics.row_sum64), so the forward takes
# NORM_ROWS rows at a time and makes each pass over all of them before the next pass (every row's
# sum, then every row's variance, then every row's output): the chains of different rows then run
# side by side in the processor, where row after row they waited on each other (the forward 1.4x
# faster at (768, 128), bench_ops.py; the backward, whose float64 output loop dominates, gained
# nothing that way). Each row's arithmetic, and so every bit, is what it was row by row.
NORM_ROWS = 16

@parallel_kernel
def layer_norm_forward(x, weight, bias, eps, out, mean, rstd):
    """out (N, C), mean (N,), rstd (N,) for x (N, C), weight (C,), bias (C,)."""
    N, C = x.shape
    for block in prange((N + NORM_ROWS - 1) // NORM_ROWS):
        lo = block * NORM_ROWS
        hi = min(lo + NORM_ROWS, N)
        mu, r = np.empty(NORM_ROWS), np.empty(NORM_ROWS)
        for i in range(lo, hi):                 # pass by pass over the block: see NORM_ROWS
            mu[i - lo] = numerics.row_sum64(x[i]) / C
        for i in range(lo, hi):
            r[i - lo] = 1.0 / math.sqrt(numerics.row_sq_dev64(x[i], mu[i - lo]) / C + eps)
        for i in range(lo, hi):
            xi, yi, m, s = x[i], out[i], mu[i - lo], r[i - lo]
            mean[i], rstd[i] = m, s
            for j in range(C):
                yi[j] = (xi[j] - m) * s * weight[j] + bias[j]


def layer_norm_forward_ref(x, weight, bias, eps, out, mean, rstd):
    mu = x.mean(axis=1, dtype=np.float64)
    r = 1 / np.sqrt(x.var(axis=1, dtype=np.float64) + eps)
    mean[...], rstd[...] = mu, r
    out[...] = (x - mu[:, None]) * r[:, None] * weight + bias


@parallel_kernel
def layer_norm_backward(x, weight, mean, rstd, g, dx, dweight, dbias):
    """dx (N, C), dweight (C,), dbias (C,) from the forward's saved mean and rstd."""
    N, C = x.shape
    for i in prange(N):
        xi, gi, di = x[i], g[i], dx[i]
        mu, r = mean[i], rstd[i]
        for j in range(C):
            di[j] = gi[j] * weight[j]                               # dxhat, for now
        a = numerics.row_sum64(di) / C                              # mean(dxhat)
        b = numerics.row_dot_dev_scaled64(di, xi, mu, r) / C       # mean(dxhat * xhat)
        for j in range(C):
            di[j] = r * (di[j] - a - (xi[j] - mu) * r * b)
    _layer_norm_param_grads(x, mean, rstd, g, dweight, dbias)


@njit(cache=True)
def _layer_norm_param_grads(x, mean, rstd, g, dweight, dbias):
    """dweight = sum_i g_i * xhat_i, dbias = sum_i g_i: one sequential pass, vectorised along C."""
    dw = np.zeros(x.shape[1])
    db = np.zeros(x.shape[1])
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            dw[j] += g[i, j] * (x[i, j] - mean[i]) * rstd[i]
            db[j] += g[i, j]
    dweight[:] = dw
    dbias[:] = db


def layer_norm_backward_ref(x, weight, mean, rstd, g, dx, dweight, dbias):
    xhat = (x - mean[:, None]) * rstd[:, None]
    dxhat = g * weight
    dx[...] = rstd[:, None] * (dxhat - dxhat.mean(axis=1, keepdims=True)
                               - xhat * (dxhat * xhat).mean(axis=1, keepdims=True))
    dweight[...] = (g * xhat).sum(axis=0)
    dbias[...] = g.sum(axis=0)


# ---- GELU --------------------------------------------------------------------------------------
# Exact:  y = x Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2,   dy/dx = Phi(x) + x phi(x),
#         phi(x) = e^(-x^2/2) / sqrt(2 pi).
# Tanh:   y = x (1 + tanh(u)) / 2 with u = sqrt(2/pi) (x + 0.044715 x^3). Since (1 + tanh u)/2 =
#         sigmoid(2u), y = x s with s = 1 / (1 + e^(-2u)) -- one exp, and no cancellation for
#         x << 0; dy/dx = s + x s (1 - s) 2 du/dx,  du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2).
SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
GELU_CUBIC = 0.044715


@njit(cache=True, inline="always")
def _gelu_and_gate(v, tanh):
    """(gelu(v), its gate y / v: sigmoid(2u) or Phi(v)) for one number; inlined into the kernels, whose
    flags it compiles with, and a kernel that drops the gate never computes it."""
    f = type(v)                                      # constants in v's dtype: float32 stays float32
    if tanh:
        d = f(1.0) + numerics.exp(f(-2.0) * f(SQRT_2_OVER_PI) * (v + f(GELU_CUBIC) * v * v * v))
        return v / d, f(1.0) / d
    phi = numerics.normal_cdf(v)
    return v * phi, phi


@parallel_kernel
def gelu_forward(x, tanh, out):
    """out = gelu(x) elementwise over 1-D arrays; tanh=True for the tanh approximation."""
    for i in prange(x.shape[0]):
        out[i] = _gelu_and_gate(x[i], tanh)[0]


@parallel_kernel
def gelu_forward_gate(x, tanh, out, gate):
    """gelu_forward, for training: also gate = the factor y / x, sigmoid(2u) or Phi(x), which the
    backward needs and would otherwise compute again (an exp per element)."""
    for i in prange(x.shape[0]):
        out[i], gate[i] = _gelu_and_gate(x[i], tanh)


@parallel_kernel
def gelu_backward(x, gate, g, tanh, out):
    """out = g * gelu'(x) elementwise over 1-D arrays, from gelu_forward_gate's gate."""
    f = x.dtype.type
    k, c, one, two = f(SQRT_2_OVER_PI), f(GELU_CUBIC), f(1.0), f(2.0)
    for i in prange(x.shape[0]):
        v, s = x[i], gate[i]
        if tanh:
            du = k * (one + f(3.0) * c * v * v)
            out[i] = g[i] * (s + v * s * (one - s) * two * du)
        else:
            pdf = numerics.exp(f(-0.5) * v * v) * f(1 / math.sqrt(2 * math.pi))
            out[i] = g[i] * (s + v * pdf)


_erf = np.vectorize(math.erf, otypes=[np.float64])   # NumPy has no erf; exact, slow, fine for a twin


def _gelu_tanh_gate_ref(x):
    """sigmoid(2u) = (1 + tanh u) / 2, with exp overflow (x << 0) giving the right limit 0."""
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-2 * SQRT_2_OVER_PI * (x + GELU_CUBIC * x ** 3)))


def gelu_forward_ref(x, tanh, out):
    gelu_forward_gate_ref(x, tanh, out, np.empty_like(x))


def gelu_forward_gate_ref(x, tanh, out, gate):
    gate[...] = _gelu_tanh_gate_ref(x) if tanh else 0.5 * (1 + _erf(x / np.sqrt(2)))
    out[...] = x * gate


def gelu_backward_ref(x, gate, g, tanh, out):
    if tanh:
        out[...] = g * (gate + x * gate * (1 - gate) * 2 * SQRT_2_OVER_PI * (1 + 3 * GELU_CUBIC * x ** 2))
    else:
        out[...] = g * (gate + x * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi))


# ---- RMS normalisation over the last axis (Chapter 9: the modern decoder) -----------------------
# Zhang & Sennrich (2019), LLaMA's norm: no mean subtracted, no bias. Per row: rstd = 1/sqrt(mean(x^2)
# + eps), xhat = x rstd, y = xhat * w. Backward, with dxhat = g * w:
#     dx = rstd * (dxhat - xhat * mean(dxhat * xhat)),    dw = sum over rows of g * xhat.
# (LayerNorm's backward without the mean(dxhat) term, since no mean was subtracted.) Row sums in
# float64, as LayerNorm's.

@parallel_kernel
def rms_norm_forward(x, weight, eps, out, rstd):
    """out (N, C), rstd (N,) for x (N, C), weight (C,)."""
    N, C = x.shape
    for i in prange(N):
        xi, yi = x[i], out[i]
        r = 1.0 / math.sqrt(numerics.row_sq64(xi) / C + eps)
        rstd[i] = r
        for j in range(C):
            yi[j] = xi[j] * r * weight[j]


def rms_norm_forward_ref(x, weight, eps, out, rstd):
    r = 1 / np.sqrt((x.astype(np.float64) ** 2).mean(axis=1) + eps)
    rstd[...] = r
    out[...] = x * r[:, None] * weight


@parallel_kernel
def rms_norm_backward(x, weight, rstd, g, dx, dweight):
    """dx (N, C), dweight (C,) from the forward's saved rstd."""
    N, C = x.shape
    for i in prange(N):
        xi, gi, di = x[i], g[i], dx[i]
        r = rstd[i]
        for j in range(C):
            di[j] = gi[j] * weight[j]                               # dxhat, for now
        b = numerics.row_dot_scaled64(di, xi, r) / C                # mean(dxhat * xhat), xhat = x r
        for j in range(C):
            di[j] = r * (di[j] - (xi[j] * r) * b)
    _rms_norm_weight_grad(x, rstd, g, dweight)


@njit(cache=True)
def _rms_norm_weight_grad(x, rstd, g, dweight):
    """dweight = sum_i g_i * xhat_i: one sequential pass (threads would collide on dweight)."""
    dw = np.zeros(x.shape[1])
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            dw[j] += g[i, j] * x[i, j] * rstd[i]
    dweight[:] = dw


def rms_norm_backward_ref(x, weight, rstd, g, dx, dweight):
    xhat = x * rstd[:, None]
    dxhat = g * weight
    dx[...] = rstd[:, None] * (dxhat - xhat * (dxhat * xhat).mean(axis=1, keepdims=True))
    dweight[...] = (g * xhat).sum(axis=0)


# ---- SwiGLU (Chapter 9: the modern decoder's MLP) -----------------------------------------------
# Shazeer (2020): the MLP's hidden layer is a gated product silu(x W) * (x V). One (C, 2H) matrix
# computes both halves, a = x W (the gate) and b = x V; this op is the elementwise part:
#     y = silu(a) * b,  silu(a) = a sigmoid(a) = a / (1 + e^-a),
#     da = g * b * sigmoid(a) (1 + a (1 - sigmoid(a))),   db = g * silu(a).
# For a << 0, e^-a overflows to inf and sigmoid(a) = 1 / inf = 0, the right limit.

@parallel_kernel
def swiglu_forward(x, out):
    """out (N, H) = silu(x[:, :H]) * x[:, H:] for x (N, 2H)."""
    N, H = out.shape
    one = x.dtype.type(1.0)
    for i in prange(N):
        for j in range(H):
            a = x[i, j]
            out[i, j] = a / (one + numerics.exp(-a)) * x[i, H + j]


def _sigmoid_ref(a):
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-a))


def swiglu_forward_ref(x, out):
    H = out.shape[1]
    a, b = x[:, :H], x[:, H:]
    out[...] = a * _sigmoid_ref(a) * b


@parallel_kernel
def swiglu_backward(x, g, out):
    """out (N, 2H) = [da, db] from x (N, 2H) and the output gradient g (N, H)."""
    N, H = g.shape
    one = x.dtype.type(1.0)
    for i in prange(N):
        for j in range(H):
            a, b = x[i, j], x[i, H + j]
            s = one / (one + numerics.exp(-a))
            out[i, j] = g[i, j] * b * s * (one + a * (one - s))
            out[i, H + j] = g[i, j] * a * s


def swiglu_backward_ref(x, g, out):
    H = g.shape[1]
    a, b = x[:, :H], x[:, H:]
    s = _sigmoid_ref(a)
    out[:, :H] = g * b * s * (1 + a * (1 - s))
    out[:, H:] = g * a * s


# ---- rotary position embedding (Chapter 9: the modern decoder) ----------------------------------
# Su et al. (2021), in the rotate-half convention of GPT-NeoX and LLaMA (as Hugging Face writes it):
# a head vector x of size D is split into halves [x1, x2], and each pair (x1_i, x2_i) is turned by
# the angle t * theta_i of its position t, theta_i = base^(-2i / D):
#     y = [x1 cos - x2 sin,  x2 cos + x1 sin].
# A rotation's inverse is its transpose, the rotation by -angle: the backward is the same kernel
# with -sin. (The interleaved convention of the paper and of Meta's LLaMA code pairs x_2i with
# x_2i+1 instead; the two differ by a fixed permutation of the head's dimensions.)

@parallel_kernel
def rope_forward(x, cos, sin, out):
    """out (A, H, T, D) = x (A, H, T, D) rotated by angles whose cos and sin are (T, D/2).

    x and out may be strided views (the q and k of a packed (B, T, 3C) array)."""
    A, Hh, T, D = x.shape
    half = D // 2
    for a in prange(A):
        for h in range(Hh):
            for t in range(T):
                for i in range(half):
                    x1, x2 = x[a, h, t, i], x[a, h, t, half + i]
                    out[a, h, t, i] = x1 * cos[t, i] - x2 * sin[t, i]
                    out[a, h, t, half + i] = x2 * cos[t, i] + x1 * sin[t, i]


def rope_forward_ref(x, cos, sin, out):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    out[...] = np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


# ---- Adam / AdamW (scratchlm/optim.py) ----------------------------------------------------------
# One step of one parameter, everything in place, in one pass over the four arrays (the NumPy twin
# makes ten). The arithmetic is the twin's, operation for operation in the arrays' dtype, so the two
# give the same bits: the scalars come in already rounded to that dtype, as NumPy rounds a Python
# float it combines with a float32 array.
#     g <- g + l2 p                        (Adam's coupled weight decay; l2 = 0 for AdamW)
#     p <- p * decay                       (AdamW's decoupled decay, 1 - lr lambda; 1 for Adam)
#     m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
#     p <- p - step_size * m / (sqrt(v) / bias2_sqrt + eps),  step_size = lr / (1 - b1^t),
#                                                            bias2_sqrt = sqrt(1 - b2^t)

@parallel_kernel
def adam_update(param, grad, exp_avg, exp_avg_sq, l2, decay, b1, one_minus_b1, b2, one_minus_b2, bias2_sqrt, eps,
                step_size):
    """param, exp_avg, exp_avg_sq (n,) updated in place from grad (n,); the scalars in param's dtype."""
    for i in prange(param.shape[0]):
        g = grad[i]
        if l2 != 0:
            g = param[i] * l2 + g
        m = exp_avg[i] * b1 + g * one_minus_b1
        v = exp_avg_sq[i] * b2 + (g * g) * one_minus_b2
        exp_avg[i], exp_avg_sq[i] = m, v
        param[i] = param[i] * decay - (m / (np.sqrt(v) / bias2_sqrt + eps)) * step_size


def adam_update_ref(param, grad, exp_avg, exp_avg_sq, l2, decay, b1, one_minus_b1, b2, one_minus_b2, bias2_sqrt, eps,
                    step_size):
    g = grad + param * l2 if l2 != 0 else grad
    param *= decay
    exp_avg *= b1
    exp_avg += g * one_minus_b1
    exp_avg_sq *= b2
    exp_avg_sq += (g * g) * one_minus_b2
    param -= exp_avg / (np.sqrt(exp_avg_sq) / bias2_sqrt + eps) * step_size
