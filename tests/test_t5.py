"""T5, the encoder-decoder of Chapter 9 (scratchlm/models/t5.py): parity with an identical PyTorch
model (float64, logits and every gradient), gradient checks, source and target padding, and decoding
(scratchlm.generate with source=...): greedy and beam search with the two caches equal to
recomputation, the encoder and the memory's keys and values computed once per source, and decoding
that stops at end of sequence after training through seq2seq_loss."""

import numpy as np
import pytest

from scratchlm.autograd import gradcheck, no_grad
from scratchlm.generate import beam_search, generate
from scratchlm.models.attention import CrossAttention
from scratchlm.models.t5 import T5, T5Config, seq2seq_loss
from scratchlm.rng import manual_seed
from test_bert import Called, bench_transformer, ids, rel
from test_gpt import MODERN, _loss_of_parameters

TINY = T5Config(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)


def config(**options) -> T5Config:
    return T5Config(**{**TINY.__dict__, "n_encoder_layer": None, "n_decoder_layer": None, **options})


def tiny_t5(config=TINY, dtype=np.float64, seed=0) -> T5:
    manual_seed(seed)
    model = T5(config, dtype=dtype)
    rng = np.random.default_rng(seed + 1)
    for p in model.parameters():  # move every weight off its initial value (norm gains = 1)
        p.data += rng.normal(0, 0.1, p.shape).astype(dtype)
    return model


def padded_batch(cfg, seed=0):
    """src (3, 8) with src_lengths (8, 5, 2), dec_in (3, 6), targets (3, 6) ignored after (6, 3, 4)."""
    src, dec_in, targets = ids(cfg, 3, 8, seed), ids(cfg, 3, 6, seed + 1), ids(cfg, 3, 6, seed + 2)
    src_lengths = np.array([8, 5, 2])
    targets[np.arange(6) >= np.array([6, 3, 4])[:, None]] = -1
    return src, src_lengths, dec_in, targets


# ---- parity with PyTorch ----------------------------------------------------------------------

@pytest.mark.parametrize("options", [{}, dict(bias=True, gelu="none"), MODERN,
                                     dict(n_encoder_layer=1, n_decoder_layer=3)],
                         ids=["gpt2", "bias", "modern", "1enc_3dec"])
@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
def test_matches_pytorch_float64(options, padded):
    torch = pytest.importorskip("torch")
    bench = bench_transformer()
    cfg = config(**options)
    model = tiny_t5(cfg)
    src, src_lengths, dec_in, targets = padded_batch(cfg)
    if not padded:
        src_lengths, targets = None, ids(cfg, 3, 6, seed=9)
    logits, loss = model(src, src_lengths, dec_in, targets)
    loss.backward()

    params = bench.torch_parameters(model)
    t_logits, t_loss = bench.torch_t5_loss(params, cfg, torch.from_numpy(src),
                                           None if src_lengths is None else torch.from_numpy(src_lengths),
                                           torch.from_numpy(dec_in), torch.from_numpy(targets))
    t_loss.backward()
    assert rel(logits.data, t_logits.detach().numpy()) < 1e-6
    assert abs(loss.item() - t_loss.item()) < 1e-6 * abs(t_loss.item())
    for name, p in model.named_parameters():
        assert rel(p.grad, params[name].grad.numpy()) < 1e-6, name


# ---- gradients --------------------------------------------------------------------------------

@pytest.mark.parametrize("options", [dict(bias=True), MODERN], ids=["gpt2_bias", "modern"])
def test_gradcheck(options):
    cfg = T5Config(vocab_size=5, block_size=4, n_layer=1, n_head=2, n_embd=4, **options)
    model = tiny_t5(cfg)
    src, dec_in, targets = ids(cfg, 2, 4, seed=1), ids(cfg, 2, 3, seed=2), ids(cfg, 2, 3, seed=3)
    targets[1, 2] = -1
    padded = Called(model, lambda m, x, y: m(x[0], np.array([4, 2]), x[1], y))  # row 1: 2 source tokens
    fn, params = _loss_of_parameters(padded, (src, dec_in), targets)
    assert gradcheck(fn, params) <= 1e-6


# ---- padding ----------------------------------------------------------------------------------

def test_padded_batch_gives_each_row_its_unpadded_predictions():
    model = tiny_t5()
    src, src_lengths, dec_in, targets = padded_batch(TINY)
    tgt_lengths = (targets >= 0).sum(1)
    with no_grad():
        batch_logits = model(src, src_lengths, dec_in)[0].data
        for b in range(3):
            alone = model(src[b:b + 1, :src_lengths[b]], None, dec_in[b:b + 1, :tgt_lengths[b]])[0].data[0]
            np.testing.assert_allclose(batch_logits[b, :tgt_lengths[b]], alone, rtol=1e-12, atol=1e-12)
        unmasked = model(src, None, dec_in)[0].data      # the source padding read as text
    assert not np.allclose(unmasked[2], batch_logits[2])


def test_the_decoder_reads_the_source():
    model = tiny_t5()
    src, dec_in = ids(TINY, 1, 5), ids(TINY, 1, 3, seed=1)
    other = src.copy()
    other[0, -1] = (src[0, -1] + 1) % TINY.vocab_size
    with no_grad():
        a, b = model(src, None, dec_in)[0].data, model(other, None, dec_in)[0].data
    assert not np.allclose(a[0, 0], b[0, 0])             # even the first target position sees the last source token


# ---- decoding -------------------------------------------------------------------------------

def test_next_logits_equals_the_forward_pass_with_and_without_cache():
    model = tiny_t5()
    src, src_lengths, dec_in, _ = padded_batch(TINY)
    with no_grad():
        full = model(src, src_lengths, dec_in)[0].data                   # (B, T, V)
    memory = model.encode(src, src_lengths)
    np.testing.assert_allclose(model.next_logits(dec_in[:, :4], memory), full[:, 3], rtol=1e-12, atol=1e-12)
    cache = model.new_cache(3)
    steps = [model.next_logits(dec_in[:, :2], memory, cache)]              # a 2-token start, then one at a time
    steps += [model.next_logits(dec_in[:, t:t + 1], memory, cache) for t in range(2, 6)]
    np.testing.assert_allclose(np.stack(steps, 1), full[:, 1:], rtol=1e-12, atol=1e-12)
    assert cache.length == 6 and cache.k.shape[0] == TINY.n_decoder_layer


@pytest.mark.parametrize("options", [{}, MODERN, dict(n_encoder_layer=1, n_decoder_layer=3)],
                         ids=["gpt2", "modern", "1enc_3dec"])
def test_greedy_with_caches_equals_recomputation(options):
    model = tiny_t5(config(**options))
    src, src_lengths, _, _ = padded_batch(TINY)
    start = np.zeros((3, 1), np.int64)
    # 12 new tokens: past block_size 8, where the window slides and the cache is dropped
    cached = generate(model, start, 12, temperature=0, source=src, source_lengths=src_lengths)
    recomputed = generate(model, start, 12, temperature=0, source=src, source_lengths=src_lengths,
                          use_cache=False)
    np.testing.assert_array_equal(cached, recomputed)
    assert cached.shape == (3, 13)
    # and a padded source decodes as that source alone
    alone = generate(model, start[2:], 12, temperature=0, source=src[2:, :2])
    np.testing.assert_array_equal(cached[2:], alone)


@pytest.mark.parametrize("options", [{}, MODERN], ids=["gpt2", "modern"])
def test_beam_search_with_caches_equals_recomputation(options):
    model = tiny_t5(config(**options))
    src, src_lengths, _, _ = padded_batch(TINY)
    for b in range(3):
        cached = beam_search(model, np.zeros(1, np.int64), 6, beam_width=3, source=src[b],
                             source_length=src_lengths[b])
        recomputed = beam_search(model, np.zeros(1, np.int64), 6, beam_width=3, source=src[b],
                                 source_length=src_lengths[b], use_cache=False)
        alone = beam_search(model, np.zeros(1, np.int64), 6, beam_width=3, source=src[b, :src_lengths[b]])
        for hyps in (recomputed, alone):
            assert [h[0].tolist() for h in cached] == [h[0].tolist() for h in hyps]
            np.testing.assert_allclose([h[1] for h in cached], [h[1] for h in hyps], rtol=1e-10)


def test_encoder_and_memory_projections_run_once_per_source(monkeypatch):
    model = tiny_t5(config(n_decoder_layer=3))
    src, src_lengths, _, _ = padded_batch(TINY)
    calls = {"encoder": 0, "memory": 0}
    encoder_forward, project = model.encoder.forward, CrossAttention._project_memory

    def count_encoder(*args, **kwargs):
        calls["encoder"] += 1
        return encoder_forward(*args, **kwargs)

    def count_memory(self, *args):
        calls["memory"] += 1
        return project(self, *args)
    monkeypatch.setattr(model.encoder, "forward", count_encoder)
    monkeypatch.setattr(CrossAttention, "_project_memory", count_memory)
    generate(model, np.zeros((3, 1), np.int64), 5, temperature=0, source=src, source_lengths=src_lengths)
    assert calls == {"encoder": 1, "memory": 3}                    # once per decoder layer, not per step
    calls.update(encoder=0, memory=0)
    generate(model, np.zeros((3, 1), np.int64), 5, temperature=0, source=src, source_lengths=src_lengths,
             use_cache=False)
    assert calls == {"encoder": 1, "memory": 3 * 6}                # recomputation: every layer, every step


def test_learns_to_reverse_and_decoding_stops_at_eos():
    # End to end: Seq2SeqBatch -> seq2seq_loss -> train_step; then greedy and beam search from the
    # sources, stopping at </s>. Reversing needs the cross-attention to find each source position.
    from scratchlm.objectives import seq2seq_batch
    from scratchlm.train import configure_optimizer, train_step
    PAD, BOS, EOS = 0, 1, 2
    rng = np.random.default_rng(0)
    sources = [rng.integers(3, 9, rng.integers(2, 6)) for _ in range(16)]
    batch = seq2seq_batch(sources, [s[::-1] for s in sources], PAD, start_id=BOS, eos_id=EOS)
    manual_seed(0)
    model = T5(T5Config(vocab_size=9, block_size=8, n_layer=1, n_head=2, n_embd=32))
    optimizer = configure_optimizer(model, lr=1e-2, weight_decay=0.0)
    losses = [train_step(model, optimizer, [batch], loss_fn=seq2seq_loss)[0] for _ in range(150)]
    assert losses[0] > 2.0 and losses[-1] < 0.05
    model.eval()

    out = generate(model, np.full((16, 1), BOS), 7, temperature=0, eos_id=EOS, source=batch.src,
                   source_lengths=batch.src_lengths)
    longest = max(len(s) for s in sources)
    assert out.shape == (16, 1 + longest + 1)                      # stopped once every row had </s>
    for row, s in zip(out, sources):
        assert row[1:].tolist() == [*s[::-1], *[EOS] * (longest + 1 - len(s))]
    best, _ = beam_search(model, np.array([BOS]), 7, beam_width=3, eos_id=EOS, source=batch.src[3],
                          source_length=batch.src_lengths[3])[0]
    assert best.tolist() == [BOS, *sources[3][::-1], EOS]


# ---- structure and errors ---------------------------------------------------------------------

def test_structure_and_initialisation():
    model = tiny_t5(config(n_encoder_layer=1, n_decoder_layer=3))
    names = [n for n, _ in model.named_parameters()]
    assert names[0] == "wte.weight" and "encoder.wpe.weight" in names and "decoder.wpe.weight" in names
    assert "decoder.h.2.cross_attn.c_kv.weight" in names and "encoder.h.1.ln_1.weight" not in names
    assert not any("cross" in n for n in names if n.startswith("encoder"))
    assert [b.attn.causal for b in model.encoder.h] == [False] and all(b.attn.causal for b in model.decoder.h)
    assert model.num_parameters(non_embedding=False) - model.num_parameters() == 2 * 8 * 16
    manual_seed(0)
    big = T5(T5Config(n_layer=4, n_embd=256))
    std = {n: p.data.std() for n, p in big.named_parameters()}
    assert abs(std["encoder.h.0.attn.c_proj.weight"] - 0.02 / np.sqrt(2 * 4)) < 2e-4
    assert abs(std["decoder.h.0.cross_attn.c_proj.weight"] - 0.02 / np.sqrt(3 * 4)) < 2e-4
    assert abs(std["decoder.h.0.cross_attn.c_kv.weight"] - 0.02) < 1e-3


def test_config_and_inputs_are_checked():
    assert (T5Config(n_layer=3).n_encoder_layer, T5Config(n_layer=3, n_decoder_layer=1).n_decoder_layer) == (3, 1)
    with pytest.raises(ValueError, match="T5Config: n_decoder_layer must be an integer >= 1, got 0"):
        T5Config(n_decoder_layer=0)
    with pytest.raises(ValueError, match="T5Config: dropout must be in"):
        T5Config(dropout=1.0)
    model = tiny_t5()
    src, dec_in = ids(TINY, 2, 5), ids(TINY, 2, 3)
    with pytest.raises(ValueError, match=r"T5: src must be token ids of shape \(B, T\)"):
        model(src[0], None, dec_in)
    with pytest.raises(ValueError, match="T5: dec_in has 9 tokens, longer than block_size 8"):
        model(src, None, ids(TINY, 2, 9))
    with pytest.raises(ValueError, match=r"T5: dec_in must be \(B, T\) ids with B = 2 rows as src"):
        model(src, None, dec_in[:1])
    with pytest.raises(ValueError, match=r"T5: targets must have the shape of dec_in \(2, 3\)"):
        model(src, None, dec_in, ids(TINY, 2, 4))
    with pytest.raises(ValueError, match=r"key_lengths\[0\] = 6 is outside \[0, 5\]"):
        model(src, np.array([6, 5]), dec_in)
    cache = model.new_cache(2)
    memory = model.encode(src)
    model.next_logits(ids(TINY, 2, 8), memory, cache)
    with pytest.raises(ValueError, match="T5: 9 decoder positions are more than block_size 8"):
        model.next_logits(ids(TINY, 2, 1), memory, cache)
