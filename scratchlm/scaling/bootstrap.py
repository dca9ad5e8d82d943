"""Bootstrap confidence intervals for a fit to runs (Chapter 11, §11.2-§11.4).

The runs are all the data a scaling law has, so its uncertainty is estimated from them (Efron 1979):
draw n runs with replacement from the n, refit, and repeat; the spread of a parameter across the
refits estimates its sampling spread, and the percentile interval [q_(1-level)/2, q_(1+level)/2] of
the refitted values is its confidence interval. With `groups` (one label per run, e.g. the compute
budget of an IsoFLOP profile) the runs are drawn within each group, so every refit sees every group
with its own number of runs. A draw the fit refuses (a ValueError: too few distinct model sizes in a
budget for a parabola, one that opens downward) is counted in n_failed and not kept; that makes the
interval a little narrower than it should be, so n_failed is reported with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scratchlm.rng import get_rng


@dataclass(frozen=True)
class Bootstrap:
    samples: dict[str, np.ndarray]   # each parameter's refitted values, one per successful draw
    level: float                     # of the intervals, e.g. 0.95
    n_failed: int                    # draws the fit refused

    def interval(self, name: str) -> tuple[float, float]:
        """The percentile interval of parameter `name` at this level."""
        if name not in self.samples:
            raise KeyError(f"no bootstrap samples of {name!r}; the fit's parameters are {sorted(self.samples)}")
        lo, hi = np.quantile(self.samples[name], [(1 - self.level) / 2, (1 + self.level) / 2])
        return float(lo), float(hi)

    @property
    def intervals(self) -> dict[str, tuple[float, float]]:
        return {name: self.interval(name) for name in self.samples}


def resample(n: int, n_boot: int, groups=None, rng: np.random.Generator | None = None) -> np.ndarray:
    """(n_boot, n) indices of n runs drawn with replacement, each row one resample; with `groups` (one
    label per run) each group's runs are drawn from that group. rng: default scratchlm.rng's."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 2:
        raise ValueError(f"bootstrap: n_boot must be an integer >= 2, got {n_boot!r}")
    labels = np.zeros(n) if groups is None else np.asarray(groups)
    if labels.shape != (n,):
        raise ValueError(f"bootstrap: groups must be one label per run ({n},), got shape {labels.shape}")
    rng = get_rng(rng)
    idx = np.empty((n_boot, n), np.int64)
    for g in np.unique(labels):
        members = np.flatnonzero(labels == g)
        idx[:, members] = rng.choice(members, size=(n_boot, members.size))
    return idx


def check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"bootstrap: level must be in (0, 1), got {level!r}")


def summarise(params: list[dict[str, float] | None], level: float) -> Bootstrap:
    """A Bootstrap from the refits' params dicts, None for a resample the fit refused."""
    check_level(level)
    kept = [p for p in params if p is not None]
    if len(kept) < 2:
        raise ValueError(f"bootstrap: the fit refused {len(params) - len(kept)} of {len(params)} resamples; too few "
                         f"refits for an interval")
    return Bootstrap({name: np.array([p[name] for p in kept]) for name in kept[0]}, level, len(params) - len(kept))


def bootstrap(fit, arrays, n_boot: int = 200, level: float = 0.95, groups=None,
              rng: np.random.Generator | None = None) -> Bootstrap:
    """Refit resampled runs n_boot times: fit(*[a[idx] for a in arrays]) for each resample idx (drawn
    within each of `groups`), where fit returns an object whose `.params` is a dict of floats
    (PowerLaw, IsoFLOPFit, ParametricFit). rng: the generator to draw with (default scratchlm.rng's)."""
    check_level(level)
    arrays = [np.asarray(a) for a in arrays]
    n = len(arrays[0]) if arrays and arrays[0].ndim else 0
    if not n or any(a.ndim < 1 or len(a) != n for a in arrays):
        raise ValueError(f"bootstrap: arrays must hold one entry per run, of one length, got shapes "
                         f"{[a.shape for a in arrays]}")
    params = []
    for idx in resample(n, n_boot, groups, rng):
        try:
            params.append(fit(*(a[idx] for a in arrays)).params)
        except ValueError:
            params.append(None)
    return summarise(params, level)
