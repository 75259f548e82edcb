r"""The compiled CPU core (``core/`` in the repository, the extension ``softdtw._core``), under
the contract of :mod:`softdtw.kernels`.

The layout and numerics are described in ``core/softdtw.hpp``. Here: the NumPy side of the
contract, outputs allocated and passed to the core, which checks shapes and releases the GIL.
``r`` and ``aux`` have shapes that depend only on ``(B, N, M)`` and the dtype
(:func:`state_shapes`), so torch.compile's fake tensors know them without running the kernel;
``r`` is ``(rows, M)`` (the core's flat state rounded up to whole rows), so that ``r.shape[-1]``
is ``M`` for the backward, as with the other kernels' ``(B, N, M)``.

The core also takes series instead of a cost (:func:`forward_sqeuclidean`,
:func:`backward_sqeuclidean`): it forms the squared Euclidean cost cell by cell, so neither the
cost matrix nor its gradient is formed. Threads (``threads=`` at most; default: the CPUs the
process may use): the process's GNU OpenMP pool where torch has loaded one (:func:`host_openmp`),
else the core's own, fork-safe; denormals flushed inside the kernel only.
"""

from __future__ import annotations

import functools
import math
import os

import numpy as np

from .. import _core

__all__ = ["aux_shape", "backward", "backward_sqeuclidean", "checkpoint_backward", "checkpoint_forward", "forward",
           "forward_sqeuclidean", "host_openmp", "isa", "nonfinite_pairs", "segment_steps", "state_shapes", "values"]

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def isa() -> str:
    """The instruction set the core runs on (``avx512``, ``avx2``, ``sse2``, ``neon``, ``scalar``)."""
    return _core.isa()


def host_openmp() -> bool:
    """Whether the core's threads are the process's GNU OpenMP pool, loaded by torch (a loss
    after a model's ops then runs on torch's own, already spinning, workers), rather than its
    own pool. Never in a forked child; ``SOFTDTW_OPENMP=0`` turns it off. Linux only."""
    return _core.host_openmp()


def state_shapes(B: int, N: int, M: int, dtype, seg: int = 0) -> tuple[tuple[int, int], tuple[int]]:
    """The shapes of ``r`` and ``aux`` for ``(B, N, M)`` pairs of ``dtype`` (float32 or float64);
    ``seg > 0``: of the checkpoints every ``seg`` steps (:func:`checkpoint_forward`)."""
    return _state_shapes(int(B), int(N), int(M), np.dtype(dtype).itemsize, int(seg))


@functools.lru_cache(maxsize=256)
def _state_shapes(B, N, M, itemsize, seg):
    r, aux, _ = _core.state_sizes(B, N, M, itemsize, seg)
    m = max(int(M), 1)
    return (-(-r // m), m), (aux,)


def aux_shape(B: int, N: int, M: int, dtype=np.float32):
    """``(shape, dtype)`` of ``aux`` (the contract of :mod:`softdtw.kernels`)."""
    return state_shapes(B, N, M, dtype)[1], np.dtype(dtype)


def _threads(threads):
    """``threads``, or the CPUs this process may use (its affinity: a container's or taskset's limit)."""
    if threads is not None:
        return max(1, int(threads))
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _ints(a):
    if type(a) is np.ndarray and a.dtype == np.int32 and a.flags.c_contiguous:
        return a
    return np.ascontiguousarray(a, np.int32)


def _grad_value(g, B, dtype):
    g = np.ascontiguousarray(g, dtype)
    if g.size != B:
        raise ValueError(f"grad_value must have one entry per pair ({B}), got shape {g.shape}")
    return g.reshape(B)


def _check(dtype):
    if np.dtype(dtype) not in _DTYPES:
        raise TypeError(f"the CPU core computes in float32 or float64, got {np.dtype(dtype)}")


def forward(cost, gamma, x_len, y_len, lo, hi, keep=True, threads=None, seg=0):
    """Soft-DTW values of ``cost`` (B, N, M); returns ``(value, r, aux)``. ``keep=False``: the
    values alone (the same numbers), ``r`` and ``aux`` empty; ``seg > 0``: ``r`` keeps only
    every ``seg``-th step's row (:func:`checkpoint_forward`)."""
    cost = np.ascontiguousarray(cost)
    _check(cost.dtype)
    if cost.ndim != 3:
        raise ValueError(f"cost must be (B, N, M), got shape {cost.shape}")
    B, N, M = cost.shape
    value = np.empty(B, cost.dtype)
    r, aux = _state(B, N, M, cost.dtype, keep, seg)
    _core.forward(cost, float(gamma), *_bounds(x_len, y_len, lo, hi), value, *_state_args(r, aux, keep), int(seg),
                  _threads(threads))
    return value, r, aux


def values(cost, gamma, x_len, y_len, lo, hi, threads=None):
    """The values of :func:`forward` without the backward's state (two rows per block kept)."""
    return forward(cost, gamma, x_len, y_len, lo, hi, keep=False, threads=threads)[0]


def _bounds(x_len, y_len, lo, hi):
    return _ints(x_len), _ints(y_len), _ints(lo), _ints(hi)


def _state(B, N, M, dtype, keep, seg=0):
    if not keep:
        return np.empty(0, dtype), np.empty(0, dtype)
    rs, auxs = state_shapes(B, N, M, dtype, seg)
    # empty, not zeros: NumPy backs a large empty array with huge pages (its zeros, through
    # calloc, with 4 KiB pages: ~1 ns per cell of page faults at (8, 1024, 1024)); the core
    # writes zeros where its plan leaves the state unfilled
    return np.empty(rs, dtype), np.empty(auxs, dtype)


def _state_args(r, aux, keep=True):
    """``r`` and ``aux`` as the core takes them (flat), or None for values alone."""
    return (np.ascontiguousarray(r).reshape(-1), aux) if keep else (None, None)


def _series(x, y):
    x = np.ascontiguousarray(x)
    y = np.ascontiguousarray(y)
    _check(x.dtype)
    if y.dtype != x.dtype:
        raise TypeError(f"x and y must have one dtype, got {x.dtype} and {y.dtype}")
    if x.ndim != 3 or y.ndim != 3 or x.shape[0] != y.shape[0] or x.shape[2] != y.shape[2]:
        raise ValueError(f"x and y must be (B, N, D) and (B, M, D), got {x.shape} and {y.shape}")
    return x, y


def forward_sqeuclidean(x, y, gamma, x_len, y_len, lo, hi, keep=True, threads=None, seg=0):
    """:func:`forward` of the squared Euclidean cost of ``x`` (B, N, D) and ``y`` (B, M, D),
    formed cell by cell. A pair with a non-finite entry in ``x[b, :x_len[b]]`` or
    ``y[b, :y_len[b]]`` gets NaN (and only it)."""
    x, y = _series(x, y)
    B, N, M = x.shape[0], x.shape[1], y.shape[1]
    value = np.empty(B, x.dtype)
    r, aux = _state(B, N, M, x.dtype, keep, seg)
    _core.forward_sqeuclidean(x, y, float(gamma), *_bounds(x_len, y_len, lo, hi), value, *_state_args(r, aux, keep),
                              int(seg), _threads(threads))
    return value, r, aux


def backward(r, aux, gamma, x_len, y_len, lo, hi, grad_value, need_gamma_grad, threads=None, seg=0, cost=None):
    """``(grad_cost, grad_gamma)`` from the state of :func:`forward` (the cost's ``(N, M)`` from
    ``lo`` and ``r``); ``seg > 0`` (checkpoints) needs the ``cost`` the rows are recomputed from."""
    lo = _ints(lo)
    B, N = lo.shape
    M = r.shape[-1]
    gv = _grad_value(grad_value, B, r.dtype)
    grad = np.zeros((B, N, M), r.dtype)
    gg = np.zeros(B, r.dtype) if need_gamma_grad else None
    _core.backward(*_state_args(r, aux), int(N), int(M), float(gamma), *_bounds(x_len, y_len, lo, hi), gv, grad, gg,
                   int(seg), None if cost is None else np.ascontiguousarray(cost), _threads(threads))
    return grad, gg


def backward_sqeuclidean(r, aux, x, y, gamma, x_len, y_len, lo, hi, grad_value, need_y=True, need_x=True,
                         need_gamma_grad=False, threads=None, seg=0):
    """``(grad_x, grad_y)`` (and ``grad_gamma`` when ``need_gamma_grad``) from the state of
    :func:`forward_sqeuclidean`: ``grad_value[b]`` times the gradients of pair ``b``'s value,
    ``2 sum_j E_ij (x_i - y_j)`` and ``2 sum_i E_ij (y_j - x_i)``, 0 past the lengths.
    ``need_y=False``: ``grad_y`` is None and not summed (the faster sweep)."""
    x, y = _series(x, y)
    B = x.shape[0]
    gv = _grad_value(grad_value, B, x.dtype)
    gx = np.zeros(x.shape, x.dtype) if need_x else None
    gy = np.zeros(y.shape, y.dtype) if need_y else None
    gg = np.zeros(B, x.dtype) if need_gamma_grad else None
    _core.backward_sqeuclidean(*_state_args(r, aux), x, y, float(gamma), *_bounds(x_len, y_len, lo, hi), gv,
                               gx, gy, gg, int(seg), _threads(threads))
    if need_gamma_grad:
        return gx, gy, gg
    return gx, gy


def nonfinite_pairs(a, lengths):
    """``(B,)`` bool: whether ``a[b, :lengths[b]]`` (float32 or float64 ``(B, N, D)``) holds a
    NaN or an infinity (one pass, no temporaries)."""
    a = np.ascontiguousarray(a)
    _check(a.dtype)
    bad = np.empty(a.shape[0], np.bool_)
    _core.nonfinite_pairs(a, _ints(lengths), bad)
    return bad


# ---------------------------------------------------------------------------------------------
# memory="checkpoint": r keeps the last row of every segment of about sqrt(N) steps; the
# backward recomputes each segment's rows from the one before it (to the last bit the default
# state's numbers), so memory is O(B sqrt(N) M) besides the inputs.
# ---------------------------------------------------------------------------------------------


def segment_steps(B: int, N: int, M: int, dtype) -> int:
    """Steps per segment: about the square root of a block's steps (``N`` plus its strips' skew)."""
    steps = _core.state_sizes(int(B), int(N), int(M), np.dtype(dtype).itemsize)[2]
    return max(1, math.isqrt(max(steps, 1)))


def checkpoint_forward(x, y, cost, gamma, x_len, y_len, lo, hi, seg, threads=None):
    """``(value, state)``: :func:`forward_sqeuclidean` of ``x``, ``y`` (``cost`` None) or
    :func:`forward` of ``cost`` (``x``, ``y`` None) keeping the checkpoints every ``seg`` steps;
    ``state`` for :func:`checkpoint_backward`."""
    if cost is None:
        value, r, aux = forward_sqeuclidean(x, y, gamma, x_len, y_len, lo, hi, threads=threads, seg=seg)
    else:
        value, r, aux = forward(cost, gamma, x_len, y_len, lo, hi, threads=threads, seg=seg)
    return value, (r, aux)


def checkpoint_backward(x, y, cost, gamma, x_len, y_len, lo, hi, seg, state, grad_value, threads=None):
    """``(grad_x, grad_y)`` (``cost`` None) or ``grad_cost``, times ``grad_value``, from the
    state of :func:`checkpoint_forward`."""
    r, aux = state
    if cost is None:
        return backward_sqeuclidean(r, aux, x, y, gamma, x_len, y_len, lo, hi, grad_value, threads=threads, seg=seg)
    return backward(r, aux, gamma, x_len, y_len, lo, hi, grad_value, False, threads=threads, seg=seg, cost=cost)[0]
