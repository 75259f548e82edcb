r"""The compiled CPU core (``core/`` in the repository, the extension ``softdtw._core``), under
the contract of :mod:`softdtw.kernels`.

The layout and numerics are described in ``core/softdtw.hpp``. Here: the NumPy side of the
contract, outputs allocated and passed to the core, which checks shapes and releases the GIL.
``r`` and ``aux`` are flat arrays whose lengths depend only on ``(B, N, M)`` and the dtype
(:func:`state_shapes`), so torch.compile's fake tensors know them without running the kernel.

The core also takes series instead of a cost (:func:`forward_sqeuclidean`,
:func:`backward_sqeuclidean`): it forms the squared Euclidean cost cell by cell, so neither the
cost matrix nor its gradient is formed. Threads: the core's own (``threads=`` at most; default
``os.cpu_count()``), fork-safe, with denormals flushed inside the kernel only.
"""

from __future__ import annotations

import os

import numpy as np

from .. import _core

__all__ = ["aux_shape", "backward", "backward_sqeuclidean", "forward", "forward_sqeuclidean", "isa",
           "state_shapes", "values"]

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def isa() -> str:
    """The instruction set the core runs on (``avx512``, ``avx2``, ``sse2``, ``neon``, ``scalar``)."""
    return _core.isa()


def state_shapes(B: int, N: int, M: int, dtype) -> tuple[tuple[int], tuple[int]]:
    """The shapes of ``r`` and ``aux`` for ``(B, N, M)`` pairs of ``dtype`` (float32 or float64)."""
    r, aux = _core.state_sizes(int(B), int(N), int(M), np.dtype(dtype).itemsize)
    return (r,), (aux,)


def aux_shape(B: int, N: int, M: int, dtype=np.float32):
    """``(shape, dtype)`` of ``aux`` (the contract of :mod:`softdtw.kernels`)."""
    return state_shapes(B, N, M, dtype)[1], np.dtype(dtype)


def _threads(threads):
    return max(1, int(threads)) if threads is not None else (os.cpu_count() or 1)


def _ints(a):
    if type(a) is np.ndarray and a.dtype == np.int32 and a.flags.c_contiguous:
        return a
    return np.ascontiguousarray(a, np.int32)


def _check(dtype):
    if np.dtype(dtype) not in _DTYPES:
        raise TypeError(f"the CPU core computes in float32 or float64, got {np.dtype(dtype)}")


def forward(cost, gamma, x_len, y_len, lo, hi, keep=True, threads=None):
    """Soft-DTW values of ``cost`` (B, N, M); returns ``(value, r, aux)``. ``keep=False``: the
    values alone (the same numbers), ``r`` and ``aux`` empty."""
    cost = np.ascontiguousarray(cost)
    _check(cost.dtype)
    B, N, M = cost.shape
    value = np.empty(B, cost.dtype)
    r, aux = _state(B, N, M, cost.dtype, keep)
    _core.forward(cost, float(gamma), _ints(x_len), _ints(y_len), _ints(lo), _ints(hi), value,
                  r if keep else None, aux if keep else None, _threads(threads))
    return value, r, aux


def values(cost, gamma, x_len, y_len, lo, hi, threads=None):
    """The values of :func:`forward` without the backward's state (two rows per block kept)."""
    return forward(cost, gamma, x_len, y_len, lo, hi, keep=False, threads=threads)[0]


def _state(B, N, M, dtype, keep):
    if not keep:
        return np.empty(0, dtype), np.empty(0, dtype)
    rs, auxs = state_shapes(B, N, M, dtype)
    return np.empty(rs, dtype), np.empty(auxs, dtype)


def _series(x, y):
    x = np.ascontiguousarray(x)
    y = np.ascontiguousarray(y)
    _check(x.dtype)
    if y.dtype != x.dtype:
        raise TypeError(f"x and y must have one dtype, got {x.dtype} and {y.dtype}")
    if x.ndim != 3 or y.ndim != 3 or x.shape[0] != y.shape[0] or x.shape[2] != y.shape[2]:
        raise ValueError(f"x and y must be (B, N, D) and (B, M, D), got {x.shape} and {y.shape}")
    return x, y


def forward_sqeuclidean(x, y, gamma, x_len, y_len, lo, hi, keep=True, threads=None):
    """:func:`forward` of the squared Euclidean cost of ``x`` (B, N, D) and ``y`` (B, M, D),
    formed cell by cell. A pair with a non-finite entry in ``x[b, :x_len[b]]`` or
    ``y[b, :y_len[b]]`` gets NaN (and only it)."""
    x, y = _series(x, y)
    B, N, M = x.shape[0], x.shape[1], y.shape[1]
    value = np.empty(B, x.dtype)
    r, aux = _state(B, N, M, x.dtype, keep)
    _core.forward_sqeuclidean(x, y, float(gamma), _ints(x_len), _ints(y_len), _ints(lo), _ints(hi), value,
                              r if keep else None, aux if keep else None, _threads(threads))
    return value, r, aux


def backward(r, aux, gamma, x_len, y_len, lo, hi, grad_value, need_gamma_grad, threads=None, shape=None):
    """``(grad_cost, grad_gamma)`` from the state of :func:`forward`; ``shape=(N, M)``, the
    cost's (``r`` is flat), is required."""
    lo = _ints(lo)
    if shape is None:
        raise TypeError("backward needs shape=(N, M): the core's r is flat")
    N, M = shape
    B = lo.shape[0]
    gv = np.ascontiguousarray(grad_value, r.dtype).reshape(B)
    grad = np.zeros((B, N, M), r.dtype)
    gg = np.zeros(B, r.dtype) if need_gamma_grad else None
    _core.backward(r, aux, int(N), int(M), float(gamma), _ints(x_len), _ints(y_len), lo, _ints(hi), gv, grad, gg,
                   _threads(threads))
    return grad, gg


def backward_sqeuclidean(r, aux, x, y, gamma, x_len, y_len, lo, hi, grad_value, need_y=True, need_x=True,
                         need_gamma_grad=False, threads=None):
    """``(grad_x, grad_y)`` (and ``grad_gamma`` when ``need_gamma_grad``) from the state of
    :func:`forward_sqeuclidean`: ``grad_value[b]`` times the gradients of pair ``b``'s value,
    ``2 sum_j E_ij (x_i - y_j)`` and ``2 sum_i E_ij (y_j - x_i)``, 0 past the lengths.
    ``need_y=False``: ``grad_y`` is None and not summed (the faster sweep)."""
    x, y = _series(x, y)
    B = x.shape[0]
    gv = np.ascontiguousarray(grad_value, x.dtype).reshape(B)
    gx = np.zeros(x.shape, x.dtype) if need_x else None
    gy = np.zeros(y.shape, y.dtype) if need_y else None
    gg = np.zeros(B, x.dtype) if need_gamma_grad else None
    _core.backward_sqeuclidean(r, aux, x, y, float(gamma), _ints(x_len), _ints(y_len), _ints(lo), _ints(hi), gv,
                               gx, gy, gg, _threads(threads))
    if need_gamma_grad:
        return gx, gy, gg
    return gx, gy
