"""The PyTorch API: functional entry points and ``SoftDTWLossPyTorch`` (tslearn's drop-in)."""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import math
import sys
import warnings
from typing import Callable

import numpy as np
import torch
from torch.autograd import forward_ad
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from .. import spec
from . import _checkpoint, _ops, _pure
from ._ops import BAND_KINDS, sdtw_backward, sdtw_forward

__all__ = [
    "SoftDTWLossPyTorch",
    "soft_dtw",
    "soft_dtw_alignment",
    "soft_dtw_alignment_from_cost",
    "soft_dtw_from_cost",
    "sqeuclidean_cost",
]

def _kind(t: torch.Tensor) -> str:
    if t.dtype == torch.bool:
        return "b"
    if t.dtype.is_complex:
        return "c"
    return "f" if t.dtype.is_floating_point else "i"


def _check_tensor(t, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    spec.check_dtype_kind(_kind(t), name)
    return t


def _dtypes(*tensors: torch.Tensor) -> tuple[torch.dtype, torch.dtype]:
    """(compute dtype, result dtype): float64 stays float64; everything else computes in float32
    (half precision too) and returns the floating input dtype (float32 for integer inputs)."""
    floats = [t.dtype for t in tensors if t.dtype.is_floating_point]
    out = floats[0] if floats else torch.float32
    for d in floats[1:]:
        out = torch.promote_types(out, d)
    return (torch.float64 if out == torch.float64 else torch.float32), out


# the kernels' outputs (value, r, aux, x_len, y_len, lo, hi): r and aux are the state of the
# whole folded batch (the core's layout is not per pair), not unfolded
_STATE_OUT = (True, False, False, True, True, True, True)


def _fold_vmap(apply, info, in_dims, args, per_pair, out_per_pair=None):
    """The vmap rule of a Function over batches of pairs: the vmapped dimension folds into the
    pair dimension (dim 0) of every per-pair tensor argument (one not vmapped is expanded), the
    Function runs once on ``V B`` pairs, and each per-pair tensor output unfolds to
    ``(V, B, ...)`` (``out_per_pair`` False: returned as is, not vmapped)."""
    size = info.batch_size

    def fold(a, d, pair):
        if not isinstance(a, torch.Tensor) or not (pair or d is not None):
            return a
        if d is None:
            a = a.expand(size, *a.shape)
        else:
            a = a.movedim(d, 0)
        return a.reshape(size * a.shape[1], *a.shape[2:])

    out = apply(*(fold(a, d, p) for a, d, p in zip(args, in_dims, per_pair)))
    if isinstance(out, tuple):
        unfold = [isinstance(o, torch.Tensor) and (out_per_pair is None or out_per_pair[k]) for k, o in enumerate(out)]
        return (tuple(o.reshape(size, -1, *o.shape[1:]) if u else o for o, u in zip(out, unfold)),
                tuple(0 if u else None for u in unfold))
    return out.reshape(size, -1, *out.shape[1:]), 0


# The fused kernel's Functions (never traced by torch.compile, whose dynamo needs named
# parameters) take ``*args``: torch binds the arguments of a Function with setup_context (which
# torch.func needs) to its forward's signature on every call, ~12 us for one ``*args`` parameter
# against ~28 us for seven named ones (measured here).


_C_APPLY = torch._C._FunctionBase.__dict__.get("apply")  # (the C++ apply that Function.apply ends in)


def _apply(fn, *args):
    """``fn.apply(*args)``, every argument positional. torch's ``Function.apply`` binds the
    arguments to the forward's signature with ``inspect`` on every call (~15 us of a ~100 us
    small loss step), which positional arguments and forwards without defaults do not need;
    when no torch.func transform is active and torch.compile is not tracing it then calls the
    C++ apply, which this calls directly."""
    if _C_APPLY is None or torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active():
        return fn.apply(*args)
    return _C_APPLY.__get__(None, fn)(*_unwrap_dead(args))


def _unwrap_dead(args):
    from torch._functorch.utils import unwrap_dead_wrappers

    return unwrap_dead_wrappers(args)


def _plain() -> bool:
    """No torch.func transform (grad, vjp, vmap) is active here: tensors have storage that NumPy
    (and the CPU core) may read. Inside a transform only an autograd.Function's forward sees plain
    tensors (its vmap rule folds the vmapped dimension first), so the CPU kernels run there."""
    return torch._C._functorch.peek_interpreter_stack() is None


# --------------------------------------------------------------------------- cost


_HUGE = 1 << 21
_MADV_HUGEPAGE = 14


@functools.lru_cache(maxsize=1)
def _madvise():
    """libc's ``madvise`` on Linux (None elsewhere)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):  # pragma: no cover - exotic libc
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return fn


def _empty(shape, like: torch.Tensor) -> torch.Tensor:
    """``torch.empty`` for a large CPU buffer, backed by transparent huge pages where the kernel
    offers them (as NumPy does for its arrays): the first touch of a fresh (64, 512, 512)
    float32 tensor measured 34 ms with 4 KiB pages, 9 ms with huge pages."""
    out = torch.empty(shape, dtype=like.dtype, device=like.device)
    if out.device.type != "cpu" or torch.compiler.is_compiling():
        return out
    madvise = _madvise()
    if madvise is not None:
        start = (out.data_ptr() + _HUGE - 1) & ~(_HUGE - 1)
        end = (out.data_ptr() + out.numel() * out.element_size()) & ~(_HUGE - 1)
        if end > start:
            madvise(start, end - start, _MADV_HUGEPAGE)  # advice only: failure changes nothing
    return out


def _sqeuclidean_values(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # one (B, N, M) output, filled in place, in memory from _empty (the page faults of a fresh
    # large tensor cost as much as a pass of arithmetic over it)
    out = _empty((*x.shape[:-1], y.shape[-2]), x)
    if x.shape[-1] <= 2:
        # exact: one feature at a time
        torch.sub(x[..., :, None, 0], y[..., None, :, 0], out=out).square_()
        if x.shape[-1] == 2:
            out.addcmul_(d := x[..., :, None, 1] - y[..., None, :, 1], d)
        return out
    # |x|^2 + |y|^2 - 2 x.y (one batched matmul) after centring each pair, which limits the
    # cancellation; clamped at 0
    mu = (x.sum(-2, keepdim=True) + y.sum(-2, keepdim=True)) / (x.shape[-2] + y.shape[-2])
    xc, yc = x - mu, y - mu
    torch.add((xc * xc).sum(-1)[..., :, None], (yc * yc).sum(-1)[..., None, :], out=out)
    return out.baddbmm_(xc, yc.transpose(-1, -2), alpha=-2).clamp_min_(0)


class _SqEuclidean(torch.autograd.Function):
    """Squared Euclidean cost with a hand-written backward: saves x and y only, never a
    (B, N, M, D) tensor; the backward is made of differentiable ops (double backward works)."""

    @staticmethod
    def forward(x, y):
        return _sqeuclidean_values(x, y)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def vmap(info, in_dims, x, y):
        return _fold_vmap(_SqEuclidean.apply, info, in_dims, (x, y), (True, True))

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        gx = gy = None
        if ctx.needs_input_grad[0]:
            gx = 2 * (x * g.sum(-1)[..., None] - _times(g, y))
        if ctx.needs_input_grad[1]:
            gy = 2 * (y * g.sum(-2)[..., None] - _times(g.transpose(-1, -2), x))
        return gx, gy


# features up to which ``g @ a`` runs as ``(a^T @ g^T)^T``: the same product, which oneDNN does
# 1.6-3.5x faster for a narrow ``a`` (float32, 2 threads, ns per cell of g, x side / y side:
# (32, 256, 256, 8) 0.80 -> 0.27 / 0.94 -> 0.26, (512, 32, 32, 8) 0.99 -> 0.61 / 1.03 -> 0.55,
# (8, 1024, 1024, 4) 0.82 -> 0.40 / 2.87 -> 0.42; D = 16: 0.37 -> 0.39 / 0.59 -> 0.37)
_NARROW = 8


def _times(g: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``g @ a`` for ``g`` (..., N, M) and ``a`` (..., M, D)."""
    if a.shape[-1] <= _NARROW and g.device.type == "cpu":
        return (a.transpose(-1, -2) @ g.transpose(-1, -2)).transpose(-1, -2)
    return g @ a


def sqeuclidean_cost(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Squared Euclidean cost between the time steps of two batches of series, in PyTorch.

    .. math::

        C_{ij} = \lVert x_i - y_j \rVert^2 = \sum_d (x_{id} - y_{jd})^2

    with no factor 1/2 (tslearn's convention).

    Differentiable in ``x`` and ``y`` (to any order) without materialising a ``(B, N, M, D)``
    tensor: a sum over features for D <= 2, else one batched matrix product
    (:math:`\lVert x_i \rVert^2 + \lVert y_j \rVert^2 - 2 x_i \cdot y_j` after centring, clamped at 0).

    Parameters
    ----------
    x : Tensor, shape (..., N, D)
    y : Tensor, shape (..., M, D)
        Floating tensors with the same leading dimensions, on one device.

    Returns
    -------
    Tensor, shape (..., N, M)
        In the promoted dtype of ``x`` and ``y``.

    Examples
    --------
    >>> import torch
    >>> sqeuclidean_cost(torch.zeros(1, 2, 1), torch.tensor([[[1.0], [2.0]]]))
    tensor([[[1., 4.],
             [1., 4.]]])
    """
    if y is x:  # torch.compile cannot trace an autograd.Function given one tensor twice
        y = x.clone()
    return _apply(_SqEuclidean, x, y)


# --------------------------------------------------------------------------- problem set-up


def _band(global_constraint, sakoe_chiba_radius, itakura_max_slope) -> tuple[int, float]:
    c = spec.check_constraint(global_constraint, sakoe_chiba_radius, itakura_max_slope)
    return BAND_KINDS.index(c.kind), (0.0 if c.param is None else float(c.param))


def _check_lengths(lengths, batch: int, device: torch.device, name: str, size: int | None = None):
    """Per-pair lengths as a tensor of shape ``(batch,)`` (None stays None), in ``[1, size]``
    (checked here when ``size`` is given and not under torch.compile, else in the op)."""
    if lengths is None:
        return None
    if not isinstance(lengths, torch.Tensor):
        lengths = torch.as_tensor(lengths)
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise TypeError(f"{name} must hold integers, got dtype {lengths.dtype}")
    if lengths.shape != (batch,):
        raise ValueError(f"{name} must have shape ({batch},), got {tuple(lengths.shape)}")
    if lengths.device.type != "cpu" and lengths.device != device:
        raise ValueError(f"{name} is on {lengths.device} but the series are on {device}")
    if size is not None and batch and not torch.compiler.is_compiling():
        low, high = int(lengths.min()), int(lengths.max())
        if low < 1:
            raise ValueError(f"{name} must be >= 1, got minimum {low}")
        if high > size:
            raise ValueError(f"{name} must be <= the padded length {size}, got maximum {high}")
    return lengths


def _unpack(t, lengths, name: str):
    if isinstance(t, PackedSequence):
        if lengths is not None:
            raise ValueError(f"{name} is a PackedSequence: its lengths come from it; do not pass {name}_lengths")
        padded, lengths = pad_packed_sequence(t, batch_first=True)
        return padded, lengths
    return t, lengths


def _check_gamma(gamma) -> tuple[float, torch.Tensor | None]:
    """``(gamma as a float, the tensor to differentiate or None)``: gamma is a number or a
    one-element floating tensor (learnable when it requires grad)."""
    if isinstance(gamma, torch.Tensor):
        if gamma.numel() != 1:
            raise ValueError(f"gamma must be a number or a one-element tensor, got shape {tuple(gamma.shape)}")
        if not gamma.dtype.is_floating_point:
            raise TypeError(f"gamma must be a floating tensor, got dtype {gamma.dtype}")
        return spec.check_gamma(float(gamma.detach())), (gamma if gamma.requires_grad else None)
    return spec.check_gamma(gamma), None


class _Value(torch.autograd.Function):
    """The custom op's value: the backward is the kernels' (``softdtw::backward``), with
    ``d value / d gamma`` next to ``d value / d cost`` (the same sweep) when ``gamma_t`` (the
    tensor gamma came from, or None) requires grad; under ``create_graph=True`` it is
    :func:`_differentiable_grad` (double backward). It keeps a reference to the cost for that
    (no copy). An autograd.Function rather than the op's registered autograd so that torch.func
    (grad, vjp, vmap) works through it."""

    @staticmethod
    def forward(cost, gamma_t, gamma, x_len, y_len, band_kind, band_param):  # (named: torch.compile traces it)
        return sdtw_forward(cost, gamma, x_len, y_len, band_kind, band_param)

    @staticmethod
    def vmap(info, in_dims, *args):
        return _fold_vmap(_Value.apply, info, in_dims, args, (True, False, False, True, True, False, False),
                          _STATE_OUT)

    @staticmethod
    def setup_context(ctx, inputs, output):
        cost, gamma_t, gamma, _, _, _, _ = inputs
        ctx.gamma_like = None if gamma_t is None else (gamma_t.shape, gamma_t.dtype, gamma_t.device)
        _ops.save_state(ctx, gamma, output, cost)

    @staticmethod
    def backward(ctx, grad_value, *_unused):
        if grad_value is None:
            return None, None, None, None, None, None, None
        cost, r, aux, xl, yl, lo, hi = ctx.saved_tensors
        need_cost, need_gamma = ctx.needs_input_grad[:2]
        args = (r, aux, xl, yl, lo, hi, grad_value, ctx.gamma, need_gamma)
        if _create_graph(cost):
            grad_cost, grad_gamma = _differentiable_grad(None, None, cost, ctx.gamma, xl, yl, lo, hi, grad_value,
                                                         need_gamma)
        else:  # (the Function only where a torch.func transform needs one)
            grad_cost, grad_gamma = _Grad.apply(*args) if _transformed() else _cost_grad(*args)
        if need_gamma:
            shape, dtype, device = ctx.gamma_like
            grad_gamma = grad_gamma.sum().to(dtype=dtype, device=device).reshape(shape)
        return (grad_cost if need_cost else None), (grad_gamma if need_gamma else None), None, None, None, None, None


class _Grad(torch.autograd.Function):
    """``softdtw::backward`` as a Function: it runs on plain tensors inside torch.func transforms
    too (its vmap rule folds a vmapped dimension into the pairs). Constants for autograd."""

    @staticmethod
    def forward(r, aux, xl, yl, lo, hi, grad_value, gamma, need_gamma):
        return _cost_grad(r, aux, xl, yl, lo, hi, grad_value, gamma, need_gamma)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.mark_non_differentiable(*output)

    @staticmethod
    def vmap(info, in_dims, *args):
        return _fold_vmap(_Grad.apply, info, in_dims, args, (False, False) + (True,) * 5 + (False, False))

    @staticmethod
    def backward(ctx, *grads):
        return (None,) * 9


# the CPU kernel forms the squared Euclidean cost of x, y itself (and its gradient w.r.t. x, y)
# up to this many features (see _fused); past it, the cost matrix (a block's y in the lanes,
# W D lanes numbers, outgrows the cache). Measurements: docs/benchmarks.md.
FUSED_MAX_FEATURES = 8


@functools.lru_cache(maxsize=64)
def _full_lengths(batch: int, n: int) -> np.ndarray:
    """``(batch,)`` int32 of ``n``, read-only (cached: the same for every call of a shape)."""
    a = np.full(batch, n, np.int32)
    a.flags.writeable = False
    return a


class _FusedSqEuclidean(torch.autograd.Function):
    """Soft-DTW of the squared Euclidean cost of CPU ``x``, ``y`` (float32; float64 on the core)
    through the CPU kernel that forms the cost cell by cell and returns the gradients of ``x``
    and ``y`` (:func:`softdtw.kernels.cpu.forward_sqeuclidean`): no ``(B, N, M)`` cost, cost
    gradient or torch ops around the kernel; ``R`` is the one float per cell kept.

    Returns ``(value, state)``: ``state`` is the backward's, ``(r, aux, xl, yl, lo, hi, bad)``
    as NumPy arrays (``bad``: see :meth:`run`), a plain object autograd does not track (callers take ``[0]``): no tensor
    wrappers, saved tensors or conversions back for it. The kernel reads no padding and gives NaN
    to a pair with a non-finite entry; the backward applies the non-finite rule of
    docs/algorithm.md to such pairs (NaN at their used positions where their upstream gradient
    is non-zero, 0 where it is 0)."""

    @staticmethod
    def forward(*args):  # (x, y, gamma, x_len, y_len, band_kind, band_param): *args: see above _plain
        value, *state = _FusedSqEuclidean.run(*args, True)
        return torch.from_numpy(value), tuple(state)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.gamma = inputs[2]
        ctx.state = output[1]
        ctx.save_for_backward(inputs[0], inputs[1])
        ctx.set_materialize_grads(False)

    @staticmethod
    def vmap(info, in_dims, *args):
        # (the state is the folded batch's, as the backward's vmap rule folds its inputs)
        return _fold_vmap(_FusedSqEuclidean.apply, info, in_dims, args, (True, True, False, True, True, False, False),
                          (True, False))

    @staticmethod
    def run(x, y, gamma, x_len, y_len, band_kind, band_param, keep):
        """The kernel's forward: ``(value, r, aux, xl, yl, lo, hi, bad)`` (NumPy; ``bad`` the
        pairs whose value is NaN, or None when there are none); ``keep=False``
        (no gradient wanted): the values alone, no ``R`` stored (:meth:`values`)."""
        kernel = _ops._kernel_module("cpu")  # the core (numba when SOFTDTW_KERNEL=numba)
        batch, n, m = x.shape[0], x.shape[1], y.shape[1]
        if x_len is None and y_len is None:
            lo, hi = _ops._full_bounds_numba(batch, n, m, band_kind, band_param)
        else:
            lo, hi = _ops._bounds(batch, n, m, x_len, y_len, band_kind, band_param)
        xl = _full_lengths(batch, n) if x_len is None else _ops._lengths(x_len, batch, n, x.device).numpy()
        yl = _full_lengths(batch, m) if y_len is None else _ops._lengths(y_len, batch, m, x.device).numpy()
        out = kernel.forward_sqeuclidean(x.detach().numpy(), y.detach().numpy(), gamma, xl, yl, lo, hi, keep,
                                         threads=torch.get_num_threads())
        bad = None  # the pairs with a non-finite entry (NaN values: finite inputs never give NaN)
        if not np.isfinite(out[0]).all():
            if np.isinf(out[0]).any():  # (_check_overflow, on the kernel's NumPy values)
                _check_overflow(torch.from_numpy(out[0]), gamma, x.dtype)
            bad = np.isnan(out[0])
        return out + (xl, yl, lo, hi, bad)

    @staticmethod
    def values(x, y, gamma, x_len, y_len, band_kind, band_param):
        """The values when no gradient is wanted (``torch.no_grad``, inference, or neither
        input requires grad): the same numbers, without the ``B N M`` floats of ``R``
        (evaluation of a large batch needs no memory for a backward)."""
        return torch.from_numpy(_FusedSqEuclidean.run(x, y, gamma, x_len, y_len, band_kind, band_param, False)[0])

    @staticmethod
    def backward(ctx, grad_value, *_unused):
        if grad_value is None:
            return None, None, None, None, None, None, None
        x, y = ctx.saved_tensors
        if _create_graph(x):
            xl, yl, lo, hi = (torch.tensor(a) for a in ctx.state[2:6])  # (copies: some are cached, read-only)
            gx, gy = _differentiable_grad(x, y, None, ctx.gamma, xl, yl, lo, hi, grad_value)
            return gx, gy, None, None, None, None, None
        args = (x, y, ctx.state, grad_value, ctx.gamma, ctx.needs_input_grad[1])
        # (the Function only where a torch.func transform needs one: plain autograd calls its
        # forward directly, without a second Function's bookkeeping)
        gx, gy = _FusedSqEuclideanGrad.apply(*args) if _transformed() else _fused_grad(*args)
        return (gx if ctx.needs_input_grad[0] else None, gy if ctx.needs_input_grad[1] else None,
                None, None, None, None, None)


class _FusedSqEuclideanGrad(torch.autograd.Function):
    """The kernel's backward of :class:`_FusedSqEuclidean` as a Function of its own, so that it
    runs on plain tensors inside torch.func transforms too (a Function's forward does; its vmap
    rule folds a vmapped dimension into the pairs). Returns ``(grad_x, grad_y)``, constants for
    autograd (first order: under ``create_graph=True`` the Function that calls it differentiates
    :func:`_differentiable_grad` instead)."""

    @staticmethod
    def forward(*args):  # (x, y, state, grad_value, gamma, need_y)
        gx, gy = _fused_grad(*args)
        return gx, (torch.zeros_like(args[1]) if gy is None else gy)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.mark_non_differentiable(*output)

    @staticmethod
    def vmap(info, in_dims, *args):
        return _fold_vmap(_FusedSqEuclideanGrad.apply, info, in_dims, args,
                          (True, True, False, True, False, False))

    @staticmethod
    def backward(ctx, *grads):
        return (None,) * 6


def _fused_grad(x, y, state, grad_value, gamma, need_y):
    """``(grad_x, grad_y)`` of :class:`_FusedSqEuclidean` from its state (NumPy ``r, aux, xl,
    yl, lo, hi, bad``): the kernel's backward and the non-finite rule of docs/algorithm.md
    (``grad_y`` None when not ``need_y``)."""
    r, aux, xl, yl, lo, hi, bad = state  # (under vmap, all of the folded batch, as x, y here)
    xn, yn = x.detach().numpy(), y.detach().numpy()
    gvn = grad_value.detach().numpy()
    gv = gvn if gvn.dtype == xn.dtype and gvn.flags.c_contiguous else np.ascontiguousarray(gvn, xn.dtype)
    any_bad = bad is not None and bool(bad.any())
    if any_bad:
        gv = np.where(bad, gv.dtype.type(0), gv)
    gx, gy = _ops._kernel_module("cpu").backward_sqeuclidean(r, aux, xn, yn, gamma, xl, yl, lo, hi, gv, need_y=need_y,
                                                             threads=torch.get_num_threads())
    if any_bad:  # the non-finite rule of docs/algorithm.md
        hit = bad & (gvn != 0)
        for g, lengths in ((gx, xl), (gy, yl)):
            if g is None:
                continue
            g[bad] = 0  # (a non-finite entry times a zero alignment)
            g[hit] = np.where(np.arange(g.shape[1])[:, None] < lengths[hit, None, None], np.nan, 0)
    return torch.from_numpy(gx), (None if gy is None else torch.from_numpy(gy))


def _cost_grad(r, aux, xl, yl, lo, hi, grad_value, gamma, need_gamma):
    """``(grad_cost, grad_gamma)`` of :class:`_Value` from its saved state (``softdtw::backward``)."""
    return sdtw_backward(r, aux, gamma, xl, yl, lo, hi, grad_value, need_gamma)


def _transformed() -> bool:
    """A torch.func transform is active (and torch.compile is not tracing)."""
    return not _plain() and not torch.compiler.is_compiling()


def _create_graph(saved: torch.Tensor) -> bool:
    """In a backward that saved ``saved``: plain autograd with ``create_graph=True`` (grad mode
    on), which wants a gradient it can differentiate again. torch.func's transforms run every
    backward with grad mode on (``vjp``'s function too, on wrapped tensors): there the kernels'
    gradient is first order, with a warning where a backward cannot tell it is not wanted."""
    if not torch.is_grad_enabled() or not _plain() or torch.compiler.is_compiling():
        return False
    if torch._C._functorch.is_functorch_wrapped_tensor(saved):
        warnings.warn("soft-DTW's gradient is first order under torch.func (vjp runs the backward with grad "
                      "mode on): it enters any further derivative as a constant; plain autograd with "
                      "create_graph=True differentiates it", stacklevel=3)
        return False
    return True


def _used_rows(t: torch.Tensor, lengths) -> torch.Tensor:
    """``t`` (B, L, D) with the rows past each pair's length replaced by zeros (no gradient there)."""
    keep = _first(t.shape[1], lengths, t.device)[..., None]
    return torch.where(keep, t, torch.zeros((), dtype=t.dtype, device=t.device))


def _differentiable_grad(x, y, cost, gamma, xl, yl, lo, hi, grad_value, need_gamma=False):
    """The backward under ``create_graph=True``, as torch operations autograd differentiates
    again (double backward, Hessian-vector products): the pure-torch path recomputes ``R`` and
    the expected alignment ``E`` from the cost (the spec's steps, O(B N M) like the first order)
    and the gradient is ``grad_value E`` (``(grad_cost, grad_gamma)``), or with ``x``, ``y``
    (``cost`` None) the vector-Jacobian product of their squared Euclidean cost with it
    (``(grad_x, grad_y)``, None for one that does not require grad)."""
    c = cost
    if cost is None:
        xs, ys = _used_rows(x, xl), _used_rows(y, yl)  # (padding, NaN included, reaches no cost)
        c = sqeuclidean_cost(xs, ys)
    _, r, _ = _pure.forward(c, gamma, xl, yl, lo, hi)
    grad_cost, grad_gamma = _pure.backward(r, None, gamma, xl, yl, lo, hi, grad_value.to(c.dtype), need_gamma)
    if cost is not None:
        return grad_cost, grad_gamma
    wanted = [t for t in (x, y) if t.requires_grad]
    got = iter(torch.autograd.grad(c, wanted, grad_cost, create_graph=True) if wanted else ())
    return tuple(next(got) if t.requires_grad else None for t in (x, y))


class _NonFinitePairs(torch.autograd.Function):
    """The non-finite rule of docs/algorithm.md around any route: ``value`` with NaN at the pairs
    flagged ``bad``. The backward sends the other pairs' upstream gradient on to ``value`` (the
    bad pairs' inputs were replaced by zeros before the route, :func:`_safe`, so their zero
    upstream gives exact zeros there) and NaN to the used positions of the bad pairs' ``x``,
    ``y`` (rows below ``x_len``, ``y_len``), ``cost`` (cells below both) and to ``gamma_t``
    where their upstream gradient is non-zero. Any of ``x``, ``y``, ``cost``, ``gamma_t`` may
    be None."""

    generate_vmap_rule = True

    @staticmethod
    def forward(value, bad, x_len, y_len, x, y, cost, gamma_t):
        return torch.where(bad, torch.full_like(value, math.nan), value)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, bad, x_len, y_len, x, y, cost, gamma_t = inputs
        ctx.save_for_backward(bad, x_len, y_len)
        ctx.like = tuple(None if t is None else (t.shape, t.dtype) for t in (x, y, cost, gamma_t))

    @staticmethod
    def backward(ctx, g):
        bad, x_len, y_len = ctx.saved_tensors
        hit = bad & (g != 0)
        grads = [torch.where(bad, torch.zeros_like(g), g), None, None, None]

        def rows(n, lengths):  # (B or 1, n): the used positions
            used = _first(n, lengths, g.device)
            return torch.ones((1, n), dtype=torch.bool, device=g.device) if used is None else used

        for k, like in enumerate(ctx.like):
            if like is None or not ctx.needs_input_grad[4 + k]:
                grads.append(None)
                continue
            shape, dtype = like
            if k == 3:  # gamma_t
                grads.append(torch.where(hit.any(), math.nan, 0.0).to(dtype).expand(shape).clone())
                continue
            used = rows(shape[1], x_len if k != 1 else y_len)
            if k == 2:  # a cost: rows below x_len, columns below y_len
                used = used[:, :, None] & rows(shape[2], y_len)[:, None, :]
            else:
                used = used[:, :, None]
            used = used & hit[:, None, None]
            grads.append(torch.where(used, math.nan, 0.0).to(dtype).expand(shape).contiguous())
        return tuple(grads)


def _safe(t: torch.Tensor, lengths, bad) -> torch.Tensor:
    """``t`` (B, L, D) as the routes may read it: the rows past each pair's length replaced by
    its last used row (edge padding: whatever the padding holds, NaN included, never reaches a
    cost, its centring or a ``dist_func``, whose derivatives there are multiplied by an exact
    0), and the pairs flagged ``bad`` (a non-finite entry) replaced by zeros (their values are
    NaN by :class:`_NonFinitePairs`)."""
    if lengths is not None:
        idx = torch.arange(t.shape[1], device=t.device)[None, :].minimum(lengths.to(t.device)[:, None] - 1)
        t = torch.gather(t, 1, idx[:, :, None].expand(-1, -1, t.shape[2]))
    return _zero_pairs(t, bad)


def _zero_pairs(t: torch.Tensor, bad) -> torch.Tensor:
    """``t`` (B, ...) with the pairs flagged ``bad`` (B,) replaced by zeros."""
    bad = bad.to(t.device).reshape(-1, *(1,) * (t.dim() - 1))
    return torch.where(bad, torch.zeros((), dtype=t.dtype, device=t.device), t)


def _may_differentiate(*tensors: torch.Tensor) -> bool:
    """Whether autograd may differentiate through ``tensors``: grad mode on and one requires
    grad, or one carries a forward-mode tangent (which the fused Function refuses loudly, as
    it has no jvp, rather than a stateless path dropping the tangent)."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return True
    if forward_ad._current_level < 0:  # no dual level entered: no tangent anywhere (unpack_dual's own test)
        return False
    return any(forward_ad.unpack_dual(t).tangent is not None for t in tensors)


def _cpu_eager(t: torch.Tensor) -> bool:
    """``t`` is on CPU, a NumPy kernel (the core, or numba) serves CPU, and torch.compile is not
    tracing (which needs the custom ops): the eager shortcuts below may call it on NumPy views."""
    return (t.device.type == "cpu" and not torch.compiler.is_compiling()
            and _ops._numpy_kernel(_ops._kernel_module("cpu")))


def _cpu_data(t: torch.Tensor) -> bool:
    """:func:`_cpu_eager`, and ``t``'s data readable from NumPy (not wrapped by torch.func)."""
    return _cpu_eager(t) and _plain()


def _fused(x: torch.Tensor, compute: torch.dtype) -> bool:
    """Whether the default cost of ``x`` (and a ``y`` on its device) goes through
    :class:`_FusedSqEuclidean`: on CPU with a NumPy kernel, at most :data:`FUSED_MAX_FEATURES`
    features, outside torch.compile (which traces the custom ops); float32 compute, or float64
    on the compiled core (the numba kernel's fused source is float32 only)."""
    if x.shape[-1] > FUSED_MAX_FEATURES or not _cpu_eager(x):
        return False
    return compute == torch.float32 or (
        compute == torch.float64 and _ops._kernel_module("cpu").__name__ == "softdtw.kernels.cpu")


MEMORY_MODES = ("full", "checkpoint")


def _mode(memory, second_order, gamma_t) -> str:
    """``"full"`` or ``"checkpoint"``, from the user's options (``second_order`` is deprecated:
    every route differentiates twice under ``create_graph=True``)."""
    if second_order:
        warnings.warn("second_order=True is no longer needed and will be removed: the gradient is "
                      "differentiable whenever backward runs with create_graph=True", DeprecationWarning, stacklevel=3)
    if memory not in MEMORY_MODES:
        raise ValueError(f"memory must be one of {MEMORY_MODES}, got {memory!r}")
    if memory == "checkpoint" and gamma_t is not None:
        raise ValueError("memory='checkpoint' takes gamma as a number (or a tensor that does not require grad)")
    return memory


def _checkpoint_value(x, y, cost, gamma, x_len, y_len, band):
    """Values through the checkpointed sweep (:mod:`softdtw.torch._checkpoint`): of the squared
    Euclidean cost of ``x``, ``y`` (never formed) when ``cost`` is None, else of ``cost``."""
    ref = x if cost is None else cost
    batch, n = ref.shape[0], ref.shape[1]
    m = y.shape[1] if cost is None else cost.shape[2]
    lo_np, hi_np = _ops._bounds(batch, n, m, x_len, y_len, band[0], band[1])
    dev = ref.device
    xl, yl = _ops._lengths(x_len, batch, n, dev), _ops._lengths(y_len, batch, m, dev)
    lo, hi = torch.tensor(lo_np, device=dev), torch.tensor(hi_np, device=dev)
    return _checkpoint.SoftDTWCheckpoint.apply(x, y, cost, gamma, xl, yl, lo, hi,
                                               _checkpoint.segment_length(n, m))


def _value(cost, gamma, x_len, y_len, band, gamma_t=None, mode="full"):
    """Soft-DTW of a compute-dtype batch cost (B, N, M) through the custom op (and d / d gamma
    when ``gamma_t``, the tensor gamma came from, requires grad), with the checkpointed backward
    in mode ``"checkpoint"``; twice differentiable in both."""
    if mode == "checkpoint":
        return _checkpoint_value(None, None, cost, gamma, x_len, y_len, band)
    return _apply(_Value, cost, gamma_t, gamma, x_len, y_len, band[0], band[1])[0]


def _first(n: int, lengths, device) -> torch.Tensor | None:
    """(B, n) mask of the positions below each pair's length (None: all of them)."""
    return None if lengths is None else torch.arange(n, device=device) < lengths.to(device)[:, None]


def _bad_series(t: torch.Tensor, lengths) -> torch.Tensor:
    """(B,) pairs with a non-finite entry in ``t[b, :lengths[b]]``."""
    if t.dtype in (torch.float32, torch.float64) and t.dim() == 3 and _cpu_data(t):
        # one pass of the CPU kernel instead of six small torch ops (each an OpenMP region)
        n = np.full(t.shape[0], t.shape[1]) if lengths is None else lengths.cpu().numpy()
        return torch.from_numpy(_ops._kernel_module("cpu").nonfinite_pairs(t.detach().numpy(), n))
    bad = ~torch.isfinite(t).all(-1)
    mask = _first(t.shape[1], lengths, t.device)
    return (bad if mask is None else bad & mask).any(-1)


def _bad_cost(cost: torch.Tensor, x_len, y_len) -> torch.Tensor:
    """(B,) pairs with a NaN or a -inf in ``cost[b, :x_len[b], :y_len[b]]`` (+inf is a forbidden cell)."""
    bad = torch.isnan(cost) | (cost == -math.inf)
    cols = _first(cost.shape[2], y_len, cost.device)
    bad = (bad if cols is None else bad & cols[:, None, :]).any(-1)
    rows = _first(cost.shape[1], x_len, cost.device)
    return (bad if rows is None else bad & rows).any(-1)


def _pair_cost(x, y, dist_func, compute_dtype):
    if dist_func is None:
        return sqeuclidean_cost(x.to(compute_dtype), y.to(compute_dtype))
    cost = dist_func(x, y)
    expected = (x.shape[0], x.shape[1], y.shape[1])
    if not isinstance(cost, torch.Tensor) or tuple(cost.shape) != expected:
        got = tuple(cost.shape) if isinstance(cost, torch.Tensor) else type(cost).__name__
        raise ValueError(f"dist_func must return a tensor of shape {expected}, got {got}")
    if cost.dtype == torch.bool or cost.dtype.is_complex:
        raise TypeError(f"dist_func must return real numbers, got dtype {cost.dtype}")
    return cost.to(compute_dtype)


def _one_length(lengths, name: str):
    """The length of one (unbatched) pair as a (1,) tensor: a number, a 0-d or a (1,) array."""
    if lengths is None:
        return None
    t = torch.as_tensor(lengths)
    if t.numel() != 1:
        raise ValueError(f"{name} must be one length for one unbatched pair (a number, shape () or (1,)), "
                         f"got shape {tuple(t.shape)}")
    return t.reshape(1)


def _check_gamma_dtype(gamma: float, compute: torch.dtype, n: int, m: int) -> None:
    spec.check_gamma_for(gamma, str(compute).removeprefix("torch."), n, m)


# --------------------------------------------------------------------------- the route table
#
# Every entry point (soft_dtw, SoftDTWLossPyTorch, soft_dtw_from_cost) checks its inputs, builds
# one _Problem per batch of pairs (per term of the divergence) and hands it to _solve; _route is
# the one place that picks how it runs, and the kernel under a route is picked by device in one
# place too (_ops._kernel_module: the compiled core on CPU, Triton on CUDA, pure torch
# elsewhere). Every route is differentiable twice under create_graph=True (_differentiable_grad).


@dataclasses.dataclass(frozen=True, slots=True)
class _Problem:
    """A checked batch of pairs: series ``x`` (B, N, D), ``y`` (B, M, D) as given (the routes
    cast them to ``compute``), or a ``cost`` (B, N, M) in ``compute`` (x, y None); ``gamma``
    and the tensor ``gamma_t`` it came from when that requires grad (else None); per-pair
    lengths (or None); the band ``(kind, param)``; the memory mode; the user's ``dist_func``."""

    x: torch.Tensor | None
    y: torch.Tensor | None
    cost: torch.Tensor | None
    gamma: float
    gamma_t: torch.Tensor | None
    xl: torch.Tensor | None
    yl: torch.Tensor | None
    band: tuple[int, float]
    mode: str
    compute: torch.dtype
    dist_func: Callable | None = None


def _route(p: _Problem) -> str:
    """How ``p`` runs:

    ``"series"``
        the CPU core forms the squared Euclidean cost of ``x``, ``y`` cell by cell and returns
        their gradients (:class:`_FusedSqEuclidean`: no cost matrix): the default cost, at most
        :data:`FUSED_MAX_FEATURES` features, memory ``"full"``, gamma a number, on CPU outside
        torch.compile. The kernel reads no padding and gives NaN to a pair with a non-finite entry.
    ``"checkpoint"``
        ``memory="checkpoint"`` (:class:`softdtw.torch._checkpoint.SoftDTWCheckpoint`), on the
        series (the default cost, never formed) or on a cost.
    ``"cost"``
        everything else: the cost matrix (the input, ``dist_func``'s or :func:`sqeuclidean_cost`)
        through the ``softdtw::forward`` / ``softdtw::backward`` custom ops (:class:`_Value`).
    """
    if p.mode == "checkpoint":
        return "checkpoint"
    if p.cost is None and p.dist_func is None and p.gamma_t is None and _fused(p.x, p.compute):
        return "series"
    return "cost"


def _series_route(p: _Problem) -> torch.Tensor:
    x = p.x if p.x.dtype == p.compute else p.x.to(p.compute)
    y = p.y if p.y.dtype == p.compute else p.y.to(p.compute)
    args = (x, y, p.gamma, p.xl, p.yl, p.band[0], p.band[1])
    if _may_differentiate(p.x, p.y) or not _plain():
        return _apply(_FusedSqEuclidean, *args)[0]
    return _FusedSqEuclidean.values(*args)  # (nothing will differentiate: no R kept)


def _guarded_route(p: _Problem) -> torch.Tensor:
    """The ``"cost"`` and ``"checkpoint"`` routes: the inputs are read through :func:`_safe`
    (padding never reaches a cost; a pair with a non-finite entry is computed on zeros) and the
    values end in :class:`_NonFinitePairs` (the non-finite rule of docs/algorithm.md)."""
    if p.cost is not None:
        bad = _bad_cost(p.cost, p.xl, p.yl)
        v = _value(_zero_pairs(p.cost, bad), p.gamma, p.xl, p.yl, p.band, p.gamma_t, p.mode)
        return _apply(_NonFinitePairs, v, bad, p.xl, p.yl, None, None, p.cost, p.gamma_t)
    a, b, al, bl = p.x, p.y, p.xl, p.yl
    bad = _bad_series(a, al) | _bad_series(b, bl)
    sa, sb = _safe(a, al, bad), _safe(b, bl, bad)
    if p.mode == "checkpoint" and p.dist_func is None:  # no cost matrix at all
        v = _checkpoint_value(sa.to(p.compute), sb.to(p.compute), None, p.gamma, al, bl, p.band)
    else:
        cost = _pair_cost(sa, sb, p.dist_func, p.compute)
        if p.dist_func is not None:  # a NaN or -inf the user's cost makes of finite series
            bad_cost = _bad_cost(cost, al, bl)
            cost = _zero_pairs(cost, bad_cost)
            bad = bad | bad_cost
        v = _value(cost, p.gamma, al, bl, p.band, p.gamma_t, p.mode)
    if p.dist_func is None:  # finite series (the bad pairs are zeros here): inf is an overflow
        _check_overflow(v, p.gamma, p.compute)
    # (one tensor for two inputs, as in the divergence's self terms, is one input: dynamo traces
    # no Function given a tensor twice)
    if bl is not None and bl is al:
        bl = bl.clone()
    return _apply(_NonFinitePairs, v, bad, al, bl, a, None if b is a else b, None, p.gamma_t)


_ROUTES = {"series": _series_route, "checkpoint": _guarded_route, "cost": _guarded_route}


def _solve(p: _Problem) -> torch.Tensor:
    """Soft-DTW values ``(B,)`` of ``p``, in ``p.compute``, on its route."""
    return _ROUTES[_route(p)](p)


def soft_dtw(x, y, gamma: float = 1.0, *, normalize: bool = False, dist_func: Callable | None = None,
             global_constraint=None, sakoe_chiba_radius=None, itakura_max_slope=None,
             x_lengths=None, y_lengths=None, second_order: bool = False, memory: str = "full") -> torch.Tensor:
    r"""Soft-DTW between batches of series (or its divergence), differentiable by autograd.

    .. math::

        \mathrm{sdtw}_\gamma(x, y) = \min_{A \in \mathcal{A}_{N,M}}{}^{\gamma} \langle A, C(x, y) \rangle,
        \qquad \min{}^\gamma(a_1, \dots, a_n) = -\gamma \log \sum_i e^{-a_i / \gamma}

    over the monotone alignment paths :math:`\mathcal{A}_{N,M}` from (1, 1) to (N, M), with
    :math:`C(x, y)_{ij} = \lVert x_i - y_j \rVert^2` by default. With ``normalize=True``, the
    divergence :math:`\mathrm{sdtw}(x, y) - \tfrac12 (\mathrm{sdtw}(x, x) + \mathrm{sdtw}(y, y))`.
    CPU tensors run the compiled core, CUDA tensors the Triton kernels, other devices a
    pure-torch loop; all through the ``softdtw::forward`` / ``softdtw::backward`` custom ops.

    Parameters
    ----------
    x : Tensor (B, N, D) or (N, D), or a PackedSequence
    y : Tensor (B, M, D) or (M, D), or a PackedSequence
        On the device of ``x``; may be an integer tensor.
    gamma : float > 0, or a one-element floating tensor
        Smoothing; smaller is closer to DTW. A tensor that requires grad gets
        ``d value / d gamma`` (gamma can be learned).
    normalize : bool
        Soft-DTW divergence ``sdtw(x, y) - (sdtw(x, x) + sdtw(y, y)) / 2`` (>= 0, 0 when x == y).
    dist_func : callable, optional
        ``dist_func(x, y) -> (B, N, M)``, differentiated by autograd; called on ``(x, x)`` and
        ``(y, y)`` too when ``normalize``. Default: squared Euclidean (:func:`sqeuclidean_cost`).
    global_constraint : str or None
        ``"sakoe_chiba"`` or ``"itakura"``: the band of allowed cells, as in tslearn 0.10
        (see docs/algorithm.md). Default None: every cell.
    sakoe_chiba_radius : int, optional
        Radius of the Sakoe-Chiba band (default 1; giving it alone selects that band).
    itakura_max_slope : float, optional
        Maximum slope of the Itakura parallelogram (default 2; giving it alone selects that band).
    x_lengths, y_lengths : int Tensor or array_like, shape (B,), optional
        Per-pair lengths of padded batches: pair ``b`` uses ``x[b, :x_lengths[b]]`` and
        ``y[b, :y_lengths[b]]``; gradients at padded positions are 0.
    second_order : bool
        Deprecated, no effect (a DeprecationWarning): the gradient is differentiable whenever
        the backward runs with ``create_graph=True`` (double backward, Hessian-vector
        products), on every route; that backward differentiates a pure-torch recomputation of
        the DP, and first-order training pays nothing for it.
    memory : {"full", "checkpoint"}
        ``"checkpoint"`` keeps only every ``sqrt(N)``-th DP row (CPU; every ``sqrt(N + M)``-th
        pair of diagonals elsewhere) and recomputes the rest in the backward: O(B sqrt(N) M)
        memory instead of O(B N M), and with the default cost no cost matrix either
        (N = M = 32768 runs in 0.2 GB). On CPU in float64 the same values and gradients as
        ``"full"`` to the last bit (elsewhere to rounding); slower.

    Returns
    -------
    Tensor, shape (B,), or 0-d for one pair
        in the input's floating dtype, on its device: float64 computes in float64, float32 in
        float32, float16/bfloat16 compute in float32 and return the input dtype, integer inputs
        give float32.

    Examples
    --------
    >>> import torch
    >>> soft_dtw(torch.zeros(4, 3, 2), torch.arange(24.0).reshape(4, 3, 2), gamma=0.1).round()
    tensor([  55.,  451., 1279., 2539.])
    """
    if (dist_func is None and not normalize and global_constraint is None and sakoe_chiba_radius is None
            and itakura_max_slope is None and x_lengths is None and y_lengths is None and not second_order
            and memory == "full"):
        p = _common_problem(x, y, gamma)
        if p is not None:  # (checked: the same route as below, without the general checks' cost)
            return _solve(p)
    x, x_lengths = _unpack(x, x_lengths, "x")
    y, y_lengths = _unpack(y, y_lengths, "y")
    _check_tensor(x, "x")
    _check_tensor(y, "y")
    gamma, gamma_t = _check_gamma(gamma)
    batched = spec.check_pair_shapes(tuple(x.shape), tuple(y.shape))
    if x.device != y.device:
        raise ValueError(f"x and y must be on the same device, got {x.device} and {y.device}")
    band = _band(global_constraint, sakoe_chiba_radius, itakura_max_slope)
    if not batched:
        x, y = x[None], y[None]
        x_lengths, y_lengths = _one_length(x_lengths, "x_lengths"), _one_length(y_lengths, "y_lengths")
    batch = x.shape[0]
    xl = _check_lengths(x_lengths, batch, x.device, "x_lengths", x.shape[1])
    yl = _check_lengths(y_lengths, batch, x.device, "y_lengths", y.shape[1])
    compute, out = _dtypes(x, y)
    _check_gamma_dtype(gamma, compute, x.shape[1], y.shape[1])
    mode = _mode(memory, second_order, gamma_t)

    def pair_value(a, b, al, bl):
        return _solve(_Problem(a, b, None, gamma, gamma_t, al, bl, band, mode, compute, dist_func))

    value = pair_value(x, y, xl, yl)
    if normalize:
        value = value - (pair_value(x, x, xl, xl) + pair_value(y, y, yl, yl)) / 2
    value = value.to(out)
    return value if batched else value[0]


def _check_overflow(value: torch.Tensor, gamma: float, compute: torch.dtype) -> None:
    """Finite series never give an infinite value, except where ``cost / gamma`` overflows the
    compute dtype (a gamma far below the costs: the kernels work in units of gamma): raise
    rather than return it. Checked on CPU, where it costs no device synchronisation, for the
    values of the default cost (a ``dist_func`` may forbid every path with +inf)."""
    if value.device.type == "cpu" and _plain() and not torch.compiler.is_compiling() \
            and bool(torch.isinf(value.detach()).any()):
        name = str(compute).removeprefix("torch.")
        raise ValueError(f"gamma={gamma!r} is too small for {name} at these costs: cost / gamma overflows "
                         f"{name}; use a larger gamma (or float64 inputs)")


# float32's smallest normal and 1/16 of its largest number over log(3): the gamma bounds of
# spec.check_gamma_for, for the common call (which leaves any other gamma to the general checks)
_F32_TINY = float(np.finfo(np.float32).tiny)
_F32_ENTROPY_MAX = float(np.finfo(np.float32).max) / 16 / math.log(3.0)


def _common_problem(x, y, gamma) -> _Problem | None:
    """The training loop's call (batched float32 ``x`` and ``y`` on one device, a number for
    ``gamma``, the default cost and options: the caller checked those) checked in a few
    comparisons: its problem, or None for anything else, which :func:`soft_dtw`'s general checks
    take (where these inputs pass the same checks). Those cost ~100 us a call, Python run
    cache-cold right after the kernel, against a ~4.5 ms forward+backward at (32, 256, 256, 8)."""
    if type(x) is not torch.Tensor or type(y) is not torch.Tensor or type(gamma) not in (float, int):
        return None
    if x.dtype != torch.float32 or y.dtype != torch.float32 or x.dim() != 3 or y.dim() != 3:
        return None
    batch, n, d = x.shape
    if (y.shape[0] != batch or y.shape[2] != d or batch < 1 or n < 1 or y.shape[1] < 1 or d < 1
            or not _F32_TINY <= gamma or gamma * (n + y.shape[1]) > _F32_ENTROPY_MAX or y.device != x.device):
        return None
    return _Problem(x, y, None, float(gamma), None, None, None, (0, 0.0), "full", torch.float32)


def _prepare_cost(cost, gamma, global_constraint, sakoe_chiba_radius, itakura_max_slope, x_lengths, y_lengths):
    _check_tensor(cost, "cost")
    gamma, gamma_t = _check_gamma(gamma)
    batched = spec.check_cost_shape(tuple(cost.shape))
    band = _band(global_constraint, sakoe_chiba_radius, itakura_max_slope)
    if not batched:
        cost = cost[None]
        x_lengths, y_lengths = _one_length(x_lengths, "x_lengths"), _one_length(y_lengths, "y_lengths")
    xl = _check_lengths(x_lengths, cost.shape[0], cost.device, "x_lengths", cost.shape[1])
    yl = _check_lengths(y_lengths, cost.shape[0], cost.device, "y_lengths", cost.shape[2])
    compute, out = _dtypes(cost)
    _check_gamma_dtype(gamma, compute, cost.shape[1], cost.shape[2])
    return cost.to(compute), (gamma, gamma_t), batched, band, xl, yl, out


def soft_dtw_from_cost(cost, gamma: float = 1.0, *, global_constraint=None, sakoe_chiba_radius=None,
                       itakura_max_slope=None, x_lengths=None, y_lengths=None,
                       second_order: bool = False, memory: str = "full") -> torch.Tensor:
    r"""Soft-DTW of a cost matrix (or a batch of them), differentiable in ``cost``.

    .. math::

        \mathrm{sdtw}_\gamma(C) = \min_{A \in \mathcal{A}_{N,M}}{}^{\gamma} \langle A, C \rangle
        = -\gamma \log \sum_{A \in \mathcal{A}_{N,M}} e^{-\langle A, C \rangle / \gamma}

    over the monotone alignment paths :math:`\mathcal{A}_{N,M}` from (1, 1) to (N, M),
    computed by :math:`R_{ij} = C_{ij} + \min{}^\gamma(R_{i-1,j-1}, R_{i-1,j}, R_{i,j-1})`.
    The gradient with respect to ``cost`` is the expected alignment
    (:func:`soft_dtw_alignment_from_cost`).

    Parameters
    ----------
    cost : Tensor, shape (B, N, M) or (N, M)
    gamma : float > 0, or a one-element floating tensor (learnable when it requires grad)
    global_constraint : str or None
        ``"sakoe_chiba"`` or ``"itakura"``: the band of allowed cells, as in tslearn 0.10
        (see docs/algorithm.md). Default None: every cell.
    sakoe_chiba_radius : int, optional
        Radius of the Sakoe-Chiba band (default 1; giving it alone selects that band).
    itakura_max_slope : float, optional
        Maximum slope of the Itakura parallelogram (default 2; giving it alone selects that band).
    x_lengths, y_lengths : int Tensor or array_like, shape (B,), optional
        Per-matrix lengths of padded batches: matrix ``b`` uses
        ``cost[b, :x_lengths[b], :y_lengths[b]]``; gradients at padded cells are 0.
    second_order : bool
        Deprecated, no effect: see :func:`soft_dtw` (double backward works by default).
    memory : {"full", "checkpoint"}
        The low-memory backward of :func:`soft_dtw` (``R`` only; the cost is the input).

    Returns
    -------
    Tensor, shape (B,), or 0-d for one matrix
        in the input's floating dtype, on its device: float64 computes in float64, float32 in
        float32, float16/bfloat16 compute in float32 and return the input dtype, integer inputs
        give float32.

    Examples
    --------
    >>> import torch
    >>> soft_dtw_from_cost(torch.tensor([[1.0, 2.0], [3.0, 1.0]]), gamma=1e-3)
    tensor(2.)
    >>> c = torch.zeros(2, 2, dtype=torch.float64, requires_grad=True)
    >>> soft_dtw_from_cost(c, gamma=1.0).backward()  # the gradient is the expected alignment
    >>> (c.grad * 3).round()  # 3 paths: (0,0)-(1,1), via (0,1), via (1,0)
    tensor([[3., 1.],
            [1., 3.]], dtype=torch.float64)
    """
    cost, (gamma, gamma_t), batched, band, xl, yl, out = _prepare_cost(
        cost, gamma, global_constraint, sakoe_chiba_radius, itakura_max_slope, x_lengths, y_lengths)
    mode = _mode(memory, second_order, gamma_t)
    value = _solve(_Problem(None, None, cost, gamma, gamma_t, xl, yl, band, mode, cost.dtype)).to(out)
    return value if batched else value[0]


def soft_dtw_alignment_from_cost(cost, gamma: float = 1.0, *, global_constraint=None, sakoe_chiba_radius=None,
                                 itakura_max_slope=None, x_lengths=None, y_lengths=None):
    r"""Expected alignment of a cost matrix and the soft-DTW value: ``(alignment, value)``.

    .. math::

        E = \frac{\partial\, \mathrm{sdtw}_\gamma(C)}{\partial C} = \sum_{A} p_\gamma(A)\, A,
        \qquad p_\gamma(A) \propto e^{-\langle A, C \rangle / \gamma}

    ``E[b, i, j]`` is the probability that a path drawn from the Gibbs distribution
    :math:`p_\gamma` goes through cell (i, j): in [0, 1], 1 at the first and last cells, 0
    outside a pair's lengths and band.
    Not part of the autograd graph (use ``soft_dtw_from_cost(...).backward()`` for that).

    Parameters
    ----------
    cost : Tensor, shape (B, N, M) or (N, M)
    gamma : float > 0
    global_constraint : str or None
        ``"sakoe_chiba"`` or ``"itakura"``: the band of allowed cells, as in tslearn 0.10
        (see docs/algorithm.md). Default None: every cell.
    sakoe_chiba_radius : int, optional
        Radius of the Sakoe-Chiba band (default 1; giving it alone selects that band).
    itakura_max_slope : float, optional
        Maximum slope of the Itakura parallelogram (default 2; giving it alone selects that band).
    x_lengths, y_lengths : int Tensor or array_like, shape (B,), optional
        Per-matrix lengths of padded batches: matrix ``b`` uses
        ``cost[b, :x_lengths[b], :y_lengths[b]]``; gradients at padded cells are 0.

    Returns
    -------
    alignment : Tensor, shape (B, N, M) or (N, M)
    value : Tensor, shape (B,) or 0-d
        Both in the floating dtype of ``cost`` (see :func:`soft_dtw`), on its device.

    Examples
    --------
    >>> import torch
    >>> a, v = soft_dtw_alignment_from_cost(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), gamma=1e-3)
    >>> a
    tensor([[1., 0.],
            [0., 1.]])
    """
    cost, (gamma, _), batched, band, xl, yl, out = _prepare_cost(
        cost.detach(), gamma, global_constraint, sakoe_chiba_radius, itakura_max_slope, x_lengths, y_lengths)
    bad = _bad_cost(cost, xl, yl)
    safe = _zero_pairs(cost, bad)
    value, r, aux, xl_, yl_, lo, hi = sdtw_forward(safe, gamma, xl, yl, band[0], band[1])
    alignment, _ = sdtw_backward(r, aux, gamma, xl_, yl_, lo, hi, torch.ones_like(value), False)
    # the non-finite rule (docs/algorithm.md): NaN for a pair with a NaN or -inf in a used cell
    used = _first(cost.shape[1], xl_, cost.device)[:, :, None] & _first(cost.shape[2], yl_, cost.device)[:, None, :]
    alignment = torch.where(bad[:, None, None] & used, math.nan, alignment)
    value = torch.where(bad, math.nan, value)
    alignment, value = alignment.to(out), value.to(out)
    return (alignment, value) if batched else (alignment[0], value[0])


def soft_dtw_alignment(x, y, gamma: float = 1.0, *, dist_func: Callable | None = None, global_constraint=None,
                       sakoe_chiba_radius=None, itakura_max_slope=None, x_lengths=None, y_lengths=None):
    r"""Expected alignment between ``x`` and ``y`` and the soft-DTW value (tslearn's order).

    .. math::

        E = \frac{\partial\, \mathrm{sdtw}_\gamma(C)}{\partial C} = \sum_{A} p_\gamma(A)\, A,
        \qquad p_\gamma(A) \propto e^{-\langle A, C \rangle / \gamma}

    ``E[b, i, j]`` is the probability that a path drawn from the Gibbs distribution
    :math:`p_\gamma` goes through cell (i, j): in [0, 1], 1 at the first and last cells, 0
    outside a pair's lengths and band.
    Here :math:`C = C(x, y)`, by default :math:`C_{ij} = \lVert x_i - y_j \rVert^2`. Not part of
    the autograd graph.

    Parameters
    ----------
    x : Tensor, shape (B, N, D) or (N, D)
    y : Tensor, shape (B, M, D) or (M, D)
    gamma : float > 0
    dist_func : callable, optional
        ``dist_func(x, y) -> (B, N, M)``. Default: squared Euclidean.
    global_constraint : str or None
        ``"sakoe_chiba"`` or ``"itakura"``: the band of allowed cells, as in tslearn 0.10
        (see docs/algorithm.md). Default None: every cell.
    sakoe_chiba_radius : int, optional
        Radius of the Sakoe-Chiba band (default 1; giving it alone selects that band).
    itakura_max_slope : float, optional
        Maximum slope of the Itakura parallelogram (default 2; giving it alone selects that band).
    x_lengths, y_lengths : int Tensor or array_like, shape (B,), optional
        Per-pair lengths of padded batches: pair ``b`` uses ``x[b, :x_lengths[b]]`` and
        ``y[b, :y_lengths[b]]``; gradients at padded positions are 0.

    Returns
    -------
    alignment : Tensor, shape (B, N, M) or (N, M)
    value : Tensor, shape (B,) or 0-d
        Both in the floating dtype of the inputs (see :func:`soft_dtw`), on their device.

    Examples
    --------
    >>> import torch
    >>> a, v = soft_dtw_alignment(torch.tensor([[0.0], [1.0]]), torch.tensor([[0.0], [1.0]]), gamma=0.01)
    >>> a.round(decimals=3)
    tensor([[1., 0.],
            [0., 1.]])
    """
    _check_tensor(x, "x")
    _check_tensor(y, "y")
    batched = spec.check_pair_shapes(tuple(x.shape), tuple(y.shape))
    compute, _ = _dtypes(x, y)
    with torch.no_grad():
        cost = _pair_cost(x if batched else x[None], y if batched else y[None], dist_func, compute)
    if not batched:
        cost = cost[0]
    return soft_dtw_alignment_from_cost(cost, gamma, global_constraint=global_constraint,
                                        sakoe_chiba_radius=sakoe_chiba_radius, itakura_max_slope=itakura_max_slope,
                                        x_lengths=x_lengths, y_lengths=y_lengths)


class SoftDTWLossPyTorch(torch.nn.Module):
    r"""Soft-DTW loss function in PyTorch (a drop-in for tslearn's ``SoftDTWLossPyTorch``).

    .. math::

        \text{soft-DTW}_{\gamma}(X, Y) = \min_{\pi}{}^\gamma \sum_{(i, j) \in \pi} d(X_i, Y_j),
        \qquad \min{}^\gamma(a_1, \dots, a_n) = -\gamma \log \sum_i e^{-a_i / \gamma}

    With ``normalize=True``, the soft-DTW divergence
    :math:`D_\gamma(X, Y) = \text{soft-DTW}_\gamma(X, Y) - \frac12 (\text{soft-DTW}_\gamma(X, X) + \text{soft-DTW}_\gamma(Y, Y))`,
    which is >= 0 and exactly 0 when X = Y.

    Parameters
    ----------
    gamma : float
        Regularization parameter, > 0. Lower is closer to DTW. May be a one-element
        tensor, e.g. an ``nn.Parameter`` (registered with the module) to learn gamma.
    normalize : bool
        Use the soft-DTW divergence. Default False.
    dist_func : callable, optional
        ``dist_func(x, y)`` on (B, N, D), (B, M, D) returning (B, N, M), differentiated by
        autograd. Default: squared Euclidean (computed without a (B, N, M, D) tensor).
    global_constraint : str or None
        ``"sakoe_chiba"`` or ``"itakura"`` (tslearn 0.10's bands), or None for every cell.
    sakoe_chiba_radius : int, optional (default 1 when the band is "sakoe_chiba")
    itakura_max_slope : float, optional (default 2 when the band is "itakura")
    second_order : bool
        Deprecated, no effect: double backward works by default (see :func:`soft_dtw`).
    memory : {"full", "checkpoint"}
        ``"checkpoint"``: the low-memory backward of :func:`soft_dtw`. Default "full".

    Examples
    --------
    >>> import torch
    >>> from softdtw.torch import SoftDTWLossPyTorch
    >>> soft_dtw_loss = SoftDTWLossPyTorch(gamma=0.1)
    >>> x = torch.zeros((4, 3, 2), requires_grad=True)
    >>> y = torch.arange(0, 24).reshape(4, 3, 2)
    >>> soft_dtw_loss_mean_value = soft_dtw_loss(x, y).mean()
    >>> print(soft_dtw_loss_mean_value)
    tensor(1081., grad_fn=<MeanBackward0>)
    >>> soft_dtw_loss_mean_value.backward()
    >>> print(x.grad.shape)
    torch.Size([4, 3, 2])
    >>> print(x.grad)
    tensor([[[  0.0000,  -0.5000],
             [ -1.0000,  -1.5000],
             [ -2.0000,  -2.5001]],
    <BLANKLINE>
            [[ -3.0000,  -3.5000],
             [ -4.0000,  -4.5000],
             [ -5.0000,  -5.5000]],
    <BLANKLINE>
            [[ -6.0000,  -6.5000],
             [ -7.0000,  -7.5000],
             [ -8.0000,  -8.5000]],
    <BLANKLINE>
            [[ -9.0000,  -9.5000],
             [-10.0000, -10.5000],
             [-11.0000, -11.5000]]])

    References
    ----------
    M. Cuturi and M. Blondel, "Soft-DTW: a Differentiable Loss Function for Time-Series", ICML 2017.
    M. Blondel, A. Mensch and J.-P. Vert, "Differentiable Divergences Between Time Series", AISTATS 2021.
    """

    def __init__(self, gamma: float = 1.0, normalize: bool = False, dist_func: Callable | None = None,
                 global_constraint=None, sakoe_chiba_radius=None, itakura_max_slope=None,
                 second_order: bool = False, memory: str = "full"):
        super().__init__()
        checked, _ = _check_gamma(gamma)
        self.gamma = gamma if isinstance(gamma, torch.Tensor) else checked
        spec.check_constraint(global_constraint, sakoe_chiba_radius, itakura_max_slope)
        self.normalize = normalize
        self.dist_func = dist_func
        self.global_constraint = global_constraint
        self.sakoe_chiba_radius = sakoe_chiba_radius
        self.itakura_max_slope = itakura_max_slope
        self.second_order = second_order
        self.memory = memory
        _mode(memory, second_order, None)

    def forward(self, x, y, x_lengths=None, y_lengths=None) -> torch.Tensor:
        """Per-pair losses for a batch; no reduction (take ``.mean()`` for a scalar loss).

        Parameters
        ----------
        x : Tensor (B, N, D) or a PackedSequence
        y : Tensor (B, M, D) or a PackedSequence
        x_lengths, y_lengths : int Tensor (B,), optional
            Per-pair lengths of padded batches (see :func:`soft_dtw`).

        Returns
        -------
        Tensor, shape (B,)
            :func:`soft_dtw` with this module's settings, in the inputs' floating dtype.

        Examples
        --------
        >>> import torch
        >>> loss = SoftDTWLossPyTorch(gamma=1.0)
        >>> loss(torch.zeros(2, 1, 1), torch.tensor([[[1.0]], [[2.0]]]))
        tensor([1., 4.])
        """
        return soft_dtw(x, y, self.gamma, normalize=self.normalize, dist_func=self.dist_func,
                        global_constraint=self.global_constraint, sakoe_chiba_radius=self.sakoe_chiba_radius,
                        itakura_max_slope=self.itakura_max_slope, x_lengths=x_lengths, y_lengths=y_lengths,
                        memory=self.memory)  # (second_order: deprecated, warned about once, above)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, normalize={self.normalize}"
