"""Exercises of Chapter 10 (fine-tuning), one group of tests per exercise, each marked exN_M.

Run one exercise with `python -m pytest -m ex10_2 tests/test_exercises_ch10.py`.

    10.2  last_token (models/classifier.py): each sequence's last real token under right padding, on
          arrays small enough to check by eye, against NumPy indexing on random shapes, and its gradient

Unmarked tests at the end check the pieces around the exercises (bad input).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autograd_helpers import check_op
from scratchlm.autograd import Tensor
from scratchlm.models.classifier import last_token


# ---------------------------------------------------------------------------------------------
# Exercise 10.2: last-real-token pooling under padding (models/classifier.py, last_token)
# ---------------------------------------------------------------------------------------------

@pytest.mark.ex10_2
def test_last_token_reads_each_rows_last_real_position():
    h = Tensor(np.arange(3 * 4 * 2, dtype=np.float64).reshape(3, 4, 2))   # h[b, t] = [8b + 2t, 8b + 2t + 1]
    got = last_token(h, np.array([3, 1, 4]))
    assert isinstance(got, Tensor) and got.shape == (3, 2)
    np.testing.assert_array_equal(got.data, [[4, 5], [8, 9], [22, 23]],
                                  err_msg="row b must be h[b, lengths[b] - 1]: positions 2, 0 and 3 here")


@pytest.mark.ex10_2
def test_last_token_is_not_the_last_column():
    h = Tensor(np.arange(2 * 5 * 1, dtype=np.float64).reshape(2, 5, 1))
    got = last_token(h, np.array([2, 5]))
    assert got.data[0, 0] == 1.0, ("a sequence of 2 tokens padded to 5 ends at position 1; h[:, -1] would read "
                                   "position 4, which is padding")
    assert got.data[1, 0] == 9.0


@pytest.mark.ex10_2
def test_last_token_keeps_the_dtype_and_handles_one_position():
    h = Tensor(np.random.default_rng(0).normal(size=(4, 1, 3)).astype(np.float32))
    got = last_token(h, np.ones(4, dtype=np.int64))
    assert got.dtype == np.float32 and got.shape == (4, 3)
    np.testing.assert_array_equal(got.data, h.data[:, 0])


@pytest.mark.ex10_2
@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(1, 7), st.integers(1, 4), st.integers(0, 10**6))
def test_last_token_matches_numpy_indexing(B, T, C, seed):
    rng = np.random.default_rng(seed)
    h = rng.normal(size=(B, T, C))
    lengths = rng.integers(1, T + 1, size=B)
    want = np.stack([h[b, lengths[b] - 1] for b in range(B)])
    np.testing.assert_array_equal(last_token(Tensor(h), lengths).data, want)


@pytest.mark.ex10_2
def test_last_token_gradient_reaches_only_the_read_positions():
    h = Tensor(np.random.default_rng(1).normal(size=(3, 4, 2)), requires_grad=True)
    lengths = np.array([4, 2, 1])
    last_token(h, lengths).sum().backward()
    want = np.zeros((3, 4, 2))
    want[[0, 1, 2], [3, 1, 0]] = 1.0
    assert h.grad is not None, "the output must be computed from h with Tensor ops, so that backward reaches h"
    np.testing.assert_array_equal(h.grad, want, err_msg="dL/dh is 1 at each row's last real position, 0 elsewhere")
    check_op(lambda x: last_token(x, lengths), [Tensor(np.random.default_rng(2).normal(size=(3, 4, 2)),
                                                       requires_grad=True)])


# ---------------------------------------------------------------------------------------------
# Around the exercises
# ---------------------------------------------------------------------------------------------

def test_last_token_refuses_bad_lengths():
    h = Tensor(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"lengths\[0\] = 0 is outside \[1, 3\]"):
        last_token(h, np.array([0, 2]))
    with pytest.raises(ValueError, match=r"lengths\[1\] = 4 is outside \[1, 3\]"):
        last_token(h, np.array([1, 4]))
    with pytest.raises(ValueError, match="lengths must be 2 integers"):
        last_token(h, np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"h must be hidden states \(B, T, C\)"):
        last_token(Tensor(np.zeros((2, 3))), np.array([1, 2]))
