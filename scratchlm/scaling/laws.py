"""Power laws by log-log least squares, and Chinchilla's IsoFLOP profiles (Chapter 11, §11.2 and §11.4).

A power law y = k x^p is a straight line in log-log coordinates, log y = log k + p log x, so its
exponent and constant are an ordinary least-squares line through (log x_i, log y_i). Kaplan et al.
2020 write the laws of loss in model size and in data as

    L(N) = (N_c / N)^alpha_N,   L(D) = (D_c / D)^alpha_D        alpha_N = 0.076, alpha_D = 0.095

i.e. p = -alpha, k = x_c^alpha (PowerLaw.alpha and .x_c give them back). Their fits have no
irreducible term: at their scales the loss was still far above the text's entropy. At ours it is not,
and a pure power law fitted to L flattens its exponent as L approaches E; fit_power_law(x, L,
offset=E) fits L - E = (x_c / x)^alpha instead, with E given (approach 3's estimate, parametric.py)
rather than fitted too: three parameters from the few runs of one slice are poorly determined.

Approach 2 of Hoffmann et al. 2022 (IsoFLOP profiles): train models of several sizes N on the same
compute C each (D = C / (6N) tokens), one profile per budget. Along a profile the final loss has a
minimum in N; near it a parabola in x = log N fits the profile,

    L(x) ~ c2 x^2 + c1 x + c0,   minimum at x* = -c1 / (2 c2),   L* = c0 - c1^2 / (4 c2)   (c2 > 0)

(the exact shape is not a parabola; a parabola's vertex is a good estimate when the sizes straddle
the minimum). The minima of the budgets then give two power laws in C,

    N_opt = k_N C^a,   D_opt = k_D C^b,   fitted by log-log least squares,

a = 0.49, b = 0.51 in Hoffmann et al.'s Table 2 (Kaplan: N_opt ∝ C^0.73). D_opt here is read off the
runs themselves (a straight line of log D against log N through each budget's runs, at x*), which is
C / (6 N_opt) when the runs were planned with C = 6ND and stays right when C counts FLOPs otherwise
(flops.py's exact count). Intervals: bootstrap.py, resampling runs within each budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def _positive(name: str, v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    bad = ~(np.isfinite(v) & (v > 0))
    if v.ndim != 1 or bad.any():
        where = f"{name}[{int(np.argmax(bad))}] = {float(v[bad][0])!r}" if v.ndim == 1 else f"shape {v.shape}"
        raise ValueError(f"{name} must be a 1-D array of finite numbers > 0, got {where}")
    return v


@dataclass(frozen=True)
class PowerLaw:
    """y = offset + scale x^exponent."""
    exponent: float
    scale: float
    offset: float = 0.0

    def __call__(self, x) -> np.ndarray:
        return self.offset + self.scale * np.asarray(x, dtype=np.float64) ** self.exponent

    @property
    def alpha(self) -> float:
        """Kaplan's exponent: y - offset = (x_c / x)^alpha, alpha = -exponent."""
        return -self.exponent

    @property
    def x_c(self) -> float:
        """Kaplan's constant (N_c, D_c): scale = x_c^alpha. A law that does not fall (alpha <= 0) has
        none (nan); a nearly flat one can put it beyond float64 (inf)."""
        if self.alpha <= 0:
            return math.nan
        log_x_c = math.log(self.scale) / self.alpha
        return math.exp(log_x_c) if log_x_c < 709.0 else math.inf

    @property
    def params(self) -> dict[str, float]:
        return {"exponent": self.exponent, "scale": self.scale, "alpha": self.alpha, "x_c": self.x_c}


def fit_power_law(x, y, offset: float = 0.0) -> PowerLaw:
    """y = offset + scale x^exponent by least squares of log(y - offset) on log x (module docstring);
    x, y 1-D of one length, at least two distinct x, every y > offset."""
    x = _positive("x", x)
    y = np.asarray(y, dtype=np.float64)
    if y.shape != x.shape:
        raise ValueError(f"fit_power_law: x and y must have one shape, got {x.shape} and {y.shape}")
    if not np.isfinite(offset):
        raise ValueError(f"fit_power_law: offset must be finite, got {offset!r}")
    if not (y > offset).all():
        i = int(np.argmin(y > offset))
        raise ValueError(f"fit_power_law: y[{i}] = {float(y[i])!r} is not above the offset {offset!r}; log(y - offset) "
                         f"needs every y > offset")
    if np.unique(x).size < 2:
        raise ValueError(f"fit_power_law: need at least two distinct x for a line, got {np.unique(x).tolist()}")
    exponent, log_scale = np.polyfit(np.log(x), np.log(y - offset), 1)
    return PowerLaw(float(exponent), float(np.exp(log_scale)), float(offset))


def isoflop_minimum(log_N, L) -> tuple[float, float, float]:
    """The parabola L = c2 (x - x*)^2 + L* through one IsoFLOP profile by least squares, x = log N:
    -> (x* = log N_opt, L* the loss there, c2 its curvature). ValueError when there are fewer than
    three distinct sizes or the parabola opens downward (c2 <= 0: no minimum)."""
    x, y = np.asarray(log_N, dtype=np.float64), np.asarray(L, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"isoflop_minimum: log_N and L must be finite 1-D arrays of one length, got shapes "
                         f"{x.shape} and {y.shape}")
    if np.unique(x).size < 3:
        raise ValueError(f"isoflop_minimum: a parabola needs at least three distinct model sizes, got "
                         f"{np.unique(x).size}")
    # BEGIN SOLUTION 11.2: The minimum of an IsoFLOP parabola (chapters/ch11_scaling_laws.py §11.2)
    centre = x.mean()                                  # centred x: a better-conditioned least squares
    u = x - centre
    (c2, c1, c0), *_ = np.linalg.lstsq(np.stack([u * u, u, np.ones_like(u)], axis=1), y, rcond=None)
    if not c2 > 0:
        raise ValueError(f"isoflop_minimum: the parabola opens downward (curvature {c2:.3g}), so it has no "
                         f"minimum; the sizes do not straddle the optimum")
    return float(centre - c1 / (2 * c2)), float(c0 - c1 * c1 / (4 * c2)), float(c2)
    # END SOLUTION


@dataclass(frozen=True)
class IsoFLOPFit:
    """Each budget's minimum (arrays in increasing budget) and the power laws through them."""
    budgets: np.ndarray      # (K,) compute C of each profile
    N_opt: np.ndarray        # (K,)
    D_opt: np.ndarray        # (K,)
    L_opt: np.ndarray        # (K,) the parabola's loss at its minimum
    curvature: np.ndarray    # (K,) c2 of L = c2 (log N - log N_opt)^2 + L_opt
    N_law: PowerLaw          # N_opt = scale C^a
    D_law: PowerLaw          # D_opt = scale C^b

    @property
    def a(self) -> float:
        return self.N_law.exponent

    @property
    def b(self) -> float:
        return self.D_law.exponent

    @property
    def params(self) -> dict[str, float]:
        return {"a": self.a, "b": self.b}


def fit_isoflop(N, D, L, budget) -> IsoFLOPFit:
    """Approach 2 from runs (N, D, final loss L) and each run's compute budget C (runs of one budget
    share its value, the profile's label): a parabola per budget, then N_opt ∝ C^a and D_opt ∝ C^b.
    Needs at least two budgets, and three distinct sizes in each."""
    N, D, C = _positive("N", N), _positive("D", D), _positive("budget", budget)
    L = np.asarray(L, dtype=np.float64)
    if not (N.shape == D.shape == L.shape == C.shape):
        raise ValueError(f"fit_isoflop: N, D, L, budget must have one shape (one entry per run), got "
                         f"{N.shape}, {D.shape}, {L.shape}, {C.shape}")
    budgets = np.unique(C)
    if budgets.size < 2:
        raise ValueError(f"fit_isoflop: need at least two compute budgets for a law in C, got {budgets.tolist()}")
    minima = []
    for c in budgets:
        runs = C == c
        x, log_D = np.log(N[runs]), np.log(D[runs])
        try:
            x_opt, L_opt, c2 = isoflop_minimum(x, L[runs])
        except ValueError as e:
            raise ValueError(f"fit_isoflop: budget C = {c:.4g}: {e}") from None
        slope, intercept = np.polyfit(x, log_D, 1)     # log D along the profile, at x*
        minima.append((np.exp(x_opt), np.exp(intercept + slope * x_opt), L_opt, c2))
    N_opt, D_opt, L_opt, curvature = (np.array(v) for v in zip(*minima))
    return IsoFLOPFit(budgets, N_opt, D_opt, L_opt, curvature, fit_power_law(budgets, N_opt),
                      fit_power_law(budgets, D_opt))
