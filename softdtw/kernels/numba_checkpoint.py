r"""numba CPU kernel of the low-memory soft-DTW (``memory="checkpoint"``), float64 throughout.

Row by row, one pair per task: the forward keeps ``R`` only every ``seg``-th row (``seg``
about ``sqrt(N)``); the backward takes the row bands bottom-up, recomputes each band's rows
from the checkpoint above it, and runs the alignment recursion over them

.. math::

    E_{i,j} = \bigl(w^{\mathrm{diag}}_{i+1,j+1} E_{i+1,j+1} + w^{\mathrm{up}}_{i+1,j} E_{i+1,j}\bigr)
              + w^{\mathrm{left}}_{i,j+1} E_{i,j+1},

the weights being each cell's normalised softmin weights over its predecessors, rebuilt from
``R``. Memory per pair: ``(N / seg + seg + 4) (M + 2)`` numbers. The squared Euclidean cost is
computed from ``x`` and ``y`` as the sweep needs it and its gradient goes straight to ``x``
and ``y``; a cost matrix can be given instead.

Bit for bit the default path's numbers (float64): every cell is computed by the functions of
the lanes kernel (:mod:`softdtw.kernels.numba_cpu`: ``R`` in base-2 units ``R / (gamma ln 2)``,
:func:`~softdtw.kernels.numba_cpu._softmin2`, :func:`~softdtw.kernels.numba_cpu._weights2`,
products never fused into an FMA), each ``E`` sums its three pushes in the order above (as a
cell inside a lanes strip does, and a strip's first column too), the gradient is ``E`` times
the upstream gradient, and the squared Euclidean cost and its gradient go through the
functions the default path uses for float64 (:mod:`softdtw.kernels.numba_sqeuclidean`, the
gradient pushed row by row from the last row, each row from its last column). Tested against
the default path with ``torch.equal`` (bands, lengths, strips, normalize, a cost matrix).

numba caches each function by its own source file: after editing ``numba_cpu.py`` or
``numba_sqeuclidean.py`` in a checkout, delete the ``__pycache__`` folder here too (an
installed package gets fresh caches).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .numba_cpu import _FM, _flush_e, _mulx, _run_blocks, _softmin2, _weights2, base2_scales
from .numba_sqeuclidean import cell_cost, push_grad

_JIT = dict(cache=True, nogil=True, error_model="numpy", fastmath=_FM)
INF = np.inf


def segment_rows(n: int) -> int:
    """Rows per band: about ``sqrt(N)``."""
    return max(1, math.isqrt(max(n, 1)))


@njit(**_JIT)
def _row(x, y, cost, b, i, prev, cur, ct, m, lo, hi, inv_scale):
    """``cur`` = DP row ``i`` (1-based, base-2 units) from ``prev`` (row ``i - 1``), columns
    ``1..m``; ``ct`` is scratch for the row's scaled costs (formed before the recursion, as
    the lanes kernel forms its cost tile)."""
    a = lo[b, i - 1]
    z = min(hi[b, i - 1], m)
    for j in range(1, m + 1):
        if j - 1 < a or j - 1 >= z:
            ct[j] = INF
        elif cost.shape[0] > 0:
            ct[j] = _mulx(cost[b, i - 1, j - 1], inv_scale)
        else:
            ct[j] = _mulx(cell_cost(x, y, b, i - 1, j - 1), inv_scale)
    cur[0] = INF
    for j in range(1, m + 1):
        if ct[j] < INF:
            cur[j] = ct[j] + _softmin2(prev[j - 1], prev[j], cur[j - 1], INF, 0.0, 1.0)
        else:
            cur[j] = INF


@njit(**_JIT)
def forward_pair(x, y, cost, b, n, m, lo, hi, inv_scale, seg, ckpt):
    """``R[n, m]`` of pair ``b`` (base-2 units); rows ``0, seg, 2 seg, ...`` into ``ckpt[b]``."""
    prev = np.full(m + 1, INF)
    cur = np.empty(m + 1)
    ct = np.empty(m + 1)
    prev[0] = 0.0
    ckpt[b, 0, : m + 1] = prev
    for i in range(1, n + 1):
        _row(x, y, cost, b, i, prev, cur, ct, m, lo, hi, inv_scale)
        if i % seg == 0:
            ckpt[b, i // seg, : m + 1] = cur
        prev, cur = cur, prev
    return prev[m]


@njit(**_JIT)
def backward_pair(x, y, cost, b, n, m, lo, hi, inv_scale, seg, ckpt, gv, gx, gy, gcost):
    """The gradient of pair ``b``'s value times ``gv`` into ``gx``/``gy`` (or ``gcost``).

    ``acc[j]``: the pushes into cell ``(i, j)`` of the current row from the row under it
    (diagonal + up); ``accn``: the same for the row above, filled while the row is swept from
    its last column, the push from the right neighbour carried in ``cl``."""
    band = np.empty((seg + 1, m + 1))  # DP rows r0 .. r0 + seg of the current band
    ct = np.empty(m + 1)
    acc = np.zeros(m + 2)
    accn = np.zeros(m + 2)
    sq = gcost.shape[0] == 0
    for k in range((n - 1) // seg, -1, -1):  # band k: rows k seg + 1 .. min((k + 1) seg, n)
        r0 = k * seg
        r1 = min(r0 + seg, n)
        band[0, : m + 1] = ckpt[b, k, : m + 1]
        for i in range(r0 + 1, r1 + 1):
            _row(x, y, cost, b, i, band[i - 1 - r0], band[i - r0], ct, m, lo, hi, inv_scale)
        for i in range(r1, r0, -1):
            cur = band[i - r0]
            up = band[i - 1 - r0]
            if i == n:
                acc[m] = acc[m] + 1.0
            a = lo[b, i - 1]
            z = min(hi[b, i - 1], m)
            accn[:] = 0.0
            cl = 0.0
            cd = 0.0
            for j in range(z, a, -1):
                e = _flush_e(acc[j] + cl)  # no subnormals (numba_cpu._FLUSH)
                wd, wu, wl = _weights2(up[j - 1], up[j], cur[j - 1], INF, 0.0, 1.0)
                accn[j] = cd + _mulx(wu, e)
                cd = _mulx(wd, e)
                cl = _mulx(wl, e)
                g = _mulx(e, gv)
                if sq:
                    if g != 0.0:
                        push_grad(x, y, b, i - 1, j - 1, g, gx, gy)
                else:
                    gcost[b, i - 1, j - 1] = g
            accn[a] = cd
            acc, accn = accn, acc


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

    inv_scale, out_scale = base2_scales(gamma)

    def one(b):
        value[b] = forward_pair(x, y, cost, b, int(x_len[b]), int(y_len[b]), lo, hi, inv_scale, seg,
                                ckpt) * out_scale

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
    inv_scale, _ = base2_scales(gamma)

    def one(b):
        n, m = int(x_len[b]), int(y_len[b])
        backward_pair(x, y, cost, b, n, m, lo, hi, inv_scale, seg, ckpt, float(gv[b]), gx, gy, gcost)

    _run_blocks(one, batch, threads)
    return (gx, gy) if sq else gcost
