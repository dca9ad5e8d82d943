"""Shared by the benchmark scripts: pin every thread pool before NumPy loads, and build the PyTorch
twins of a scratchlm model's parameters, optimiser and Transformer pieces (norm, RoPE, attention,
MLP, block: the twins of scratchlm.models.attention and gpt that the GPT's, and Chapter 9's models',
parity tests and benchmarks are made of).

    from _common import set_threads      # first lines of a benchmark, before `import numpy`
    THREADS = set_threads()              # reads --threads N from the command line (default 1)

BLAS (OpenMP / OpenBLAS / MKL), Numba and Rust's rayon (Hugging Face tokenizers) read these
variables once, when they start, so setting them after NumPy is imported has no effect.
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import time

from scratchlm import runtime  # the thread-count variables; scratchlm's import does not load NumPy


def set_threads(default: int = 1) -> int:
    """Set every thread-count variable (runtime.THREAD_VARS) to --threads N from sys.argv (or
    `default`); return N."""
    n = default
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            n = int(sys.argv[i + 1])
        elif arg.startswith("--threads="):
            n = int(arg.split("=", 1)[1])
    runtime.set_threads(n)
    return n


def median_step_seconds(steps: dict, n: int, warmup: int = 2) -> dict:
    """{name: median seconds of step(i)} over n timed calls of each step after `warmup` untimed ones.
    The implementations take turns call by call, so a change in the machine's load hits all of them
    alike."""
    times = {name: [] for name in steps}
    for i in range(warmup + n):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step(i)
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def machine() -> str:
    """One line naming the machine a table was measured on: CPU model, logical cores, and the widest
    vector unit Numba's compiler (LLVM) targets there (AVX-512, AVX2, ...), with PyTorch's own choice of
    kernels (torch.backends.cpu.get_cpu_capability) when PyTorch is installed."""
    import platform

    import llvmlite.binding as llvm
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    features = llvm.get_host_cpu_features()
    isa = next((name for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"),
                                        ("sse4.2", "SSE4.2"), ("neon", "NEON")) if features.get(flag)),
               platform.machine())
    line = f"{model}, {os.cpu_count()} logical cores; vector ISA {isa} (LLVM target {llvm.get_host_cpu_name()})"
    try:
        import torch
        line += f"; PyTorch kernels {torch.backends.cpu.get_cpu_capability()}"
    except ImportError:
        pass
    return line


def gemm_gflops(dtype="float32", n: int = 1024, repeats: int = 5) -> float:
    """NumPy's measured (n, n) @ (n, n) GEMM throughput, the best of `repeats` products: the ceiling a
    table's matrix products are compared with."""
    import numpy as np
    a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)
    a @ a
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def torch_parameters(model) -> dict:
    """{name: leaf torch tensor requiring grad} copied from a scratchlm model's parameters."""
    import torch  # only the benchmarks that have a PyTorch reference need it
    return {name: torch.tensor(p.data, requires_grad=True) for name, p in model.named_parameters()}


def torch_adamw(params: dict, decayed: set, lr: float, weight_decay: float, betas=(0.9, 0.99)):
    """PyTorch's AdamW over `params` grouped as scratchlm.train.configure_optimizer groups them: weight
    decay on the parameters named in `decayed` (scratchlm.train.decayed_parameter_names), none on the
    others."""
    import torch
    groups = [{"params": [p for name, p in params.items() if name in decayed], "weight_decay": weight_decay},
              {"params": [p for name, p in params.items() if name not in decayed], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas))


# ---------------------------------------------------------------------------------------------
# PyTorch twins of scratchlm's Transformer pieces (models/attention.py, models/gpt.py), written over
# a dict of named parameters (torch_parameters) with the same names, so that any model built from
# scratchlm's Block (the GPT, and the encoder and encoder-decoder of Chapter 9) has a twin made of
# these calls. Every function takes `config` with the GPTConfig fields it reads.
# ---------------------------------------------------------------------------------------------

def torch_norm(x, params: dict, name: str, config):
    """LayerNorm (GPT-2) or RMSNorm (config.norm == "rmsnorm", eps 1e-5 as scratchlm's) of `name`."""
    import torch.nn.functional as TF
    if getattr(config, "norm", "layernorm") == "rmsnorm":
        return TF.rms_norm(x, (config.n_embd,), params[f"{name}.weight"], eps=1e-5)
    return TF.layer_norm(x, (config.n_embd,), params[f"{name}.weight"], params.get(f"{name}.bias"))


def torch_linear(x, params: dict, name: str):
    import torch.nn.functional as TF
    return TF.linear(x, params[f"{name}.weight"], params.get(f"{name}.bias"))


def torch_rope_tables(T: int, hs: int, base: float, start: int = 0):
    """cos, sin (T, hs) of RoPE's angles, Hugging Face's LLaMA formula (each angle twice, for the two
    halves), computed here independently of scratchlm's F.rope_tables."""
    import torch
    inv_freq = 1.0 / (base ** (torch.arange(0, hs, 2, dtype=torch.float64) / hs))    # (hs/2,)
    angles = torch.outer(torch.arange(start, start + T, dtype=torch.float64), inv_freq)
    emb = torch.cat([angles, angles], dim=-1)                                         # (T, hs)
    return emb.cos(), emb.sin()


def torch_rope(x, cos, sin):
    """Rotate-half RoPE by hand, as Hugging Face's apply_rotary_pos_emb: x * cos + rotate_half(x) * sin."""
    import torch
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos.to(x.dtype) + torch.cat([-x2, x1], dim=-1) * sin.to(x.dtype)


def torch_attention_mask(Tq: int, Tk: int, causal: bool, key_lengths, B: int):
    """Boolean (B, 1, Tq, Tk) mask, True where a query attends: keys j < key_lengths[b] and, if causal,
    j <= i + Tk - Tq (queries are the last Tq positions, as scratchlm's); None when nothing is masked."""
    import torch
    if not causal and key_lengths is None:
        return None
    j = torch.arange(Tk)
    mask = torch.ones(B, 1, Tq, Tk, dtype=torch.bool)
    if causal:
        mask = mask & (j[None, :] <= torch.arange(Tq)[:, None] + Tk - Tq)
    if key_lengths is not None:
        mask = mask & (j < torch.as_tensor(key_lengths)[:, None, None, None])
    return mask


def torch_sdpa(q, k, v, causal: bool, key_lengths=None):
    """torch's scaled_dot_product_attention of (B, nh, T, hs) heads with scratchlm's masks."""
    import torch.nn.functional as TF
    if causal and key_lengths is None and q.shape[2] == k.shape[2]:
        return TF.scaled_dot_product_attention(q, k, v, is_causal=True)   # nanoGPT's call, the fast path
    mask = torch_attention_mask(q.shape[2], k.shape[2], causal, key_lengths, q.shape[0])
    return TF.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _heads(t, nh: int):
    B, T, C = t.shape
    return t.view(B, T, nh, C // nh).transpose(1, 2)                               # (B, nh, T, hs)


def torch_self_attention(x, params: dict, name: str, config, causal: bool = True, key_lengths=None):
    """scratchlm's SelfAttention `name` (c_attn, c_proj; RoPE when config.position == "rope")."""
    B, T, C = x.shape
    q, k, v = (_heads(t, config.n_head) for t in torch_linear(x, params, f"{name}.c_attn").split(C, dim=2))
    if getattr(config, "position", "learned") == "rope":
        cos, sin = torch_rope_tables(T, C // config.n_head, config.rope_base)
        q, k = torch_rope(q, cos, sin), torch_rope(k, cos, sin)
    y = torch_sdpa(q, k, v, causal, key_lengths)
    return torch_linear(y.transpose(1, 2).reshape(B, T, C), params, f"{name}.c_proj")


def torch_cross_attention(x, memory, params: dict, name: str, config, memory_lengths=None):
    """scratchlm's CrossAttention `name` (c_q from x, c_kv from memory, c_proj)."""
    B, T, C = x.shape
    q = _heads(torch_linear(x, params, f"{name}.c_q"), config.n_head)
    k, v = (_heads(t, config.n_head) for t in torch_linear(memory, params, f"{name}.c_kv").split(C, dim=2))
    y = torch_sdpa(q, k, v, False, memory_lengths)
    return torch_linear(y.transpose(1, 2).reshape(B, T, C), params, f"{name}.c_proj")


def torch_mlp(x, params: dict, name: str, config):
    """scratchlm's MLP `name`: GELU (config.gelu: "tanh" or "none") or SwiGLU (c_fc = [gate; value])."""
    import torch.nn.functional as TF
    u = torch_linear(x, params, f"{name}.c_fc")
    if getattr(config, "mlp", "gelu") == "swiglu":
        a, b = u.chunk(2, dim=-1)
        u = TF.silu(a) * b
    else:
        u = TF.gelu(u, approximate=config.gelu)
    return torch_linear(u, params, f"{name}.c_proj")


def torch_block(x, params: dict, name: str, config, causal: bool = True, key_lengths=None, memory=None,
                memory_lengths=None):
    """scratchlm's Block `name` (e.g. "h.0"): pre-norm self-attention, cross-attention when the
    block has one (its parameters are in `params`), MLP."""
    x = x + torch_self_attention(torch_norm(x, params, f"{name}.ln_1", config), params, f"{name}.attn", config,
                                 causal, key_lengths)
    if f"{name}.cross_attn.c_q.weight" in params:
        x = x + torch_cross_attention(torch_norm(x, params, f"{name}.ln_cross", config), memory, params,
                                      f"{name}.cross_attn", config, memory_lengths)
    return x + torch_mlp(torch_norm(x, params, f"{name}.ln_2", config), params, f"{name}.mlp", config)


def torch_stack(x, params: dict, name: str, config, n_layer: int, causal: bool, key_lengths=None, memory=None,
                memory_lengths=None):
    """scratchlm's bert.Stack `name` (e.g. "encoder") over token embeddings x (B, T, C): learned
    positions (none with RoPE), n_layer blocks (with cross-attention to `memory` when they have it),
    final norm. The body of the BERT and T5 twins (bench_transformer.py)."""
    if f"{name}.wpe.weight" in params:
        x = x + params[f"{name}.wpe.weight"][:x.shape[1]]
    for i in range(n_layer):
        x = torch_block(x, params, f"{name}.h.{i}", config, causal, key_lengths, memory, memory_lengths)
    return torch_norm(x, params, f"{name}.ln_f", config)
