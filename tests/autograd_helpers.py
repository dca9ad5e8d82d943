"""Checks shared by the autograd op tests (`from autograd_helpers import check_op`).

`check_op` is what every op test runs: the float64 gradient check, then the ownership contract of
`Tensor._accumulate` (scratchlm/autograd/tensor.py, "Who owns a gradient array"). An op that hands
over an array with owned=True while something else still holds it passes a gradient check -- the
numbers are right once -- and goes wrong later, when one gradient is modified in place (accumulated,
clipped, updated by the optimiser) and another changes with it. So after backward() no two
gradients in the graph may share memory, none may share memory with a value of the forward pass, and
a second backward() over the same graph must add exactly the same gradients again.
"""

from __future__ import annotations

import numpy as np

from scratchlm.autograd import Tensor, gradcheck


def graph_tensors(out: Tensor) -> list[Tensor]:
    """Every tensor `out` was computed from (constants included), `out` first."""
    seen, order, stack = {id(out)}, [], [out]
    while stack:
        node = stack.pop()
        order.append(node)
        for p in node._prev:
            if id(p) not in seen:
                seen.add(id(p))
                stack.append(p)
    return order


def assert_gradients_separate(out: Tensor, names: dict | None = None) -> None:
    """After out.backward(): no two .grad arrays in out's graph share memory, and no .grad shares
    memory with the data of any tensor in the graph. `names` ({id(tensor): name}) label the message."""
    names = names or {}

    def label(t):
        return names.get(id(t), f"{t._op or 'leaf'} {t.shape}")

    nodes = graph_tensors(out)
    with_grad = [t for t in nodes if t.grad is not None]
    for i, a in enumerate(with_grad):
        for b in with_grad[i + 1:]:
            if np.shares_memory(a.grad, b.grad):
                raise AssertionError(f"the gradients of {label(a)} and {label(b)} share one array: "
                                     f"updating one in place (+=, clipping) changes the other")
        for t in nodes:
            if np.shares_memory(a.grad, t.data):
                raise AssertionError(f"the gradient of {label(a)} shares memory with the value of "
                                     f"{label(t)}: an op handed over an array it does not own")


def check_op(fn, inputs, tol: float = 1e-6, seed: int = 0) -> float:
    """gradcheck(fn, inputs) in float64, then the ownership contract on a fresh float64 copy:
    gradients kept separate after one backward(), and exactly doubled after a second one over the
    same graph. Returns gradcheck's error."""
    err = gradcheck(fn, inputs, tol=tol, seed=seed)
    assert err <= tol
    xs = [Tensor(np.array(x.data, dtype=np.float64), requires_grad=True)
          if isinstance(x, Tensor) and x.requires_grad else x for x in inputs]
    leaves = [x for x in xs if isinstance(x, Tensor) and x.requires_grad]
    names = {id(x): f"input {k}" for k, x in enumerate(xs)}
    y = fn(*xs)
    w = np.random.default_rng(seed).uniform(-1.0, 1.0, size=y.shape)
    y.backward(w)
    assert_gradients_separate(y, names)
    first = [None if x.grad is None else x.grad.copy() for x in leaves]
    y.backward(w)                                 # the same graph again: leaf gradients add up
    assert_gradients_separate(y, names)
    for x, g in zip(leaves, first):
        if g is not None:
            np.testing.assert_allclose(x.grad, 2 * g, rtol=1e-12, atol=0,
                                       err_msg=f"{names[id(x)]}: a second backward() did not add the "
                                               f"same gradient again")
    return err
