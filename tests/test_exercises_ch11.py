"""Exercises of Chapter 11 (scaling laws), one group of tests per exercise, each marked exN_M.

Run one exercise with `python -m pytest -m ex11_2 tests/test_exercises_ch11.py`.

    11.1  flops_breakdown (scaling/flops.py): the FLOPs per token of each matrix product of a GPT,
          forward and forward + backward, by hand on a small config, then against the products a
          real model executes in a training step (count_flops)
    11.2  isoflop_minimum (scaling/laws.py): the vertex of the least-squares parabola through one
          IsoFLOP profile, on exact parabolas, against np.polyfit, and the profile that has no minimum
    11.3  huber_objective (scaling/parametric.py): approach 3's Huber objective, summed over runs, and
          its gradient: by hand in the quadratic and the linear zone, against central differences,
          for a batch of parameter vectors and for weighted runs

The other tests of scratchlm.scaling (fits, L-BFGS, the bootstrap, PyTorch's twin of 11.3) are in
test_scaling.py.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from scratchlm.models.gpt import GPT, GPTConfig
from scratchlm.scaling import count_flops, flops_breakdown, huber_objective, isoflop_minimum

# ---------------------------------------------------------------------------------------------
# Exercise 11.1: FLOPs of one forward and backward pass (scaling/flops.py, flops_breakdown)
# ---------------------------------------------------------------------------------------------

SMALL = GPTConfig(vocab_size=11, block_size=5, n_layer=3, n_head=2, n_embd=8)   # C = 8, H = 32


@pytest.mark.ex11_1
def test_forward_flops_by_hand():
    got = flops_breakdown(SMALL)
    want = {
        "qkv": 2 * 3 * 8 * 24,           # 3 layers, x (1, 8) @ (8, 24): 1152
        "scores": 2 * 3 * 5 * 8,         # each query against T = 5 keys, over all heads' 8 dims: 240
        "mix": 2 * 3 * 5 * 8,            # the weights (1, 5) @ V (5, 4), per head: 240
        "proj": 2 * 3 * 8 * 8,           # 384
        "mlp": 2 * 3 * (8 * 32 + 32 * 8),   # up to 4C = 32 and back: 3072
        "head": 2 * 8 * 11,              # once, not per layer: 176
    }
    assert got == want, "FLOPs are 2 per multiply-add: a (1, k) @ (k, n) product costs 2 k n, per layer"


@pytest.mark.ex11_1
def test_training_flops_are_three_times_the_forward():
    forward, training = flops_breakdown(SMALL), flops_breakdown(SMALL, training=True)
    assert training == {name: 3 * f for name, f in forward.items()}, (
        "the backward of each product is two products of its size (dX and dW; the attention's dP, dV "
        "and dQ, dK), so forward + backward is 3 x forward")


@pytest.mark.ex11_1
def test_flops_follow_the_context_length_and_the_mlp():
    short, full = flops_breakdown(SMALL, n_ctx=2), flops_breakdown(SMALL)
    assert short["scores"] == short["mix"] == 2 * 3 * 2 * 8, "the attention's products grow with n_ctx"
    assert {k: v for k, v in short.items() if k not in ("scores", "mix")} == \
        {k: v for k, v in full.items() if k not in ("scores", "mix")}, "only the attention depends on n_ctx"
    swiglu = flops_breakdown(dataclasses.replace(SMALL, mlp="swiglu"))   # H = 24: c_fc (8 -> 48), c_proj (24 -> 8)
    assert swiglu["mlp"] == 2 * 3 * (8 * 48 + 24 * 8), "SwiGLU's c_fc makes 2H outputs, its c_proj reads H"
    untied = flops_breakdown(dataclasses.replace(SMALL, tie_weights=False, bias=True))
    assert untied == full, "tying the head or adding biases changes parameters, not the products"


@pytest.mark.ex11_1
@pytest.mark.parametrize("config", [SMALL, dataclasses.replace(SMALL, mlp="swiglu", position="rope", n_layer=1)])
def test_flops_match_the_products_a_training_step_executes(config):
    # the formula first: in a student copy the model's own exercises (6.3's block) are stripped too, and
    # this test should fail with 11.1's message, not theirs
    forward, training = sum(flops_breakdown(config).values()), sum(flops_breakdown(config, training=True).values())
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, config.vocab_size, (2, 3, config.block_size))
    model = GPT(config)
    with count_flops() as count:
        _, loss = model(x, y)
        loss.backward()
    tokens = x.size
    assert count.forward == tokens * forward
    assert count.total == tokens * training


# ---------------------------------------------------------------------------------------------
# Exercise 11.2: the minimum of an IsoFLOP parabola (scaling/laws.py, isoflop_minimum)
# ---------------------------------------------------------------------------------------------

@pytest.mark.ex11_2
def test_isoflop_minimum_of_an_exact_parabola():
    x = np.log(np.array([1e5, 2e5, 4e5, 8e5, 1.6e6]))
    L = 2.0 + 0.3 * (x - 13.0) ** 2
    x_opt, L_opt, c2 = isoflop_minimum(x, L)
    assert (x_opt, L_opt, c2) == (pytest.approx(13.0, abs=1e-10), pytest.approx(2.0, abs=1e-10),
                                  pytest.approx(0.3, abs=1e-10)), \
        "for L = c2 (x - x*)^2 + L* the vertex is (x*, L*) and the curvature c2"
    assert all(isinstance(v, float) for v in (x_opt, L_opt, c2))


@pytest.mark.ex11_2
def test_isoflop_minimum_is_the_least_squares_parabola():
    rng = np.random.default_rng(1)
    x = np.sort(rng.uniform(10, 16, 9))
    L = 1.9 + 0.05 * (x - 12.5) ** 2 + 0.01 * rng.standard_normal(9)
    c2, c1, c0 = np.polyfit(x, L, 2)
    x_opt, L_opt, curvature = isoflop_minimum(x, L)
    assert x_opt == pytest.approx(-c1 / (2 * c2), rel=1e-9) and curvature == pytest.approx(c2, rel=1e-9)
    assert L_opt == pytest.approx(np.polyval([c2, c1, c0], x_opt), rel=1e-9)
    assert isoflop_minimum(x[::-1], L[::-1])[0] == pytest.approx(x_opt, rel=1e-12), "the order of runs is irrelevant"


@pytest.mark.ex11_2
def test_isoflop_minimum_may_lie_outside_the_sizes_tried():
    x = np.array([10.0, 11.0, 12.0, 13.0])
    x_opt, _, _ = isoflop_minimum(x, 3.0 + 0.2 * (x - 14.5) ** 2)
    assert x_opt == pytest.approx(14.5), "the vertex is the parabola's, wherever it is"


@pytest.mark.ex11_2
def test_isoflop_minimum_refuses_a_profile_without_a_minimum():
    x = np.array([10.0, 11.0, 12.0, 13.0])
    with pytest.raises(ValueError, match="opens downward"):
        isoflop_minimum(x, 3.0 - 0.2 * (x - 11.5) ** 2)
    with pytest.raises(ValueError, match="opens downward"):
        isoflop_minimum(x, 3.0 - 0.1 * x)      # a straight line: no curvature, no minimum


def test_isoflop_minimum_needs_three_distinct_sizes():
    with pytest.raises(ValueError, match="three distinct"):
        isoflop_minimum([10.0, 10.0, 11.0, 11.0], [2.0, 2.1, 2.2, 2.3])
    with pytest.raises(ValueError, match="one length"):
        isoflop_minimum([10.0, 11.0, 12.0], [2.0, 2.1])


# ---------------------------------------------------------------------------------------------
# Exercise 11.3: the Huber objective of approach 3 (scaling/parametric.py, huber_objective)
# ---------------------------------------------------------------------------------------------

def runs(n=12, seed=0):
    """Logs of n runs' N, D and losses near Chinchilla's law, some near it, some far."""
    rng = np.random.default_rng(seed)
    log_N, log_D = rng.uniform(np.log(1e6), np.log(1e9), n), rng.uniform(np.log(1e8), np.log(1e11), n)
    L = 1.69 + 406.4 * np.exp(-0.34 * log_N) + 410.7 * np.exp(-0.28 * log_D)
    return log_N, log_D, np.log(L) + rng.choice([-1, 1], n) * rng.uniform(0, 3e-3, n)


@pytest.mark.ex11_3
def test_huber_objective_by_hand():
    # a = b = e = 0, alpha = beta = 0: the prediction is log(1 + 1 + 1) = log 3 for every run
    log_N, log_D = np.log([1e6, 1e7]), np.log([1e9, 1e10])
    log_L = np.log(3.0) - np.array([5e-4, 1e-2])          # residuals 5e-4 (quadratic zone) and 1e-2 (linear)
    f, g = huber_objective(np.zeros(5), log_N, log_D, log_L)
    quadratic, linear = 0.5 * 5e-4 ** 2, 1e-3 * (1e-2 - 0.5e-3)
    assert float(f) == pytest.approx(quadratic + linear, rel=1e-9), (
        "Huber(r) = r^2/2 for |r| <= delta and delta (|r| - delta/2) beyond, summed over the runs (not averaged)")
    # each residual's Huber' = clip(r, -delta, delta) = 5e-4 and 1e-3, spread over the 3 equal terms
    psi = np.array([5e-4, 1e-3])
    np.testing.assert_allclose(g, [psi.sum() / 3, psi.sum() / 3, psi.sum() / 3,
                                   -(psi * log_N).sum() / 3, -(psi * log_D).sum() / 3], rtol=1e-9)


@pytest.mark.ex11_3
def test_huber_objective_is_a_sum_over_runs():
    log_N, log_D, log_L = runs()
    x = np.array([6.0, 6.0, 0.5, 0.34, 0.28])
    f, g = huber_objective(x, log_N, log_D, log_L)
    f2, g2 = huber_objective(x, *(np.tile(v, 2) for v in (log_N, log_D, log_L)))
    assert float(f2) == pytest.approx(2 * float(f), rel=1e-12), "every run twice: twice the objective (a sum)"
    np.testing.assert_allclose(g2, 2 * g, rtol=1e-12)


@pytest.mark.ex11_3
@pytest.mark.parametrize("x", [[6.0, 6.0, 0.5, 0.34, 0.28], [0.0, 25.0, 1.5, 2.0, 0.0], [12.0, 3.0, -1.0, 1.0, 0.5]])
def test_huber_objective_gradient_by_central_differences(x):
    log_N, log_D, log_L = runs()
    x = np.array(x)
    _, g = huber_objective(x, log_N, log_D, log_L)
    eps = 1e-6
    numerical = [(huber_objective(x + eps * e, log_N, log_D, log_L)[0]
                  - huber_objective(x - eps * e, log_N, log_D, log_L)[0]) / (2 * eps) for e in np.eye(5)]
    np.testing.assert_allclose(g, numerical, rtol=1e-5, atol=1e-9,
                               err_msg="gradient: clip(r, -delta, delta) x the softmax weights of the LSE terms")


@pytest.mark.ex11_3
def test_huber_objective_large_terms_do_not_overflow():
    log_N, log_D, log_L = runs()
    f, g = huber_objective(np.array([900.0, 0.0, 0.0, 0.0, 0.0]), log_N, log_D, log_L)
    assert np.isfinite(f) and np.isfinite(g).all(), "LSE of terms near 900: subtract the largest before exp"
    assert float(f) == pytest.approx(sum(1e-3 * (900 - l - 0.5e-3) for l in log_L), rel=1e-9)


@pytest.mark.ex11_3
def test_huber_objective_of_a_batch_and_of_weighted_runs():
    log_N, log_D, log_L = runs()
    X = np.random.default_rng(2).uniform([0, 0, -1, 0, 0], [20, 20, 1.5, 2, 2], size=(4, 5))
    f, g = huber_objective(X, log_N, log_D, log_L)
    assert f.shape == (4,) and g.shape == (4, 5), "params (S, 5) -> objective (S,), gradient (S, 5)"
    for i in range(4):
        fi, gi = huber_objective(X[i], log_N, log_D, log_L)
        assert f[i] == pytest.approx(float(fi), rel=1e-12)
        np.testing.assert_allclose(g[i], gi, rtol=1e-12)
    counts = np.random.default_rng(3).integers(0, 3, log_L.size)   # a resample's multiplicities
    fw, gw = huber_objective(X, log_N, log_D, log_L, weights=counts)
    rep = [np.repeat(v, counts) for v in (log_N, log_D, log_L)]
    fr, gr = huber_objective(X, *rep)
    np.testing.assert_allclose(fw, fr, rtol=1e-12, err_msg="weights count each run's term that many times")
    np.testing.assert_allclose(gw, gr, rtol=1e-10, atol=1e-300)
    a, b, e, alpha, beta = X[0]
    r = np.log(np.exp(a - alpha * log_N) + np.exp(b - beta * log_D) + np.exp(e)) - log_L
    assert math.isclose(float(huber_objective(X[0], log_N, log_D, log_L, delta=100.0)[0]), 0.5 * (r * r).sum(),
                        rel_tol=1e-10), "with delta above every residual, the Huber loss is least squares"
