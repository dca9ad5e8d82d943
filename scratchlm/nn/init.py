"""Parameter initialisation, in place (Chapter 3).

Each function overwrites `tensor.data` and keeps its dtype. Random draws come from
`scratchlm.rng.get_rng(rng)` in float64 and are then rounded to the tensor's dtype, so one seed
gives the same weights (to rounding) whether a model is built in float32 or float64.

    normal_(t, mean, std)   t ~ N(mean, std^2)
    uniform_(t, a, b)       t ~ U(a, b)
    zeros_(t), ones_(t)
"""

from __future__ import annotations

import numpy as np

from scratchlm.rng import get_rng


def normal_(tensor, mean: float = 0.0, std: float = 1.0, rng: np.random.Generator | None = None):
    tensor.data[...] = get_rng(rng).normal(mean, std, size=tensor.shape)
    return tensor


def uniform_(tensor, a: float = 0.0, b: float = 1.0, rng: np.random.Generator | None = None):
    tensor.data[...] = get_rng(rng).uniform(a, b, size=tensor.shape)
    return tensor


def zeros_(tensor):
    tensor.data[...] = 0
    return tensor


def ones_(tensor):
    tensor.data[...] = 1
    return tensor
