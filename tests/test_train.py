"""The shared training loop: optimiser groups, gradient accumulation, evaluation, the log line,
checkpoints and bit-identical resume; divergence; the step's contract (loss_fn, micro-batch weights,
per-group learning rates, the gradient hook); frozen parameters."""

import re

import numpy as np
import pytest

from scratchlm.data import get_batch, iter_batches
from scratchlm.models.gpt import GPT, GPTConfig
from scratchlm.optim import AdamW
from scratchlm.rng import manual_seed
from scratchlm.train import (TrainConfig, TrainingDiverged, configure_optimizer, decayed_parameter_names, evaluate,
                             model_loss, train, train_step)

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
    model, opt = model_and_optimizer(dropout=0.1)   # the same model, trained with other settings
    with pytest.raises(ValueError, match="learning_rate"):
        train(model, opt, lambda rng: get_batch(IDS, 4, 8, rng=rng), TrainConfig(max_iters=9, warmup_iters=1,
              lr_decay_iters=9), eval_batches={}, checkpoint=tmp_path / "ckpt.npz", resume=True)


# -- divergence ----------------------------------------------------------------------------------

@pytest.mark.parametrize("grad_clip", [0.0, 1.0])
def test_divergence_stops_within_one_evaluation_and_keeps_the_good_checkpoint(tmp_path, grad_clip):
    run(tmp_path, 8)                                     # a good run saves ckpt.npz at steps 4 and 8
    good = (tmp_path / "ckpt.npz").read_bytes()
    model, opt = model_and_optimizer()
    cfg = TrainConfig(max_iters=40, learning_rate=1e6, min_lr=1e6, warmup_iters=0, lr_decay_iters=40,
                      eval_interval=20, eval_iters=1, grad_clip=grad_clip)
    eval_batches = {"valid": [get_batch(IDS, 4, 8, rng=np.random.default_rng(9))]}
    lines = []
    with pytest.raises(TrainingDiverged) as err:
        train(model, opt, lambda rng: get_batch(IDS, 4, 8, rng=rng), cfg, eval_batches=eval_batches,
              rng=np.random.default_rng(3), checkpoint=tmp_path / "ckpt.npz", log=lines.append)
    message = str(err.value)
    assert re.match(r"training diverged at step \d+: loss \S+, gradient norm \S+ with learning rate 1e\+06\. ",
                    message), message
    assert "lower learning rate" in message and "clip gradients" in message and "check the data" in message
    assert isinstance(err.value, FloatingPointError) and 0 < err.value.step < cfg.eval_interval
    assert len(lines) == 1                               # only the step-0 line: stopped within one evaluation
    assert all(np.isfinite(p.data).all() for p in model.parameters())   # the bad step was not taken
    assert (tmp_path / "ckpt.npz").read_bytes() == good  # byte-identical
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"]


def test_a_non_finite_evaluation_stops_before_the_checkpoint(tmp_path):
    model, opt = model_and_optimizer()
    cfg = TrainConfig(max_iters=4, warmup_iters=0, lr_decay_iters=4, eval_interval=2, eval_iters=1)
    x, y = get_batch(IDS, 4, 8, rng=np.random.default_rng(9))

    def nan_on_valid(model, batch):
        loss, n = model_loss(model, batch)
        return (loss * np.nan if batch[0] is x else loss), n
    with pytest.raises(TrainingDiverged, match=r"at step 0: valid loss nan at its evaluation with learning rate"):
        train(model, opt, lambda rng: get_batch(IDS, 4, 8, rng=rng), cfg, eval_batches={"valid": [(x, y)]},
              checkpoint=tmp_path / "ckpt.npz", loss_fn=nan_on_valid, log=lambda line: None)
    assert not (tmp_path / "ckpt.npz").exists()


# -- the step's contract: loss_fn, micro-batch weights, lr factor, gradient hook ---------------------

def test_micro_batches_are_weighted_by_their_number_of_targets():
    """Micro-batches with different numbers of ignored targets: the step's gradient is that of the
    mean over all its targets, the same as one batch holding them all."""
    x, y = get_batch(IDS, 6, 8, rng=np.random.default_rng(1))
    y = y.copy()
    y[:2, 1:] = -1                                       # the first micro-batch keeps 2 of its 16 targets
    results = []
    for micro in ([(x, y)], [(x[:2], y[:2]), (x[2:], y[2:])]):
        model, opt = model_and_optimizer(np.float64)
        loss, norm = train_step(model, opt, micro, lr=1e-2, grad_clip=0.5)
        results.append((loss, norm, model.state_dict()))
    (loss1, norm1, sd1), (loss2, norm2, sd2) = results
    assert loss1 == pytest.approx(loss2, rel=1e-13) and norm1 == pytest.approx(norm2, rel=1e-12)
    for name in sd1:
        np.testing.assert_allclose(sd1[name], sd2[name], rtol=1e-12, atol=1e-14, err_msg=name)


def test_a_stateful_loss_fn_runs_once_per_batch_in_order():
    """Chapter 8's truncated BPTT carries state from one window to the next inside its loss_fn: the
    loops must call it once per micro-batch, in the order get_batch drew them."""
    model, opt = model_and_optimizer()
    drawn, seen = [], []

    def next_window(rng):
        drawn.append(len(drawn))
        x, y = get_batch(IDS, 2, 8, rng=rng)
        return x, y, drawn[-1]

    def carry(model, batch):                             # a closure with state, like a hidden state
        x, y, index = batch
        seen.append(index)
        return model_loss(model, (x, y))
    cfg = TrainConfig(max_iters=3, warmup_iters=0, lr_decay_iters=3, grad_accum=2, eval_interval=3, eval_iters=1)
    history = train(model, opt, next_window, cfg, eval_batches={}, loss_fn=carry, log=lambda line: None)
    assert seen == drawn == list(range(6)) and len(history["loss"]) == 3


def test_each_group_keeps_its_own_base_rate():
    model, _ = model_and_optimizer()
    head = {id(p) for p in model.lm_head.parameters()}
    body = [p for p in model.parameters() if id(p) not in head]
    opt = AdamW([{"params": body}, {"params": list(model.lm_head.parameters()), "lr": 1e-4}], lr=1e-3)
    x, y = get_batch(IDS, 4, 8, rng=np.random.default_rng(1))
    for lr in (5e-4, 1e-3 / 7):
        train_step(model, opt, [(x, y)], lr)
        assert opt.param_groups[0]["lr"] == lr and opt.param_groups[1]["lr"] == pytest.approx(lr / 10, rel=1e-15)


def test_on_gradients_sees_the_complete_gradients_before_clipping():
    model, opt = model_and_optimizer(np.float64)
    batches = [get_batch(IDS, 2, 8, rng=np.random.default_rng(i)) for i in range(2)]
    seen = {}

    def hook(params):
        assert params == [p for g in opt.param_groups for p in g["params"]]
        seen["norm"] = np.sqrt(sum((p.grad ** 2).sum() for p in params if p.grad is not None))
    _, norm = train_step(model, opt, batches, lr=1e-3, grad_clip=1e-3, on_gradients=hook)
    assert seen["norm"] == pytest.approx(norm, rel=1e-12) and norm > 1e-3   # unclipped, and accumulated
    model, _ = model_and_optimizer(np.float64)          # a hook may change the gradients: zero them all,
    opt = configure_optimizer(model, lr=1e-3, weight_decay=0.0)   # and a first Adam step moves nothing
    before = model.state_dict()
    train_step(model, opt, batches, lr=1e-3, on_gradients=lambda params: [p.grad.fill(0.0) for p in params])
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


# -- frozen parameters ---------------------------------------------------------------------------

def test_a_frozen_part_gets_no_gradient_and_does_not_move():
    model, _ = model_and_optimizer()
    model.h.requires_grad_(False)
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(name.startswith("h.") for name in frozen)
    opt = configure_optimizer(model, lr=1e-2, weight_decay=0.1)
    held = {id(p) for g in opt.param_groups for p in g["params"]}
    assert held == {id(p) for p in model.parameters() if p.requires_grad}
    before = model.state_dict()
    train_step(model, opt, [get_batch(IDS, 4, 8, rng=np.random.default_rng(1))], lr=1e-2)
    after = model.state_dict()
    for name, p in model.named_parameters():
        assert (p.grad is None) == (name in frozen), name
        assert np.array_equal(before[name], after[name]) == (name in frozen), name


def test_save_and_resume_with_a_frozen_part(tmp_path):
    def frozen_run(path, max_iters, resume=False):
        model, _ = model_and_optimizer(dropout=0.1)
        model.wpe.requires_grad_(False)
        opt = configure_optimizer(model, lr=1e-2, weight_decay=0.1)
        cfg = TrainConfig(max_iters=max_iters, learning_rate=1e-2, min_lr=1e-3, warmup_iters=2, lr_decay_iters=8,
                          eval_interval=4, eval_iters=1)
        eval_batches = {"valid": [get_batch(IDS, 4, 8, rng=np.random.default_rng(9))]}
        history = train(model, opt, lambda rng: get_batch(IDS, 4, 8, rng=rng), cfg, eval_batches=eval_batches,
                        rng=np.random.default_rng(3), checkpoint=path, resume=resume, log=lambda line: None)
        return model, history
    straight, h1 = frozen_run(tmp_path / "a.npz", 8)
    frozen_run(tmp_path / "b.npz", 4)
    resumed, h2 = frozen_run(tmp_path / "b.npz", 8, resume=True)
    assert h1 == {**h2, "ms_per_step": h1["ms_per_step"]}
    for name, value in straight.state_dict().items():
        np.testing.assert_array_equal(resumed.state_dict()[name], value, err_msg=name)
    with np.load(tmp_path / "a.npz") as archive:
        assert "model/wpe.weight" in archive.files      # the model's state holds every parameter
        n_optim = len({key.split("/")[1].split(".")[0] for key in archive.files if key.startswith("optim/")})
    assert n_optim == sum(p.requires_grad for p in straight.parameters())   # the optimiser's only trainable ones
