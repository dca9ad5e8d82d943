"""One seeded random generator for the whole library.

Parameter initialisation, dropout masks and batch sampling draw from `get_rng()` unless they
are handed a generator of their own, so `manual_seed(n)` at the top of a script makes every
number after it reproducible (same seed -> same numbers).
"""

import numpy as np

_rng = np.random.default_rng(0)


def manual_seed(seed: int) -> np.random.Generator:
    """Reset the library's generator to `seed` and return it."""
    global _rng
    _rng = np.random.default_rng(seed)
    return _rng


def get_rng(rng: np.random.Generator | None = None) -> np.random.Generator:
    """`rng` when one is given, else the library's generator."""
    return _rng if rng is None else rng
