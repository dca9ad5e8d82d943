"""Bad input to training, checkpoints, data files and the NPLM: each is a clear error naming the
field, value, file or shape at fault, not a deep traceback (issue 12, items 1 and 7)."""

import hashlib

import numpy as np
import pytest

from scratchlm import data
from scratchlm.checkpoint import load_checkpoint, save_checkpoint
from scratchlm.models.gpt import GPT, GPTConfig
from scratchlm.models.nplm import NPLM, NPLMConfig
from scratchlm.nn import Linear
from scratchlm.optim import SGD
from scratchlm.rng import manual_seed
from scratchlm.train import TrainConfig, configure_optimizer, model_loss, train_step


@pytest.mark.parametrize("fields, message", [
    (dict(eval_interval=0), "TrainConfig: eval_interval must be an integer >= 1, got 0"),
    (dict(grad_accum=0), "TrainConfig: grad_accum must be an integer >= 1, got 0"),
    (dict(max_iters=0), "TrainConfig: max_iters must be an integer >= 1, got 0"),
    (dict(max_iters=-5), "TrainConfig: max_iters must be an integer >= 1, got -5"),
    (dict(max_iters=100.0), "TrainConfig: max_iters must be an integer >= 1, got 100.0"),
    (dict(eval_iters=True), "TrainConfig: eval_iters must be an integer >= 1, got True"),
    (dict(learning_rate=-3e-4), "TrainConfig: learning_rate must be a number >= 0, got -0.0003"),
    (dict(grad_clip=float("nan")), "TrainConfig: grad_clip must be a number >= 0, got nan"),
    (dict(warmup_iters=2000), "TrainConfig: warmup_iters must be < lr_decay_iters, got warmup_iters=2000, "
                              "lr_decay_iters=2000"),
])
def test_train_config(fields, message):
    with pytest.raises(ValueError) as err:
        TrainConfig(**fields)
    assert str(err.value) == message


TINY_GPT = GPTConfig(vocab_size=6, block_size=8, n_layer=1, n_head=2, n_embd=16)


def _save_gpt(path, **changes):
    manual_seed(0)
    model = GPT(GPTConfig(**{**TINY_GPT.__dict__, **changes}))
    return save_checkpoint(path, model)


def _gpt(**changes):
    return GPT(GPTConfig(**{**TINY_GPT.__dict__, **changes}))


@pytest.mark.parametrize("case, error, pattern", [
    # writing into a folder that does not exist: the target is named, not a temporary file
    (lambda tmp: _save_gpt(tmp / "no" / "such" / "run.npz"), FileNotFoundError,
     r"cannot write .*/no/such/run\.npz: folder .*/no/such does not exist"),
    # a model built differently, with the same shapes: refused by field although no config= is given
    (lambda tmp: load_checkpoint(_save_gpt(tmp / "gpt.npz", n_head=2), _gpt(n_head=4)), ValueError,
     r"gpt\.npz: the model's GPTConfig differs from the checkpoint's: n_head: checkpoint 2, model 4"),
    (lambda tmp: load_checkpoint(_save_gpt(tmp / "gpt.npz"), _gpt(gelu="none")), ValueError,
     r"gpt\.npz: the model's GPTConfig differs .*gelu: checkpoint 'tanh', model 'none'"),
])
def test_checkpoints(tmp_path, case, error, pattern):
    with pytest.raises(error, match=pattern) as err:
        case(tmp_path)
    assert ".tmp" not in str(err.value)


def _bad_ptb(tmp_path, monkeypatch) -> str:
    """Register PTB's train file as a copy with one byte that is not UTF-8 (and that copy's sha256)."""
    content = b"the cat sat\nna\xefve words\n"
    folder = tmp_path / "data" / "ptb"
    folder.mkdir(parents=True)
    (folder / "ptb.train.txt").write_bytes(content)
    remote = data.RemoteFile("file:///nowhere", hashlib.sha256(content).hexdigest(), len(content))
    monkeypatch.setitem(data.DATASETS, "ptb", data.Dataset("ptb", "PTB, damaged", {"ptb.train.txt": remote}))
    monkeypatch.setenv("SCRATCHLM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(data, "_verified", {})
    return str(folder / "ptb.train.txt")


@pytest.mark.parametrize("read", [lambda: data.load_lines("ptb", "train"), lambda: data.load_text("ptb", "train")])
def test_a_data_file_that_is_not_utf8(tmp_path, monkeypatch, read):
    path = _bad_ptb(tmp_path, monkeypatch)
    with pytest.raises(ValueError) as err:
        read()
    assert str(err.value).startswith(f"{path}: not UTF-8 text: byte 0xef at offset 14")


TINY_NPLM = NPLMConfig(vocab_size=12, context=3, n_embd=4, n_hidden=8)


@pytest.mark.parametrize("context, targets, pattern", [
    (np.array([1, 2, 3]), None, r"context must be \(B, n-1\) = \(B, 3\) ids with B >= 1, got shape \(3,\); "
                                r"one window w is w\[None\]"),
    (np.zeros((0, 3), np.int64), None, r"context must be \(B, n-1\) = \(B, 3\) ids with B >= 1, got shape \(0, 3\)$"),
    (np.zeros((2, 4), np.int64), None, r"context must be \(B, n-1\) = \(B, 3\) ids with B >= 1, got shape \(2, 4\)$"),
    (np.zeros((2, 3), np.int64), np.zeros(3, np.int64),
     r"targets must be \(2,\), one per context row, got shape \(3,\)"),
])
def test_nplm_input_shapes(context, targets, pattern):
    model = NPLM(TINY_NPLM)
    with pytest.raises(ValueError, match="NPLM: " + pattern):
        model(context, targets)


def _step_without_targets():
    model = NPLM(TINY_NPLM)
    batch = (np.ones((4, 3), np.int64), np.zeros(4, np.int64))
    none_counted = lambda model, batch: (model_loss(model, batch)[0], 0)   # noqa: E731
    return train_step(model, configure_optimizer(model, 1e-3, 0.0), [batch, batch], loss_fn=none_counted)


def _frozen_model_optimizer():
    model = NPLM(TINY_NPLM).requires_grad_(False)
    return configure_optimizer(model, 1e-3, 0.0)


@pytest.mark.parametrize("case, pattern", [
    (_step_without_targets, r"train_step: the step's 2 micro-batch\(es\) hold no targets \(loss_fn counted 0: "
                            r"is every target ignored, -1\?\)"),
    (lambda: train_step(NPLM(TINY_NPLM), SGD(Linear(2, 2).parameters()), []), "train_step: got no micro-batches"),
    (_frozen_model_optimizer, r"configure_optimizer: every parameter of the NPLM is frozen \(requires_grad=False\)"),
    (lambda: SGD([{"params": Linear(2, 2).parameters(), "lr": 0.1}], lr=0.0).set_lr(1e-3),
     "SGD.set_lr: group 0 has its own lr 0.1 but the optimiser's lr is 0"),
])
def test_training_steps(case, pattern):
    with pytest.raises(ValueError, match=pattern):
        case()
