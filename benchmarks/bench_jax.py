"""softdtw.jax against ott-jax's SoftDTW on CPU, float32, side by side in one run.

    python benchmarks/bench_jax.py [--reps 7] [--sizes 0,1,2,3,4] [--json PATH]

Both are jitted; ott-jax's ``SoftDTW(gamma)`` is vmapped over the batch and differentiated by
JAX through its scan. Compile time (first call) is reported apart from run time (best of
``--reps`` calls, the implementations' calls interleaved so that a burst of load on a shared
machine hits both alike). Prints a markdown table: ns per cell (B * N * M) forward and forward+backward
(value and gradient w.r.t. x and y), and the ratio ott-jax / softdtw.jax. With --json, also
writes the timings to a results file that ``benchmarks/plot.py`` draws.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

import softdtw.jax as sj

SIZES = [(64, 64, 64, 8), (32, 256, 256, 8), (8, 1024, 1024, 4), (1, 4096, 4096, 1), (512, 32, 32, 2)]
GAMMA = 1.0


def compile_time(f, *args):
    t0 = time.perf_counter()
    jax.block_until_ready(f(*args))
    return time.perf_counter() - t0


def interleaved(fns, *args, reps: int):
    """Best time of each compiled function, their repetitions interleaved (a burst of load on this
    shared machine then hits every implementation alike instead of one of them)."""
    best = [np.inf] * len(fns)
    for _ in range(reps):
        for k, f in enumerate(fns):
            t0 = time.perf_counter()
            jax.block_until_ready(f(*args))
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def ours(x, y):
    return sj.soft_dtw(x, y, GAMMA)


def ott_fn():
    from ott.geometry.costs import SoftDTW

    cost = SoftDTW(gamma=GAMMA)
    return lambda x, y: jax.vmap(cost)(x, y)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--sizes", default=",".join(str(i) for i in range(len(SIZES))))
    ap.add_argument("--json", default=None, help="also write the timings to this results file (for benchmarks/plot.py)")
    args = ap.parse_args()
    try:
        import ott

        impls = {"softdtw.jax": ours, "ott-jax": ott_fn()}
        ott_version = ott.__version__
    except ImportError:
        impls, ott_version = {"softdtw.jax": ours}, "not installed"
    print(f"# softdtw.jax vs ott-jax, CPU float32, gamma={GAMMA}")
    print(f"{datetime.date.today()}, jax {jax.__version__}, ott-jax {ott_version}, {platform.processor() or platform.machine()}, "
          f"{jax.devices()[0].device_kind}, reps={args.reps}\n")
    head = "| B, N, M, D | impl | fwd ns/cell | fwd+bwd ns/cell | compile fwd s | compile fwd+bwd s |"
    print(head)
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    ratios = []
    records = []
    for i in (int(s) for s in args.sizes.split(",")):
        b, n, m, d = SIZES[i]
        rng = np.random.default_rng(0)
        x = jnp.asarray(rng.standard_normal((b, n, d)), jnp.float32)
        y = jnp.asarray(rng.standard_normal((b, m, d)), jnp.float32)
        cells = b * n * m
        res = {}
        compiled = {}
        for name, f in impls.items():
            fwd = jax.jit(lambda x, y, f=f: f(x, y).sum())
            fb = jax.jit(jax.value_and_grad(lambda x, y, f=f: f(x, y).sum(), argnums=(0, 1)))
            compiled[name] = (fwd, fb, compile_time(fwd, x, y), compile_time(fb, x, y))
        names = list(compiled)
        t_fwd = interleaved([compiled[k][0] for k in names], x, y, reps=args.reps)
        t_fb = interleaved([compiled[k][1] for k in names], x, y, reps=args.reps)
        for name, tf, tb in zip(names, t_fwd, t_fb):
            cf, cb = compiled[name][2:]
            res[name] = (tf, tb)
            records.append({"size": [b, n, m, d], "impl": name, "fwd_s": tf, "fwd_bwd_s": tb,
                            "compile_fwd_s": cf, "compile_fwd_bwd_s": cb})
            print(f"| {b}, {n}, {m}, {d} | {name} | {tf / cells * 1e9:.2f} | {tb / cells * 1e9:.2f} | {cf:.2f} | {cb:.2f} |",
                  flush=True)
        if "ott-jax" in res:
            (of, ob), (sf, sb) = res["ott-jax"], res["softdtw.jax"]
            ratios.append(((b, n, m, d), of / sf, ob / sb))
    if ratios:
        print("\n| B, N, M, D | fwd speed-up vs ott-jax | fwd+bwd speed-up vs ott-jax |")
        print("| --- | ---: | ---: |")
        for size, rf, rb in ratios:
            print(f"| {', '.join(map(str, size))} | {rf:.2f}x | {rb:.2f}x |")
    if args.json:
        meta = {"bench": "JAX CPU", "date": str(datetime.date.today()), "machine": platform.processor() or platform.machine(),
                "versions": {"jax": jax.__version__, "ott-jax": ott_version}, "dtype": "float32", "gamma": GAMMA,
                "repeat": args.reps}
        with open(args.json, "w") as fh:
            json.dump(meta | {"results": records}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
