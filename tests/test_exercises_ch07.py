"""Exercises of Chapter 7 (decoding), one group of tests per exercise, each marked exN_M.

Run one exercise with `python -m pytest -m ex7_1 tests/test_exercises_ch07.py`. Top-p truncation
(7.1) is checked on distributions small enough to truncate by hand; the KV cache (7.2) on buffers
whose every entry is known, without running a model.
"""

import numpy as np
import pytest

from scratchlm.generate import next_token_probs
from scratchlm.models.gpt import GPTConfig, KVCache

# ---------------------------------------------------------------------------------------------
# Exercise 7.1: keep the smallest set of likeliest tokens whose mass reaches p (generate.py)
# ---------------------------------------------------------------------------------------------
P = np.array([0.5, 0.3, 0.15, 0.05])


def top_p(probs, p, top_k=None):
    return next_token_probs(np.log(np.atleast_2d(probs)), top_k=top_k, top_p=p)


@pytest.mark.ex7_1
@pytest.mark.parametrize("p, want", [
    (0.5, [1.0, 0.0, 0.0, 0.0]),              # 0.5 alone reaches 0.5
    (0.7, [0.625, 0.375, 0.0, 0.0]),          # 0.5 + 0.3 = 0.8 >= 0.7: two tokens, renormalised
    (0.81, [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0.0]),
    (1.0, P),                                 # p = 1 keeps everything
])
def test_top_p_by_hand(p, want):
    np.testing.assert_allclose(top_p(P, p)[0], want, rtol=1e-12, atol=1e-15,
                               err_msg=f"top-p {p} of {P.tolist()}: keep tokens, likeliest first, until their "
                                       "mass reaches p (the token that crosses p is kept), then renormalise")


@pytest.mark.ex7_1
def test_top_p_keeps_the_likeliest_wherever_they_are():
    order = [2, 0, 3, 1]                      # the same distribution, shuffled
    np.testing.assert_allclose(top_p(P[order], 0.7)[0], np.array([0.625, 0.375, 0.0, 0.0])[order], rtol=1e-12,
                               atol=1e-15, err_msg="sort by probability, then put the kept set back in vocabulary order")


@pytest.mark.ex7_1
def test_top_p_truncates_each_row_on_its_own():
    rows = np.array([[0.5, 0.3, 0.15, 0.05], [0.25, 0.25, 0.25, 0.25]])
    got = top_p(rows, 0.7)
    np.testing.assert_allclose(got, [[0.625, 0.375, 0, 0], [1 / 3, 1 / 3, 1 / 3, 0]], rtol=1e-12, atol=1e-15,
                               err_msg="a flat row needs more tokens to reach p than a peaked one")


@pytest.mark.ex7_1
def test_top_p_after_top_k_uses_the_mass_that_is_left():
    # top_k = 2 leaves 0.5 and 0.3 (mass 0.8); p = 0.6 of that is 0.48, which 0.5 alone reaches
    np.testing.assert_allclose(top_p(P, 0.6, top_k=2)[0], [1.0, 0.0, 0.0, 0.0], rtol=1e-12, atol=1e-15,
                               err_msg="after top-k, p is a share of the probability still in the row")


# ---------------------------------------------------------------------------------------------
# Exercise 7.2: writing new keys and values after the cached ones (models/attention.py, KVCache.extend)
# ---------------------------------------------------------------------------------------------
CONFIG = GPTConfig(vocab_size=5, block_size=6, n_layer=2, n_head=2, n_embd=4)  # head size 2


def kv(start: int, T: int, sign: float = 1.0):
    """(B=1, nh=2, T, hs=2) arrays whose entries say which position they belong to."""
    pos = np.arange(start, start + T, dtype=np.float32)[None, None, :, None]
    k = np.broadcast_to(pos, (1, 2, T, 2)).copy() * sign
    return k, k + 100 * sign


@pytest.mark.ex7_2
def test_extend_returns_everything_so_far_in_order():
    cache = KVCache(CONFIG, batch_size=1)
    k, v = cache.extend(0, *kv(0, 2))
    assert k.shape == v.shape == (1, 2, 2, 2), f"after 2 positions, keys and values are (B, nh, 2, hs), got {k.shape}"
    cache.length += 2                         # what GPT.forward does once every layer has extended
    k, v = cache.extend(0, *kv(2, 1))
    assert k.shape == (1, 2, 3, 2), f"after 2 + 1 positions the keys are (B, nh, 3, hs), got {k.shape}"
    np.testing.assert_array_equal(k[0, 0, :, 0], [0, 1, 2], err_msg="new keys go after the `length` cached ones")
    np.testing.assert_array_equal(v[0, 1, :, 1], [100, 101, 102], err_msg="values are cached like keys")


@pytest.mark.ex7_2
def test_extend_writes_only_its_own_layer_and_leaves_length_alone():
    cache = KVCache(CONFIG, batch_size=1)
    cache.extend(1, *kv(0, 3, sign=-1.0))
    assert cache.length == 0, "extend must not advance `length`: every layer extends at the same position"
    assert not cache.k[0].any() and not cache.v[0].any(), "layer 0 must be untouched by layer 1's extend"
    np.testing.assert_array_equal(cache.k[1, 0, 0, :3, 0], [0, -1, -2])
    assert not cache.k[1, :, :, 3:].any(), "positions after the new ones stay empty"
