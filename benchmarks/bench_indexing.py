"""Benchmark: indexing one time step at a time, `x[:, t]` for t < T, costs O(T) (Chapter 3).

    python benchmarks/bench_indexing.py [--threads 1] [--repeat 5]

A recurrent model reads its input one position at a time: h_t = f(x[:, t], h_{t-1}). The loop below
is that pattern with nothing else in it -- y = sum_t x[:, t] * (t + 1), then backward -- on
x of shape (B, T, C) = (32, T, 64), float32, for T = 64 ... 512. Each slice's backward adds its
(B, C) gradient into the matching part of dL/dx in place (Tensor._grad_to_update), so one step costs
O(B C) and the loop O(T B C): the time should double when T doubles. (A backward that allocated a
zero array the size of x for each slice, and added it into dL/dx, would cost O(T^2 B C): four times
per doubling.) PyTorch's indexing loop runs beside when it is installed; its select backward also
materialises a full-size gradient per slice.

Each time is the median of --repeat runs of forward + backward after one warm-up run.
"""

from _common import set_threads

THREADS = set_threads(default=1)

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from scratchlm.autograd import Tensor  # noqa: E402

B, C = 32, 64
TS = (64, 128, 256, 512)


def median_s(fn, repeat: int) -> float:
    fn()                                          # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def slice_loop(leaf):
    """forward + backward of y = sum_t x[:, t] * (t + 1), with x made a leaf tensor by `leaf`."""
    def make(x: np.ndarray):
        def run():
            xt = leaf(x)
            y = xt[:, 0] * 1.0
            for t in range(1, x.shape[1]):
                y = y + xt[:, t] * (t + 1.0)
            y.sum().backward()
            return xt.grad
        return run
    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    impls = {"scratchlm": slice_loop(lambda x: Tensor(x, requires_grad=True))}
    try:
        import torch
        torch.set_num_threads(THREADS)
        impls[f"PyTorch {torch.__version__}"] = slice_loop(lambda x: torch.tensor(x, requires_grad=True))
    except ImportError:
        pass

    rng = np.random.default_rng(0)
    print(f"y = sum_t x[:, t] * (t + 1), forward + backward; x ({B}, T, {C}) float32; {THREADS} thread(s); "
          f"median of {args.repeat}")
    print(f"{'T':>5} " + " ".join(f"{name + ' ms':>18} {'x per 2T':>8}" for name in impls))
    previous = {}
    for T in TS:
        x = rng.normal(size=(B, T, C)).astype(np.float32)
        want = np.broadcast_to(np.arange(1.0, T + 1)[None, :, None], x.shape)
        cells = []
        for name, make in impls.items():
            run = make(x)
            grad = np.asarray(run())
            np.testing.assert_allclose(grad, want, err_msg=name)     # dL/dx[:, t] = t + 1
            s = median_s(run, args.repeat)
            ratio = f"{s / previous[name]:8.2f}" if name in previous else f"{'':8s}"
            previous[name] = s
            cells.append(f"{1e3 * s:18.2f} {ratio}")
        print(f"{T:5d} " + " ".join(cells))
    print("linear cost: the time doubles (x 2.0) per doubling of T; quadratic: x 4.0")


if __name__ == "__main__":
    main()
