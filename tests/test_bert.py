"""BERT, the encoder of Chapter 9 (scratchlm/models/bert.py): parity with an identical PyTorch model
(float64, logits and every gradient), gradient checks, key padding, bidirectional context, and
training through scratchlm.train."""


import numpy as np
import pytest

from scratchlm.autograd import no_grad
from scratchlm.models.bert import BERT, BERTConfig
from scratchlm.nn import Module
from scratchlm.rng import manual_seed
from benchmark_modules import load_benchmark
from test_gpt import MODERN, _loss_of_parameters

TINY = BERTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)


def tiny_bert(config=TINY, dtype=np.float64, seed=0) -> BERT:
    manual_seed(seed)
    model = BERT(config, dtype=dtype)
    rng = np.random.default_rng(seed + 1)
    for p in model.parameters():  # move every weight off its initial value (norm gains = 1)
        p.data += rng.normal(0, 0.1, p.shape).astype(dtype)
    return model


def ids(config, B, T, seed=0):
    return np.random.default_rng(seed).integers(0, config.vocab_size, (B, T))


def config(**options) -> BERTConfig:
    return BERTConfig(**{**TINY.__dict__, **options})


def bench_transformer():
    """benchmarks/bench_transformer.py, whose PyTorch twins of BERT and T5 the parity tests share."""
    return load_benchmark("bench_transformer")


def rel(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


class Called(Module):
    """`call(model, x, y)` as `module(x, y)`: test_gpt's _loss_of_parameters runs module(x, y)[1]."""

    def __init__(self, model, call):
        super().__init__()
        self.model, self.call = model, call

    def forward(self, x, y):
        return self.call(self.model, x, y)


# ---- parity with PyTorch ----------------------------------------------------------------------

@pytest.mark.parametrize("options", [{}, dict(bias=True, gelu="none"), MODERN], ids=["gpt2", "bias", "modern"])
@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
def test_matches_pytorch_float64(options, padded):
    torch = pytest.importorskip("torch")
    bench = bench_transformer()
    cfg = config(**options)
    model = tiny_bert(cfg)
    x, y = ids(cfg, 3, 8, seed=3), ids(cfg, 3, 8, seed=4)
    y[:, ::3] = -1                                              # positions that are not predicted
    lengths = np.array([8, 5, 2]) if padded else None
    if padded:
        y[np.arange(8) >= lengths[:, None]] = -1                # no target in the padding
    logits, loss = model(x, y, key_lengths=lengths)
    loss.backward()

    params = bench.torch_parameters(model)
    t_logits, t_loss = bench.torch_bert_loss(params, cfg, torch.from_numpy(x), torch.from_numpy(y),
                                             None if lengths is None else torch.from_numpy(lengths))
    t_loss.backward()
    assert rel(logits.data, t_logits.detach().numpy()) < 1e-6
    assert abs(loss.item() - t_loss.item()) < 1e-6 * abs(t_loss.item())
    for name, p in model.named_parameters():
        assert rel(p.grad, params[name].grad.numpy()) < 1e-6, name
    # the benchmark's twin of mlm_loss: the head on the target rows only, the same loss
    _, t_gathered = bench.torch_bert_loss(params, cfg, torch.from_numpy(x), torch.from_numpy(y),
                                          None if lengths is None else torch.from_numpy(lengths), gathered=True)
    assert abs(t_gathered.item() - t_loss.item()) < 1e-12 * abs(t_loss.item())


# ---- gradients --------------------------------------------------------------------------------

@pytest.mark.parametrize("options", [dict(bias=True), MODERN], ids=["gpt2_bias", "modern"])
def test_gradcheck(options):
    cfg = BERTConfig(vocab_size=5, block_size=4, n_layer=1, n_head=2, n_embd=4, **options)
    model = tiny_bert(cfg)
    x, y = ids(cfg, 2, 4, seed=1), ids(cfg, 2, 4, seed=2)
    y[0, 1] = y[1, 3] = -1                                     # ignored; row 1 is padded after 3 tokens
    padded = Called(model, lambda m, x, y: m(x, y, key_lengths=np.array([4, 3])))
    fn, params = _loss_of_parameters(padded, x, y)
    from scratchlm.autograd import gradcheck
    assert gradcheck(fn, params) <= 1e-6


# ---- padding and context ----------------------------------------------------------------------

def test_padded_batch_gives_each_row_its_unpadded_predictions():
    model = tiny_bert()
    rows = [ids(TINY, 1, T, seed=T)[0] for T in (8, 5, 1)]
    pad = 0
    batch = np.array([np.pad(r, (0, 8 - len(r)), constant_values=pad) for r in rows])
    lengths = np.array([len(r) for r in rows])
    with no_grad():
        padded = model(batch, key_lengths=lengths)[0].data
        for b, r in enumerate(rows):
            alone = model(r[None])[0].data[0]
            np.testing.assert_allclose(padded[b, :len(r)], alone, rtol=1e-12, atol=1e-12)
        # without key_lengths the padding is read as text: the short rows' predictions change
        unmasked = model(batch)[0].data
    assert not np.allclose(unmasked[1, :5], padded[1, :5])


def test_every_position_sees_both_sides():
    # Changing the last token changes the first position's prediction (a GPT's would not change).
    model = tiny_bert()
    x = ids(TINY, 1, 6)
    y = x.copy()
    y[0, -1] = (x[0, -1] + 1) % TINY.vocab_size
    with no_grad():
        a, b = model(x)[0].data, model(y)[0].data
    assert not np.allclose(a[0, 0], b[0, 0])


def test_hidden_states_and_head_compose_to_forward():
    model = tiny_bert()
    x, lengths = ids(TINY, 2, 6), np.array([6, 4])
    h = model.hidden_states(x, lengths)
    assert h.shape == (2, 6, TINY.n_embd)
    np.testing.assert_array_equal(model.head(h).data, model(x, key_lengths=lengths)[0].data)


# ---- structure, initialisation, errors --------------------------------------------------------

def test_parameters_names_and_tied_head():
    model = tiny_bert()
    names = [n for n, _ in model.named_parameters()]
    assert names[:2] == ["wte.weight", "encoder.wpe.weight"] and names[-1] == "encoder.ln_f.weight"
    assert "encoder.h.1.attn.c_attn.weight" in names and not any("cross" in n for n in names)
    assert all(not block.attn.causal for block in model.encoder.h)
    # the head is the token embedding: nothing but it maps the stream to the vocabulary
    assert model.num_parameters(non_embedding=False) - model.num_parameters() == TINY.block_size * TINY.n_embd
    assert not any(p.shape == (TINY.vocab_size, TINY.n_embd) for n, p in model.named_parameters() if n != "wte.weight")


def test_gpt2_initialisation():
    manual_seed(0)
    model = BERT(BERTConfig(n_layer=8, n_embd=256))
    std = {n: p.data.std() for n, p in model.named_parameters()}
    assert abs(std["encoder.h.0.attn.c_attn.weight"] - 0.02) < 1e-3
    assert abs(std["encoder.h.3.mlp.c_proj.weight"] - 0.02 / np.sqrt(16)) < 1e-4
    assert model.wte.weight.dtype == np.float32


def test_config_and_inputs_are_checked():
    with pytest.raises(ValueError, match="BERTConfig: n_embd=8 is not a multiple of n_head=3"):
        BERTConfig(n_embd=8, n_head=3)
    with pytest.raises(ValueError, match="BERTConfig: norm must be one of"):
        BERTConfig(norm="batchnorm")
    model = tiny_bert()
    with pytest.raises(ValueError, match=r"BERT: idx must be token ids of shape \(B, T\).*add a batch axis"):
        model(np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="BERT: idx has 9 tokens, longer than block_size 8"):
        model(ids(TINY, 1, 9))
    with pytest.raises(ValueError, match=r"BERT: targets must have the shape of idx \(2, 4\)"):
        model(ids(TINY, 2, 4), ids(TINY, 2, 3))
    with pytest.raises(ValueError, match=r"key_lengths\[1\] = 5 is outside \[0, 4\]"):
        model(ids(TINY, 2, 4), key_lengths=np.array([4, 5]))


def test_learns_masked_words_through_train_step():
    # Chapter 9's objective end to end: bert_mask -> model(x, y) -> scratchlm.train.train_step.
    from scratchlm.objectives import bert_mask
    from scratchlm.train import configure_optimizer, train_step
    cfg = BERTConfig(vocab_size=12, block_size=8, n_layer=1, n_head=2, n_embd=16)
    manual_seed(0)
    model = BERT(cfg)
    optimizer = configure_optimizer(model, lr=1e-2, weight_decay=0.0)
    # rows count up from a random start: every token is predictable from its neighbours
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(150):
        seqs = (rng.integers(1, 4, (16, 1)) + np.arange(8)) % 11 + 1      # ids 1..11; 0 is <mask>
        x, y = bert_mask(seqs, mask_id=0, vocab_size=12, special_ids=(0,), mask_prob=0.3, rng=rng)
        losses.append(train_step(model, optimizer, [(x, y)])[0])
    # from about log 11 (a uniform guess) to a fraction of log 10 (knowing only which ids occur)
    assert np.mean(losses[:10]) > 2.0 and np.mean(losses[-10:]) < 0.5


def test_mlm_loss_equals_the_forward_loss_on_gathered_positions():
    from scratchlm.models.bert import mlm_loss
    model = tiny_bert()
    x, y, lengths = ids(TINY, 3, 8), ids(TINY, 3, 8, seed=1), np.array([8, 6, 3])
    y[np.random.default_rng(2).random((3, 8)) > 0.3] = -1
    _, loss = model(x, y, key_lengths=lengths)
    loss.backward()
    grads = {n: p.grad.copy() for n, p in model.named_parameters()}
    model.zero_grad()
    gathered, n = mlm_loss(model, (x, y, lengths))
    gathered.backward()
    assert n == (y >= 0).sum()
    np.testing.assert_allclose(gathered.item(), loss.item(), rtol=1e-12)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, grads[name], rtol=1e-10, atol=1e-13, err_msg=name)
    with pytest.raises(ValueError, match="mlm_loss: no position has a target"):
        mlm_loss(model, (x, np.full_like(y, -1)))
