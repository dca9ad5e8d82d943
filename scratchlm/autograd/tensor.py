"""Tensor: a NumPy array that remembers how it was made, and reverse-mode autodiff over it. Chapter 3.

Every operation computes its output `out = f(a, b, ...)` and, when a gradient will be needed, keeps a
closure that maps the gradient of the loss with respect to `out` (written `g`, same shape as `out`) to
the gradients with respect to the inputs -- the chain rule, one op at a time:

    dL/da = g * df/da            (elementwise ops; a matrix product for `@`)

`backward()` sorts the graph topologically (depth-first, iteratively: graphs can be thousands of
ops deep) and walks it in reverse, so each node's closure runs only after every consumer of that node
has added its share into `node.grad`. Gradients accumulate with `+=`: a tensor used twice receives
two contributions, and a leaf keeps adding across `backward()` calls until `zero_grad()`.

Broadcasting: when `a` of shape (3, 1, 4) meets `b` of shape (5, 1) the output has shape (3, 5, 4),
and each element of `b` was used 3 * 4 times. Its gradient is therefore the sum of `g` over the axes
that broadcasting added or stretched -- `unbroadcast(g, b.shape)`, applied to every contribution.

Dtypes are kept: float32 in, float32 out, float32 gradients. Python numbers adapt to the tensor's
dtype (`x * 0.5` stays float32), as NumPy >= 2 does for arrays.

Only leaves (tensors made by the user, e.g. parameters) keep `.grad` after `backward()`; the gradients
of intermediate results are dropped once used, unless `retain_grad()` was called on them.

Writing a new op (functional.py, the GPT's attention) follows the same recipe as the ones below:

    def backward(g):                               # g = dL/dout, shape of out
        x._accumulate(local_derivative * g)        # adds dL/dx into x.grad
    return Tensor._make(out, (x,), backward, "name")

`_make` keeps the closure only when grad mode is on and an input requires grad.

Who owns a gradient array. `_accumulate(g)` may keep `g` itself as `x.grad`, and contributions that
arrive later are added into that array in place, so an array may only be kept if nobody else holds
it. By default `_accumulate` assumes that someone might: an add hands one `g` to both inputs, reshape
and transpose hand on views of `g`, `sum` a read-only broadcast view. So a leaf stores its own copy
(its gradient is later modified in place: accumulation across backward() calls, clipping, the
optimiser), and an intermediate node keeps `g` but adds the next contribution out of place. An op
whose gradient is a new array that it does not keep -- the result of a matmul or of a kernel,
allocated in this backward call -- says so with `owned=True`: the array is handed over, becomes
`.grad` without a copy (for a weight or the logits that copy costs a pass over a big array), and
later contributions are added into it. Passing owned=True for an array the op still holds (a saved
buffer, a view of an input, the `g` it was given) lets one gradient overwrite another:
tests/autograd_helpers.py checks every op for gradients that share memory.

An op that adds into part of its input's gradient (a slice `x[:, t]`) asks for that gradient as an
array it may write (`_grad_to_update()`) and adds into it in place, so a loop over T slices costs
O(size of the slices) instead of allocating a zero array the size of x for each one.
"""

from __future__ import annotations

import numbers

import numpy as np

from scratchlm.autograd import kernels

_grad_enabled = True


def is_grad_enabled() -> bool:
    """True unless inside a `no_grad()` block."""
    return _grad_enabled


class no_grad:
    """Context manager: operations inside build no graph (evaluation, optimiser updates)."""

    def __enter__(self):
        global _grad_enabled
        self._prev, _grad_enabled = _grad_enabled, False

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev
        return False


def unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum `g` over the axes broadcasting added or stretched, giving an array of `shape`."""
    if g.shape == shape:
        return g
    # BEGIN SOLUTION 3.2: Summing a gradient over broadcast axes (chapters/ch03_autograd.py §3.2)
    lead = g.ndim - len(shape)
    if lead:
        g = g.sum(axis=tuple(range(lead)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if stretched:
        g = g.sum(axis=stretched, keepdims=True)
    return g.reshape(shape)
    # END SOLUTION


def _axes(axis, ndim: int) -> tuple:
    """Normalise `axis` (None, int or tuple, negatives allowed) to a sorted tuple of axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    return tuple(sorted(a % ndim if ndim else a for a in axes))


def _expand(g: np.ndarray, axes: tuple, keepdims: bool) -> np.ndarray:
    """Put back the reduced axes of a reduction's output gradient as size-1 axes."""
    return g if keepdims else np.expand_dims(g, axes)


def _is_basic_index(idx) -> bool:
    """Slices, ints, None and Ellipsis only: such an index picks each element at most once."""
    parts = idx if isinstance(idx, tuple) else (idx,)
    return all(p is None or p is Ellipsis or isinstance(p, (slice, numbers.Integral)) for p in parts)


class Tensor:
    """An array `data` with an optional gradient `grad` of the same shape and dtype."""

    __slots__ = ("data", "grad", "requires_grad", "_prev", "_backward", "_op", "_retain", "_grad_owned")
    __array_ufunc__ = None  # `ndarray + Tensor` calls Tensor.__radd__ instead of looping over objects

    def __init__(self, data, requires_grad: bool = False):
        self.data = data.data if isinstance(data, Tensor) else np.asarray(data)
        if requires_grad and not np.issubdtype(self.data.dtype, np.floating):
            raise TypeError(f"only floating-point tensors can require gradients, got dtype {self.data.dtype}")
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._prev = ()          # the tensors this one was computed from (kept only when grads flow)
        self._backward = None    # g -> accumulate into the inputs' .grad
        self._op = ""            # name of the op that made it, for printing graphs
        self._retain = False
        self._grad_owned = False # whether .grad is an array only this tensor holds (see the docstring)

    # ---- array-like attributes -------------------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    T = property(lambda self: self.transpose())

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({self.data!r}{grad})"

    def item(self):
        return self.data.item()

    def numpy(self) -> np.ndarray:
        return self.data

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def zero_grad(self):
        self.grad = None

    def retain_grad(self):
        """Keep this intermediate tensor's .grad after backward (leaves always keep theirs)."""
        self._retain = True

    # ---- graph building --------------------------------------------------------------------------
    @staticmethod
    def _make(data, parents: tuple, backward, op: str) -> Tensor:
        """Wrap an op's output; keep the backward closure only if some input needs a gradient."""
        out = Tensor(data)
        if _grad_enabled and any(p.requires_grad for p in parents):
            out.requires_grad = True
            out._prev = parents
            out._backward = backward
            out._op = op
        return out

    def _lift(self, other) -> Tensor:
        """Make `other` a Tensor; Python numbers take this tensor's dtype (x * 0.5 stays float32)."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, numbers.Number):
            return Tensor(np.asarray(other, dtype=np.result_type(self.data.dtype, other)))
        return Tensor(other)

    def _accumulate(self, g: np.ndarray, owned: bool = False):
        """self.grad += g, after summing g back to self's shape.

        owned=True: g is a new array that nobody else holds, handed over to become (part of) .grad;
        otherwise g is treated as shared and never written into (module docstring, "Who owns").
        """
        if g.shape != self.data.shape:
            g, owned = unbroadcast(g, self.data.shape), True   # a sum: a new array
        if g.dtype != self.data.dtype:
            g, owned = g.astype(self.data.dtype), True
        if self.grad is None:
            if self._backward is None and not owned:
                g, owned = np.array(g), True      # a leaf's gradient is modified in place later
            self.grad, self._grad_owned = g, owned
        elif self._backward is None or self._grad_owned:
            self.grad += g                        # ours alone: add in place
        else:
            self.grad, self._grad_owned = self.grad + g, True

    def _grad_to_update(self) -> np.ndarray:
        """self.grad as an array this tensor owns, for an op to add a contribution into in place
        (zeros if no gradient arrived yet; a copy if the current one may be shared)."""
        if self.grad is None:
            self.grad = np.zeros(self.data.shape, self.data.dtype)
        elif not (self._backward is None or self._grad_owned):
            self.grad = np.array(self.grad)
        self._grad_owned = True
        return self.grad

    def backward(self, grad=None):
        """Reverse-mode: fill .grad of every leaf this tensor depends on (accumulating with +=)."""
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad: no input requires "
                               "grad, or it was computed inside no_grad()")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() without a gradient needs a scalar output; this tensor "
                                   f"has shape {self.data.shape}: pass grad= of that shape, or reduce it "
                                   f"(e.g. .sum()) first")
            grad = np.ones_like(self.data)
        grad = np.asarray(grad, dtype=self.data.dtype)
        if grad.shape != self.data.shape:
            raise ValueError(f"backward(grad) needs grad of shape {self.data.shape}, got {grad.shape}")

        order = self._topological_order()
        for node in order:                      # intermediate grads start from zero on every call
            if node._backward is not None:
                node.grad = None
        self._accumulate(grad)
        for node in reversed(order):
            if node._backward is None or node.grad is None:
                continue
            node._backward(node.grad)
            if not node._retain:
                node.grad = None               # used up; frees memory and keeps calls independent

    def _topological_order(self) -> list:
        """Nodes that need gradients, each after all of its inputs (iterative depth-first search)."""
        order, seen = [], {id(self)}
        stack = [(self, iter(self._prev))]
        while stack:
            node, parents = stack[-1]
            for p in parents:
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    stack.append((p, iter(p._prev)))
                    break
            else:
                stack.pop()
                order.append(node)
        return order

    # ---- elementwise arithmetic (broadcasting) ---------------------------------------------------
    def __add__(self, other):
        a, b = self, self._lift(other)

        def backward(g):                      # d(a+b)/da = d(a+b)/db = 1
            if a.requires_grad:
                a._accumulate(g)
            if b.requires_grad:
                b._accumulate(g)
        return Tensor._make(a.data + b.data, (a, b), backward, "+")

    def __sub__(self, other):
        a, b = self, self._lift(other)

        def backward(g):
            if a.requires_grad:
                a._accumulate(g)
            if b.requires_grad:
                b._accumulate(-g)
        return Tensor._make(a.data - b.data, (a, b), backward, "-")

    def __mul__(self, other):
        a, b = self, self._lift(other)

        def backward(g):                      # d(ab)/da = b, d(ab)/db = a
            # BEGIN SOLUTION 3.1: Backward of a product (chapters/ch03_autograd.py §3.1)
            if a.requires_grad:
                a._accumulate(g * b.data)
            if b.requires_grad:
                b._accumulate(g * a.data)
            # END SOLUTION
        return Tensor._make(a.data * b.data, (a, b), backward, "*")

    def __truediv__(self, other):
        a, b = self, self._lift(other)
        out = a.data / b.data

        def backward(g):                      # d(a/b)/da = 1/b, d(a/b)/db = -a/b^2 = -out/b
            gb = g / b.data
            if a.requires_grad:
                a._accumulate(gb)
            if b.requires_grad:
                b._accumulate(-gb * out)
        return Tensor._make(out, (a, b), backward, "/")

    def __pow__(self, other):
        a, b = self, self._lift(other)
        out = a.data ** b.data

        def backward(g):                      # d(a^b)/da = b a^(b-1), d(a^b)/db = a^b log a
            if a.requires_grad:
                a._accumulate(g * b.data * a.data ** (b.data - 1))
            if b.requires_grad:
                b._accumulate(g * out * np.log(a.data))
        return Tensor._make(out, (a, b), backward, "**")

    def __neg__(self):
        a = self

        def backward(g):
            a._accumulate(-g)
        return Tensor._make(-a.data, (a,), backward, "neg")

    def __radd__(self, other):
        return self._lift(other) + self

    def __rsub__(self, other):
        return self._lift(other) - self

    def __rmul__(self, other):
        return self._lift(other) * self

    def __rtruediv__(self, other):
        return self._lift(other) / self

    def __rpow__(self, other):
        return self._lift(other) ** self

    # ---- matrix product --------------------------------------------------------------------------
    def __matmul__(self, other):
        a, b = self, self._lift(other)
        out = _matmul(a.data, b.data)

        def backward(g):                      # dL/dA = G B^T, dL/dB = A^T G, per matrix of a batch
            # BEGIN SOLUTION 3.3: Backward of the matrix product (chapters/ch03_autograd.py §3.2)
            # Treat 1-D operands as NumPy does: a (n,) is a row (1, n), b (n,) a column (n, 1).
            A = a.data[None, :] if a.ndim == 1 else a.data
            B = b.data[:, None] if b.ndim == 1 else b.data
            G = g[..., None] if b.ndim == 1 else g
            G = np.expand_dims(G, -2) if a.ndim == 1 else G
            if a.requires_grad:                # dL/dA = G B^T, summed over broadcast batch dims
                gA = unbroadcast(_matmul(G, B.swapaxes(-1, -2)), A.shape)
                a._accumulate(gA.reshape(a.shape), owned=True)
            if b.requires_grad:                # dL/dB = A^T G, summed over broadcast batch dims
                if B.ndim == 2:                # one B for every matrix of A: sum_i A_i^T G_i is one GEMM
                    gB = A.reshape(-1, A.shape[-1]).T @ G.reshape(-1, G.shape[-1])
                else:
                    gB = unbroadcast(_matmul(A.swapaxes(-1, -2), G), B.shape)
                b._accumulate(gB.reshape(b.shape), owned=True)
            # END SOLUTION
        return Tensor._make(out, (a, b), backward, "@")

    def __rmatmul__(self, other):
        return self._lift(other) @ self

    # ---- reductions ------------------------------------------------------------------------------
    def sum(self, axis=None, keepdims=False):
        a, axes = self, _axes(axis, self.ndim)

        def backward(g):                      # every summed element gets the same g
            a._accumulate(np.broadcast_to(_expand(g, axes, keepdims), a.shape))
        return Tensor._make(a.data.sum(axis=axes, keepdims=keepdims), (a,), backward, "sum")

    def mean(self, axis=None, keepdims=False):
        axes = _axes(axis, self.ndim)
        n = int(np.prod([self.shape[i] for i in axes]))
        return self.sum(axes, keepdims) * (1.0 / n)

    def max(self, axis=None, keepdims=False):
        a, axes = self, _axes(axis, self.ndim)
        out = a.data.max(axis=axes, keepdims=True)

        def backward(g):                      # g flows to the maximum; ties share it equally
            hit = a.data == out
            a._accumulate(hit * (_expand(g, axes, keepdims) / hit.sum(axis=axes, keepdims=True, dtype=a.dtype)))
        return Tensor._make(out if keepdims else out.squeeze(axes), (a,), backward, "max")

    # ---- shape -----------------------------------------------------------------------------------
    def reshape(self, *shape):
        a = self
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape

        def backward(g):
            a._accumulate(g.reshape(a.shape))
        return Tensor._make(a.data.reshape(shape), (a,), backward, "reshape")

    def transpose(self, *axes):
        a = self
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        axes = tuple(axes) if axes else tuple(reversed(range(self.ndim)))

        def backward(g):                      # undo the permutation
            a._accumulate(g.transpose(np.argsort(axes)))
        return Tensor._make(a.data.transpose(axes), (a,), backward, "transpose")

    def __getitem__(self, idx):
        a = self
        idx = idx.data if isinstance(idx, Tensor) else idx

        def backward(g):
            if _is_basic_index(idx):           # a view: each element picked at most once
                a._grad_to_update()[idx] += g  # only the slice is touched: x[:, t] for every t is O(x)
                return
            grad = np.zeros(a.shape, a.dtype)
            if isinstance(idx, (np.ndarray, list)) and np.asarray(idx).dtype != bool:
                rows = np.asarray(idx, dtype=np.int64).ravel() % a.shape[0]  # x[ids]: rows repeat: add
                kernels.scatter_add_rows(rows, np.ascontiguousarray(g).reshape(rows.size, -1),
                                         grad.reshape(a.shape[0], -1))
            else:                              # any other mix: scatter by flat position
                pos = np.arange(a.size).reshape(a.shape)[idx].ravel()
                kernels.scatter_add_rows(pos, np.ascontiguousarray(g).reshape(-1, 1), grad.reshape(-1, 1))
            a._accumulate(grad, owned=True)
        return Tensor._make(a.data[idx], (a,), backward, "getitem")

    # ---- elementwise functions -------------------------------------------------------------------
    def exp(self):
        a, out = self, np.exp(self.data)

        def backward(g):                      # (e^x)' = e^x
            a._accumulate(g * out)
        return Tensor._make(out, (a,), backward, "exp")

    def log(self):
        a = self

        def backward(g):                      # (log x)' = 1/x
            a._accumulate(g / a.data)
        return Tensor._make(np.log(a.data), (a,), backward, "log")

    def tanh(self):
        a, out = self, np.tanh(self.data)

        def backward(g):                      # tanh' = 1 - tanh^2
            a._accumulate(g * (1 - out * out))
        return Tensor._make(out, (a,), backward, "tanh")

    def sigmoid(self):
        a = self
        out = 0.5 * np.tanh(0.5 * self.data) + 0.5  # = 1/(1+e^-x), without overflow for x << 0

        def backward(g):                      # sigma' = sigma (1 - sigma)
            a._accumulate(g * out * (1 - out))
        return Tensor._make(out, (a,), backward, "sigmoid")

    def relu(self):
        a = self

        def backward(g):                      # 1 where x > 0, else 0
            a._accumulate(g * (a.data > 0))
        return Tensor._make(np.maximum(a.data, 0), (a,), backward, "relu")


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b with NumPy's broadcasting, one big GEMM when b is a shared matrix, clear shape errors."""
    if a.ndim > 2 and b.ndim == 2 and a.shape[-1] == b.shape[0]:
        return (a.reshape(-1, a.shape[-1]) @ b).reshape(*a.shape[:-1], b.shape[1])
    try:
        return a @ b
    except ValueError:
        raise ValueError(f"matmul shape mismatch: {a.shape} @ {b.shape} (inner sizes must agree and "
                         f"batch dimensions broadcast)") from None
