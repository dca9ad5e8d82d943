"""Values and gradients against PyTorch in float64 (skipped when torch is not installed)."""

import numpy as np
import pytest

import scratchlm.autograd.functional as F
from scratchlm.autograd import Tensor

torch = pytest.importorskip("torch")
TF = torch.nn.functional

rng = np.random.default_rng(0)
X = rng.normal(scale=3.0, size=(6, 7))
W = rng.normal(size=7)
B = rng.normal(size=7)
T = np.array([0, 6, -1, 3, 3, -1])
IDS = np.array([[1, 4, 4], [0, 1, 1]])
LIN_W = rng.normal(size=(5, 7))
LIN_B = rng.normal(size=5)

# name: (scratchlm function of Tensors, torch function of tensors, inputs)
CASES = {
    "softmax": (lambda x: F.softmax(x, axis=0), lambda x: torch.softmax(x, dim=0), [X]),
    "log_softmax": (lambda x: F.log_softmax(x), lambda x: torch.log_softmax(x, dim=-1), [X]),
    "cross_entropy_ignore_index": (lambda x: F.cross_entropy(x, T, ignore_index=-1),
                                   lambda x: TF.cross_entropy(x, torch.from_numpy(T), ignore_index=-1), [X]),
    "cross_entropy_sum_huge": (lambda x: F.cross_entropy(x * 1e4, np.abs(T), reduction="sum"),
                               lambda x: TF.cross_entropy(x * 1e4, torch.from_numpy(np.abs(T)), reduction="sum"), [X]),
    "cross_entropy_none": (lambda x: F.cross_entropy(x, np.abs(T), reduction="none"),
                           lambda x: TF.cross_entropy(x, torch.from_numpy(np.abs(T)), reduction="none"), [X]),
    "gelu_exact": (lambda x: F.gelu(x), lambda x: TF.gelu(x), [X]),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), lambda x: TF.gelu(x, approximate="tanh"), [X]),
    "layer_norm": (lambda x, w, b: F.layer_norm(x, w, b), lambda x, w, b: TF.layer_norm(x, (7,), w, b), [X, W, B]),
    "linear": (lambda x, w, b: F.linear(x.reshape(2, 3, 7), w, b),
               lambda x, w, b: TF.linear(x.reshape(2, 3, 7), w, b), [X, LIN_W, LIN_B]),
    "linear_no_bias": (lambda x, w: F.linear(x, w), lambda x, w: TF.linear(x, w), [X, LIN_W]),
    "embedding": (lambda w: F.embedding(IDS, w), lambda w: TF.embedding(torch.from_numpy(IDS), w), [X]),
    "batched_matmul_broadcast": (lambda a, b: a.reshape(2, 1, 3, 7) @ b.reshape(7, 6),
                                 lambda a, b: a.reshape(2, 1, 3, 7) @ b.reshape(7, 6), [X, X]),
    "max_mean_sigmoid": (lambda x: x.max(axis=0).sigmoid() + x.mean(axis=1, keepdims=True).tanh(),
                         lambda x: x.amax(dim=0).sigmoid() + x.mean(dim=1, keepdim=True).tanh(), [X]),
    "index_repeated": (lambda x: x[np.array([0, 0, 5])] * x[1:3, ::2].sum(),
                       lambda x: x[torch.tensor([0, 0, 5])] * x[1:3, ::2].sum(), [X]),
    "rms_norm": (lambda x, w: F.rms_norm(x, w), lambda x, w: TF.rms_norm(x, (7,), w, eps=1e-5), [X, W]),
    "swiglu": (lambda x: F.swiglu(x[:, :6]), lambda x: TF.silu(x[:, :3]) * x[:, 3:6], [X]),
    "rope": (lambda x: F.rope(x[:, :6].reshape(2, 3, 6), *F.rope_tables(3, 6, 100.0)),
             lambda x: _torch_rope(x[:, :6].reshape(2, 3, 6), 100.0), [X]),
}


def _torch_rope(x, base):
    """Rotate-half RoPE written from Hugging Face's LLaMA (cos/sin of each angle repeated for the two
    halves; x * cos + rotate_half(x) * sin), independently of scratchlm's tables."""
    T, D = x.shape[-2:]
    angles = torch.outer(torch.arange(T, dtype=x.dtype), 1.0 / base ** (torch.arange(0, D, 2, dtype=x.dtype) / D))
    emb = torch.cat([angles, angles], dim=-1)
    x1, x2 = x.chunk(2, dim=-1)
    return x * emb.cos() + torch.cat([-x2, x1], dim=-1) * emb.sin()


@pytest.mark.parametrize("name", list(CASES))
def test_matches_torch(name):
    ours_fn, torch_fn, inputs = CASES[name]
    ours = [Tensor(a.copy(), requires_grad=True) for a in inputs]
    theirs = [torch.tensor(a, requires_grad=True) for a in inputs]
    y, z = ours_fn(*ours), torch_fn(*theirs)
    np.testing.assert_allclose(y.data, z.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = rng.normal(size=y.shape)
    y.backward(g)
    z.backward(torch.from_numpy(g))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-10, atol=1e-10)
