r"""Soft-DTW with a low-memory backward (``memory="checkpoint"``).

CPU tensors run the compiled core's checkpointed sweep
(:func:`softdtw.kernels.cpu.checkpoint_forward`: the last row of every segment of about sqrt(N)
steps kept, each segment recomputed in the backward); ``SOFTDTW_KERNEL=numba`` runs the numba
row-band kernel it replaces. Other
devices run the sweep of this module: the forward sweeps the anti-diagonals with the spec's step functions (as the pure-torch path
does) but keeps only every ``seg``-th pair of DP diagonals; the backward walks the diagonals
in reverse and recomputes each segment of ``seg`` diagonals from its checkpoint when it
reaches it. With ``seg ~ sqrt(N + M)`` the forward + backward holds
``O(B sqrt(N + M) N)`` numbers instead of the ``B N M`` of ``R``.

With the default squared-Euclidean cost the cost matrix is never formed either: the cost of a
diagonal is computed from ``x`` and ``y`` when the sweep needs it, and the gradient of each
diagonal's cells goes straight to ``x`` and ``y`` (``d C_ij / d x_i = 2 (x_i - y_j)``). So
``N = M = 32768``, ``B = 1`` runs in a few hundred MB (``benchmarks/bench_memory.py``).

Every diagonal is computed by the same operations on the same inputs in the forward and in
the recomputation, so the result does not depend on ``seg`` (bit for bit; tested). The
sweep's arithmetic is the pure-torch path's (:mod:`softdtw.spec`), not the Triton kernels', so
on those devices it agrees with the default path to rounding (1e-12 in float64), and it is
slower: one small group of torch operations per diagonal. On CPU the core's checkpointed sweep
equals the default path (the core) to the last bit, in float32 and float64.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from .. import spec
from ..kernels import cpu


def segment_length(n: int, m: int) -> int:
    """Diagonals per segment: about ``sqrt(N + M)`` (checkpoints and one segment cost alike)."""
    return max(2, math.isqrt(n + m))


class _Diagonals:
    """The cost along each DP diagonal ``k`` (cells ``(i0, k - 2 - i0)``) and where its
    gradient goes: from ``x``, ``y`` (squared Euclidean) or from a cost matrix."""

    def __init__(self, x, y, cost, lo, hi):
        self.x, self.y, self.cost = x, y, cost
        self.lo, self.hi = lo.long(), hi.long()
        ref = x if cost is None else cost
        self.n = ref.shape[1]
        self.m = y.shape[1] if cost is None else cost.shape[2]
        self.rows = torch.arange(self.n, device=ref.device)

    def cells(self, k):
        """``(columns, valid)`` of diagonal ``k``: ``(N,)`` clamped column indices, ``(B, N)`` mask."""
        j = k - 2 - self.rows
        jc = j.clamp(0, self.m - 1)
        valid = ((j >= 0) & (j < self.m))[None, :] & (jc >= self.lo) & (jc < self.hi)
        return jc, valid

    def cost_diag(self, k):
        jc, valid = self.cells(k)
        if self.cost is None:
            diff = self.x - self.y[:, jc]
            c = (diff * diff).sum(-1)
        else:
            c = self.cost[:, self.rows, jc]
        return torch.where(valid, c, torch.full_like(c, math.inf))

    def push_grad(self, k, g, grads):
        """Add the gradient ``g`` (B, N) of diagonal ``k``'s cells to ``grads``."""
        jc, valid = self.cells(k)
        g = torch.where(valid, g, torch.zeros_like(g))
        if self.cost is None:
            gd = 2 * g[..., None] * (self.x - self.y[:, jc])
            grads[0].add_(gd)
            grads[1].index_add_(1, jc, -gd)
        else:
            grads[0][:, self.rows, jc] += g


def _sweep(diags: _Diagonals, gamma, d_prev, d_cur, k_from, k_to, keep=None, every=None, value=None, term=None):
    """Forward steps ``k_from..k_to`` from ``(d_{k_from - 2}, d_{k_from - 1})``; calls
    ``keep(k, d_{k-1}, d_k)`` every ``every`` diagonals; fills ``value`` at the terminal cells."""
    for k in range(k_from, k_to + 1):
        d_new = spec.forward_step(torch, d_prev, d_cur, diags.cost_diag(k), gamma)
        if value is not None:
            tk, rows = term
            hit = tk == k
            if bool(hit.any()):
                b = torch.arange(d_new.shape[0], device=d_new.device)
                value = torch.where(hit, d_new[b, rows], value)
        d_prev, d_cur = d_cur, d_new
        if keep is not None and (k - 1) % every == 0:
            keep(k, d_prev, d_cur)
    return d_prev, d_cur, value


def forward(diags: _Diagonals, gamma: float, x_len, y_len, seg: int):
    """Values ``(B,)`` and the checkpoints ``{p: (d_{p-1}, d_p)}`` for ``p = 1, 1 + seg, ...``."""
    like = torch.empty(x_len.shape[0], diags.n + 1, dtype=(diags.x if diags.cost is None else diags.cost).dtype,
                       device=x_len.device)
    d0, d1 = spec.boundary_diagonals(torch, like)
    checkpoints = {1: (d0, d1)}
    value = torch.zeros(like.shape[0], dtype=like.dtype, device=like.device)
    term = ((x_len + y_len).long(), x_len.long())
    _, _, value = _sweep(diags, gamma, d0, d1, 2, diags.n + diags.m,
                         keep=lambda k, a, b: checkpoints.__setitem__(k, (a, b)), every=seg,
                         value=value, term=term)
    return value, checkpoints


def backward(diags: _Diagonals, gamma: float, x_len, y_len, checkpoints, seg: int, grad_value, grads):
    """The reverse sweep of :func:`softdtw.torch._pure.backward`, recomputing each segment of
    diagonals from its checkpoint; adds the cost gradient to ``grads`` (gamma is a constant here:
    ``memory="checkpoint"`` refuses a learnable one)."""
    n, m = diags.n, diags.m
    like = checkpoints[1][0]
    zeros = torch.zeros_like(like)
    e1 = e2 = zeros
    w1 = w2 = (zeros, zeros, zeros)
    rows = torch.arange(n + 1, device=like.device)
    terminal_seed = (rows[None, :] == x_len[:, None]).to(like.dtype) * grad_value[:, None]
    terminal_diag = x_len + y_len
    seg_start, seg_diags = None, None  # diagonals p - 1 .. p + seg of the current segment
    for k in range(n + m, 1, -1):
        p = 1 + ((k - 2) // seg) * seg  # the checkpoint holding d_{k-2} (p - 1 <= k - 2 < p - 1 + seg)
        if p != seg_start:
            a, b = checkpoints[p]
            seg_diags = [a, b]
            top = min(p + seg, n + m)

            def keep_all(kk, _a, d_k):
                seg_diags.append(d_k)

            _sweep(diags, gamma, a, b, p + 1, top, keep=keep_all, every=1)
            seg_start = p
        seed = torch.where((terminal_diag == k)[:, None], terminal_seed, zeros)
        e = spec.backward_step(torch, e1, e2, w1, w2, seed)
        w = spec.diagonal_weights(torch, seg_diags[k - 2 - (p - 1)], seg_diags[k - 1 - (p - 1)], gamma)
        diags.push_grad(k, e[:, 1:], grads)
        e1, e2, w1, w2 = e, e1, w, w1


def _np(t):
    return None if t is None else t.detach().cpu().numpy()


class _CoreCheckpoint:
    """The compiled core's checkpointed sweep under the row-band kernel's names."""

    forward = staticmethod(cpu.checkpoint_forward)
    backward = staticmethod(cpu.checkpoint_backward)


def _cpu_kernel():
    """The compiled core; numba's row-band kernel under ``SOFTDTW_KERNEL=numba`` (the baseline)."""
    if os.environ.get("SOFTDTW_KERNEL") == "numba":
        from ..kernels import numba_checkpoint

        return numba_checkpoint
    return _CoreCheckpoint


def _segment(K, x, y, cost) -> int:
    ref = x if cost is None else cost
    if K is _CoreCheckpoint:
        m = y.shape[1] if cost is None else cost.shape[2]
        return cpu.segment_steps(ref.shape[0], ref.shape[1], m, np.dtype(str(ref.dtype)[6:]))
    return K.segment_rows(ref.shape[1])


class SoftDTWCheckpoint(torch.autograd.Function):
    """Soft-DTW values of ``(x, y)`` (squared Euclidean, ``cost`` None) or of ``cost``, with the
    checkpointed backward. Saves the inputs, the lengths/bounds and the checkpoints only.

    CPU tensors run the compiled core's checkpointed sweep (the numba row-band kernel under
    ``SOFTDTW_KERNEL=numba``); other devices (and CPU tensors under ``SOFTDTW_KERNEL=pure``)
    the diagonal sweep above. A backward under ``create_graph=True`` is the differentiable
    recomputation of the default route (its memory is O(B N M), not the checkpoints')."""

    @staticmethod
    def forward(ctx, x, y, cost, gamma, x_len, y_len, lo, hi, seg):
        ref = x if cost is None else cost
        ctx.gamma = gamma
        ctx.cpu = ref.device.type == "cpu" and os.environ.get("SOFTDTW_KERNEL") != "pure"
        if ctx.cpu:
            K = _cpu_kernel()
            ctx.seg = _segment(K, x, y, cost)
            value, ckpt = K.forward(_np(x), _np(y), _np(cost), gamma, _np(x_len), _np(y_len), _np(lo), _np(hi),
                                    ctx.seg, threads=torch.get_num_threads())
            ctx.checkpoints = ckpt
            value = torch.from_numpy(value).to(ref.dtype)
        else:
            diags = _Diagonals(x, y, cost, lo, hi)
            ctx.seg = seg
            value, ctx.checkpoints = forward(diags, gamma, x_len, y_len, seg)
        ctx.save_for_backward(x, y, cost, x_len, y_len, lo, hi)
        return value

    @staticmethod
    def backward(ctx, grad_value):
        x, y, cost, x_len, y_len, lo, hi = ctx.saved_tensors
        from ._api import _create_graph, _differentiable_grad

        if _create_graph(x if cost is None else cost):  # create_graph=True: a gradient autograd differentiates again (full memory)
            grads = _differentiable_grad(x, y, cost, ctx.gamma, x_len, y_len, lo, hi, grad_value)
            grads = grads if cost is None else grads[:1]
        elif ctx.cpu:
            K = _cpu_kernel()
            out = K.backward(_np(x), _np(y), _np(cost), ctx.gamma, _np(x_len), _np(y_len), _np(lo), _np(hi),
                             ctx.seg, ctx.checkpoints, _np(grad_value), threads=torch.get_num_threads())
            ref = x if cost is None else cost
            grads = [torch.from_numpy(g).to(ref.dtype) for g in (out if cost is None else (out,))]
        else:
            diags = _Diagonals(x, y, cost, lo, hi)
            grads = [torch.zeros_like(x), torch.zeros_like(y)] if cost is None else [torch.zeros_like(cost)]
            backward(diags, ctx.gamma, x_len, y_len, ctx.checkpoints, ctx.seg, grad_value, grads)
        if cost is None:
            return grads[0], grads[1], None, None, None, None, None, None, None
        return None, None, grads[0], None, None, None, None, None, None
