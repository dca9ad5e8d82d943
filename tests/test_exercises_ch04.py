"""Exercises of Chapter 4 (the neural probabilistic language model), one group of tests per exercise.

Run one exercise with `python -m pytest -m ex4_2 tests/test_exercises_ch04.py`. Each test checks one
library function on its own, on streams and weights small enough to work out on paper, against
numbers worked out by hand, so that it fails only on its own exercise.
"""

import math

import numpy as np
import pytest

from scratchlm.metrics import interpolate_logprobs
from scratchlm.data import context_windows
from scratchlm.models.nplm import NPLM, NPLMConfig

# ---------------------------------------------------------------------------------------------
# Exercise 4.1: (context, next word) windows, padded with <s> (data.py, context_windows)
# ---------------------------------------------------------------------------------------------
BOS, EOS = 0, 9


def assert_windows(got, want_X, want_Y, what: str) -> None:
    X, Y = got
    want_X, want_Y = np.array(want_X), np.array(want_Y)
    assert isinstance(X, np.ndarray) and X.dtype == np.int64, \
        f"{what}: the contexts must be an int64 array (they index the embedding), got {getattr(X, 'dtype', type(X))}"
    assert X.shape == want_X.shape, f"{what}: contexts have shape {X.shape}, want (tokens, context) = {want_X.shape}"
    np.testing.assert_array_equal(X, want_X, err_msg=f"{what}: wrong contexts (row t = the ids before token t)")
    np.testing.assert_array_equal(Y, want_Y, err_msg=f"{what}: wrong targets (every token, </s> included)")


@pytest.mark.ex4_1
def test_windows_of_one_sentence_slide_one_word_at_a_time():
    assert_windows(context_windows([1, 2, 3, 4, EOS], 2, BOS, EOS),
                   [[0, 0], [0, 1], [1, 2], [2, 3], [3, 4]], [1, 2, 3, 4, EOS], "sentence 1 2 3 4 </s>")


@pytest.mark.ex4_1
def test_a_window_never_reaches_into_the_previous_sentence():
    # After </s> a new sentence starts: its first words see <s> padding, not the last sentence's words.
    assert_windows(context_windows([5, 6, EOS, 7, EOS], 2, BOS, EOS),
                   [[0, 0], [0, 5], [5, 6], [0, 0], [0, 7]], [5, 6, EOS, 7, EOS], "two sentences")


@pytest.mark.ex4_1
def test_windows_wider_than_the_sentence_are_all_padding_at_the_left():
    assert_windows(context_windows([3, EOS, 4, 5, EOS], 3, BOS, EOS),
                   [[0, 0, 0], [0, 0, 3], [0, 0, 0], [0, 0, 4], [0, 4, 5]], [3, EOS, 4, 5, EOS],
                   "context of 3 over sentences of 1 and 2 words")


@pytest.mark.ex4_1
def test_names_use_one_symbol_to_start_and_end():
    # makemore's names: '.' (id 0) ends a name and pads the start of the next one.
    assert_windows(context_windows([1, 2, 0, 3, 0], 3, 0, 0),
                   [[0, 0, 0], [0, 0, 1], [0, 1, 2], [0, 0, 0], [0, 0, 3]], [1, 2, 0, 3, 0], "names 'ab.' 'c.'")


# ---------------------------------------------------------------------------------------------
# Exercise 4.2: the forward pass y = b + W x + U tanh(d + H x) (models/nplm.py, NPLM.forward)
# ---------------------------------------------------------------------------------------------

def tiny_nplm(direct: bool) -> NPLM:
    """V = 3 words with 1-number vectors 0, 1, 2; context of 2 words; one tanh unit."""
    model = NPLM(NPLMConfig(vocab_size=3, context=2, n_embd=1, n_hidden=1, direct=direct), dtype=np.float64)
    model.C.weight.data[:] = [[0.0], [1.0], [2.0]]
    model.H.weight.data[:] = [[0.5, -1.0]]          # (h, (n-1) m)
    model.H.bias.data[:] = [0.25]
    model.U.weight.data[:] = [[1.0], [2.0], [-1.0]]  # (V, h)
    model.U.bias.data[:] = [0.0, 0.5, 1.0]
    if direct:
        model.W.weight.data[:] = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]  # (V, (n-1) m)
    return model.eval()


def by_hand(context, direct: bool) -> list[float]:
    x = [float(w) for w in context]                   # the words' vectors are their ids here
    a = math.tanh(0.25 + 0.5 * x[0] - 1.0 * x[1])
    y = [0.0 + 1.0 * a, 0.5 + 2.0 * a, 1.0 - 1.0 * a]
    if direct:
        y = [y[0] + x[0], y[1] + x[1], y[2] + x[0] + x[1]]
    return y


@pytest.mark.ex4_2
@pytest.mark.parametrize("direct", [False, True], ids=["without direct connections", "with W x"])
def test_logits_by_hand(direct):
    contexts = np.array([[1, 2], [2, 1], [0, 0]])     # word order matters: [1, 2] is not [2, 1]
    logits, loss = tiny_nplm(direct)(contexts)
    assert loss is None, "without targets, forward returns (logits, None)"
    assert logits.shape == (3, 3), f"logits must be (batch, V) = (3, 3), got {logits.shape}"
    np.testing.assert_allclose(logits.data, [by_hand(c, direct) for c in contexts], rtol=1e-12,
                               err_msg="y = b + U tanh(d + H x) (+ W x), with x the context's vectors "
                                       "concatenated in order, oldest word first")


@pytest.mark.ex4_2
def test_loss_is_the_mean_cross_entropy():
    contexts, targets = np.array([[1, 2], [2, 1]]), np.array([2, 0])
    _, loss = tiny_nplm(direct=True)(contexts, targets)
    assert loss is not None, "with targets, forward must also return the loss"
    want = np.mean([-(y[t] - math.log(sum(math.exp(v) for v in y)))
                    for y, t in zip((by_hand(c, True) for c in contexts), targets)])
    assert loss.item() == pytest.approx(want, rel=1e-12), "the loss is the mean of -ln softmax(y)[target]"


@pytest.mark.ex4_2
def test_dropout_acts_on_the_hidden_layer_only_in_training():
    # With V = h, U = the identity and b = 0 the logits are the hidden layer itself, so each logit is
    # either dropped (0) or tanh(d + H x)_j scaled by 1 / (1 - p) (inverted dropout).
    h, p = 64, 0.5
    model = NPLM(NPLMConfig(vocab_size=h, context=2, n_embd=3, n_hidden=h, dropout=p), dtype=np.float64)
    model.U.weight.data[:] = np.eye(h)
    model.U.bias.data[:] = 0.0
    contexts = np.array([[1, 2], [3, 4]])
    model.eval()
    kept = model(contexts)[0].data
    np.testing.assert_array_equal(model(contexts)[0].data, kept, err_msg="in eval mode there is no dropout")
    x = model.C.weight.data[contexts].reshape(2, -1)
    np.testing.assert_allclose(kept, np.tanh(x @ model.H.weight.data.T + model.H.bias.data), rtol=1e-12,
                               err_msg="eval mode: the hidden layer is a = tanh(d + H x), unscaled")
    model.train()
    logits = model(contexts)[0].data
    dropped, scaled = np.isclose(logits, 0.0, atol=1e-15), np.isclose(logits, kept / (1 - p), rtol=1e-12)
    assert (dropped | scaled).all(), ("in training, dropout acts on a = tanh(d + H x): each unit is 0 or "
                                      "a_j / (1 - p) -- not on x, not before the tanh, not on the logits")
    assert dropped.any() and scaled.any(), "in training mode some hidden units must be dropped, and some kept"


# ---------------------------------------------------------------------------------------------
# Exercise 4.3: ln(lam P_a + (1 - lam) P_b) in log space (metrics.py, interpolate_logprobs)
# ---------------------------------------------------------------------------------------------

@pytest.mark.ex4_3
def test_mixture_by_hand():
    got = interpolate_logprobs(np.log([0.2, 0.5]), np.log([0.6, 0.1]), 0.25)
    np.testing.assert_allclose(got, np.log([0.25 * 0.2 + 0.75 * 0.6, 0.25 * 0.5 + 0.75 * 0.1]), rtol=1e-12,
                               err_msg="lam weighs model a, 1 - lam model b")


@pytest.mark.ex4_3
@pytest.mark.parametrize("lam, which", [(0.0, "b"), (1.0, "a")])
def test_mixture_at_the_ends_is_one_model_exactly(lam, which):
    logp = {"a": np.log([0.2, 0.5]), "b": np.log([0.6, 0.1])}
    got = interpolate_logprobs(logp["a"], logp["b"], lam)
    np.testing.assert_array_equal(got, logp[which], err_msg=f"lam = {lam} must give model {which} unchanged")


@pytest.mark.ex4_3
def test_mixture_of_tiny_probabilities_stays_finite():
    # e^-1000 is 0 in float64: add in log space (np.logaddexp), do not exponentiate and take the log
    got = interpolate_logprobs(np.array([-1000.0]), np.array([-1001.0]), 0.5)
    assert np.isfinite(got).all(), f"got {got}: ln(0.5 e^-1000 + 0.5 e^-1001) must not underflow to -inf"
    assert got[0] == pytest.approx(-1000.0 + math.log(0.5 * (1.0 + math.exp(-1.0))), rel=1e-14)
