"""python -m softdtw.check: check every installed realization on this machine.

Runs the validation properties (softdtw.testing.properties) for each realization, device and
dtype against the NumPy reference, prints a line per realization and dtype as soon as it is done,
then a table, and exits non-zero on any disagreement, printing the smallest failing example
(paste it into a bug report). Needs hypothesis: pip install -e ".[test]" in a clone of the
repository.

The default run is a quick look (under a minute on two cores once JAX has cached its compiled
code: the first run compiles for a few minutes); --examples 200 checks thoroughly.

examples:
  python -m softdtw.check
  python -m softdtw.check --device cuda --dtype float32 --examples 200
  python -m softdtw.check --realizations torch-triton --examples 2   (the Triton interpreter: slow)
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import textwrap
import time

REALIZATIONS = ("numpy", "torch-cpu", "torch-pure", "torch-triton", "jax")
DTYPES = ("float32", "float64")
EXAMPLES, JAX_EXAMPLES = 5, 2  # the default: a quick look (JAX compiles for every new shape)
JAX_CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "softdtw", "jax")
INTERPRETER = "interpreter: ask for it with --realizations torch-triton"
MISSING_HYPOTHESIS = ('python -m softdtw.check needs hypothesis: pip install -e ".[test]" in a clone of '
                      "the repository (softdtw is not on PyPI yet)")
CASES = ("the examples that passed every check of a property, summed over the properties run "
         "(a property that does not concern a realization, e.g. fork for JAX, is not run). Hypothesis "
         "stops a property after --examples valid examples; draws it rejects (an infeasible band, a "
         "gamma below what float32 resolves) do not count, so it may stop sooner when too many are "
         "rejected; after a failure it runs more, searching on and shrinking the failing example "
         "(the passing ones count too).")


def _property_names():
    """The names in PROPERTIES, or None without hypothesis."""
    try:
        from .testing.properties import PROPERTIES
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != "hypothesis":
            raise
        return None
    return list(PROPERTIES)


def _parser(props) -> argparse.ArgumentParser:
    epilog = "\n\n".join(textwrap.fill(s, 95) for s in [
        "properties: " + (", ".join(props) if props else "(needs hypothesis to list them)"),
        "realizations: " + ", ".join(REALIZATIONS) + ". On the CPU, torch-triton runs in the Triton "
        "interpreter (minutes): only when named in --realizations, not with 'all'.",
        "cases (in the table): " + CASES,
        f"JAX keeps the programs it compiles in {JAX_CACHE} (set JAX_COMPILATION_CACHE_DIR to move it).",
    ])
    p = argparse.ArgumentParser(prog="python -m softdtw.check", description=__doc__, epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--realizations", default="all",
                   help="comma-separated realization names (default: all installed; see below)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default="all", help="comma-separated float32, float64 (default: all)")
    p.add_argument("--examples", type=int,
                   help=f"Hypothesis examples per property (default {EXAMPLES}, {JAX_EXAMPLES} for jax, "
                        "whose every new shape compiles for seconds)")
    p.add_argument("--properties", default="all", help="comma-separated property names (default: all)")
    p.add_argument("--seed-free", action="store_true", help="random examples (default: derandomized)")
    p.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="realizations and dtypes checked at once, in worker processes (default: 2 "
                        "or fewer CPUs; 1 runs in this process)")
    return p


def _check(device, key, dtype, names, examples, derandomize):
    """One realization and dtype: (table row, [(label, dtype, property, report)]). The properties
    run one at a time: JAX keeps the programs it compiles for every new shape (3.5 GB after all
    properties in both dtypes), dropped after each property."""
    from .testing.properties import Result, run
    from .testing.realizations import all_realizations

    real = all_realizations(device)[key]
    start, total = time.perf_counter(), Result(real.label, dtype)
    for name in names:
        res = run(real, dtype, [name], max_examples=examples, derandomize=derandomize)
        total.stats.cases += res.stats.cases
        total.stats.value_err = max(total.stats.value_err, res.stats.value_err)
        total.stats.grad_err = max(total.stats.grad_err, res.stats.grad_err)
        total.failures += res.failures
        if "jax" in sys.modules:
            sys.modules["jax"].clear_caches()
    verdict = "ok" if not total.failures else "FAIL: " + ", ".join(f for f, _ in total.failures)
    row = (real.name, real.device, dtype, total.stats.cases, f"{total.stats.value_err:.2e}",
           f"{total.stats.grad_err:.2e}", f"{time.perf_counter() - start:.1f}", verdict)
    return row, [(real.label, dtype, prop, report) for prop, report in total.failures]


def _print_table(rows):
    header = ("realization", "device", "dtype", "cases*", "max value err", "max grad err", "seconds", "verdict")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    print(textwrap.fill("* cases: " + CASES, 100))


def main(argv=None) -> int:
    props = _property_names()
    p = _parser(props)
    a = p.parse_args(argv)
    if props is None:
        print(MISSING_HYPOTHESIS, file=sys.stderr)
        return 2
    for kind, given, known in (("realization", a.realizations, REALIZATIONS),
                               ("property", a.properties, props), ("dtype", a.dtype, DTYPES)):
        for n in [] if given == "all" else given.split(","):
            if n not in known:
                p.error(f"unknown {kind} {n!r}; choose from {', '.join(known)}")

    # the Triton kernels run on CPU tensors only in the interpreter, chosen before triton loads
    explicit = a.realizations != "all"
    interpret = a.device == "cpu" and explicit and "torch-triton" in a.realizations.split(",")
    if interpret:
        os.environ["TRITON_INTERPRET"] = "1"

    from .testing.realizations import all_realizations

    available = all_realizations(a.device)
    names = props if a.properties == "all" else a.properties.split(",")
    rows, tasks = [], []  # tasks: (row index, _check's arguments)
    for key in a.realizations.split(",") if explicit else available:
        real = available.get(key) or available.get(key.split("-")[0]) or f"not checked on {a.device}"
        if key == "torch-triton" and a.device == "cpu" and not interpret and importlib.util.find_spec("triton"):
            real = INTERPRETER
        if isinstance(real, str):
            rows.append((key, a.device, "-", 0, "-", "-", "-", f"skipped: {real}"))
            print(f"{key}:{a.device}: skipped: {real}", flush=True)
            continue
        for dtype in DTYPES if a.dtype == "all" else a.dtype.split(","):
            if dtype in real.dtypes:
                rows.append(None)
                examples = a.examples or (JAX_EXAMPLES if key == "jax" else EXAMPLES)
                tasks.append((len(rows) - 1, (a.device, key, dtype, names, examples, not a.seed_free)))

    failures = {}

    def done(i, row, fails):
        rows[i], failures[i] = row, fails
        print(f"{row[0]}:{row[1]} {row[2]}: {row[7]} ({row[3]} cases, {row[6]} s)", flush=True)

    if a.jobs > 1 and len(tasks) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # JAX first: it compiles for every new shape, the longest of the checks
        tasks.sort(key=lambda t: t[1][1] != "jax")
        with ProcessPoolExecutor(min(a.jobs, len(tasks)), mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_check, *args): i for i, args in tasks}
            for f in as_completed(futures):
                done(futures[f], *f.result())
    else:
        for i, args in tasks:
            done(i, *_check(*args))

    print()
    _print_table(rows)
    for i in sorted(failures):
        for label, dtype, prop, report in failures[i]:
            print(f"\n=== {label} {dtype}: property {prop!r} failed ===\n{report}")
    return 1 if any(failures.values()) else 0


if __name__ == "__main__":
    # JAX compiles for every new shape (seconds each, most of a run): keep the programs on disk,
    # as numba does, so that the next run reads them (read when jax is imported; the workers
    # inherit it)
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", JAX_CACHE)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    sys.exit(main())
