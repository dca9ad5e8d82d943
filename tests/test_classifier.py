"""The classification head on the decoder body (models/classifier.py, Chapter 10): padding never changes a
message's logits, gradients against finite differences and against an identical PyTorch model, the
verbalizer head against the LM head's own logits, and a toy task learned through scratchlm.train.
(last_token itself is exercise 10.2: tests/test_exercises_ch10.py.)"""

import numpy as np
import pytest

import scratchlm.autograd.functional as F
from scratchlm.autograd import gradcheck, no_grad
from scratchlm.data import pad_sequences
from scratchlm.metrics import accuracy
from scratchlm.models.classifier import (SequenceClassifier, classification_loss, extract_features, padded_lengths,
                                         predict, sequence_features)
from scratchlm.models.gpt import GPT, GPTConfig
from scratchlm.nn import Module, Parameter
from scratchlm.rng import manual_seed
from scratchlm.train import EpochSettings, configure_optimizer, evaluate, train_epochs

from benchmark_modules import load_benchmark
from model_helpers import assert_same_as_torch
from test_gpt import MODERN, _loss_of_parameters, tiny_gpt

CONFIG = GPTConfig(vocab_size=11, block_size=12, n_layer=2, n_head=2, n_embd=8)
SEQS = [[3, 1, 4, 1, 5], [9], [2, 6, 5, 3, 5, 8, 9, 7], [10, 0, 2]]     # lengths 5, 1, 8, 3


class Prefixed(Module):
    """A GPT behind P learned vectors put before its tokens, as peft's soft prompt does: n_prefix = P."""

    def __init__(self, gpt, n_prefix: int):
        super().__init__()
        self.gpt, self.n_prefix, self.config = gpt, n_prefix, gpt.config
        self.prompt = Parameter(np.random.default_rng(7).normal(size=(1, n_prefix, gpt.config.n_embd)))

    def embed(self, idx):
        x = self.gpt.embed(idx, start=self.n_prefix)                          # (B, T, C)
        return F.concatenate([self.prompt + np.zeros((len(idx), 1, 1)), x], axis=1)  # (B, P + T, C)

    def hidden_states(self, x, key_lengths=None):
        return self.gpt.hidden_states(x, key_lengths=key_lengths)

    def head(self, h):
        return self.gpt.head(h)


def classifier(options=None, n_prefix=0, label_ids=None, seed=0) -> SequenceClassifier:
    body = tiny_gpt(GPTConfig(**{**CONFIG.__dict__, **(options or {})}), seed=seed)   # float64
    if n_prefix:
        body = Prefixed(body, n_prefix)
    model = SequenceClassifier(body, 3, label_ids)
    if label_ids is None:                       # off its initial N(0, 0.02): logits of size 1
        model.score.weight.data[:] = np.random.default_rng(seed + 2).normal(size=model.score.weight.shape)
    return model


# ---- padding ------------------------------------------------------------------------------------

@pytest.mark.parametrize("setup", [dict(), dict(options=MODERN), dict(n_prefix=3), dict(label_ids=[4, 7, 2])],
                         ids=["gpt2", "modern", "soft_prompt", "verbalizer"])
def test_padding_never_changes_a_messages_logits(setup):
    model = classifier(**setup)
    with no_grad():
        alone = np.concatenate([model(np.array([s]))[0].data for s in SEQS])           # (4, K), no padding
        for length in (8, 9, CONFIG.block_size - setup.get("n_prefix", 0)):
            X = pad_sequences(SEQS, length, pad=-1)                                     # padded with -1
            batched = model(X, padded_lengths(X))[0].data
            np.testing.assert_allclose(batched, alone, rtol=0, atol=1e-12)
            for b, s in enumerate(SEQS):                                                # alone, padded
                X1 = pad_sequences([s], length, pad=-1)
                np.testing.assert_allclose(model(X1, padded_lengths(X1))[0].data[0], alone[b], rtol=0, atol=1e-12)
            assert (predict(model, X) == alone.argmax(1)).all()
            # the pitfall the classifier avoids: the state at the batch's last position, h[:, -1]
            h = model.body.hidden_states(model.body.embed(np.where(X < 0, 0, X)))
            assert np.abs(h.data[:, -1] - model.features(X, padded_lengths(X)).data).max() > 1e-3


def test_what_sits_in_the_padding_is_never_read():
    model = classifier()
    X = pad_sequences(SEQS, 10, pad=-1)
    Y = np.where(X < 0, np.random.default_rng(0).integers(0, CONFIG.vocab_size, X.shape), X)   # junk ids
    with no_grad():
        np.testing.assert_array_equal(model(X, padded_lengths(X))[0].data, model(Y, padded_lengths(X))[0].data)


# ---- gradients ----------------------------------------------------------------------------------

class Loss(Module):
    """model(x, y)[1] for test_gpt's _loss_of_parameters: classification_loss on the padded batch x."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, y):
        return None, classification_loss(self.model, (x, y))[0]


@pytest.mark.parametrize("setup", [dict(), dict(label_ids=[4, 7, 2]), dict(options=MODERN, n_prefix=2)],
                         ids=["score", "verbalizer", "modern_soft_prompt"])
def test_gradcheck_through_last_token(setup):
    config = dict(vocab_size=9, block_size=7, n_layer=1, n_head=2, n_embd=4)
    model = classifier({**config, **setup.get("options", {})}, setup.get("n_prefix", 0), setup.get("label_ids"))
    X = pad_sequences([[1, 2, 3], [4], [5, 6, 7, 8, 0]], 5, pad=-1)
    fn, params = _loss_of_parameters(Loss(model), X, np.array([2, 0, 1]))
    assert gradcheck(fn, params) <= 1e-6


@pytest.mark.parametrize("options", [{}, MODERN], ids=["gpt2", "modern"])
def test_matches_pytorch_float64(options):
    torch = pytest.importorskip("torch")
    common = load_benchmark("_common")
    model = classifier(options)
    X, y = pad_sequences(SEQS, 10, pad=-1), np.array([2, 0, 1, 2])
    logits, loss = model(X, padded_lengths(X), y)
    loss.backward()

    params = common.torch_parameters(model)
    body = {name.removeprefix("body."): p for name, p in params.items()}
    lengths = torch.from_numpy(padded_lengths(X))
    idx = torch.from_numpy(np.where(X < 0, 0, X))
    config = model.body.config
    x = torch.nn.functional.embedding(idx, body["wte.weight"])
    if "wpe.weight" in body:
        x = x + body["wpe.weight"][:X.shape[1]]
    for i in range(config.n_layer):
        x = common.torch_block(x, body, f"h.{i}", config, key_lengths=lengths)
    h = common.torch_norm(x, body, "ln_f", config)                                   # (B, T, C)
    t_logits = common.torch_linear(h[torch.arange(len(X)), lengths - 1], body, "score")
    t_loss = torch.nn.functional.cross_entropy(t_logits, torch.from_numpy(y))
    t_loss.backward()
    assert_same_as_torch(logits, loss, model, t_logits, t_loss, params)


# ---- the two heads ------------------------------------------------------------------------------

def test_verbalizer_reads_the_lm_heads_logits_of_the_label_tokens():
    model = classifier(label_ids=[4, 7, 2])
    assert model.parameters() == model.body.parameters()            # no new parameter
    with no_grad():
        logits = model(pad_sequences(SEQS, 9, pad=-1), np.array([len(s) for s in SEQS]))[0].data
        for b, s in enumerate(SEQS):
            lm_logits = model.body(np.array([s]))[0].data                 # (1, T, V): the GPT's own forward
            np.testing.assert_allclose(logits[b], lm_logits[0, -1, [4, 7, 2]], rtol=0, atol=1e-12)


def test_new_score_layer_is_initialised_like_gpt2():
    manual_seed(0)
    model = SequenceClassifier(GPT(GPTConfig(n_embd=128, n_layer=1)), 5)
    assert model.score.weight.shape == (5, 128) and model.score.weight.dtype == np.float32
    assert abs(model.score.weight.data.std() - 0.02) < 0.002 and not model.score.bias.data.any()
    assert [n for n, _ in model.named_parameters()][-2:] == ["score.weight", "score.bias"]


# ---- training, prediction, features -------------------------------------------------------------

def toy_task(n, rng):
    """label = the first token (0 or 1), then 0-7 ids from 2..7: the last token must look back."""
    y = rng.integers(0, 2, n)
    seqs = [np.concatenate([[c], rng.integers(2, 8, rng.integers(0, 8))]) for c in y]
    return pad_sequences(seqs, 8, pad=-1), y


def test_classification_loss_trains_through_train_epochs():
    manual_seed(0)
    rng = np.random.default_rng(0)
    train, valid = toy_task(512, rng), toy_task(128, rng)
    model = SequenceClassifier(GPT(GPTConfig(vocab_size=8, block_size=8, n_layer=1, n_head=2, n_embd=16)), 2)
    before = evaluate(model, [valid], classification_loss)
    optimizer = configure_optimizer(model, 1e-2, 0.0)
    settings = EpochSettings(epochs=4, batch_size=32, learning_rate=1e-2, warmup_steps=10, patience=4)
    history = train_epochs(model, optimizer, train, valid, settings, loss_fn=classification_loss, log=lambda s: None)
    assert before > 0.5 and history["best_valid"] < 0.05
    assert accuracy(predict(model, valid[0]), valid[1]) >= 0.99


def test_predict_and_extract_features_keep_the_rows_order():
    model = classifier()
    X = pad_sequences(SEQS * 3, 8, pad=-1)                   # batches are formed by length, then put back
    with no_grad():
        f = sequence_features(model.body, X, padded_lengths(X)).data
        logits = model(X, padded_lengths(X))[0].data
    np.testing.assert_allclose(extract_features(model, X, batch_size=5), f, rtol=0, atol=1e-12)
    np.testing.assert_allclose(extract_features(model.body, X, batch_size=2), f, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(predict(model, X, batch_size=5), logits.argmax(1))
    assert model.training                                    # eval mode only inside


# ---- bad input ----------------------------------------------------------------------------------

def test_bad_inputs_are_clear_errors():
    model = classifier()
    X = pad_sequences(SEQS, 8, pad=-1)
    with pytest.raises(ValueError, match=r"lengths\[1\] = 0 is outside \[1, 8\]"):
        model(X, np.array([5, 0, 8, 3]))
    with pytest.raises(ValueError, match=r"lengths\[2\] = 9 is outside \[1, 8\]"):
        model(X, np.array([5, 1, 9, 3]))
    with pytest.raises(ValueError, match="lengths must be 4 integers"):
        model(X, np.array([5, 1]))
    with pytest.raises(ValueError, match=r"idx must be token ids of shape \(B, T\)"):
        model(np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="targets must be 4 class ids"):
        model(X, padded_lengths(X), np.array([0, 1]))
    with pytest.raises(ValueError, match="13 tokens after a prefix of 0 is more than the body's block_size 12"):
        model(np.ones((1, 13), dtype=np.int64))
    with pytest.raises(ValueError, match="row 1 has id 5 at position 2 after its padding"):
        padded_lengths(np.array([[1, 2, -1], [3, -1, 5]]))
    with pytest.raises(ValueError, match="row 1 holds no token"):
        padded_lengths(np.array([[1, 2, -1], [-1, -1, -1]]))
    with pytest.raises(ValueError, match=r"X\[0, 2\] = -2"):
        padded_lengths(np.array([[1, 2, -2]]))
    body = model.body
    with pytest.raises(ValueError, match="n_classes must be an integer >= 2"):
        SequenceClassifier(body, 1)
    with pytest.raises(ValueError, match="label id 11 is outside the vocabulary"):
        SequenceClassifier(body, 2, label_ids=[3, 11])
    with pytest.raises(ValueError, match="label_ids must be 3 token ids"):
        SequenceClassifier(body, 3, label_ids=[3, 4])
    with pytest.raises(ValueError, match="repeat a token"):
        SequenceClassifier(body, 2, label_ids=[3, 3])
    with pytest.raises(TypeError, match="needs a config with n_embd"):
        SequenceClassifier(Module(), 2)
