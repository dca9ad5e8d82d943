"""data.pad_sequences: a list of id sequences as one padded (N, L) array (Chapter 6 on)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchlm.data import pad_sequences


def test_left_aligned_and_filled_with_pad():
    out = pad_sequences([[5, 6, 7], [8], []], pad=-1)
    np.testing.assert_array_equal(out, [[5, 6, 7], [8, -1, -1], [-1, -1, -1]])
    assert out.dtype == np.int64


def test_fixed_length_and_no_sequences():
    assert pad_sequences([[1, 2]], length=4).tolist() == [[1, 2, 0, 0]]
    assert pad_sequences([], length=3).shape == (0, 3)


def test_too_long_is_an_error_naming_the_sequence():
    with pytest.raises(ValueError, match=r"sequence 1 has 3 ids, more than length=2"):
        pad_sequences([[1], [1, 2, 3]], length=2)


@given(st.lists(st.lists(st.integers(0, 50), max_size=8), max_size=6), st.integers(-3, 3))
def test_equals_a_row_by_row_construction(seqs, pad):
    out = pad_sequences(seqs, length=8, pad=pad)
    for row, s in zip(out, seqs):
        assert row[:len(s)].tolist() == s and (row[len(s):] == pad).all()
