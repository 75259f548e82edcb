"""Draw a benchmark results file: ns per DP cell against the problem size, one line per realization.

    python benchmarks/bench_torch.py --json results_torch.json
    python benchmarks/plot.py results_torch.json --out docs/img/bench_torch.png

Reads the file written by ``bench_torch.py --json`` or ``bench_jax.py --json`` and draws two
panels, forward and forward+backward, with the time per cell ``t / (B N M)`` (log scale) of
every realization and peer at every size, sizes in the order they were run, labelled
``B,N,M,D``. Needs matplotlib.
"""

from __future__ import annotations

import argparse
import json
import pathlib


def load(path: pathlib.Path) -> dict:
    data = json.loads(path.read_text())
    for r in data["results"]:
        b, n, m, _ = r["size"]
        r["cells"] = b * n * m
    return data


def draw(data: dict, out: pathlib.Path, title: str | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(dict.fromkeys(tuple(r["size"]) for r in data["results"]))
    impls = list(dict.fromkeys(r["impl"] for r in data["results"]))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True, layout="constrained")
    for ax, key, label in zip(axes, ("fwd_s", "fwd_bwd_s"), ("forward", "forward + backward")):
        for impl in impls:
            rows = {tuple(r["size"]): r for r in data["results"] if r["impl"] == impl}
            xs = [k for k, s in enumerate(sizes) if s in rows]
            ys = [rows[sizes[k]][key] / rows[sizes[k]]["cells"] * 1e9 for k in xs]
            ax.plot(xs, ys, marker="o", label=impl)
        ax.set_xticks(range(len(sizes)), [",".join(map(str, s)) for s in sizes], rotation=30)
        ax.set_yscale("log")
        ax.set_xlabel("B,N,M,D")
        ax.set_title(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("ns per cell (lower is better)")
    axes[0].legend()
    versions = ", ".join(f"{k} {v}" for k, v in data.get("versions", {}).items())
    fig.suptitle(title or f"{data.get('bench', '')}, {data.get('dtype', '')}, {data.get('date', '')} ({versions})")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", type=pathlib.Path, help="a results file of bench_torch.py / bench_jax.py --json")
    p.add_argument("--out", type=pathlib.Path, required=True, help="the figure to write (.png, .svg)")
    p.add_argument("--title", default=None)
    a = p.parse_args()
    draw(load(a.results), a.out, a.title)


if __name__ == "__main__":
    main()
