"""scratchlm.metrics: unit conversions, and the mixture of two models (which exercise 4.3 also tests)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.metrics import bits_to_nats, interpolate_logprobs, log10_to_nats, nats_to_bits, perplexity


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
