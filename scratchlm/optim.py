"""Optimisers, the learning-rate schedule and gradient clipping (Chapter 3; trains the NPLM in
Chapter 4 and the GPT in Chapter 6). The update rules are PyTorch's, to float rounding:

SGD, momentum mu, weight decay lambda (L2, added to the gradient):
    g <- g + lambda p;   b <- g on the first step, then b <- mu b + g;   p <- p - lr b

Adam (Kingma & Ba 2015), step t = 1, 2, ..., weight decay added to the gradient like SGD's:
    m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
    p <- p - lr/(1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

AdamW (Loshchilov & Hutter 2019): Adam with the decay decoupled from the gradient,
    p <- p (1 - lr lambda)   before the Adam update (and lambda never enters m or v). This is
    PyTorch's form; the paper multiplies lambda by the schedule's factor eta_t only, not by lr.

Parameters are anything with `.data` and `.grad` arrays (scratchlm.nn.Parameter); those whose
grad is None are skipped, and frozen ones (requires_grad False, see Module.requires_grad_) are
left out when the optimiser is built, so neither its state nor its checkpoint holds them. Groups
are torch-style dicts, each with its own hyperparameters:

    AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=6e-4)

Each group remembers the learning rate it was built with as `group["initial_lr"]` (torch's name):
its base rate, which a schedule scales: `optimizer.set_lr(cosine_lr(step, ...))` each step gives
every group its base rate times the schedule's factor, so groups with rates of their own (a smaller
one for a pretrained body, a larger one for a new head) follow one schedule together.

Updates are in place on the parameter arrays, so a step allocates nothing (except a C-ordered copy
of a gradient that arrives in another memory order): SGD's through one reusable scratch buffer, Adam's
in one pass over the parameter, its gradient and its two moments (kernels.adam_update, a Numba kernel
that gives the same bits as its NumPy twin, the update written as above in array operations).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from scratchlm.autograd import kernels


class Optimizer:
    """Parameter groups, per-parameter state, and their (de)serialisation."""

    def __init__(self, params: Iterable, defaults: dict) -> None:
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = defaults
        self.param_groups: list[dict] = []
        for i, group in enumerate(groups):
            unknown = set(group) - set(defaults) - {"params"}
            if unknown:
                raise ValueError(f"parameter group {i}: unknown hyperparameters {sorted(unknown)}; "
                                 f"{type(self).__name__} takes {sorted(defaults)}")
            trainable = [p for p in group["params"] if getattr(p, "requires_grad", True)]  # not frozen
            group = {**defaults, **group, "params": trainable}
            group["initial_lr"] = group["lr"]
            self._check_hyperparameters(group)
            self.param_groups.append(group)
        all_params = [p for g in self.param_groups for p in g["params"]]
        if not all_params:
            raise ValueError(f"{type(self).__name__}: every parameter it was given is frozen "
                             f"(requires_grad=False), so there is nothing to train")
        if len({id(p) for p in all_params}) != len(all_params):
            raise ValueError("a parameter appears more than once in the optimiser's groups")
        self.state: list[dict[str, np.ndarray]] = [{} for _ in all_params]  # in group order

    def _check_hyperparameters(self, group: dict) -> None:
        for key in ("lr", "initial_lr", "weight_decay", "momentum", "eps"):
            if key in group and not group[key] >= 0.0:
                raise ValueError(f"{type(self).__name__}: {key} must be >= 0, got {group[key]}")
        for beta in group.get("betas", ()):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{type(self).__name__}: betas must be in [0, 1), got {group['betas']}")

    def _params_with_state(self):
        """(group, parameter, its state dict) for parameters with grads."""
        i = 0
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    if not p.grad.flags.c_contiguous:  # e.g. the gradient of a transposed weight: one
                        p.grad = np.ascontiguousarray(p.grad)  # copy beats every pass striding across p
                    yield group, p, self.state[i]
                i += 1

    def set_lr(self, lr: float) -> None:
        """Follow a schedule: `lr` is the rate it gives now for the optimiser's own rate
        (defaults["lr"]), so its factor is lr / defaults["lr"], and each group's rate becomes its base
        rate times that factor, lr_group = initial_lr * lr / defaults["lr"]. Computed as
        lr * (initial_lr / defaults["lr"]): a group built at the optimiser's rate (ratio exactly 1)
        gets exactly `lr`, the number a loop that overwrote every group's rate used to set."""
        base = self.defaults["lr"]
        for i, group in enumerate(self.param_groups):
            if group["initial_lr"] == base:           # also when both are 0
                group["lr"] = lr
            elif base == 0.0:
                raise ValueError(f"{type(self).__name__}.set_lr: group {i} has its own lr "
                                 f"{group['initial_lr']} but the optimiser's lr is 0, so a schedule has "
                                 f"no factor to scale it by; build the optimiser with lr > 0")
            else:
                group["lr"] = lr * (group["initial_lr"] / base)

    def zero_grad(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """{"state": {"<index>.<name>": array}, "param_groups": [JSON-able hyperparameters with
        "params" as indices]}; indices count parameters across groups in order, like torch."""
        state = {f"{i}.{name}": value.copy() for i, s in enumerate(self.state) for name, value in s.items()}
        groups, start = [], 0
        for group in self.param_groups:
            n = len(group["params"])
            groups.append({**{k: (list(v) if isinstance(v, tuple) else v)
                              for k, v in group.items() if k != "params"},
                           "params": list(range(start, start + n))})
            start += n
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyperparameters and state saved by `state_dict()` into this optimiser, whose groups
        must hold parameters of the same number and shapes. Checks everything before changing anything."""
        name = type(self).__name__
        saved_groups = state_dict["param_groups"]
        if [len(g["params"]) for g in saved_groups] != [len(g["params"]) for g in self.param_groups]:
            raise ValueError(f"{name}.load_state_dict: saved groups hold "
                             f"{[len(g['params']) for g in saved_groups]} parameters, this optimiser's "
                             f"{[len(g['params']) for g in self.param_groups]}")
        params = [p for g in self.param_groups for p in g["params"]]
        new_state: list[dict[str, np.ndarray]] = [{} for _ in params]
        for key, value in state_dict["state"].items():
            index, _, field = key.partition(".")
            if not index.isdigit() or int(index) >= len(params) or not field:
                raise ValueError(f"{name}.load_state_dict: unexpected state entry {key!r}")
            p, value = params[int(index)], np.asarray(value)
            if field != "step" and (value.shape != p.data.shape or value.dtype != p.data.dtype):
                raise ValueError(f"{name}.load_state_dict: state {key!r}: expected shape {p.data.shape} "
                                 f"{p.data.dtype}, got shape {value.shape} {value.dtype}")
            new_state[int(index)][field] = value.copy()
        new_groups = []
        for i, saved in enumerate(saved_groups):
            keys = set(saved) - {"params", "initial_lr"}  # initial_lr: absent from older checkpoints
            if keys != set(self.defaults):
                raise ValueError(f"{name}.load_state_dict: group {i} has hyperparameters {sorted(keys)}, "
                                 f"{name} takes {sorted(self.defaults)}")
            group = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k != "params"}
            self._check_hyperparameters(group)
            new_groups.append(group)
        for group, saved in zip(self.param_groups, new_groups):
            group.update(saved)
        self.state = new_state


class SGD(Optimizer):
    def __init__(self, params: Iterable, lr: float = 1e-3, momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))
        # One scratch array as large as the largest parameter of each dtype, viewed per step.
        sizes: dict[np.dtype, int] = {}
        for p in (p for g in self.param_groups for p in g["params"]):
            sizes[p.data.dtype] = max(sizes.get(p.data.dtype, 0), p.data.size)
        self._scratch = {dtype: np.empty(size, dtype) for dtype, size in sizes.items()}

    def step(self) -> None:
        for group, p, state in self._params_with_state():
            scratch = self._scratch[p.data.dtype][:p.data.size].reshape(p.data.shape)
            lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
            g = p.grad
            if wd != 0.0:  # L2 penalty: g + wd p
                g = np.multiply(p.data, wd, out=scratch)
                g += p.grad
            if mu != 0.0:
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = g.copy()
                else:
                    buf *= mu
                    buf += g
                g = buf
            p.data -= np.multiply(g, lr, out=scratch)


class Adam(Optimizer):
    decoupled_weight_decay = False

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def step(self) -> None:
        for group, p, state in self._params_with_state():
            lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            if not state:
                state["step"] = np.array(0, dtype=np.int64)
                state["exp_avg"] = np.zeros_like(p.data)
                state["exp_avg_sq"] = np.zeros_like(p.data)
            state["step"] += 1
            t = int(state["step"])
            f = p.data.dtype.type     # the scalars rounded to the arrays' dtype, as NumPy would round them
            decoupled = self.decoupled_weight_decay
            arrays = (p.data, p.grad, state["exp_avg"], state["exp_avg_sq"])
            if f in (np.float32, np.float64) and all(a.flags.c_contiguous for a in arrays):
                update, arrays = kernels.adam_update, [a.reshape(-1) for a in arrays]   # flat views
            else:
                update = kernels.adam_update_ref                  # any layout or dtype, the same numbers
            update(*arrays, f(0.0 if decoupled else wd), f(1.0 - lr * wd if decoupled else 1.0), f(b1),
                   f(1.0 - b1), f(b2), f(1.0 - b2), f(math.sqrt(1.0 - b2 ** t)), f(eps), f(lr / (1.0 - b1 ** t)))


class AdamW(Adam):
    decoupled_weight_decay = True

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def cosine_lr(step: int, *, max_lr: float, min_lr: float, warmup_steps: int, total_steps: int) -> float:
    """nanoGPT's schedule: linear warmup to max_lr, cosine decay to min_lr at total_steps, then flat.

        step < warmup:            max_lr (step + 1) / (warmup + 1)
        warmup <= step <= total:  min_lr + (max_lr - min_lr) (1 + cos(pi r)) / 2,  r = (step - warmup)/(total - warmup)
        step > total:             min_lr
    """
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(f"cosine_lr needs 0 <= warmup_steps < total_steps, got {warmup_steps}, {total_steps}")
    if step < warmup_steps:
        return max_lr * (step + 1) / (warmup_steps + 1)
    if step > total_steps:
        return min_lr
    ratio = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (max_lr - min_lr)


def clip_grad_norm(params: Iterable, max_norm: float) -> float:
    """Scale every gradient by max_norm / ||g|| when the global norm ||g|| = sqrt(sum of all squared
    gradient entries) exceeds max_norm (torch's clip_grad_norm_, 1e-6 guard included). Returns
    ||g|| before clipping, for the caller to check: a NaN norm leaves the gradients unchanged, an infinite
    one scales them by 0 (infinite entries become NaN), as torch's does."""
    grads = [p.grad for p in params if p.grad is not None]
    total = math.sqrt(sum(float(np.dot(g.ravel(order="K"), g.ravel(order="K"))) for g in grads))
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            g *= coef
    return total
