"""The attention op and its modules (scratchlm/models/attention.py; Chapters 6, 7, 9): the general
softmax kernel against its NumPy twin and against exercise 6.1's causal kernel, the op against
PyTorch's scaled_dot_product_attention (causal, bidirectional, padded, cross with Tq != Tk), gradient
checks without PyTorch, the packed layouts against the op, the caches against recomputation, and
recording the weights of every kind of attention."""


import numpy as np
import pytest

import scratchlm.autograd.functional as F
from scratchlm.autograd import Tensor, no_grad
from scratchlm.models import attention_kernels as K
from scratchlm.models.attention import (CrossAttention, KVCache, SelfAttention, cross_attention, record_attention,
                                        scaled_dot_product_attention, scaled_dot_product_attention_ref,
                                        self_attention)
from scratchlm.models.gpt import Block, GPTConfig
from scratchlm.nn import Module
from scratchlm.rng import manual_seed

from autograd_helpers import check_op
from benchmark_modules import load_benchmark

# Each kind: (causal, Tq, Tk, key_lengths for B = 3). Lengths include 0 (a sequence with no real
# token: its queries see nothing) and Tk (no padding).
KINDS = {
    "causal": (True, 5, 5, None),
    "causal_cached": (True, 2, 6, None),                 # 2 new queries after 4 cached keys
    "bidirectional": (False, 5, 5, None),
    "padded_bidirectional": (False, 5, 5, [5, 3, 0]),
    "padded_causal": (True, 5, 5, [5, 2, 1]),
    "cross": (False, 3, 7, None),                        # decoder queries, encoder keys, Tq != Tk
    "padded_cross": (False, 4, 6, [6, 1, 0]),
}


def heads(kind, B=3, nh=2, hs=4, dtype=np.float64, seed=0):
    causal, Tq, Tk, lengths = KINDS[kind]
    rng = np.random.default_rng(seed)
    q, k, v = (Tensor(rng.normal(size=(B, nh, T, hs)).astype(dtype), requires_grad=True) for T in (Tq, Tk, Tk))
    return q, k, v, causal, (None if lengths is None else np.array(lengths))


# ---- the kernel ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", list(KINDS))
def test_kernel_matches_numpy_twin(kind, dtype):
    causal, Tq, Tk, lengths = KINDS[kind]
    lengths = np.repeat(np.full(3, Tk) if lengths is None else lengths, 2).astype(np.int64)   # (B * nh,)
    rng = np.random.default_rng(1)
    scores = (3 * rng.standard_normal((6, Tq, Tk))).astype(dtype)
    grad = rng.standard_normal((6, Tq, Tk)).astype(dtype)
    scale = dtype(0.35)
    probs, ref = np.full_like(scores, np.nan), np.full_like(scores, np.nan)   # unwritten entries show
    K.attention_softmax_forward(scores, scale, causal, lengths, probs)
    K.attention_softmax_forward_ref(scores, scale, causal, lengths, ref)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(probs, ref, rtol=tol, atol=tol)
    visible = K.attention_mask(Tq, Tk, causal, lengths)
    assert np.all(probs[~visible] == 0)
    np.testing.assert_allclose(probs.sum(-1), visible.any(-1).astype(dtype), rtol=tol)  # 1, or 0 if no key
    back, back_ref = np.full_like(scores, np.nan), np.full_like(scores, np.nan)
    K.attention_softmax_backward(probs, grad, scale, causal, lengths, back)
    K.attention_softmax_backward_ref(ref, grad, scale, causal, lengths, back_ref)
    np.testing.assert_allclose(back, back_ref, rtol=tol, atol=tol)
    assert np.all(back[~visible] == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("Tq,Tk", [(1, 1), (64, 64), (3, 8), (1, 9)])
def test_general_kernel_gives_the_causal_kernels_bits(dtype, Tq, Tk):
    # The GPT runs the general kernel; Chapters 6-7's numbers were made with the causal one.
    rng = np.random.default_rng(Tq + Tk)
    scores = (3 * rng.standard_normal((5, Tq, Tk))).astype(dtype)
    grad = rng.standard_normal((5, Tq, Tk)).astype(dtype)
    scale, full = dtype(0.25), np.full(5, Tk, np.int64)
    a, b = np.empty_like(scores), np.empty_like(scores)
    K.causal_softmax_forward(scores, scale, a)
    K.attention_softmax_forward(scores, scale, True, full, b)
    np.testing.assert_array_equal(a, b)
    da, db = np.empty_like(scores), np.empty_like(scores)
    K.causal_softmax_backward(a, grad, scale, da)
    K.attention_softmax_backward(a, grad, scale, True, full, db)
    np.testing.assert_array_equal(da, db)


def test_kernel_is_stable_for_huge_scores():
    for dtype in (np.float32, np.float64):
        scores = np.array([[[1e4, -1e4, 0.0], [3e4, 3e4, -3e4], [1e30, 1e30, 1e30]]], dtype)
        probs = np.empty_like(scores)
        K.attention_softmax_forward(scores, dtype(1.0), False, np.array([2]), probs)
        np.testing.assert_allclose(probs[0], [[1, 0, 0], [0.5, 0.5, 0], [0.5, 0.5, 0]], rtol=1e-6)


def test_attention_mask():
    m = K.attention_mask(2, 4, True, np.array([4, 2]))
    assert m[0].tolist() == [[True, True, True, False], [True, True, True, True]]
    assert m[1].tolist() == [[True, True, False, False], [True, True, False, False]]
    assert K.attention_mask(1, 3, False, np.array([0]))[0].tolist() == [[False, False, False]]


# ---- the op against PyTorch ----------------------------------------------------------------------

def rel(a, b):
    return np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)


@pytest.mark.parametrize("kind", list(KINDS))
def test_matches_torch_sdpa_float64(kind):
    torch = pytest.importorskip("torch")
    common = load_benchmark("_common")
    q, k, v, causal, lengths = heads(kind)
    y = scaled_dot_product_attention(q, k, v, causal=causal, key_lengths=lengths)
    g = np.random.default_rng(9).normal(size=y.shape)
    y.backward(g)
    tq, tk, tv = (torch.tensor(t.data, requires_grad=True) for t in (q, k, v))
    mask = common.torch_attention_mask(q.shape[2], k.shape[2], causal, lengths, q.shape[0])
    ty = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=mask)
    ty.backward(torch.from_numpy(g))
    assert rel(y.data, ty.detach().numpy()) < 1e-6
    for ours, theirs, name in ((q, tq, "q"), (k, tk, "k"), (v, tv, "v")):
        assert rel(ours.grad, theirs.grad.numpy()) < 1e-6, name


@pytest.mark.parametrize("kind", ["causal", "padded_causal", "padded_bidirectional"])
@pytest.mark.parametrize("rope", [False, True])
def test_packed_self_attention_matches_torch(kind, rope):
    torch = pytest.importorskip("torch")
    common = load_benchmark("_common")
    causal, T, _, lengths = KINDS[kind]
    B, nh, hs = 3, 2, 4
    qkv = Tensor(np.random.default_rng(2).normal(size=(B, T, 3 * nh * hs)), requires_grad=True)
    tables = F.rope_tables(T, hs, 10000.0) if rope else None
    y = self_attention(qkv, nh, causal, None if lengths is None else np.array(lengths), rope=tables)
    g = np.random.default_rng(3).normal(size=y.shape)
    y.backward(g)
    t = torch.tensor(qkv.data, requires_grad=True)
    q, k, v = (x.view(B, T, nh, hs).transpose(1, 2) for x in t.split(nh * hs, dim=2))
    if rope:
        cos, sin = common.torch_rope_tables(T, hs, 10000.0)
        q, k = common.torch_rope(q, cos, sin), common.torch_rope(k, cos, sin)
    ty = common.torch_sdpa(q, k, v, causal, lengths).transpose(1, 2).reshape(B, T, nh * hs)
    ty.backward(torch.from_numpy(g))
    assert rel(y.data, ty.detach().numpy()) < 1e-6
    assert rel(qkv.grad, t.grad.numpy()) < 1e-6


# ---- gradients without PyTorch -------------------------------------------------------------------

@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("kind", list(KINDS))
def test_op_gradcheck(kind, dropout):
    q, k, v, causal, lengths = heads(kind, B=3, nh=1, hs=3)

    def fn(q, k, v):
        manual_seed(5)  # the same dropout mask on every call
        return scaled_dot_product_attention(q, k, v, causal=causal, key_lengths=lengths, dropout=dropout)
    check_op(fn, [q, k, v])


@pytest.mark.parametrize("kind", list(KINDS))
def test_op_equals_tensor_ops(kind):
    q, k, v, causal, lengths = heads(kind)
    twins = [Tensor(t.data.copy(), requires_grad=True) for t in (q, k, v)]
    g = np.random.default_rng(4).normal(size=(3, 2, q.shape[2], 4))
    y = scaled_dot_product_attention(q, k, v, causal=causal, key_lengths=lengths)
    expected = scaled_dot_product_attention_ref(*twins, causal=causal, key_lengths=lengths)
    y.backward(g)
    expected.backward(g)
    np.testing.assert_allclose(y.data, expected.data, rtol=1e-12, atol=1e-14)
    for a, b in zip((q, k, v), twins):
        np.testing.assert_allclose(a.grad, b.grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("rope", [False, True])
@pytest.mark.parametrize("kind", ["causal", "padded_causal", "padded_bidirectional"])
def test_self_attention_gradcheck(kind, rope):
    causal, T, _, lengths = KINDS[kind]
    qkv = Tensor(np.random.default_rng(0).normal(size=(3, T, 12)), requires_grad=True)
    tables = F.rope_tables(T, 2, 100.0) if rope else None

    def fn(x):
        manual_seed(5)
        return self_attention(x, 2, causal, None if lengths is None else np.array(lengths), 0.2, rope=tables)
    check_op(fn, [qkv])


@pytest.mark.parametrize("lengths", [None, [6, 2, 0]])
def test_cross_attention_gradcheck(lengths):
    rng = np.random.default_rng(0)
    q = Tensor(rng.normal(size=(3, 4, 6)), requires_grad=True)
    kv = Tensor(rng.normal(size=(3, 6, 12)), requires_grad=True)
    check_op(lambda q, kv: cross_attention(q, kv, 2, None if lengths is None else np.array(lengths)), [q, kv])


def _split(t, nh):
    """(B, T, C) array -> (B, nh, T, hs) Tensor, a copy (an independent leaf)."""
    B, T, C = t.shape
    return Tensor(np.ascontiguousarray(t.reshape(B, T, nh, C // nh).transpose(0, 2, 1, 3)), requires_grad=True)


def _merge(t):
    B, nh, T, hs = t.shape
    return t.transpose(0, 2, 1, 3).reshape(B, T, nh * hs)


@pytest.mark.parametrize("kind", ["causal", "padded_causal", "bidirectional", "padded_bidirectional"])
def test_packed_self_attention_is_the_op(kind):
    causal, T, _, lengths = KINDS[kind]
    lengths = None if lengths is None else np.array(lengths)
    qkv = Tensor(np.random.default_rng(6).normal(size=(3, T, 24)), requires_grad=True)
    parts = [_split(qkv.data[:, :, i * 8:(i + 1) * 8], 2) for i in range(3)]
    g = np.random.default_rng(7).normal(size=(3, T, 8))
    self_attention(qkv, 2, causal, lengths).backward(g)
    y = scaled_dot_product_attention(*parts, causal=causal, key_lengths=lengths)
    y.backward(_split(g, 2).data)
    np.testing.assert_allclose(self_attention(qkv, 2, causal, lengths).data, _merge(y.data), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(qkv.grad, np.concatenate([_merge(p.grad) for p in parts], axis=-1),
                               rtol=1e-12, atol=1e-15)


def test_packed_cross_attention_is_the_op():
    rng = np.random.default_rng(8)
    q = Tensor(rng.normal(size=(3, 4, 8)), requires_grad=True)
    kv = Tensor(rng.normal(size=(3, 6, 16)), requires_grad=True)
    lengths = np.array([6, 3, 1])
    parts = [_split(q.data, 2), _split(kv.data[:, :, :8], 2), _split(kv.data[:, :, 8:], 2)]
    g = rng.normal(size=(3, 4, 8))
    y = cross_attention(q, kv, 2, lengths)
    y.backward(g)
    ref = scaled_dot_product_attention(*parts, key_lengths=lengths)
    ref.backward(_split(g, 2).data)
    np.testing.assert_allclose(y.data, _merge(ref.data), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(q.grad, _merge(parts[0].grad), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(kv.grad, np.concatenate([_merge(parts[1].grad), _merge(parts[2].grad)], -1),
                               rtol=1e-12, atol=1e-15)
    constant = cross_attention(Tensor(q.data, requires_grad=True), kv.data, 2, lengths)  # kv from a cache
    np.testing.assert_array_equal(constant.data, y.data)


# ---- what each mask means ------------------------------------------------------------------------

def test_queries_that_see_no_key_give_zeros_not_nan():
    q, k, v, causal, lengths = heads("padded_bidirectional")          # sequence 2 has no real token
    with np.errstate(all="raise"):
        y, P = scaled_dot_product_attention(q, k, v, key_lengths=lengths, return_weights=True)
        y.backward(np.ones(y.shape))
    assert np.all(y.data[2] == 0) and np.all(P[2] == 0)
    assert np.all(q.grad[2] == 0) and np.all(k.grad[2] == 0) and np.all(v.grad[2] == 0)
    assert np.isfinite(y.data).all() and np.isfinite(q.grad).all()


def test_padding_never_changes_the_real_positions():
    rng = np.random.default_rng(0)
    q, k, v = (rng.normal(size=(2, 2, 5, 4)) for _ in range(3))
    lengths = np.array([5, 3])
    k2, v2 = k.copy(), v.copy()
    k2[1, :, 3:], v2[1, :, 3:] = 100.0, -100.0                        # other padding
    for causal in (False, True):
        a = scaled_dot_product_attention(q, k, v, causal=causal, key_lengths=lengths).data
        b = scaled_dot_product_attention(q, k2, v2, causal=causal, key_lengths=lengths).data
        np.testing.assert_array_equal(a, b)


def test_bidirectional_sees_the_future_and_causal_does_not():
    rng = np.random.default_rng(1)
    q, k, v = (rng.normal(size=(1, 1, 4, 3)) for _ in range(3))
    k2, v2 = k.copy(), v.copy()
    k2[..., 3, :] += 1.0
    v2[..., 3, :] += 1.0                                              # change the last position only
    for causal, changed in ((True, [False, False, False, True]), (False, [True, True, True, True])):
        a = scaled_dot_product_attention(q, k, v, causal=causal).data
        b = scaled_dot_product_attention(q, k2, v2, causal=causal).data
        assert [not np.array_equal(a[0, 0, i], b[0, 0, i]) for i in range(4)] == changed


def test_rope_scores_depend_on_relative_positions_only():
    # RoPE's point: rotated q_s . k_t depends on s - t, so the weights of a sequence placed at positions
    # 0..T-1 or 7..T+6 are the same.
    qkv = Tensor(np.random.default_rng(2).normal(size=(1, 4, 12)))
    _, P0 = self_attention(qkv, 1, rope=F.rope_tables(4, 4, 10000.0), return_weights=True)
    _, P7 = self_attention(qkv, 1, rope=F.rope_tables(4, 4, 10000.0, start=7), return_weights=True)
    np.testing.assert_allclose(P0, P7, rtol=1e-12, atol=1e-15)
    _, plain = self_attention(qkv, 1, return_weights=True)
    assert not np.allclose(P0, plain)


def test_errors_name_the_problem():
    q, k, v, _, _ = heads("bidirectional")
    with pytest.raises(ValueError, match=r"key_lengths\[1\] = 6 is outside \[0, 5\]"):
        scaled_dot_product_attention(q, k, v, key_lengths=np.array([5, 6, 1]))
    with pytest.raises(ValueError, match=r"key_lengths must be B=3 integers .* shape \(2,\)"):
        scaled_dot_product_attention(q, k, v, key_lengths=np.array([5, 5]))
    with pytest.raises(ValueError, match=r"key_lengths must be B=3 integers .*float64"):
        scaled_dot_product_attention(q, k, v, key_lengths=np.array([5.0, 5.0, 1.0]))
    with pytest.raises(ValueError, match=r"need q \(B, \.\.\., Tq, hs\).*got q \(3, 2, 5, 4\), k \(3, 2, 5, 3\)"):
        scaled_dot_product_attention(q, k[..., :3], v)
    with pytest.raises(TypeError, match="one floating dtype"):
        scaled_dot_product_attention(q, k, Tensor(v.data.astype(np.float32)))
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1\.0"):
        scaled_dot_product_attention(q, k, v, dropout=1.0)
    cache = KVCache(GPTConfig(n_layer=1, n_head=2, n_embd=8, block_size=8), 1, np.float64)
    with no_grad(), pytest.raises(ValueError, match="KV cache is for causal"):
        self_attention(Tensor(np.zeros((1, 2, 24))), 2, causal=False, cache=cache)
    with pytest.raises(ValueError, match=r"kv \(B, Tk, 2C\).*kv \(3, 6, 8\)"):
        cross_attention(Tensor(np.zeros((3, 4, 8))), np.zeros((3, 6, 8)), 2)
    with pytest.raises(ValueError, match="no memory"):
        CrossAttention(GPTConfig(n_head=2, n_embd=8))(Tensor(np.zeros((1, 2, 8), np.float32)))


# ---- modules, caches and recorded weights ---------------------------------------------------------

CONFIG = GPTConfig(vocab_size=7, block_size=8, n_layer=2, n_head=2, n_embd=8, bias=True)


def randomised(module, seed=0):
    rng = np.random.default_rng(seed)
    for p in module.parameters():
        p.data = rng.normal(size=p.shape) * (0.5 if p.ndim == 2 else 1.0)
    return module.eval()


def test_cross_attention_cache_computes_the_source_once_and_matches_recomputation():
    layer = randomised(CrossAttention(CONFIG, layer=1))
    rng = np.random.default_rng(1)
    x, memory = Tensor(rng.normal(size=(2, 3, 8))), Tensor(rng.normal(size=(2, 5, 8)))
    lengths = np.array([5, 2])
    calls = []
    original = layer.c_kv.forward
    layer.c_kv.forward = lambda m: calls.append(1) or original(m)
    with no_grad():
        full = layer(x, memory, lengths).data
        cache = KVCache(CONFIG, batch_size=2, dtype=np.float64)
        steps = [layer(Tensor(x.data[:, :1]), memory, lengths, cache).data]
        steps += [layer(Tensor(x.data[:, t:t + 1]), None, None, cache).data for t in (1, 2)]  # memory cached
    assert len(calls) == 2                                 # once for `full`, once for the cache
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, rtol=1e-12, atol=1e-14)
    cache.reorder(np.array([1, 1, 0]))                     # beam search: the memory follows its rows
    with no_grad():
        beams = layer(Tensor(x.data[[1, 1, 0], :1]), None, None, cache).data
    np.testing.assert_allclose(beams, full[[1, 1, 0], :1], rtol=1e-12, atol=1e-14)


def test_rope_self_attention_with_kv_cache_matches_full():
    config = GPTConfig(**{**CONFIG.__dict__, "position": "rope"})
    layer = randomised(SelfAttention(config, layer=0))
    x = Tensor(np.random.default_rng(2).normal(size=(2, 6, 8)))
    with no_grad():
        full = layer(x).data
        cache = KVCache(config, batch_size=2, dtype=np.float64)
        first = layer(Tensor(x.data[:, :4]), cache).data
        cache.length += 4
        second = layer(Tensor(x.data[:, 4:]), cache).data
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), full, rtol=1e-12, atol=1e-14)


def test_record_attention_for_every_kind():
    encoder = randomised(Block(CONFIG, 0, causal=False))
    decoder = randomised(Block(CONFIG, 1, causal=True, cross_attention=True))
    rng = np.random.default_rng(3)
    src, tgt = Tensor(rng.normal(size=(2, 5, 8))), Tensor(rng.normal(size=(2, 3, 8)))
    lengths = np.array([5, 2])

    class EncoderDecoder(Module):                          # the two blocks, for record_attention to walk
        def __init__(self):
            super().__init__()
            self.encoder, self.decoder = encoder, decoder
    with no_grad(), record_attention(EncoderDecoder()) as attention:
        memory = encoder(src, key_lengths=lengths)
        decoder(tgt, memory=memory, memory_lengths=lengths)
    bidirectional, causal, cross = (a.last_weights for a in attention)
    assert [type(a).__name__ for a in attention] == ["SelfAttention", "SelfAttention", "CrossAttention"]
    assert bidirectional.shape == (2, 2, 5, 5) and causal.shape == (2, 2, 3, 3) and cross.shape == (2, 2, 3, 5)
    assert np.all(bidirectional[1, :, :, 2:] == 0) and np.all(bidirectional[0] > 0)   # padding, and both sides
    assert np.all(causal[:, :, np.triu_indices(3, 1)[0], np.triu_indices(3, 1)[1]] == 0)
    assert np.all(cross[1, :, :, 2:] == 0) and np.all(cross[0] > 0)
    for P in (bidirectional, causal, cross):
        np.testing.assert_allclose(P.sum(-1), 1.0, rtol=1e-12)


def test_block_with_cross_attention_gradcheck():
    block = randomised(Block(GPTConfig(n_layer=1, n_head=2, n_embd=4, block_size=4, bias=True), 0,
                             cross_attention=True))
    names = [n for n, _ in block.named_parameters()]
    assert names.index("ln_cross.weight") < names.index("cross_attn.c_q.weight") < names.index("ln_2.weight")
    rng = np.random.default_rng(4)
    x, memory = Tensor(rng.normal(size=(2, 3, 4)), requires_grad=True), Tensor(rng.normal(size=(2, 4, 4)),
                                                                                requires_grad=True)
    check_op(lambda x, m: block(x, memory=m, memory_lengths=np.array([4, 2])), [x, memory])


@pytest.mark.parametrize("config", [CONFIG, GPTConfig(**{**CONFIG.__dict__, "bias": False, "norm": "rmsnorm",
                                                          "position": "rope", "mlp": "swiglu"})],
                         ids=["gpt2", "modern"])
def test_blocks_match_torch_twins(config):
    """The _common.py block twins that the GPT's and Chapter 9's models' parity tests are made of."""
    torch = pytest.importorskip("torch")
    common = load_benchmark("_common")
    encoder = randomised(Block(config, 0, causal=False))
    decoder = randomised(Block(config, 1, causal=True, cross_attention=True), seed=1)
    rng = np.random.default_rng(5)
    src, tgt = Tensor(rng.normal(size=(2, 5, 8)), requires_grad=True), Tensor(rng.normal(size=(2, 3, 8)),
                                                                              requires_grad=True)
    src_len, tgt_len = np.array([5, 3]), np.array([3, 2])
    out = decoder(tgt, key_lengths=tgt_len, memory=encoder(src, key_lengths=src_len), memory_lengths=src_len)
    g = rng.normal(size=out.shape)
    out.backward(g)
    pe, pd = common.torch_parameters(encoder), common.torch_parameters(decoder)
    tsrc, ttgt = torch.tensor(src.data, requires_grad=True), torch.tensor(tgt.data, requires_grad=True)
    memory = _torch_block(common, tsrc, pe, config, causal=False, key_lengths=src_len)
    tout = _torch_block(common, ttgt, pd, config, causal=True, key_lengths=tgt_len, memory=memory,
                        memory_lengths=src_len)
    tout.backward(torch.from_numpy(g))
    assert rel(out.data, tout.detach().numpy()) < 1e-6
    assert rel(src.grad, tsrc.grad.numpy()) < 1e-6 and rel(tgt.grad, ttgt.grad.numpy()) < 1e-6
    for module, params in ((encoder, pe), (decoder, pd)):
        for name, p in module.named_parameters():
            assert rel(p.grad, params[name].grad.numpy()) < 1e-6, name


def _torch_block(common, x, params, config, **kw):
    """torch_block over a lone Block's parameters (named "ln_1.weight", ...: prefix them with "b.")."""
    return common.torch_block(x, {f"b.{k}": v for k, v in params.items()}, "b", config, **kw)
