"""The shared training loop: optimiser groups, gradient accumulation, evaluation, the log line,
checkpoints and bit-identical resume."""

import re

import numpy as np
import pytest

from scratchlm.data import get_batch, iter_batches
from scratchlm.models.gpt import GPT, GPTConfig
from scratchlm.rng import manual_seed
from scratchlm.train import (TrainConfig, configure_optimizer, decayed_parameter_names, evaluate, train,
                             train_step)

CONFIG = GPTConfig(vocab_size=6, block_size=8, n_layer=1, n_head=2, n_embd=16)
# a corpus with structure to learn: a repeating pattern with a little noise
IDS = np.where(np.random.default_rng(0).random(3000) < 0.1, 5, np.tile(np.arange(5), 600))


def model_and_optimizer(dtype=np.float32, dropout=0.0):
    manual_seed(0)
    model = GPT(GPTConfig(**{**CONFIG.__dict__, "dropout": dropout}), dtype=dtype)
    return model, configure_optimizer(model, lr=3e-3, weight_decay=0.1, betas=(0.9, 0.99))


def test_weight_decay_only_on_matrices():
    model, opt = model_and_optimizer()
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(model.parameters())
    assert model.wte.weight in decay["params"]


def test_decay_embeddings_false_exempts_the_tables_and_the_tied_head():
    model, _ = model_and_optimizer()
    every = decayed_parameter_names(model)
    without = decayed_parameter_names(model, embeddings=False)
    assert every - without == {"wte.weight", "wpe.weight"}     # lm_head.weight is wte.weight, named once
    assert without and all(name.endswith("weight") and ".ln_" not in name for name in without)
    decay, no_decay = configure_optimizer(model, 1e-3, 0.1, decay_embeddings=False).param_groups
    assert model.wte.weight in no_decay["params"] and model.lm_head.weight in no_decay["params"]
    assert model.wpe.weight in no_decay["params"] and model.h[0].attn.c_attn.weight in decay["params"]
    assert len(decay["params"]) == len(without)


def test_gradient_accumulation_equals_one_big_batch():
    x, y = get_batch(IDS, 8, 8, rng=np.random.default_rng(1))
    results = []
    for micro in ([(x, y)], [(x[:4], y[:4]), (x[4:], y[4:])]):
        model, opt = model_and_optimizer(np.float64)
        loss, norm = train_step(model, opt, micro, lr=1e-2, grad_clip=0.5)
        results.append((loss, norm, model.state_dict()))
    (loss1, norm1, sd1), (loss2, norm2, sd2) = results
    assert abs(loss1 - loss2) < 1e-12 and abs(norm1 - norm2) < 1e-12 and norm1 > 0.5  # clipping was active
    for name in sd1:
        np.testing.assert_allclose(sd1[name], sd2[name], rtol=1e-12, atol=1e-14)


def test_evaluate_weights_batches_by_targets_and_restores_mode():
    model, _ = model_and_optimizer(np.float64)
    batches = list(iter_batches(IDS[:300], 4, 8))  # the last batch is smaller
    assert len(batches[-1][0]) < 4
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    y[0, :3] = -1                                  # ignored targets count for nothing
    batches = [(x[:4], y[:4]), (x[4:], y[4:])]
    model.train()
    assert abs(evaluate(model, batches) - model(x, y)[1].item()) < 1e-12
    assert model.training


def run(tmp_path, max_iters, resume=False, log=None, dropout=0.1):
    model, opt = model_and_optimizer(dropout=dropout)
    cfg = TrainConfig(max_iters=max_iters, learning_rate=1e-2, min_lr=1e-3, warmup_iters=2, lr_decay_iters=12,
                      eval_interval=4, eval_iters=2, grad_accum=2)
    eval_rng = np.random.default_rng(9)
    eval_batches = {split: [get_batch(IDS, 4, 8, rng=eval_rng) for _ in range(2)] for split in ("train", "valid")}
    history = train(model, opt, lambda rng: get_batch(IDS, 4, 8, rng=rng), cfg, eval_batches=eval_batches,
                    rng=np.random.default_rng(3), checkpoint=tmp_path / "ckpt.npz", resume=resume,
                    log=log or (lambda line: None))
    return model, history


def test_train_learns_and_logs_one_line_per_evaluation(tmp_path):
    lines = []
    model, history = run(tmp_path, 12, log=lines.append)
    assert history["step"] == [0, 4, 8, 12] and len(history["loss"]) == 12
    assert len(lines) == 4
    assert re.fullmatch(r"step +12 \| train loss \d\.\d{4} \| valid loss \d\.\d{4} \| lr \S+ \| \d+\.\d ms/step",
                        lines[-1])
    assert history["valid"][-1] < history["valid"][0] - 0.3


def test_resume_is_bit_identical(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    straight, h1 = run(tmp_path / "a", 12)
    run(tmp_path / "b", 8)                               # stops after the step-8 checkpoint
    resumed, h2 = run(tmp_path / "b", 12, resume=True)   # fresh model and optimiser, then loads
    for name, value in straight.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[name], value)
    assert h1["loss"] == h2["loss"] and h1["valid"] == h2["valid"] and h1["step"] == h2["step"]


def test_resume_refuses_a_different_config(tmp_path):
    run(tmp_path, 4)
    model, opt = model_and_optimizer()
    with pytest.raises(ValueError, match="learning_rate"):
        train(model, opt, lambda rng: get_batch(IDS, 4, 8, rng=rng), TrainConfig(max_iters=9, warmup_iters=1,
              lr_decay_iters=9), eval_batches={}, checkpoint=tmp_path / "ckpt.npz", resume=True)
