"""Parameter-efficient fine-tuning (Chapter 10, scratchlm/peft.py): LoRA's exact start, merge and
unmerge, what trains and what the optimiser holds, q/v-only adaptation of the packed c_attn, adapter
checkpoints onto a fresh base, gradient checks and a PyTorch twin of LoRALinear; the soft prompt's
gradients, its logits against the base run by hand, KV-cached decoding and block_size."""

import numpy as np
import pytest

import scratchlm.autograd.functional as F
from model_helpers import perturbed_gpt, rel
from scratchlm.autograd import Tensor, gradcheck, no_grad
from scratchlm.checkpoint import save_checkpoint
from scratchlm.generate import generate
from scratchlm.models.gpt import GPT, GPTConfig
from scratchlm.nn import Linear, Module
from scratchlm.peft import (LoRALinear, SoftPrompt, adapter_bytes, apply_lora, load_adapter, lora_layers,
                            merge_lora, model_bytes, save_adapter, trainable_parameters, unmerge_lora)
from scratchlm.train import configure_optimizer, train_step

TINY = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)
C = TINY.n_embd
QV = ((0, C), (2 * C, 3 * C))        # the q and v rows of the packed c_attn (C -> 3C)


def tiny_gpt(config=TINY, dtype=np.float64, seed=0) -> GPT:
    return perturbed_gpt(config, dtype, seed)


def ids(B, T, seed=0, V=TINY.vocab_size):
    return np.random.default_rng(seed).integers(0, V, (B, T))


def logits_of(model, x):
    with no_grad():
        return model(x)[0].data


def train_lm(model, steps=5, seed=3, T=6):
    """A few AdamW steps of next-token prediction; returns the optimiser."""
    opt = configure_optimizer(model, lr=0.05, weight_decay=0.1)
    x = ids(4, T + 1, seed)
    for _ in range(steps):
        train_step(model, opt, [(x[:, :-1], x[:, 1:])])
    return opt


class Classifier(Module):
    """A stand-in for Chapter 10's classification head: the GPT body read at the last position."""

    def __init__(self, body):
        super().__init__()
        self.body = body
        self.score = Linear(body.config.n_embd, 2, bias=False, dtype=np.float64)

    def forward(self, idx):
        return self.score(self.body.hidden_states(self.body.embed(idx))[:, -1])


# ---- LoRALinear ------------------------------------------------------------------------------

def lora_linear(rows=None, bias=True, seed=0):
    rng = np.random.default_rng(seed)
    layer = LoRALinear(Linear(5, 3 * 2, bias=bias, dtype=np.float64, rng=rng), r=2, alpha=3.0,
                       rows=rows, rng=rng)
    layer.lora_B.data[...] = rng.standard_normal(layer.lora_B.shape)   # B = 0 would hide A's gradient
    return layer


def test_lora_linear_wraps_the_same_parameters_and_freezes_them():
    base = Linear(4, 6, dtype=np.float64)
    layer = LoRALinear(base, r=2, alpha=4, rows=[(4, 6), (0, 2)])
    assert layer.weight is base.weight and layer.bias is base.bias
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias", "lora_A", "lora_B"]
    assert not layer.weight.requires_grad and not layer.bias.requires_grad
    assert layer.lora_A.requires_grad and layer.lora_B.requires_grad
    assert layer.lora_A.shape == (2, 4) and layer.lora_B.shape == (4, 2)       # B: only the 4 adapted rows
    assert layer.rows == ((0, 2), (4, 6)) and layer.scaling == 2.0
    assert np.abs(layer.lora_A.data).max() <= 1 / np.sqrt(4)                   # Kaiming-uniform
    np.testing.assert_array_equal(layer.lora_B.data, 0)
    a, b = (LoRALinear(base, r=2, alpha=4, rng=np.random.default_rng(5)).lora_A.data for _ in range(2))
    np.testing.assert_array_equal(a, b)                                        # seeded


@pytest.mark.parametrize("rows", [None, ((0, 2), (4, 6))], ids=["all-rows", "rows"])
def test_lora_linear_is_the_effective_weight(rows):
    layer = lora_linear(rows)
    x = np.random.default_rng(1).standard_normal((2, 3, 5))
    dW = layer.delta_weight()
    if rows is not None:
        np.testing.assert_array_equal(dW[2:4], 0)                              # rows not adapted
    want = x @ (layer.weight.data + dW).T + layer.bias.data
    np.testing.assert_allclose(layer(x).data, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rows", [None, ((0, 2), (4, 6)), ((2, 3),)], ids=["all-rows", "q-v", "middle"])
@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck_lora_linear(rows, bias):
    layer = lora_linear(rows, bias)
    x = Tensor(np.random.default_rng(2).standard_normal((2, 3, 5)), requires_grad=True)

    def fn(x, A, B):
        object.__setattr__(layer, "lora_A", A)      # gradcheck's float64 copies in the parameters' places
        object.__setattr__(layer, "lora_B", B)
        return layer(x)
    A, B = layer.lora_A, layer.lora_B
    try:
        assert gradcheck(fn, [x, A, B]) <= 1e-6
    finally:
        object.__setattr__(layer, "lora_A", A)
        object.__setattr__(layer, "lora_B", B)


@pytest.mark.parametrize("rows", [None, ((0, 2), (4, 6))], ids=["all-rows", "q-v"])
def test_lora_linear_matches_torch(rows):
    torch = pytest.importorskip("torch")
    layer = lora_linear(rows)
    x = Tensor(np.random.default_rng(3).standard_normal((2, 3, 5)), requires_grad=True)
    g = np.random.default_rng(4).standard_normal((2, 3, 6))
    layer(x).backward(g)

    tx, tA, tB = (torch.tensor(a, requires_grad=True) for a in (x.data, layer.lora_A.data, layer.lora_B.data))
    W, b = torch.tensor(layer.weight.data), torch.tensor(layer.bias.data)
    if rows is None:
        B_full = tB
    else:   # the q and v blocks of B around the k rows' zeros
        B_full = torch.cat([tB[:2], torch.zeros(2, 2, dtype=torch.float64), tB[2:]])
    ty = torch.nn.functional.linear(tx, W, b) + layer.scaling * (tx @ tA.T) @ B_full.T
    ty.backward(torch.tensor(g))
    assert rel(layer(x).data, ty.detach().numpy()) < 1e-6
    for name, ours, theirs in (("x", x, tx), ("A", layer.lora_A, tA), ("B", layer.lora_B, tB)):
        assert rel(ours.grad, theirs.grad.numpy()) < 1e-6, name


def test_lora_linear_merge_and_unmerge():
    layer = lora_linear(((0, 2), (4, 6)))
    x = np.random.default_rng(5).standard_normal((4, 5))
    W0, y = layer.weight.data.copy(), layer(x).data
    assert layer.merge() is layer and layer.merged
    np.testing.assert_allclose(layer.weight.data, W0 + layer.delta_weight(), rtol=0, atol=0)
    np.testing.assert_allclose(layer(x).data, y, rtol=1e-12, atol=1e-12)      # not added twice
    layer.merge()                                                              # merging again: no change
    np.testing.assert_allclose(layer.weight.data, W0 + layer.delta_weight(), rtol=0, atol=0)
    layer.unmerge()
    assert not layer.merged
    np.testing.assert_allclose(layer.weight.data, W0, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(layer(x).data, y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    (dict(r=0, alpha=1), "rank r"), (dict(r=1.5, alpha=1), "rank r"), (dict(r=2, alpha=0), "alpha"),
    (dict(r=2, alpha=1, rows=[(0, 3), (2, 4)]), "non-overlapping"), (dict(r=2, alpha=1, rows=[(4, 7)]), r"\[0, 6\)"),
    (dict(r=2, alpha=1, rows=[(2, 2)]), "non-empty"), (dict(r=2, alpha=1, rows=[]), "empty"),
    (dict(r=2, alpha=1, rows=[3]), "pairs"),
])
def test_lora_linear_refuses_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LoRALinear(Linear(4, 6), **kwargs)


# ---- apply_lora on a GPT ---------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("targets", ["qv", "all"])
def test_lora_starts_exactly_at_the_base(targets, dtype):
    model = tiny_gpt(dtype=dtype)
    x = ids(3, TINY.block_size)
    base = logits_of(model, x)
    apply_lora(model, r=2, alpha=4, targets=targets)
    np.testing.assert_array_equal(logits_of(model, x), base)


def test_which_layers_the_targets_pick():
    model = tiny_gpt()
    qv = apply_lora(model, r=2, alpha=4, targets="qv")
    assert list(qv) == ["h.0.attn.c_attn", "h.1.attn.c_attn"] and all(m.rows == QV for m in qv.values())
    assert lora_layers(model) == qv and model.h[0].attn.c_attn is qv["h.0.attn.c_attn"]

    everything = apply_lora(tiny_gpt(), r=2, alpha=4, targets="all")
    assert list(everything) == [f"h.{i}.{name}" for i in range(2)
                                for name in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")]
    assert all(m.rows is None for m in everything.values())                 # every row, lm_head untouched

    model = tiny_gpt()
    picked = apply_lora(model, r=1, alpha=1, targets=["h.1.*.c_proj"])
    assert list(picked) == ["h.1.attn.c_proj", "h.1.mlp.c_proj"]
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names == {f"h.1.{m}.c_proj.lora_{ab}" for m in ("attn", "mlp") for ab in "AB"}
    assert trainable_parameters(model) == (C + C) + (4 * C + C)               # r (in + out) for each layer


@pytest.mark.parametrize("targets, match", [
    (["h.*.nothing"], "matches no Linear"), (["lm_head"], "shared with"), ("q", "targets must be"),
    ([], "targets must be"),
])
def test_apply_lora_refuses(targets, match):
    with pytest.raises(ValueError, match=match):
        apply_lora(tiny_gpt(), r=2, alpha=4, targets=targets)


def test_apply_lora_twice_is_refused():
    model = tiny_gpt()
    apply_lora(model, r=2, alpha=4)
    with pytest.raises(ValueError, match="already has LoRA"):
        apply_lora(model, r=2, alpha=4)
    assert all(m.lora_A.requires_grad and m.lora_B.requires_grad for m in lora_layers(model).values())  # unchanged
    with pytest.raises(ValueError, match="no LoRA layers"):
        merge_lora(tiny_gpt())


def test_only_A_and_B_train_and_hold_optimizer_state():
    model = tiny_gpt()
    frozen = {n: p.data.copy() for n, p in model.named_parameters()}
    layers = apply_lora(model, r=2, alpha=4, targets="qv")
    lora = {id(p) for m in layers.values() for p in (m.lora_A, m.lora_B)}
    opt = train_lm(model)
    held = [p for group in opt.param_groups for p in group["params"]]
    assert {id(p) for p in held} == lora and len(held) == len(lora)
    assert len(opt.state) == len(lora) and all(s for s in opt.state)              # Adam's moments, A and B only
    for name, p in model.named_parameters():
        if "lora_" in name:
            assert p.grad is not None and np.abs(p.grad).max() > 0, name
        else:
            assert p.grad is None, f"{name} is frozen but got a gradient"
            np.testing.assert_array_equal(p.data, frozen[name], err_msg=name)
    for m in layers.values():
        assert np.abs(m.lora_B.data).max() > 0                                  # B moved off 0


def test_after_training_merge_equals_unmerged_and_k_rows_are_unchanged():
    model = tiny_gpt()
    layers = apply_lora(model, r=2, alpha=4, targets="qv")
    train_lm(model)
    x = ids(3, TINY.block_size, seed=9)
    adapted = logits_of(model, x)
    W0 = {name: m.weight.data.copy() for name, m in layers.items()}
    for name, m in layers.items():
        dW = m.delta_weight()
        np.testing.assert_array_equal(dW[C:2 * C], 0, err_msg=f"{name}: the k rows must not change")
        assert np.abs(dW[:C]).max() > 0 and np.abs(dW[2 * C:]).max() > 0
    merge_lora(model)
    np.testing.assert_allclose(logits_of(model, x), adapted, rtol=1e-10, atol=1e-10)
    for name, m in layers.items():
        np.testing.assert_array_equal(m.weight.data[C:2 * C], W0[name][C:2 * C])   # merged: k rows as before
    unmerge_lora(model)
    for name, m in layers.items():
        np.testing.assert_allclose(m.weight.data, W0[name], rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(logits_of(model, x), adapted, rtol=1e-12, atol=1e-12)


# ---- adapter checkpoints ---------------------------------------------------------------------

def test_adapter_loads_onto_a_fresh_base(tmp_path):
    clf = Classifier(tiny_gpt())
    apply_lora(clf, r=1, alpha=4, targets="all")
    clf.score.requires_grad_(True)                       # the documented pattern: the new head trains too
    trained = sorted(n for n, p in clf.named_parameters() if p.requires_grad)
    opt = configure_optimizer(clf, lr=0.05, weight_decay=0.0)
    x, y = ids(4, 6, seed=4), np.array([0, 1, 1, 0])
    for _ in range(4):
        train_step(clf, opt, [(x, y)], loss_fn=lambda m, b: (F.cross_entropy(m(b[0]), b[1]), len(b[1])))
    with no_grad():
        want = clf(x).data
    path = save_adapter(tmp_path / "spam.npz", clf)

    fresh = Classifier(tiny_gpt())                        # the same base weights, a new random head
    load_adapter(path, fresh)
    with no_grad():
        np.testing.assert_array_equal(fresh(x).data, want)
    assert sorted(n for n, p in fresh.named_parameters() if p.requires_grad) == trained
    assert list(lora_layers(fresh)) == list(lora_layers(clf))
    load_adapter(path, fresh)                             # already wrapped the same way: loads again

    assert adapter_bytes(clf) == sum(clf.state_dict()[n].nbytes for n in trained)
    assert adapter_bytes(clf) < model_bytes(clf) / 4
    full = save_checkpoint(tmp_path / "full.npz", clf)
    assert path.stat().st_size < full.stat().st_size / 2


class Body(Module):
    """The Classifier without its head."""

    def __init__(self, body):
        super().__init__()
        self.body = body


def test_adapter_errors_name_the_file(tmp_path):
    model = tiny_gpt()
    apply_lora(model, r=2, alpha=4)
    path = save_adapter(tmp_path / "a.npz", model)
    wider = GPTConfig(**{**TINY.__dict__, "n_embd": 12})
    wrong = GPT(wider, dtype=np.float64)
    with pytest.raises(ValueError, match=f"{path}.*n_embd"):
        load_adapter(path, wrong)                                   # the model's config differs
    assert not lora_layers(wrong) and all(p.requires_grad for p in wrong.parameters())  # given back as it was
    other = tiny_gpt()
    apply_lora(other, r=3, alpha=4)
    with pytest.raises(ValueError, match=f"{path}.*differ from the adapter"):
        load_adapter(path, other)                                   # wrapped with another rank
    whole = save_checkpoint(tmp_path / "whole.npz", tiny_gpt())
    with pytest.raises(ValueError, match=f"{whole} is a checkpoint but not an adapter"):
        load_adapter(whole, tiny_gpt())

    clf = Classifier(tiny_gpt())                                    # no config to compare: names and shapes
    apply_lora(clf, r=2, alpha=4)
    clf.score.requires_grad_(True)
    path = save_adapter(tmp_path / "clf.npz", clf)
    with pytest.raises(ValueError, match=f"{path}.*body.h.1.attn.c_attn.*not Linear layers"):
        load_adapter(path, Classifier(tiny_gpt(GPTConfig(**{**TINY.__dict__, "n_layer": 1}))))
    with pytest.raises(ValueError, match=rf"{path}: the Body has no parameters \['score.weight'\]"):
        load_adapter(path, Body(tiny_gpt()))                        # the head is missing
    with pytest.raises(ValueError, match=f"{path}: parameter 'score.weight'.*shape"):
        wide_head = Classifier(tiny_gpt())
        wide_head.score = Linear(C, 3, bias=False, dtype=np.float64)
        load_adapter(path, wide_head)                               # a head of another shape


def test_adapter_refuses_nan_and_frozen(tmp_path):
    model = tiny_gpt()
    layers = apply_lora(model, r=2, alpha=4)
    layers["h.1.attn.c_attn"].lora_B.data[0, 0] = np.nan
    with pytest.raises(ValueError, match="h.1.attn.c_attn.lora_B holds 1 NaN"):
        save_adapter(tmp_path / "a.npz", model)
    assert not (tmp_path / "a.npz").exists()
    with pytest.raises(ValueError, match="every parameter .* is frozen"):
        save_adapter(tmp_path / "a.npz", tiny_gpt().requires_grad_(False))


# ---- soft prompt -----------------------------------------------------------------------------

MODERN = dict(norm="rmsnorm", position="rope", mlp="swiglu")


@pytest.mark.parametrize("options", [{}, MODERN], ids=["gpt2", "rope"])
def test_soft_prompt_of_vocabulary_tokens_is_the_base_on_those_tokens(options):
    base = tiny_gpt(GPTConfig(**{**TINY.__dict__, **options}))
    prefix, x = np.array([3, 7, 3]), ids(2, 5)
    model = SoftPrompt(base, 3, init_ids=prefix)
    np.testing.assert_array_equal(model.prompt.data, base.wte.weight.data[prefix])
    whole = logits_of(base, np.concatenate([np.tile(prefix, (2, 1)), x], axis=1))
    np.testing.assert_allclose(logits_of(model, x), whole[:, 3:], rtol=1e-12, atol=1e-12)


def test_soft_prompt_logits_by_hand():
    base = tiny_gpt()
    model = SoftPrompt(base, 2, rng=np.random.default_rng(0))
    model.prompt.data += np.random.default_rng(1).normal(0, 0.5, model.prompt.shape)  # not a token's row
    x = ids(3, 4)
    P, E, pos = model.prompt.data, base.wte.weight.data, base.wpe.weight.data
    h0 = np.concatenate([np.broadcast_to(P, (3, 2, C)), E[x]], axis=1) + pos[:6]      # (B, P + T, C)
    with no_grad():
        want = base.head(base.hidden_states(Tensor(h0))).data[:, 2:]
    np.testing.assert_allclose(logits_of(model, x), want, rtol=1e-13, atol=1e-13)
    assert model.n_prefix == 2 and model.block_size == TINY.block_size - 2 and model.config is base.config


def test_soft_prompt_init_is_seeded_vocabulary_rows():
    base = tiny_gpt()
    a = SoftPrompt(base, 4, rng=np.random.default_rng(7)).prompt.data
    b = SoftPrompt(base, 4, rng=np.random.default_rng(7)).prompt.data
    np.testing.assert_array_equal(a, b)
    rows = [int(np.flatnonzero((base.wte.weight.data == row).all(axis=1))[0]) for row in a]
    assert len(set(rows)) == 4                                   # distinct tokens (P <= V)


def test_only_the_prompt_trains():
    base = tiny_gpt()
    frozen = {n: p.data.copy() for n, p in base.named_parameters()}
    model = SoftPrompt(base, 3)
    P0 = model.prompt.data.copy()
    opt = configure_optimizer(model, lr=0.05, weight_decay=0.0)
    assert [id(p) for g in opt.param_groups for p in g["params"]] == [id(model.prompt)]
    x = ids(4, 6, seed=2)
    for _ in range(3):
        train_step(model, opt, [(x[:, :-1], x[:, 1:])])
    assert np.abs(model.prompt.grad).max() > 0 and np.abs(model.prompt.data - P0).max() > 0
    for name, p in base.named_parameters():
        assert p.grad is None, f"{name} is frozen but got a gradient"
        np.testing.assert_array_equal(p.data, frozen[name], err_msg=name)
    assert trainable_parameters(model) == 3 * C


@pytest.mark.parametrize("options", [{}, MODERN], ids=["gpt2", "rope"])
def test_soft_prompt_cached_decoding_equals_uncached(options):
    model = SoftPrompt(tiny_gpt(GPTConfig(**{**TINY.__dict__, **options})), 3)   # block_size 8 - 3 = 5
    x = ids(2, model.block_size, seed=6)
    with no_grad():
        full = model(x)[0].data
        cache = model.new_cache(2)
        pieces = [model(x[:, :2], cache=cache)[0].data]           # puts the prompt in the cache too
        assert cache.length == 3 + 2
        pieces += [model(x[:, t:t + 1], cache=cache)[0].data for t in range(2, model.block_size)]
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="block_size 5"):
        model(x[:, :1], cache=cache)
    # generate: past block_size the window slides (the cache is dropped when it holds the prompt and
    # block_size tokens); a 4-token start puts 3 + 4 positions in the cache, more than block_size
    with_cache = generate(model, x[:, :4], max_new_tokens=8, temperature=0)
    np.testing.assert_array_equal(with_cache, generate(model, x[:, :4], max_new_tokens=8, temperature=0,
                                                       use_cache=False))
    np.testing.assert_array_equal(model.next_logits(with_cache), model.next_logits(with_cache[:, -5:]))


def test_soft_prompt_block_size_errors():
    base = tiny_gpt()
    model = SoftPrompt(base, 3)
    with pytest.raises(ValueError, match=r"block_size 5 \(the base's 8 minus the 3 prompt tokens\)"):
        model(ids(1, 6))
    with pytest.raises(ValueError, match="no room for text"):
        SoftPrompt(base, 8)
    with pytest.raises(ValueError, match="n_tokens"):
        SoftPrompt(base, 0)
    with pytest.raises(ValueError, match="init_ids"):
        SoftPrompt(base, 2, init_ids=[1, 11])
    with pytest.raises(ValueError, match="targets must have the shape"):
        model(ids(1, 4), ids(1, 3))


def test_soft_prompt_adapter_round_trip(tmp_path):
    model = SoftPrompt(tiny_gpt(), 2)
    x = ids(2, 5, seed=8)
    opt = configure_optimizer(model, lr=0.05, weight_decay=0.0)
    train_step(model, opt, [(x[:, :-1], x[:, 1:])])
    path = save_adapter(tmp_path / "prompt.npz", model)
    fresh = SoftPrompt(tiny_gpt(), 2)
    load_adapter(path, fresh)
    np.testing.assert_array_equal(logits_of(fresh, x), logits_of(model, x))
    assert adapter_bytes(fresh) == model.prompt.data.nbytes
    with pytest.raises(ValueError, match=f"{path}.*n_layer"):                 # the base's config is compared
        load_adapter(path, SoftPrompt(tiny_gpt(GPTConfig(**{**TINY.__dict__, "n_layer": 1})), 2))
