"""Fused recurrent cells (Chapter 8): one time step of the LSTM and of the Elman (tanh) RNN, forward
and backward, as Numba kernels with NumPy twins.

The matrix products of a step are not here: the input projections of all T steps are one product
before the loop, and the recurrent product h_{t-1} W_hh^T is one BLAS call per step (scratchlm/models/
rnn.py). What is left per step is elementwise over (B, 4H) numbers, and as a chain of Tensor ops it
would be a dozen passes over memory, each allocating its output: these kernels make one.

LSTM (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000), gates in PyTorch's
order i, f, g, o. With a = xp_t + hh_t (B, 4H), the input projection plus the recurrent product:

    i = sigma(a_i)   f = sigma(a_f)   g = tanh(a_g)   o = sigma(a_o)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

Backward, from dh (the gradient reaching h_t from above and from step t+1) and dc (reaching c_t
from step t+1, plus any from outside the layer):

    dc_t  = dc + dh * o * (1 - tanh(c_t)^2)
    da_i  = dc_t * g * i (1 - i)          da_f = dc_t * c_{t-1} * f (1 - f)
    da_g  = dc_t * i * (1 - g^2)          da_o = dh * tanh(c_t) * o (1 - o)
    dc_{t-1} = dc_t * f                   (dh_{t-1} = da W_hh is the caller's product)

Elman RNN (tanh):  h_t = tanh(a),  da = dh * (1 - h_t^2).

    lstm_cell_forward(xp, hh, c_prev, gates, c, tanh_c, h)       writes the activated gates, c, tanh(c), h
    lstm_cell_backward(gates, c_prev, tanh_c, dh_out, dh_next, dc_out, dc_next, dgates, dc_prev)
    rnn_cell_forward(xp, hh, h)
    rnn_cell_backward(h, dh_out, dh_next, dpre)

dh = dh_out + dh_next is summed inside the backward kernels: dh_out is what the layer above (or the
loss) sends to h_t, dh_next what step t+1 sends back through W_hh; likewise dc = dc_out + dc_next
(dc_out is 0 except where something outside the layer reads c_t, e.g. the final state). Every array
is (B, n) C-contiguous of one dtype; outputs come last, as in scratchlm/autograd/kernels.py.
Each kernel's twin `name_ref` computes the same with whole-array NumPy.

The gates' sigmoid and tanh: float32 kernels use e^x from scratchlm.numerics (vectorisable; Numba's
own tanh calls the C library one element at a time, and these run 2 * T times per layer per
training step), float64 ones math.tanh and math.exp, exact for gradient checks and PyTorch parity.
Stability: sigma(x) = 1 / (1 + e^-x) is 0 for x << 0 (e^-x = inf) and 1 for x >> 0; tanh(x) is
computed from e^(-2|x|) <= 1, so nothing overflows.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from scratchlm import numerics

# One thread: a step is B * 4H numbers (20 x 800 for Zaremba's small LSTM), a few microseconds of
# work, less than waking a thread pool costs.


def sigmoid(x):
    """1 / (1 + e^-x) inside kernels, in x's precision."""
    return 1.0 / (1.0 + math.exp(-x))


@overload(sigmoid, inline="always")
def _sigmoid_typed(x):
    if x == types.float32:
        return lambda x: np.float32(1.0) / (np.float32(1.0) + numerics.exp(-x))
    return lambda x: 1.0 / (1.0 + math.exp(-x))


def tanh(x):
    """tanh(x) inside kernels: from e^(-2|x|) for float32 (vectorisable), math.tanh otherwise."""
    return math.tanh(x)


@overload(tanh, inline="always")
def _tanh_typed(x):
    if x == types.float32:
        def tanh32(x):
            e = numerics.exp(np.float32(-2.0) * abs(x))          # in (0, 1]: no overflow
            return math.copysign((np.float32(1.0) - e) / (np.float32(1.0) + e), x)
        return tanh32
    return lambda x: math.tanh(x)


# ---- LSTM ----------------------------------------------------------------------------------------
# Each row's four gate blocks are taken as 1-D views and every loop runs j from 0: an index like
# `row[H + j]` may be negative as far as Numba knows, and the wraparound check it then adds on every
# access stops LLVM from vectorising the loop (a step took 10x longer that way).

@njit(cache=True, inline="always")
def _blocks(row, H):
    """The four blocks [i, f, g, o] of a gate row (4H,) as views of H each."""
    return row[:H], row[H:2 * H], row[2 * H:3 * H], row[3 * H:4 * H]


@njit(cache=True, error_model="numpy")
def lstm_cell_forward(xp, hh, c_prev, gates, c, tanh_c, h):
    """One LSTM step. xp, hh (B, 4H): input projection (biases included) and h_{t-1} W_hh^T;
    c_prev (B, H). Writes gates (B, 4H) = [i, f, g, o] after their nonlinearities, c, tanh_c, h (B, H)."""
    B, H = c_prev.shape
    for b in range(B):
        xi, xf, xg, xo = _blocks(xp[b], H)
        yi, yf, yg, yo = _blocks(hh[b], H)
        gi, gf, gg, go = _blocks(gates[b], H)
        cp, cb, tb, hb = c_prev[b], c[b], tanh_c[b], h[b]
        for j in range(H):
            i = sigmoid(xi[j] + yi[j])
            f = sigmoid(xf[j] + yf[j])
            g = tanh(xg[j] + yg[j])
            o = sigmoid(xo[j] + yo[j])
            ct = f * cp[j] + i * g
            tc = tanh(ct)
            gi[j], gf[j], gg[j], go[j] = i, f, g, o
            cb[j], tb[j], hb[j] = ct, tc, o * tc


def lstm_cell_forward_ref(xp, hh, c_prev, gates, c, tanh_c, h):
    H = c_prev.shape[1]
    a = xp + hh
    def sig(z):
        with np.errstate(over="ignore"):      # e^-z = inf for z << 0 gives sigma = 0, as it should
            return 1.0 / (1.0 + np.exp(-z))
    i, f, g, o = sig(a[:, :H]), sig(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), sig(a[:, 3 * H:])
    gates[...] = np.concatenate([i, f, g, o], axis=1)
    c[...] = f * c_prev + i * g
    tanh_c[...] = np.tanh(c)
    h[...] = o * tanh_c


@njit(cache=True, error_model="numpy")
def lstm_cell_backward(gates, c_prev, tanh_c, dh_out, dh_next, dc_out, dc_next, dgates, dc_prev):
    """Backward of one LSTM step: dgates (B, 4H) = dL/da (before the nonlinearities) and
    dc_prev (B, H) = dL/dc_{t-1}, from dL/dh_t = dh_out + dh_next and dc_out + dc_next (all (B, H))."""
    B, H = c_prev.shape
    one = gates.dtype.type(1.0)
    for b in range(B):
        gi, gf, gg, go = _blocks(gates[b], H)
        di, df, dg, do = _blocks(dgates[b], H)
        cp, tb, dho, dhn, dco, dcn, dcp = c_prev[b], tanh_c[b], dh_out[b], dh_next[b], dc_out[b], dc_next[b], dc_prev[b]
        for j in range(H):
            i, f, g, o, tc = gi[j], gf[j], gg[j], go[j], tb[j]
            dh = dho[j] + dhn[j]
            dc = dco[j] + dcn[j] + dh * o * (one - tc * tc)
            di[j] = dc * g * i * (one - i)
            df[j] = dc * cp[j] * f * (one - f)
            dg[j] = dc * i * (one - g * g)
            do[j] = dh * tc * o * (one - o)
            dcp[j] = dc * f


def lstm_cell_backward_ref(gates, c_prev, tanh_c, dh_out, dh_next, dc_out, dc_next, dgates, dc_prev):
    H = c_prev.shape[1]
    i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
    dh = dh_out + dh_next
    dc = dc_out + dc_next + dh * o * (1 - tanh_c ** 2)
    dgates[...] = np.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g ** 2),
                                  dh * tanh_c * o * (1 - o)], axis=1)
    dc_prev[...] = dc * f


# ---- Elman RNN -----------------------------------------------------------------------------------

@njit(cache=True, error_model="numpy")
def rnn_cell_forward(xp, hh, h):
    """One tanh-RNN step: h (B, H) = tanh(xp + hh)."""
    B, H = h.shape
    for b in range(B):
        for j in range(H):
            h[b, j] = tanh(xp[b, j] + hh[b, j])


def rnn_cell_forward_ref(xp, hh, h):
    h[...] = np.tanh(xp + hh)


@njit(cache=True, error_model="numpy")
def rnn_cell_backward(h, dh_out, dh_next, dpre):
    """Backward of one tanh-RNN step: dpre (B, H) = (dh_out + dh_next) * (1 - h^2)."""
    B, H = h.shape
    one = h.dtype.type(1.0)
    for b in range(B):
        for j in range(H):
            dpre[b, j] = (dh_out[b, j] + dh_next[b, j]) * (one - h[b, j] * h[b, j])


def rnn_cell_backward_ref(h, dh_out, dh_next, dpre):
    dpre[...] = (dh_out + dh_next) * (1 - h ** 2)
