"""``python -m softdtw.check``: check every installed realization on this machine.

Runs the validation properties (``softdtw.testing.properties``) for each realization, device
and dtype against the NumPy reference, prints a table and exits non-zero on any disagreement,
printing the smallest failing example (paste it into a bug report). Needs hypothesis
(``pip install softdtw[test]``).

    python -m softdtw.check --device cuda --dtype float32 --examples 200
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m softdtw.check", description=__doc__.split("\n\n")[0])
    p.add_argument("--realizations", default="all",
                   help="comma-separated: numpy, torch-numba, torch-pure, torch-triton, jax (default: all installed)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default="float32,float64", help="comma-separated float32, float64")
    p.add_argument("--examples", type=int, default=10, help="Hypothesis examples per property (default 10)")
    p.add_argument("--properties", default="all", help="comma-separated property names (default: all)")
    p.add_argument("--seed-free", action="store_true", help="random examples (default: derandomized)")
    a = p.parse_args(argv)

    if a.device == "cpu" and "torch-triton" in (a.realizations if a.realizations != "all" else "torch-triton"):
        # the Triton kernels run on CPU tensors only in the interpreter, chosen before triton loads
        os.environ.setdefault("TRITON_INTERPRET", "1")

    from .testing.properties import PROPERTIES, run
    from .testing.realizations import all_realizations

    available = all_realizations(a.device)
    wanted = list(available) if a.realizations == "all" else a.realizations.split(",")
    names = None if a.properties == "all" else a.properties.split(",")
    for n in names or []:
        if n not in PROPERTIES:
            p.error(f"unknown property {n!r}; choose from {', '.join(PROPERTIES)}")
    dtypes = a.dtype.split(",")

    rows, failures = [], []
    for key in wanted:
        real = available.get(key, "unknown realization")
        if isinstance(real, str):
            rows.append((key, a.device, "-", 0, "-", "-", f"skipped: {real}"))
            continue
        for dtype in dtypes:
            if dtype not in real.dtypes:
                continue
            res = run(real, dtype, names, max_examples=a.examples, derandomize=not a.seed_free)
            verdict = "ok" if not res.failures else "FAIL: " + ", ".join(f for f, _ in res.failures)
            rows.append((real.name, real.device, dtype, res.stats.cases, f"{res.stats.value_err:.2e}",
                         f"{res.stats.grad_err:.2e}", verdict))
            failures += [(real.label, dtype, prop, report) for prop, report in res.failures]

    header = ("realization", "device", "dtype", "cases", "max value err", "max grad err", "verdict")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    for label, dtype, prop, report in failures:
        print(f"\n=== {label} {dtype}: property {prop!r} failed ===\n{report}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
