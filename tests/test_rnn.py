"""Chapter 8's recurrent models: the fused cell kernels against their NumPy twins, the fused time loops
against the Tensor-op twin and central differences, an LSTM and an RNN against torch.nn.LSTM /
torch.nn.RNN with the same weights, truncated BPTT through the shared training loop, the biLM and
ELMo's scalar mix."""

import math

import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

from autograd_helpers import check_op
from benchmark_modules import load_benchmark
from scratchlm.autograd import Tensor, gradcheck, no_grad
from scratchlm.data import stream_windows
from scratchlm.models import rnn_kernels as K
from scratchlm.models.rnn import (LSTM, RNN, BiLM, RecurrentLM, RNNConfig, ScalarMix, TruncatedBPTT,
                                  ZarembaSchedule, blank_logprobs, lstm_recurrence, recurrence_ref,
                                  rnn_recurrence)
from scratchlm.optim import SGD
from scratchlm.rng import manual_seed
from scratchlm.train import evaluate, train

# ---- kernels -----------------------------------------------------------------------------------


def _kernel_args(rng, B, H, dtype, scale=2.0):
    """A maker of random (shape) arrays of `dtype`."""
    return lambda *shape: (scale * rng.standard_normal(shape)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,H", [(1, 1), (3, 5), (20, 200)])
def test_lstm_kernels_match_numpy_twins(dtype, B, H):
    rng = np.random.default_rng(B * 1000 + H)
    n = _kernel_args(rng, B, H, dtype)
    xp, hh, c_prev = n(B, 4 * H), n(B, 4 * H), n(B, H)
    xp[0, 0], hh[0, 0] = 200.0, 0.0            # saturated gates: no overflow, sigma = 1
    if H > 1:
        xp[0, 1], hh[0, 1] = -200.0, 0.0       # sigma = 0
    outs = {name: [n(*shape), n(*shape)] for name, shape in
            (("gates", (B, 4 * H)), ("c", (B, H)), ("tanh_c", (B, H)), ("h", (B, H)))}
    K.lstm_cell_forward(xp, hh, c_prev, *(o[0] for o in outs.values()))
    K.lstm_cell_forward_ref(xp, hh, c_prev, *(o[1] for o in outs.values()))
    tol = 2e-6 if dtype == np.float32 else 1e-14
    for name, (got, want) in outs.items():
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol, err_msg=name)
    gates, tanh_c = outs["gates"][1], outs["tanh_c"][1]
    dh_out, dh_next, dc_out, dc_next = n(B, H), n(B, H), n(B, H), n(B, H)
    got, want = [n(B, 4 * H), n(B, H)], [n(B, 4 * H), n(B, H)]
    K.lstm_cell_backward(gates, c_prev, tanh_c, dh_out, dh_next, dc_out, dc_next, *got)
    K.lstm_cell_backward_ref(gates, c_prev, tanh_c, dh_out, dh_next, dc_out, dc_next, *want)
    for g, w, name in zip(got, want, ("dgates", "dc_prev")):
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol * 10, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,H", [(1, 1), (4, 7), (20, 200)])
def test_rnn_kernels_match_numpy_twins(dtype, B, H):
    rng = np.random.default_rng(B + H)
    n = _kernel_args(rng, B, H, dtype)
    xp, hh = n(B, H), n(B, H)
    xp[0, 0] = 100.0
    got, want = n(B, H), n(B, H)
    K.rnn_cell_forward(xp, hh, got)
    K.rnn_cell_forward_ref(xp, hh, want)
    tol = 2e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    dh_out, dh_next = n(B, H), n(B, H)
    got_d, want_d = n(B, H), n(B, H)
    K.rnn_cell_backward(want, dh_out, dh_next, got_d)
    K.rnn_cell_backward_ref(want, dh_out, dh_next, want_d)
    np.testing.assert_allclose(got_d, want_d, rtol=tol, atol=tol)


def test_every_kernel_has_a_ref_twin():
    kernels = [name for name, f in vars(K).items() if isinstance(f, CPUDispatcher) and not name.startswith("_")]
    assert sorted(kernels) == ["lstm_cell_backward", "lstm_cell_forward", "rnn_cell_backward", "rnn_cell_forward"]
    assert all(callable(getattr(K, name + "_ref", None)) for name in kernels)


def test_float32_gates_are_accurate_over_their_range():
    x = np.linspace(-30, 30, 20001).astype(np.float32)[None, :]
    zeros = np.zeros_like(x)
    h = np.empty_like(x)
    K.rnn_cell_forward(x, zeros, h)                              # tanh through e^(-2|x|)
    np.testing.assert_allclose(h, np.tanh(x.astype(np.float64)), rtol=0, atol=2e-7)
    assert np.all(np.abs(h) <= 1) and h[0, 0] == -1 and h[0, -1] == 1


# ---- the fused time loop -----------------------------------------------------------------------

def _loop_inputs(rng, B, T, H, lstm, dtype=np.float64):
    G = 4 * H if lstm else H
    xp = Tensor(rng.standard_normal((B, T, G)).astype(dtype), requires_grad=True)
    W = Tensor((0.5 * rng.standard_normal((G, H))).astype(dtype), requires_grad=True)
    h0 = Tensor(rng.standard_normal((B, H)).astype(dtype), requires_grad=True)
    c0 = Tensor(rng.standard_normal((B, H)).astype(dtype), requires_grad=True) if lstm else None
    return [t for t in (xp, W, h0, c0) if t is not None]


@pytest.mark.parametrize("lstm", [True, False], ids=["lstm", "rnn"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_loop_matches_its_tensor_op_twin(lstm, dtype):
    rng = np.random.default_rng(1)
    fused_in = _loop_inputs(rng, 3, 6, 5, lstm, dtype)
    twin_in = [Tensor(t.data.copy(), requires_grad=True) for t in fused_in]
    fused = (lstm_recurrence if lstm else rnn_recurrence)(*fused_in)
    twin, hs = recurrence_ref(*twin_in)
    assert fused.shape == twin.shape == (3, 6, 10 if lstm else 5) and len(hs) == 6
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(fused.data, twin.data, rtol=tol, atol=tol)
    w = rng.standard_normal(fused.shape).astype(dtype)
    fused.backward(w)
    twin.backward(w)
    for a, b, name in zip(fused_in, twin_in, ("xp", "weight_hh", "h0", "c0")):
        np.testing.assert_allclose(a.grad, b.grad, rtol=tol * 10, atol=tol * 10, err_msg=name)
        assert a.grad.dtype == dtype


@pytest.mark.parametrize("lstm", [True, False], ids=["lstm", "rnn"])
def test_fused_loop_passes_gradcheck_and_owns_its_gradients(lstm):
    rng = np.random.default_rng(2)
    fn = lstm_recurrence if lstm else rnn_recurrence
    assert check_op(fn, _loop_inputs(rng, 2, 4, 3, lstm)) < 1e-6


def test_fused_loop_refuses_mismatched_shapes():
    rng = np.random.default_rng(0)
    xp, W, h0, c0 = _loop_inputs(rng, 2, 3, 4, True)
    with pytest.raises(ValueError, match=r"lstm_recurrence: expected xp \(B, T, 4H\).*got xp \(2, 3, 16\), "
                                         r"weight_hh \(16, 4\), h0 \(3, 4\)"):
        lstm_recurrence(xp, W, h0.data[:1].repeat(3, 0), c0)


# ---- layers against PyTorch --------------------------------------------------------------------

def _torch_twin(torch, layer):
    cls = torch.nn.LSTM if layer.cell == "lstm" else torch.nn.RNN
    twin = cls(layer.input_size, layer.hidden_size, layer.num_layers, batch_first=True).double()
    with torch.no_grad():
        for name, p in twin.named_parameters():
            p.copy_(torch.from_numpy(getattr(layer, name).data))
    return twin


@pytest.mark.parametrize("cls", [LSTM, RNN])
def test_layer_matches_pytorch_in_outputs_final_state_and_every_gradient(cls):
    torch = pytest.importorskip("torch")
    manual_seed(3)
    layer = cls(4, 6, num_layers=2, dtype=np.float64)
    assert [n for n, _ in layer.named_parameters()] == [
        f"{w}_l{k}" for k in range(2) for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    twin = _torch_twin(torch, layer)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 7, 4))
    state = tuple(rng.standard_normal((2, 3, 6)) for _ in range(2 if cls is LSTM else 1))
    w_out, w_h = rng.standard_normal((3, 7, 6)), rng.standard_normal((2, 3, 6))
    w_c = rng.standard_normal((2, 3, 6))

    xs = Tensor(x, requires_grad=True)
    out, final = layer(xs, state)
    loss = (out * w_out).sum() + (final[0] * w_h).sum() + ((final[1] * w_c).sum() if cls is LSTM else 0.0)
    loss.backward()

    xt = torch.tensor(x, requires_grad=True)
    t_state = tuple(torch.from_numpy(s) for s in state)
    t_out, t_final = twin(xt, t_state if cls is LSTM else t_state[0])
    t_final = t_final if cls is LSTM else (t_final,)
    t_loss = (t_out * torch.from_numpy(w_out)).sum() + (t_final[0] * torch.from_numpy(w_h)).sum()
    if cls is LSTM:
        t_loss = t_loss + (t_final[1] * torch.from_numpy(w_c)).sum()
    t_loss.backward()

    def close(a, b, what):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9, err_msg=what)
    close(out.data, t_out.detach().numpy(), "outputs")
    for s, t, name in zip(final, t_final, ("h_n", "c_n")):
        close(s.data, t.detach().numpy(), name)
    close(xs.grad, xt.grad.numpy(), "input gradient")
    for name, p in twin.named_parameters():
        close(getattr(layer, name).grad, p.grad.numpy(), name)


@pytest.mark.parametrize("cell", ["lstm", "tanh"])
def test_language_model_passes_gradcheck(cell):
    manual_seed(5)
    config = RNNConfig(vocab_size=5, n_embd=3, n_hidden=3, n_layer=2, cell=cell, init_range=0.5)
    model = RecurrentLM(config, dtype=np.float64)
    idx = np.array([[1, 2, 3, 0], [4, 4, 1, 2]])
    y = np.array([[2, 3, 0, 4], [4, 1, 2, -1]])
    names = [name for name, _ in model.named_parameters()]

    def loss_of(*tensors):
        for name, t in zip(names, tensors):
            *path, attr = name.split(".")
            module = model
            for part in path:
                module = getattr(module, part)
            object.__setattr__(module, attr, t)
        return model(idx, y)[1]
    assert gradcheck(loss_of, model.parameters()) < 1e-6


def test_fused_and_twin_models_agree():
    manual_seed(6)
    model = RecurrentLM(RNNConfig(vocab_size=11, n_embd=4, n_hidden=5, n_layer=2), dtype=np.float64)
    idx = np.random.default_rng(0).integers(0, 11, (2, 9))
    logits, _ = model(idx)
    model.rnn.fused = False
    twin, _ = model(idx)
    np.testing.assert_allclose(logits.data, twin.data, rtol=1e-12, atol=1e-12)


def test_lm_refuses_bad_inputs_by_name():
    model = RecurrentLM(RNNConfig(vocab_size=5, n_embd=2, n_hidden=2, n_layer=1))
    with pytest.raises(ValueError, match=r"idx must be token ids of shape \(B, T\).*add a batch axis"):
        model(np.array([1, 2]))
    with pytest.raises(ValueError, match=r"state must be 2 array\(s\) of shape \(n_layer, B, H\) = \(1, 1, 2\)"):
        model.unroll(np.array([[1, 2]]), (np.zeros((1, 1, 2)),))
    with pytest.raises(ValueError, match="RNNConfig: cell must be one of"):
        RNNConfig(cell="gru")
    with pytest.raises(ValueError, match="RNNConfig: n_layer must be an integer >= 1, got 0"):
        RNNConfig(n_layer=0)


# ---- truncated BPTT in the shared loop ---------------------------------------------------------

def test_stream_evaluation_with_carried_state_equals_one_pass_over_the_stream():
    """Batch 1, windows of 4 with the state carried: the same loss as one unroll over the whole stream."""
    manual_seed(7)
    model = RecurrentLM(RNNConfig(vocab_size=9, n_embd=4, n_hidden=4, n_layer=2), dtype=np.float64)
    ids = np.random.default_rng(1).integers(0, 9, 23)
    carried = evaluate(model, stream_windows(ids, 1, 4, "test"), TruncatedBPTT())
    with no_grad():
        _, whole = model(ids[None, :-1], ids[None, 1:])
    assert carried == pytest.approx(whole.item(), rel=1e-12)


def test_training_with_truncated_bptt_through_the_shared_loop_learns_a_sequence():
    """A repeating sequence longer than one window: only a carried state can tell where it is."""
    manual_seed(8)
    model = RecurrentLM(RNNConfig(vocab_size=6, n_embd=8, n_hidden=16, n_layer=1))
    pattern = np.array([0, 1, 2, 3, 4, 5, 0, 2, 4, 1, 3, 5])
    ids = np.tile(pattern, 60)
    windows = stream_windows(ids, 4, 5, "train")
    valid = stream_windows(ids[:200], 1, 5, "valid")
    config = ZarembaSchedule(max_iters=10 * len(windows), learning_rate=2.0, grad_clip=1.0, decay_after=6,
                             steps_per_epoch=len(windows), eval_interval=5 * len(windows), eval_iters=1,
                             lr_decay_iters=10 * len(windows))
    order = iter(range(10 ** 9))
    lines = []
    history = train(model, SGD(model.parameters(), lr=2.0), lambda rng: windows[next(order) % len(windows)],
                    config, eval_batches={"valid": valid}, loss_fn=TruncatedBPTT(), log=lines.append)
    assert len(lines) == 3 and history["step"] == [0, 5 * len(windows), 10 * len(windows)]
    assert history["valid"][0] > 1.5 and history["valid"][-1] < 0.4   # ln 6 = 1.79 -> pattern learned


def test_zaremba_schedule_halves_after_the_fourth_epoch():
    s = ZarembaSchedule(steps_per_epoch=10, max_iters=100, lr_decay_iters=100)
    assert [s.lr(step) for step in (0, 39, 40, 50, 69)] == [20.0, 20.0, 10.0, 5.0, 2.5]
    with pytest.raises(ValueError, match="ZarembaSchedule: decay must be in"):
        ZarembaSchedule(decay=0.0, max_iters=10, lr_decay_iters=10)


# ---- the biLM and ELMo ------------------------------------------------------------------------

def test_bilm_shares_embedding_and_softmax_and_trains_both_directions():
    manual_seed(9)
    bilm = BiLM(RNNConfig(vocab_size=7, n_embd=4, n_hidden=4, n_layer=2), dtype=np.float64)
    assert bilm.forward_lm.wte is bilm.backward_lm.wte and bilm.forward_lm.head is bilm.backward_lm.head
    names = [n for n, _ in bilm.named_parameters()]
    assert sum(n.endswith("wte.weight") for n in names) == 1 and sum("head" in n for n in names) == 2
    ids = np.random.default_rng(2).integers(0, 7, 41)
    fwd, bwd = stream_windows(ids, 2, 5, "f"), stream_windows(ids[::-1].copy(), 2, 5, "b")
    tbptt = TruncatedBPTT()
    loss, n = tbptt.bidirectional(bilm, (fwd[0], bwd[0]))
    single = TruncatedBPTT()
    lf, nf = single(bilm.forward_lm, fwd[0])
    lb, nb = single(bilm.backward_lm, bwd[0])
    assert n == nf + nb and loss.item() == pytest.approx((lf.item() * nf + lb.item() * nb) / n, rel=1e-12)
    loss.backward()
    assert all(p.grad is not None and np.abs(p.grad).sum() > 0 for p in bilm.parameters())


def test_elmo_layers_of_a_stream_match_the_batch_forward():
    manual_seed(10)
    bilm = BiLM(RNNConfig(vocab_size=7, n_embd=4, n_hidden=4, n_layer=2), dtype=np.float64)
    ids = np.random.default_rng(3).integers(0, 7, 13)
    layers = bilm(ids[None])
    stream = bilm.stream_layers(ids, bptt=5)
    assert len(layers) == len(stream) == 3
    for a, b in zip(layers, stream):
        assert a.shape == (1, 13, 8)
        np.testing.assert_allclose(a.data[0], b, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(stream[0][:, :4], stream[0][:, 4:])   # layer 0: the embedding twice


def test_blank_logprobs_forward_part_is_the_stream_perplexity():
    manual_seed(11)
    bilm = BiLM(RNNConfig(vocab_size=8, n_embd=4, n_hidden=4, n_layer=1), dtype=np.float64)
    ids = np.random.default_rng(4).integers(1, 8, 30)
    out = blank_logprobs(bilm, ids, 0, np.full(8, -np.log(8.0)), bptt=7, chunk=8)
    stream = np.concatenate([[0], ids])
    fwd = evaluate(bilm.forward_lm, stream_windows(stream, 1, 7, "f"), TruncatedBPTT())
    bwd = evaluate(bilm.backward_lm, stream_windows(np.concatenate([[0], ids[::-1]]), 1, 7, "b"), TruncatedBPTT())
    assert -out["forward"].mean() == pytest.approx(fwd, rel=1e-6)      # float32 prior: the rest follows it
    assert -out["backward"].mean() == pytest.approx(bwd, rel=1e-6)
    with pytest.raises(ValueError, match="blank_logprobs: log_prior must be 8 finite log-probabilities"):
        blank_logprobs(bilm, ids, 0, np.array([0.0] + [-np.inf] * 7))    # ln 0: unseen words need smoothing


def test_scalar_mix_is_a_softmax_weighted_sum_scaled_by_gamma():
    mix = ScalarMix(3, dtype=np.float64)
    layers = [np.full((2, 4), v) for v in (1.0, 2.0, 6.0)]
    np.testing.assert_allclose(mix(layers).data, 3.0)                        # equal weights: the mean
    mix.weights.data[:] = [0.0, math.log(2.0), math.log(5.0)]                 # s = 1/8, 2/8, 5/8
    mix.gamma.data[:] = 2.0
    np.testing.assert_allclose(mix(layers).data, 2.0 * (1 + 4 + 30) / 8)
    rng = np.random.default_rng(5)
    tensors = [Tensor(rng.standard_normal((2, 3)), requires_grad=True) for _ in range(3)]
    assert gradcheck(lambda w, g, *ls: _mix_with(w, g, ls), [Tensor(rng.standard_normal(3), requires_grad=True),
                                                            Tensor(np.array([1.5]), requires_grad=True), *tensors]) < 1e-6
    with pytest.raises(ValueError, match="ScalarMix: built for 3 layers, got 2"):
        mix(layers[:2])


def _mix_with(weights, gamma, layers):
    mix = ScalarMix(len(layers), dtype=np.float64)
    object.__setattr__(mix, "weights", weights)
    object.__setattr__(mix, "gamma", gamma)
    return mix(list(layers))


# ---- the benchmark's PyTorch twin ------------------------------------------------------------

def test_benchmark_twin_gives_the_same_loss_and_gradients():
    torch = pytest.importorskip("torch")
    bench = load_benchmark("bench_rnn")
    manual_seed(12)
    model = RecurrentLM(RNNConfig(vocab_size=13, n_embd=5, n_hidden=6, n_layer=2), dtype=np.float64)
    twin = bench.TorchLSTMLM.from_scratchlm(model).double()
    rng = np.random.default_rng(6)
    x, y = rng.integers(0, 13, (3, 4)), rng.integers(0, 13, (3, 4))
    state = tuple(rng.standard_normal((2, 3, 6)) for _ in range(2))
    _, loss, new_state = model.unroll(x, state, y)
    loss.backward()
    t_loss, t_state = twin(torch.from_numpy(x), torch.from_numpy(y), tuple(torch.from_numpy(s) for s in state))
    t_loss.backward()
    assert loss.item() == pytest.approx(t_loss.item(), rel=1e-12)
    for s, t in zip(new_state, t_state):
        np.testing.assert_allclose(s.data, t.detach().numpy(), rtol=1e-10)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, twin.grad_of(name).numpy(), rtol=1e-8, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("args, message", [
    ((np.arange(10), 0, 2), "stream_windows: batch_size must be an integer >= 1, got 0"),
    ((np.arange(10), 2, 2.5), "stream_windows: bptt must be an integer >= 1, got 2.5"),
    ((np.arange(10).reshape(2, 5), 1, 2), r"stream_windows: ids must be a 1-D array of integer ids, got shape \(2, 5\)"),
    ((np.arange(10.0), 1, 2), "stream_windows: ids must be a 1-D array of integer ids, got shape .* dtype float64"),
    ((np.arange(5), 3, 2), r"stream_windows: 5 ids make streams of 1 ids for batch_size=3; each stream needs at least 2"),
])
def test_stream_windows_name_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        stream_windows(*args)


def test_truncated_bptt_refuses_windows_out_of_order():
    model = RecurrentLM(RNNConfig(vocab_size=5, n_embd=2, n_hidden=2, n_layer=1))
    second = stream_windows(np.arange(5), 1, 2, "valid")[1]
    with pytest.raises(ValueError, match="a window of stream 'valid' that is not its first came before any state"):
        TruncatedBPTT()(model, second)
