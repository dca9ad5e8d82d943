"""scratchlm.optim: update rules checked by hand, against PyTorch when installed, plus schedule,
clipping, parameter groups and state_dict round trips."""

import json
import math
import tracemalloc

import numpy as np
import pytest

from scratchlm.nn import Parameter
from scratchlm.optim import SGD, Adam, AdamW, clip_grad_norm, cosine_lr


def params(*arrays, dtype=np.float64):
    return [Parameter(np.array(a, dtype=dtype)) for a in arrays]


def set_grads(ps, *grads):
    for p, g in zip(ps, grads):
        p.grad = np.array(g, dtype=p.dtype)


# -- update rules by hand ----------------------------------------------------------------------

def test_sgd_momentum_weight_decay_by_hand():
    (p,) = params([1.0, 2.0])
    opt = SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
    set_grads([p], [0.5, -1.0])
    opt.step()  # d = g + 0.01 p = [0.51, -0.98]; buffer = d; p -= 0.1 d
    np.testing.assert_allclose(p.data, [0.949, 2.098], rtol=0, atol=1e-15)
    opt.step()  # d = [0.50949, -0.97902]; buffer = 0.9 [0.51, -0.98] + d; p -= 0.1 buffer
    np.testing.assert_allclose(p.data, [0.949 - 0.096849, 2.098 + 0.186102], rtol=0, atol=1e-14)


def test_plain_sgd_is_gradient_descent():
    (p,) = params([[1.0, -1.0]])
    set_grads([p], [[2.0, 4.0]])
    SGD([p], lr=0.25).step()
    np.testing.assert_array_equal(p.data, [[0.5, -2.0]])


def adam_reference(p, grads, lr, b1, b2, eps, wd, decoupled):
    """The Adam/AdamW recurrences written out on float64 scalars, one step at a time."""
    m = v = 0.0
    for t, g in enumerate(grads, start=1):
        if decoupled:
            p = p * (1 - lr * wd)
        else:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr / (1 - b1 ** t) * m / (math.sqrt(v) / math.sqrt(1 - b2 ** t) + eps)
    return p


@pytest.mark.parametrize("cls, decoupled", [(Adam, False), (AdamW, True)])
def test_adam_and_adamw_by_hand(cls, decoupled):
    grads = [[0.5, -3.0], [0.1, 2.0], [-0.4, 0.0]]
    (p,) = params([1.0, -2.0])
    opt = cls([p], lr=0.1, betas=(0.8, 0.95), eps=1e-3, weight_decay=0.2)
    for g in grads:
        set_grads([p], g)
        opt.step()
    expected = [adam_reference(p0, [g[i] for g in grads], 0.1, 0.8, 0.95, 1e-3, 0.2, decoupled)
                for i, p0 in enumerate([1.0, -2.0])]
    np.testing.assert_allclose(p.data, expected, rtol=1e-14)


def test_first_adam_step_moves_each_weight_by_lr():
    # m_hat = g and v_hat = g^2 after one step, so the update is lr g / (|g| + eps).
    (p,) = params([1.0, -2.0, 3.0])
    set_grads([p], [0.5, -3.0, 1e-3])
    Adam([p], lr=0.1, eps=1e-8).step()
    g = np.array([0.5, -3.0, 1e-3])
    np.testing.assert_allclose(p.data, [1.0, -2.0, 3.0] - 0.1 * g / (np.abs(g) + 1e-8), rtol=1e-15)


def test_adamw_decay_is_decoupled_from_the_moments():
    (p,), (q,) = params([1.0, -2.0]), params([1.0, -2.0])
    adam, adamw = Adam([p], lr=0.1), AdamW([q], lr=0.1, weight_decay=0.5)
    set_grads([p], [0.3, 0.7])
    set_grads([q], [0.3, 0.7])
    adam.step()
    adamw.step()
    for key in ("exp_avg", "exp_avg_sq"):  # the decay never enters m or v
        np.testing.assert_array_equal(adamw.state[0][key], adam.state[0][key])
    np.testing.assert_allclose(q.data, np.array([1.0, -2.0]) * (1 - 0.1 * 0.5) - 0.1, rtol=1e-7)


def test_parameter_groups_use_their_own_hyperparameters():
    decay, no_decay = params(np.ones(3), np.ones(2))
    opt = AdamW([{"params": [decay], "weight_decay": 0.1, "lr": 0.5},
                 {"params": [no_decay], "weight_decay": 0.0}], lr=0.01)
    set_grads([decay, no_decay], np.zeros(3), np.zeros(2))  # zero gradient: only the decay acts
    opt.step()
    np.testing.assert_allclose(decay.data, 1 - 0.5 * 0.1)
    np.testing.assert_array_equal(no_decay.data, 1.0)
    assert opt.param_groups[1]["lr"] == 0.01  # the default fills what a group leaves out


def test_parameters_without_grad_are_skipped_and_zero_grad_clears():
    a, b = params([1.0], [2.0])
    opt = Adam([a, b], lr=0.1)
    set_grads([a], [1.0])
    opt.step()
    assert b.data[0] == 2.0 and opt.state[1] == {}
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_step_does_not_allocate_parameter_sized_temporaries():
    (p,) = params(np.ones(200_000), dtype=np.float32)
    for opt in (SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1), AdamW([p], lr=0.1, weight_decay=0.1)):
        set_grads([p], np.full(200_000, 0.5))
        opt.step()  # state is created on the first step
        tracemalloc.start()
        opt.step()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < p.data.nbytes // 4, f"{type(opt).__name__}.step allocated {peak} bytes"


@pytest.mark.parametrize("make, message", [
    (lambda p: SGD([p], lr=-1.0), "lr must be >= 0"),
    (lambda p: Adam([p], betas=(0.9, 1.0)), "betas must be in [0, 1)"),
    (lambda p: AdamW([{"params": [p], "momentum": 0.9}]), "unknown hyperparameters ['momentum']"),
    (lambda p: SGD([p, p]), "more than once"),
    (lambda p: SGD([]), "empty parameter list"),
])
def test_bad_arguments_are_named(make, message):
    (p,) = params([1.0])
    with pytest.raises(ValueError) as err:
        make(p)
    assert message in str(err.value)


def test_frozen_parameters_are_left_out():
    a, b, c = params([1.0], [2.0], [3.0])
    b.requires_grad = False
    opt = AdamW([{"params": [a, b]}, {"params": [c], "weight_decay": 0.0}], lr=0.1)
    assert opt.param_groups[0]["params"] == [a] and opt.param_groups[1]["params"] == [c]
    assert len(opt.state) == 2 and [g["params"] for g in opt.state_dict()["param_groups"]] == [[0], [1]]
    c.requires_grad = a.requires_grad = False
    with pytest.raises(ValueError, match="every parameter it was given is frozen"):
        SGD([a, b, c])


def test_set_lr_gives_each_group_its_base_rate_times_the_schedules_factor():
    a, b, c = params([1.0], [2.0], [3.0])
    opt = AdamW([{"params": [a]}, {"params": [b], "lr": 3e-4}, {"params": [c], "lr": 0.0}], lr=1e-3)
    assert [g["initial_lr"] for g in opt.param_groups] == [1e-3, 3e-4, 0.0]
    for lr in (7.77e-4, 1e-3 / 3, 2.5e-5):
        opt.set_lr(lr)
        assert opt.param_groups[0]["lr"] == lr                 # exactly: the rate a loop used to set
        assert opt.param_groups[1]["lr"] == pytest.approx(lr * 0.3, rel=1e-15)
        assert opt.param_groups[2]["lr"] == 0.0
    assert [g["initial_lr"] for g in opt.param_groups] == [1e-3, 3e-4, 0.0]   # the base rates stay
    zero = SGD([{"params": [a]}, {"params": [b], "lr": 0.1}], lr=0.0)
    with pytest.raises(ValueError, match="group 1 has its own lr 0.1 but the optimiser's lr is 0"):
        zero.set_lr(0.5)


def test_initial_lr_is_saved_and_older_state_dicts_without_it_load():
    (p,) = params([1.0])
    opt = AdamW([{"params": [p], "lr": 0.5}], lr=1.0)
    sd = opt.state_dict()
    assert sd["param_groups"][0]["initial_lr"] == 0.5
    del sd["param_groups"][0]["initial_lr"]                  # as written before groups had it
    fresh = AdamW([{"params": [p], "lr": 0.5}], lr=1.0)
    fresh.load_state_dict(sd)
    assert fresh.param_groups[0]["initial_lr"] == 0.5


# -- state_dict ---------------------------------------------------------------------------------

def test_state_dict_round_trip_continues_identically():
    rng = np.random.default_rng(0)
    shapes = [(4, 3), (3,)]
    a = params(*(rng.standard_normal(s) for s in shapes), dtype=np.float32)
    b = params(*(p.data for p in a), dtype=np.float32)
    opt_a = AdamW([{"params": a[:1], "weight_decay": 0.1}, {"params": a[1:], "weight_decay": 0.0}], lr=0.01)
    opt_b = AdamW([{"params": b[:1]}, {"params": b[1:]}], lr=0.5, betas=(0.5, 0.5))
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(4)]
    for g in grads[:2]:
        set_grads(a, *g)
        opt_a.step()
    sd = opt_a.state_dict()
    assert all(isinstance(v, np.ndarray) for v in sd["state"].values())
    assert sorted(sd["state"]) == ["0.exp_avg", "0.exp_avg_sq", "0.step", "1.exp_avg", "1.exp_avg_sq", "1.step"]
    for p, q in zip(a, b):
        q.data[...] = p.data
    opt_b.load_state_dict({"state": sd["state"], "param_groups": json.loads(json.dumps(sd["param_groups"]))})
    assert opt_b.param_groups[0]["betas"] == (0.9, 0.999) and opt_b.param_groups[0]["weight_decay"] == 0.1
    for g in grads[2:]:
        set_grads(a, *g)
        set_grads(b, *g)
        opt_a.step()
        opt_b.step()
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.data, q.data)


def test_load_state_dict_names_the_mismatch_and_changes_nothing():
    (p,) = params(np.ones((2, 3)))
    opt = Adam([p], lr=0.1)
    set_grads([p], np.ones((2, 3)))
    opt.step()
    sd = opt.state_dict()
    (q,) = params(np.ones((3, 2)))
    other = Adam([q], lr=0.3)
    with pytest.raises(ValueError, match=r"state '0.exp_avg': expected shape \(3, 2\) float64, got shape \(2, 3\)"):
        other.load_state_dict(sd)
    assert other.param_groups[0]["lr"] == 0.3 and other.state == [{}]
    with pytest.raises(ValueError, match="saved groups hold"):
        Adam(params([1.0], [2.0])).load_state_dict(sd)
    with pytest.raises(ValueError, match="hyperparameters"):
        SGD([p]).load_state_dict(sd)


# -- schedule and clipping ---------------------------------------------------------------------

def test_cosine_lr_warmup_peak_and_end():
    kw = dict(max_lr=1.0, min_lr=0.1, warmup_steps=10, total_steps=110)
    assert cosine_lr(0, **kw) == pytest.approx(1 / 11)      # never 0, even at step 0
    assert cosine_lr(9, **kw) == pytest.approx(10 / 11)
    assert cosine_lr(10, **kw) == 1.0                        # peak when warmup ends
    assert cosine_lr(60, **kw) == pytest.approx(0.55)        # halfway down the cosine
    assert cosine_lr(110, **kw) == pytest.approx(0.1)
    assert cosine_lr(500, **kw) == 0.1
    lrs = [cosine_lr(s, **kw) for s in range(10, 111)]
    assert all(x >= y for x, y in zip(lrs, lrs[1:]))
    assert cosine_lr(0, max_lr=1.0, min_lr=0.0, warmup_steps=0, total_steps=5) == 1.0
    with pytest.raises(ValueError, match="warmup_steps < total_steps"):
        cosine_lr(0, max_lr=1.0, min_lr=0.0, warmup_steps=5, total_steps=5)


def test_clip_grad_norm_scales_to_the_global_norm():
    a, b, c = params([0.0, 0.0], [0.0], [0.0])
    set_grads([a, b], [3.0, 4.0], [12.0])  # global norm sqrt(9 + 16 + 144) = 13; c has no grad
    total = clip_grad_norm([a, b, c], max_norm=6.5)
    assert total == 13.0
    scale = 6.5 / (13.0 + 1e-6)
    np.testing.assert_allclose(a.grad, [3 * scale, 4 * scale], rtol=1e-15)
    np.testing.assert_allclose(b.grad, [12 * scale], rtol=1e-15)
    assert math.sqrt((a.grad ** 2).sum() + (b.grad ** 2).sum()) == pytest.approx(6.5)
    assert clip_grad_norm([a, b], max_norm=100.0) == pytest.approx(6.5)  # below max: untouched
    np.testing.assert_allclose(a.grad, [3 * scale, 4 * scale], rtol=1e-15)


# -- against PyTorch ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, kwargs, grouped", [
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.01), False),
    ("Adam", dict(lr=0.01, betas=(0.9, 0.99), eps=1e-6, weight_decay=0.05), False),
    ("AdamW", dict(lr=0.01, betas=(0.9, 0.95), weight_decay=0.1), False),
    ("AdamW", dict(lr=0.01, betas=(0.9, 0.95)), True),
])
def test_matches_torch(name, kwargs, grouped):
    torch = pytest.importorskip("torch")
    ours_cls, theirs_cls = {"SGD": (SGD, torch.optim.SGD), "Adam": (Adam, torch.optim.Adam),
                            "AdamW": (AdamW, torch.optim.AdamW)}[name]
    rng = np.random.default_rng(1)
    shapes = [(5, 3), (3,), (7,)]
    ours = params(*(rng.standard_normal(s) for s in shapes), dtype=np.float32)
    theirs = [torch.tensor(p.data.copy(), requires_grad=True) for p in ours]

    def groups(ps):
        return [{"params": ps[:1], "weight_decay": 0.1}, {"params": ps[1:], "lr": 0.03}] if grouped else ps

    opt_ours, opt_theirs = ours_cls(groups(ours), **kwargs), theirs_cls(groups(theirs), **kwargs)
    for step in range(6):
        for p, t in zip(ours, theirs):
            g = rng.standard_normal(p.shape).astype(np.float32)
            p.grad, t.grad = g.copy(), torch.tensor(g)
        if step == 3:  # a scheduler changing the lr mid-run
            for og, tg in zip(opt_ours.param_groups, opt_theirs.param_groups):
                og["lr"] = tg["lr"] = 0.5 * og["lr"]
        opt_ours.step()
        opt_theirs.step()
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=0, atol=1e-6)


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    grads = [rng.standard_normal(s).astype(np.float32) for s in [(30, 20), (20,), (5,)]]
    ours = params(*(np.zeros_like(g) for g in grads), dtype=np.float32)
    theirs = [torch.zeros(g.shape, requires_grad=True) for g in grads]
    for p, t, g in zip(ours, theirs, grads):
        p.grad, t.grad = g.copy(), torch.tensor(g)
    total = clip_grad_norm(ours, 1.0)
    total_torch = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    assert total == pytest.approx(float(total_torch), rel=1e-6)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-6, atol=1e-8)


def test_a_transposed_gradient_gives_the_same_step():
    # A Linear weight's gradient can arrive Fortran-ordered (the backward of W.T); same numbers.
    g = np.random.default_rng(3).standard_normal((6, 4))
    p, q = params(np.ones((6, 4)), np.ones((6, 4)))
    p.grad, q.grad = g.copy(), np.asfortranarray(g)
    for ps in ([p], [q]):
        AdamW(ps, lr=0.1, weight_decay=0.1).step()
    np.testing.assert_array_equal(p.data, q.data)
