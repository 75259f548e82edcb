"""float32 accuracy of softdtw.jax against the float64 NumPy reference (not a test: run by hand).

    python benchmarks/accuracy_jax.py [--sizes 0,1,2,3,4] [--gammas 1.0,0.1]

Inputs are standard normal float32 arrays; the reference gets the same numbers in float64. For
each size and gamma it prints the relative errors, ``max |err| / max |reference|``, of the
float32 value and gradients ``dV/dx``, ``dV/dy`` (default squared Euclidean cost, formed inside
the scan), of ``dV/dC`` (``soft_dtw_alignment_from_cost`` on the float32 cost ``C``, against the
reference on the same numbers) and of ``dV/dgamma`` (summed over the batch). The column
"dV/dC floor" is how far the reference's own alignment moves when ``C`` is rounded to float32:
the error that no float32 computation from the float64 cost can avoid.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import softdtw.jax as sj
import softdtw.numpy as snp

SIZES = [(64, 64, 64, 8), (32, 256, 256, 8), (4, 1024, 1024, 4), (1, 4096, 4096, 1), (512, 32, 32, 2)]


def rel(a, ref) -> float:
    a, ref = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    return float(np.max(np.abs(a - ref)) / np.max(np.abs(ref)))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default=",".join(str(i) for i in range(len(SIZES))))
    ap.add_argument("--gammas", default="1.0,0.1")
    args = ap.parse_args()
    print(f"# softdtw.jax float32 vs float64 NumPy reference, jax {jax.__version__}")
    print("| B, N, M, D | gamma | value | dV/dx | dV/dy | dV/dC | dV/dC floor | dV/dgamma |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for i in (int(s) for s in args.sizes.split(",")):
        b, n, m, d = SIZES[i]
        rng = np.random.default_rng(0)
        x = rng.standard_normal((b, n, d)).astype(np.float32)
        y = rng.standard_normal((b, m, d)).astype(np.float32)
        x64, y64 = x.astype(np.float64), y.astype(np.float64)
        cost64 = snp.sqeuclidean_cost(x64, y64)
        cost32 = cost64.astype(np.float32)
        for gamma in (float(g) for g in args.gammas.split(",")):
            f = jax.jit(jax.value_and_grad(lambda a, c, g=gamma: sj.soft_dtw(a, c, g).sum(), argnums=(0, 1)))
            _, (gx, gy) = f(jnp.asarray(x), jnp.asarray(y))
            v = sj.soft_dtw(jnp.asarray(x), jnp.asarray(y), gamma)
            vr, gxr, gyr = snp.soft_dtw_value_and_grad(x64, y64, gamma)
            a, _ = sj.soft_dtw_alignment_from_cost(jnp.asarray(cost32), gamma)
            ar, _ = snp.soft_dtw_alignment_from_cost(cost32.astype(np.float64), gamma)
            ar64, _ = snp.soft_dtw_alignment_from_cost(cost64, gamma)
            gg = jax.jit(jax.grad(lambda g: sj.soft_dtw(jnp.asarray(x), jnp.asarray(y), g).sum()))(jnp.float32(gamma))
            _, ggr = snp.soft_dtw_gamma_grad_from_cost(cost64, gamma)
            print(f"| {b}, {n}, {m}, {d} | {gamma:g} | {rel(v, vr):.1e} | {rel(gx, gxr):.1e} | {rel(gy, gyr):.1e} "
                  f"| {rel(a, ar):.1e} | {rel(ar, ar64):.1e} | {rel(gg, ggr.sum()):.1e} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
