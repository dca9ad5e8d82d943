"""The layers a language model is built from (Chapter 3; used by the NPLM in Chapter 4 and the
GPT in Chapter 6). Shapes and parameter names follow PyTorch so weights copy across one to one.

    Linear(in, out)      y = x W^T + b            W: (out, in), b: (out,), both ~ U(-k, k), k = 1/sqrt(in)
    Embedding(V, C)      y = W[ids]               W: (V, C) ~ N(0, 1)
    LayerNorm(C)         y = (x - mean) / sqrt(var + eps) * w + b   over the last axis; w = 1, b = 0
    RMSNorm(C)           y = x / sqrt(mean(x^2) + eps) * w          over the last axis; w = 1 (Chapter 9)
    Dropout(p)           y = x * mask / (1 - p),  mask ~ Bernoulli(1 - p), in training mode only
    Tanh, ReLU, GELU     elementwise; GELU(approximate="tanh") is GPT-2's approximation

Parameters are float32 unless a layer is given `dtype` (float64 for gradient checks); random
initial values come from `scratchlm.rng.get_rng(rng)`.
"""

from __future__ import annotations

import math

import numpy as np

import scratchlm.autograd.functional as F
from scratchlm.nn import init
from scratchlm.nn.module import Module, Parameter


class Linear(Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 dtype=np.float32, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        k = 1.0 / math.sqrt(in_features)  # torch's default: keeps the output's scale near the input's
        self.weight = init.uniform_(Parameter(np.empty((out_features, in_features), dtype)), -k, k, rng)
        self.bias = (init.uniform_(Parameter(np.empty(out_features, dtype)), -k, k, rng)
                     if bias else None)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)  # (..., in) -> (..., out)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    def __init__(self, num_embeddings: int, embedding_dim: int, dtype=np.float32,
                 rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = init.normal_(Parameter(np.empty((num_embeddings, embedding_dim), dtype)), rng=rng)

    def forward(self, ids):
        return F.embedding(ids, self.weight)  # ids (...) -> (..., C)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


class LayerNorm(Module):
    def __init__(self, normalized_shape: int, eps: float = 1e-5, bias: bool = True,
                 dtype=np.float32) -> None:
        super().__init__()
        self.normalized_shape, self.eps = normalized_shape, eps
        self.weight = Parameter(np.ones(normalized_shape, dtype))
        self.bias = Parameter(np.zeros(normalized_shape, dtype)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight, self.bias, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, bias={self.bias is not None}"


class RMSNorm(Module):
    """Root-mean-square normalisation (Zhang & Sennrich 2019), LLaMA's replacement for LayerNorm: no
    mean subtracted and no bias, only a gain. eps = 1e-5 as LLaMA 2's (torch.nn.RMSNorm's default,
    eps=None, is the dtype's machine epsilon instead)."""

    def __init__(self, normalized_shape: int, eps: float = 1e-5, dtype=np.float32) -> None:
        super().__init__()
        self.normalized_shape, self.eps = normalized_shape, eps
        self.weight = Parameter(np.ones(normalized_shape, dtype))

    def forward(self, x):
        return F.rms_norm(x, self.weight, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"


class Dropout(Module):
    def __init__(self, p: float = 0.5, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout probability must be in [0, 1), got {p}")
        self.p, self.rng = p, rng

    def forward(self, x):
        return F.dropout(x, self.p, training=self.training, rng=self.rng)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Tanh(Module):
    def forward(self, x):
        return x.tanh()


class ReLU(Module):
    def forward(self, x):
        return x.relu()


class GELU(Module):
    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"
