"""gradcheck itself: it passes correct gradients, and it fails wrong ones."""

import numpy as np
import pytest

from scratchlm.autograd import GradcheckError, Tensor, gradcheck


def square_with_wrong_gradient(x: Tensor, factor: float) -> Tensor:
    """x**2 whose backward claims factor*x instead of 2x."""
    def backward(g):
        x._accumulate(g * factor * x.data)
    return Tensor._make(x.data ** 2, (x,), backward, "bad_square")


def x():
    return Tensor(np.random.default_rng(0).normal(size=(3, 2)), requires_grad=True)


def test_correct_gradient_passes_and_returns_the_error():
    err = gradcheck(lambda a: square_with_wrong_gradient(a, 2.0), [x()])
    assert 0.0 <= err <= 1e-6


@pytest.mark.parametrize("factor", [2.001, 2.0 + 1e-5, 0.0])
def test_wrong_gradient_fails(factor):
    with pytest.raises(GradcheckError, match=r"input 0 \(shape \(3, 2\)\)"):
        gradcheck(lambda a: square_with_wrong_gradient(a, factor), [x()])
    err = gradcheck(lambda a: square_with_wrong_gradient(a, factor), [x()], raise_on_failure=False)
    assert err > 1e-6


def test_inputs_are_checked_in_float64_and_left_untouched():
    a = Tensor(np.random.default_rng(0).normal(size=(4,)).astype(np.float32), requires_grad=True)
    before = a.data.copy()
    seen = []

    def fn(v):
        seen.append(v.dtype)
        return (v * v).sum()
    gradcheck(fn, [a])
    assert set(seen) == {np.dtype(np.float64)}
    np.testing.assert_array_equal(a.data, before)
    assert a.grad is None


def test_constants_are_not_checked():
    c = np.arange(6.0).reshape(3, 2)
    assert gradcheck(lambda a, c: a * c, [x(), c]) <= 1e-6


def test_nothing_to_check_is_an_error():
    with pytest.raises(ValueError, match="no input requires grad"):
        gradcheck(lambda a: a * 2, [Tensor(np.ones(3))])
