"""Time the numba CPU kernel alone (ns per DP cell), optionally against pysdtw and tslearn.

    python benchmarks/bench_numba_cpu.py [--dtype float32] [--threads 1 2] [--peers] [--accuracy]

Cells are B * N * M (the full matrices, no band). The kernel is timed on a given cost matrix;
peers are timed on (x, y) with D features (their cost is part of their time).
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

from softdtw import spec
from softdtw.kernels import numba_cpu as K

SIZES = [(64, 64, 64, 8), (32, 256, 256, 8), (8, 1024, 1024, 4), (1, 4096, 4096, 1), (512, 32, 32, 2)]


def best_of(fn, repeat, min_time=0.3):
    fn()  # warm up (compile)
    best = float("inf")
    t_end = time.perf_counter() + min_time
    n = 0
    while n < repeat or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        n += 1
        if n >= 50:
            break
    return best


def bench_kernel(B, N, M, D, dtype, gamma=1.0, repeat=3, accuracy=False):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, N, D))
    y = rng.standard_normal((B, M, D))
    from softdtw.numpy import sqeuclidean_cost

    cost64 = sqeuclidean_cost(x, y)
    cost = cost64.astype(dtype)
    xl = np.full(B, N, np.int32)
    yl = np.full(B, M, np.int32)
    lo, hi = spec.band_bounds(N, M, xl, yl)
    gv = np.ones(B, dtype)
    state = {}

    def fwd():
        state["f"] = K.forward(cost, gamma, xl, yl, lo, hi)

    def fwdbwd():
        v, r, aux = K.forward(cost, gamma, xl, yl, lo, hi)
        K.backward(r, aux, gamma, xl, yl, lo, hi, gv, True)

    cells = B * N * M
    tf = best_of(fwd, repeat)
    tfb = best_of(fwdbwd, repeat)
    out = dict(fwd=tf / cells * 1e9, fwdbwd=tfb / cells * 1e9)
    if accuracy:
        from softdtw.numpy import _reference as ref

        v, r, aux = K.forward(cost, gamma, xl, yl, lo, hi)
        g, gg = K.backward(r, aux, gamma, xl, yl, lo, hi, gv, True)
        c = cost.astype(np.float64)  # the reference on the same (rounded) cost
        a, vref = ref.soft_dtw_alignment_from_cost(c, gamma)
        _, ggref = ref.soft_dtw_gamma_grad_from_cost(c, gamma)
        out["err_value"] = float(np.max(np.abs(v - vref) / np.abs(vref)))
        out["err_grad"] = float(np.max(np.abs(g - a)) / np.abs(a).max())
        out["err_ggamma"] = float(np.max(np.abs(gg - ggref) / np.abs(ggref)))
    return out


def bench_peers(B, N, M, D, repeat=3):
    import torch

    out = {}
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.standard_normal((B, N, D)), dtype=torch.float32)
    y = torch.tensor(rng.standard_normal((B, M, D)), dtype=torch.float32)
    cells = B * N * M

    def make_pysdtw():
        import pysdtw

        return pysdtw.SoftDTW(gamma=1.0, use_cuda=False)

    def make_tslearn():
        from tslearn.metrics import SoftDTWLossPyTorch

        return SoftDTWLossPyTorch(gamma=1.0)

    for name, make in (("pysdtw", make_pysdtw), ("tslearn", make_tslearn)):
        try:
            f = make()

            def run_fwd():
                with torch.no_grad():
                    f(x, y)

            def run():
                xx = x.clone().requires_grad_(True)
                f(xx, y).sum().backward()

            out[f"{name}_fwd"] = best_of(run_fwd, repeat, 0.1) / cells * 1e9
            out[f"{name}_fwdbwd"] = best_of(run, repeat, 0.1) / cells * 1e9
        except Exception as e:  # noqa: BLE001
            out[name] = f"failed: {e}"
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--threads", type=int, nargs="*", default=None)
    ap.add_argument("--peers", action="store_true")
    ap.add_argument("--accuracy", action="store_true")
    ap.add_argument("--sizes", default=None, help="e.g. 32x256x256x8,1x4096x4096x1")
    args = ap.parse_args()
    sizes = SIZES
    if args.sizes:
        sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    threads = args.threads or [numba.get_num_threads()]
    for B, N, M, D in sizes:
        for th in threads:
            numba.set_num_threads(th)
            r = bench_kernel(B, N, M, D, np.dtype(args.dtype), accuracy=args.accuracy)
            line = f"({B},{N},{M},{D}) {args.dtype} threads={th} plan={K.plan(B, N, M)}: " \
                   f"fwd {r['fwd']:.2f} ns/cell, fwd+bwd {r['fwdbwd']:.2f} ns/cell"
            if args.accuracy:
                line += f"; err value {r['err_value']:.1e} grad {r['err_grad']:.1e} dgamma {r['err_ggamma']:.1e}"
            print(line, flush=True)
        if args.peers:
            print("   peers:", {k: (round(v, 1) if isinstance(v, float) else v)
                                for k, v in bench_peers(B, N, M, D).items()}, flush=True)


if __name__ == "__main__":
    main()
