"""``python -m softdtw.demo``: the seed example (tslearn's documentation) with every realization installed."""

from __future__ import annotations

import importlib.util

import numpy as np

GAMMA = 0.1


def seed_inputs():
    return np.zeros((4, 3, 2)), np.arange(24).reshape(4, 3, 2)


def main() -> int:
    import softdtw.numpy as snp

    x, y = seed_inputs()
    print("soft-DTW of x = zeros((4, 3, 2)), y = arange(24).reshape(4, 3, 2), gamma = 0.1")
    v, gx, _ = snp.soft_dtw_value_and_grad(x, y, GAMMA)
    np.set_printoptions(precision=6, suppress=True)
    print(f"numpy reference   values {v}  mean {v.mean():.6f}")
    print(f"                  d mean / d x[0] =\n{gx[0] / 4 + 0.0}")  # + 0.0: no -0
    print(f"                  divergence {snp.soft_dtw(x, y, GAMMA, normalize=True)}")
    for name in ("torch", "jax"):
        if importlib.util.find_spec(name) is None:
            print(f"{name:<17} not installed (pip install softdtw[{name}])")
            continue
        try:
            mod = importlib.import_module(f"softdtw.{name}")
            values = getattr(mod, "_demo_values")(x, y, GAMMA)
        except (ImportError, AttributeError) as e:
            print(f"{name:<17} not available yet: {e}")
            continue
        for label, vals in values.items():
            print(f"{label:<17} values {np.asarray(vals)}  max |diff| vs numpy {np.abs(np.asarray(vals) - v).max():.2e}")
    cdist_demo(snp)
    return 0


def cdist_demo(snp, n: int = 300, length: int = 32) -> np.ndarray:
    """A pairwise divergence matrix of n random walks, with a progress bar when tqdm is installed."""
    progress = importlib.util.find_spec("tqdm") is not None
    x = np.cumsum(np.random.default_rng(0).standard_normal((n, length, 2)), axis=1)
    print(f"\ncdist_soft_dtw of {n} random walks (length {length}, D = 2), gamma = 1, normalize=True"
          f"{'' if progress else ' (no progress bar: pip install softdtw[progress])'}")
    k = snp.cdist_soft_dtw(x, gamma=1.0, normalize=True, chunk_size=512, progress=progress)
    nearest = np.where(np.eye(n, dtype=bool), np.inf, k).argmin(axis=1)
    print(f"numpy             ({n}, {n}) matrix, min {k.min():.3g}, max {k.max():.3g}; "
          f"nearest neighbour of series 0: {nearest[0]}")
    return k


if __name__ == "__main__":
    raise SystemExit(main())
