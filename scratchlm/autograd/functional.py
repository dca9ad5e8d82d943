"""Fused functions on Tensors: softmax, cross-entropy, layer norm, GELU, embedding, ... Chapter 3.

Each could be written as a chain of Tensor ops (try it, then compare with gradcheck); here each is one
node in the graph, with its forward and backward in a Numba kernel (kernels.py), because the
chain would keep every intermediate array alive and walk memory once per op. Import as F:

    import scratchlm.autograd.functional as F
    loss = F.cross_entropy(logits, targets)        # logits (N, V), targets (N,) ints

Functions accept Tensors or arrays (an array is a constant: no gradient flows to it).

    softmax(x, axis)           p = e^(x - logsumexp(x))
    log_softmax(x, axis)       x - logsumexp(x)
    cross_entropy(z, t)        mean_i (logsumexp(z_i) - z[i, t_i]); gradient (softmax(z) - onehot(t)) / n
    linear(x, W, b)            x W^T + b, W (out, in) as in nn.Linear; dW computed in W's own layout
    gelu(x, approximate)       x Phi(x), or with Phi's tanh approximation
    layer_norm(x, w, b, eps)   (x - mean) / sqrt(var + eps) * w + b over the last axis
    embedding(ids, W)          W[ids]; gradient scatter-added into the rows of W
    dropout(x, p)              x * mask / (1 - p), mask ~ Bernoulli(1 - p) (inverted dropout)
    rms_norm(x, w, eps)        x / sqrt(mean(x^2) + eps) * w over the last axis          (Chapter 9)
    swiglu(x)                  silu(a) * b, [a, b] = the two halves of x's last axis     (Chapter 9)
    rope(x, cos, sin)          rotary position embedding of x (..., T, D), rotate-half    (Chapter 9)
    rope_tables(T, D, base)    the (cos, sin) tables rope() takes, (T, D/2) each          (Chapter 9)
    where, masked_fill, concatenate, stack
"""

from __future__ import annotations

import numpy as np

from scratchlm.autograd import kernels
from scratchlm.autograd.tensor import Tensor, is_grad_enabled
from scratchlm.rng import get_rng

_NO_IGNORE = np.iinfo(np.int64).min    # an ignore_index no target can equal


def _tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _floating(x: Tensor, name: str) -> Tensor:
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name} needs a floating-point tensor, got dtype {x.dtype}")
    return x


def _ints(ids, name: str) -> np.ndarray:
    ids = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"{name} must be integers, got dtype {ids.dtype}")
    return ids.astype(np.int64, copy=False)


def _check_range(ids: np.ndarray, n: int, name: str, what: str, ignore: int = _NO_IGNORE):
    """Every id in [0, n) (or equal to `ignore`), else an error naming the first bad one and where."""
    bad = ((ids < 0) | (ids >= n)) & (ids != ignore)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise IndexError(f"{name}: {what} {ids[where]} at position {where} is outside [0, {n})")


def _rows(a: np.ndarray) -> np.ndarray:
    """A C-contiguous (rows, last axis) view or copy, as the kernels want it."""
    return np.ascontiguousarray(a).reshape(-1, a.shape[-1])


# ---- softmax family ----------------------------------------------------------------------------

def _rowwise(x: Tensor, axis: int, forward, backward, op: str) -> Tensor:
    """Apply a row kernel pair along `axis`: move it last, run the kernel on rows, move it back."""
    _floating(x, op)
    xs = np.moveaxis(x.data, axis, -1)                  # (..., V)
    y = np.empty(xs.shape, x.dtype)
    forward(_rows(xs), y.reshape(-1, xs.shape[-1]))

    def grad_fn(g):
        dx = np.empty(xs.shape, x.dtype)
        backward(y.reshape(-1, xs.shape[-1]), _rows(np.moveaxis(g, axis, -1)), dx.reshape(-1, xs.shape[-1]))
        x._accumulate(np.moveaxis(dx, -1, axis), owned=True)
    return Tensor._make(np.moveaxis(y, -1, axis), (x,), grad_fn, op)


def softmax(x, axis: int = -1) -> Tensor:
    """e^x / sum(e^x) along `axis`, computed as e^(x - logsumexp(x)) so it never overflows."""
    return _rowwise(_tensor(x), axis, kernels.softmax_forward, kernels.softmax_backward, "softmax")


def log_softmax(x, axis: int = -1) -> Tensor:
    """x - logsumexp(x) along `axis` (the log of softmax, without computing softmax's tiny values)."""
    return _rowwise(_tensor(x), axis, kernels.log_softmax_forward, kernels.log_softmax_backward,
                    "log_softmax")


def cross_entropy(logits, targets, ignore_index: int | None = None, reduction: str = "mean") -> Tensor:
    """-log softmax(logits)[target] per row, in nats; reduced by "mean" (over non-ignored rows), "sum"
    or "none" (one loss per row). logits (N, V) floats, targets (N,) ints in [0, V) or ignore_index.
    """
    logits = _floating(_tensor(logits), "cross_entropy")
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must be (N, V), got shape {logits.shape}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    N, V = logits.shape
    t = np.ascontiguousarray(_ints(targets, "cross_entropy targets"))
    if t.shape != (N,):
        raise ValueError(f"cross_entropy: targets must have shape ({N},) to match logits {logits.shape}, "
                         f"got {t.shape}")
    ignore = _NO_IGNORE if ignore_index is None else int(ignore_index)
    _check_range(t, V, "cross_entropy", "target", ignore)

    x = np.ascontiguousarray(logits.data)
    n = N if ignore_index is None else int(np.count_nonzero(t != ignore))
    if n == 0 and reduction == "mean":
        what = (f"all {N} targets are ignore_index={ignore_index}" if N else "there are no targets (N = 0)")
        raise ValueError(f"cross_entropy: {what}, so the mean loss over them is undefined (it would be "
                         f"nan); check the targets (padding only?), or use reduction='sum'")
    weight = 1.0 / n if reduction == "mean" else 1.0   # dL/dloss_i
    loss, row_max, log_sum = np.empty(N, x.dtype), np.empty(N, x.dtype), np.empty(N, x.dtype)
    dx = None
    if logits.requires_grad and is_grad_enabled():  # training: write the gradient in the same pass
        dx = np.empty_like(x)
        kernels.cross_entropy_forward_backward(x, t, ignore, np.full(N, weight, x.dtype), loss, row_max,
                                               log_sum, dx)
    else:
        kernels.cross_entropy_forward(x, t, ignore, loss, row_max, log_sum)
    if reduction == "none":
        out = loss
    elif reduction == "sum":
        out = loss.sum(dtype=np.float64)
    else:
        out = loss.sum(dtype=np.float64) / n

    def backward(g):               # dL/dlogits_i = (softmax_i - onehot_i) * weight * g_i
        nonlocal dx
        if dx is None:             # not written by the forward, or already handed out: recompute
            grad = np.empty_like(x)
            scale = np.ascontiguousarray(np.broadcast_to(g * weight, (N,)), dtype=x.dtype)
            kernels.cross_entropy_backward(x, t, row_max, log_sum, scale, ignore, grad)
        else:                      # the forward's, used once (it becomes a .grad others may modify)
            grad, dx = dx, None
            if np.any(g != 1):
                grad *= (g if reduction != "none" else g[:, None])
        logits._accumulate(grad, owned=True)
    return Tensor._make(np.asarray(out, dtype=x.dtype), (logits,), backward, "cross_entropy")


# ---- layers' functions -------------------------------------------------------------------------

def linear(x, weight, bias=None) -> Tensor:
    """y = x W^T + b over the last axis: x (..., in), weight (out, in), bias (out,) or None ->
    (..., out), as torch.nn.functional.linear. Backward, with the batch axes folded into N rows
    (X (N, in), G = dL/dy (N, out)):

        dL/dX = G W,    dL/dW = G^T X  (out, in),    dL/db = sum over rows of G.

    One node instead of `x @ W.T + b` (a transpose, a matmul and an add) for the memory layout of dW.
    Through `@`, the gradient of W^T is X^T G, a row-major (in, out) array, and W would receive its
    transpose: a column-major (out, in) array beside W's row-major data, so every elementwise pass
    of the optimiser over (W, dW, Adam's moments) would stride across memory, or dW would need a
    transposing copy. Computing G^T X directly gives W's own layout from one GEMM of the same cost,
    and that new array becomes W.grad without a copy. This is where the speed of every nn.Linear
    (the NPLM, the GPT, its tied output layer) comes from; `@` itself stays the textbook product.
    """
    x, W = _floating(_tensor(x), "linear"), _tensor(weight)
    if W.ndim != 2 or x.ndim == 0 or x.shape[-1] != W.shape[1]:
        raise ValueError(f"linear: weight must be (out, in) with in = the input's last axis; got input "
                         f"{x.shape} and weight {W.shape}")
    n_out, n_in = W.shape
    b = None if bias is None else _tensor(bias)
    if b is not None and b.shape != (n_out,):
        raise ValueError(f"linear: bias must have shape ({n_out},) for weight {W.shape}, got {b.shape}")
    X = x.data.reshape(-1, n_in)                               # (N, in); a view when x is contiguous
    y = X @ W.data.T                                           # (N, out)
    if b is not None:
        y += b.data                                            # in place: y is a new array

    def backward(g):
        G = g.reshape(-1, n_out)                               # (N, out)
        if x.requires_grad:
            x._accumulate((G @ W.data).reshape(x.shape), owned=True)
        if W.requires_grad:
            W._accumulate(G.T @ X, owned=True)
        if b is not None and b.requires_grad:
            b._accumulate(g)                                   # summed over all but the last axis
    parents = (x, W) if b is None else (x, W, b)
    return Tensor._make(y.reshape(*x.shape[:-1], n_out), parents, backward, "linear")


def gelu(x, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit x Phi(x); approximate="tanh" uses GPT-2's tanh formula for Phi."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    x = _floating(_tensor(x), "gelu")
    tanh = approximate == "tanh"
    flat = np.ascontiguousarray(x.data).reshape(-1)
    y = np.empty_like(flat)
    if not (x.requires_grad and is_grad_enabled()):
        kernels.gelu_forward(flat, tanh, y)
        return Tensor(y.reshape(x.shape))
    gate = np.empty_like(flat)                  # y / x, kept for the backward (saves recomputing it)
    kernels.gelu_forward_gate(flat, tanh, y, gate)

    def backward(g):
        dx = np.empty_like(flat)
        kernels.gelu_backward(flat, gate, np.ascontiguousarray(g).reshape(-1), tanh, dx)
        x._accumulate(dx.reshape(x.shape), owned=True)
    return Tensor._make(y.reshape(x.shape), (x,), backward, "gelu")


def layer_norm(x, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Normalise the last axis to mean 0, variance 1, then scale by weight and shift by bias (C,)."""
    x = _floating(_tensor(x), "layer_norm")
    C = x.shape[-1]
    params = {}
    for name, p, default in (("weight", weight, np.ones), ("bias", bias, np.zeros)):
        if p is None:
            params[name] = (None, default(C, x.dtype))
            continue
        p = _tensor(p)
        if p.shape != (C,):
            raise ValueError(f"layer_norm: {name} must have shape ({C},) for input {x.shape}, got {p.shape}")
        params[name] = (p, np.asarray(p.data, dtype=x.dtype))
    (w, w_data), (b, b_data) = params["weight"], params["bias"]

    x2 = _rows(x.data)
    y = np.empty_like(x2)
    mean, rstd = np.empty(len(x2), x.dtype), np.empty(len(x2), x.dtype)
    kernels.layer_norm_forward(x2, w_data, b_data, eps, y, mean, rstd)

    def backward(g):
        dx, dw, db = np.empty_like(x2), np.empty(C, x.dtype), np.empty(C, x.dtype)
        kernels.layer_norm_backward(x2, w_data, mean, rstd, _rows(g), dx, dw, db)
        if x.requires_grad:
            x._accumulate(dx.reshape(x.shape), owned=True)
        if w is not None and w.requires_grad:
            w._accumulate(dw, owned=True)
        if b is not None and b.requires_grad:
            b._accumulate(db, owned=True)
    parents = tuple(p for p in (x, w, b) if p is not None)
    return Tensor._make(y.reshape(x.shape), parents, backward, "layer_norm")


def embedding(ids, weight) -> Tensor:
    """Rows of weight (V, C) picked by integer ids (...): output (..., C). Same order as torch."""
    weight = _tensor(weight)
    ids = _ints(ids, "embedding ids")
    _check_range(ids, weight.shape[0], "embedding", "id")

    def backward(g):               # row r of dW = sum of the g rows whose id is r (ids repeat)
        dW = np.zeros_like(weight.data)
        kernels.scatter_add_rows(np.ascontiguousarray(ids).reshape(-1), _rows(g), dW)
        weight._accumulate(dW, owned=True)
    return Tensor._make(np.take(weight.data, ids, axis=0), (weight,), backward, "embedding")


def dropout(x, p: float, training: bool = True, rng=None) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p), so the expected value is
    unchanged and evaluation (training=False) is the identity. The mask comes from `rng`, else the
    library's generator (scratchlm.rng)."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    x = _tensor(x)
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0.0
    u = get_rng(rng).random(x.shape, dtype=np.float32 if x.dtype == np.float32 else np.float64)
    mask = (u >= p).astype(x.dtype) * x.dtype.type(1 / (1 - p))
    return x * mask


# ---- the modern decoder's functions (Chapter 9) -------------------------------------------------

def rms_norm(x, weight=None, eps: float = 1e-5) -> Tensor:
    """Root-mean-square normalisation over the last axis, x / sqrt(mean(x^2) + eps) * weight, as
    torch.nn.functional.rms_norm (Zhang & Sennrich 2019; LLaMA's norm): LayerNorm without the mean
    subtracted and without a bias. weight (C,) or None."""
    x = _floating(_tensor(x), "rms_norm")
    C = x.shape[-1]
    w = None if weight is None else _tensor(weight)
    if w is not None and w.shape != (C,):
        raise ValueError(f"rms_norm: weight must have shape ({C},) for input {x.shape}, got {w.shape}")
    w_data = np.ones(C, x.dtype) if w is None else np.asarray(w.data, dtype=x.dtype)
    x2 = _rows(x.data)
    y, rstd = np.empty_like(x2), np.empty(len(x2), x.dtype)
    kernels.rms_norm_forward(x2, w_data, eps, y, rstd)

    def backward(g):
        dx, dw = np.empty_like(x2), np.empty(C, x.dtype)
        kernels.rms_norm_backward(x2, w_data, rstd, _rows(g), dx, dw)
        if x.requires_grad:
            x._accumulate(dx.reshape(x.shape), owned=True)
        if w is not None and w.requires_grad:
            w._accumulate(dw, owned=True)
    parents = (x,) if w is None else (x, w)
    return Tensor._make(y.reshape(x.shape), parents, backward, "rms_norm")


def swiglu(x) -> Tensor:
    """silu(a) * b where a, b are the first and second halves of x's last axis: (..., 2H) -> (..., H).

    The gated hidden layer of the SwiGLU MLP (Shazeer 2020), silu(u W) * (u V), with W and V stacked
    into one matrix so that one matrix product computes both; silu(a) = a sigmoid(a)."""
    x = _floating(_tensor(x), "swiglu")
    if x.ndim == 0 or x.shape[-1] % 2:
        raise ValueError(f"swiglu: the last axis holds the gate and the value side by side, so it must "
                         f"have even length; got shape {x.shape}")
    H = x.shape[-1] // 2
    x2 = _rows(x.data)
    y = np.empty((len(x2), H), x.dtype)
    kernels.swiglu_forward(x2, y)

    def backward(g):
        dx = np.empty_like(x2)
        kernels.swiglu_backward(x2, _rows(g), dx)
        x._accumulate(dx.reshape(x.shape), owned=True)
    return Tensor._make(y.reshape(*x.shape[:-1], H), (x,), backward, "swiglu")


def rope_tables(T: int, D: int, base: float = 10000.0, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(cos, sin), each (T, D/2) float64, of the angles (start + t) * theta_i, theta_i = base^(-2i/D),
    for positions start .. start + T - 1: what rope() rotates by (Su et al. 2021)."""
    if D % 2:
        raise ValueError(f"rope_tables: the head size must be even (dimensions are rotated in pairs), got {D}")
    theta = base ** (-np.arange(0, D, 2, dtype=np.float64) / D)               # (D/2,)
    angles = np.arange(start, start + T, dtype=np.float64)[:, None] * theta   # (T, D/2)
    return np.cos(angles), np.sin(angles)


def _as_heads(a: np.ndarray) -> np.ndarray:
    """(..., T, D) as the (A, H, T, D) array the rope kernel takes (a view when it can be)."""
    return a.reshape(-1, 1, *a.shape[-2:]) if a.ndim != 4 else a


def rope(x, cos, sin) -> Tensor:
    """Rotary position embedding of x (..., T, D): the pair (x_i, x_{i+D/2}) of position t is rotated
    by the angle whose cosine and sine are cos[t, i], sin[t, i] (arrays (T, D/2), see rope_tables).

    The rotate-half convention of GPT-NeoX and LLaMA as Hugging Face writes it (kernels.py). Queries
    and keys rotated this way have dot products that depend on their positions only through the
    difference of the two: q_s . k_t = f(q, k, s - t). The gradient is the inverse rotation."""
    x = _floating(_tensor(x), "rope")
    T, D = x.shape[-2:] if x.ndim >= 2 else (None, None)
    if x.ndim < 2 or D % 2 or np.shape(cos) != (T, D // 2) or np.shape(sin) != (T, D // 2):
        raise ValueError(f"rope: x must be (..., T, D) with D even and cos, sin (T, D/2); got x {x.shape}, "
                         f"cos {np.shape(cos)}, sin {np.shape(sin)}")
    cos, sin = np.asarray(cos, x.dtype), np.asarray(sin, x.dtype)
    y = np.empty(x.shape, x.dtype)
    kernels.rope_forward(_as_heads(x.data), cos, sin, _as_heads(y))

    def backward(g):
        dx = np.empty(x.shape, x.dtype)
        kernels.rope_forward(_as_heads(g), cos, -sin, _as_heads(dx))     # rotate back
        x._accumulate(dx, owned=True)
    return Tensor._make(y, (x,), backward, "rope")


# ---- selecting and joining ---------------------------------------------------------------------

def where(cond, a, b) -> Tensor:
    """a where cond is true, else b (broadcasting); the gradient goes to whichever was picked."""
    cond = np.asarray(cond.data if isinstance(cond, Tensor) else cond, dtype=bool)
    if isinstance(a, Tensor):
        b = a._lift(b)
    elif isinstance(b, Tensor):
        a = b._lift(a)
    else:
        a = Tensor(a)
        b = a._lift(b)

    def backward(g):
        if a.requires_grad:
            a._accumulate(np.where(cond, g, 0))
        if b.requires_grad:
            b._accumulate(np.where(cond, 0, g))
    return Tensor._make(np.where(cond, a.data, b.data), (a, b), backward, "where")


def masked_fill(x, mask, value) -> Tensor:
    """x with `value` wherever mask is true (e.g. -inf above the diagonal before a softmax)."""
    return where(mask, value, _tensor(x))


def concatenate(tensors, axis: int = 0) -> Tensor:
    """Join along an existing axis; each input gets back its own slice of the gradient."""
    ts = [_tensor(t) for t in tensors]
    ends = np.cumsum([t.shape[axis] for t in ts])[:-1]

    def backward(g):
        for t, part in zip(ts, np.split(g, ends, axis=axis)):
            if t.requires_grad:
                t._accumulate(part)
    return Tensor._make(np.concatenate([t.data for t in ts], axis=axis), tuple(ts), backward, "concatenate")


def stack(tensors, axis: int = 0) -> Tensor:
    """Join along a new axis; input i gets the gradient's slice i along that axis."""
    ts = [_tensor(t) for t in tensors]

    def backward(g):
        for i, t in enumerate(ts):
            if t.requires_grad:
                t._accumulate(np.take(g, i, axis=axis))
    return Tensor._make(np.stack([t.data for t in ts], axis=axis), tuple(ts), backward, "stack")
