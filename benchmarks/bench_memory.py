"""Peak memory of forward + backward with ``memory="checkpoint"`` against the default, CPU.

    python benchmarks/bench_memory.py [--n 32768] [--dtype float32] [--default]

Runs one configuration per process (peak RSS is per process): prints the time, the peak
resident memory of the process (``ru_maxrss``) and what the default path would hold
(``R`` and the cost and gradient matrices, ``3 B N M`` numbers).
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from softdtw.torch import soft_dtw


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=32768, help="N = M")
    p.add_argument("--b", type=int, default=1)
    p.add_argument("--d", type=int, default=1)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--default", action="store_true", help="the default memory mode instead")
    a = p.parse_args()
    dtype = getattr(torch, a.dtype)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(a.b, a.n, a.d, generator=g, dtype=dtype).cumsum(1).requires_grad_()
    y = torch.randn(a.b, a.n, a.d, generator=g, dtype=dtype).cumsum(1)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    value = soft_dtw(x, y, 1.0, memory="full" if a.default else "checkpoint")
    value.sum().backward()
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    would = 3 * a.b * a.n * a.n * dtype.itemsize / 2**20
    mode = "default" if a.default else "checkpoint"
    print(f"{mode}: B={a.b} N=M={a.n} D={a.d} {a.dtype}: {dt:.1f} s fwd+bwd, peak RSS {peak:.0f} MB "
          f"(before the call {base:.0f} MB); the default path holds ~{would:.0f} MB of (B, N, M) buffers; "
          f"value {value.sum().item():.6g}, |grad| {x.grad.abs().sum().item():.6g}")


if __name__ == "__main__":
    main()
