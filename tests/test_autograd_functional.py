"""scratchlm.autograd.functional: gradchecks in float64, values against plain formulas, errors."""

import math

import numpy as np
import pytest

import scratchlm.autograd.functional as F
from scratchlm.autograd import Tensor, gradcheck
from scratchlm.rng import manual_seed

from autograd_helpers import check_op

TOL = 1e-6


def t(*shape, seed=0, scale=1.0):
    return Tensor(np.random.default_rng(seed).normal(scale=scale, size=shape), requires_grad=True)


TARGETS = np.array([1, 4, 0, 4, 2])
CAUSAL = np.triu(np.ones((4, 4), bool), k=1)

CASES = {
    "softmax_last": (lambda x: F.softmax(x), [t(3, 5)]),
    "softmax_axis0": (lambda x: F.softmax(x, axis=0), [t(4, 3, 2)]),
    "softmax_middle_negative_axis": (lambda x: F.softmax(x, axis=-2), [t(2, 4, 3)]),
    "softmax_masked": (lambda x: F.softmax(F.masked_fill(x, CAUSAL, -np.inf)), [t(4, 4)]),
    "log_softmax": (lambda x: F.log_softmax(x), [t(3, 5)]),
    "log_softmax_axis1": (lambda x: F.log_softmax(x, axis=1), [t(2, 4, 3)]),
    "cross_entropy_mean": (lambda x: F.cross_entropy(x, TARGETS), [t(5, 6)]),
    "cross_entropy_sum": (lambda x: F.cross_entropy(x, TARGETS, reduction="sum"), [t(5, 6)]),
    "cross_entropy_none": (lambda x: F.cross_entropy(x, TARGETS, reduction="none"), [t(5, 6)]),
    "cross_entropy_ignore_index": (lambda x: F.cross_entropy(x, np.array([1, -1, 0, -1, 2]), ignore_index=-1),
                                   [t(5, 6)]),
    "cross_entropy_composed": (lambda x: F.cross_entropy(F.softmax(x) * 3.0, TARGETS), [t(5, 6)]),
    "linear": (lambda x, w, b: F.linear(x, w, b), [t(3, 4), t(5, 4, seed=1), t(5, seed=2)]),
    "linear_batched_no_bias": (lambda x, w: F.linear(x, w), [t(2, 3, 4), t(5, 4, seed=1)]),
    "linear_vector_input": (lambda x, w, b: F.linear(x, w, b), [t(4), t(5, 4, seed=1), t(5, seed=2)]),
    "linear_transposed_input": (lambda x, w: F.linear(x.transpose(1, 0, 2), w), [t(3, 2, 4), t(5, 4, seed=1)]),
    "linear_tied_weight": (lambda w: F.linear(F.embedding(np.array([[0, 2], [2, 2]]), w), w), [t(3, 4)]),
    "linear_constant_weight": (lambda x: F.linear(x, np.ones((2, 4)), np.arange(2.0)), [t(3, 4)]),
    "gelu_exact": (lambda x: F.gelu(x), [t(4, 5, scale=2)]),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), [t(4, 5, scale=2)]),
    "layer_norm": (lambda x, w, b: F.layer_norm(x, w, b), [t(2, 3, 5), t(5, seed=1), t(5, seed=2)]),
    "layer_norm_no_affine": (lambda x: F.layer_norm(x), [t(4, 5)]),
    "layer_norm_weight_only": (lambda x, w: F.layer_norm(x, w, None, eps=1e-3), [t(4, 5), t(5, seed=1)]),
    "layer_norm_offset": (lambda x, w: F.layer_norm(x + 10.0, w), [t(4, 5), t(5, seed=1)]),
    "embedding_repeated_ids": (lambda w: F.embedding(np.array([[0, 1, 1], [2, 0, 0]]), w), [t(3, 4)]),
    "embedding_then_matmul": (lambda w: F.embedding(np.array([2, 2, 0]), w) @ w.T, [t(3, 4)]),
    "dropout": (lambda x: F.dropout(x, 0.3, rng=np.random.default_rng(1)), [t(4, 5)]),
    "where": (lambda a, b: F.where(a.data > 0, a, b), [t(3, 4), t(4, seed=1)]),
    "where_scalar_branch": (lambda a: F.where(np.eye(3, dtype=bool), 0.5, a.exp()), [t(3, 3)]),
    "masked_fill": (lambda x: F.masked_fill(x, CAUSAL, -1e9) * 1.0, [t(4, 4)]),
    "concatenate": (lambda a, b: F.concatenate([a, np.ones((2, 1)), b], axis=-1), [t(2, 3), t(2, 2, seed=1)]),
    "concatenate_axis0": (lambda a, b: F.concatenate([a, b]), [t(2, 3), t(1, 3, seed=1)]),
    "stack": (lambda a, b: F.stack([a, b], axis=-1), [t(2, 3), t(2, 3, seed=1)]),
    "stack_axis0": (lambda a, b: F.stack([a, b, a]), [t(2, 3), t(2, 3, seed=1)]),
    # the modern decoder's functions (Chapter 9)
    "rms_norm": (lambda x, w: F.rms_norm(x, w), [t(2, 3, 5), t(5, seed=1)]),
    "rms_norm_no_weight_offset": (lambda x: F.rms_norm(x + 3.0, eps=1e-3), [t(4, 5)]),
    "swiglu": (lambda x: F.swiglu(x), [t(2, 3, 8, scale=3)]),
    "swiglu_after_linear": (lambda x, w: F.swiglu(F.linear(x, w)), [t(3, 4), t(6, 4, seed=1)]),
    "rope": (lambda x: F.rope(x, *F.rope_tables(5, 4, 10.0)), [t(2, 3, 5, 4)]),
    "rope_3d_offset": (lambda x: F.rope(x, *F.rope_tables(3, 6, 10000.0, start=11)), [t(2, 3, 6)]),
    "rope_transposed_input": (lambda x: F.rope(x.transpose(1, 0, 2), *F.rope_tables(3, 2, 10.0)), [t(3, 4, 2)]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck(name):
    fn, inputs = CASES[name]
    check_op(fn, inputs, tol=TOL)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_gradcheck_cross_entropy_huge_logits(reduction):
    # Logits of size 1e4: exp(1e4) overflows any float; the log-sum-exp shift keeps it finite.
    # eps is larger here because the loss itself is ~1e4, so rounding/eps dominates at eps=1e-6.
    x = t(5, 6, scale=1e4)
    err = gradcheck(lambda x: F.cross_entropy(x, np.array([1, 4, -1, 0, 2]), ignore_index=-1,
                                              reduction=reduction), [x], eps=1e-4, tol=TOL)
    assert err <= TOL


def test_gradcheck_gelu_and_softmax_extremes():
    x = Tensor(np.array([[-30.0, -8.0, -1e-3, 0.0, 1e-3, 8.0, 30.0]]), requires_grad=True)
    for fn in (F.gelu, lambda v: F.gelu(v, approximate="tanh"), F.softmax, F.log_softmax):
        assert gradcheck(fn, [x], tol=TOL) <= TOL


# ---- values -----------------------------------------------------------------------------------

def log_softmax_plain(x):
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def test_softmax_and_log_softmax_values():
    x = np.random.default_rng(0).normal(size=(3, 4, 5))
    for axis in (0, 1, -1):
        p = F.softmax(x, axis=axis).data
        np.testing.assert_allclose(p.sum(axis=axis), 1.0, rtol=1e-12)
        np.testing.assert_allclose(np.log(p), F.log_softmax(x, axis=axis).data, rtol=1e-12)
    np.testing.assert_allclose(F.log_softmax(x).data, log_softmax_plain(x), rtol=1e-12)


def test_cross_entropy_values_match_log_softmax():
    x = np.random.default_rng(0).normal(size=(5, 6))
    per_row = -log_softmax_plain(x)[np.arange(5), TARGETS]
    np.testing.assert_allclose(F.cross_entropy(x, TARGETS).item(), per_row.mean(), rtol=1e-12)
    np.testing.assert_allclose(F.cross_entropy(x, TARGETS, reduction="sum").item(), per_row.sum(), rtol=1e-12)
    np.testing.assert_allclose(F.cross_entropy(x, TARGETS, reduction="none").data, per_row, rtol=1e-12)
    kept = np.array([1, -1, 0, -1, 2])
    mean_kept = -log_softmax_plain(x)[[0, 2, 4], [1, 0, 2]].mean()
    np.testing.assert_allclose(F.cross_entropy(x, kept, ignore_index=-1).item(), mean_kept, rtol=1e-12)


def test_cross_entropy_huge_logits_is_finite_and_exact():
    x = Tensor(np.array([[1e4, 0.0, -1e4], [-1e4, -1e4, -1e4]], np.float32), requires_grad=True)
    loss = F.cross_entropy(x, np.array([0, 1]), reduction="none")
    np.testing.assert_allclose(loss.data, [0.0, math.log(3)], rtol=1e-6)
    loss.sum().backward()
    assert np.isfinite(x.grad).all()
    np.testing.assert_allclose(x.grad, [[0, 0, 0], [1 / 3, -2 / 3, 1 / 3]], atol=1e-6)


def test_linear_matches_matmul_and_lays_dW_out_like_W():
    x, w, b = t(4, 3, 5), t(6, 5, seed=1), t(6, seed=2)
    y = F.linear(x, w, b)
    np.testing.assert_allclose(y.data, x.data @ w.data.T + b.data, rtol=1e-13)
    y.backward(np.ones(y.shape))
    assert w.grad.shape == (6, 5) and w.grad.flags.c_contiguous   # the optimiser runs along memory
    np.testing.assert_allclose(w.grad, np.ones((12, 6)).T @ x.data.reshape(12, 5), rtol=1e-13)
    np.testing.assert_allclose(b.grad, np.full(6, 12.0))


def test_cross_entropy_all_ignored_sums_to_zero():
    # The mean over no targets is an error (tests/test_bad_inputs_autograd.py); the sum is 0.
    x = t(2, 3)
    loss = F.cross_entropy(x, np.array([-1, -1]), ignore_index=-1, reduction="sum")
    assert loss.item() == 0.0
    loss.backward()
    np.testing.assert_array_equal(x.grad, 0.0)


def test_gelu_values():
    x = np.array([-3.0, -1.0, 0.0, 1.0, 3.0])
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x])
    np.testing.assert_allclose(F.gelu(x).data, exact, rtol=1e-14)
    assert F.gelu(np.array([1.0])).item() == pytest.approx(0.8413447460685429, rel=1e-14)
    tanh_form = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(F.gelu(x, approximate="tanh").data, tanh_form, rtol=1e-12, atol=1e-15)


def test_layer_norm_normalises_the_last_axis():
    x = np.random.default_rng(0).normal(loc=5.0, scale=3.0, size=(2, 3, 64))
    y = F.layer_norm(x, eps=0.0).data
    np.testing.assert_allclose(y.mean(axis=-1), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=-1), 1.0, rtol=1e-12)
    w, b = np.full(64, 2.0), np.full(64, 0.5)
    np.testing.assert_allclose(F.layer_norm(x, w, b, eps=0.0).data, 2.0 * y + 0.5, rtol=1e-12)


def test_embedding_picks_rows_and_adds_repeated_gradients():
    w = t(4, 3)
    ids = np.array([[3, 0], [3, 3]])
    y = F.embedding(ids, w)
    np.testing.assert_array_equal(y.data, w.data[ids])
    y.sum().backward()
    np.testing.assert_array_equal(w.grad, [[1, 1, 1], [0, 0, 0], [0, 0, 0], [3, 3, 3]])


def test_dropout_masks_scales_and_is_reproducible():
    x = Tensor(np.ones((200, 50)), requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x and F.dropout(x, 0.0) is x
    y = F.dropout(x, 0.25, rng=np.random.default_rng(0)).data
    assert set(np.unique(y)) == {0.0, 1 / 0.75}
    assert abs((y == 0).mean() - 0.25) < 0.02
    np.testing.assert_array_equal(y, F.dropout(x, 0.25, rng=np.random.default_rng(0)).data)
    manual_seed(7)
    a = F.dropout(x, 0.5).data
    manual_seed(7)
    np.testing.assert_array_equal(a, F.dropout(x, 0.5).data)   # the library generator by default
    np.testing.assert_array_equal(F.dropout(x, 1.0).data, 0.0)


def test_where_masked_fill_concatenate_stack_values():
    a, b = np.arange(6.0).reshape(2, 3), -np.ones((2, 3))
    cond = np.array([True, False, True])
    np.testing.assert_array_equal(F.where(cond, a, b).data, np.where(cond, a, b))
    np.testing.assert_array_equal(F.masked_fill(a, a > 2, -np.inf).data, np.where(a > 2, -np.inf, a))
    np.testing.assert_array_equal(F.concatenate([a, b], axis=1).data, np.concatenate([a, b], axis=1))
    np.testing.assert_array_equal(F.stack([a, b], axis=1).data, np.stack([a, b], axis=1))


# ---- float32 in, float32 out ------------------------------------------------------------------

def test_float32_is_kept_forward_and_backward():
    rng = np.random.default_rng(0)
    x = Tensor(rng.normal(size=(6, 8)).astype(np.float32), requires_grad=True)
    w = Tensor(np.ones(8, np.float32), requires_grad=True)
    emb = Tensor(rng.normal(size=(10, 8)).astype(np.float32), requires_grad=True)
    h = F.layer_norm(x + F.embedding(np.arange(6), emb), w, None)
    h = F.gelu(h) + F.gelu(h, approximate="tanh") + F.dropout(h, 0.1)
    h = F.softmax(h) + F.log_softmax(h, axis=0)
    h = F.masked_fill(h, np.eye(6, 8, dtype=bool), 0.0)
    h = F.concatenate([h, F.stack([h[0], h[1]])]) + F.where(h.data > 0, h, 0.5)[:1]
    loss = F.cross_entropy(h, np.array([1, 2, 3, 4, 5, 6, 7, 0]))
    assert h.dtype == np.float32 and loss.dtype == np.float32
    loss.backward()
    for p in (x, w, emb):
        assert p.grad.dtype == np.float32


def test_float32_kernels_agree_with_float64():
    rng = np.random.default_rng(0)
    x64 = rng.normal(scale=3, size=(16, 300))
    x32 = x64.astype(np.float32)
    targets = rng.integers(0, 300, 16)
    for fn in (F.softmax, F.log_softmax, F.gelu, lambda v: F.gelu(v, approximate="tanh"), F.layer_norm,
               lambda v: F.cross_entropy(v, targets), F.rms_norm, F.swiglu,
               lambda v: F.rope(v, *F.rope_tables(16, 300, 10000.0))):
        a, b = Tensor(x32, requires_grad=True), Tensor(x64, requires_grad=True)
        ya, yb = fn(a), fn(b)
        np.testing.assert_allclose(ya.data, yb.data, rtol=1e-5, atol=1e-6)
        g = rng.normal(size=yb.shape)
        ya.backward(g.astype(np.float32))
        yb.backward(g)
        np.testing.assert_allclose(a.grad, b.grad, rtol=1e-4, atol=1e-5 * np.abs(b.grad).max())


# ---- clear errors -----------------------------------------------------------------------------

def test_errors_name_the_problem():
    x = t(3, 5)
    with pytest.raises(IndexError, match=r"target 7 at position \(1,\) is outside \[0, 5\)"):
        F.cross_entropy(x, np.array([0, 7, 1]))
    with pytest.raises(IndexError, match="target -1"):
        F.cross_entropy(x, np.array([0, -1, 1]), ignore_index=-100)
    with pytest.raises(ValueError, match=r"targets must have shape \(3,\)"):
        F.cross_entropy(x, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"\(N, V\), got shape \(3, 5, 1\)"):
        F.cross_entropy(t(3, 5, 1), np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="integers"):
        F.cross_entropy(x, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(x, np.array([0, 1, 2]), reduction="max")
    with pytest.raises(IndexError, match=r"id 9 at position \(0, 1\)"):
        F.embedding(np.array([[0, 9]]), t(4, 2))
    with pytest.raises(ValueError, match=r"weight must have shape \(5,\)"):
        F.layer_norm(x, np.ones(4))
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(x, approximate="fast")
    with pytest.raises(ValueError, match="p must be in"):
        F.dropout(x, 1.5)
    with pytest.raises(TypeError, match="floating"):
        F.softmax(np.arange(4))
    with pytest.raises(ValueError, match=r"rms_norm: weight must have shape \(5,\)"):
        F.rms_norm(x, np.ones(4))
    with pytest.raises(ValueError, match=r"swiglu: .* even length; got shape \(3, 5\)"):
        F.swiglu(x)
    with pytest.raises(ValueError, match=r"rope: x must be \(\.\.\., T, D\) .*got x \(3, 5\), cos \(3, 2\)"):
        F.rope(x, *F.rope_tables(3, 4))
    with pytest.raises(ValueError, match="head size must be even"):
        F.rope_tables(3, 5)


def test_rms_norm_swiglu_rope_values():
    x = np.array([[3.0, -4.0], [1.0, 1.0]])
    np.testing.assert_allclose(F.rms_norm(x, eps=0.0).data, x / np.array([[np.sqrt(12.5)], [1.0]]), rtol=1e-15)
    a = np.array([[0.0, 2.0, -50.0, 5.0, 7.0, 9.0]])                    # gate [0, 2, -50], value [5, 7, 9]
    np.testing.assert_allclose(F.swiglu(a).data, [[0.0, 2 / (1 + np.exp(-2)) * 7, 0.0]], atol=1e-18)
    cos, sin = F.rope_tables(3, 2, 10.0)                                  # one pair, angle t (theta_0 = 1)
    np.testing.assert_allclose(cos[:, 0], np.cos([0, 1, 2]), rtol=1e-15)
    y = F.rope(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), cos, sin).data  # rotate (1, 0) and (0, 1)
    np.testing.assert_allclose(y, [[1, 0], [np.cos(1), np.sin(1)], [-np.sin(2), np.cos(2)]], atol=1e-15)
    x = np.random.default_rng(0).normal(size=(5, 8))                     # a rotation keeps lengths
    np.testing.assert_allclose(np.linalg.norm(F.rope(x, *F.rope_tables(5, 8)).data, axis=-1),
                               np.linalg.norm(x, axis=-1), rtol=1e-14)


def test_cross_entropy_backward_twice_and_scaled():
    """The forward writes the gradient once; later backward calls recompute it, scaled by g."""
    x = t(5, 6)
    loss = F.cross_entropy(x, TARGETS)
    loss.backward()
    first = x.grad.copy()
    x.grad *= 100.0                                 # the handed-out array is the leaf's to modify
    x.zero_grad()
    (loss * 3.0).backward()
    np.testing.assert_allclose(x.grad, 3 * first, rtol=1e-12)
    per_row = F.cross_entropy(x, TARGETS, reduction="none")
    x.zero_grad()
    w = np.arange(5.0)
    per_row.backward(w)
    np.testing.assert_allclose(x.grad, first * len(TARGETS) * w[:, None], rtol=1e-12)
