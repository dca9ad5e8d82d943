"""Benchmark: what autograd and the fused kernels cost (Chapter 3).

    python benchmarks/bench_autograd.py [--threads 2] [--repeat 20]

Two measurements, each the median over `--repeat` timed runs after warm-up:

  1. one training step of an MLP (forward, backward, AdamW update): scratchlm's autograd beside the
     same step written out by hand in NumPy (what autograd automates), and PyTorch when installed;
  2. cross-entropy over a (4096, 10000) float32 logits matrix, forward + backward: the fused Numba
     kernel (`F.cross_entropy`) beside the plain-NumPy composition (max, exp, sum, log, gather, then
     softmax minus one-hot for the gradient).

Threads are pinned for BLAS and Numba before NumPy loads (on 2 cores, oversubscribed thread pools
make timings meaningless).
"""

from _common import set_threads

THREADS = set_threads(default=2)

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import scratchlm.autograd.functional as F  # noqa: E402
from scratchlm import nn, optim  # noqa: E402
from scratchlm.autograd import Tensor  # noqa: E402

BATCH, D_IN, HIDDEN, N_CLASSES = 512, 256, 512, 10
CE_ROWS, CE_VOCAB = 4096, 10_000


def median_ms(fn, repeat: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


# 1. MLP step -------------------------------------------------------------------------------------
def mlp_data(rng):
    x = rng.normal(size=(BATCH, D_IN)).astype(np.float32)
    y = rng.integers(0, N_CLASSES, size=BATCH)
    return x, y


def scratchlm_mlp_step(x, y):
    model = nn.Sequential(nn.Linear(D_IN, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, HIDDEN), nn.Tanh(),
                          nn.Linear(HIDDEN, N_CLASSES))
    opt = optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    xt = Tensor(x)

    def step():
        loss = F.cross_entropy(model(xt), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def numpy_mlp_step(x, y, rng):
    """The same step by hand: forward, backward (chain rule written out), AdamW update."""
    shapes = [(HIDDEN, D_IN), (HIDDEN,), (HIDDEN, HIDDEN), (HIDDEN,), (N_CLASSES, HIDDEN), (N_CLASSES,)]
    params = [rng.uniform(-0.05, 0.05, size=s).astype(np.float32) for s in shapes]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    t = [0]
    lr, b1, b2, eps, wd = 1e-3, 0.9, 0.999, 1e-8, 0.01
    rows = np.arange(BATCH)

    def step():
        w1, b1_, w2, b2_, w3, b3 = params
        h1 = np.tanh(x @ w1.T + b1_)
        h2 = np.tanh(h1 @ w2.T + b2_)
        logits = h2 @ w3.T + b3
        shifted = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        p = e / e.sum(axis=1, keepdims=True)
        p[rows, y] -= 1.0
        g3 = p / BATCH
        g2 = (g3 @ w3) * (1 - h2 * h2)
        g1 = (g2 @ w2) * (1 - h1 * h1)
        grads = [g1.T @ x, g1.sum(0), g2.T @ h1, g2.sum(0), g3.T @ h2, g3.sum(0)]
        t[0] += 1
        for p_, g, m_, v_ in zip(params, grads, m, v):
            p_ *= 1 - lr * wd
            m_ *= b1
            m_ += (1 - b1) * g
            v_ *= b2
            v_ += (1 - b2) * g * g
            p_ -= lr * (m_ / (1 - b1 ** t[0])) / (np.sqrt(v_ / (1 - b2 ** t[0])) + eps)

    return step


def torch_mlp_step(x, y):
    import torch

    torch.set_num_threads(THREADS)
    model = torch.nn.Sequential(torch.nn.Linear(D_IN, HIDDEN), torch.nn.Tanh(), torch.nn.Linear(HIDDEN, HIDDEN),
                                torch.nn.Tanh(), torch.nn.Linear(HIDDEN, N_CLASSES))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def step():
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


# 2. Cross-entropy forward + backward -------------------------------------------------------------
def numpy_cross_entropy(logits, targets):
    """Loss and d loss / d logits, composed from NumPy operations (several passes over V)."""
    n = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=1, keepdims=True)
    loss = -(shifted[np.arange(n), targets] - np.log(s[:, 0])).mean()
    grad = e / s
    grad[np.arange(n), targets] -= 1.0
    grad /= n
    return loss, grad


def fused_cross_entropy(logits, targets):
    x = Tensor(logits, requires_grad=True)
    loss = F.cross_entropy(x, targets)
    loss.backward()
    return loss.item(), x.grad


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False

    print(f"threads: {THREADS} (BLAS and Numba); median of {args.repeat} runs\n")
    x, y = mlp_data(rng)
    rows = [("scratchlm autograd", median_ms(scratchlm_mlp_step(x, y), args.repeat)),
            ("NumPy by hand", median_ms(numpy_mlp_step(x, y, rng), args.repeat))]
    if have_torch:
        rows.append(("PyTorch", median_ms(torch_mlp_step(x, y), args.repeat)))
    print(f"MLP training step ({D_IN}-{HIDDEN}-{HIDDEN}-{N_CLASSES}, batch {BATCH}, float32, AdamW)")
    print(f"  {'implementation':22s} {'ms/step':>9s} {'vs scratchlm':>13s}")
    for name, ms in rows:
        print(f"  {name:22s} {ms:9.2f} {ms / rows[0][1]:12.2f}x")

    logits = rng.normal(scale=3.0, size=(CE_ROWS, CE_VOCAB)).astype(np.float32)
    targets = rng.integers(0, CE_VOCAB, size=CE_ROWS)
    loss_np, grad_np = numpy_cross_entropy(logits, targets)
    loss_fused, grad_fused = fused_cross_entropy(logits, targets)
    assert abs(loss_np - loss_fused) < 1e-4 * abs(loss_np), (loss_np, loss_fused)
    assert np.allclose(grad_np, grad_fused, atol=1e-7), "fused gradient differs from the NumPy composition"
    numpy_ms = median_ms(lambda: numpy_cross_entropy(logits, targets), args.repeat)
    fused_ms = median_ms(lambda: fused_cross_entropy(logits, targets), args.repeat)
    print(f"\nCross-entropy forward + backward, logits ({CE_ROWS}, {CE_VOCAB}) float32")
    print(f"  {'implementation':22s} {'ms':>9s} {'speed-up':>13s}")
    print(f"  {'NumPy composition':22s} {numpy_ms:9.2f} {1.0:12.2f}x")
    print(f"  {'scratchlm fused':22s} {fused_ms:9.2f} {numpy_ms / fused_ms:12.2f}x")


if __name__ == "__main__":
    main()
