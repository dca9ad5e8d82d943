"""scratchlm.nn: the parameter registry and state_dict, each layer against NumPy, gradient checks
in float64, and (when PyTorch is installed) names, shapes and outputs against torch.nn."""

import math

import numpy as np
import pytest

from scratchlm.autograd import Tensor, gradcheck
from scratchlm.nn import (GELU, Dropout, Embedding, LayerNorm, Linear, Module, ModuleList, Parameter,
                          ReLU, Sequential, Tanh)
from scratchlm.rng import manual_seed


class Block(Module):
    def __init__(self, c):
        super().__init__()
        self.ln = LayerNorm(c)
        self.fc = Linear(c, 4 * c)
        self.proj = Linear(4 * c, c, bias=False)

    def forward(self, x):
        return x + self.proj(self.fc(self.ln(x)).relu())


class TinyLM(Module):
    """A GPT-shaped tree: embedding, a list of blocks, own parameter, tied output weight."""

    def __init__(self, vocab=11, c=4, n_layer=2):
        super().__init__()
        self.wte = Embedding(vocab, c)
        self.blocks = ModuleList(Block(c) for _ in range(n_layer))
        self.lm_head = Linear(c, vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying, as in GPT-2
        self.scale = Parameter(np.ones(1, np.float32))  # own parameters come before the children's

    def forward(self, ids):
        x = self.wte(ids)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(x) * self.scale


NAMES = ["scale", "wte.weight",
         "blocks.0.ln.weight", "blocks.0.ln.bias", "blocks.0.fc.weight", "blocks.0.fc.bias", "blocks.0.proj.weight",
         "blocks.1.ln.weight", "blocks.1.ln.bias", "blocks.1.fc.weight", "blocks.1.fc.bias", "blocks.1.proj.weight"]


# -- Module ------------------------------------------------------------------------------------

def test_named_parameters_dotted_names_in_torch_order():
    model = TinyLM()
    assert [n for n, _ in model.named_parameters()] == NAMES  # tied lm_head.weight yielded once
    assert len(model.parameters()) == len(NAMES)
    assert list(model.state_dict()) == NAMES + ["lm_head.weight"]  # state_dict keeps every name
    assert model.blocks[1].fc.weight.shape == (16, 4)  # Linear.weight is (out, in) like torch


def test_reassigning_an_attribute_updates_the_registry():
    lin = Linear(3, 2)
    lin.bias = None
    assert [n for n, _ in lin.named_parameters()] == ["weight"]
    seq = Sequential(Linear(2, 2), Tanh())
    seq.extra = Linear(2, 1)
    del seq.extra
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias"]


def test_forgetting_super_init_is_a_clear_error():
    class Broken(Module):
        def __init__(self):
            self.fc = Linear(2, 2)

    with pytest.raises(AttributeError, match=r"Broken: call super\(\).__init__\(\) before assigning attribute 'fc'"):
        Broken()


def test_train_eval_and_zero_grad_recurse():
    model = TinyLM()
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_requires_grad_freezes_a_subtree_and_returns_self():
    model = TinyLM()
    assert model.blocks[0].requires_grad_(False) is model.blocks[0]
    frozen = {id(p) for p in model.blocks[0].parameters()}
    assert all(p.requires_grad == (id(p) not in frozen) for p in model.parameters())
    model(np.array([[1, 2, 3]])).sum().backward()
    assert all((p.grad is None) == (id(p) in frozen) for p in model.parameters())
    assert len(model.state_dict()) == len(NAMES) + 1          # still every parameter (+ the tied head)
    model.requires_grad_()
    assert all(p.requires_grad for p in model.parameters())


def test_state_dict_is_a_copy_and_round_trips_in_place():
    a, b = TinyLM(), TinyLM()
    sd = a.state_dict()
    sd["wte.weight"][0, 0] += 1.0
    assert a.wte.weight.data[0, 0] != sd["wte.weight"][0, 0]
    before = b.wte.weight.data
    b.load_state_dict(a.state_dict())
    assert b.wte.weight.data is before  # copied in place: optimisers keep their references
    assert b.lm_head.weight is b.wte.weight  # tying survives
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)


def test_load_state_dict_names_missing_unexpected_and_mismatched_keys():
    model = TinyLM()
    sd = model.state_dict()
    sd["blocks.2.fc.weight"] = sd.pop("blocks.1.fc.weight")
    with pytest.raises(KeyError, match=r"missing keys \['blocks.1.fc.weight'\], unexpected keys \['blocks.2.fc.weight'\]"):
        model.load_state_dict(sd)
    result = model.load_state_dict(sd, strict=False)
    assert result.missing_keys == ["blocks.1.fc.weight"] and result.unexpected_keys == ["blocks.2.fc.weight"]

    sd = model.state_dict()
    sd["blocks.0.ln.bias"] = np.zeros(5, np.float32)
    sd["wte.weight"] = sd["wte.weight"] + 1.0
    before = model.wte.weight.data.copy()
    with pytest.raises(ValueError, match=r"parameter 'blocks.0.ln.bias': expected shape \(4,\) float32, got shape \(5,\) float32"):
        model.load_state_dict(sd)
    np.testing.assert_array_equal(model.wte.weight.data, before)  # nothing half-loaded
    sd = model.state_dict()
    sd["scale"] = sd["scale"].astype(np.float64)
    with pytest.raises(ValueError, match=r"parameter 'scale': expected shape \(1,\) float32, got shape \(1,\) float64"):
        model.load_state_dict(sd)


def test_sequential_and_repr():
    seq = Sequential(Linear(3, 5), ReLU(), Linear(5, 2))
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_array_equal(seq(x).data, seq[2](seq[1](seq[0](x))).data)
    assert len(seq) == 3 and [type(m).__name__ for m in seq] == ["Linear", "ReLU", "Linear"]
    assert repr(seq) == "Sequential(\n  (0): Linear(3, 5, bias=True)\n  (1): ReLU()\n  (2): Linear(5, 2, bias=True)\n)"


# -- layers against NumPy ----------------------------------------------------------------------

def test_linear_forward_and_init():
    lin = Linear(6, 3, rng=np.random.default_rng(0))
    assert lin.weight.dtype == np.float32 and lin.weight.requires_grad
    k = 1 / math.sqrt(6)
    assert np.abs(lin.weight.data).max() <= k and np.abs(lin.bias.data).max() <= k
    x = np.random.default_rng(1).standard_normal((2, 5, 6)).astype(np.float32)  # (B, T, C)
    y = lin(Tensor(x))
    assert y.shape == (2, 5, 3) and y.dtype == np.float32
    np.testing.assert_allclose(y.data, x @ lin.weight.data.T + lin.bias.data, rtol=1e-6, atol=1e-6)
    no_bias = Linear(6, 3, bias=False)
    np.testing.assert_allclose(no_bias(x).data, x @ no_bias.weight.data.T, rtol=1e-6, atol=1e-6)


def test_init_is_seeded_and_dtype_independent():
    manual_seed(7)
    a = Linear(4, 3)
    manual_seed(7)
    b = Linear(4, 3, dtype=np.float64)
    np.testing.assert_array_equal(a.weight.data, b.weight.data.astype(np.float32))
    c = Linear(4, 3, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(c.weight.data, b.weight.data.astype(np.float32))


def test_embedding_forward_and_init():
    emb = Embedding(1000, 64, rng=np.random.default_rng(0))
    w = emb.weight.data
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1.0) < 0.01  # N(0, 1), 64000 draws
    ids = np.array([[3, 999, 3], [0, 1, 2]])
    np.testing.assert_array_equal(emb(ids).data, w[ids])


def test_layer_norm_forward():
    x = np.random.default_rng(0).standard_normal((3, 4, 8)) * 5 + 2
    ln = LayerNorm(8, dtype=np.float64)
    ln.weight.data[...] = np.linspace(0.5, 2.0, 8)
    ln.bias.data[...] = np.linspace(-1.0, 1.0, 8)
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-5) * ln.weight.data + ln.bias.data
    np.testing.assert_allclose(ln(Tensor(x)).data, expected, rtol=1e-12, atol=1e-12)
    no_bias = LayerNorm(8, bias=False, dtype=np.float64)
    assert [n for n, _ in no_bias.named_parameters()] == ["weight"]
    np.testing.assert_allclose(no_bias(Tensor(x)).data, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-12, atol=1e-12)


def test_dropout_follows_the_training_flag():
    x = Tensor(np.ones((200, 500), np.float32))
    drop = Dropout(0.25, rng=np.random.default_rng(0))
    y = drop(x).data
    assert abs((y == 0).mean() - 0.25) < 0.01
    np.testing.assert_allclose(y[y != 0], 1 / 0.75)  # inverted dropout keeps the expectation
    drop.eval()
    np.testing.assert_array_equal(drop(x).data, x.data)
    with pytest.raises(ValueError, match=r"Dropout probability must be in \[0, 1\), got 1.0"):
        Dropout(1.0)


def test_activations():
    x = np.linspace(-4, 4, 41)
    np.testing.assert_allclose(Tanh()(Tensor(x)).data, np.tanh(x), rtol=1e-15)
    np.testing.assert_array_equal(ReLU()(Tensor(x)).data, np.maximum(x, 0))
    erf = np.vectorize(math.erf)
    np.testing.assert_allclose(GELU()(Tensor(x)).data, 0.5 * x * (1 + erf(x / math.sqrt(2))), rtol=1e-12, atol=1e-15)
    tanh_gelu = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(GELU("tanh")(Tensor(x)).data, tanh_gelu, rtol=1e-12, atol=1e-15)


# -- gradient checks (float64) -----------------------------------------------------------------

def gradcheck_module(module, *inputs):
    """gradcheck over the inputs and every parameter of a one-level module: gradcheck hands fn its
    own float64 copies, which are put in the parameters' places for each call."""
    names = [n for n, _ in module.named_parameters()]
    originals = [getattr(module, n) for n in names]

    def fn(*args):
        for name, p in zip(names, args[len(inputs):]):
            object.__setattr__(module, name, p)  # a swap for the check, not a re-registration
        return module(*args[:len(inputs)])

    try:
        return gradcheck(fn, [*inputs, *originals])
    finally:
        for name, p in zip(names, originals):
            object.__setattr__(module, name, p)


def test_gradcheck_linear():
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    assert gradcheck_module(Linear(4, 3, dtype=np.float64), x) <= 1e-6
    assert gradcheck_module(Linear(4, 3, bias=False, dtype=np.float64), x) <= 1e-6


def test_gradcheck_layer_norm():
    rng = np.random.default_rng(0)
    ln = LayerNorm(5, dtype=np.float64)
    ln.weight.data[...] = rng.uniform(0.5, 1.5, 5)
    ln.bias.data[...] = rng.standard_normal(5)
    x = Tensor(rng.standard_normal((3, 5)), requires_grad=True)
    assert gradcheck_module(ln, x) <= 1e-6


def test_gradcheck_embedding():
    ids = np.array([[1, 4, 1], [0, 4, 4]])  # repeated ids: their gradients must add up
    assert gradcheck_module(Embedding(6, 3, dtype=np.float64), ids) <= 1e-6


# -- against torch.nn --------------------------------------------------------------------------

def test_names_shapes_and_outputs_match_torch():
    torch = pytest.importorskip("torch")
    tnn = torch.nn

    class TBlock(tnn.Module):
        def __init__(self, c):
            super().__init__()
            self.ln, self.fc, self.proj = tnn.LayerNorm(c), tnn.Linear(c, 4 * c), tnn.Linear(4 * c, c, bias=False)

        def forward(self, x):
            return x + self.proj(torch.relu(self.fc(self.ln(x))))

    class TTinyLM(tnn.Module):
        def __init__(self, vocab=11, c=4, n_layer=2):
            super().__init__()
            self.wte = tnn.Embedding(vocab, c)
            self.blocks = tnn.ModuleList(TBlock(c) for _ in range(n_layer))
            self.lm_head = tnn.Linear(c, vocab, bias=False)
            self.lm_head.weight = self.wte.weight
            self.scale = tnn.Parameter(torch.ones(1))

        def forward(self, ids):
            x = self.wte(ids)
            for block in self.blocks:
                x = block(x)
            return self.lm_head(x) * self.scale

    ours, theirs = TinyLM(), TTinyLM()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    tsd = theirs.state_dict()
    assert list(ours.state_dict()) == list(tsd)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: tuple(v.shape) for k, v in tsd.items()}
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    ids = np.array([[1, 2, 3, 10], [0, 5, 5, 7]])
    with torch.no_grad():
        expected = theirs(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(ours(ids).data, expected, rtol=1e-5, atol=1e-5)


def test_rms_norm_module_matches_torch():
    torch = pytest.importorskip("torch")
    from scratchlm.nn import RMSNorm
    ours = RMSNorm(6, dtype=np.float64)
    ours.weight.data[:] = np.random.default_rng(0).normal(size=6)
    theirs = torch.nn.RMSNorm(6, eps=1e-5, dtype=torch.float64)
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})  # same names
    x = np.random.default_rng(1).normal(size=(2, 3, 6))
    tx = torch.tensor(x, requires_grad=True)
    y, ty = ours(Tensor(x)), theirs(tx)
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-12, atol=1e-13)
    g = np.random.default_rng(2).normal(size=x.shape)
    y.backward(g)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-12, atol=1e-13)
    assert repr(ours) == "RMSNorm(6, eps=1e-05)" and [n for n, _ in ours.named_parameters()] == ["weight"]
