"""scratchlm.checkpoint: round trip, exact resume, atomic writes, and the errors for a different
config, a different shape, pickled objects and missing or corrupt files."""

import dataclasses
import os

import numpy as np
import pytest

from scratchlm.autograd import Tensor
from scratchlm.checkpoint import load_checkpoint, save_checkpoint
from scratchlm.nn import Linear, Sequential, Tanh
from scratchlm.optim import SGD, AdamW, clip_grad_norm, cosine_lr
from scratchlm.rng import manual_seed


@dataclasses.dataclass
class Config:
    n_in: int = 3
    n_hidden: int = 8
    lr: float = 0.01
    betas: tuple = (0.9, 0.95)


def make(config: Config, seed: int):
    manual_seed(seed)
    model = Sequential(Linear(config.n_in, config.n_hidden), Tanh(), Linear(config.n_hidden, 1))
    decay = [p for p in model.parameters() if p.ndim == 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                lr=config.lr, betas=config.betas)
    return model, opt


def train(model, opt, start: int, stop: int) -> list[float]:
    """Steps start..stop-1 on batches that depend only on the step number; returns the losses."""
    losses = []
    for step in range(start, stop):
        rng = np.random.default_rng(step)
        x = rng.standard_normal((16, 3)).astype(np.float32)
        y = np.sin(x.sum(1, keepdims=True)).astype(np.float32)
        loss = ((model(Tensor(x)) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        clip_grad_norm(model.parameters(), 1.0)
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, max_lr=0.05, min_lr=0.005, warmup_steps=2, total_steps=8)
        opt.step()
        losses.append(float(loss.data))
    return losses


def test_resume_is_bit_identical(tmp_path):
    config = Config()
    straight = train(*make(config, seed=0), 0, 8)

    model, opt = make(config, seed=0)
    first = train(model, opt, 0, 4)
    save_checkpoint(tmp_path / "ckpt.npz", model, opt, config=config, step=4, extra={"note": "halfway"})
    model, opt = make(config, seed=99)  # different initial weights, empty optimiser state
    meta = load_checkpoint(tmp_path / "ckpt.npz", model, opt, config=config)
    assert meta["step"] == 4 and meta["extra"] == {"note": "halfway"} and meta["config"]["betas"] == [0.9, 0.95]
    resumed = first + train(model, opt, meta["step"], 8)
    assert resumed == straight  # bit-identical, not merely close
    assert straight[-1] < straight[0]


def test_round_trip_arrays_and_layout(tmp_path):
    model, opt = make(Config(), seed=0)
    train(model, opt, 0, 2)
    path = save_checkpoint(tmp_path / "run.ckpt", model, opt, config={"n_in": 3}, step=2)
    assert path == tmp_path / "run.ckpt" and path.is_file()  # the name is kept, no ".npz" appended
    assert os.listdir(tmp_path) == ["run.ckpt"]  # no temporary file left behind
    with np.load(path, allow_pickle=False) as z:
        assert sorted(z.files) == sorted(["meta"] + [f"model/{n}" for n in model.state_dict()]
                                         + [f"optim/{k}" for k in opt.state_dict()["state"]])
        np.testing.assert_array_equal(z["model/0.weight"], model[0].weight.data)
    fresh, fresh_opt = make(Config(), seed=5)
    meta = load_checkpoint(path, fresh, fresh_opt)
    assert meta["optimizer"]["type"] == "AdamW" and meta["config"] == {"n_in": 3}
    for (name, p), (_, q) in zip(model.named_parameters(), fresh.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
    for key, value in opt.state_dict()["state"].items():
        np.testing.assert_array_equal(fresh_opt.state_dict()["state"][key], value, err_msg=key)


def test_model_only_checkpoint(tmp_path):
    model, _ = make(Config(), seed=0)
    save_checkpoint(tmp_path / "m.npz", model)
    other, opt = make(Config(), seed=1)
    meta = load_checkpoint(tmp_path / "m.npz", other)
    assert meta["step"] == 0 and meta["optimizer"] is None and meta["config"] is None
    np.testing.assert_array_equal(other[2].weight.data, model[2].weight.data)
    with pytest.raises(ValueError, match="m.npz: checkpoint holds no optimiser state"):
        load_checkpoint(tmp_path / "m.npz", other, opt)
    with pytest.raises(TypeError, match="`extra` must hold only JSON values"):
        save_checkpoint(tmp_path / "bad.npz", model, extra={"loss": np.float32(1.0)})
    assert not (tmp_path / "bad.npz").exists()


def test_a_failed_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    model, _ = make(Config(), seed=0)
    path = save_checkpoint(tmp_path / "ckpt.npz", model, step=1)
    old = path.read_bytes()

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, step=2)
    assert path.read_bytes() == old and os.listdir(tmp_path) == ["ckpt.npz"]


def test_non_finite_weights_or_state_are_never_written(tmp_path):
    model, opt = make(Config(), seed=0)
    path = save_checkpoint(tmp_path / "good.npz", model, opt, step=1)
    good = path.read_bytes()
    model[2].bias.data[0] = np.nan
    with pytest.raises(ValueError, match=r"refusing to write checkpoint .*good.npz: model/2.bias holds 1 NaN or "
                                         r"infinite value\(s\) \(first at flat index 0: nan\)"):
        save_checkpoint(path, model, opt, step=2)
    model[2].bias.data[0] = 0.0
    opt.state[0]["exp_avg"] = np.full(model[0].weight.shape, np.inf, np.float32)
    with pytest.raises(ValueError, match="optim/0.exp_avg holds 24 NaN or infinite"):
        save_checkpoint(path, model, opt, step=2)
    assert path.read_bytes() == good and os.listdir(tmp_path) == ["good.npz"]


def test_a_temporary_file_left_by_a_killed_save_is_removed_by_the_next(tmp_path):
    model, _ = make(Config(), seed=0)
    stale = tmp_path / ".run.npz.k1ll3d.tmp"               # what a save killed mid-write leaves
    stale.write_bytes(b"half a checkpoint")
    save_checkpoint(tmp_path / "run.npz", model)
    assert os.listdir(tmp_path) == ["run.npz"]


def test_the_models_config_is_saved_and_checked_without_being_asked(tmp_path):
    @dataclasses.dataclass
    class NetConfig:
        n_hidden: int = 8
        activation: str = "tanh"

    model, _ = make(Config(), seed=0)
    model.config = NetConfig()   # a model with a .config dataclass (Sequential keeps the attribute)
    path = save_checkpoint(tmp_path / "m.npz", model, config={"note": "run settings"})
    assert load_checkpoint(path, model)["model_config"] == {"n_hidden": 8, "activation": "tanh"}
    model.config = NetConfig(activation="relu")              # same shapes, another model
    with pytest.raises(ValueError, match=r"m.npz: the model's NetConfig differs from the checkpoint's: "
                                         r"activation: checkpoint 'tanh', model 'relu'"):
        load_checkpoint(path, model)


def test_different_config_names_the_keys(tmp_path):
    model, opt = make(Config(), seed=0)
    save_checkpoint(tmp_path / "c.npz", model, opt, config=Config())
    with pytest.raises(ValueError, match=r"c.npz: config differs from the checkpoint's: "
                                         r"lr: checkpoint 0.01, given 0.02; n_hidden: checkpoint 8, given 9"):
        load_checkpoint(tmp_path / "c.npz", model, opt, config=Config(n_hidden=9, lr=0.02))
    with pytest.raises(ValueError, match=r"extra: checkpoint \(absent\), given 1"):
        load_checkpoint(tmp_path / "c.npz", model, config={**dataclasses.asdict(Config()), "extra": 1})
    save_checkpoint(tmp_path / "none.npz", model)
    with pytest.raises(ValueError, match="saved without a config"):
        load_checkpoint(tmp_path / "none.npz", model, config=Config())


def test_different_shape_names_the_parameter(tmp_path):
    model, _ = make(Config(), seed=0)
    save_checkpoint(tmp_path / "s.npz", model)
    bigger, _ = make(Config(n_hidden=9), seed=0)
    with pytest.raises(ValueError, match=r"s.npz: parameter '0.weight': expected shape \(9, 3\) float32, "
                                         r"got shape \(8, 3\) float32"):
        load_checkpoint(tmp_path / "s.npz", bigger)


def test_wrong_optimizer_type_is_named(tmp_path):
    model, opt = make(Config(), seed=0)
    save_checkpoint(tmp_path / "o.npz", model, opt)
    with pytest.raises(ValueError, match="o.npz: checkpoint holds AdamW state, given a SGD"):
        load_checkpoint(tmp_path / "o.npz", model, SGD(model.parameters()))


def test_pickled_objects_are_refused(tmp_path):
    model, _ = make(Config(), seed=0)
    path = save_checkpoint(tmp_path / "p.npz", model)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["model/0.weight"] = np.array([{"evil": "payload"}], dtype=object)
    np.savez(path, **arrays)  # np.savez pickles object arrays
    with pytest.raises(ValueError, match=r"p.npz: entry 'model/0.weight' holds pickled Python objects"):
        load_checkpoint(path, model)


def test_missing_and_corrupt_files_name_the_path(tmp_path):
    model, _ = make(Config(), seed=0)
    with pytest.raises(FileNotFoundError, match=r"checkpoint not found: .*nothing.npz"):
        load_checkpoint(tmp_path / "nothing.npz", model)
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="junk.npz"):
        load_checkpoint(tmp_path / "junk.npz", model)
    save_checkpoint(tmp_path / "cut.npz", model)
    data = (tmp_path / "cut.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])  # truncated mid-write by another tool
    with pytest.raises(ValueError, match="cut.npz"):
        load_checkpoint(tmp_path / "cut.npz", model)
    np.savez(tmp_path / "plain.npz", w=np.zeros(3))
    with pytest.raises(ValueError, match="plain.npz is not a scratchlm checkpoint: it has no 'meta' entry"):
        load_checkpoint(tmp_path / "plain.npz", model)
