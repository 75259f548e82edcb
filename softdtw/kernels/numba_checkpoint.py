r"""numba CPU kernel of the low-memory soft-DTW (``memory="checkpoint"``), float64 throughout.

Row by row, one pair per task: the forward keeps ``R`` only every ``seg``-th row (``seg``
about ``sqrt(N)``); the backward takes the row bands bottom-up, recomputes each band's rows
from the checkpoint above it, and runs the alignment recursion over them

.. math::

    E_{i,j} = w^{\mathrm{up}}_{i+1,j} E_{i+1,j} + w^{\mathrm{left}}_{i,j+1} E_{i,j+1}
              + w^{\mathrm{diag}}_{i+1,j+1} E_{i+1,j+1},

the weights being each cell's normalised softmin weights over its predecessors, rebuilt from
``R`` (the minimum factored out, exponents <= 0). Memory per pair: ``(N / seg + seg + 3) (M + 1)``
numbers. The squared Euclidean cost is computed from ``x`` and ``y`` as the sweep needs it and
its gradient goes straight to ``x`` and ``y``; a cost matrix can be given instead.

Same value for any ``seg`` (the same operations on the same numbers; tested), and the float64
reference's to rounding; exact ``exp``/``log``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .numba_cpu import _run_blocks

_JIT = dict(cache=True, nogil=True)
INF = np.inf


def segment_rows(n: int) -> int:
    """Rows per band: about ``sqrt(N)``."""
    return max(1, math.isqrt(max(n, 1)))


@njit(**_JIT)
def _cost(x, y, cost, b, i, j):
    if cost.shape[0] > 0:
        return cost[b, i, j]
    s = 0.0
    for d in range(x.shape[2]):
        t = x[b, i, d] - y[b, j, d]
        s += t * t
    return s


@njit(**_JIT)
def _softmin(a, b_, c, gamma):
    m = min(a, b_, c)
    if m == INF:
        return INF
    return m - gamma * math.log(math.exp(-(a - m) / gamma) + math.exp(-(b_ - m) / gamma)
                                + math.exp(-(c - m) / gamma))


@njit(**_JIT)
def _row(x, y, cost, b, i, prev, cur, m, lo, hi, gamma):
    """``cur`` = DP row ``i`` (1-based) from ``prev`` (row ``i - 1``), columns ``1..m``."""
    cur[0] = INF
    a = lo[b, i - 1]
    z = min(hi[b, i - 1], m)
    for j in range(1, m + 1):
        if j - 1 < a or j - 1 >= z:
            cur[j] = INF
        else:
            cur[j] = _cost(x, y, cost, b, i - 1, j - 1) + _softmin(prev[j - 1], prev[j], cur[j - 1], gamma)


@njit(**_JIT)
def _weights(d, u, l, gamma):
    """Normalised softmin weights of predecessors (diag, up, left); zeros if all are +inf."""
    m = min(d, u, l)
    if m == INF:
        return 0.0, 0.0, 0.0
    ed = math.exp(-(d - m) / gamma) if d != INF else 0.0
    eu = math.exp(-(u - m) / gamma) if u != INF else 0.0
    el = math.exp(-(l - m) / gamma) if l != INF else 0.0
    s = ed + eu + el
    return ed / s, eu / s, el / s


@njit(**_JIT)
def forward_pair(x, y, cost, b, n, m, lo, hi, gamma, seg, ckpt):
    """Value of pair ``b``; rows ``0, seg, 2 seg, ...`` of ``R`` into ``ckpt[b]``."""
    prev = np.full(m + 1, INF)
    cur = np.empty(m + 1)
    prev[0] = 0.0
    ckpt[b, 0, : m + 1] = prev
    for i in range(1, n + 1):
        _row(x, y, cost, b, i, prev, cur, m, lo, hi, gamma)
        if i % seg == 0:
            ckpt[b, i // seg, : m + 1] = cur
        prev, cur = cur, prev
    return prev[m]


@njit(**_JIT)
def backward_pair(x, y, cost, b, n, m, lo, hi, gamma, seg, ckpt, gv, gx, gy, gcost):
    """The gradient of pair ``b``'s value times ``gv`` into ``gx``/``gy`` (or ``gcost``).

    Each cell's weights over its predecessors are computed once, when its row is reached:
    ``(diag, up)`` are kept for the row above, ``left`` for the cell to the left."""
    band = np.empty((seg + 1, m + 1))  # DP rows r0 .. r0 + seg of the current band
    ebelow = np.zeros(m + 2)  # E of the row under the current one
    erow = np.zeros(m + 2)
    wd_b = np.zeros(m + 2)  # diag / up weights of the cells of the row under the current one
    wu_b = np.zeros(m + 2)
    wd_c = np.zeros(m + 2)
    wu_c = np.zeros(m + 2)
    sq = gcost.shape[0] == 0
    for k in range((n - 1) // seg, -1, -1):  # band k: rows k seg + 1 .. min((k + 1) seg, n)
        r0 = k * seg
        r1 = min(r0 + seg, n)
        band[0, : m + 1] = ckpt[b, k, : m + 1]
        for i in range(r0 + 1, r1 + 1):
            _row(x, y, cost, b, i, band[i - 1 - r0], band[i - r0], m, lo, hi, gamma)
        for i in range(r1, r0, -1):
            cur = band[i - r0]
            up = band[i - 1 - r0]
            wl_next = 0.0  # left weight of cell (i, j + 1)
            for j in range(m, 0, -1):
                if i == n and j == m:
                    e = gv
                else:
                    e = erow[j + 1] * wl_next if j < m else 0.0
                    if i < n:
                        e += ebelow[j] * wu_b[j] + ebelow[j + 1] * wd_b[j + 1]
                erow[j] = e
                if cur[j] < INF:
                    wd, wu, wl = _weights(up[j - 1], up[j], cur[j - 1], gamma)
                else:
                    wd, wu, wl = 0.0, 0.0, 0.0
                wd_c[j] = wd
                wu_c[j] = wu
                wl_next = wl
                if e != 0.0:
                    if sq:
                        for d in range(x.shape[2]):
                            t = 2.0 * e * (x[b, i - 1, d] - y[b, j - 1, d])
                            gx[b, i - 1, d] += t
                            gy[b, j - 1, d] -= t
                    else:
                        gcost[b, i - 1, j - 1] = e
            ebelow, erow = erow, ebelow
            wd_b, wd_c = wd_c, wd_b
            wu_b, wu_c = wu_c, wu_b


def _arrays(x, y, cost, lo, hi):
    """The kernels' argument types: float64 arrays (an empty 3-d one for what is None) and
    int64 bounds."""
    empty3 = np.zeros((0, 0, 0))
    x, y, cost = (empty3 if a is None else np.ascontiguousarray(a, np.float64) for a in (x, y, cost))
    return x, y, cost, np.ascontiguousarray(lo, np.int64), np.ascontiguousarray(hi, np.int64)


def forward(x, y, cost, gamma, x_len, y_len, lo, hi, seg, threads=1):
    """Values (B,) float64 and the checkpoints ``(B, N // seg + 1, M + 1)``.

    ``x``/``y`` ``(B, N, D)``/``(B, M, D)`` float64 with ``cost`` None (squared Euclidean), or
    ``cost`` ``(B, N, M)`` float64 with ``x``/``y`` None."""
    ref = x if cost is None else cost
    batch, n = ref.shape[0], ref.shape[1]
    m = y.shape[1] if cost is None else cost.shape[2]
    x, y, cost, lo, hi = _arrays(x, y, cost, lo, hi)
    ckpt = np.empty((batch, n // seg + 1, m + 1))
    value = np.empty(batch)

    def one(b):
        value[b] = forward_pair(x, y, cost, b, int(x_len[b]), int(y_len[b]), lo, hi, float(gamma), seg, ckpt)

    _run_blocks(one, batch, threads)
    return value, ckpt


def backward(x, y, cost, gamma, x_len, y_len, lo, hi, seg, ckpt, grad_value, threads=1):
    """``(gx, gy)`` (squared Euclidean) or ``grad_cost``, float64, times ``grad_value``."""
    batch = ckpt.shape[0]
    sq = cost is None
    x, y, cost, lo, hi = _arrays(x, y, cost, lo, hi)
    gx = np.zeros_like(x)
    gy = np.zeros_like(y)
    gcost = np.zeros_like(cost)
    gv = np.asarray(grad_value, np.float64)

    def one(b):
        n, m = int(x_len[b]), int(y_len[b])
        backward_pair(x, y, cost, b, n, m, lo, hi, float(gamma), seg, ckpt, float(gv[b]), gx, gy, gcost)

    _run_blocks(one, batch, threads)
    return (gx, gy) if sq else gcost
