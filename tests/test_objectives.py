"""scratchlm.objectives (Chapter 9): what lies around the exercises.

BERT's masking (bert_mask), where T5's noise spans go (span_noise_mask) and the corrupted inputs and
targets (span_corrupt) are exercises 9.2-9.4: their tests, statistics against exact values
included, are in test_exercises_ch09.py. Here: seeding and the sentinels span corruption needs, and
seq2seq_batch (not an exercise).
"""

from __future__ import annotations

import numpy as np
import pytest

from scratchlm.objectives import IGNORE, seq2seq_batch, span_corrupt


def test_span_corruption_is_seeded_and_needs_sentinels():
    ids = np.arange(60).reshape(2, 30)
    a = span_corrupt(ids, range(100, 110), rng=np.random.default_rng(4))
    b = span_corrupt(ids, range(100, 110), rng=np.random.default_rng(4))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match=r"row 0 has \d+ spans and needs \d+ sentinels .* 1 sentinel_ids"):
        span_corrupt(ids, [100], rng=np.random.default_rng(4))


def test_seq2seq_batch_pads_and_shifts():
    b = seq2seq_batch([[5, 6, 7], [8]], [[1], [2, 3]], pad_id=0, start_id=9, eos_id=4)
    assert b.src.tolist() == [[5, 6, 7, 4], [8, 4, 0, 0]] and b.src_lengths.tolist() == [4, 2]
    assert b.targets.tolist() == [[1, 4, IGNORE], [2, 3, 4]]
    assert b.dec_in.tolist() == [[9, 1, 0], [9, 2, 3]]
