"""JAX realization of soft-DTW (``pip install softdtw[jax]``).

A ``jax.custom_vjp`` over the pure step functions of :mod:`softdtw.spec`, driven by
``lax.scan`` over anti-diagonals: the forward stores ``R``, the backward is a reverse scan that
rebuilds the softmin weights from it. Composes with ``jit``, ``vmap``, ``grad`` (to any order in
reverse mode); a traced ``gamma`` gets its gradient. See ``docs/jax.md``.
"""

try:
    import jax  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised in a subprocess test
    raise ImportError("softdtw.jax needs JAX: pip install softdtw[jax]") from e

from ._api import (  # noqa: E402
    soft_dtw,
    soft_dtw_alignment,
    soft_dtw_alignment_from_cost,
    soft_dtw_from_cost,
    sqeuclidean_cost,
)
from ._barycenter import soft_dtw_barycenter  # noqa: E402
from ._cdist import cdist_soft_dtw  # noqa: E402

__all__ = [
    "cdist_soft_dtw",
    "soft_dtw",
    "soft_dtw_alignment",
    "soft_dtw_alignment_from_cost",
    "soft_dtw_barycenter",
    "soft_dtw_from_cost",
    "sqeuclidean_cost",
]


def _demo_values(x, y, gamma):
    """Values of the seed example in float32 and float64 (``python -m softdtw.demo``).

    float64 is computed inside ``jax.enable_x64(True)``, so the global setting is left as it was.
    """
    import numpy as np

    out = {"jax float32": np.asarray(soft_dtw(np.asarray(x, np.float32), np.asarray(y, np.float32), gamma))}
    with jax.enable_x64(True):
        out["jax float64"] = np.asarray(soft_dtw(np.asarray(x, np.float64), np.asarray(y, np.float64), gamma))
    return out
