"""Tensor ops and the backward engine: every op gradchecked in float64, plus the engine's contracts."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

from scratchlm.autograd import Tensor, gradcheck, is_grad_enabled, no_grad

from autograd_helpers import check_op

TOL = 1e-6


def t(*shape, seed=0, low=-2.0, high=2.0, grad=True):
    return Tensor(np.random.default_rng(seed).uniform(low, high, size=shape), requires_grad=grad)


def pos(*shape, seed=0):
    """Positive entries, away from zero (for log, division, non-integer powers)."""
    return t(*shape, seed=seed, low=0.5, high=2.0)


# ---- gradcheck of every op --------------------------------------------------------------------

ELEMENTWISE = {
    "add": (lambda a, b: a + b, [t(3, 4), t(3, 4, seed=1)]),
    "sub": (lambda a, b: a - b, [t(3, 4), t(3, 4, seed=1)]),
    "mul": (lambda a, b: a * b, [t(3, 4), t(3, 4, seed=1)]),
    "div": (lambda a, b: a / b, [t(3, 4), pos(3, 4, seed=1)]),
    "pow_scalar": (lambda a: a ** 3, [t(3, 4)]),
    "pow_fractional": (lambda a: a ** 0.5, [pos(3, 4)]),
    "pow_tensor": (lambda a, b: a ** b, [pos(3, 4), t(3, 4, seed=1)]),
    "rpow": (lambda a: 2.0 ** a, [t(3, 4)]),
    "neg": (lambda a: -a, [t(3, 4)]),
    "radd_rsub_rmul_rdiv": (lambda a: (1.5 - a) * 2 + 3 / a + 1, [pos(3, 4)]),
    "exp": (lambda a: a.exp(), [t(3, 4)]),
    "log": (lambda a: a.log(), [pos(3, 4)]),
    "tanh": (lambda a: a.tanh(), [t(3, 4)]),
    "sigmoid": (lambda a: a.sigmoid(), [t(3, 4, low=-8, high=8)]),
    "relu": (lambda a: a.relu(), [t(3, 4)]),
}

REDUCTIONS = {
    "sum_all": (lambda a: a.sum(), [t(2, 3, 4)]),
    "sum_axis": (lambda a: a.sum(axis=1), [t(2, 3, 4)]),
    "sum_neg_axis_keepdims": (lambda a: a.sum(axis=-1, keepdims=True), [t(2, 3, 4)]),
    "sum_tuple_axis": (lambda a: a.sum(axis=(0, 2)), [t(2, 3, 4)]),
    "mean_all": (lambda a: a.mean(), [t(2, 3, 4)]),
    "mean_tuple_keepdims": (lambda a: a.mean(axis=(0, -1), keepdims=True), [t(2, 3, 4)]),
    "max_all": (lambda a: a.max(), [t(2, 3, 4)]),
    "max_axis": (lambda a: a.max(axis=-1), [t(2, 3, 4)]),
    "max_tuple_keepdims": (lambda a: a.max(axis=(0, 1), keepdims=True), [t(2, 3, 4)]),
}

SHAPES = {
    "reshape": (lambda a: a.reshape(4, 6), [t(2, 3, 4)]),
    "reshape_tuple": (lambda a: a.reshape((3, -1)), [t(2, 3, 4)]),
    "transpose_reverse": (lambda a: a.transpose(), [t(2, 3, 4)]),
    "transpose_axes": (lambda a: a.transpose(1, 2, 0), [t(2, 3, 4)]),
    "transpose_tuple": (lambda a: a.transpose((0, 2, 1)), [t(2, 3, 4)]),
    "T": (lambda a: a.T, [t(3, 4)]),
    "index_slices": (lambda a: a[1:, :, ::2], [t(3, 2, 4)]),
    "index_int_and_ellipsis": (lambda a: a[..., 1], [t(3, 2, 4)]),
    "index_newaxis": (lambda a: a[None, 0], [t(3, 2, 4)]),
    "index_repeated_rows": (lambda a: a[np.array([0, 2, 0, 0, -1])], [t(3, 2, 4)]),
    "index_2d_ids": (lambda a: a[np.array([[0, 0], [2, 1]])], [t(3, 4)]),
    "index_list": (lambda a: a[[1, 1, 2]], [t(3, 4)]),
    "index_tuple_of_arrays": (lambda a: a[np.array([0, 2, 0]), np.array([1, 1, 1])], [t(3, 4)]),
    "index_array_slice_array": (lambda a: a[[0, 2], :, [1, 1]], [t(3, 2, 4)]),
    "index_bool_mask": (lambda a: a[a.data > 0], [t(3, 4)]),
    "index_every_column_in_a_loop": (lambda a: sum(a[:, i] * (i + 1.0) for i in range(4)), [t(3, 4, 2)]),
    "index_overlapping_slices": (lambda a: a[1:] * a[:-1] + a[0], [t(4, 3)]),
    "index_of_a_shared_gradient": (lambda a: (lambda h: h * 2.0 + h[0] * h[:, :1])(a.exp()), [t(3, 4)]),
    "index_then_fancy_index": (lambda a: a[:, 1] + a[np.array([2, 0, 2]), 1], [t(3, 4)]),
}

MATMUL = {
    "2d": (lambda a, b: a @ b, [t(3, 4), t(4, 5, seed=1)]),
    "batched": (lambda a, b: a @ b, [t(2, 3, 4), t(2, 4, 5, seed=1)]),
    "broadcast_batch": (lambda a, b: a @ b, [t(2, 1, 3, 4), t(5, 4, 2, seed=1)]),
    "nd_times_matrix": (lambda a, b: a @ b, [t(2, 3, 4), t(4, 5, seed=1)]),
    "matrix_times_nd": (lambda a, b: a @ b, [t(3, 4), t(2, 4, 5, seed=1)]),
    "vec_mat": (lambda a, b: a @ b, [t(4), t(4, 5, seed=1)]),
    "mat_vec": (lambda a, b: a @ b, [t(3, 4), t(4, seed=1)]),
    "vec_vec": (lambda a, b: a @ b, [t(4), t(4, seed=1)]),
    "vec_batched": (lambda a, b: a @ b, [t(4), t(2, 4, 5, seed=1)]),
    "rmatmul_array": (lambda b: np.ones((2, 3)) @ b, [t(3, 4)]),
}

BROADCAST = {
    "(3,1,4)+(5,1)": (lambda a, b: a + b, [t(3, 1, 4), t(5, 1, seed=1)]),
    "(3,1,4)*(5,1)": (lambda a, b: a * b, [t(3, 1, 4), t(5, 1, seed=1)]),
    "(4,)/(3,1)": (lambda a, b: a / b, [t(4), pos(3, 1, seed=1)]),
    "(2,3)**(3,)": (lambda a, b: a ** b, [pos(2, 3), t(3, seed=1)]),
    "scalar_tensor": (lambda a, b: a * b - b, [t(3, 4), t(seed=1)]),
    "python_scalars": (lambda a: 2.0 * a + 1 - a / 4, [t(3, 4)]),
    "array_operand": (lambda a: a * np.arange(4.0) + np.ones((2, 1, 1)), [t(3, 4)]),
    "reused_input": (lambda a: a * a + a.exp() * a, [t(3, 4)]),
}

ALL = {f"{group}:{name}": case for group, cases in
       [("elementwise", ELEMENTWISE), ("reduce", REDUCTIONS), ("shape", SHAPES), ("matmul", MATMUL),
        ("broadcast", BROADCAST)] for name, case in cases.items()}


@pytest.mark.parametrize("name", list(ALL))
def test_gradcheck(name):
    fn, inputs = ALL[name]
    check_op(fn, inputs, tol=TOL)


@settings(max_examples=25, deadline=None)
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3), seed=st.integers(0, 99))
def test_gradcheck_random_broadcasting(shapes, seed):
    a, b = t(*shapes.input_shapes[0], seed=seed), pos(*shapes.input_shapes[1], seed=seed + 1)
    assert gradcheck(lambda a, b: (a * b + a / b - b).tanh(), [a, b], tol=TOL) <= TOL


def test_max_ties_share_the_gradient():
    x = Tensor(np.array([1.0, 3.0, 3.0, 2.0]), requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.5, 0.5, 0.0])


def test_unbroadcast_shapes():
    a, b = t(3, 1, 4), t(5, 1, seed=1)
    (a + b).backward(np.ones((3, 5, 4)))
    assert a.grad.shape == (3, 1, 4) and b.grad.shape == (5, 1)
    np.testing.assert_allclose(a.grad, 5.0)
    np.testing.assert_allclose(b.grad, 12.0)


# ---- engine contracts -------------------------------------------------------------------------

def test_backward_on_non_scalar_needs_grad():
    y = t(2, 3) * 2
    with pytest.raises(RuntimeError, match=r"\(2, 3\)"):
        y.backward()
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3,\)"):
        y.backward(np.ones(3))


def test_backward_without_graph_errors():
    with pytest.raises(RuntimeError, match="does not require grad"):
        (Tensor(np.ones(3)) * 2).sum().backward()


def test_matmul_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\) @ \(4, 5\)"):
        t(2, 3) @ t(4, 5)
    with pytest.raises(ValueError, match=r"\(2, 3, 4\) @ \(3, 4, 5\)"):
        t(2, 3, 4) @ t(3, 4, 5)


def test_gradients_accumulate_across_backward_calls():
    x = t(3)
    y = (x * x).sum()
    y.backward()
    first = x.grad.copy()
    np.testing.assert_allclose(first, 2 * x.data)
    y.backward()                                  # same graph again: intermediate grads start over
    np.testing.assert_allclose(x.grad, 2 * first)
    x.zero_grad()
    assert x.grad is None


def test_leaf_gradients_are_separate_arrays():
    a, b = t(3), t(3, seed=1)
    (a + b).sum().backward()                      # the add hands one array to both inputs
    a.grad *= 10                                  # e.g. gradient clipping, in place
    np.testing.assert_array_equal(b.grad, np.ones(3))


def test_intermediate_grads_are_dropped_unless_retained():
    x = t(3)
    h, k = x * 2, x * 3
    k.retain_grad()
    (h * k).sum().backward()
    assert h.grad is None
    np.testing.assert_allclose(k.grad, h.data)
    assert x.grad is not None


def test_requires_grad_iff_an_input_does():
    a, c = t(3), Tensor(np.ones(3))
    assert (a * c).requires_grad and not (c * c).requires_grad
    assert (c * c)._backward is None


def test_no_grad_builds_no_graph():
    x = t(3)
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        y = (x * 2).exp().sum()
    assert is_grad_enabled()
    assert not y.requires_grad and y._prev == () and y._backward is None
    with pytest.raises(ZeroDivisionError), no_grad():
        1 / 0
    assert is_grad_enabled()                      # restored after an exception


def test_deep_graph_backward_is_iterative():
    x = t(1)
    y = x
    for _ in range(20000):                        # far deeper than Python's recursion limit
        y = y * 1.0 + 0.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0])


def test_float32_is_kept_forward_and_backward():
    x = Tensor(np.random.default_rng(0).uniform(0.5, 2, (3, 4)).astype(np.float32), requires_grad=True)
    w = Tensor(np.ones((4, 2), np.float32), requires_grad=True)
    y = ((x * 0.5 + 1) / 3 - 2 ** x + x ** 2 + 1 / x).exp().log().tanh().sigmoid().relu()
    z = (y @ w).max(axis=0).mean() + y[np.array([0, 0])].sum() + y.T.reshape(-1)[::2].sum()
    assert y.dtype == np.float32 and z.dtype == np.float32
    z.backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32


def test_array_on_the_left_gives_a_tensor():
    x = t(3)
    for y in (np.ones(3) + x, np.ones(3) * x, np.ones(3) - x, np.ones(3) / x):
        assert isinstance(y, Tensor) and y.requires_grad


def test_attributes_and_helpers():
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert (x.shape, x.ndim, x.size, x.dtype, len(x)) == ((2, 3), 2, 6, np.float64, 2)
    assert x.sum().item() == 15.0 and x.numpy() is x.data
    d = x.detach()
    assert d.data is x.data and not d.requires_grad
    with pytest.raises(TypeError, match="floating"):
        Tensor(np.arange(3), requires_grad=True)


# ---- who owns a gradient array ------------------------------------------------------------------

def test_check_op_catches_two_gradients_sharing_one_array():
    def bad_add(a, b):                            # hands the one g it was given to both, as owned
        def backward(g):
            a._accumulate(g, owned=True)
            b._accumulate(g, owned=True)
        return Tensor._make(a.data + b.data, (a, b), backward, "bad_add")

    with pytest.raises(AssertionError, match=r"gradients of input [01] and input [01] share one array"):
        check_op(bad_add, [t(3), t(3, seed=1)])


def test_check_op_catches_a_gradient_written_into_a_forward_value():
    def bad_double(a):                            # reuses its output array for the gradient
        out = a.data * 2.0

        def backward(g):
            np.multiply(g, 2.0, out=out)
            a._accumulate(out, owned=True)
        return Tensor._make(out, (a,), backward, "bad_double")

    with pytest.raises(AssertionError, match=r"gradient of input 0 shares memory with the value of bad_double"):
        check_op(bad_double, [t(3)])


def test_slices_of_one_tensor_cost_linear_time(monkeypatch):
    """x[:, t] for every t: each slice's backward adds into its part of dL/dx in place, so T slices
    cost O(T) -- not O(T^2), as when each allocated a zero array the size of x (bench_indexing.py
    times it). Counted, not timed: how many arrays the size of x the backward allocates."""
    T = 64
    x = Tensor(np.ones((8, T, 4), np.float32), requires_grad=True)
    y = x[:, 0] * 1.0
    for i in range(1, T):
        y = y + x[:, i] * float(i + 1)
    full_size = []
    for name in ("zeros", "zeros_like", "empty", "empty_like", "array", "ones_like"):
        make = getattr(np, name)

        def counting(*args, _make=make, **kwargs):
            out = _make(*args, **kwargs)
            if getattr(out, "size", 0) == x.data.size:
                full_size.append(out)
            return out
        monkeypatch.setattr(np, name, counting)
    y.sum().backward()
    monkeypatch.undo()
    assert len(full_size) <= 2, f"{len(full_size)} arrays the size of x for {T} slices: O(T^2) work"
    np.testing.assert_array_equal(x.grad, np.broadcast_to(np.arange(1.0, T + 1)[None, :, None], x.shape))
