"""The soft alignment: heatmaps of the expected alignment for gamma = 0.01, 0.1, 1, 10.

    python examples/alignment.py [--small] [--out FOLDER]

Two series generated here (a signal and a time-warped, noisy copy of it of another length);
for each gamma, ``softdtw.plot.plot_alignment`` draws the expected alignment
``E = d sdtw / d C`` (the probability that an alignment path goes through cell (i, j)) with the
hard DTW path in red. Small gammas concentrate E on the DTW path, large ones spread it over
many paths. Writes ``alignment_gammas.png`` (the four heatmaps), ``alignment.png`` (both series
and the heatmap at gamma = 1) and ``metrics.json`` (for each gamma, the share of the expected
alignment that lies on the DTW path) into ``--out``.
"""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import softdtw.numpy as sdtw  # noqa: E402
from _common import parse_args  # noqa: E402
from softdtw.plot import plot_alignment  # noqa: E402

GAMMAS = (0.01, 0.1, 1.0, 10.0)


def warped_pair(n: int, m: int, seed: int):
    """A signal ``x`` of length ``n`` and ``y``, the same signal read along a warped clock, length ``m``."""
    rng = np.random.default_rng(seed)
    signal = lambda t: np.sin(2 * np.pi * t) + 0.8 * np.exp(-0.5 * ((t - 0.6) / 0.05) ** 2)  # noqa: E731
    x = signal(np.linspace(0, 1, n))
    s = np.linspace(0, 1, m)
    y = signal(s + 0.12 * np.sin(np.pi * s) ** 2 * np.sign(0.5 - s)) + rng.normal(0, 0.05, m)
    return x, y


def path_mass(x, y, gamma: float) -> float:
    """Share of the expected alignment's total mass that lies on the hard DTW path."""
    from softdtw.plot import _dtw_path

    alignment, _ = sdtw.soft_dtw_alignment(x[:, None], y[:, None], gamma)
    on_path = sum(alignment[p] for p in _dtw_path(sdtw.sqeuclidean_cost(x[:, None], y[:, None])))
    return float(on_path / alignment.sum())


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    n, m = (30, 24) if args.small else (80, 60)
    x, y = warped_pair(n, m, args.seed)

    fig, axes = plt.subplots(2, 2, figsize=(8, 7), sharex=True, sharey=True, layout="constrained")
    for gamma, ax in zip(GAMMAS, axes.flat):
        plot_alignment(x, y, gamma, ax=ax)
        ax.label_outer()
    fig.colorbar(axes.flat[0].images[0], ax=axes, label="expected alignment", shrink=0.8)
    fig.suptitle("Soft-DTW expected alignment (red: the hard DTW path)")
    fig.savefig(args.out / "alignment_gammas.png", dpi=100)
    plt.close(fig)

    fig = plot_alignment(x, y, 1.0)
    fig.savefig(args.out / "alignment.png", dpi=100)
    plt.close(fig)

    mass = {str(g): path_mass(x, y, g) for g in GAMMAS}
    print("| gamma | share of the expected alignment on the DTW path |")
    print("| ---: | ---: |")
    for g, v in mass.items():
        print(f"| {g} | {v:.3f} |")
    (args.out / "metrics.json").write_text(json.dumps({"path_mass": mass}, indent=1))


if __name__ == "__main__":
    main()
