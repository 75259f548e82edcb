"""Oracles that share no code with the implementation (pure Python / NumPy loops)."""

from __future__ import annotations

import itertools
import math
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=None)
def alignment_paths(n: int, m: int) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Every monotone alignment path from (0, 0) to (n-1, m-1) with steps (1,0), (0,1), (1,1)."""
    if n == 1 and m == 1:
        return (((0, 0),),)
    out = []
    for di, dj in ((1, 0), (0, 1), (1, 1)):
        pn, pm = n - di, m - dj
        if pn >= 1 and pm >= 1:
            out.extend(p + ((n - 1, m - 1),) for p in alignment_paths(pn, pm))
    return tuple(out)


def delannoy(m: int, n: int) -> int:
    """The Delannoy number D(m, n) = sum_k C(m, k) C(n, k) 2^k (paths of an (m+1) x (n+1) grid)."""
    return sum(math.comb(m, k) * math.comb(n, k) * 2**k for k in range(min(m, n) + 1))


def brute_force(cost: np.ndarray, gamma: float, mask: np.ndarray | None = None):
    """Soft-DTW value and expected alignment of one (N, M) cost matrix by enumerating paths.

    value = -gamma log sum_A exp(-<A, C> / gamma), alignment = sum_A p(A) A.
    Paths through a cell outside ``mask`` are excluded.
    """
    cost = np.asarray(cost, dtype=np.float64)
    n, m = cost.shape
    paths = [p for p in alignment_paths(n, m) if mask is None or all(mask[i, j] for i, j in p)]
    scores = np.array([sum(cost[i, j] for i, j in p) for p in paths])
    lo = scores.min()
    weights = np.exp(-(scores - lo) / gamma)
    total = weights.sum()
    value = lo - gamma * math.log(total)
    alignment = np.zeros((n, m))
    for w, p in zip(weights / total, paths):
        for i, j in p:
            alignment[i, j] += w
    return value, alignment


def hard_dtw(cost: np.ndarray) -> float:
    """Classic DTW (sum of costs along the best path) by the textbook cell-by-cell loop."""
    n, m = cost.shape
    r = np.full((n + 1, m + 1), np.inf)
    r[0, 0] = 0.0
    for i, j in itertools.product(range(1, n + 1), range(1, m + 1)):
        r[i, j] = cost[i - 1, j - 1] + min(r[i - 1, j - 1], r[i - 1, j], r[i, j - 1])
    return float(r[n, m])


def sqeuclidean(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Squared Euclidean cost of one pair, by an explicit double loop."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    out = np.empty((x.shape[0], y.shape[0]))
    for i in range(x.shape[0]):
        for j in range(y.shape[0]):
            out[i, j] = float(((x[i] - y[j]) ** 2).sum())
    return out


def central_difference(f, a: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central finite differences of a scalar function ``f`` at ``a`` (float64)."""
    a = np.array(a, dtype=np.float64)
    grad = np.zeros_like(a)
    it = np.nditer(a, flags=["multi_index"])
    for _ in it:
        idx = it.multi_index
        old = a[idx]
        a[idx] = old + eps
        fp = f(a.copy())
        a[idx] = old - eps
        fm = f(a.copy())
        a[idx] = old
        grad[idx] = (fp - fm) / (2 * eps)
    return grad
