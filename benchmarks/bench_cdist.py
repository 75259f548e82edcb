"""Pairwise soft-DTW matrices: tslearn's ``cdist_soft_dtw`` against ours, side by side in one run.

    python benchmarks/bench_cdist.py [--n 1000] [--length 64] [--dim 2] [--tslearn-rows 40] [--jax]

The symmetric case ``cdist_soft_dtw(X)`` (n (n + 1) / 2 pairs, each of length x length cells).
tslearn computes pair by pair (a Python loop over numba calls): it is timed on the cross matrix of
its first ``--tslearn-rows`` rows against all n series and scaled linearly to the n (n + 1) / 2
pairs of the full symmetric matrix (the output says so). Ours run the whole matrix. Ratio =
tslearn's (scaled) time / ours; higher is better for us.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
import warnings

import numba
import numpy as np


def best_of(fn, repeat, warm=None):
    """Best time of ``repeat`` calls of ``fn`` after one call of ``warm`` (default ``fn``)."""
    fn_out = (warm or fn)()  # warm up (compile, numba's cache)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn_out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, fn_out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--length", type=int, default=64)
    p.add_argument("--dim", type=int, default=2)
    p.add_argument("--gamma", type=float, default=1.0)
    p.add_argument("--tslearn-rows", type=int, default=40, help="rows of the tslearn subset (scaled linearly)")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--jax", action="store_true", help="also time softdtw.jax (CPU)")
    a = p.parse_args(argv)

    import torch

    import softdtw.numpy as snp
    import softdtw.torch as storch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import tslearn
        from tslearn.metrics import cdist_soft_dtw as tslearn_cdist

    n, L, D, g = a.n, a.length, a.dim, a.gamma
    pairs = n * (n + 1) // 2
    cells = pairs * L * L
    X = np.cumsum(np.random.default_rng(0).standard_normal((n, L, D)), axis=1) / np.sqrt(L)
    print(f"# cdist_soft_dtw(X), X of shape ({n}, {L}, {D}), gamma = {g}: {pairs} pairs, {cells:.3g} cells")
    print(f"# {datetime.date.today()}, load average {os.getloadavg()[0]:.1f}, {platform.machine()}, {os.cpu_count()} CPUs, numba threads "
          f"{numba.get_num_threads()}, numpy {np.__version__}, numba {numba.__version__}, torch {torch.__version__}, "
          f"tslearn {tslearn.__version__}")

    rows = min(a.tslearn_rows, n)
    t_sub, sub = best_of(lambda: tslearn_cdist(X[:rows], X, gamma=g), 1)
    t_tslearn = t_sub * pairs / (rows * n)
    print(f"# tslearn timed on its first {rows} rows x {n} ({rows * n} pairs) in {t_sub:.2f} s, "
          f"scaled linearly to {pairs} pairs")

    rows_out = [("tslearn (scaled)", "float64", t_tslearn)]
    ref = None
    for dtype in ("float64", "float32"):
        x = X.astype(dtype)
        t, out = best_of(lambda: snp.cdist_soft_dtw(x, gamma=g), a.repeat,
                         warm=lambda: snp.cdist_soft_dtw(x[:100], gamma=g))
        rows_out.append(("softdtw.numpy (numba)", dtype, t))
        if dtype == "float64":
            ref = out
            err = np.abs(out[:rows] - sub).max() / np.abs(sub).max()
            print(f"# agreement with tslearn on its rows (float64): max relative difference {err:.1e}")
        xt = torch.as_tensor(x)
        with torch.no_grad():
            t, out = best_of(lambda: storch.cdist_soft_dtw(xt, gamma=g), a.repeat,
                             warm=lambda: storch.cdist_soft_dtw(xt[:100], gamma=g))
        rows_out.append(("softdtw.torch (CPU)", dtype, t))
        assert np.abs(out.numpy() - ref).max() <= (1e-9 if dtype == "float64" else 1e-4) * np.abs(ref).max()
    if a.jax:
        import jax

        import softdtw.jax as sjax

        x32 = X.astype(np.float32)
        t, _ = best_of(lambda: sjax.cdist_soft_dtw(x32, gamma=g).block_until_ready(), 1,
                       warm=lambda: sjax.cdist_soft_dtw(x32[:100], gamma=g).block_until_ready())
        rows_out.append((f"softdtw.jax {jax.__version__} (CPU)", "float32", t))

    print()
    print("| implementation | dtype | time s | ns per cell | pairs per s | tslearn / ours |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name, dtype, t in rows_out:
        ratio = "" if name.startswith("tslearn") else f"{t_tslearn / t:.1f}x"
        print(f"| {name} | {dtype} | {t:.2f} | {t / cells * 1e9:.2f} | {pairs / t:,.0f} | {ratio} |")
    print(f"# load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
