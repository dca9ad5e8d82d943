"""Neural-network building blocks on top of `scratchlm.autograd` (Chapter 3 onwards).

    module.py   Module, Parameter, Sequential, ModuleList: parameter registry, train/eval, state_dict
    layers.py   Linear, Embedding, LayerNorm, RMSNorm, Dropout, Tanh, ReLU, GELU
    init.py     normal_, uniform_, zeros_, ones_ (in place, seeded by scratchlm.rng)

Optimisers, learning-rate schedules and gradient clipping live in `scratchlm.optim`; saving and
loading in `scratchlm.checkpoint`.
"""

from scratchlm.nn import init
from scratchlm.nn.layers import GELU, Dropout, Embedding, LayerNorm, Linear, ReLU, RMSNorm, Tanh
from scratchlm.nn.module import LoadResult, Module, ModuleList, Parameter, Sequential

__all__ = ["init", "Module", "Parameter", "Sequential", "ModuleList", "LoadResult",
           "Linear", "Embedding", "LayerNorm", "RMSNorm", "Dropout", "Tanh", "ReLU", "GELU"]
