"""The GPT (Chapter 6): fused causal-softmax kernels against their NumPy twins, gradient checks,
parity with an identical PyTorch model, and the KV cache against full recomputation; the modern
decoder's options (Chapter 9: RMSNorm, RoPE, SwiGLU) and the embed / hidden_states / head split.
The attention op itself is tested in test_attention.py."""

import numpy as np
import pytest

from scratchlm.autograd import Tensor, gradcheck, no_grad
from scratchlm.models import attention_kernels as K
import scratchlm.autograd.functional as F
from scratchlm.models.gpt import (GPT, GPTConfig, causal_self_attention, causal_self_attention_ref, causal_softmax,
                                  record_attention, swiglu_hidden)
from scratchlm.rng import manual_seed

from benchmark_modules import load_benchmark
from model_helpers import assert_same_as_torch, perturbed_gpt

TINY = GPTConfig(vocab_size=7, block_size=6, n_layer=2, n_head=2, n_embd=8)
MODERN = dict(norm="rmsnorm", position="rope", mlp="swiglu", bias=False)   # LLaMA's changes to GPT-2


def tiny_gpt(config=TINY, dtype=np.float64, seed=0) -> GPT:
    return perturbed_gpt(config, dtype, seed)


def ids(config, B, T, seed=0):
    return np.random.default_rng(seed).integers(0, config.vocab_size, (B, T))


# ---- kernels ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("Tq,Tk", [(1, 1), (5, 5), (64, 64), (1, 9), (3, 8)])
def test_kernels_match_numpy_twins(dtype, Tq, Tk):
    rng = np.random.default_rng(Tq * 100 + Tk)
    scores = (3 * rng.standard_normal((6, Tq, Tk))).astype(dtype)
    grad = rng.standard_normal((6, Tq, Tk)).astype(dtype)
    scale = dtype(0.35)
    probs, ref = np.empty_like(scores), np.empty_like(scores)
    K.causal_softmax_forward(scores, scale, probs)
    K.causal_softmax_forward_ref(scores, scale, ref)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(probs, ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=tol)
    assert np.all(probs[:, ~K.causal_mask(Tq, Tk)] == 0)  # no weight on the future
    back, back_ref = np.empty_like(scores), np.empty_like(scores)
    K.causal_softmax_backward(probs, grad, scale, back)
    K.causal_softmax_backward_ref(ref, grad, scale, back_ref)
    np.testing.assert_allclose(back, back_ref, rtol=tol, atol=tol)


def test_kernel_is_stable_for_huge_scores():
    for dtype in (np.float32, np.float64):
        scores = np.array([[[1e4, -1e4, 0.0], [3e4, 3e4, -3e4], [1e30, 1e30, 1e30]]], dtype)
        probs = np.empty_like(scores)
        K.causal_softmax_forward(scores, dtype(1.0), probs)
        np.testing.assert_allclose(probs[0], [[1, 0, 0], [0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)


def test_causal_mask():
    assert K.causal_mask(2, 4).tolist() == [[True, True, True, False], [True, True, True, True]]


# ---- gradients --------------------------------------------------------------------------------

@pytest.mark.parametrize("Tq,Tk", [(4, 4), (2, 5)])
def test_causal_softmax_gradcheck(Tq, Tk):
    scores = Tensor(np.random.default_rng(0).standard_normal((2, 3, Tq, Tk)), requires_grad=True)
    assert gradcheck(lambda s: causal_softmax(s, 0.7), [scores]) <= 1e-6


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_fused_attention_equals_tensor_ops(dropout):
    qkv = Tensor(np.random.default_rng(0).standard_normal((2, 5, 12)), requires_grad=True)
    twin = Tensor(qkv.data.copy(), requires_grad=True)
    g = np.random.default_rng(1).standard_normal((2, 5, 4))
    manual_seed(3)
    y = causal_self_attention(qkv, 2, dropout)
    y.backward(g)
    if dropout:  # the twin has no dropout: apply the op's mask (the same draws) to v's weights by hand
        mask = (manual_seed(3).random((2, 2, 5, 5)) >= dropout) / (1 - dropout)
        heads = []
        for h in range(2):
            q, k, v = (twin[:, :, i * 4 + h * 2: i * 4 + (h + 1) * 2] for i in range(3))
            heads.append((causal_softmax(q @ k.transpose(0, 2, 1), 1 / np.sqrt(2)) * mask[:, h]) @ v)
        expected = F.concatenate(heads, axis=-1)
    else:
        expected = causal_self_attention_ref(twin, 2)
    expected.backward(g)
    np.testing.assert_allclose(y.data, expected.data, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(qkv.grad, twin.grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_fused_attention_gradcheck(dropout):
    qkv = Tensor(np.random.default_rng(0).standard_normal((2, 4, 18)), requires_grad=True)

    def fn(x):
        manual_seed(5)  # the same dropout mask on every call
        return causal_self_attention(x, 3, dropout)
    assert gradcheck(fn, [qkv]) <= 1e-6


def _loss_of_parameters(model, x, y):
    """fn(*tensors) for gradcheck: the model's loss with `tensors` standing in for its parameters."""
    named = list(model.named_parameters())
    modules = dict(model.named_modules())
    slots = {}  # id(parameter) -> every (module, attribute) holding it (tied weights: two)
    for name, p in model.named_parameters(remove_duplicate=False):
        module, _, attr = name.rpartition(".")
        slots.setdefault(id(p), []).append((modules[module], attr))

    def fn(*tensors):
        for (_, p), t in zip(named, tensors):
            for module, attr in slots[id(p)]:
                object.__setattr__(module, attr, t)  # bypass registration: a temporary stand-in
        try:
            return model(x, y)[1]
        finally:
            for _, p in named:
                for module, attr in slots[id(p)]:
                    object.__setattr__(module, attr, p)
    return fn, [Tensor(p.data, requires_grad=True) for _, p in named]


@pytest.mark.parametrize("options", [dict(bias=False), dict(bias=True), MODERN], ids=["gpt2", "bias", "modern"])
def test_gpt_gradcheck(options):
    config = GPTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=2, n_embd=4, **options)
    model = tiny_gpt(config)
    x, y = ids(config, 2, 4, seed=1), ids(config, 2, 4, seed=2)
    y[0, 1] = -1  # ignored position
    fn, params = _loss_of_parameters(model, x, y)
    assert gradcheck(fn, params) <= 1e-6


def test_untied_head_and_names():
    model = tiny_gpt(GPTConfig(**{**TINY.__dict__, "tie_weights": False}))
    names = [n for n, _ in model.named_parameters()]
    assert names[:2] == ["wte.weight", "wpe.weight"] and names[-1] == "lm_head.weight"
    assert "h.1.attn.c_attn.weight" in names and "h.0.mlp.c_proj.weight" in names
    tied = tiny_gpt()
    assert tied.lm_head.weight is tied.wte.weight
    assert len(tied.parameters()) == len(model.parameters()) - 1


def test_gpt2_initialisation():
    manual_seed(0)
    config = GPTConfig(n_layer=8, n_embd=256, bias=True)
    model = GPT(config)
    std = dict((n, p.data.std()) for n, p in model.named_parameters())
    assert abs(std["h.0.attn.c_attn.weight"] - 0.02) < 1e-3
    assert abs(std["h.3.mlp.c_proj.weight"] - 0.02 / np.sqrt(16)) < 1e-4
    assert np.all(model.h[0].ln_1.weight.data == 1) and np.all(model.h[0].mlp.c_fc.bias.data == 0)
    assert model.wte.weight.dtype == np.float32


def test_loss_at_initialisation_is_log_vocab():
    manual_seed(0)
    model = GPT(GPTConfig(vocab_size=65))
    _, loss = model(ids(model.config, 4, 64), ids(model.config, 4, 64, seed=1))
    assert abs(loss.item() - np.log(65)) < 0.05  # small init: nearly uniform predictions


def test_rejects_sequences_longer_than_block_size():
    with pytest.raises(ValueError, match="block_size"):
        tiny_gpt()(ids(TINY, 1, TINY.block_size + 1))


def test_dropout_only_in_training_mode():
    model = tiny_gpt(GPTConfig(**{**TINY.__dict__, "dropout": 0.5}))
    x = ids(TINY, 2, 5)
    a, b = model(x)[0].data, model(x)[0].data
    assert not np.allclose(a, b)
    model.eval()
    np.testing.assert_array_equal(model(x)[0].data, model(x)[0].data)


# ---- recording attention weights ---------------------------------------------------------------

def test_record_attention_keeps_each_layers_weights():
    model = tiny_gpt()
    x, y = ids(TINY, 2, 5), ids(TINY, 2, 5, seed=1)
    logits, loss = model(x, y)
    loss.backward()
    grads = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    with record_attention(model) as attention:
        recorded_logits, recorded_loss = model(x, y)
        recorded_loss.backward()
    # recording changes nothing the model computes, gradients included
    np.testing.assert_array_equal(recorded_logits.data, logits.data)
    for g, p in zip(grads, model.parameters()):
        np.testing.assert_array_equal(p.grad, g)
    assert [a.layer for a in attention] == list(range(TINY.n_layer))
    # the weights, computed by hand from each layer's input as Chapter 6 once did
    hs = TINY.n_embd // TINY.n_head
    with no_grad():
        h = model.wte(x) + model.wpe(np.arange(5))
        for block, a in zip(model.h, attention):
            q, k, _ = block.attn.c_attn(block.ln_1(h)).data.reshape(2, 5, 3, TINY.n_head, hs).transpose(2, 0, 3, 1, 4)
            expected = causal_softmax(Tensor(q @ k.swapaxes(-1, -2)), 1 / np.sqrt(hs)).data  # (B, nh, T, T)
            np.testing.assert_allclose(a.last_weights, expected, rtol=1e-12, atol=1e-15)
            h = block(h)
    # outside the block nothing is recorded (and nothing is kept by a model that never recorded)
    kept = attention[0].last_weights
    with no_grad():
        model(ids(TINY, 1, 3, seed=5))
    assert attention[0].last_weights is kept and not attention[0].record_weights
    assert tiny_gpt().h[0].attn.last_weights is None


def test_record_attention_with_kv_cache():
    model = tiny_gpt()
    x = ids(TINY, 2, 4)
    with no_grad(), record_attention(model) as attention:
        model(x)
        full = [a.last_weights for a in attention]                      # (B, nh, 4, 4)
        cache = model.new_cache(2)
        model(x[:, :3], cache=cache)
        model(x[:, 3:], cache=cache)                                    # one query over 4 keys
    for a, f in zip(attention, full):
        assert a.last_weights.shape == (2, TINY.n_head, 1, 4)
        np.testing.assert_allclose(a.last_weights[:, :, 0], f[:, :, -1], rtol=1e-12, atol=1e-15)


def test_record_attention_nests_and_restores_flags():
    model = tiny_gpt()
    with record_attention(model):
        with record_attention(model):
            pass
        assert all(block.attn.record_weights for block in model.h)  # the outer block still records
    assert not any(block.attn.record_weights for block in model.h)


# ---- parity with PyTorch ----------------------------------------------------------------------

def _bench():
    """benchmarks/bench_gpt.py, whose PyTorch twin of the GPT the parity test shares."""
    return load_benchmark("bench_gpt")


@pytest.mark.parametrize("options", [dict(tie_weights=True, bias=False), dict(tie_weights=False, bias=True),
                                     MODERN, {**MODERN, "tie_weights": False, "rope_base": 100.0},
                                     dict(norm="rmsnorm", bias=True), dict(position="rope"),
                                     dict(mlp="swiglu", bias=True, gelu="none")],
                         ids=["gpt2", "gpt2_untied_bias", "modern", "modern_untied", "rmsnorm", "rope", "swiglu"])
def test_matches_pytorch_float64(options):
    torch = pytest.importorskip("torch")
    bench = _bench()
    config = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16, **options)
    model = tiny_gpt(config)
    x, y = ids(config, 3, 8, seed=3), ids(config, 3, 8, seed=4)
    y[1, :3] = -1
    logits, loss = model(x, y)
    loss.backward()

    params = bench.torch_parameters(model)
    t_logits, t_loss = bench.torch_gpt_loss(params, config, torch.from_numpy(x), torch.from_numpy(y))
    t_loss.backward()
    assert_same_as_torch(logits, loss, model, t_logits, t_loss, params)


# ---- KV cache ---------------------------------------------------------------------------------

@pytest.mark.parametrize("options", [{}, MODERN], ids=["gpt2", "modern"])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_kv_cache_matches_full_forward(dtype, tol, options):
    model = tiny_gpt(GPTConfig(**{**TINY.__dict__, **options}), dtype=dtype)
    x = ids(TINY, 3, TINY.block_size)
    with no_grad():
        full = model(x)[0].data                                  # (B, T, V)
        cache = model.new_cache(3)
        pieces = [model(x[:, :2], cache=cache)[0].data]          # a 2-token prompt, then one at a time
        pieces += [model(x[:, t:t + 1], cache=cache)[0].data for t in range(2, TINY.block_size)]
    assert cache.length == TINY.block_size
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, rtol=tol, atol=tol)
    with pytest.raises(ValueError, match="block_size"):
        model(x[:, :1], cache=cache)


def test_next_logits_crops_to_block_size():
    model = tiny_gpt()
    x = ids(TINY, 2, 10)
    np.testing.assert_array_equal(model.next_logits(x), model.next_logits(x[:, -TINY.block_size:]))
    np.testing.assert_allclose(model.next_logits(x[:, :4]), model(x[:, :4])[0].data[:, -1])


def test_from_checkpoint_round_trip(tmp_path):
    from scratchlm.checkpoint import save_checkpoint
    model = tiny_gpt(dtype=np.float32)
    save_checkpoint(tmp_path / "gpt.npz", model, config=model.config, extra={"note": "x"})
    loaded, meta = GPT.from_checkpoint(tmp_path / "gpt.npz")
    assert loaded.config == model.config and meta["extra"] == {"note": "x"}
    x = ids(TINY, 2, 6)
    np.testing.assert_array_equal(loaded(x)[0].data, model(x)[0].data)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz"):
        GPT.from_checkpoint(tmp_path / "bad.npz")
    from scratchlm.models.nplm import NPLM, NPLMConfig
    nplm = NPLM(NPLMConfig(vocab_size=5, context=2, n_embd=2, n_hidden=3))
    save_checkpoint(tmp_path / "nplm.npz", nplm, config=nplm.config)
    with pytest.raises(ValueError, match="nplm.npz is not a checkpoint of a GPT"):
        GPT.from_checkpoint(tmp_path / "nplm.npz")


def test_from_checkpoint_reads_a_checkpoint_written_by_train(tmp_path):
    from scratchlm.train import TrainConfig, configure_optimizer, train
    model = tiny_gpt(dtype=np.float32)
    batch = (ids(TINY, 2, TINY.block_size), ids(TINY, 2, TINY.block_size))
    settings = TrainConfig(max_iters=2, eval_interval=1, warmup_iters=1, lr_decay_iters=2)
    train(model, configure_optimizer(model, 1e-3, 0.1), lambda rng: batch, settings,
          eval_batches={"valid": [batch]}, checkpoint=tmp_path / "run.npz", log=lambda line: None)
    loaded, meta = GPT.from_checkpoint(tmp_path / "run.npz")   # its "config" holds the training settings
    assert loaded.config == model.config and meta["step"] == 2
    np.testing.assert_array_equal(loaded(batch[0])[0].data, model(batch[0])[0].data)


def test_from_checkpoint_reads_a_config_saved_before_the_modern_decoder_fields(tmp_path):
    import json

    from scratchlm.checkpoint import read_checkpoint, save_checkpoint
    model = tiny_gpt(dtype=np.float32)
    save_checkpoint(tmp_path / "new.npz", model, config=model.config)
    meta, arrays = read_checkpoint(tmp_path / "new.npz")
    for stored in (meta["model_config"], meta["config"]):      # what files written before the fields hold
        for field in ("norm", "position", "mlp", "rope_base"):
            del stored[field]
    np.savez(tmp_path / "old.npz", meta=np.array(json.dumps(meta)), **arrays)
    loaded, _ = GPT.from_checkpoint(tmp_path / "old.npz")
    assert loaded.config == model.config
    x = ids(TINY, 2, 6)
    np.testing.assert_array_equal(loaded(x)[0].data, model(x)[0].data)
    meta["model_config"]["attention"] = "flash"                 # an unknown field is still refused
    np.savez(tmp_path / "odd.npz", meta=np.array(json.dumps(meta)), **arrays)
    with pytest.raises(ValueError, match="odd.npz: its config is not a GPTConfig"):
        GPT.from_checkpoint(tmp_path / "odd.npz")


# ---- the modern decoder and the body ------------------------------------------------------------

def test_modern_decoder_layers_and_sizes():
    model = tiny_gpt(GPTConfig(**{**TINY.__dict__, **MODERN}))
    names = [n for n, _ in model.named_parameters()]
    assert "wpe.weight" not in names and not any(n.endswith("bias") for n in names)  # RoPE; no biases
    assert type(model.h[0].ln_1).__name__ == "RMSNorm" and type(model.ln_f).__name__ == "RMSNorm"
    assert model.h[0].mlp.c_fc.weight.shape == (2 * swiglu_hidden(8), 8)
    assert model.num_parameters() == model.num_parameters(non_embedding=False)  # no position table
    assert swiglu_hidden(128) == 344 and swiglu_hidden(32) == 88          # 8C/3 up to a multiple of 8
    assert abs(3 * 128 * swiglu_hidden(128) / (8 * 128 ** 2) - 1) < 0.01   # the MLP's weights as GELU's


def test_rope_model_is_told_positions_by_the_attention():
    # Without learned positions, a RoPE model still tells "a b" from "b a" at the second position.
    model = tiny_gpt(GPTConfig(**{**TINY.__dict__, "position": "rope"}))
    with no_grad():
        ab, ba = model(np.array([[1, 2, 3]]))[0].data, model(np.array([[2, 1, 3]]))[0].data
    assert not np.allclose(ab[0, 2], ba[0, 2])


@pytest.mark.parametrize("options", [{}, MODERN], ids=["gpt2", "modern"])
def test_embed_hidden_states_head_compose_to_forward(options):
    model = tiny_gpt(GPTConfig(**{**TINY.__dict__, **options}))
    x = ids(TINY, 2, 5)
    logits, _ = model(x)
    h = model.hidden_states(model.embed(x))                             # (B, T, C): the body
    assert h.shape == (2, 5, TINY.n_embd)
    np.testing.assert_array_equal(model.head(h).data, logits.data)
    # a head on the body (a reward or classifier): gradients reach the body's parameters
    w = Tensor(np.random.default_rng(0).normal(size=(TINY.n_embd, 1)), requires_grad=True)
    (model.hidden_states(model.embed(x))[:, -1] @ w).sum().backward()
    assert w.grad is not None and np.abs(model.h[0].attn.c_attn.weight.grad).sum() > 0


def test_config_refuses_unknown_options():
    for field, value in (("norm", "batchnorm"), ("position", "sinusoidal"), ("mlp", "relu")):
        with pytest.raises(ValueError, match=f"GPTConfig: {field} must be one of .* got '{value}'"):
            GPTConfig(**{field: value})
    with pytest.raises(ValueError, match="head size n_embd / n_head = 3 must be even"):
        GPTConfig(n_embd=6, n_head=2, position="rope")
    with pytest.raises(ValueError, match="rope_base must be a number > 0, got 0"):
        GPTConfig(rope_base=0)
