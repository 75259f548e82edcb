r"""Pairwise soft-DTW matrices in PyTorch, differentiable by autograd, computed in chunks of pairs.

* CPU tensors outside autograd (nothing requires grad, or ``torch.no_grad()``) take the NumPy
  realization's path on zero-copy views: one numba pass forms each chunk's costs and the numba
  kernel runs on them (the same kernel as :func:`softdtw.torch.soft_dtw`, without the per-call
  cost matrix, NaN guard and casts around the op, which measured 5-10x the kernel's time at
  N = M = 64).
* Otherwise (autograd, CUDA, or ``SOFTDTW_KERNEL`` set to another kernel) each chunk gathers its
  pairs' series and calls :func:`softdtw.torch.soft_dtw` (the custom ops). Under autograd each
  chunk runs under ``torch.utils.checkpoint`` (non-reentrant): only its pair indices are kept and
  the backward recomputes the chunk, so memory stays O(chunk N M) besides the result (at the
  price of one more forward).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.checkpoint import checkpoint

from .. import _pairwise, spec
from ..numpy import _cdist as np_cdist
from ._api import soft_dtw

__all__ = ["cdist_soft_dtw"]


def check_dataset(t, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype == torch.bool or t.dtype.is_complex:
        raise TypeError(f"{name} must hold real numbers (integer or floating point), got dtype {t.dtype}")
    return t


def check_gamma(gamma):
    """A Python float (validated); a tensor is passed on to :func:`soft_dtw` as it is."""
    return gamma if isinstance(gamma, torch.Tensor) else spec.check_gamma(gamma)


def result_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """The dtype :func:`soft_dtw` returns: the promoted floating dtype, float32 for integers."""
    floats = [t.dtype for t in tensors if t.dtype.is_floating_point]
    out = floats[0] if floats else torch.float32
    for d in floats[1:]:
        out = torch.promote_types(out, d)
    return out


def _as_tensor(s, name: str) -> torch.Tensor:
    """A tensor as it is; anything else (a NumPy array, nested lists) through NumPy, so that
    Python floats and float64 arrays give float64 tensors (on the CPU)."""
    if isinstance(s, torch.Tensor):
        return check_dataset(s, name)
    a = np.asarray(s)
    spec.check_dtype_kind(a.dtype.kind, name)
    return torch.as_tensor(a)


def _padded(X, name: str):
    """``(tensor (n, L, D), lengths int64 (n,) or None)`` from a tensor, an array or nested lists
    ``(n, L, D)``, or from a list of ``(L_i, D)`` series (tensors, arrays or nested lists),
    zero-padded to the longest; autograd reaches every listed tensor. NaN padding is left to
    :func:`nan_padding`."""
    if not isinstance(X, (list, tuple)):
        return _as_tensor(X, name), None
    X = [_as_tensor(s, f"{name}[{k}]") for k, s in enumerate(X)]
    _pairwise.check_series_shapes([tuple(s.shape) for s in X], name)
    for s in X:
        if s.device != X[0].device:
            raise ValueError(f"the series of {name} must be on one device, got {X[0].device} and {s.device}")
    dtype = X[0].dtype
    for s in X[1:]:
        dtype = torch.promote_types(dtype, s.dtype)
    lengths = torch.tensor([s.shape[0] for s in X], dtype=torch.int64)
    data = torch.nn.utils.rnn.pad_sequence([s.to(dtype) for s in X], batch_first=True)
    return data, (None if bool((lengths == lengths[0]).all()) else lengths)


def nan_padding(t: torch.Tensor, lengths, name: str):
    """tslearn's variable-length convention on a padded dataset.

    Parameters
    ----------
    t : Tensor, shape (n, L, D)
        A validated dataset; not modified.
    lengths : int64 Tensor, shape (n,), or None
        The series' lengths when known (a list of series), else all ``L``.
    name : str
        The dataset's name in error messages.

    Returns
    -------
    data : Tensor, shape (n, L', D)
        ``t`` itself when it holds no NaN; else ``t`` cut to its longest series (``L'``) with
        the NaN padding replaced by 0 (by ``torch.where``: autograd reaches ``t``, with
        gradient exactly 0 at the padding).
    lengths : int64 Tensor, shape (n,), on the CPU, or None
        None when every series has length ``L'``.

    Raises
    ------
    ValueError
        A NaN that is not padding (:func:`softdtw._pairwise.nan_padded_lengths`).
    """
    if not t.dtype.is_floating_point or not bool(torch.isnan(t).any()):
        return t, lengths
    copy = t.detach().to("cpu", torch.float64 if t.dtype == torch.float64 else torch.float32).numpy()
    n = _pairwise.nan_padded_lengths(copy, name, None if lengths is None else lengths.numpy())
    size = int(n.max())
    t = t[:, :size]
    data = torch.where(torch.isnan(t), torch.zeros((), dtype=t.dtype, device=t.device), t)
    return data, (None if bool((n == size).all()) else torch.from_numpy(n))


def _values(a, b, ii, jj, gamma, band, la, lb):
    return soft_dtw(a[ii], b[jj], gamma, x_lengths=None if la is None else la[ii],
                    y_lengths=None if lb is None else lb[jj], **band)


def _needs_grad(*objs) -> bool:
    return torch.is_grad_enabled() and any(isinstance(o, torch.Tensor) and o.requires_grad for o in objs)


def _chunk_values(a, b, gamma, band, la, lb):
    """``values(i, j)`` of the pairs ``(a[i[p]], b[j[p]])`` (lengths ``la``, ``lb`` or None),
    checkpointed when autograd records."""
    if _needs_grad(a, b, gamma):
        return lambda ii, jj: checkpoint(_values, a, b, ii, jj, gamma, band, la, lb, use_reentrant=False)
    return lambda ii, jj: _values(a, b, ii, jj, gamma, band, la, lb)


def _core_fast_path(a, b, gamma) -> bool:
    """CPU, outside autograd, the default CPU kernel, a Python float gamma: NumPy's
    ``cdist_soft_dtw`` on zero-copy views (the compiled core)."""
    return (a.device.type == "cpu" and b.device.type == "cpu" and not _needs_grad(a, b, gamma)
            and not isinstance(gamma, torch.Tensor) and os.environ.get("SOFTDTW_KERNEL", "cpu") in ("", "cpu"))


def _as_dataset(t: torch.Tensor, lengths, dtype: torch.dtype) -> np_cdist.Dataset:
    a = t.detach()
    a = a.numpy() if a.dtype in (torch.float32, torch.float64) else a.to(dtype).numpy()
    # a NaN: NaN entries, as soft_dtw
    return np_cdist.Dataset.from_array(a, "X", nan_padding=False, lengths=None if lengths is None else lengths.numpy())


def cdist_soft_dtw(X, Y=None, gamma=1.0, *, normalize: bool = False, global_constraint=None,
                   sakoe_chiba_radius=None, itakura_max_slope=None, chunk_size=None,
                   progress: bool = False) -> torch.Tensor:
    r"""Matrix of soft-DTW values (or divergences) between two batches of series, in PyTorch.

    .. math::

        K_{ij} = \mathrm{sdtw}_\gamma(X_i, Y_j), \qquad \text{or with ``normalize=True``} \quad
        K_{ij} = \mathrm{sdtw}_\gamma(X_i, Y_j)
                 - \tfrac12 \left(\mathrm{sdtw}_\gamma(X_i, X_i) + \mathrm{sdtw}_\gamma(Y_j, Y_j)\right)

    with the squared Euclidean cost; tslearn's ``cdist_soft_dtw`` (``cdist_soft_dtw_normalized``
    with ``normalize=True``). Differentiable in ``X`` and ``Y`` by autograd. Computed in chunks
    of at most ``chunk_size`` pairs; with ``Y=None`` each unordered pair once (and the
    diagonal), mirrored; the self terms of the divergence once per series.

    Parameters
    ----------
    X : Tensor or array_like, shape (n, N, D), or a list of n series of shapes (N_i, D)
        A dataset in tslearn's conventions: series of different lengths come as a list (each
        pair uses its own lengths), or padded with NaN (trailing time steps whose features are
        all NaN end a series, as ``tslearn.utils.to_time_series_dataset`` pads). NumPy arrays
        and nested lists are accepted too (converted by ``torch.as_tensor``; Python floats give
        float64). Gradients reach every given tensor, 0 at its padding; ``X`` is not modified.
    Y : Tensor or array_like, shape (m, M, D), or a list of m series of shapes (M_j, D), optional
        As ``X``; None compares ``X`` with itself (a symmetric matrix). Same device as ``X``.
    gamma : float > 0
    normalize : bool
        The soft-DTW divergence (>= 0, 0 on the diagonal when ``Y`` is None).
    global_constraint, sakoe_chiba_radius, itakura_max_slope
        Band constraint (tslearn 0.10 semantics, see docs/algorithm.md).
    chunk_size : int >= 1, optional
        Pairs per chunk; default: about 2**22 DP cells per chunk (1024 pairs at N = M = 64).
    progress : bool
        Show a tqdm progress bar over the pairs (needs ``pip install softdtw[progress]``).

    Returns
    -------
    Tensor, shape (n, m) (or (n, n)), on the device of ``X``, in the dtype :func:`soft_dtw`
    returns (float64 stays float64; float16/bfloat16 are computed in float32).

    Raises
    ------
    ValueError
        A NaN inside a series (not trailing padding), naming the series and the time step.

    Examples
    --------
    >>> import torch
    >>> X = torch.tensor([[[0.0], [1.0]], [[1.0], [1.0]]])
    >>> cdist_soft_dtw(X, gamma=0.01).round(decimals=3)
    tensor([[ 0.0000,  0.9930],
            [ 0.9930, -0.0110]])
    >>> cdist_soft_dtw(X, gamma=0.01, normalize=True).round(decimals=3)
    tensor([[0.0000, 0.9990],
            [0.9990, 0.0000]])
    """
    X, lx = _padded(X, "X")
    ly = None
    if Y is not None:
        Y, ly = _padded(Y, "Y")
        if X.device != Y.device:
            raise ValueError(f"X and Y must be on the same device, got {X.device} and {Y.device}")
    _pairwise.check_dataset_shapes(tuple(X.shape), None if Y is None else tuple(Y.shape))
    gamma = check_gamma(gamma)
    spec.check_constraint(global_constraint, sakoe_chiba_radius, itakura_max_slope)
    band = dict(global_constraint=global_constraint, sakoe_chiba_radius=sakoe_chiba_radius,
                itakura_max_slope=itakura_max_slope)
    X, lx = nan_padding(X, lx, "X")
    if Y is not None:
        Y, ly = nan_padding(Y, ly, "Y")
    # lengths on the data's device: the chunks index them with the pair indices
    lx, ly = (None if lt is None else lt.to(X.device) for lt in (lx, ly))
    b, lb = (X, lx) if Y is None else (Y, ly)
    chunk = _pairwise.check_chunk_size(chunk_size, X.shape[1], b.shape[1])
    dtype = result_dtype(X, b)
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    if _core_fast_path(X, b, gamma):
        out = np_cdist.kernel_matrix(
            _as_dataset(X, lx, compute), None if Y is None else _as_dataset(Y, ly, compute), gamma,
            spec.check_constraint(global_constraint, sakoe_chiba_radius, itakura_max_slope),
            np.dtype(str(compute)[6:]), normalize=normalize, chunk_size=chunk, progress=progress)
        return torch.from_numpy(out).to(dtype)
    pairs = [(X, b, lx, lb), (X, X, lx, lx), (b, b, lb, lb)]

    def run(plan, which, bar):
        u, v, lu, lv = pairs[which]
        out = u.new_empty((plan.n,) if plan.kind == "diagonal" else (plan.n, plan.m), dtype=dtype)
        return _pairwise.fill(plan, _chunk_values(u, v, gamma, band, lu, lv), out, bar,
                              index=lambda a: torch.from_numpy(a).to(u.device))

    return _pairwise.pairwise_matrix(X.shape[0], b.shape[0], symmetric=Y is None, normalize=normalize,
                                     chunk_size=chunk, progress=progress, run=run,
                                     diagonal=lambda out: out.diagonal().clone())
