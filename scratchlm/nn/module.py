"""Module and Parameter: how a model keeps track of its weights (Chapter 3).

A `Parameter` is a `Tensor` that a model learns (requires_grad=True). A `Module` is a callable
container: assigning a Parameter or another Module to one of its attributes registers it, in
assignment order, so that

    model.named_parameters()  ->  ("blocks.0.attn.c_attn.weight", Parameter), ...

walks the tree with the same dotted names and the same order as PyTorch (a module's own
parameters first, then each child's, recursively). Those names are the keys of `state_dict()`,
which is what checkpoints store and what parity tests use to copy weights from a PyTorch model.

    Module.__call__(x) = Module.forward(x)
    state_dict()       : name -> copy of the parameter's array
    load_state_dict(d) : copies d[name] into each parameter, in place, after checking that every
                         name, shape and dtype matches (nothing is changed when one does not)

`train()` / `eval()` set the `.training` flag on the whole tree; Dropout reads it.
`requires_grad_(False)` freezes a module's parameters (e.g. a pretrained body while a new head
trains): backward computes no gradient for them and optimisers built afterwards leave them out,
while `state_dict()` still holds every parameter.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

import numpy as np

from scratchlm.autograd import Tensor


class Parameter(Tensor):
    """A Tensor the optimiser updates: requires_grad unless frozen (Module.requires_grad_(False)).
    Keeps `data`'s dtype."""

    __slots__ = ()

    def __init__(self, data):
        super().__init__(np.asarray(data), requires_grad=True)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"


class LoadResult(NamedTuple):
    """What `load_state_dict(..., strict=False)` skipped."""
    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class of every layer and model. Subclasses call `super().__init__()` first,
    assign Parameters and sub-Modules as attributes, and define `forward`."""

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning "
                                 f"attribute {name!r}")
        # An attribute lives in at most one registry; re-assigning it moves or removes it.
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # -- walking the tree ----------------------------------------------------------------------

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for this module ("" for itself) and every descendant, depth first."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        return (m for _, m in self.named_modules())

    def children(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def named_parameters(self, remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter), own parameters before each child's. A parameter shared by two
        modules (tied weights) is yielded once, under its first name, unless remove_duplicate=False."""
        seen: set[int] = set()
        for prefix, module in self.named_modules():
            for name, p in module._parameters.items():
                if remove_duplicate:
                    if id(p) in seen:
                        continue
                    seen.add(id(p))
                yield (f"{prefix}.{name}" if prefix else name), p

    def parameters(self) -> list[Parameter]:
        """Every distinct parameter, in `named_parameters()` order (a list, so it can be reused)."""
        return [p for _, p in self.named_parameters()]

    # -- training state ------------------------------------------------------------------------

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (False) or unfreeze (True) every parameter of this module and its children; returns
        self, so `model.body.requires_grad_(False)` reads as one step. Build the optimiser after
        freezing: it keeps only the parameters that require gradients."""
        for p in self.parameters():
            p.requires_grad = bool(requires_grad)
        return self

    def zero_grad(self) -> None:
        """Forget accumulated gradients (grad = None: the next backward writes instead of adds)."""
        for p in self.parameters():
            p.grad = None

    # -- saving and loading --------------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        """Name -> a copy of each parameter's array, every name included (tied weights under each)."""
        return {name: p.data.copy() for name, p in self.named_parameters(remove_duplicate=False)}

    def load_state_dict(self, state_dict: dict[str, np.ndarray], strict: bool = True) -> LoadResult:
        """Copy `state_dict`'s arrays into the parameters in place (optimisers keep their references).

        Everything is checked before anything is written: with strict=True a missing or unexpected
        name raises KeyError listing them all; a shape or dtype that differs raises ValueError
        naming the parameter, expected vs got. With strict=False unmatched names are skipped and
        returned."""
        params = dict(self.named_parameters(remove_duplicate=False))
        missing = [k for k in params if k not in state_dict]
        unexpected = [k for k in state_dict if k not in params]
        if strict and (missing or unexpected):
            raise KeyError(f"{type(self).__name__}.load_state_dict: missing keys {missing}, "
                           f"unexpected keys {unexpected}")
        for name, p in params.items():
            if name not in state_dict:
                continue
            got = np.asarray(state_dict[name])
            if got.shape != p.shape or got.dtype != p.dtype:
                raise ValueError(f"parameter {name!r}: expected shape {p.shape} {p.dtype}, "
                                 f"got shape {got.shape} {got.dtype}")
        for name, p in params.items():
            if name in state_dict:
                np.copyto(p.data, state_dict[name])
        return LoadResult(missing, unexpected)

    # -- printing ------------------------------------------------------------------------------

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        return head + ")" if not lines else head + "\n  " + "\n  ".join(lines) + "\n)"


class ModuleList(Module):
    """A list of modules whose parameters are registered under "0", "1", ...; it has no forward."""

    def __init__(self, modules: Iterable[Module] = ()) -> None:
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> ModuleList:
        setattr(self, str(len(self._modules)), module)
        return self

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())


class Sequential(ModuleList):
    """A ModuleList whose forward applies its modules one after another."""

    def __init__(self, *modules: Module) -> None:
        super().__init__(modules)

    def forward(self, x):
        for m in self:
            x = m(x)
        return x
