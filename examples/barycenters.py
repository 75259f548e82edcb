"""Soft-DTW barycenters of a few groups of time-warped series, against the Euclidean mean.

    python examples/barycenters.py [--small] [--out FOLDER]

Three groups of series generated here (one shape per group: a bump, two bumps, a ramp then a
drop), each series read along its own random clock (time warping) with a little noise. The
Euclidean mean of a group blurs its shape (the features do not line up in time); the soft-DTW
barycenter (``softdtw.numpy.soft_dtw_barycenter``: L-BFGS on the sum of soft-DTW values,
started from that mean) keeps it. Writes ``barycenters.png`` (one panel per group: the series,
the mean, the barycenters for gamma = 0.1 and 1) and ``metrics.json`` (per group and gamma,
the objective sum_i sdtw(Z, X_i) at the mean and at the barycenter) into ``--out``.
"""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import softdtw.numpy as sdtw  # noqa: E402
from _common import parse_args  # noqa: E402

GAMMAS = (0.1, 1.0)
SHAPES = {
    "bump": lambda t: np.exp(-0.5 * ((t - 0.5) / 0.06) ** 2),
    "two bumps": lambda t: np.exp(-0.5 * ((t - 0.3) / 0.05) ** 2) + 0.7 * np.exp(-0.5 * ((t - 0.7) / 0.05) ** 2),
    "ramp and drop": lambda t: np.where(t < 0.65, t / 0.65, np.exp(-(t - 0.65) / 0.04)),
}


def warped_group(shape, n: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` series ``(n, length, 1)``: ``shape`` read along random monotone clocks, plus noise."""
    t = np.linspace(0, 1, length)
    out = []
    for _ in range(n):
        a = rng.uniform(-0.15, 0.15)
        clock = np.clip(t + a * np.sin(np.pi * t), 0, 1)  # monotone for |a| < 1/pi
        out.append(shape(clock) + rng.normal(0, 0.02, length))
    return np.asarray(out)[..., None]


def objective(z, group, gamma) -> float:
    return float(sdtw.soft_dtw(np.broadcast_to(z, group.shape), group, gamma).sum())


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    n, length, iters = (6, 40, 30) if args.small else (20, 100, 100)
    rng = np.random.default_rng(args.seed)

    fig, axes = plt.subplots(1, len(SHAPES), figsize=(4.2 * len(SHAPES), 3.4), sharey=True)
    metrics = {}
    for ax, (name, shape) in zip(axes, SHAPES.items()):
        group = warped_group(shape, n, length, rng)
        mean = group.mean(axis=0)
        for series in group:
            ax.plot(series[:, 0], color="0.75", lw=0.8)
        ax.plot(mean[:, 0], color="tab:blue", lw=2, label="Euclidean mean")
        metrics[name] = {}
        for gamma, color in zip(GAMMAS, ("tab:red", "tab:orange")):
            z, value = sdtw.soft_dtw_barycenter(group, gamma, max_iter=iters)
            metrics[name][str(gamma)] = {"objective_at_mean": objective(mean, group, gamma),
                                         "objective_at_barycenter": float(value)}
            ax.plot(z[:, 0], color=color, lw=2, label=f"soft-DTW barycenter, gamma={gamma}")
        ax.set_title(name)
        ax.set_xlabel("time step")
    axes[0].legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out / "barycenters.png", dpi=110)
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    for name, per_gamma in metrics.items():
        for gamma, m in per_gamma.items():
            print(f"{name:14s} gamma={gamma:4s} objective: mean {m['objective_at_mean']:10.3f}, "
                  f"barycenter {m['objective_at_barycenter']:10.3f}")


if __name__ == "__main__":
    main()
