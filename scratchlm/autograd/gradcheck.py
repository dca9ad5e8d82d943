"""Check backward() against finite differences. Chapter 3.

For a function y = fn(x1, x2, ...) with y of any shape we check the scalar L = sum(w * y), where w
is a fixed random weighting (every output element counts, with a different weight, so an error in
any one of them shows). The analytic gradient comes from `y.backward(w)`. The numerical one, for
each element x_i of each input that requires grad, is the central difference

    dL/dx_i  ~  sum(w * (fn(x + eps e_i) - fn(x - eps e_i))) / (2 eps),

whose error is O(eps^2) plus rounding of order 1e-16 |y| / eps. Differencing the outputs before
weighting them means untouched elements cancel exactly and add no rounding. Everything runs in
float64: in float32 the rounding term alone (1e-7 / eps) would swamp the comparison.

The error reported is the largest elementwise relative error over all checked inputs,

    err = max_i |a_i - n_i| / max(|a_i|, |n_i|, floor),

with a analytic and n numerical; `floor` (default 1e-3) keeps gradients that are (close to) zero
from dividing by nothing -- below it the error is absolute, scaled by 1/floor.
"""

import numpy as np

from scratchlm.autograd.tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    """The analytic gradient disagrees with the finite-difference estimate."""


def _float64(x):
    """A float64 copy of a float input (leaves stay leaves); other inputs pass through."""
    if isinstance(x, Tensor):
        if not np.issubdtype(x.dtype, np.floating):
            return x
        return Tensor(np.array(x.data, dtype=np.float64), requires_grad=x.requires_grad)
    if isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating):
        return np.array(x, dtype=np.float64)
    return x


def gradcheck(fn, inputs, *, eps: float = 1e-6, tol: float = 1e-6, floor: float = 1e-3, seed: int = 0,
              raise_on_failure: bool = True) -> float:
    """Max relative error between backward() and central differences of `fn(*inputs)`.

    `inputs` are Tensors (those with requires_grad are checked) or constants (arrays, numbers).
    They are copied to float64, so the caller's tensors are untouched. Raises GradcheckError naming
    the input and element when the error exceeds `tol` (unless raise_on_failure=False).
    """
    xs = [_float64(x) for x in inputs]
    checked = [k for k, x in enumerate(xs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad, so there is nothing to check")
    y = fn(*xs)
    if not isinstance(y, Tensor) or not y.requires_grad:
        raise ValueError("gradcheck: fn must return a Tensor that depends on an input requiring grad")
    w = np.random.default_rng(seed).uniform(-1.0, 1.0, size=y.shape)
    y.backward(w)

    worst = 0.0
    for k in checked:
        x = xs[k]
        analytic = np.zeros_like(x.data) if x.grad is None else x.grad
        # numeric: the central-difference estimate of dL/dx for L = sum(w * fn(...)), shaped like x
        # BEGIN SOLUTION 3.4: Central differences (chapters/ch03_autograd.py §3.3)
        numeric = np.empty_like(x.data)
        flat = x.data.reshape(-1)               # a view: fn sees each nudge
        with no_grad():
            for i in range(flat.size):
                old = flat[i]
                flat[i] = old + eps
                plus = np.array(fn(*xs).data)   # copies: an output may be a view of x
                flat[i] = old - eps
                minus = np.array(fn(*xs).data)
                flat[i] = old
                numeric.flat[i] = np.sum(w * (plus - minus)) / (2 * eps)
        # END SOLUTION
        scale = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), floor)
        err = np.abs(analytic - numeric) / scale
        i = int(np.argmax(err))
        if err.flat[i] > worst:
            worst = float(err.flat[i])
        if raise_on_failure and err.flat[i] > tol:
            where = np.unravel_index(i, x.shape)
            raise GradcheckError(f"gradcheck failed for input {k} (shape {x.shape}) at {where}: "
                                 f"analytic {analytic.flat[i]:.10g}, numerical {numeric.flat[i]:.10g}, "
                                 f"relative error {err.flat[i]:.3g} > tol {tol:g}")
    return worst
