"""Where a second thread pays: each parallel autograd kernel on 1 and on 2 threads, by input size.
The measurement behind scratchlm.autograd.kernels.PARALLEL_MIN_SIZE (Chapter 3's kernels).

    python benchmarks/bench_threads.py [--sizes 65536,131072,...] [--repeats 150]

Every kernel of scratchlm/autograd/kernels.py that runs its rows in parallel has two compilations
(`parallel_kernel`): a serial one, which runs inputs below the threshold, and a parallel one. Both
are called directly on float32 inputs of each size, the parallel one on two Numba threads, taking
turns call by call so that both see the same machine; the table gives the median microseconds of
each and the speed-up. Waking the second thread is part of every two-thread call, as in a training
step, where each kernel comes after BLAS and NumPy work.
The shapes are those of the baby GPT (Chapter 6): rows of 128 for LayerNorm, 65 classes for the
cross-entropy; GELU and AdamW see flat arrays.

Run it on an idle machine: on a machine whose other core is busy the second thread waits for it,
and two threads gain nothing at any size (0.83-1.11x on the Xeon of the README's Benchmarks). The
last line gives the smallest size from which two threads won for every kernel, beside the threshold
scratchlm uses.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, median_step_seconds, set_threads  # noqa: E402

if __name__ == "__main__":  # thread counts must be set before NumPy (and its BLAS) load
    set_threads(default=2)

import numba  # noqa: E402
import numpy as np  # noqa: E402

from scratchlm.autograd import kernels as K  # noqa: E402

F32 = np.float32
SIZES = tuple(1 << k for k in range(16, 22))          # 64 Ki ... 2 Mi elements
C, V = 128, 65                                         # LayerNorm's row, the cross-entropy's classes


def calls(n: int, rng) -> dict:
    """{kernel name: (its parallel_kernel, the arguments)} on inputs of about n float32 elements."""
    x = rng.standard_normal((n // C, C)).astype(F32)
    g = rng.standard_normal(x.shape).astype(F32)
    w, b = np.ones(C, F32), np.zeros(C, F32)
    y, dx = np.empty_like(x), np.empty_like(x)
    mean, rstd = np.empty(len(x), F32), np.empty(len(x), F32)
    dw, db = np.empty(C, F32), np.empty(C, F32)
    K.layer_norm_forward.kernel(x, w, b, 1e-5, y, mean, rstd)
    flat, gflat, out, gate = x.reshape(-1), g.reshape(-1), np.empty(n // C * C, F32), np.empty(n // C * C, F32)
    logits = rng.standard_normal((n // V, V)).astype(F32)
    targets = rng.integers(0, V, len(logits))
    scale = np.full(len(logits), 1 / len(logits), F32)
    loss, row_max, log_sum, dlogits = (np.empty(len(logits), F32), np.empty(len(logits), F32),
                                       np.empty(len(logits), F32), np.empty_like(logits))
    param, m, v = flat.copy(), np.zeros_like(flat), np.zeros_like(flat)
    f = F32
    return {
        "layer_norm_forward": (K.layer_norm_forward, (x, w, b, 1e-5, y, mean, rstd)),
        "layer_norm_backward": (K.layer_norm_backward, (x, w, mean, rstd, g, dx, dw, db)),
        "gelu_forward_gate (tanh)": (K.gelu_forward_gate, (flat, True, out, gate)),
        "gelu_backward (tanh)": (K.gelu_backward, (flat, gate, gflat, True, out)),
        "cross_entropy_forward_backward": (K.cross_entropy_forward_backward,
                                           (logits, targets, -1, scale, loss, row_max, log_sum, dlogits)),
        "adam_update": (K.adam_update, (param, gflat, m, v, f(0), f(0.999), f(0.9), f(0.1), f(0.95), f(0.05),
                                        f(0.5), f(1e-8), f(1e-4))),
    }


def one_and_two_threads(kernel, args, repeats: int) -> tuple[float, float]:
    """Median seconds of the kernel's serial compilation and of its parallel one on 2 Numba threads,
    the two taking turns call by call."""
    numba.set_num_threads(2)
    t = median_step_seconds({1: lambda i: kernel.serial(*args), 2: lambda i: kernel.kernel(*args)}, repeats)
    return t[1], t[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="input sizes, in float32 elements")
    parser.add_argument("--repeats", type=int, default=150, help="timed calls on each thread count")
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)  # read by set_threads
    args = parser.parse_args()
    if numba.config.NUMBA_NUM_THREADS < 2:
        parser.error("needs 2 Numba threads (NUMBA_NUM_THREADS >= 2 and a machine with 2 cores)")
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = np.random.default_rng(0)
    print(f"autograd kernels, float32, serial vs parallel on 2 Numba threads, taking turns; median of "
          f"{args.repeats} calls each")
    print(f"machine: {machine()}")
    head = f"{'elements':>10} {'kernel':<32} {'1 thread us':>12} {'2 threads us':>13} {'speed-up':>9}"
    print(head)
    print("-" * len(head))
    wins: dict[int, bool] = {}
    for n in sizes:
        for name, (kernel, kernel_args) in calls(n, rng).items():
            one, two = one_and_two_threads(kernel, kernel_args, args.repeats)
            print(f"{n:>10,} {name:<32} {one * 1e6:12.1f} {two * 1e6:13.1f} {one / two:9.2f}")
            wins[n] = wins.get(n, True) and two < one
    from_size = next((n for n in sorted(sizes) if all(wins[m] for m in sizes if m >= n)), None)
    print(f"two threads faster for every kernel from: {f'{from_size:,} elements' if from_size else 'no size measured'}"
          f"; scratchlm's threshold (kernels.PARALLEL_MIN_SIZE): {K.PARALLEL_MIN_SIZE:,}")


if __name__ == "__main__":
    main()
