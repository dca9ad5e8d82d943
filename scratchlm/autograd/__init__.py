"""Reverse-mode automatic differentiation on NumPy arrays. Chapter 3.

    Tensor            an array plus the recipe that made it; `backward()` fills `.grad`   tensor.py
    no_grad           context manager: build no graph (evaluation, optimiser steps)        tensor.py
    functional (F)    linear, softmax, cross_entropy, layer_norm, gelu, embedding, ...    functional.py
    kernels           the Numba loops behind the fused functions, each with a NumPy twin   kernels.py
                      (their fast exp and row helpers: scratchlm/numerics.py)
    gradcheck         central-difference check of every gradient, in float64              gradcheck.py
"""

from scratchlm.autograd.tensor import Tensor, is_grad_enabled, no_grad, unbroadcast
from scratchlm.autograd.gradcheck import GradcheckError, gradcheck

__all__ = ["Tensor", "no_grad", "is_grad_enabled", "unbroadcast", "gradcheck", "GradcheckError"]
