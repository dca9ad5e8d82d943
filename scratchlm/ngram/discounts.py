"""Stage 3a: discounts from count-of-counts (Chapter 2).

Every smoothing method that discounts takes some probability mass from the n-grams it has seen
and gives it to those it has not. How much to take is estimated from n_r, the number of n-grams
seen exactly r times (at one order):

Good-Turing (Good 1953, crediting Turing), as Katz (1987) uses it. An n-gram seen r times is
"really" seen r* = (r + 1) n_{r+1} / n_r times. Katz discounts only counts r <= K (large counts
are reliable), rescaled so that the mass taken from them is still the Good-Turing estimate n_1 /
total of everything unseen:

    d_r = (r*/r - A) / (1 - A),   A = (K + 1) n_{K+1} / n_1,   p*(w | h) = d_r c(h w) / c(h)

Absolute discounting / Kneser-Ney (Ney, Essen & Kneser 1994): subtract one D from every count,

    D = n_1 / (n_1 + 2 n_2)

Modified Kneser-Ney (Chen & Goodman 1999, eq. 26): three discounts, for counts 1, 2 and 3+,

    Y = n_1 / (n_1 + 2 n_2),   D_r = r - (r + 1) Y n_{r+1} / n_r   (r = 1, 2, 3)

When a needed n_r is 0 or a discount falls outside (0, r], the data cannot support the estimate
(tiny or artificial corpora: 26 letters never give a unigram with adjusted count 1). Like lmplz's
--discount_fallback we then warn and use D_1, D_2, D_3+ = 0.5, 1, 1.5. (lmplz also accepts D = 0;
we do not, since a context whose continuations were all seen once would then give unseen words
probability 0.)

Discounts given by the user are checked, not repaired (`check_discounts`): D_r must lie in [0, r],
lmplz's own range (its BadDiscountException). That is exactly what keeps every estimate a
distribution: a count-r n-gram keeps (r - D_r) / c(h.) >= 0 only if D_r <= r, and the back-off
weight sum_w D / c(h.) is >= 0 only if D >= 0 (the two always sum to 1). One discount for every
count (absolute discounting, Kneser-Ney) must therefore lie in [0, 1], the range of D_1. D = 0 is
allowed there, as lmplz allows it: no mass for unseen words at that order, like maximum likelihood.
"""

from __future__ import annotations

import warnings

import numpy as np

FALLBACK = (0.5, 1.0, 1.5)  # lmplz's --discount_fallback defaults for D_1, D_2, D_3+


class DiscountFallbackWarning(UserWarning):
    """Discounts could not be estimated from the count-of-counts; fallback values were used."""


def _fallback(why: str, order: int) -> None:
    warnings.warn(f"order {order}: {why}; using the fallback discounts D1, D2, D3+ = {FALLBACK} "
                  "(as lmplz --discount_fallback)", DiscountFallbackWarning, stacklevel=3)


def kneser_ney_discounts(n: np.ndarray, order: int, modified: bool = True) -> np.ndarray:
    """[0, D_1, D_2, D_3+] for one order from its count-of-counts n (n[r] for r = 1..4).

    modified=True: Chen & Goodman's three discounts; False: one D = n_1 / (n_1 + 2 n_2) for every
    count (absolute discounting, Kneser-Ney). Index the result with min(count, 3).
    """
    n = np.asarray(n, dtype=np.float64)
    needed = (1, 2, 3) if modified else (1, 2)
    if any(n[r] == 0 for r in needed):
        r = next(r for r in needed if n[r] == 0)
        _fallback(f"no n-gram has count {r}, so the discounts cannot be estimated", order)
        return np.array([0.0, *FALLBACK]) if modified else np.array([0.0, *[FALLBACK[0]] * 3])
    # BEGIN SOLUTION 2.5: Modified Kneser-Ney discounts (chapters/ch02_smoothing.py §2.7)
    y = n[1] / (n[1] + 2 * n[2])
    if not modified:
        return np.array([0.0, y, y, y])
    d = np.array([0.0] + [r - (r + 1) * y * n[r + 1] / n[r] for r in (1, 2, 3)])
    bad = [r for r in (1, 2, 3) if not 0 < d[r] <= r]
    if bad:
        _fallback(f"discount D{bad[0]} = {d[bad[0]]:.4g} is outside (0, {bad[0]}]", order)
        return np.array([0.0, *FALLBACK])
    return d
    # END SOLUTION


def check_discounts(given, orders: int, modified: bool) -> list[np.ndarray]:
    """User-given discounts as [0, D_1, D_2, D_3+] per order (index with min(count, 3)), each D_r
    checked to lie in [0, r] (see the module docstring); a ValueError names the order and the range.

    modified=True: `given` is one (D1, D2, D3+) per order; False: one D per order, used for every count.
    """
    name = "(D1, D2, D3+)" if modified else "discount"
    if isinstance(given, (str, bytes)) or not hasattr(given, "__len__") or len(given) != orders:
        raise ValueError(f"need one {name} per order (orders 1..{orders}), got {given!r}")
    out = []
    for k, d in enumerate(given, 1):
        try:
            values = [float(x) for x in d] if modified else [float(d)] * 3
        except (TypeError, ValueError):
            raise ValueError(f"order {k}: {name} must be {'three numbers' if modified else 'a number'}, "
                             f"got {d!r}") from None
        if len(values) != 3:
            raise ValueError(f"order {k}: need three discounts (D1, D2, D3+), got {len(values)}: {d!r}")
        for r, x in enumerate(values, 1):
            top = r if modified else 1  # one D serves count 1 too, so it is bounded by D_1's range
            if not 0 <= x <= top:
                what = f"D{r if r < 3 else '3+'}" if modified else "the discount"
                raise ValueError(f"order {k}: {what} = {x!r} is outside [0, {top}] (a larger discount "
                                 f"makes probabilities negative, a negative one makes back-off weights negative)")
        out.append(np.array([0.0, *values]))
    return out


def good_turing_discounts(n: np.ndarray, max_count: int, order: int) -> np.ndarray:
    """Katz's discount ratios d_r for r = 0..max_count (d_0 unused = 1) from count-of-counts n
    (n[r] for r = 1..max_count + 1). Counts above max_count are not discounted (d = 1).

    A zero n_r, or A >= 1: the lmplz fallback, as ratios. A ratio outside (0, 1] (e.g. d_1 = 0
    whenever max_count = 1): that count is not discounted, d_r = 1, with a warning (as SRILM does).
    """
    d = np.ones(max_count + 1)
    if max_count == 0:
        return d
    n = np.asarray(n, dtype=np.float64)
    if any(n[r] == 0 for r in range(1, max_count + 2)):
        r = next(r for r in range(1, max_count + 2) if n[r] == 0)
        _fallback(f"no n-gram has count {r}, so the Good-Turing discounts cannot be estimated", order)
        return _ratios_from_absolute(max_count)
    r = np.arange(1, max_count + 1)
    # BEGIN SOLUTION 2.1: Katz's discount ratios from Good-Turing (chapters/ch02_smoothing.py §2.2)
    a = (max_count + 1) * n[max_count + 1] / n[1]
    if a >= 1:  # Katz's rescaling would take more than Good-Turing's n_1 / N
        _fallback(f"(K + 1) n_(K+1) / n_1 = {a:.3g} >= 1, so Katz's discounts cannot be estimated", order)
        return _ratios_from_absolute(max_count)
    d[1:] = ((r + 1) * n[r + 1] / (r * n[r]) - a) / (1 - a)
    # END SOLUTION
    bad = ~((d[1:] > 0) & (d[1:] <= 1))
    if bad.any():
        warnings.warn(f"order {order}: Good-Turing ratios for counts {r[bad].tolist()} are "
                      f"{np.round(d[1:][bad], 4).tolist()}, outside (0, 1]; those counts are not "
                      "discounted", DiscountFallbackWarning, stacklevel=2)
        d[1:][bad] = 1.0
    return d


def _ratios_from_absolute(max_count: int) -> np.ndarray:
    """The fallback absolute discounts as Katz ratios: d_r = (r - D_r) / r."""
    r = np.arange(1, max_count + 1)
    D = np.array(FALLBACK)[np.minimum(r, 3) - 1]
    return np.concatenate([[1.0], (r - D) / r])
