"""Every op of a training step, scratchlm beside the equivalent PyTorch op: the map of where a step's
time goes (Chapters 6, 8, 9 and 10's models).

    python benchmarks/bench_ops.py [--threads 1] [--models gpt,bert,t5,lstm,lora] [--seconds 0.2]
                                   [--parallel-min-size N]

Each row is one op at the shape it has in a training step -- the baby GPT of bench_gpt.py (batch
12 x 64 tokens, n_embd 128, 4 heads, vocab 65), the ops BERT and T5 add in bench_transformer.py
(vocab 10,000, batch 16, padded rows, bidirectional and cross-attention), Chapter 8's LSTM LM
(Zaremba's small configuration of bench_rnn.py: vocab 10,000, 2 layers of 200, batch 20 x 20
steps) and Chapter 10's LoRA linears (its 2-block, 128-wide GPT fine-tuned on batches of 32
messages of 64 tokens: rank 4 on the q and v rows of c_attn, and rank 16 on every linear of a
block, the largest rank the chapter tries) -- forward and backward timed separately, scratchlm's
call and PyTorch's taking turns call by call (median of each). Beside the times:

    pointwise ops (norms, GELU, softmax, cross-entropy, AdamW, ...): the achieved GB/s, counting
        each array the op must read or write once, against np.copyto's GB/s over as many bytes
        (measured here, same size: the op's ceiling if it were memory-bound at that size);
    products (linear layers, the attention's batched products): the achieved GFLOP/s against
        NumPy's large float32 GEMM (1024^3), counting the whole product's flops (the attention's
        products by its weights skip the keys a query does not see, so their rate can exceed the
        GEMM's).

The last lines sum up: which pointwise ops stay below half of their copy bandwidth, each with the
best it could do if it were nothing but its exponentials (e^x alone over as many numbers, timed
here: an op that must evaluate that many exps cannot beat it), and how the attention's batched
products compare with torch.bmm.

scratchlm's rows call what a training step calls (scratchlm.autograd.functional, the attention op of
models/attention.py, the optimiser, the LSTM layer and its kernels, the LoRA layer); a backward row
runs the op's backward on a fixed output gradient: its closure, or for an op made of several Tensor
ops (the LSTM layer, LoRA) the walk loss.backward() makes over its graph. PyTorch's rows call the op
(torch.nn.functional; torch.bmm on contiguous copies for the attention's batched products, which
scratchlm multiplies as strided views of the packed q, k, v with models/attention_products.py: the scores
and dP by its scores_matmul (its kernel where OpenBLAS would use its small-matrix kernel, NumPy's matmul
elsewhere), the four products by the weights by visible_matmul) and, for a backward, the aten function
autograd would call (e.g. native_layer_norm_backward), or autograd itself where the op is several
aten calls (cross-entropy, attention). The attention softmax's PyTorch twin is torch.softmax of
already masked and scaled scores (less work than scratchlm's kernel, which masks and scales).

The LSTM's rows: the whole layer as the step runs it (models/rnn.py's LSTM: one input projection for
the window, then the fused time loop from a carried state) beside torch.nn.LSTM, which on a CPU runs
oneDNN's fused LSTM layer (PyTorch's CPU wheels are built with it); then the layer's parts, at one
step's shapes where the loop runs them T times per layer: the recurrent products (NumPy's matmul as
the loop calls it, beside torch's linear and mm) and the gate kernels of models/rnn_kernels.py,
whose PyTorch twin is the gate math of aten's own CPU cell (torch.lstm_cell) op by op -- sigmoid,
tanh, products -- and for the backward autograd over those ops. LoRA's rows: peft.LoRALinear's
forward, and a whole backward pass through its graph (W frozen: dX, dA, dB), beside the same
composition in PyTorch under autograd. `ops(...)` builds the rows; tests/test_bench_ops.py checks
that both sides of each row compute the same numbers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import gemm_gflops, machine, median_step_seconds, set_threads, torch_adamw, torch_parameters  # noqa: E402

if __name__ == "__main__":  # thread counts must be set before NumPy (and its BLAS) load
    set_threads(default=1)

import math  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # the table still times scratchlm alone
    torch = None

import scratchlm.autograd.functional as F  # noqa: E402
from scratchlm import numerics  # noqa: E402
from scratchlm.autograd import Tensor  # noqa: E402
from scratchlm.autograd import kernels as autograd_kernels  # noqa: E402
from scratchlm.models import attention  # noqa: E402
from scratchlm.models import attention_kernels  # noqa: E402
from scratchlm.models import attention_products  # noqa: E402
from scratchlm.optim import clip_grad_norm  # noqa: E402

F32 = np.float32
MODELS = ("gpt", "bert", "t5", "lstm", "lora")


class Op:
    """One row: `ours()` and `theirs()` compute the same thing (their results, arrays or tensors, are
    what the test compares); `work` is bytes moved (kind "GB/s") or flops (kind "GFLOP/s"); `exps`,
    how many e^x the op must evaluate (softmaxes, cross-entropy, GELU, the LSTM's gates), which bounds
    how close to the copy bandwidth it can come (`exp_floor_seconds`)."""

    def __init__(self, model: str, name: str, shape: str, kind: str, work: float, ours: Callable,
                 theirs: Callable | None = None, rtol: float = 1e-4, exps: int = 0):
        self.model, self.name, self.shape, self.kind, self.work = model, name, shape, kind, work
        self.ours, self.theirs, self.rtol, self.exps = ours, theirs, rtol, exps


def _t(a, grad: bool = False):
    """A torch tensor sharing nothing with the array (PyTorch's row must not write into ours)."""
    return torch.tensor(a, requires_grad=grad)


def _backward(out: Tensor, g: np.ndarray, *inputs: Tensor, whole_graph: bool = False):
    """A call of out's backward on g into fresh .grad arrays, returning the inputs' gradients: the node's
    own closure, or with whole_graph=True the walk loss.backward() makes through every node of out's
    graph (for an op made of several Tensor ops; `inputs` are then its leaves)."""
    step = out.backward if whole_graph else out._backward

    def run():
        for t in inputs:
            t.grad = None
        step(g)
        return [t.grad for t in inputs]
    return run


def _pair(model, name, shape, kind, forward_work, backward_work, ours_fwd, ours_out, g, ours_inputs,
          theirs_fwd=None, theirs_bwd=None, rtol=1e-4, whole_graph=False, exps=0):
    """The forward and backward rows of a Tensor op: ours_out is one output made by ours_fwd, whose
    backward (the node's closure, or with whole_graph the whole graph's) is timed on gradient g; `exps` are
    the forward's (every backward here reuses what its forward computed)."""
    rows = [Op(model, name, shape, kind, forward_work, ours_fwd, theirs_fwd, rtol, exps)]
    rows.append(Op(model, name + " backward", shape, kind, backward_work,
                   _backward(ours_out, g, *ours_inputs, whole_graph=whole_graph), theirs_bwd, rtol))
    return rows


# ---- the rows ---------------------------------------------------------------------------------

def _linear(model, name, N, n_in, n_out, rng, x_rows=None, bias: bool = False):
    """y = x W^T (+ b: the Transformers have no bias, the LSTM LM has); backward dX = G W, dW = G^T X
    (db = the column sums of G)."""
    X = rng.standard_normal((N, n_in)).astype(F32) if x_rows is None else x_rows
    W = (rng.standard_normal((n_out, n_in)) * 0.02).astype(F32)
    G = rng.standard_normal((N, n_out)).astype(F32)
    x, w = Tensor(X, requires_grad=True), Tensor(W, requires_grad=True)
    b = Tensor(rng.standard_normal(n_out).astype(F32), requires_grad=True) if bias else None
    inputs = (x, w) + ((b,) if bias else ())
    y = F.linear(x, w, b)
    flops = 2 * N * n_in * n_out
    shape = f"({N}, {n_in}) x ({n_out}, {n_in})^T" + (" + b" if bias else "")
    theirs_fwd = theirs_bwd = None
    if torch is not None:
        tX, tW, tG = _t(X), _t(W), _t(G)
        tb = _t(b.data) if bias else None
        theirs_fwd = lambda: TF.linear(tX, tW, tb)                  # noqa: E731
        theirs_bwd = lambda: (tG @ tW, tG.T @ tX) + ((tG.sum(0),) if bias else ())  # noqa: E731  autograd's
    return _pair(model, name, shape, "GFLOP/s", flops, 2 * flops, lambda: F.linear(x, w, b).data, y, G, inputs,
                 theirs_fwd, theirs_bwd, rtol=1e-3)


def _layer_norm(model, name, N, C, rng):
    X = rng.standard_normal((N, C)).astype(F32)
    Wt = (1 + 0.1 * rng.standard_normal(C)).astype(F32)
    G = rng.standard_normal((N, C)).astype(F32)
    x, w = Tensor(X, requires_grad=True), Tensor(Wt, requires_grad=True)
    y = F.layer_norm(x, w)
    theirs_fwd = theirs_bwd = None
    if torch is not None:
        tX, tW, tG = _t(X), _t(Wt), _t(G)
        _, mean, rstd = torch.ops.aten.native_layer_norm(tX, [C], tW, None, 1e-5)
        theirs_fwd = lambda: TF.layer_norm(tX, (C,), tW)            # noqa: E731
        theirs_bwd = lambda: torch.ops.aten.native_layer_norm_backward(  # noqa: E731
            tG, tX, [C], mean, rstd, tW, None, [True, True, False])[:2]
    return _pair(model, name, f"({N}, {C})", "GB/s", 2 * X.nbytes, 3 * X.nbytes,
                 lambda: F.layer_norm(x, w).data, y, G, (x, w), theirs_fwd, theirs_bwd, rtol=1e-3)


def _gelu(model, name, N, H, rng):
    X = rng.standard_normal((N, H)).astype(F32)
    G = rng.standard_normal((N, H)).astype(F32)
    x = Tensor(X, requires_grad=True)
    y = F.gelu(x, "tanh")
    theirs_fwd = theirs_bwd = None
    if torch is not None:
        tX, tG = _t(X), _t(G)
        theirs_fwd = lambda: TF.gelu(tX, approximate="tanh")        # noqa: E731
        theirs_bwd = lambda: torch.ops.aten.gelu_backward(tG, tX, approximate="tanh")  # noqa: E731
    # the training forward (x requires grad) writes the gate y / x beside y, for its backward: 3 arrays;
    # PyTorch's forward writes y alone (its backward computes the gate again)
    return _pair(model, name, f"({N}, {H})", "GB/s", 3 * X.nbytes, 3 * X.nbytes,
                 lambda: F.gelu(x, "tanh").data, y, G, (x,), theirs_fwd, theirs_bwd, exps=X.size)


def _residual_add(model, N, C, rng):
    A, B = (rng.standard_normal((N, C)).astype(F32) for _ in range(2))
    a, b = Tensor(A, requires_grad=True), Tensor(B, requires_grad=True)
    theirs = None
    if torch is not None:
        tA, tB = _t(A), _t(B)
        theirs = lambda: tA + tB                                    # noqa: E731
    return [Op(model, "residual add x + f(x)", f"({N}, {C})", "GB/s", 3 * A.nbytes, lambda: (a + b).data, theirs)]


def _embedding(model, name, B, T, V, C, rng):
    ids = rng.integers(0, V, (B, T))
    Wt = rng.standard_normal((V, C)).astype(F32)
    G = rng.standard_normal((B, T, C)).astype(F32)
    w = Tensor(Wt, requires_grad=True)
    y = F.embedding(ids, w)
    theirs_fwd = theirs_bwd = None
    if torch is not None:
        tids, tW, tG = torch.from_numpy(ids), _t(Wt), _t(G)
        theirs_fwd = lambda: TF.embedding(tids, tW)                 # noqa: E731
        theirs_bwd = lambda: torch.ops.aten.embedding_dense_backward(tG, tids, V, -1, False)  # noqa: E731
    return _pair(model, name, f"({B}, {T}) of ({V}, {C})", "GB/s", 2 * G.nbytes, G.nbytes + 2 * Wt.nbytes,
                 lambda: F.embedding(ids, w).data, y, G, (w,), theirs_fwd, theirs_bwd)


def _cross_entropy(model, name, N, V, rng, kept: float = 1.0):
    """Forward and backward in one row: the training path writes the gradient in the forward's pass."""
    X = rng.standard_normal((N, V)).astype(F32)
    t = rng.integers(0, V, N)
    t = np.where(rng.random(N) < kept, t, -1)
    x = Tensor(X, requires_grad=True)

    def ours():
        x.grad = None
        F.cross_entropy(x, t, ignore_index=-1).backward()
        return x.grad
    theirs = None
    if torch is not None:
        tX, tt = _t(X, grad=True), torch.from_numpy(t)

        def theirs():
            return torch.autograd.grad(TF.cross_entropy(tX, tt, ignore_index=-1), tX)[0]
    return [Op(model, name, f"({N}, {V})" + (f", {kept:.0%} kept" if kept < 1 else ""), "GB/s", 2 * X.nbytes,
               ours, theirs, exps=X.size)]


def _attention(model, name, B, nh, Tq, Tk, hs, causal, lengths, rng, cross: bool = False):
    """The whole attention op (scores, softmax, weighted values; its backward), then its parts: the
    batched products on the views the op uses, and the softmax kernel."""
    C = nh * hs
    lengths = None if lengths is None else np.asarray(lengths)
    G = rng.standard_normal((B, Tq, C)).astype(F32)
    if cross:
        Q = rng.standard_normal((B, Tq, C)).astype(F32)
        KV = rng.standard_normal((B, Tk, 2 * C)).astype(F32)
        q, kv = Tensor(Q, requires_grad=True), Tensor(KV, requires_grad=True)
        op = lambda: attention.cross_attention(q, kv, nh, lengths)  # noqa: E731
        inputs = (q, kv)
        qh = Q.reshape(B, Tq, nh, hs).transpose(0, 2, 1, 3)
        kh, vh = KV.reshape(B, Tk, 2, nh, hs).transpose(2, 0, 3, 1, 4)
    else:
        QKV = rng.standard_normal((B, Tq, 3 * C)).astype(F32)
        qkv = Tensor(QKV, requires_grad=True)
        op = lambda: attention.self_attention(qkv, nh, causal, lengths)  # noqa: E731
        inputs = (qkv,)
        qh, kh, vh = QKV.reshape(B, Tq, 3, nh, hs).transpose(2, 0, 3, 1, 4)
    y = op()
    N = B * nh
    scale = F32(1 / math.sqrt(hs))
    key_lengths = np.repeat(lengths if lengths is not None else np.full(B, Tk), nh).astype(np.int64)
    # the op's own intermediates, for the parts
    scores = qh @ kh.swapaxes(-1, -2)
    P = np.empty_like(scores)
    attention_kernels.attention_softmax_forward(scores.reshape(N, Tq, Tk), scale, causal, key_lengths,
                                                P.reshape(N, Tq, Tk))
    dY = G.reshape(B, Tq, nh, hs).transpose(0, 2, 1, 3)
    dP = dY @ vh.swapaxes(-1, -2)
    dS = np.empty_like(dP)
    attention_kernels.attention_softmax_backward(P.reshape(N, Tq, Tk), dP.reshape(N, Tq, Tk), scale, causal,
                                                 key_lengths, dS.reshape(N, Tq, Tk))
    mask = attention_kernels.attention_mask(Tq, Tk, causal, key_lengths).reshape(B, nh, Tq, Tk)
    kind = "causal" if causal else "bidirectional"
    kind = "cross" if cross else kind
    pad = "" if lengths is None else ", padded"
    shape = f"{N} x ({Tq}, {Tk}), hs {hs}"
    rows = []
    th = {}
    if torch is not None:
        th = {k: _t(np.ascontiguousarray(a)) for k, a in dict(q=qh, k=kh, v=vh, P=P, dY=dY, dS=dS).items()}

        def bmm(a, b):                      # torch.bmm over the B * nh matrices, back to (B, nh, ., .)
            return torch.bmm(a.flatten(0, 1), b.flatten(0, 1)).unflatten(0, (B, nh))
        tmask = torch.tensor(mask)
        tq, tk, tv = (_t(np.ascontiguousarray(a), grad=True) for a in (qh, kh, vh))
        sdpa = (lambda: TF.scaled_dot_product_attention(tq, tk, tv, is_causal=True)) if causal and lengths is None \
            else (lambda: TF.scaled_dot_product_attention(tq, tk, tv, attn_mask=tmask))
        ty = sdpa()
        tdy = _t(np.ascontiguousarray(dY))                              # (B, nh, Tq, hs)
        z = np.where(mask, scores * scale, -np.inf).astype(F32)
        tz, tP, tdP = _t(z), _t(P), _t(dP * scale)

        def theirs_backward():              # autograd's dq, dk, dv, laid out as our op's input gradients
            dq, dk, dv = (d.transpose(1, 2) for d in torch.autograd.grad(ty, (tq, tk, tv), tdy, retain_graph=True))
            if cross:
                return dq.reshape(B, Tq, C), torch.stack([dk, dv], 2).reshape(B, Tk, 2 * C)
            return torch.stack([dq, dk, dv], 2).reshape(B, Tq, 3 * C)
    flops = 4 * N * Tq * Tk * hs
    rows += _pair(model, f"{kind} attention op{pad}", f"{N} heads, T {Tq}x{Tk}, hs {hs}", "GFLOP/s", flops,
                  2 * flops, lambda: op().data, y, G, inputs,
                  (lambda: sdpa().transpose(1, 2).reshape(B, Tq, C)) if torch is not None else None,
                  theirs_backward if torch is not None else None, rtol=1e-3)
    # ours: what the op calls on the views it multiplies -- attention_products.py's scores_matmul for the
    # scores and dP, its kernel over the visible keys for the other four; PyTorch's: torch.bmm on
    # contiguous copies (transposes as views)
    def visible(a, b, transposed=False):
        return lambda: attention_products.visible_matmul(a, b, causal, key_lengths, transposed)
    products = [("scores S = Q K^T", lambda: attention_products.scores_matmul(qh, kh),
                 lambda: bmm(th["q"], th["k"].transpose(-1, -2))),
                ("values Y = P V", visible(P, vh), lambda: bmm(th["P"], th["v"])),
                ("backward dP = dY V^T", lambda: attention_products.scores_matmul(dY, vh),
                 lambda: bmm(th["dY"], th["v"].transpose(-1, -2))),
                ("backward dV = P^T dY", visible(P.swapaxes(-1, -2), dY, True),
                 lambda: bmm(th["P"].transpose(-1, -2), th["dY"])),
                ("backward dQ = dS K", visible(dS, kh), lambda: bmm(th["dS"], th["k"])),
                ("backward dK = dS^T Q", visible(dS.swapaxes(-1, -2), qh, True),
                 lambda: bmm(th["dS"].transpose(-1, -2), th["q"]))]
    for what, ours, theirs in products:
        rows.append(Op(model, f"{kind} attention {what}", shape, "GFLOP/s", 2 * N * Tq * Tk * hs, ours,
                       theirs if torch is not None else None, rtol=1e-3))
    out = np.empty_like(P)
    rows.append(Op(model, f"{kind} attention softmax{pad}", f"{N} x ({Tq}, {Tk})", "GB/s", 2 * P.nbytes,
                   lambda: _call(attention_kernels.attention_softmax_forward, scores.reshape(N, Tq, Tk), scale,
                                 causal, key_lengths, out.reshape(N, Tq, Tk), result=out),
                   (lambda: torch.softmax(tz, -1)) if torch is not None else None, exps=int(mask.sum())))
    dout = np.empty_like(P)
    rows.append(Op(model, f"{kind} attention softmax{pad} backward", f"{N} x ({Tq}, {Tk})", "GB/s", 3 * P.nbytes,
                   lambda: _call(attention_kernels.attention_softmax_backward, P.reshape(N, Tq, Tk),
                                 dP.reshape(N, Tq, Tk), scale, causal, key_lengths, dout.reshape(N, Tq, Tk),
                                 result=dout),
                   (lambda: torch.ops.aten._softmax_backward_data(tdP, tP, -1, torch.float32))
                   if torch is not None else None))
    return rows


def _call(kernel, *args, result):
    kernel(*args)
    return result


def _optimiser(model_name, model, rng):
    """AdamW's step and clip_grad_norm over every parameter of `model` (gradients of norm 2, clipped to 1)."""
    from scratchlm.train import configure_optimizer, decayed_parameter_names

    params = model.parameters()
    grads = [rng.standard_normal(p.data.shape).astype(F32) for p in params]
    norm = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads))
    for p, g in zip(params, grads):
        p.grad = g * F32(2 / norm)
    optimizer = configure_optimizer(model, lr=1e-3, weight_decay=0.1, betas=(0.9, 0.99))
    n = sum(p.data.size for p in params)
    theirs_adam = theirs_clip = None
    if torch is not None:
        tparams = torch_parameters(model)
        for t, p in zip(tparams.values(), params):
            t.grad = torch.tensor(p.grad)
        topt = torch_adamw(tparams, decayed_parameter_names(model), 1e-3, weight_decay=0.1)

        def theirs_adam():
            topt.step()
            return [t.detach() for t in tparams.values()]

        def theirs_clip():
            return torch.nn.utils.clip_grad_norm_(list(tparams.values()), 1.0)

    def ours_adam():
        optimizer.step()
        return [p.data for p in params]
    shape = f"{len(params)} arrays, {n:,} numbers"
    return [Op(model_name, "clip_grad_norm", shape, "GB/s", 3 * 4 * n,
               lambda: np.float32(clip_grad_norm(params, 1.0)), theirs_clip, rtol=1e-4),
            Op(model_name, "AdamW step", shape, "GB/s", 7 * 4 * n, ours_adam, theirs_adam, rtol=1e-4)]


def _lstm_layer(model, B, T, E, H, rng):
    """One LSTM layer of the LM as its training step runs it (project every step's input, then the
    fused time loop, from a carried state), forward and backward beside torch.nn.LSTM; then its parts
    at one step's shapes: the recurrent products and the gate kernels."""
    from scratchlm.models import rnn_kernels
    from scratchlm.models.rnn import LSTM

    G4 = 4 * H
    layer = LSTM(E, H, 1)
    X = rng.standard_normal((B, T, E)).astype(F32)
    state = [(0.5 * rng.standard_normal((1, B, H))).astype(F32) for _ in range(2)]      # carried from a window
    G = rng.standard_normal((B, T, H)).astype(F32)
    x = Tensor(X, requires_grad=True)
    y = layer(x, state)[0]
    params = layer.parameters()                           # weight_ih, weight_hh, bias_ih, bias_hh: torch's order
    theirs_fwd = theirs_bwd = None
    if torch is not None:
        tlayer = torch.nn.LSTM(E, H, 1, batch_first=True)
        with torch.no_grad():
            for t, p in zip(tlayer.parameters(), params):
                t.copy_(torch.from_numpy(p.data))
        tX, tG = _t(X, grad=True), _t(G)
        tstate = tuple(_t(s) for s in state)
        ty = tlayer(tX, tstate)[0]
        theirs_fwd = lambda: tlayer(tX, tstate)[0]                                       # noqa: E731
        theirs_bwd = lambda: torch.autograd.grad(ty, (tX, *tlayer.parameters()), tG, retain_graph=True)  # noqa: E731
    flops = 2 * B * T * (E + H) * G4                      # x W_ih^T over the window, h W_hh^T at every step
    rows = _pair(model, "LSTM layer (project + time loop)", f"batch {B}, T {T}, {E} -> {H}", "GFLOP/s", flops,
                 2 * flops, lambda: layer(x, state)[0].data, y, G, (x, *params), theirs_fwd, theirs_bwd,
                 rtol=1e-3, whole_graph=True)

    # one step's arrays, as the time loop holds them (rnn._recurrence)
    W = layer.weight_hh_l0.data
    Wt = np.ascontiguousarray(W.T)
    h, c_prev = (rng.standard_normal((B, H)).astype(F32) for _ in range(2))
    xp = rng.standard_normal((B, G4)).astype(F32)
    hh = h @ Wt
    gates, c, tanh_c, h_new = np.empty((B, G4), F32), *(np.empty((B, H), F32) for _ in range(3))
    dh_out, dh_next, dc_out, dc_next = (rng.standard_normal((B, H)).astype(F32) for _ in range(4))
    dgates, dc_prev, dh_prev = np.empty((B, G4), F32), np.empty((B, H), F32), np.empty((B, H), F32)
    rnn_kernels.lstm_cell_forward(xp, hh, c_prev, gates, c, tanh_c, h_new)
    rnn_kernels.lstm_cell_backward(gates, c_prev, tanh_c, dh_out, dh_next, dc_out, dc_next, dgates, dc_prev)
    Da = rng.standard_normal((T * B, G4)).astype(F32)     # the window's da_t and h_{t-1}, for dW_hh
    Hs = rng.standard_normal((T * B, H)).astype(F32)
    th = {}
    if torch is not None:
        th = {k: _t(a) for k, a in dict(W=W, h=h, dgates=dgates, Da=Da, Hs=Hs, xp=xp, hh=hh, c_prev=c_prev,
                                         dh_out=dh_out, dh_next=dh_next, dc_out=dc_out, dc_next=dc_next).items()}

        def torch_cell(a, cp):                # the gate math of aten's CPU LSTM cell, op by op
            i, f, g, o = a.chunk(4, 1)
            i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
            c = f * cp + i * g
            tc = c.tanh()
            return i, f, g, o, c, tc, o * tc

        ta, tcp = _t(xp + hh, grad=True), _t(c_prev, grad=True)
        *_, tc_out, _, th_out = torch_cell(ta, tcp)
    step = f"({B}, {H}) x ({G4}, {H})^T"
    rows += [Op(model, "LSTM step: recurrent product h W_hh^T", step, "GFLOP/s", 2 * B * H * G4,
                lambda: np.matmul(h, Wt, out=hh), (lambda: TF.linear(th["h"], th["W"])) if th else None, rtol=1e-3),
             Op(model, "LSTM step backward: dh_{t-1} = da_t W_hh", f"({B}, {G4}) x ({G4}, {H})", "GFLOP/s",
                2 * B * H * G4, lambda: np.matmul(dgates, W, out=dh_prev),
                (lambda: th["dgates"] @ th["W"]) if th else None, rtol=1e-3),
             Op(model, "LSTM backward: dW_hh = sum_t da_t^T h_{t-1}", f"({T * B}, {G4})^T x ({T * B}, {H})",
                "GFLOP/s", 2 * T * B * G4 * H, lambda: Da.T @ Hs, (lambda: th["Da"].T @ th["Hs"]) if th else None,
                rtol=1e-3)]
    # the gate kernels: every array read or written once
    fwd_bytes = (2 * G4 + H + G4 + 3 * H) * B * 4         # xp, hh, c_prev in; gates, c, tanh(c), h out
    bwd_bytes = (G4 + 6 * H + G4 + H) * B * 4             # gates, c_prev, tanh(c), 4 gradients in; dgates, dc out
    forward_outputs = [*np.split(gates, 4, axis=1), c, tanh_c, h_new]      # i, f, g, o: views of gates
    rows += [Op(model, "LSTM step: gates, lstm_cell_forward", f"({B}, {G4}) -> 4 x ({B}, {H})", "GB/s",
                fwd_bytes, lambda: _call(rnn_kernels.lstm_cell_forward, xp, hh, c_prev, gates, c, tanh_c,
                                         h_new, result=forward_outputs),
                (lambda: torch_cell(th["xp"] + th["hh"], th["c_prev"])) if th else None,
                exps=5 * B * H),                                  # 3 sigmoids, 2 tanh: an exp each
             Op(model, "LSTM step backward: gates, lstm_cell_backward", f"7 x ({B}, {H}) -> ({B}, {G4})",
                "GB/s", bwd_bytes, lambda: _call(rnn_kernels.lstm_cell_backward, gates, c_prev, tanh_c, dh_out,
                                                 dh_next, dc_out, dc_next, dgates, dc_prev, result=[dgates, dc_prev]),
                (lambda: torch.autograd.grad((th_out, tc_out), (ta, tcp), (th["dh_out"] + th["dh_next"],
                                                                          th["dc_out"] + th["dc_next"]),
                                             retain_graph=True)) if th else None)]
    return rows


def _lora(model, name, N, n_in, n_out, r, rng, rows=None):
    """A frozen Linear with LoRA's update, y = x W^T + s (x A^T) B^T (peft.LoRALinear, alpha = 2r as
    Chapter 10), forward and backward (dX, dA, dB; W is frozen) beside the same composition in
    PyTorch. `rows`: the blocks of output rows B adapts (None: all)."""
    from scratchlm.nn import Linear
    from scratchlm.peft import LoRALinear

    layer = LoRALinear(Linear(n_in, n_out, bias=False, rng=rng), r, 2 * r, rows, rng=rng)
    layer.lora_B.data[...] = rng.standard_normal(layer.lora_B.shape) * 0.02   # trained away from B = 0
    X = rng.standard_normal((N, n_in)).astype(F32)
    G = rng.standard_normal((N, n_out)).astype(F32)
    x = Tensor(X, requires_grad=True)
    y = layer(x)
    theirs_fwd = theirs_bwd = None
    if torch is not None:
        tX, tW, tG = _t(X, grad=True), _t(layer.weight.data), _t(G)
        tA, tB = _t(layer.lora_A.data, grad=True), _t(layer.lora_B.data, grad=True)
        adapted = None if rows is None else torch.cat([torch.arange(start, stop) for start, stop in rows])

        def theirs_fwd():
            B_full = tB if rows is None else torch.zeros(n_out, r).index_copy(0, adapted, tB)
            return TF.linear(tX, tW) + TF.linear(TF.linear(tX, tA) * layer.scaling, B_full)
        ty = theirs_fwd()
        theirs_bwd = lambda: torch.autograd.grad(ty, (tX, tA, tB), tG, retain_graph=True)  # noqa: E731
    # products: x W^T, x A^T, h B^T; backward G W, G B, dh A, dh^T x, G^T h (B over all n_out rows)
    forward_flops = 2 * N * (n_in * n_out + n_in * r + r * n_out)
    backward_flops = 2 * N * (n_out * n_in + 2 * n_out * r + 2 * r * n_in)
    where = "" if rows is None else " (q, v rows)"
    return _pair(model, f"LoRA linear {name}{where}, r={r}", f"({N}, {n_in}) x ({n_out}, {n_in})^T",
                 "GFLOP/s", forward_flops, backward_flops, lambda: layer(x).data, y, G, (x, layer.lora_A,
                                                                                       layer.lora_B),
                 theirs_fwd, theirs_bwd, rtol=1e-3, whole_graph=True)


def ops(models=MODELS, seed: int = 0) -> list[Op]:
    """Every row of the table for `models` (a subset of MODELS), with random inputs from `seed`."""
    from scratchlm.models.bert import BERT, BERTConfig
    from scratchlm.models.gpt import GPT, GPTConfig
    from scratchlm.rng import manual_seed

    rng = np.random.default_rng(seed)
    manual_seed(seed)
    rows = []
    if "gpt" in models:
        c = GPTConfig()
        B, T, C, nh, V = 12, c.block_size, c.n_embd, c.n_head, c.vocab_size
        N = B * T
        rows += _embedding("gpt", "embedding wte", B, T, V, C, rng)
        rows += _residual_add("gpt", N, C, rng)
        rows += _layer_norm("gpt", "layer_norm", N, C, rng)
        rows += _linear("gpt", "linear attn.c_attn", N, C, 3 * C, rng)
        rows += _attention("gpt", "attention", B, nh, T, T, C // nh, True, None, rng)
        rows += _linear("gpt", "linear attn.c_proj", N, C, C, rng)
        rows += _linear("gpt", "linear mlp.c_fc", N, C, 4 * C, rng)
        rows += _gelu("gpt", "gelu (tanh)", N, 4 * C, rng)
        rows += _linear("gpt", "linear mlp.c_proj", N, 4 * C, C, rng)
        rows += _linear("gpt", "linear lm_head (tied)", N, C, V, rng)
        rows += _cross_entropy("gpt", "cross_entropy + backward", N, V, rng)
        rows += _optimiser("gpt", GPT(c), rng)
    if "bert" in models:
        B, T, C, nh, V = 16, 64, 128, 4, 10_000
        lengths = rng.integers(T // 2, T + 1, B)
        rows += _embedding("bert", "embedding wte", B, T, V, C, rng)
        rows += _attention("bert", "attention", B, nh, T, T, C // nh, False, lengths, rng)
        rows += _linear("bert", "linear head (tied), every position", B * T, C, V, rng)
        rows += _cross_entropy("bert", "cross_entropy + backward", B * T, V, rng, kept=0.15)
        n = int(0.15 * B * T)
        rows += _linear("bert", "linear head (tied), targets only", n, C, V, rng)
        rows += _cross_entropy("bert", "cross_entropy + backward, targets", n, V, rng)
        rows += _optimiser("bert", BERT(BERTConfig(vocab_size=V, block_size=T, n_layer=4, n_head=nh, n_embd=C)), rng)
    if "t5" in models:
        B, S, T, C, nh, V = 16, 64, 16, 128, 4, 10_000
        lengths = rng.integers(S // 2, S + 1, B)
        rows += _attention("t5", "attention", B, nh, T, T, C // nh, True, None, rng)
        rows += _attention("t5", "attention", B, nh, T, S, C // nh, False, lengths, rng, cross=True)
        rows += _linear("t5", "linear cross_attn.c_kv", B * S, C, 2 * C, rng)
        rows += _linear("t5", "linear head (tied)", B * T, C, V, rng)
        rows += _cross_entropy("t5", "cross_entropy + backward", B * T, V, rng)
    if "lstm" in models:            # Chapter 8: Zaremba's small LSTM on PTB, batch 20 x 20 steps, 2 x 200
        B, T, E, H, V = 20, 20, 200, 200, 10_000
        rows += _embedding("lstm", "embedding wte", B, T, V, E, rng)
        rows += _linear("lstm", "linear rnn.weight_ih + biases (project)", B * T, E, 4 * H, rng, bias=True)
        rows += _lstm_layer("lstm", B, T, E, H, rng)
        rows += _linear("lstm", "linear head", B * T, H, V, rng, bias=True)
        rows += _cross_entropy("lstm", "cross_entropy + backward", B * T, V, rng)
    if "lora" in models:            # Chapter 10: the 2 x 128 GPT fine-tuned on 32 messages of 64 tokens
        N, C = 32 * 64, 128
        rows += _lora("lora", "attn.c_attn", N, C, 3 * C, 4, rng, rows=((0, C), (2 * C, 3 * C)))
        for name, n_in, n_out in (("attn.c_attn", C, 3 * C), ("attn.c_proj", C, C), ("mlp.c_fc", C, 4 * C),
                                  ("mlp.c_proj", 4 * C, C)):
            rows += _lora("lora", name, N, n_in, n_out, 16, rng)
    return rows


# ---- timing -----------------------------------------------------------------------------------

_COPY: dict = {}


def copy_gbs(nbytes: int, seconds: float) -> float:
    """np.copyto's GB/s moving `nbytes` in all (nbytes / 2 read, nbytes / 2 written), measured once per size."""
    n = max(nbytes // 8, 1)                       # float32 elements of each of the two arrays
    if n not in _COPY:
        src, dst = np.ones(n, F32), np.empty(n, F32)
        t = median_step_seconds({"copy": lambda i: np.copyto(dst, src)}, _repeats(lambda: np.copyto(dst, src),
                                                                                   seconds))["copy"]
        _COPY[n] = 8 * n / t / 1e9
    return _COPY[n]


def _repeats(fn, seconds: float) -> int:
    t0 = time.perf_counter()
    fn()
    return int(min(500, max(3, seconds / max(time.perf_counter() - t0, 1e-7))))


@njit(cache=True, error_model="numpy")
def _exps(x, out):
    for i in range(x.shape[0]):
        out[i] = numerics.exp(x[i])


def exp_floor_seconds(n: int, seconds: float) -> float:
    """Seconds for e^x alone over n float32 numbers <= 0 (numerics.exp, the kernels' own, read from one
    array and written to another): the least time any op that evaluates n exps can take. Over an
    op's bytes it gives the fraction of the copy bandwidth that op can reach at best."""
    x = -np.abs(np.random.default_rng(0).standard_normal(n)).astype(F32)
    out = np.empty_like(x)
    return median_step_seconds({"exp": lambda i: _exps(x, out)}, _repeats(lambda: _exps(x, out), seconds))["exp"]


def time_op(op: Op, seconds: float) -> dict:
    """{"scratchlm": s, "torch": s or None}: median seconds per call, the two taking turns."""
    steps = {"scratchlm": lambda i: op.ours()}
    if op.theirs is not None:
        steps["torch"] = lambda i: op.theirs()
    for fn in steps.values():                  # compile, and let both allocators settle
        fn(0)
    result = median_step_seconds(steps, _repeats(op.ours, seconds), warmup=2)
    return {"scratchlm": result["scratchlm"], "torch": result.get("torch")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {','.join(MODELS)}")
    parser.add_argument("--seconds", type=float, default=0.2, help="about how long each row is timed")
    parser.add_argument("--parallel-min-size", type=int, default=autograd_kernels.PARALLEL_MIN_SIZE,
                        help="elements from which the autograd kernels use all --threads (kernels.PARALLEL_MIN_SIZE; "
                             "0: always), to measure where a second thread pays")
    args = parser.parse_args()
    autograd_kernels.PARALLEL_MIN_SIZE = args.parallel_min_size
    models = args.models.split(",")
    if not set(models) <= set(MODELS):
        parser.error(f"--models: choose from {','.join(MODELS)}, got {args.models!r}")
    if torch is not None:
        torch.set_num_threads(args.threads)
    peak = gemm_gflops()
    print(f"ops of a training step, float32, {args.threads} thread(s) (scratchlm's autograd kernels from "
          f"{args.parallel_min_size:,} elements); median of each op's calls, scratchlm and "
          f"PyTorch {torch.__version__ if torch is not None else '(not installed)'} taking turns")
    print(f"machine: {machine()}")
    print(f"ceilings: NumPy GEMM 1024^3 {peak:.0f} GFLOP/s for products; np.copyto's GB/s over each pointwise "
          f"row's bytes (column 'ceiling'); '% ours' = scratchlm's rate / ceiling")
    head = (f"{'model':<5} {'op':<50} {'shape':<34} {'ours us':>9} {'torch us':>9} {'ratio':>6} "
            f"{'ours':>7} {'torch':>7} {'ceiling':>10} {'% ours':>6}")
    print(head)
    print("-" * len(head))
    slow_pointwise, products = [], []
    for op in ops(models):
        t = time_op(op, args.seconds)
        ours, theirs = t["scratchlm"], t["torch"]
        rate = op.work / ours / 1e9
        ceiling = copy_gbs(op.work, args.seconds) if op.kind == "GB/s" else peak
        cols = (f"{theirs * 1e6:9.1f} {ours / theirs:6.2f}" if theirs else f"{'':>9} {'':>6}")
        their_rate = f"{op.work / theirs / 1e9:7.1f}" if theirs else f"{'':>7}"
        unit = "GB/s" if op.kind == "GB/s" else "GF/s"
        print(f"{op.model:<5} {op.name:<50} {op.shape:<34} {ours * 1e6:9.1f} {cols} {rate:7.1f} {their_rate} "
              f"{ceiling:5.0f} {unit:<4} {100 * rate / ceiling:5.0f}%")
        if op.kind == "GB/s" and rate < 0.5 * ceiling:
            floor = (f"; e^x alone {100 * op.work / exp_floor_seconds(op.exps, args.seconds) / 1e9 / ceiling:.0f}%"
                     if op.exps else "")
            slow_pointwise.append(f"{op.model} {op.name} ({100 * rate / ceiling:.0f}%{floor})")
        if " attention " in op.name and " = " in op.name and theirs:
            products.append((ours / theirs, f"{op.model} {op.name}"))
    print(f"pointwise ops below 50% of the copy bandwidth (in brackets: the op's own, and that of e^x alone on one "
          f"thread over as many numbers as the op takes exps, over the op's bytes): {', '.join(slow_pointwise) or 'none'}")
    if products:
        worst = max(products)
        print(f"attention batched products, scratchlm / torch.bmm: worst {worst[0]:.2f} ({worst[1]}), "
              f"{sum(r <= 1 for r, _ in products)} of {len(products)} no slower")

if __name__ == "__main__":
    main()
