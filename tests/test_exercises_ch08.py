"""Exercises of Chapter 8 (recurrent language models), one group of tests per exercise.

Run one exercise with `python -m pytest -m ex8_3 tests/test_exercises_ch08.py`. Each test checks one
library function on its own, on inputs small enough to work out on paper, against numbers worked out
by hand or against the same model run another way, so that it fails only on its own exercise.
"""

import math

import numpy as np
import pytest

from scratchlm.autograd import Tensor, no_grad
from scratchlm.data import StreamWindow, stream_windows
from scratchlm.models.rnn import BiLM, RecurrentLM, RNNConfig, TruncatedBPTT, blank_logprobs, lstm_cell
from scratchlm.rng import manual_seed

# ---------------------------------------------------------------------------------------------
# Exercise 8.1: the LSTM cell, gate by gate (models/rnn.py, lstm_cell)
# ---------------------------------------------------------------------------------------------
BIG = 30.0   # a gate pre-activation this large is a gate fully open (sigma = 1); -BIG, shut (0)


def cell(a, c_prev):
    h, c = lstm_cell(Tensor(np.array(a, dtype=np.float64)), Tensor(np.array(c_prev, dtype=np.float64)))
    assert isinstance(h, Tensor) and isinstance(c, Tensor), "lstm_cell returns (h, c) as Tensors"
    return h.data, c.data


@pytest.mark.ex8_1
def test_an_open_forget_gate_and_a_shut_input_gate_keep_the_cell():
    # blocks [i, f, g, o] of one unit: write nothing, keep everything, show everything
    h, c = cell([[-BIG, BIG, 0.9, BIG]], [[0.7]])
    assert c == pytest.approx(0.7, abs=1e-9), "c_t = f c_{t-1} + i g with f = 1, i = 0 must be c_{t-1}"
    assert h == pytest.approx(math.tanh(0.7), abs=1e-9), "h_t = o tanh(c_t) with o = 1"


@pytest.mark.ex8_1
def test_a_shut_forget_gate_and_an_open_input_gate_write_the_candidate():
    h, c = cell([[BIG, -BIG, 0.5, BIG]], [[0.7]])
    assert c == pytest.approx(math.tanh(0.5), abs=1e-9), "with f = 0, i = 1: c_t = g = tanh(a_g)"
    assert h == pytest.approx(math.tanh(math.tanh(0.5)), abs=1e-9)


@pytest.mark.ex8_1
def test_a_shut_output_gate_hides_the_cell():
    h, c = cell([[BIG, BIG, 0.5, -BIG]], [[0.7]])
    assert c == pytest.approx(0.7 + math.tanh(0.5), abs=1e-9)
    assert h == pytest.approx(0.0, abs=1e-9), "o = 0: nothing of the cell reaches h_t"


@pytest.mark.ex8_1
def test_two_units_and_two_rows_worked_out_by_hand():
    a = np.array([[0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8],      # [i1 i2 | f1 f2 | g1 g2 | o1 o2]
                  [1.0, 0.0, -1.0, 2.0, 0.5, -0.5, 0.0, 1.5]])
    c_prev = np.array([[0.2, -0.3], [1.0, 0.5]])
    h, c = cell(a, c_prev)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    for b in range(2):
        for j in range(2):
            i, f, g, o = sig(a[b, j]), sig(a[b, 2 + j]), math.tanh(a[b, 4 + j]), sig(a[b, 6 + j])
            want_c = f * c_prev[b, j] + i * g
            assert c[b, j] == pytest.approx(want_c, rel=1e-12), f"row {b}, unit {j}: c (blocks in order i, f, g, o)"
            assert h[b, j] == pytest.approx(o * math.tanh(want_c), rel=1e-12), f"row {b}, unit {j}: h"


# ---------------------------------------------------------------------------------------------
# Exercise 8.2: parallel streams for truncated BPTT (data.py, stream_windows)
# ---------------------------------------------------------------------------------------------

def assert_windows(windows, want, what):
    assert len(windows) == len(want), f"{what}: {len(windows)} windows, want {len(want)}"
    for k, (w, (x, y)) in enumerate(zip(windows, want)):
        assert isinstance(w, StreamWindow), f"{what}: window {k} must be a StreamWindow"
        np.testing.assert_array_equal(w.x, x, err_msg=f"{what}: window {k}, inputs x")
        np.testing.assert_array_equal(w.y, y, err_msg=f"{what}: window {k}, targets y (x shifted by one)")
        assert w.first == (k == 0), f"{what}: only the first window has first=True"
        assert w.x.dtype == np.int64, f"{what}: ids are int64"


@pytest.mark.ex8_2
def test_two_streams_of_five_in_windows_of_two():
    # 11 ids, 2 streams of L = 5 (id 10 is dropped); each stream's 4 targets in 2 windows of 2
    assert_windows(stream_windows(np.arange(11), 2, 2, "train"),
                   [([[0, 1], [5, 6]], [[1, 2], [6, 7]]), ([[2, 3], [7, 8]], [[3, 4], [8, 9]])], "B=2, T=2")


@pytest.mark.ex8_2
def test_the_last_window_is_shorter():
    assert_windows(stream_windows(np.arange(10), 2, 3, "valid"),
                   [([[0, 1, 2], [5, 6, 7]], [[1, 2, 3], [6, 7, 8]]), ([[3], [8]], [[4], [9]])], "B=2, T=3")


@pytest.mark.ex8_2
def test_one_stream_scores_every_id_but_the_first():
    windows = stream_windows(np.array([7, 3, 5, 2, 9]), 1, 3, "test")
    assert_windows(windows, [([[7, 3, 5]], [[3, 5, 2]]), ([[2]], [[9]])], "B=1, T=3")
    assert {w.stream for w in windows} == {"test"}, "every window names its stream"


# ---------------------------------------------------------------------------------------------
# Exercise 8.3: carrying the state between windows (models/rnn.py, TruncatedBPTT.__call__)
# ---------------------------------------------------------------------------------------------

def tiny_lm(seed=0):
    manual_seed(seed)
    return RecurrentLM(RNNConfig(vocab_size=6, n_embd=3, n_hidden=4, n_layer=2, init_range=0.5), dtype=np.float64)


STREAM = np.array([1, 4, 2, 5, 0, 3, 3, 1, 2, 4, 5, 1])


def windows_of(stream, T, name="s"):
    """Windows of one stream by hand (B = 1), so this exercise does not lean on exercise 8.2."""
    return [StreamWindow(stream[None, s:min(s + T, len(stream) - 1)], stream[None, s + 1:min(s + T, len(stream) - 1) + 1],
                         name, s == 0) for s in range(0, len(stream) - 1, T)]


@pytest.mark.ex8_3
def test_windows_with_the_state_carried_score_like_one_pass_over_the_stream():
    model, tbptt = tiny_lm(), TruncatedBPTT()
    losses = [tbptt(model, w) for w in windows_of(STREAM, 4)]
    total = sum(loss.item() * n for loss, n in losses)
    assert [n for _, n in losses] == [4, 4, 3], "n_targets: the number of targets in each window"
    with no_grad():
        _, whole, _ = model.unroll(STREAM[None, :-1], None, STREAM[None, 1:])
    assert total / 11 == pytest.approx(whole.item(), rel=1e-12), \
        "each window must start from the state the previous one ended in (model.unroll's third result)"


@pytest.mark.ex8_3
def test_the_carried_state_is_detached():
    model, tbptt = tiny_lm(), TruncatedBPTT()
    first, second = windows_of(STREAM, 6)
    tbptt(model, first)
    state = tbptt.states["s"]
    assert all(isinstance(s, Tensor) and not s.requires_grad for s in state), \
        "the stored state must be detached (Tensor.detach()): the backward pass stops at the window's edge"
    loss, _ = tbptt(model, second)
    loss.backward()
    got = {name: p.grad.copy() for name, p in model.named_parameters()}
    model.zero_grad()
    _, again, _ = model.unroll(second.x, tuple(s.data for s in state), second.y)   # the state as constants
    again.backward()
    for name, p in model.named_parameters():
        np.testing.assert_allclose(got[name], p.grad, rtol=1e-12, err_msg=f"{name}: gradient reached the first window")


@pytest.mark.ex8_3
def test_a_first_window_starts_from_a_fresh_state_and_streams_do_not_mix():
    model, tbptt = tiny_lm(), TruncatedBPTT()
    w = windows_of(STREAM, 5)
    tbptt(model, w[0])
    tbptt(model, w[1])
    other = windows_of(STREAM[::-1].copy(), 5, "other")[0]
    loss, _ = tbptt(model, other)                                         # another stream's first window
    with no_grad():
        _, fresh, _ = model.unroll(other.x, None, other.y)
    assert loss.item() == pytest.approx(fresh.item(), rel=1e-12), "first=True: start from zeros (state None)"
    loss, _ = tbptt(model, w[2])                                          # stream "s" goes on where it was
    with no_grad():
        _, _, state = model.unroll(STREAM[None, :10])                     # the state after w[0] and w[1]
        _, want, _ = model.unroll(w[2].x, state, w[2].y)
    assert loss.item() == pytest.approx(want.item(), rel=1e-12), \
        "one state per stream name: window 3 of 's' continues from window 2 of 's', not from 'other'"


# ---------------------------------------------------------------------------------------------
# Exercise 8.4: filling a blank from both sides (models/rnn.py, blank_logprobs)
# ---------------------------------------------------------------------------------------------
BOUNDARY = 0


def log_softmax(z):
    z = z - z.max()
    return z - math.log(np.exp(z).sum())


@pytest.mark.ex8_4
def test_each_blank_combines_the_left_and_the_right_prediction():
    manual_seed(1)
    bilm = BiLM(RNNConfig(vocab_size=7, n_embd=3, n_hidden=3, n_layer=1, init_range=0.8), dtype=np.float64)
    ids = np.array([3, 5, 1, 0, 6, 2, 4, 0])
    log_prior = log_softmax(np.random.default_rng(2).standard_normal(7))   # ln p(w), a unigram model
    got = blank_logprobs(bilm, ids, BOUNDARY, log_prior, weight=0.7, bptt=3, chunk=3, top=2)
    for t in range(len(ids)):
        with no_grad():   # each direction read from scratch: left of t forwards, right of t backwards
            left = bilm.forward_lm.unroll(np.concatenate([[BOUNDARY], ids[:t]])[None])[0].data[0, -1]
            right = bilm.backward_lm.unroll(np.concatenate([[BOUNDARY], ids[t + 1:][::-1]])[None])[0].data[0, -1]
        lf, lb = log_softmax(left), log_softmax(right)
        both = log_softmax(lf + 0.7 * (lb - log_prior))
        assert got["forward"][t] == pytest.approx(lf[ids[t]], rel=1e-6), f"t={t}: ln p_fwd(w_t | w_<t)"
        assert got["backward"][t] == pytest.approx(lb[ids[t]], rel=1e-6), f"t={t}: ln p_bwd(w_t | w_>t)"
        assert got["both"][t] == pytest.approx(both[ids[t]], rel=1e-6), \
            f"t={t}: ln of p_fwd * (p_bwd / p(w)) ** weight, renormalised over the vocabulary"
        assert list(got["forward_top"][t]) == list(np.argsort(-lf)[:2]), f"t={t}: the forward LM's best 2"
        assert list(got["both_top"][t]) == list(np.argsort(-both)[:2]), f"t={t}: both directions' best 2"
