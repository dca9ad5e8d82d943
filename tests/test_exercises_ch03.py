"""Exercises of Chapter 3 (automatic differentiation), one group of tests per exercise, each marked exN_M.

Run one exercise with `python -m pytest -m ex3_3 tests/test_exercises_ch03.py`. Each test checks one
piece on matrices small enough to multiply on paper, against numbers worked out by hand, so that it
fails only on its own exercise. The tests of an op's backward run that op's closure alone
(`run_backward`), not `backward()`'s walk over the whole graph, and gradcheck (exercise 3.4) is
tried on ops whose backward is not an exercise. One exception says so: the matrix product with
broadcast batch dimensions (3.3) needs unbroadcast (3.2) to work too.
"""

import math

import numpy as np
import pytest

from scratchlm.autograd import GradcheckError, Tensor, gradcheck, kernels, unbroadcast


def leaf(values) -> Tensor:
    return Tensor(np.array(values, dtype=np.float64), requires_grad=True)


def const(values) -> Tensor:
    return Tensor(np.array(values, dtype=np.float64))


def run_backward(out: Tensor, g) -> None:
    """Run the backward closure of the op that made `out` with dL/dout = g: it adds dL/dinput
    into the .grad of each input that requires grad (what backward() does for every node)."""
    assert out._backward is not None, "the op kept no backward closure: does an input require grad?"
    out._backward(np.array(g, dtype=out.dtype))


def assert_grad(t: Tensor, want, what: str) -> None:
    assert t.grad is not None, f"{what}: .grad is still None; add the gradient into it with ._accumulate(...)"
    assert t.grad.shape == t.shape, f"{what}: .grad has shape {t.grad.shape}, but {what} has shape {t.shape}"
    np.testing.assert_allclose(t.grad, want, rtol=1e-12, atol=1e-12, err_msg=f"wrong gradient for {what}")


# ---------------------------------------------------------------------------------------------
# Exercise 3.1: the backward of a * b (Tensor.__mul__)
# ---------------------------------------------------------------------------------------------

@pytest.mark.ex3_1
def test_product_rule_elementwise():
    a, b = leaf([2.0, -3.0]), leaf([5.0, 0.5])
    run_backward(a * b, [1.0, 10.0])
    assert_grad(a, [5.0, 5.0], "a")      # dL/da = g * b
    assert_grad(b, [2.0, -30.0], "b")    # dL/db = g * a


@pytest.mark.ex3_1
def test_product_rule_on_matrices():
    a, b = leaf([[1.0, 2.0], [3.0, 4.0]]), leaf([[0.5, -1.0], [2.0, 0.0]])
    run_backward(a * b, [[1.0, 1.0], [-1.0, 2.0]])
    assert_grad(a, [[0.5, -1.0], [-2.0, 0.0]], "a")
    assert_grad(b, [[1.0, 2.0], [-3.0, 8.0]], "b")


@pytest.mark.ex3_1
def test_product_gives_no_gradient_to_a_constant():
    a, c = leaf([2.0, -3.0]), const([5.0, 0.5])
    run_backward(a * c, [1.0, 1.0])
    assert_grad(a, [5.0, 0.5], "a")
    assert c.grad is None, ("an input that does not require grad (a constant) must get no .grad: "
                            "check b.requires_grad before accumulating")


@pytest.mark.ex3_1
def test_product_adds_into_existing_gradients():
    # x * x uses x twice: both contributions, g * x each, must be added, and to what .grad held.
    x = leaf([3.0, -1.0])
    x.grad = np.array([100.0, 100.0])
    run_backward(x * x, [1.0, 2.0])
    np.testing.assert_allclose(x.grad, [106.0, 96.0], err_msg=(
        "x.grad must become 100 + 2 * g * x: add into .grad with _accumulate instead of assigning it, "
        "once for each input"))


# ---------------------------------------------------------------------------------------------
# Exercise 3.2: summing a gradient over broadcast axes (unbroadcast)
# ---------------------------------------------------------------------------------------------
G23 = np.arange(6.0).reshape(2, 3)      # [[0, 1, 2], [3, 4, 5]]
G234 = np.arange(24.0).reshape(2, 3, 4)

UNBROADCAST = {  # name: (g, shape of the input, its gradient)
    "leading axis added, (2, 3) -> (3,)": (G23, (3,), [3.0, 5.0, 7.0]),
    "size-1 axis stretched, (2, 3) -> (1, 3)": (G23, (1, 3), [[3.0, 5.0, 7.0]]),
    "last axis stretched, (2, 3) -> (2, 1)": (G23, (2, 1), [[3.0], [12.0]]),
    "to a scalar, (2, 3) -> ()": (G23, (), 15.0),
    "both, (2, 3) -> (1, 1)": (G23, (1, 1), [[15.0]]),
    "both, (2, 3, 4) -> (3, 1)": (G234, (3, 1), [[60.0], [92.0], [124.0]]),
    "middle kept, (2, 3, 4) -> (1, 3, 1)": (G234, (1, 3, 1), [[[60.0], [92.0], [124.0]]]),
    "each element used 3 * 4 times, (3, 5, 4) -> (5, 1)": (np.ones((3, 5, 4)), (5, 1), np.full((5, 1), 12.0)),
}


@pytest.mark.ex3_2
@pytest.mark.parametrize("case", list(UNBROADCAST))
def test_unbroadcast_sums_over_added_and_stretched_axes(case):
    g, shape, want = UNBROADCAST[case]
    before = g.copy()
    got = unbroadcast(g, shape)
    assert np.shape(got) == shape, \
        f"{case}: unbroadcast must return an array of exactly the input's shape {shape}, got {np.shape(got)}"
    np.testing.assert_allclose(got, want, err_msg=f"{case}: wrong sums")
    np.testing.assert_array_equal(g, before, err_msg="unbroadcast must not modify g (others may hold it)")


@pytest.mark.ex3_2
def test_unbroadcast_keeps_float32():
    got = unbroadcast(np.ones((4, 3), dtype=np.float32), (3,))
    assert got.dtype == np.float32, f"a float32 gradient must stay float32, got {got.dtype}"
    np.testing.assert_array_equal(got, [4.0, 4.0, 4.0])


# ---------------------------------------------------------------------------------------------
# Exercise 3.3: the backward of the matrix product (Tensor.__matmul__)
# ---------------------------------------------------------------------------------------------
# A (2, 3) @ B (3, 2) with output gradient G (2, 2). By hand:
#   dL/dA = G B^T = [[1, 2, 3], [3, 4, 7]],   dL/dB = A^T G = [[13, 18], [17, 24], [21, 30]].
A = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
B = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
G = np.array([[1.0, 2.0], [3.0, 4.0]])
DA = np.array([[1.0, 2.0, 3.0], [3.0, 4.0, 7.0]])
DB = np.array([[13.0, 18.0], [17.0, 24.0], [21.0, 30.0]])


@pytest.mark.ex3_3
def test_matmul_backward_of_two_matrices():
    a, b = leaf(A), leaf(B)
    run_backward(a @ b, G)
    assert_grad(a, DA, "a")
    assert_grad(b, DB, "b")


@pytest.mark.ex3_3
def test_matmul_backward_to_the_weight_only():
    x, w = const(A), leaf(B)              # data times a weight: only the weight needs a gradient
    run_backward(x @ w, G)
    assert_grad(w, DB, "w")
    assert x.grad is None, "the constant left operand must get no .grad: check a.requires_grad first"


@pytest.mark.ex3_3
def test_matmul_backward_adds_both_uses_of_a_tensor():
    # x @ x: dL/dx = G x^T + x^T G = [[3, 7], [3, 7]] + [[4, 4], [6, 6]] for G all ones.
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    run_backward(x @ x, np.ones((2, 2)))
    assert_grad(x, [[7.0, 11.0], [9.0, 13.0]], "x (used on both sides; accumulate twice)")


@pytest.mark.ex3_3
def test_matmul_backward_with_vectors():
    # NumPy treats a vector on the left as a row (1, n) and on the right as a column (n, 1).
    m, v = leaf(A), leaf([1.0, 0.0, -1.0])          # (2, 3) @ (3,) -> (2,)
    run_backward(m @ v, [1.0, 2.0])
    assert_grad(m, [[1.0, 0.0, -1.0], [2.0, 0.0, -2.0]], "matrix in matrix @ vector")  # outer(g, v)
    assert_grad(v, [9.0, 12.0, 15.0], "vector in matrix @ vector")                       # A^T g

    u, m = leaf([1.0, -1.0]), leaf(A)               # (2,) @ (2, 3) -> (3,)
    run_backward(u @ m, [1.0, 0.0, 2.0])
    assert_grad(u, [7.0, 16.0], "vector in vector @ matrix")                             # A g
    assert_grad(m, [[1.0, 0.0, 2.0], [-1.0, 0.0, -2.0]], "matrix in vector @ matrix")  # outer(u, g)

    u, v = leaf([1.0, 2.0, 3.0]), leaf([4.0, 5.0, 6.0])  # (3,) @ (3,) -> a scalar
    run_backward(u @ v, 2.0)
    assert_grad(u, [8.0, 10.0, 12.0], "left vector in a dot product")
    assert_grad(v, [2.0, 4.0, 6.0], "right vector in a dot product")


@pytest.mark.ex3_3
def test_matmul_backward_of_a_batch_of_matrices():
    a, b = leaf([A, A]), leaf([B, 2 * B])   # (2, 2, 3) @ (2, 3, 2): one product per batch entry
    run_backward(a @ b, [G, G])
    assert_grad(a, [DA, 2 * DA], "a (batched)")
    assert_grad(b, [DB, DB], "b (batched)")


@pytest.mark.ex3_3
def test_matmul_backward_sums_a_shared_weight_over_the_batch():
    # X (2, 2, 3) @ W (3, 2): the same W multiplies every batch entry, so dL/dW is the sum of
    # X_k^T G_k over k: here DB + 2 DB.
    x, w = leaf([A, A]), leaf(B)
    run_backward(x @ w, [G, 2 * G])
    assert_grad(x, [DA, 2 * DA], "x (batch of inputs)")
    assert_grad(w, 3 * DB, "w (shared by the batch: sum its gradients over the batch entries)")


@pytest.mark.ex3_3
def test_matmul_backward_with_broadcast_batch_dims():
    # (2, 2, 3) @ (1, 3, 2): b's batch axis of size 1 is stretched to 2, so its gradient is summed
    # over that axis (unbroadcast, exercise 3.2, does the summing).
    a, b = leaf([A, A]), leaf([B])
    run_backward(a @ b, [G, 2 * G])
    assert_grad(a, [DA, 2 * DA], "a")
    assert_grad(b, [3 * DB], "b (batch axis broadcast: sum its gradient over it)")


# ---------------------------------------------------------------------------------------------
# Exercise 3.4: central differences inside gradcheck
# ---------------------------------------------------------------------------------------------

def cube(x: Tensor, slope: float = 3.0) -> Tensor:
    """x**3 as a hand-made op whose backward claims slope * x**2 (3 is right)."""
    def backward(g):
        x._accumulate(g * slope * x.data ** 2)
    return Tensor._make(x.data ** 3, (x,), backward, "cube")


@pytest.mark.ex3_4
def test_gradcheck_central_difference_of_a_cube():
    # ((x + e)^3 - (x - e)^3) / (2e) = 3x^2 + e^2 exactly, so at x = 1 (the worst element) the
    # relative error is e^2 / (3 + e^2). A one-sided difference would be off by about 3e instead.
    eps = 1e-3
    err = gradcheck(cube, [leaf([1.0, 2.0])], eps=eps)
    assert err == pytest.approx(eps ** 2 / (3 + eps ** 2), rel=1e-3), (
        f"error {err:.6g}, expected {eps ** 2 / (3 + eps ** 2):.6g}: numeric[i] should be "
        "sum(w * (fn(x + eps e_i) - fn(x - eps e_i))) / (2 eps), with the eps passed to gradcheck")


@pytest.mark.ex3_4
def test_gradcheck_undoes_each_nudge_and_shapes_the_estimate_like_x():
    # L = exp(x1 + x2 + x3): every dL/dx_i is exp(S); the central difference gives exp(S) sinh(e)/e,
    # a relative error of 1 - e / sinh(e). A nudge left in place would shift S for the next element.
    eps = 1e-2
    err = gradcheck(lambda x: x.sum().exp(), [leaf([0.3, -0.2, 0.1])], eps=eps, tol=1e-3)
    assert err == pytest.approx(1 - eps / math.sinh(eps), rel=1e-4), (
        f"error {err:.6g}, expected {1 - eps / math.sinh(eps):.6g}: put each element back to its "
        "old value after nudging it, before nudging the next")


@pytest.mark.ex3_4
def test_gradcheck_copes_with_outputs_that_are_views_of_the_input():
    # x.transpose() returns a view of x's array: copy fn's output before nudging x again.
    x = Tensor(np.random.default_rng(1).normal(size=(2, 3)), requires_grad=True)
    err = gradcheck(lambda x: x.transpose(), [x])
    assert err <= 1e-9, (f"transpose's gradient is exact, but gradcheck reports error {err:.3g}: "
                         "is fn's output a view of x that changed when x was nudged?")


@pytest.mark.ex3_4
def test_gradcheck_passes_a_correct_op_at_its_default_settings():
    x = Tensor(np.random.default_rng(2).normal(size=(3, 4)), requires_grad=True)
    assert gradcheck(lambda x: x.tanh(), [x]) <= 1e-8


@pytest.mark.ex3_4
@pytest.mark.parametrize("slope", [6.0, 3.001, 0.0])
def test_gradcheck_catches_a_wrong_gradient(slope):
    xs = [leaf([1.0, 2.0])]
    with pytest.raises(GradcheckError):
        gradcheck(lambda x: cube(x, slope), xs)
    err = gradcheck(lambda x: cube(x, slope), xs, raise_on_failure=False)
    want = abs(slope - 3.0) / max(slope, 3.0)       # the same at every element
    assert err == pytest.approx(want, rel=1e-4), \
        f"a backward claiming {slope} x^2 is off by {want:.6g} (relative error); gradcheck said {err:.6g}"


@pytest.mark.ex3_4
def test_gradcheck_estimates_each_input_by_nudging_that_input():
    # With the second input's gradient wrong, gradcheck must find the error there, not in the first.
    def fn(x, z, slope):
        return x.exp() + cube(z, slope)
    inputs = [leaf([0.5, -0.5]), leaf([1.0, 2.0])]
    assert gradcheck(lambda x, z: fn(x, z, 3.0), inputs) <= 1e-8
    with pytest.raises(GradcheckError, match=r"input 1 "):
        gradcheck(lambda x, z: fn(x, z, 4.0), inputs)


# ---------------------------------------------------------------------------------------------
# Exercise 3.5: the gradient of the cross-entropy (kernels.cross_entropy_backward_ref)
# ---------------------------------------------------------------------------------------------
IGNORE = -100


def ce_backward(logits, targets, scale, ignore_index=IGNORE):
    """Call cross_entropy_backward_ref as cross_entropy does, with each row's max and log-sum."""
    x = np.array(logits, dtype=np.float64)
    m = x.max(axis=1)
    log_sum = np.log(np.exp(x - m[:, None]).sum(axis=1))
    out = np.full_like(x, np.nan)
    kernels.cross_entropy_backward_ref(x, np.array(targets, dtype=np.int64), m, log_sum,
                                       np.array(scale, dtype=np.float64), ignore_index, out)
    return out


@pytest.mark.ex3_5
def test_cross_entropy_gradient_is_softmax_minus_onehot():
    # Row 0: softmax(log [1, 2, 5]) = [1, 2, 5] / 8, target 2. Row 1: uniform over 3, target 0, scale 1/2.
    out = ce_backward([np.log([1.0, 2.0, 5.0]), [0.0, 0.0, 0.0]], [2, 0], [1.0, 0.5])
    np.testing.assert_allclose(out, [[1 / 8, 2 / 8, 5 / 8 - 1], [(1 / 3 - 1) / 2, 1 / 6, 1 / 6]], rtol=1e-12,
                               err_msg="out[i] must be (softmax(logits[i]) - onehot(targets[i])) * scale[i]")


@pytest.mark.ex3_5
def test_cross_entropy_gradient_is_zero_on_ignored_rows():
    out = ce_backward([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]], [1, IGNORE], [1.0, 1.0])
    np.testing.assert_allclose(out[0], [1 / 3, -2 / 3, 1 / 3], rtol=1e-12)
    np.testing.assert_array_equal(out[1], 0.0, err_msg="a row whose target is ignore_index gets gradient 0")


@pytest.mark.ex3_5
def test_cross_entropy_gradient_with_huge_and_masked_logits():
    # e^1000 overflows: build softmax from row_max and log_sum. A -inf logit has probability 0.
    out = ce_backward([[1000.0, 1000.0 + np.log(3.0)], [0.0, -np.inf]], [0, 0], [1.0, 1.0])
    assert np.isfinite(out).all(), \
        "gradient has inf or nan: compute softmax as exp((logits - row_max) - log_sum), never exp(logits)"
    np.testing.assert_allclose(out, [[1 / 4 - 1, 3 / 4], [0.0, 0.0]], atol=1e-12)


@pytest.mark.ex3_5
def test_cross_entropy_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    logits, targets, scale = rng.normal(size=(4, 5)), np.array([0, 4, 2, 2]), rng.uniform(0.5, 2.0, size=4)
    out = ce_backward(logits, targets, scale)

    def loss(x):                         # scale_i * (logsumexp(x_i) - x_i[t_i]), summed over rows
        return float(np.sum(scale * (np.log(np.exp(x).sum(axis=1)) - x[np.arange(4), targets])))
    eps, numeric = 1e-6, np.empty_like(logits)
    for idx in np.ndindex(*logits.shape):
        e = np.zeros_like(logits)
        e[idx] = eps
        numeric[idx] = (loss(logits + e) - loss(logits - e)) / (2 * eps)
    np.testing.assert_allclose(out, numeric, rtol=1e-6, atol=1e-8,
                               err_msg="out is not the derivative of scale * cross-entropy by the logits")
