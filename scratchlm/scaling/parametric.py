"""Chinchilla's approach 3: one parametric law fitted to every run (Chapter 11, §11.3).

Hoffmann et al. 2022 model the final loss of a model of N parameters trained on D tokens as

    L(N, D) = E + A / N^alpha + B / D^beta

E the loss of an ideal model of the text (its entropy), the two terms what a finite model and a finite
data set add. They fit it in log space, with parameters x = (a, b, e, alpha, beta), A = e^a, B = e^b,
E = e^e, so that the prediction is a log-sum-exp (positive whatever x is):

    log L_hat_i = LSE(a - alpha log N_i,  b - beta log D_i,  e)

    objective(x) = sum_i Huber_delta(log L_hat_i - log L_i),   delta = 1e-3,
    Huber_delta(r) = r^2 / 2 if |r| <= delta, else delta (|r| - delta / 2)

The Huber loss is quadratic for residuals under 0.1% and linear above, so a few runs that did not
train like the others (a diverged one, a lucky seed) pull the fit much less than in least squares.
Its gradient is psi(r) = clip(r, -delta, delta) times that of log L_hat, whose weights are the
softmax w of the three LSE terms:

    d/da = psi w_N,   d/db = psi w_D,   d/de = psi w_E,   d/dalpha = -psi w_N log N,   d/dbeta = -psi w_D log D

summed over runs. It is minimised by L-BFGS (lbfgs.py) from a grid of starting points, Hoffmann's:
alpha, beta in {0, 0.5, ..., 2}, e in {-1, -0.5, ..., 1.5}, a, b in {0, 5, ..., 25} (5400 starts);
the start with the lowest final objective wins. Besiroglu et al. 2024 found that the published fit
had *averaged* the Huber loss over runs: with the relative stopping rule of SciPy's L-BFGS-B
(ftol 2.2e-9 x max(|f|, 1)) a 1/n smaller objective stops the optimiser early, and the refit with
the sum gives E = 1.82, A = 482, B = 2085, alpha = 0.35, beta = 0.37 instead of Hoffmann's 1.69,
406.4, 410.7, 0.34, 0.28. reduction="mean" reproduces the published choice.

With training compute C = 6 N D, minimising L(N, D) along C gives the compute-optimal allocation

    N_opt(C) = G (C/6)^a,   D_opt(C) = G^-1 (C/6)^b,   G = (alpha A / (beta B))^(1/(alpha+beta)),
    a = beta / (alpha + beta),   b = alpha / (alpha + beta)

(Hoffmann et al., eq. 4): a = 0.46 in their fit, 0.51 in Besiroglu's, so N and D should grow about
equally with compute. Confidence intervals come from refitting resampled runs (bootstrap.py);
bootstrap_parametric writes each resample as weights on the runs' Huber terms (a run drawn twice
counts twice), so that all the refits, from all their starts, are one batch of L-BFGS runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scratchlm.scaling.bootstrap import Bootstrap, check_level, resample, summarise
from scratchlm.scaling.lbfgs import lbfgs

PARAMS = ("a", "b", "e", "alpha", "beta")   # the order of x: A = e^a, B = e^b, E = e^e
DELTA = 1e-3                                # Hoffmann et al.'s Huber delta
HOFFMANN_GRID = {"a": np.arange(0.0, 26.0, 5.0), "b": np.arange(0.0, 26.0, 5.0), "e": np.arange(-1.0, 1.6, 0.5),
                 "alpha": np.arange(0.0, 2.1, 0.5), "beta": np.arange(0.0, 2.1, 0.5)}
BOOTSTRAP_GRID = {"a": [0.0, 10.0, 20.0], "b": [0.0, 10.0, 20.0], "e": [-1.0, 1.0], "alpha": [0.5, 1.5],
                  "beta": [0.5, 1.5]}     # every second or third of Hoffmann's values: 72 starts


def grid_starts(grid: dict | None = None) -> np.ndarray:
    """Every combination of the grid's values as starting points (S, 5), columns in PARAMS' order;
    grid maps each name of PARAMS to its values (default HOFFMANN_GRID, S = 6 x 6 x 6 x 5 x 5 = 5400)."""
    grid = HOFFMANN_GRID if grid is None else grid
    if set(grid) != set(PARAMS):
        raise ValueError(f"grid_starts: the grid must give values for exactly {PARAMS}, got {sorted(grid)}")
    axes = [np.asarray(grid[name], dtype=np.float64).ravel() for name in PARAMS]
    if not all(ax.size for ax in axes):
        raise ValueError(f"grid_starts: every parameter needs at least one value, got sizes "
                         f"{ {name: ax.size for name, ax in zip(PARAMS, axes)} }")
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(PARAMS))


def huber_objective(params, log_N, log_D, log_L, delta: float = DELTA, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """Approach 3's objective, summed over runs, and its gradient (module docstring).

    params (..., 5) = (a, b, e, alpha, beta), one parameter vector or a batch of them; log_N, log_D,
    log_L (n,) the runs' logarithms; weights (n,) or (..., n): each run's Huber term counts that many
    times (a bootstrap resample's multiplicities; None: once). Returns (objective (...), gradient (..., 5))."""
    params = np.asarray(params, dtype=np.float64)
    a, b, e, alpha, beta = (params[..., i, None] for i in range(len(PARAMS)))   # each (..., 1)
    weights = np.ones_like(log_L) if weights is None else weights
    # BEGIN SOLUTION 11.3: The Huber objective of approach 3 (chapters/ch11_scaling_laws.py §11.3)
    terms = np.stack(np.broadcast_arrays(a - alpha * log_N, b - beta * log_D, e))   # (3, ..., n)
    top = terms.max(axis=0)
    w = np.exp(terms - top)                             # the log-sum-exp trick: no overflow
    total = w.sum(axis=0)
    w /= total                                          # softmax weights: d LSE / d term
    r = top + np.log(total) - log_L                     # residuals in log loss
    huber = np.where(np.abs(r) <= delta, 0.5 * r * r, delta * (np.abs(r) - 0.5 * delta))   # (..., n)
    pw = weights * np.clip(r, -delta, delta) * w        # weights x Huber'(r) x d LSE / d term: (3, ..., n)
    gradient = np.stack([pw[0].sum(-1), pw[1].sum(-1), pw[2].sum(-1),
                         -(pw[0] * log_N).sum(-1), -(pw[1] * log_D).sum(-1)], axis=-1)
    return (weights * huber).sum(axis=-1), gradient
    # END SOLUTION


def _runs(N, D, L) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log N, log D, log L of the runs, refusing what has no logarithm."""
    arrays = [np.asarray(v, dtype=np.float64) for v in (N, D, L)]
    if any(v.ndim != 1 for v in arrays) or len({v.size for v in arrays}) != 1:
        raise ValueError(f"N, D, L must be 1-D arrays of one length (one entry per run), got shapes "
                         f"{[v.shape for v in arrays]}")
    for name, v in zip("NDL", arrays):
        bad = ~(np.isfinite(v) & (v > 0))
        if bad.any():
            raise ValueError(f"{name}[{int(np.argmax(bad))}] = {float(v[bad][0])!r}: every {name} must be finite "
                             f"and > 0")
    return tuple(np.log(v) for v in arrays)


@dataclass(frozen=True)
class ParametricFit:
    """L(N, D) = E + A / N^alpha + B / D^beta, as fitted; x the winning parameters (a, b, e, alpha, beta)."""
    x: np.ndarray
    objective: float        # its final objective
    status: str             # why its L-BFGS stopped (lbfgs.STATUSES)
    n_starts: int

    @property
    def E(self) -> float:
        return float(np.exp(self.x[2]))

    @property
    def A(self) -> float:
        return float(np.exp(self.x[0]))

    @property
    def B(self) -> float:
        return float(np.exp(self.x[1]))

    @property
    def alpha(self) -> float:
        return float(self.x[3])

    @property
    def beta(self) -> float:
        return float(self.x[4])

    @property
    def a(self) -> float:
        """N_opt ∝ C^a, a = beta / (alpha + beta)."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        """D_opt ∝ C^b, b = alpha / (alpha + beta)."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def params(self) -> dict[str, float]:
        return {"E": self.E, "A": self.A, "B": self.B, "alpha": self.alpha, "beta": self.beta, "a": self.a,
                "b": self.b}

    def loss(self, N, D) -> np.ndarray:
        """The fitted L(N, D), broadcasting N and D."""
        N, D = np.asarray(N, dtype=np.float64), np.asarray(D, dtype=np.float64)
        return self.E + self.A / N ** self.alpha + self.B / D ** self.beta

    def compute_optimal(self, C, flops_per_param_token: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
        """(N_opt, D_opt) minimising L(N, D) at compute C = k N D, k = flops_per_param_token (6: C = 6ND)."""
        G = (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))
        budget = np.asarray(C, dtype=np.float64) / flops_per_param_token      # N D
        return G * budget ** self.a, budget ** self.b / G


def _fits(log_N, log_D, log_L, weights: np.ndarray, starts: np.ndarray, delta: float, reduction: str,
          lbfgs_options: dict) -> list[ParametricFit]:
    """One fit per row of weights (R, n), each from every start (S, 5): all R x S minimised as one
    batch of L-BFGS runs, in chunks of resamples that keep the arrays to a few million elements."""
    S, n = len(starts), log_L.size
    fits = []
    chunk = max(1, 2_000_000 // (S * n))
    for first in range(0, len(weights), chunk):
        w = weights[first:first + chunk]
        if reduction == "mean":
            w = w / w.sum(axis=1, keepdims=True)
        owner = np.repeat(w, S, axis=0)                 # the weights of each row's resample

        def fun(X, rows):
            return huber_objective(X, log_N, log_D, log_L, delta, owner[rows])
        result = lbfgs(fun, np.tile(starts, (len(w), 1)), **lbfgs_options)
        f = np.where(np.isfinite(result.fun), result.fun, np.inf).reshape(len(w), S)
        for r, best in enumerate(f.argmin(axis=1)):
            i = r * S + best
            fits.append(ParametricFit(result.x[i].copy(), float(result.fun[i]), str(result.status[i]), S))
    return fits


def _check_fit_options(n: int, starts, delta: float, reduction: str) -> np.ndarray:
    if n < len(PARAMS):
        raise ValueError(f"fit_parametric: {n} runs cannot determine {len(PARAMS)} parameters")
    if reduction not in ("sum", "mean"):
        raise ValueError(f"fit_parametric: reduction must be 'sum' or 'mean', got {reduction!r}")
    if not delta > 0:
        raise ValueError(f"fit_parametric: delta must be > 0, got {delta!r}")
    starts = grid_starts() if starts is None else np.asarray(starts, dtype=np.float64)
    if starts.ndim != 2 or starts.shape[1] != len(PARAMS) or not len(starts):
        raise ValueError(f"fit_parametric: starts must be (S, {len(PARAMS)}) in the order {PARAMS}, got {starts.shape}")
    return starts


def fit_parametric(N, D, L, starts=None, delta: float = DELTA, reduction: str = "sum",
                   **lbfgs_options) -> ParametricFit:
    """Fit L(N, D) = E + A/N^alpha + B/D^beta to runs (N, D, final loss L), 1-D arrays of one length.

    Minimises the Huber objective (reduction "sum"; "mean" divides it by the number of runs, the
    published fit's choice) by L-BFGS from every row of `starts` (S, 5) in PARAMS' order (default
    grid_starts(): Hoffmann's 5400, about 2 s for 50 runs); the lowest final objective wins.
    lbfgs_options go to lbfgs."""
    log_N, log_D, log_L = _runs(N, D, L)
    starts = _check_fit_options(log_L.size, starts, delta, reduction)
    return _fits(log_N, log_D, log_L, np.ones((1, log_L.size)), starts, delta, reduction, lbfgs_options)[0]


def bootstrap_parametric(N, D, L, n_boot: int = 200, level: float = 0.95, starts=None, delta: float = DELTA,
                         reduction: str = "sum", rng: np.random.Generator | None = None,
                         **lbfgs_options) -> Bootstrap:
    """Bootstrap intervals of approach 3's parameters (bootstrap.py): n_boot resamples of the runs,
    each refitted from every start, all at once. A resample is the fit with each run's Huber term
    weighted by how often it was drawn, so the resamples are one batch for lbfgs (one Python loop
    instead of n_boot). Default starts: the fit to all the runs (from Hoffmann's grid) and
    BOOTSTRAP_GRID's 72 points around the ranges it covers."""
    log_N, log_D, log_L = _runs(N, D, L)
    check_level(level)
    if starts is None:
        best = fit_parametric(N, D, L, None, delta, reduction, **lbfgs_options).x
        starts = np.vstack([best, grid_starts(BOOTSTRAP_GRID)])
    starts = _check_fit_options(log_L.size, starts, delta, reduction)
    idx = resample(log_L.size, n_boot, rng=rng)
    weights = np.stack([np.bincount(row, minlength=log_L.size) for row in idx]).astype(np.float64)
    fits = _fits(log_N, log_D, log_L, weights, starts, delta, reduction, lbfgs_options)
    return summarise([f.params for f in fits], level)
