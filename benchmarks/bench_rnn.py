"""Training throughput of Chapter 8's LSTM LM, scratchlm beside an identical PyTorch model (torch.nn.LSTM).

    python benchmarks/bench_rnn.py [--threads 2] [--steps 40]

One step = one window of truncated BPTT at Zaremba et al.'s small configuration: V = 10,000, two
LSTM layers of 200, batch 20, 20 unrolled steps (400 tokens), float32; forward from the state the
previous window left (detached), backward, global gradient clipping at 0.25 and an SGD update at
lr 20 (scratchlm.models.rnn.ZarembaSchedule's units). Both models start from the same weights and
see the same windows of a Zipf-distributed id stream. The table gives the median step time after
warm-up, tokens per second and the ratio of step times scratchlm / PyTorch; then where scratchlm's
step goes (the softmax head and its cross-entropy against the LSTM layers). BLAS, Numba and PyTorch
are all limited to `--threads` threads, set before NumPy is imported.

The PyTorch twin (`TorchLSTMLM`) is torch.nn.Embedding -> torch.nn.LSTM (batch_first, its
fused CPU kernels) -> torch.nn.Linear with the scratchlm model's weights copied in;
tests/test_rnn.py checks it gives the same loss, state and gradients.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_step_seconds, set_threads  # noqa: E402

if __name__ == "__main__":  # thread counts must be set before NumPy (and its BLAS) load
    set_threads(default=2)


import numpy as np  # noqa: E402

try:
    import torch
except ImportError:  # the benchmark still times scratchlm alone
    torch = None

V, E, H, L, B, T = 10_000, 200, 200, 2, 20, 20
LR, CLIP = 20.0, 0.25

# ---------------------------------------------------------------------------------------------
# The PyTorch twin
# ---------------------------------------------------------------------------------------------

if torch is not None:
    class TorchLSTMLM(torch.nn.Module):
        """embedding -> torch.nn.LSTM -> linear head, with scratchlm's RecurrentLM parameter names
        mapped onto it (`grad_of`)."""

        def __init__(self, vocab_size: int, n_embd: int, n_hidden: int, n_layer: int) -> None:
            super().__init__()
            self.wte = torch.nn.Embedding(vocab_size, n_embd)
            self.rnn = torch.nn.LSTM(n_embd, n_hidden, n_layer, batch_first=True)
            self.head = torch.nn.Linear(n_hidden, vocab_size)

        @classmethod
        def from_scratchlm(cls, model) -> "TorchLSTMLM":
            c = model.config
            params = dict(model.named_parameters())
            dtype = torch.float64 if params["wte.weight"].dtype == np.float64 else torch.float32
            twin = cls(c.vocab_size, c.n_embd, c.n_hidden, c.n_layer).to(dtype)
            with torch.no_grad():
                for name, p in twin.named_parameters():
                    p.copy_(torch.from_numpy(params[name].data))
            return twin

        def grad_of(self, name: str):
            return dict(self.named_parameters())[name].grad

        def forward(self, x, y, state):
            """(mean cross-entropy over the window, final state) from ids x, targets y (B, T)."""
            out, state = self.rnn(self.wte(x), state)
            logits = self.head(out)
            return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)), state


# ---------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------

def main() -> None:
    from scratchlm.autograd import Tensor
    import scratchlm.autograd.functional as F
    from scratchlm.data import stream_windows
    from scratchlm.models.rnn import RecurrentLM, RNNConfig, TruncatedBPTT
    from scratchlm.optim import SGD
    from scratchlm.rng import manual_seed
    from scratchlm.train import train_step

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()

    manual_seed(0)
    model = RecurrentLM(RNNConfig(vocab_size=V, n_embd=E, n_hidden=H, n_layer=L))
    optimizer = SGD(model.parameters(), lr=LR)
    rng = np.random.default_rng(0)
    ids = np.minimum(rng.zipf(1.2, B * T * (args.steps + 3) + 1) - 1, V - 1)   # text-like repeated ids
    windows = stream_windows(ids, B, T)
    tbptt = TruncatedBPTT()
    steps = {"scratchlm": lambda i: train_step(model, optimizer, [windows[i]], LR, CLIP, loss_fn=tbptt)}

    if torch is not None:
        torch.set_num_threads(args.threads)
        twin = TorchLSTMLM.from_scratchlm(model)
        t_opt = torch.optim.SGD(twin.parameters(), lr=LR)
        t_windows = [(torch.from_numpy(w.x.copy()), torch.from_numpy(w.y.copy())) for w in windows]
        t_state = [None]

        def torch_step(i):
            t_opt.zero_grad(set_to_none=True)
            loss, state = twin(*t_windows[i], t_state[0])
            t_state[0] = tuple(s.detach() for s in state)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(twin.parameters(), CLIP)
            t_opt.step()
            return loss.item()
        name = f"PyTorch {torch.__version__}"
        steps[name] = torch_step
    rows = list(median_step_seconds(steps, args.steps).items())

    # Where scratchlm's step goes: the head (logits, cross-entropy, their backward) against the rest.
    out = Tensor(rng.standard_normal((B, T, H)).astype(np.float32), requires_grad=True)
    y = windows[0].y.reshape(-1)

    def head_only(i):
        model.zero_grad()
        loss = F.cross_entropy(model.head(out).reshape(B * T, V), y)
        loss.backward()
    head = median_step_seconds({"head": head_only}, max(10, args.steps // 2))["head"]

    print(f"LSTM LM training step, Zaremba's small configuration: V={V}, {L} x {H}, batch {B}, {T} steps, "
          f"float32, SGD + clipping; {args.threads} threads")
    print(f"{'implementation':<22} {'ms/step':>9} {'tokens/s':>10}")
    for name, seconds in rows:
        print(f"{name:<22} {seconds * 1e3:9.1f} {B * T / seconds:10,.0f}")
    print(f"scratchlm: softmax head + cross-entropy, forward and backward {head * 1e3:.1f} ms of the "
          f"{rows[0][1] * 1e3:.1f} ms step ({head / rows[0][1]:.0%})")
    if len(rows) == 2:
        print(f"step time ratio scratchlm / PyTorch: {rows[0][1] / rows[1][1]:.2f}")
    else:
        print("PyTorch is not installed: no reference row")


if __name__ == "__main__":
    main()
