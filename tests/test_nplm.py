"""Bengio's NPLM (scratchlm.models.nplm) with its data (scratchlm.data.context_windows) and its epoch
loop (scratchlm.train.train_epochs): windows, the initial loss, learning, gradients, per-token
scores, early stopping, and a checkpointed run that resumes to the same numbers."""

import math
from pathlib import Path

import numpy as np
import pytest

from scratchlm.autograd import gradcheck
from scratchlm.data import context_windows, minibatches
from scratchlm.models.nplm import NPLM, NPLMConfig
from scratchlm.rng import manual_seed
from scratchlm.train import (EpochSettings, TrainingDiverged, configure_optimizer, evaluate, token_logprobs,
                             train_epochs, train_step)

from benchmark_modules import load_benchmark

BOS, EOS = 1, 2
# sentences of a little language with structure: "3 4 5 6 ..." counting up from a random start
_rng = np.random.default_rng(0)
IDS = np.concatenate([np.append(3 + (s + np.arange(n)) % 9, EOS)
                      for s, n in zip(_rng.integers(0, 9, 300), _rng.integers(2, 9, 300))])
TINY = NPLMConfig(vocab_size=12, context=3, n_embd=8, n_hidden=16)


def tiny(dtype=np.float32, **changes) -> NPLM:
    manual_seed(0)
    return NPLM(NPLMConfig(**{**TINY.__dict__, **changes}), dtype=dtype)


def test_shapes_parameters_and_direct_connections():
    model, direct = tiny(), tiny(direct=True)
    c = TINY
    plain = c.vocab_size * c.n_embd + (c.context * c.n_embd + 1) * c.n_hidden + (c.n_hidden + 1) * c.vocab_size
    assert model.num_parameters() == plain
    assert direct.num_parameters() == plain + c.context * c.n_embd * c.vocab_size
    X, Y = context_windows(IDS[:40], c.context, BOS, EOS)
    logits, loss = direct(X, Y)
    assert logits.shape == (40, c.vocab_size) and loss.shape == ()
    assert model(X)[1] is None


def test_initial_loss_is_about_ln_V():
    model = tiny(vocab_size=200)
    X, Y = context_windows(np.random.default_rng(1).integers(3, 200, 2000), 3, BOS, EOS)
    assert evaluate(model, [(X, Y)]) == pytest.approx(math.log(200), abs=0.25)


def test_a_few_steps_make_the_loss_fall():
    model = tiny()
    opt = configure_optimizer(model, lr=1e-2, weight_decay=0.0)
    X, Y = context_windows(IDS, TINY.context, BOS, EOS)
    losses = [train_step(model, opt, [(X[:256], Y[:256])], lr=1e-2)[0] for _ in range(40)]
    assert losses[0] == pytest.approx(math.log(TINY.vocab_size), abs=0.4)
    assert losses[-1] < 0.6 * losses[0]
    assert evaluate(model, [(X[256:], Y[256:])]) < 0.6 * losses[0]   # learned, not memorised


def test_gradients_pass_gradcheck():
    """Every parameter's gradient, direct connections included, against central differences."""
    model = tiny(np.float64, vocab_size=7, n_embd=3, n_hidden=4, direct=True)
    X, Y = context_windows([3, 4, 5, EOS, 6, 3, EOS, 4, 4, 4, 5, EOS], 3, BOS, EOS)
    names = [name for name, _ in model.named_parameters()]
    assert names == ["C.weight", "H.weight", "H.bias", "U.weight", "U.bias", "W.weight"]

    def loss_of(*tensors):  # the model's loss as a function of its parameters
        for name, t in zip(names, tensors):
            module, attr = name.split(".")
            object.__setattr__(getattr(model, module), attr, t)
        return model(X, Y)[1]
    assert gradcheck(loss_of, model.parameters()) < 1e-6


def test_token_logprobs_are_the_per_token_loss():
    model = tiny(np.float64)
    X, Y = context_windows(IDS, TINY.context, BOS, EOS)
    lp = token_logprobs(model, X, Y, batch_size=100)
    assert lp.shape == Y.shape and lp.dtype == np.float64 and np.all(lp < 0)
    assert -lp.mean() == pytest.approx(evaluate(model, minibatches(X, Y, 100)), rel=1e-12)
    logits = model(X[:5])[0].data
    by_hand = logits[np.arange(5), Y[:5]] - np.log(np.exp(logits).sum(axis=1))
    np.testing.assert_allclose(lp[:5], by_hand, rtol=1e-12)


def test_early_stopping_keeps_the_best_epoch():
    """Train on 'a b -> c', validate on 'a b -> d': valid gets worse every epoch after the first."""
    model = tiny()
    opt = configure_optimizer(model, lr=1e-2, weight_decay=0.0)
    X = np.tile([[3, 4, 5]], (64, 1))
    train, valid = (X, np.full(64, 6)), (X, np.full(64, 7))
    settings = EpochSettings(epochs=10, batch_size=16, learning_rate=1e-2, warmup_steps=0, patience=1)
    history = train_epochs(model, opt, train, valid, settings, log=lambda line: None)
    assert history["stopped_early"] and history["epoch"] == [1, 2] and history["best_epoch"] == 1
    assert history["valid"][1] > history["valid"][0]
    assert evaluate(model, [valid]) == pytest.approx(history["valid"][0], rel=1e-6)


def _run(path: Path, interrupt_at: int | None = None, resume: bool = False, learning_rate: float = 5e-3):
    model = tiny(dropout=0.2)              # dropout: resuming must restore the random state too
    opt = configure_optimizer(model, lr=learning_rate, weight_decay=0.1)
    X, Y = context_windows(IDS, TINY.context, BOS, EOS)
    settings = EpochSettings(epochs=4, batch_size=64, learning_rate=learning_rate, warmup_steps=5, patience=4)
    lines = []

    def log(line):
        if len(lines) + 1 == interrupt_at:
            raise KeyboardInterrupt        # the run dies before epoch `interrupt_at` is saved
        lines.append(line)
    history = train_epochs(model, opt, (X[:1500], Y[:1500]), (X[1500:], Y[1500:]), settings,
                           checkpoint=path, resume=resume, log=log)
    return history, model.state_dict(), lines


def test_checkpoint_resumes_to_identical_losses(tmp_path):
    straight, weights, lines = _run(tmp_path / "a.npz")
    assert len(lines) == 4 and (tmp_path / "a.best.npz").exists()
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "b.npz", interrupt_at=3)
    resumed, resumed_weights, resumed_lines = _run(tmp_path / "b.npz", resume=True)
    assert len(resumed_lines) == 2         # epochs 3 and 4, continuing from epoch 2's checkpoint
    for key in ("train", "valid", "best_epoch", "best_valid"):
        assert resumed[key] == straight[key], key
    for name in weights:
        np.testing.assert_array_equal(resumed_weights[name], weights[name])


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_divergence_stops_the_epoch_loop_and_keeps_the_good_checkpoints(tmp_path):
    _run(tmp_path / "run.npz")
    good = {name: (tmp_path / name).read_bytes() for name in ("run.npz", "run.best.npz")}
    with pytest.raises(TrainingDiverged, match=r"training diverged at step \d+: loss .* with learning rate "):
        _run(tmp_path / "run.npz", learning_rate=1e6)
    assert {name: (tmp_path / name).read_bytes() for name in good} == good
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(good)


@pytest.mark.parametrize("settings, message", [
    (dict(epochs=0), "EpochSettings: epochs must be an integer >= 1, got 0"),
    (dict(batch_size=2.5), "EpochSettings: batch_size must be an integer >= 1, got 2.5"),
    (dict(patience=0), "EpochSettings: patience must be an integer >= 1, got 0"),
    (dict(learning_rate=-1e-3), "EpochSettings: learning_rate must be a number >= 0, got -0.001"),
    (dict(grad_clip=float("nan")), "EpochSettings: grad_clip must be a number >= 0, got nan"),
])
def test_bad_epoch_settings_are_named(settings, message):
    with pytest.raises(ValueError) as err:
        EpochSettings(**settings)
    assert str(err.value) == message


def _bench():
    """benchmarks/bench_nplm.py, whose PyTorch twin of the NPLM the parity test shares."""
    return load_benchmark("bench_nplm")


def test_same_loss_and_gradients_as_pytorch():
    torch = pytest.importorskip("torch")
    bench = _bench()
    model = tiny(np.float64, direct=True)
    X, Y = context_windows(IDS[:200], TINY.context, BOS, EOS)
    _, loss = model(X, Y)
    loss.backward()
    params = bench.torch_parameters(model)
    _, t_loss = bench.torch_nplm_loss(params, model.config, torch.from_numpy(X), torch.from_numpy(Y))
    t_loss.backward()
    assert loss.item() == pytest.approx(t_loss.item(), rel=1e-12)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, params[name].grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)
