"""Hypothesis strategies that draw whole soft-DTW problems.

Shapes come from a small set of buckets so JIT-compiling realizations (numba, JAX, Triton)
compile few times.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from hypothesis import strategies as st

SMALL_LENGTHS = (1, 2, 3, 4)
LENGTHS = (1, 2, 3, 5, 8, 13)
BATCHES = (1, 2, 3)
FEATURES = (1, 2, 3)


class Problem(NamedTuple):
    x: np.ndarray  # (B, N, D) float64
    y: np.ndarray  # (B, M, D) float64
    gamma: float


def gammas(lo: float = 1e-3, hi: float = 1e2):
    """Log-uniform gamma in [lo, hi]."""
    return st.floats(np.log10(lo), np.log10(hi)).map(lambda e: float(10.0**e))


@st.composite
def problems(draw, lengths=LENGTHS, batches=BATCHES, features=FEATURES, gamma=None,
             scale_range=(1e-3, 1e3)):
    """A batch of pairs (x, y) with N != M allowed, a value scale and a gamma."""
    b = draw(st.sampled_from(batches))
    n = draw(st.sampled_from(lengths))
    m = draw(st.sampled_from(lengths))
    d = draw(st.sampled_from(features))
    scale = draw(st.floats(np.log10(scale_range[0]), np.log10(scale_range[1])).map(lambda e: 10.0**e))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, n, d)) * scale
    y = rng.standard_normal((b, m, d)) * scale
    g = draw(gamma if gamma is not None else gammas())
    return Problem(x, y, g)


@st.composite
def cost_matrices(draw, lengths=SMALL_LENGTHS, batches=BATCHES, gamma=None):
    """A batch of non-negative cost matrices (B, N, M) and a gamma."""
    b = draw(st.sampled_from(batches))
    n = draw(st.sampled_from(lengths))
    m = draw(st.sampled_from(lengths))
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from((1e-2, 1.0, 1e2)))
    cost = np.random.default_rng(seed).random((b, n, m)) * scale
    g = draw(gamma if gamma is not None else gammas())
    return cost, g
