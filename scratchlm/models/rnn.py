"""Recurrent language models: Elman's RNN, the LSTM, and ELMo's bidirectional LM (Chapter 8).

A recurrent LM reads one token at a time and keeps everything it has read in a state vector, so
unlike the NPLM's fixed window (Chapter 4) its context has no edge. Per layer, with a_t the
pre-activations of the step,

    a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
    Elman RNN:  h_t = tanh(a_t)                                          (H)
    LSTM:       i, f, g, o = sigma(a_i), sigma(a_f), tanh(a_g), sigma(a_o)      (4H, PyTorch's order)
                c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)

and the LM is  embedding -> n_layer recurrent layers -> linear softmax head over the vocabulary.
The LSTM's cell c_t is updated additively: the gradient reaching c_{t-k} is the one reaching c_t
times the product of the k forget gates in between, where the RNN's is multiplied by k Jacobians
diag(1 - h^2) W_hh, which shrink it geometrically (Chapter 8.2 measures both).

Speed. x_t W_ih^T does not depend on the recurrence, so the input projections of all T steps are one
matrix product (F.linear over (B, T, in)); what is left per step is one product h_{t-1} W_hh^T and
a fused elementwise kernel for the gates (rnn_kernels.py). `lstm_recurrence` / `rnn_recurrence` are
the whole time loop as one graph node; their backward walks the steps in reverse (backpropagation
through time) and computes dW_hh as one product over all steps at the end. `recurrence_ref` is the
same loop in Tensor ops, cell by cell (`lstm_cell`, `rnn_cell`): the chapter shows it first, and
the tests check the fused ops against it, gradients included.

Layers follow torch.nn.LSTM / torch.nn.RNN (batch_first=True): parameters weight_ih_l{k} (gates*H,
in), weight_hh_l{k} (gates*H, H), bias_ih_l{k}, bias_hh_l{k}, initialised U(-1/sqrt(H), 1/sqrt(H));
state (h, c) or (h,) with h, c of shape (n_layer, B, H); dropout between layers. Weights copy
across by name.

Truncated backpropagation through time (Zaremba et al. 2014). The training stream is cut into B
parallel streams, walked T steps at a time (scratchlm.data.stream_windows). The state at the end of
one window starts the next, detached: the forward pass sees all the history, the backward pass
stops at the window's edge. `TruncatedBPTT` is the loss_fn that does this inside scratchlm.train's
loops, one state per stream, so evaluation carries its own. Evaluating a stream the same way with
B = 1 scores every token with all of its history: the literature's perplexity.

ELMo's biLM (Peters et al. 2018): a forward LM and a backward LM (which reads the stream reversed)
that share the token embedding and the softmax, trained on the sum of both log-likelihoods. The
ELMo representation of token t mixes the biLM's layers, layer 0 being the token's embedding (for
both directions) and layer j the two directions' states [h_fwd_j(t); h_bwd_j(t)] after reading t:

    ELMo_t = gamma * sum_j s_j [h_fwd_j(t); h_bwd_j(t)],    s = softmax(w)  (`ScalarMix`)

Both directions together also fill a blank: by Bayes' rule p(w_t | left, right) is proportional
to p_fwd(w_t | w_<t) p_bwd(w_t | w_>t) / p(w_t) when the two sides are independent given the word
(`blank_logprobs`), the bridge to BERT's masked LM (Chapter 9).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import scratchlm.autograd.functional as F
from scratchlm.autograd import Tensor, no_grad
from scratchlm.data import StreamWindow
from scratchlm.models import rnn_kernels as kernels
from scratchlm.nn import Dropout, Embedding, Linear, Module, Parameter, init
from scratchlm.train import TrainConfig

CELLS = {"lstm": 4, "tanh": 1}     # cell -> number of gate blocks of H in a_t


@dataclass
class RNNConfig:
    vocab_size: int = 10_000
    n_embd: int = 200          # word vectors
    n_hidden: int = 200        # H, per layer
    n_layer: int = 2
    cell: str = "lstm"         # "lstm", or "tanh" for Elman's RNN
    dropout: float = 0.0       # on the embeddings, between layers and before the head (Zaremba's places)
    init_range: float = 0.1    # every parameter ~ U(-init_range, init_range), as Zaremba et al.

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_embd", "n_hidden", "n_layer"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"RNNConfig: {name} must be an integer >= 1, got {value!r}")
        if self.cell not in CELLS:
            raise ValueError(f"RNNConfig: cell must be one of {sorted(CELLS)}, got {self.cell!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"RNNConfig: dropout must be in [0, 1), got {self.dropout!r}")
        if not self.init_range > 0:
            raise ValueError(f"RNNConfig: init_range must be > 0, got {self.init_range!r}")


# ---- one step, in Tensor ops -------------------------------------------------------------------

def lstm_cell(a: Tensor, c_prev: Tensor) -> tuple[Tensor, Tensor]:
    """One LSTM step from its pre-activations a = x W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh (B, 4H),
    blocks in PyTorch's order [i, f, g, o], and the previous cell c_prev (B, H): returns (h_t, c_t),
    each (B, H):

        i = sigma(a_i)   input gate: how much of the candidate to write
        f = sigma(a_f)   forget gate: how much of the old cell to keep
        g = tanh(a_g)    the candidate
        o = sigma(a_o)   output gate: how much of the cell to show
        c_t = f * c_{t-1} + i * g,    h_t = o * tanh(c_t)
    """
    # BEGIN SOLUTION 8.1: The LSTM cell, gate by gate (chapters/ch08_recurrent.py §8.3)
    H = c_prev.shape[-1]
    i = a[:, :H].sigmoid()
    f = a[:, H:2 * H].sigmoid()
    g = a[:, 2 * H:3 * H].tanh()
    o = a[:, 3 * H:].sigmoid()
    c = f * c_prev + i * g
    return o * c.tanh(), c
    # END SOLUTION


def rnn_cell(a: Tensor) -> Tensor:
    """One step of Elman's RNN: h_t = tanh(a), a = x W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh (B, H)."""
    return a.tanh()


def _tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x))


def recurrence_ref(xp, weight_hh, h0, c0=None) -> tuple[Tensor, list[Tensor]]:
    """The time loop in Tensor ops, one cell at a time: the twin of lstm_recurrence (c0 given) and
    rnn_recurrence (c0 None). Returns (out, hs): out as the fused op returns it, and hs, the list of
    the T hidden states h_1 .. h_T as graph nodes (Chapter 8.2 asks each for its gradient)."""
    xp, W, h = _tensor(xp), _tensor(weight_hh), _tensor(h0)
    c = None if c0 is None else _tensor(c0)
    steps, hs = [], []
    for t in range(xp.shape[1]):
        a = xp[:, t] + h @ W.T                     # (B, gates * H)
        if c is None:
            h = rnn_cell(a)
            steps.append(h)
        else:
            h, c = lstm_cell(a, c)
            steps.append(F.concatenate([h, c], axis=-1))
        hs.append(h)
    return F.stack(steps, axis=1), hs


# ---- the whole time loop as one node -----------------------------------------------------------

def _recurrence(xp, weight_hh, h0, c0) -> Tensor:
    """The fused time loop of an LSTM layer (c0 given) or a tanh-RNN layer (c0 None); see the
    public functions below for the contract."""
    xp, W, h0 = _tensor(xp), _tensor(weight_hh), _tensor(h0)
    c0 = None if c0 is None else _tensor(c0)
    lstm = c0 is not None
    B, T, G = xp.shape
    H = W.shape[1]
    if W.shape != (G, H) or G != (4 * H if lstm else H) or h0.shape != (B, H) or (lstm and c0.shape != (B, H)):
        raise ValueError(f"{'lstm' if lstm else 'rnn'}_recurrence: expected xp (B, T, {4 if lstm else 1}H), "
                         f"weight_hh ({4 if lstm else 1}H, H) and states (B, H); got xp {xp.shape}, "
                         f"weight_hh {W.shape}, h0 {h0.shape}" + (f", c0 {c0.shape}" if lstm else ""))
    dt = xp.dtype
    a = np.ascontiguousarray(xp.data.transpose(1, 0, 2))        # (T, B, G): step t is one block
    Wd = W.data.astype(dt, copy=False)
    Wt = np.ascontiguousarray(Wd.T)              # (H, G): h @ Wt is 1.8x faster than through the view W.T
    hs = np.empty((T + 1, B, H), dt)                              # h_0 .. h_T
    hs[0] = h0.data
    hh = np.empty((B, G), dt)                                     # h_{t-1} W_hh^T
    if lstm:
        cs = np.empty((T + 1, B, H), dt)                          # c_0 .. c_T
        cs[0] = c0.data
        gates, tanh_c = np.empty((T, B, G), dt), np.empty((T, B, H), dt)
    for t in range(T):
        np.matmul(hs[t], Wt, out=hh)
        if lstm:
            kernels.lstm_cell_forward(a[t], hh, cs[t], gates[t], cs[t + 1], tanh_c[t], hs[t + 1])
        else:
            kernels.rnn_cell_forward(a[t], hh, hs[t + 1])
    out = np.concatenate([hs[1:], cs[1:]], axis=-1) if lstm else hs[1:]    # (T, B, H or 2H)
    out = np.ascontiguousarray(out.transpose(1, 0, 2))                      # (B, T, .)

    def backward(g):                    # backpropagation through time, t = T .. 1
        gt = g.transpose(1, 0, 2)                                           # (T, B, .)
        dh_out = np.ascontiguousarray(gt[..., :H])                          # from above, to h_t
        dpre = np.empty((T, B, G), dt)                                      # dL/da_t
        dh_next = np.zeros((B, H), dt)                                      # from step t+1, to h_t
        if lstm:
            dc_out = np.ascontiguousarray(gt[..., H:])                      # from outside, to c_t
            dc_next, dc_prev = np.zeros((B, H), dt), np.empty((B, H), dt)
        for t in range(T - 1, -1, -1):
            if lstm:
                kernels.lstm_cell_backward(gates[t], cs[t], tanh_c[t], dh_out[t], dh_next, dc_out[t], dc_next,
                                           dpre[t], dc_prev)
                dc_next, dc_prev = dc_prev, dc_next
            else:
                kernels.rnn_cell_backward(hs[t + 1], dh_out[t], dh_next, dpre[t])
            np.matmul(dpre[t], Wd, out=dh_next)                             # dL/dh_{t-1} = da_t W_hh
        if xp.requires_grad:
            xp._accumulate(np.ascontiguousarray(dpre.transpose(1, 0, 2)), owned=True)
        if W.requires_grad:                                                 # sum_t da_t^T h_{t-1}
            W._accumulate(dpre.reshape(T * B, G).T @ hs[:-1].reshape(T * B, H), owned=True)
        if h0.requires_grad:
            h0._accumulate(dh_next, owned=True)
        if lstm and c0.requires_grad:
            c0._accumulate(dc_next, owned=True)
    parents = (xp, W, h0) + ((c0,) if lstm else ())
    return Tensor._make(out, parents, backward, "lstm_recurrence" if lstm else "rnn_recurrence")


def lstm_recurrence(xp, weight_hh, h0, c0) -> Tensor:
    """An LSTM layer's time loop as one graph node.

    xp (B, T, 4H): the input projections x_t W_ih^T + b_ih + b_hh of every step; weight_hh (4H, H);
    h0, c0 (B, H): the initial state. Returns (B, T, 2H): [h_t, c_t] for t = 1..T side by side, so
    that a gradient can reach any h_t or c_t (the outputs, and the final state (h_T, c_T)); the
    backward gives xp, weight_hh, h0 and c0 theirs."""
    return _recurrence(xp, weight_hh, h0, c0)


def rnn_recurrence(xp, weight_hh, h0) -> Tensor:
    """A tanh-RNN layer's time loop as one graph node: xp (B, T, H), weight_hh (H, H), h0 (B, H)
    -> h_1 .. h_T (B, T, H)."""
    return _recurrence(xp, weight_hh, h0, None)


# ---- layers ------------------------------------------------------------------------------------

class Recurrent(Module):
    """A stack of n_layer recurrent layers, batch first, with torch.nn.LSTM's / torch.nn.RNN's
    parameter names and initialisation. `fused=False` runs the Tensor-op twin instead."""

    cell = "lstm"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0,
                 dtype=np.float32) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers, self.dropout = input_size, hidden_size, num_layers, dropout
        self.fused = True
        G, k = CELLS[self.cell] * hidden_size, 1.0 / np.sqrt(hidden_size)
        for layer in range(num_layers):
            fan_in = input_size if layer == 0 else hidden_size
            for name, shape in (("weight_ih", (G, fan_in)), ("weight_hh", (G, hidden_size)),
                                ("bias_ih", (G,)), ("bias_hh", (G,))):
                setattr(self, f"{name}_l{layer}", init.uniform_(Parameter(np.empty(shape, dtype)), -k, k))

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, dropout={self.dropout}"

    def zero_state(self, batch_size: int, dtype=np.float32) -> tuple:
        shape = (self.num_layers, batch_size, self.hidden_size)
        return tuple(Tensor(np.zeros(shape, dtype)) for _ in range(2 if self.cell == "lstm" else 1))

    def project(self, x, layer: int) -> Tensor:
        """The input projections of every step of `layer` at once: x (B, T, in) -> (B, T, gates * H),
        both biases included (one GEMM for the whole window)."""
        bias = getattr(self, f"bias_ih_l{layer}") + getattr(self, f"bias_hh_l{layer}")
        return F.linear(x, getattr(self, f"weight_ih_l{layer}"), bias)

    def recurrence(self, xp, layer: int, h0, c0=None) -> Tensor:
        """Layer `layer`'s time loop over its projected inputs (fused, or the Tensor-op twin)."""
        W = getattr(self, f"weight_hh_l{layer}")
        if self.fused:
            return _recurrence(xp, W, h0, c0)
        return recurrence_ref(xp, W, h0, c0)[0]

    def forward_layers(self, x, state=None) -> tuple[list[Tensor], tuple]:
        """x (B, T, in) -> ([each layer's outputs h_1..h_T, (B, T, H)], final state (h_n, c_n) or (h_n,),
        each (n_layer, B, H)). `state` is the initial one (zeros when None)."""
        x = _tensor(x)
        if x.ndim != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__}: input must be (B, T, {self.input_size}), got {x.shape}")
        B = x.shape[0]
        state = self.zero_state(B, x.dtype) if state is None else tuple(_tensor(s) for s in state)
        want = (self.num_layers, B, self.hidden_size)
        if len(state) != len(self.zero_state(1)) or any(s.shape != want for s in state):
            raise ValueError(f"{type(self).__name__}: state must be {len(self.zero_state(1))} array(s) of shape "
                             f"(n_layer, B, H) = {want}, got {[s.shape for s in state]}")
        H, outputs, finals = self.hidden_size, [], []
        for layer in range(self.num_layers):
            if layer > 0:
                x = F.dropout(x, self.dropout, training=self.training)
            out = self.recurrence(self.project(x, layer), layer, *(s[layer] for s in state))   # (B, T, H or 2H)
            x = out[..., :H] if self.cell == "lstm" else out
            outputs.append(x)
            finals.append([out[:, -1, :H]] + ([out[:, -1, H:]] if self.cell == "lstm" else []))
        new_state = tuple(F.stack([f[i] for f in finals], axis=0) for i in range(len(state)))
        return outputs, new_state

    def forward(self, x, state=None) -> tuple[Tensor, tuple]:
        """x (B, T, in) -> (top layer's outputs (B, T, H), final state), as torch's (batch_first=True)."""
        outputs, state = self.forward_layers(x, state)
        return outputs[-1], state


class LSTM(Recurrent):
    cell = "lstm"


class RNN(Recurrent):
    """Elman's RNN with tanh units (torch.nn.RNN's defaults)."""
    cell = "tanh"


# ---- the language model ------------------------------------------------------------------------

class RecurrentLM(Module):
    """embedding -> recurrent layers -> linear softmax head. `logits, loss = model(x, targets)` from a
    zero state (scratchlm.train's contract); `unroll` starts from a given state and returns the next."""

    def __init__(self, config: RNNConfig, dtype=np.float32) -> None:
        super().__init__()
        self.config = c = config
        self.wte = Embedding(c.vocab_size, c.n_embd, dtype=dtype)
        self.rnn = (LSTM if c.cell == "lstm" else RNN)(c.n_embd, c.n_hidden, c.n_layer, c.dropout, dtype)
        self.drop = Dropout(c.dropout)
        self.head = Linear(c.n_hidden, c.vocab_size, dtype=dtype)
        for p in self.parameters():
            init.uniform_(p, -c.init_range, c.init_range)

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    def _check(self, idx, targets):
        idx = np.asarray(idx)
        if idx.ndim != 2 or idx.shape[1] == 0:
            hint = " (one sequence? add a batch axis: idx[None])" if idx.ndim == 1 else ""
            raise ValueError(f"RecurrentLM: idx must be token ids of shape (B, T) with T >= 1, got shape "
                             f"{idx.shape}{hint}")
        if targets is not None and np.shape(targets) != idx.shape:
            raise ValueError(f"RecurrentLM: targets must have the shape of idx {idx.shape}, got {np.shape(targets)}")
        return idx

    def unroll(self, idx, state=None, targets=None) -> tuple[Tensor, Tensor | None, tuple]:
        """idx (B, T) -> (logits (B, T, V), mean cross-entropy over targets >= 0 or None, final state).
        `state` continues where an earlier window stopped (None: zeros)."""
        idx = self._check(idx, targets)
        B, T = idx.shape
        x = self.drop(self.wte(idx))                       # (B, T, E)
        out, state = self.rnn(x, state)                    # (B, T, H), ((n_layer, B, H), ...)
        logits = self.head(self.drop(out))                 # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(B * T, -1), np.asarray(targets).reshape(-1), ignore_index=-1)
        return logits, loss, state

    def forward(self, idx, targets=None):
        logits, loss, _ = self.unroll(idx, None, targets)
        return logits, loss

    def stream_layers(self, ids, bptt: int = 500) -> list[np.ndarray]:
        """Every layer's output at every position of one long stream `ids` (N,), read left to right
        with the state carried across windows of `bptt` (eval mode, no graph): [embeddings (N, E),
        layer 1 (N, H), ..., layer n (N, H)]; row t has read ids[0..t]."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        layers, state = [[] for _ in range(self.config.n_layer + 1)], None
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                for start in range(0, len(ids), bptt):
                    x = self.wte(ids[None, start:start + bptt])                   # (1, T, E)
                    outputs, state = self.rnn.forward_layers(x, state)
                    for store, layer in zip(layers, [x, *outputs]):
                        store.append(layer.data[0])
        finally:
            self.train(was_training)
        return [np.concatenate(store) for store in layers]


# ---- truncated backpropagation through time ----------------------------------------------------

class TruncatedBPTT:
    """The loss_fn of scratchlm.train for recurrent LMs over StreamWindows (scratchlm.data.stream_windows):
    each stream's state is carried from one window to the next, detached, and reset at a stream's
    first window. One state per stream name, so training ("train") and evaluation ("valid", "test")
    do not disturb each other.

        tbptt = TruncatedBPTT()
        train(model, optimizer, get_window, config, eval_batches={"valid": windows}, loss_fn=tbptt)
    """

    def __init__(self) -> None:
        self.states: dict[str, tuple] = {}

    def __call__(self, model: RecurrentLM, window: StreamWindow) -> tuple[Tensor, int]:
        if not window.first and window.stream not in self.states:
            raise ValueError(f"TruncatedBPTT: a window of stream {window.stream!r} that is not its first came "
                             f"before any state was carried; windows must come in order, the first with "
                             f"first=True (scratchlm.data.stream_windows)")
        # BEGIN SOLUTION 8.3: Carrying the state between windows (chapters/ch08_recurrent.py §8.1)
        state = None if window.first else self.states[window.stream]
        _, loss, state = model.unroll(window.x, state, window.y)
        self.states[window.stream] = tuple(s.detach() for s in state)   # the backward pass stops here
        # END SOLUTION
        return loss, int((np.asarray(window.y) >= 0).sum())

    def bidirectional(self, bilm: BiLM, windows: tuple[StreamWindow, StreamWindow]) -> tuple[Tensor, int]:
        """The biLM's loss_fn: one window of the forward stream and one of the reversed stream, each
        through its own LM; the mean of both directions' losses over all their targets (so the
        gradient is that of the sum of the two log-likelihoods, over the number of targets)."""
        (fwd, n_f), (bwd, n_b) = self(bilm.forward_lm, windows[0]), self(bilm.backward_lm, windows[1])
        return (fwd * float(n_f) + bwd * float(n_b)) * (1.0 / (n_f + n_b)), n_f + n_b


@dataclass
class ZarembaSchedule(TrainConfig):
    """Zaremba et al.'s learning rate, for scratchlm.train.train: `learning_rate` for the first
    `decay_after` epochs, then multiplied by `decay` at the start of every later epoch:

        lr(epoch e = 1, 2, ...) = learning_rate * decay ** max(0, e - decay_after)

    Their loss is summed over the T steps of a window (and averaged over the batch), ours is the mean
    over its B T targets, so their SGD rate 1 and clipping norm 5 are ours times T (= 20) and over T:
    learning_rate 20, grad_clip 0.25 (the values of PyTorch's word_language_model example)."""
    learning_rate: float = 20.0
    grad_clip: float = 0.25
    warmup_iters: int = 0          # no warmup; TrainConfig's cosine fields are unused
    weight_decay: float = 0.0
    steps_per_epoch: int = 1
    decay_after: int = 4
    decay: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.steps_per_epoch, bool) or not isinstance(self.steps_per_epoch, (int, np.integer)) \
                or self.steps_per_epoch < 1:
            raise ValueError(f"ZarembaSchedule: steps_per_epoch must be an integer >= 1, got {self.steps_per_epoch!r}")
        if not 0 < self.decay <= 1:
            raise ValueError(f"ZarembaSchedule: decay must be in (0, 1], got {self.decay!r}")

    def lr(self, step: int) -> float:
        epoch = step // self.steps_per_epoch + 1
        return self.learning_rate * self.decay ** max(0, epoch - self.decay_after)


# ---- ELMo's biLM -------------------------------------------------------------------------------

class BiLM(Module):
    """A forward and a backward recurrent LM sharing the token embedding and the softmax head.

    The backward LM is an ordinary LM run on the reversed stream: it predicts w_t from w_{t+1}, w_{t+2},
    .... `forward_lm` and `backward_lm` are both RecurrentLMs (their `wte` and `head` are the same
    modules), so each trains and evaluates with TruncatedBPTT like any LM; TruncatedBPTT.bidirectional
    trains both at once."""

    def __init__(self, config: RNNConfig, dtype=np.float32) -> None:
        super().__init__()
        self.config = config
        self.forward_lm = RecurrentLM(config, dtype)
        self.backward_lm = RecurrentLM(config, dtype)
        self.backward_lm.wte, self.backward_lm.head = self.forward_lm.wte, self.forward_lm.head

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    def forward(self, idx) -> list[Tensor]:
        """ELMo's layers for a batch of sequences idx (B, T), each read from a zero state in both
        directions: [layer 0, ..., layer n], each (B, T, 2H) = [forward; backward] at each position
        after reading it (layer 0: the token's embedding twice; needs n_embd = n_hidden)."""
        idx = self.forward_lm._check(idx, None)
        x = self.forward_lm.wte(idx)                                   # (B, T, E)
        fwd, _ = self.forward_lm.rnn.forward_layers(x)
        bwd, _ = self.backward_lm.rnn.forward_layers(x[:, ::-1])       # the backward LM reads right to left
        return [F.concatenate([f, b[:, ::-1]], axis=-1) for f, b in zip([x, *fwd], [x[:, ::-1], *bwd])]

    def stream_layers(self, ids, bptt: int = 500) -> list[np.ndarray]:
        """ELMo's layers at every position of one long stream (N,), each direction reading the
        whole stream with its state carried: [layer 0, ..., layer n], each (N, 2H), row t the two
        directions' states after reading ids[t] (forward: ids[..t], backward: ids[t..])."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        fwd = self.forward_lm.stream_layers(ids, bptt)
        bwd = self.backward_lm.stream_layers(ids[::-1], bptt)
        return [np.concatenate([f, b[::-1]], axis=1) for f, b in zip(fwd, bwd)]


def blank_logprobs(bilm: BiLM, ids, boundary: int, log_prior, weight: float = 1.0, bptt: int = 500,
                   chunk: int = 1024, top: int = 5) -> dict[str, np.ndarray]:
    """Fill every position of a stream as a blank, from the left alone and from both sides.

    ids (N,) is a stream of sentences (`w1 .. wm </s>` each), `boundary` the id that stands before
    its first token in both directions (the </s> of Chapter 8's streams), log_prior (V,) the
    unigram log-probabilities ln p(w). For every t, the forward LM's prediction from the left,
    ids[:t], and the backward LM's from the right, ids[t+1:], combine by Bayes' rule, taking the two
    sides to be independent given the word: p(w | L, R) ~ p(L | w) p(R | w) p(w), and
    p(L | w) = p(w | L) p(L) / p(w), so

        ln p(w | L, R) = ln p_fwd(w | L) + ln p_bwd(w | R) - ln p(w) - ln Z_t

    (without the - ln p(w) the prior would count twice, and frequent words would win every blank).
    The two sides are not independent, and two models that err alike would be trusted twice, so the
    right side's evidence ln p_bwd(w | R) - ln p(w) is scaled by `weight` (1: Bayes' rule as above,
    0: the left alone), a number to tune on held-out text like Chapter 4's mixture weight.
    Returns {"forward", "backward", "both": ln P(ids[t]) under each (N,), and "forward_top",
    "both_top": the `top` most probable words under each, best first (N, top), unless top = 0};
    eval mode, no graph.
    """
    ids = np.asarray(ids, dtype=np.int64).ravel()
    N, V = len(ids), bilm.config.vocab_size
    log_prior = np.asarray(log_prior, dtype=np.float32)
    if log_prior.shape != (V,) or not np.all(np.isfinite(log_prior)):
        raise ValueError(f"blank_logprobs: log_prior must be {V} finite log-probabilities (smooth zero counts), "
                         f"got shape {log_prior.shape}")
    # top-layer states over [boundary] + ids, forward and reversed: row j has read j + 1 inputs
    fwd = bilm.forward_lm.stream_layers(np.concatenate([[boundary], ids]), bptt)[-1]         # (N + 1, H)
    bwd = bilm.backward_lm.stream_layers(np.concatenate([[boundary], ids[::-1]]), bptt)[-1]  # (N + 1, H)
    out = {k: np.empty(N, np.float64) for k in ("forward", "backward", "both")}
    out.update(forward_top=np.empty((N, top), np.int64), both_top=np.empty((N, top), np.int64))
    head = bilm.forward_lm.head
    with no_grad():
        # BEGIN SOLUTION 8.4: Filling a blank from both sides (chapters/ch08_recurrent.py §8.4)
        left = fwd[:-1]                  # row t has read [boundary] ids[:t]: it predicts ids[t]
        right = bwd[:-1][::-1]           # row N-1-t of bwd has read [boundary] ids[:t:-1]: it predicts ids[t]
        for s in range(0, N, chunk):
            rows, y = slice(s, min(s + chunk, N)), ids[s:s + chunk]
            lf = F.log_softmax(head(left[rows])).data                         # (n, V) ln p_fwd(. | ids[:t])
            lb = F.log_softmax(head(np.ascontiguousarray(right[rows]))).data  # (n, V) ln p_bwd(. | ids[t+1:])
            both = F.log_softmax(lf + weight * (lb - log_prior)).data        # Bayes, renormalised
            pick = np.arange(len(y))
            out["forward"][rows], out["backward"][rows], out["both"][rows] = lf[pick, y], lb[pick, y], both[pick, y]
            if top:
                out["forward_top"][rows], out["both_top"][rows] = _best(lf, top), _best(both, top)
        # END SOLUTION
    return out


def _best(scores: np.ndarray, k: int) -> np.ndarray:
    """The indices of the k largest scores of each row, largest first: (n, V) -> (n, k)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


class ScalarMix(Module):
    """ELMo's task-specific mix of the biLM's n layers: gamma * sum_j softmax(w)_j layer_j, with
    w (n,) starting at 0 (an equal mix) and gamma at 1, both learned by the downstream task."""

    def __init__(self, n_layers: int, dtype=np.float32) -> None:
        super().__init__()
        self.weights = Parameter(np.zeros(n_layers, dtype))
        self.gamma = Parameter(np.ones(1, dtype))

    def forward(self, layers) -> Tensor:
        """layers: a list of n Tensors or arrays of one shape (..., D) -> their mix, (..., D)."""
        if len(layers) != self.weights.shape[0]:
            raise ValueError(f"ScalarMix: built for {self.weights.shape[0]} layers, got {len(layers)}")
        s = F.softmax(self.weights)                                     # (n,), sums to 1
        mix = None
        for j, layer in enumerate(layers):
            term = s[j] * layer
            mix = term if mix is None else mix + term
        return self.gamma * mix
