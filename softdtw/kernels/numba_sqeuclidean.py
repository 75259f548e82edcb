r"""numba CPU kernels of the squared Euclidean cost and its gradient, in a fixed order.

.. math::

    C_{ij} = \sum_d (x_{id} - y_{jd})^2, \qquad
    \frac{\partial}{\partial x_{id}} \mathrel{+}= 2 g_{ij} (x_{id} - y_{jd}), \quad
    \frac{\partial}{\partial y_{jd}} \mathrel{-}= 2 g_{ij} (x_{id} - y_{jd})

The sums run over ``d`` upwards for a cost, and over the cells row by row from the last row,
each row from its last column, for the gradient; products are never fused into an FMA
(:func:`softdtw.kernels.numba_cpu._mulx`). The checkpointed kernel
(:mod:`softdtw.kernels.numba_checkpoint`) computes its costs and pushes its gradient through the
same two functions (:func:`cell_cost`, :func:`push_grad`) in the same order, which is what makes
``memory="checkpoint"`` equal to the default path to the last bit in float64. The torch
realization uses these kernels for float64 CPU tensors (:func:`softdtw.torch.sqeuclidean_cost`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .numba_cpu import _FM, _mulx, _run_blocks, _threads

_JIT = dict(cache=True, nogil=True, error_model="numpy", fastmath=_FM)


@njit(inline="always", **_JIT)
def cell_cost(x, y, b, i, j):
    """``sum_d (x[b, i, d] - y[b, j, d]) ** 2``, d upwards."""
    s = 0.0
    for d in range(x.shape[2]):
        t = x[b, i, d] - y[b, j, d]
        s = s + _mulx(t, t)
    return s


@njit(inline="always", **_JIT)
def push_grad(x, y, b, i, j, g, gx, gy):
    """Adds ``2 g (x_i - y_j)`` to ``gx[b, i]`` and subtracts it from ``gy[b, j]``."""
    g2 = _mulx(2.0, g)
    for d in range(x.shape[2]):
        t = _mulx(g2, x[b, i, d] - y[b, j, d])
        gx[b, i, d] = gx[b, i, d] + t
        gy[b, j, d] = gy[b, j, d] - t


@njit(**_JIT)
def _cost_pairs(x, yt, b0, b1, out):
    """:func:`cell_cost` of every cell, a row at a time with the columns innermost (``yt`` is
    ``y`` transposed, ``(B, D, M)``): the same operations per cell, vectorised."""
    for b in range(b0, b1):
        for i in range(x.shape[1]):
            row = out[b, i]
            row[:] = 0.0
            for d in range(x.shape[2]):
                xd = x[b, i, d]
                ytd = yt[b, d]
                for j in range(row.size):
                    t = xd - ytd[j]
                    row[j] = row[j] + _mulx(t, t)


@njit(**_JIT)
def _grad_pairs(x, y, g, b0, b1, gx, gy):
    """:func:`push_grad` of every cell with ``g != 0``, row by row from the last row, each row
    from its last column (a two-sweep form vectorised over the columns measured no faster)."""
    for b in range(b0, b1):
        for i in range(x.shape[1] - 1, -1, -1):
            for j in range(y.shape[1] - 1, -1, -1):
                v = g[b, i, j]
                if v != 0.0:
                    push_grad(x, y, b, i, j, v, gx, gy)


def _by_ranges(fn, batch: int, cells: int, threads: int | None) -> None:
    """``fn(b0, b1)`` over contiguous ranges of pairs, one per thread (a task per pair cost
    more than a small batch's arithmetic); one range under 2^16 cells (waking a thread costs
    more than that)."""
    parts = max(1, min(batch, threads or _threads())) if cells >= 1 << 16 else 1
    edges = np.linspace(0, batch, parts + 1).astype(np.int64)
    _run_blocks(lambda k: fn(edges[k], edges[k + 1]), parts, threads)


def cost(x: np.ndarray, y: np.ndarray, out: np.ndarray | None = None, threads: int | None = None) -> np.ndarray:
    """``(B, N, M)`` float64 costs of ``x`` (B, N, D) and ``y`` (B, M, D), float64 (into ``out``)."""
    x = np.ascontiguousarray(x, np.float64)
    yt = np.ascontiguousarray(np.swapaxes(y, 1, 2), np.float64)
    if out is None:
        out = np.empty((x.shape[0], x.shape[1], y.shape[1]))
    _by_ranges(lambda b0, b1: _cost_pairs(x, yt, b0, b1, out), x.shape[0], out.size, threads)
    return out


def grad(x: np.ndarray, y: np.ndarray, g: np.ndarray, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(d/dx, d/dy)`` of ``sum_ij g_ij C_ij`` (float64), summed in the order described above."""
    x = np.ascontiguousarray(x, np.float64)
    y = np.ascontiguousarray(y, np.float64)
    g = np.ascontiguousarray(g, np.float64)
    gx = np.zeros_like(x)
    gy = np.zeros_like(y)
    _by_ranges(lambda b0, b1: _grad_pairs(x, y, g, b0, b1, gx, gy), x.shape[0], g.size, threads)
    return gx, gy
