"""Every Numba kernel in scratchlm.autograd.kernels against its plain-NumPy twin, the numerics they
share (scratchlm.numerics), and the naming rule for twins across the library."""

import math
import zlib

import numpy as np
import pytest
from numba import njit

from scratchlm import numerics
from scratchlm.autograd import kernels as K

DTYPES = [np.float32, np.float64]
SHAPES = [(1, 1), (7, 13), (33, 257)]
IGNORE = -100


def _softmax_ref(x):
    out = np.empty_like(x)
    K.softmax_forward_ref(x, out)
    return out


def _log_softmax_ref(x):
    out = np.empty_like(x)
    K.log_softmax_forward_ref(x, out)
    return out


def logits(rng, shape, dtype, kind):
    """Rows of logits: ordinary, huge (+-1e4, where exp overflows without the max shift), or
    partly masked with -inf (as causal attention does; never a whole row)."""
    x = rng.normal(scale=5.0, size=shape)
    if kind == "huge":
        x = rng.choice([-1e4, 1e4], size=shape) + x
    if kind == "masked":
        x[rng.random(shape) < 0.3] = -np.inf
        x[:, 0] = rng.normal(size=shape[0])
    return x.astype(dtype)


def targets(rng, n, v):
    t = rng.integers(0, v, size=n)
    t[rng.random(n) < 0.25] = IGNORE
    return t


# Each case: (kernel name, inputs(rng, shape, dtype, kind) -> (args, outputs)). Outputs start as
# random numbers, so a kernel that forgets to write an element fails.
def _out(rng, *shapes_and_dtypes):
    return [rng.normal(size=s).astype(d) for s, d in shapes_and_dtypes]


CASES = {
    "softmax_forward": lambda rng, s, d, kind: ((logits(rng, s, d, kind),), _out(rng, (s, d))),
    "softmax_backward": lambda rng, s, d, kind: (
        (_softmax_ref(logits(rng, s, d, kind)), rng.normal(size=s).astype(d)), _out(rng, (s, d))),
    "log_softmax_forward": lambda rng, s, d, kind: ((logits(rng, s, d, kind),), _out(rng, (s, d))),
    "log_softmax_backward": lambda rng, s, d, kind: (
        (_log_softmax_ref(logits(rng, s, d, kind)), rng.normal(size=s).astype(d)), _out(rng, (s, d))),
    "cross_entropy_forward": lambda rng, s, d, kind: (
        (logits(rng, s, d, kind), targets(rng, *s), IGNORE), _out(rng, (s[0], d), (s[0], d), (s[0], d))),
    "cross_entropy_backward": lambda rng, s, d, kind: _ce_backward_inputs(rng, s, d, kind),
    "cross_entropy_forward_backward": lambda rng, s, d, kind: (
        (logits(rng, s, d, kind), targets(rng, *s), IGNORE, rng.uniform(0.1, 2.0, size=s[0]).astype(d)),
        _out(rng, (s[0], d), (s[0], d), (s[0], d), (s, d))),
    "layer_norm_forward": lambda rng, s, d, kind: (
        (_ln_x(rng, s, d, kind), rng.normal(size=s[1]).astype(d), rng.normal(size=s[1]).astype(d), 1e-5),
        _out(rng, (s, d), (s[0], d), (s[0], d))),
    "layer_norm_backward": lambda rng, s, d, kind: _ln_backward_inputs(rng, s, d, kind),
    "gelu_forward_exact": lambda rng, s, d, kind: ((_gelu_x(rng, s, d, kind), False), _out(rng, (s[0] * s[1], d))),
    "gelu_forward_tanh": lambda rng, s, d, kind: ((_gelu_x(rng, s, d, kind), True), _out(rng, (s[0] * s[1], d))),
    "gelu_forward_gate_exact": lambda rng, s, d, kind: (
        (_gelu_x(rng, s, d, kind), False), _out(rng, (s[0] * s[1], d), (s[0] * s[1], d))),
    "gelu_forward_gate_tanh": lambda rng, s, d, kind: (
        (_gelu_x(rng, s, d, kind), True), _out(rng, (s[0] * s[1], d), (s[0] * s[1], d))),
    "gelu_backward_exact": lambda rng, s, d, kind: _gelu_backward_inputs(rng, s, d, kind, False),
    "gelu_backward_tanh": lambda rng, s, d, kind: _gelu_backward_inputs(rng, s, d, kind, True),
    "rms_norm_forward": lambda rng, s, d, kind: (
        (_ln_x(rng, s, d, kind), rng.normal(size=s[1]).astype(d), 1e-5), _out(rng, (s, d), (s[0], d))),
    "rms_norm_backward": lambda rng, s, d, kind: _rms_backward_inputs(rng, s, d, kind),
    "swiglu_forward": lambda rng, s, d, kind: ((_gelu_x(rng, (s[0], 2 * s[1]), d, kind).reshape(s[0], -1),),
                                               _out(rng, (s, d))),
    "swiglu_backward": lambda rng, s, d, kind: (
        (_gelu_x(rng, (s[0], 2 * s[1]), d, kind).reshape(s[0], -1), rng.normal(size=s).astype(d)),
        _out(rng, ((s[0], 2 * s[1]), d))),
    "rope_forward": lambda rng, s, d, kind: _rope_inputs(rng, s, d, kind),
}


def _rms_backward_inputs(rng, s, d, kind):
    # One more column than the shape says: with C = 1, x / rms(x) = sign(x) and the exact gradient is
    # 0, which the twin's float32 sums happen to hit and the kernel's float64 sums miss by rounding.
    s = (s[0], s[1] + 1)
    x, w = _ln_x(rng, s, d, kind), rng.normal(size=s[1]).astype(d)
    y, rstd = np.empty(s, d), np.empty(s[0], d)
    K.rms_norm_forward_ref(x, w, 1e-5, y, rstd)
    return (x, w, rstd, rng.normal(size=s).astype(d)), _out(rng, (s, d), (s[1], d))


def _rope_inputs(rng, s, d, kind):
    """(2, 3, T, D) heads, D even, as a strided view of a wider array (the q of a packed qkv)."""
    T, D = s[0], 2 * max(1, s[1] // 2)
    scale = 1e3 if kind == "huge" else 1.0
    x = (rng.normal(scale=scale, size=(2, T, 3, 2 * D)).astype(d)).transpose(0, 2, 1, 3)[..., :D]
    angles = rng.uniform(-10, 10, size=(T, D // 2))
    return (x, np.cos(angles).astype(d), np.sin(angles).astype(d)), _out(rng, ((2, 3, T, D), d))


def _ce_backward_inputs(rng, s, d, kind):
    x, t = logits(rng, s, d, kind), targets(rng, *s)
    loss, row_max, log_sum = np.empty(s[0], d), np.empty(s[0], d), np.empty(s[0], d)
    K.cross_entropy_forward_ref(x, t, IGNORE, loss, row_max, log_sum)
    scale = rng.uniform(0.1, 2.0, size=s[0]).astype(d)
    return (x, t, row_max, log_sum, scale, IGNORE), _out(rng, (s, d))


def _ln_x(rng, s, d, kind):
    scale = 1e3 if kind == "huge" else 3.0            # large values with a large common offset
    return (rng.normal(scale=scale, size=s) + 10 * scale).astype(d)


def _ln_backward_inputs(rng, s, d, kind):
    x, w = _ln_x(rng, s, d, kind), rng.normal(size=s[1]).astype(d)
    y, mean, rstd = np.empty(s, d), np.empty(s[0], d), np.empty(s[0], d)
    K.layer_norm_forward_ref(x, w, np.zeros(s[1], d), 1e-5, y, mean, rstd)
    return (x, w, mean, rstd, rng.normal(size=s).astype(d)), _out(rng, (s, d), (s[1], d), (s[1], d))


def _gelu_x(rng, s, d, kind):
    x = rng.normal(scale=3.0, size=s[0] * s[1])
    if kind == "huge":
        x[::3] = rng.choice([-1e3, -30.0, 30.0, 1e3], size=x[::3].shape)
    return x.astype(d)


def _gelu_backward_inputs(rng, s, d, kind, tanh):
    """x, the gate the forward keeps (from the twin), the output gradient, tanh."""
    x = _gelu_x(rng, s, d, kind)
    y, gate = np.empty_like(x), np.empty_like(x)
    K.gelu_forward_gate_ref(x, tanh, y, gate)
    return (x, gate, rng.normal(size=x.size).astype(d), tanh), _out(rng, (x.size, d))


def _seed(*case) -> int:
    """A seed for a test case, the same in every process (hash() of a str is salted per process)."""
    return zlib.crc32(repr(case).encode())


def _kernel_pair(name):
    base = name.replace("_exact", "").replace("_tanh", "")
    return getattr(K, base), getattr(K, base + "_ref")


def _kinds(name):
    """-inf entries (masking) only make sense for the softmax family."""
    return ["normal", "huge", "masked"] if name.startswith(("softmax", "log_softmax", "cross")) else ["normal", "huge"]


@pytest.fixture(params=["one_thread", "all_threads"])
def threads(request, monkeypatch):
    """Run each kernel both ways: small inputs normally take the one-thread path."""
    if request.param == "all_threads":
        monkeypatch.setattr(K, "PARALLEL_MIN_SIZE", 0)
    return request.param


@pytest.mark.parametrize("name, kind", [(n, k) for n in CASES for k in _kinds(n)])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_kernel_matches_numpy_twin(name, kind, dtype, shape, threads):
    rng = np.random.default_rng(_seed(name, shape, kind))
    args, outs = CASES[name](rng, shape, dtype, kind)
    kernel, twin = _kernel_pair(name)
    got, want = [o.copy() for o in outs], [o.copy() for o in outs]
    kernel(*args, *got)
    twin(*args, *want)
    rtol = 2e-5 if dtype == np.float32 else 1e-10
    for g, w in zip(got, want):
        assert g.dtype == dtype
        finite = np.isfinite(w)
        np.testing.assert_array_equal(np.isfinite(g), finite)
        np.testing.assert_array_equal(g[~finite], w[~finite])   # same infinities in the same places
        scale = np.abs(w[finite]).max(initial=1e-30)             # cancellation: compare on w's scale
        np.testing.assert_allclose(g[finite], w[finite], rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("name, kind", [(n, k) for n in CASES for k in _kinds(n)])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_serial_and_parallel_compilations_give_the_same_bits(name, kind, dtype):
    """parallel_kernel runs small inputs through a serial compilation of the same loops: it must be
    the parallel kernel to the bit, or a model's results would depend on its batch size's threshold."""
    kernel = _kernel_pair(name)[0]
    if not hasattr(kernel, "serial"):
        pytest.skip(f"{name} is not a parallel kernel")
    for shape in SHAPES + [(40, 129)]:
        rng = np.random.default_rng(_seed(name, shape, kind, "bits"))
        args, outs = CASES[name](rng, shape, dtype, kind)
        serial, parallel = [o.copy() for o in outs], [o.copy() for o in outs]
        kernel.serial(*args, *serial)
        kernel.kernel(*args, *parallel)
        for a, b in zip(serial, parallel):
            assert a.tobytes() == b.tobytes(), (name, shape)


def test_cross_entropy_kernel_extreme_logits_and_ignored_rows():
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [5.0, 5.0, 5.0]], np.float32)
    t = np.array([0, 2, IGNORE])
    loss, row_max, log_sum = np.empty(3, np.float32), np.empty(3, np.float32), np.empty(3, np.float32)
    K.cross_entropy_forward(x, t, IGNORE, loss, row_max, log_sum)
    np.testing.assert_allclose(loss, [0.0, np.log(3), 0.0], atol=1e-6)
    dx = np.empty_like(x)
    K.cross_entropy_backward(x, t, row_max, log_sum, np.ones(3, np.float32), IGNORE, dx)
    np.testing.assert_allclose(dx, [[0, 0, 0], [1 / 3, 1 / 3, -2 / 3], [0, 0, 0]], atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_scatter_add_rows_adds_repeated_indices(dtype):
    rng = np.random.default_rng(0)
    idx = np.array([0, 3, 3, 1, 3, 0, 6], np.int64)
    src = rng.normal(size=(7, 5)).astype(dtype)
    start = rng.normal(size=(7, 5)).astype(dtype)
    got, want = start.copy(), start.copy()
    K.scatter_add_rows(idx, src, got)
    K.scatter_add_rows_ref(idx, src, want)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(got[3], start[3] + src[1] + src[2] + src[4], rtol=1e-6)
    np.testing.assert_array_equal(got[[2, 4, 5]], start[[2, 4, 5]])


@njit(cache=True)
def _exp32_array(x):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = numerics.exp32(x[i])
    return out


def test_exp32_accuracy_and_special_values():
    x = np.linspace(-87, 88, 200_001).astype(np.float32)
    want = np.exp(x.astype(np.float64))
    rel = np.abs(_exp32_array(x) - want) / want
    assert rel.max() < 2 * np.finfo(np.float32).eps            # within 2 ulp
    special = np.array([-np.inf, -1e4, -88.0, 0.0, 89.0, np.inf, np.nan], np.float32)
    got = _exp32_array(special)
    np.testing.assert_array_equal(got[:3], [0, 0, 0])
    assert got[3] == 1 and np.isinf(got[4]) and np.isinf(got[5]) and np.isnan(got[6])


@njit(cache=True)
def _erfc32_array(z):
    out = np.empty_like(z)
    for i in range(z.shape[0]):
        out[i] = numerics.erfc32(z[i])
    return out


def test_erfc32_accuracy():
    z = np.linspace(0, 9, 100_001).astype(np.float32)
    want = np.array([math.erfc(v) for v in z.astype(np.float64)])
    rel = np.abs(_erfc32_array(z) - want) / want
    assert rel[z <= 3].max() < 2e-6 and rel.max() < 2e-5
    assert _erfc32_array(np.array([0.0, 12.0, np.inf], np.float32)).tolist() == [1.0, 0.0, 0.0]


# ---- one name for every plain twin ------------------------------------------------------------

KERNEL_MODULES = ["scratchlm.autograd.kernels", "scratchlm.models.attention_kernels",
                  "scratchlm.models.attention_products", "scratchlm.models.rnn_kernels", "scratchlm.ngram.kernels"]


@pytest.mark.parametrize("module", KERNEL_MODULES)
def test_every_public_kernel_has_a_ref_twin(module):
    import importlib

    from numba.core.registry import CPUDispatcher

    mod = importlib.import_module(module)
    kernels = [name for name, f in vars(mod).items() if not name.startswith("_")
               and (isinstance(f, CPUDispatcher) or isinstance(getattr(f, "kernel", None), CPUDispatcher))
               and f.__module__ == module]
    assert kernels, f"{module} defines no kernels"
    missing = [name for name in kernels if not callable(getattr(mod, name + "_ref", None))]
    assert not missing, f"{module}: kernels without a plain twin named <kernel>_ref: {missing}"


def test_no_other_suffix_for_plain_twins():
    """Plain twins are `name_ref` everywhere (not `_numpy`, `_python` or `_py`)."""
    import importlib
    import pkgutil

    import scratchlm

    odd = []
    for info in pkgutil.walk_packages(scratchlm.__path__, "scratchlm."):
        if info.name in ("scratchlm.__main__",):
            continue
        mod = importlib.import_module(info.name)
        odd += [f"{info.name}.{name}" for name, f in vars(mod).items()
                if callable(f) and getattr(f, "__module__", None) == info.name
                and name.endswith(("_numpy", "_python", "_py"))]
    assert not odd, f"plain twins must be named <kernel>_ref: {odd}"


# ---- the row reductions: 8 lanes, vectorised, in the order the numerics docstring fixes -------------

def _lanes_in_order(terms, zero):
    """The reduction the helpers define, written out: lane k adds terms k, k+8, ... in turn, then the
    lanes in pairs, then the tail (the last n % 8 terms) one by one."""
    n = len(terms)
    full = n - n % 8
    lanes = [zero] * 8
    for j in range(full):
        lanes[j % 8] = lanes[j % 8] + terms[j]
    s = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
    for j in range(full, n):
        s = s + terms[j]
    return s


@njit(cache=True)
def _reductions(a, b, c, d):
    return (numerics.row_sum(a), numerics.row_dot(a, b), numerics.row_max(a), numerics.row_sum64(a),
            numerics.row_sq_dev64(a, 0.25), numerics.row_sq64(a), numerics.row_dot_dev_scaled64(a, b, c, d),
            numerics.row_dot_scaled64(a, b, d))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("n", [1, 7, 8, 9, 16, 31, 64, 129])
@pytest.mark.parametrize("strided", [False, True], ids=["contiguous", "strided"])
def test_row_reductions_add_in_the_documented_order(dtype, n, strided):
    rng = np.random.default_rng(n)
    a2, b2 = (rng.normal(scale=10, size=2 * n).astype(dtype) for _ in range(2))
    a2[rng.random(2 * n) < 0.1] = -np.inf if n > 1 else a2[0]
    a, b = (a2[::2], b2[::2]) if strided else (a2[:n], b2[:n])
    c, d = dtype(0.3), dtype(1.7)
    got = _reductions(a, b, c, d)
    zero = dtype(0)
    with np.errstate(invalid="ignore"):                         # -inf + inf = nan, in both
        want = _lanes_in_order(list(a), zero), _lanes_in_order([x * y for x, y in zip(a, b)], zero)
    np.testing.assert_array_equal(got[:2], want)                # the same bits (nan where nan)
    assert got[2] == a.max()
    finite = np.isfinite(a).all()
    if finite:      # the float64 sums: each term as the helper's docstring says, then in float64
        a64 = a.astype(np.float64)
        assert got[3] == _lanes_in_order(list(a64), 0.0)
        assert got[4] == _lanes_in_order(list((a64 - 0.25) ** 2), 0.0)
        assert got[5] == _lanes_in_order(list((a * a).astype(np.float64)), 0.0)
        assert got[6] == _lanes_in_order(list((a * (b - c) * d).astype(np.float64)), 0.0)
        assert got[7] == _lanes_in_order(list((a * (b * d)).astype(np.float64)), 0.0)


# ---- the fused Adam step ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("l2, decay", [(0.0, 1.0), (0.0, 0.999), (0.1, 1.0)], ids=["adam", "adamw", "adam_l2"])
def test_adam_update_gives_its_twins_bits(dtype, l2, decay):
    rng = np.random.default_rng(7)
    n = 1000
    p, g, m = (rng.normal(size=n).astype(dtype) for _ in range(3))
    v = rng.uniform(0, 2, size=n).astype(dtype)
    g[:5] = [0.0, -0.0, 1e-30, 1e18, -1e-7]
    f = np.dtype(dtype).type
    scalars = (f(l2), f(decay), f(0.9), f(1 - 0.9), f(0.99), f(1 - 0.99), f(np.sqrt(1 - 0.99 ** 3)), f(1e-8),
               f(1e-3 / (1 - 0.9 ** 3)))
    got, parallel, want = ([a.copy() for a in (p, g, m, v)] for _ in range(3))
    K.adam_update(*got, *scalars)                                # n is small: the serial compilation
    K.adam_update.kernel(*parallel, *scalars)
    K.adam_update_ref(*want, *scalars)
    for x, y, z in zip(got, parallel, want):
        np.testing.assert_array_equal(x, z)
        assert x.tobytes() == y.tobytes()                        # serial and parallel: the same bits
    assert not np.array_equal(got[0], p)                         # it did step


@pytest.mark.parametrize("tanh", [True, False], ids=["tanh", "exact"])
def test_gelu_forward_gate_gives_gelu_forwards_bits_and_the_gate(tanh):
    x = _gelu_x(np.random.default_rng(3), (50, 40), np.float32, "huge")
    y, y_gate, gate = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    K.gelu_forward(x, tanh, y)
    K.gelu_forward_gate(x, tanh, y_gate, gate)
    np.testing.assert_array_equal(y_gate, y)                     # training and inference: one output
    nonzero = x != 0
    np.testing.assert_allclose((y / np.where(nonzero, x, 1))[nonzero], gate[nonzero], rtol=1e-6)
