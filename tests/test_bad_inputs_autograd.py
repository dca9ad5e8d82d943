"""Bad inputs to the autograd functions and layers: each a clear error naming the value or shape at
fault, never a nan or a deep traceback (issue 12, item 7)."""

import numpy as np
import pytest

import scratchlm.autograd.functional as F
from scratchlm import nn
from scratchlm.autograd import Tensor


def logits(n=3, v=5):
    return Tensor(np.random.default_rng(0).normal(size=(n, v)).astype(np.float32), requires_grad=True)


# name: (call, exception type, regex the message must match: it names the value, field or shape)
CASES = {
    "cross_entropy_all_targets_ignored": (
        lambda: F.cross_entropy(logits(), np.array([-1, -1, -1]), ignore_index=-1),
        ValueError, r"all 3 targets are ignore_index=-1"),
    "cross_entropy_all_targets_ignored_custom_index": (
        lambda: F.cross_entropy(logits(2), np.array([-100, -100]), ignore_index=-100),
        ValueError, r"all 2 targets are ignore_index=-100"),
    "cross_entropy_no_rows": (
        lambda: F.cross_entropy(logits(0), np.zeros(0, np.int64)),
        ValueError, r"no targets \(N = 0\)"),
    "cross_entropy_target_out_of_range": (
        lambda: F.cross_entropy(logits(), np.array([0, 5, 1])),
        IndexError, r"target 5 at position \(1,\) is outside \[0, 5\)"),
    "linear_input_width": (
        lambda: F.linear(Tensor(np.ones((2, 3))), Tensor(np.ones((4, 5)))),
        ValueError, r"input \(2, 3\) and weight \(4, 5\)"),
    "linear_weight_not_a_matrix": (
        lambda: F.linear(Tensor(np.ones((2, 5))), Tensor(np.ones(5))),
        ValueError, r"weight must be \(out, in\).*weight \(5,\)"),
    "linear_bias_shape": (
        lambda: F.linear(Tensor(np.ones((2, 5))), Tensor(np.ones((4, 5))), Tensor(np.ones(5))),
        ValueError, r"bias must have shape \(4,\).*got \(5,\)"),
    "linear_integer_input": (
        lambda: F.linear(np.ones((2, 5), np.int64), Tensor(np.ones((4, 5)))),
        TypeError, r"linear needs a floating-point tensor, got dtype int64"),
    "Linear_layer_input_width": (
        lambda: nn.Linear(3, 4)(Tensor(np.ones((2, 5), np.float32))),
        ValueError, r"input \(2, 5\) and weight \(4, 3\)"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gets_a_clear_error(name):
    call, error, message = CASES[name]
    with pytest.raises(error, match=message):
        call()
