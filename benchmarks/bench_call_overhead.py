"""Per-call cost of the torch loss: ``soft_dtw(x, y, 1.0).mean().backward()``, float32 CPU, 2 threads.

Run it once per checkout, in turn, to compare two versions side by side (each run imports
softdtw from the folder given):

    git worktree add /tmp/base <commit>
    for i in 1 2 3; do python benchmarks/bench_call_overhead.py /tmp/base; python benchmarks/bench_call_overhead.py .; done

Prints the best of 7 rounds of 50 calls, in microseconds per call, at each size (B, N, M, D),
and the same step with MSE (``mse_loss(x, y).backward()``): the loss's own cost is the
difference. ``SOFTDTW_KERNEL=numba`` times the numba kernel (the core's baseline).
"""

import sys
import time

sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else ".")

import torch  # noqa: E402

from softdtw.torch import soft_dtw  # noqa: E402

SIZES = [(8, 4, 4, 2), (512, 32, 32, 2)]


def best_us(step) -> float:
    for _ in range(20):
        step()
    best = float("inf")
    for _ in range(7):
        t = time.perf_counter()
        for _ in range(50):
            step()
        best = min(best, (time.perf_counter() - t) / 50)
    return round(best * 1e6, 1)


def main():
    torch.set_num_threads(2)
    res, mse = {}, {}
    for b, n, m, d in SIZES:
        x, y = torch.randn(b, n, d, requires_grad=True), torch.randn(b, m, d)
        res[(b, n, m, d)] = best_us(lambda: soft_dtw(x, y, 1.0).mean().backward())
        if n == m:
            mse[(b, n, m, d)] = best_us(lambda: torch.nn.functional.mse_loss(x, y).backward())
    print(sys.argv[1] if len(sys.argv) > 1 else ".", res, "MSE:", mse)


if __name__ == "__main__":
    main()
