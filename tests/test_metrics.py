"""scratchlm.metrics: unit conversions, the mixture of two models (which exercise 4.3 also tests), and the
classification metrics of Chapter 10 on examples worked by hand."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.metrics import (accuracy, bits_to_nats, confusion_matrix, f1_score, interpolate_logprobs, log10_to_nats,
                               macro_f1, nats_to_bits, perplexity, precision_recall_f1)


def test_units():
    assert nats_to_bits(math.log(2)) == pytest.approx(1.0)
    assert bits_to_nats(nats_to_bits(1.7)) == pytest.approx(1.7)
    assert perplexity(math.log(140.2)) == pytest.approx(140.2)
    assert log10_to_nats(-2.0) == pytest.approx(math.log(0.01))


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), lam=st.floats(0.0, 1.0), size=st.integers(1, 50))
def test_mixture_of_two_distributions_sums_to_one(seed, lam, size):
    rng = np.random.default_rng(seed)
    p_a, p_b = rng.dirichlet(np.ones(size)), rng.dirichlet(np.full(size, 0.1))
    with np.errstate(divide="ignore"):  # a Dirichlet(0.1) draw can hold exact zeros: ln 0 = -inf
        mixed = interpolate_logprobs(np.log(p_a), np.log(p_b), lam)
    assert np.exp(mixed).sum() == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("lam", [-0.1, 1.5, float("nan")])
def test_mixture_weight_outside_zero_one_is_an_error(lam):
    with pytest.raises(ValueError, match="interpolation weight must lie in"):
        interpolate_logprobs(np.zeros(2), np.zeros(2), lam)


# ---- classification (Chapter 10) ---------------------------------------------------------------

def test_classification_metrics_by_hand():
    labels = [1, 1, 1, 0, 0, 0, 0, 0]      # 3 spam, 5 ham
    pred = [1, 1, 0, 1, 0, 0, 0, 0]        # TP 2, FN 1, FP 1, TN 4
    assert accuracy(pred, labels) == 6 / 8
    np.testing.assert_array_equal(confusion_matrix(pred, labels), [[4, 1], [1, 2]])   # rows: true class
    assert precision_recall_f1(pred, labels) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert precision_recall_f1(pred, labels, positive=0) == pytest.approx((4 / 5, 4 / 5, 4 / 5))
    assert f1_score([1, 0, 0, 0], [1, 1, 0, 0]) == pytest.approx(2 * 1.0 * 0.5 / 1.5)  # P 1, R 1/2: F1 2/3
    assert macro_f1(pred, labels) == pytest.approx((2 / 3 + 4 / 5) / 2)


def test_undefined_ratios_are_zero():
    always_ham = np.zeros(8, dtype=np.int64)
    labels = np.array([1, 0, 0, 0, 0, 0, 0, 0])
    assert accuracy(always_ham, labels) == 7 / 8                        # the free accuracy of the majority
    assert precision_recall_f1(always_ham, labels) == (0.0, 0.0, 0.0)   # nothing predicted spam: P = 0/0
    assert precision_recall_f1(labels, always_ham) == (0.0, 0.0, 0.0)   # no spam at all: R = 0/0
    assert macro_f1([0, 0], [0, 0], n_classes=3) == pytest.approx(1 / 3)  # classes 1, 2 absent: F1 0 each


def test_three_classes_and_bad_inputs():
    labels, pred = [0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0]
    M = confusion_matrix(pred, labels, n_classes=3)
    np.testing.assert_array_equal(M, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert M.sum() == 6 and np.trace(M) / 6 == accuracy(pred, labels)
    assert f1_score(pred, labels, positive=2) == pytest.approx(2 * 1.0 * (2 / 3) / (1 + 2 / 3))
    with pytest.raises(ValueError, match="same length, got 2 and 3"):
        accuracy([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="no items"):
        accuracy([], [])
    with pytest.raises(ValueError, match="integer class ids"):
        f1_score([0.5, 1.0], [0, 1])
    with pytest.raises(ValueError, match="class id -1 < 0"):
        accuracy([0, -1], [0, 1])
    with pytest.raises(ValueError, match="class id 3 >= n_classes=3"):
        confusion_matrix([0, 3], [0, 1], n_classes=3)
