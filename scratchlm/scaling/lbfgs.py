"""L-BFGS in NumPy, from many starting points at once (Chapter 11, §11.3: Chinchilla's approach 3).

L-BFGS (Nocedal 1980; Liu & Nocedal 1989) minimises a smooth f(x) with steps x <- x + t d along
d = -H g, g = grad f(x), where H approximates the inverse Hessian from the last m steps s_i = x_{i+1}
- x_i and gradient changes y_i = g_{i+1} - g_i without ever forming a matrix. The two-loop
recursion (Nocedal & Wright, Numerical Optimization, Algorithm 7.4) computes H g in O(m P):

    q = g;  for i = newest .. oldest:  alpha_i = rho_i s_i.q,  q -= alpha_i y_i        rho_i = 1 / (y_i.s_i)
    r = gamma q,  gamma = s.y / y.y of the newest pair (the scale of the curvature along s)
    for i = oldest .. newest:  beta = rho_i y_i.r,  r += (alpha_i - beta) s_i;        d = -r

H stays positive definite as long as every pair kept has y.s > 0, which the step length t
guarantees: it satisfies the weak Wolfe conditions

    f(x + t d) <= f(x) + c1 t g.d          (Armijo: a decrease in proportion to the slope)
    g(x + t d).d >= c2 g.d                 (curvature: the slope has flattened, so y.s > 0)

found by bisection (Lewis & Overton 2013): start at t = 1, halve the bracket when Armijo fails, double
t (or bisect) when the curvature condition fails. A pair with y.s <= 1e-10 |y| |s| is not kept. Each
start stops when max |g| <= gtol, or when f decreased by no more than ftol max(|f|, |f_new|, 1) in
one step (SciPy's L-BFGS-B rule and defaults: a relative test, so an objective that is scaled down
-- a mean instead of a sum -- stops earlier; Besiroglu et al. 2024), or when no step along d
decreases f (it is as small as float64 can resolve along d), or after max_iter steps.

Hoffmann et al. fit approach 3 from thousands of starting points. One start at a time would spend
its time in Python's per-call overhead; here every start is a row of X (S, P), and `fun` evaluates
all the rows still running at once (`lbfgs(fun, X)`, fun(X (k, P), rows (k,)) -> (f (k,), g (k, P)), rows the
starts the k points belong to, for objectives that differ between starts: a bootstrap's resamples,
parametric.py). Each row still follows its own iterates, history and step lengths: the batch is only
how they are computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STATUSES = ("gradient", "decrease", "line search", "max_iter")  # why a start stopped


@dataclass
class LBFGSResult:
    """The end of each start, one row per start of x0 (squeezed when x0 was one start (P,))."""
    x: np.ndarray           # (S, P) the last iterates
    fun: np.ndarray         # (S,) f there
    grad: np.ndarray        # (S, P) g there
    n_iter: np.ndarray      # (S,) steps taken
    status: np.ndarray      # (S,) one of STATUSES

    @property
    def converged(self) -> np.ndarray:
        """True where a start stopped on the gradient or the decrease test."""
        return np.isin(self.status, ("gradient", "decrease"))


def _direction(g, S, Y, rho):
    """d = -H g by the two-loop recursion, for k starts at once: g (k, P), S and Y (k, m, P) with the
    newest pair last, rho (k, m) = 1 / y.s, 0 for an empty slot (which then adds nothing)."""
    m = S.shape[1]
    q = g.copy()
    alpha = np.zeros(rho.shape)
    for i in range(m - 1, -1, -1):
        alpha[:, i] = rho[:, i] * np.einsum("kp,kp->k", S[:, i], q)
        q -= alpha[:, i, None] * Y[:, i]
    sy = np.einsum("kp,kp->k", S[:, -1], Y[:, -1])
    yy = np.einsum("kp,kp->k", Y[:, -1], Y[:, -1])
    first = 1.0 / np.maximum(np.linalg.norm(g, axis=1), 1e-300)   # no pair yet: a first step of length 1
    gamma = np.where(rho[:, -1] > 0, sy / np.where(yy > 0, yy, 1.0), first)
    r = gamma[:, None] * q
    for i in range(m):
        beta = rho[:, i] * np.einsum("kp,kp->k", Y[:, i], r)
        r += (alpha[:, i] - beta)[:, None] * S[:, i]
    return -r


def _line_search(fun, rows, x, f, g, d, c1: float, c2: float, max_steps: int):
    """Weak Wolfe step lengths by bisection for the k starts `rows`: -> (t, f_new, g_new, ok (k,) bool).
    Where no t satisfies both conditions within max_steps trials, the largest t that satisfied Armijo
    is taken (ok still True: f decreased); where none did, ok is False and x stays."""
    k = len(x)
    slope = np.einsum("kp,kp->k", g, d)                    # g.d < 0: d goes downhill
    t, lo, hi = np.ones(k), np.zeros(k), np.full(k, np.inf)
    f_new, g_new = f.copy(), g.copy()                      # at lo: t = 0 until Armijo holds somewhere
    done = np.zeros(k, bool)
    for _ in range(max_steps):
        todo = np.flatnonzero(~done)
        if not todo.size:
            break
        ft, gt = fun(x[todo] + t[todo, None] * d[todo], rows[todo])
        with np.errstate(invalid="ignore"):                # an overflow gives f = inf or NaN: too far
            armijo = ft <= f[todo] + c1 * t[todo] * slope[todo]
        curvature = np.einsum("kp,kp->k", gt, d[todo]) >= c2 * slope[todo]
        hi[todo[~armijo]] = t[todo[~armijo]]
        took = todo[armijo]
        lo[took], f_new[took], g_new[took] = t[took], ft[armijo], gt[armijo]
        done[todo[armijo & curvature]] = True
        t = np.where(np.isinf(hi), 2 * lo, (lo + hi) / 2)
    return lo, f_new, g_new, lo > 0


def lbfgs(fun, x0, m: int = 10, max_iter: int = 15000, gtol: float = 1e-5, ftol: float = 2.220446049250313e-09,
          c1: float = 1e-4, c2: float = 0.9, max_line_search: int = 50) -> LBFGSResult:
    """Minimise f from every row of x0 (S, P), or from one start x0 (P,), by L-BFGS with memory m.

    fun(X (k, P), rows (k,)) -> (f (k,), g (k, P)): the objective and its gradient at k points at once,
    rows[j] the index of the start (row of x0) that point j belongs to.
    Defaults are SciPy's L-BFGS-B's (m=10, gtol=1e-5, ftol = 1e7 x machine epsilon, max_iter)."""
    x0 = np.asarray(x0, dtype=np.float64)
    one = x0.ndim == 1
    X = np.array(x0[None] if one else x0)
    if X.ndim != 2 or not X.size or not np.isfinite(X).all():
        raise ValueError(f"lbfgs: x0 must be finite starting points (P,) or (S, P), got shape {x0.shape}")
    if m < 1 or max_iter < 0:
        raise ValueError(f"lbfgs: need m >= 1 and max_iter >= 0, got m={m}, max_iter={max_iter}")
    n, P = X.shape
    f, G = fun(X, np.arange(n))
    f, G = np.array(f, dtype=np.float64), np.array(G, dtype=np.float64)
    if f.shape != (n,) or G.shape != (n, P):
        raise ValueError(f"lbfgs: fun must return f ({n},) and g ({n}, {P}) for {n} points, got {f.shape} and "
                         f"{G.shape}")
    S, Y, rho = np.zeros((n, m, P)), np.zeros((n, m, P)), np.zeros((n, m))
    n_iter, status = np.zeros(n, np.int64), np.full(n, "max_iter", dtype=object)
    running = np.abs(G).max(axis=1) > gtol
    status[~running] = "gradient"
    for _ in range(max_iter):
        idx = np.flatnonzero(running)
        if not idx.size:
            break
        g = G[idx]
        d = _direction(g, S[idx], Y[idx], rho[idx])
        uphill = np.einsum("kp,kp->k", g, d) >= 0          # rounding in a bad history: start it again
        if uphill.any():
            rho[idx[uphill]] = 0.0
            d[uphill] = -g[uphill] / np.linalg.norm(g[uphill], axis=1, keepdims=True)
        t, f_new, g_new, ok = _line_search(fun, idx, X[idx], f[idx], g, d, c1, c2, max_line_search)
        status[idx[~ok]] = "line search"
        running[idx[~ok]] = False
        idx, t, f_new, g_new, d, g = idx[ok], t[ok], f_new[ok], g_new[ok], d[ok], g[ok]
        s, y = t[:, None] * d, g_new - g
        sy = np.einsum("kp,kp->k", s, y)
        keep = sy > 1e-10 * np.linalg.norm(s, axis=1) * np.linalg.norm(y, axis=1)
        kept = idx[keep]                                   # newest pair last: shift the others down
        S[kept], Y[kept], rho[kept] = np.roll(S[kept], -1, axis=1), np.roll(Y[kept], -1, axis=1), \
            np.roll(rho[kept], -1, axis=1)
        S[kept, -1], Y[kept, -1], rho[kept, -1] = s[keep], y[keep], 1.0 / sy[keep]
        small_f = f[idx] - f_new <= ftol * np.maximum(np.maximum(np.abs(f[idx]), np.abs(f_new)), 1.0)
        small_g = np.abs(g_new).max(axis=1) <= gtol
        X[idx] += s
        f[idx], G[idx] = f_new, g_new
        n_iter[idx] += 1
        status[idx[small_f]] = "decrease"
        status[idx[small_g]] = "gradient"
        running[idx[small_g | small_f]] = False
    result = LBFGSResult(X, f, G, n_iter, status.astype(str))
    if one:
        return LBFGSResult(X[0], f[0], G[0], n_iter[0], result.status[0])
    return result
