r"""Pairwise soft-DTW matrices in JAX, computed in chunks of pairs, differentiable by ``jax.grad``.

A Python loop runs one jit-compiled chunk function (pairs gathered from ``X`` and ``Y`` by index
inside it, then :func:`softdtw.jax.soft_dtw`) over chunks of a fixed size (the last one padded),
so it compiles once per shape. The chunk function is wrapped in ``jax.checkpoint``: under
``jax.grad`` each chunk keeps only its inputs and is recomputed in the backward, so memory stays
O(chunk N M) besides the result whether or not it is differentiated. Works inside ``jax.jit``
too (the loop is unrolled into one call per chunk).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .. import _pairwise, spec
from ._api import _as_array, _dtypes, _is_tracer, soft_dtw

__all__ = ["cdist_soft_dtw"]


def _values(a, b, ii, jj, gamma, band, la, lb):
    global_constraint, sakoe_chiba_radius, itakura_max_slope = band
    return soft_dtw(a[ii], b[jj], gamma, global_constraint=global_constraint,
                    sakoe_chiba_radius=sakoe_chiba_radius, itakura_max_slope=itakura_max_slope,
                    x_lengths=None if la is None else la[ii], y_lengths=None if lb is None else lb[jj])


# gamma static (a Python float: one compilation per value) or traced (differentiable)
_values_jit = jax.jit(jax.checkpoint(_values, static_argnums=(4, 5)), static_argnums=(4, 5))
_values_traced_gamma = jax.jit(jax.checkpoint(_values, static_argnums=(5,)), static_argnums=(5,))


def dataset(X, name: str):
    """``(array (n, L, D), lengths int32 (n,) or None)`` of a dataset in tslearn's forms.

    ``X`` is an array ``(n, L, D)``, nested lists, or a list of ``(L_i, D)`` arrays (zero-padded
    to the longest; differentiable in every listed array). Trailing time steps whose features
    are all NaN end a series (tslearn's padding; any other NaN raises ValueError,
    :func:`softdtw._pairwise.nan_padded_lengths`); they are zeros in the array (never read,
    gradient 0), and the steps no series uses are dropped. That padding is found in concrete
    data only: a traced ``X`` (under ``jax.jit``) is taken as it is.
    """
    lengths = None
    if isinstance(X, (list, tuple)):
        series = [_as_array(s, f"{name}[{k}]") for k, s in enumerate(X)]
        _pairwise.check_series_shapes([s.shape for s in series], name)
        lengths = np.array([s.shape[0] for s in series], dtype=np.int64)
        size = int(lengths.max())
        dtype = jnp.result_type(*series)
        data = jnp.stack([jnp.pad(s.astype(dtype), ((0, size - s.shape[0]), (0, 0))) for s in series])
    else:
        data = _as_array(X, name)
    _pairwise.check_dataset_shapes(data.shape, None, x_name=name)
    if not _is_tracer(data) and jnp.issubdtype(data.dtype, jnp.floating) and data.shape[0]:
        host = np.asarray(data if data.dtype.itemsize >= 4 else data.astype(jnp.float32))  # (bfloat16: kind "V")
        lengths = _pairwise.nan_padded_lengths(host, name, lengths)
        data = data[:, :int(lengths.max())]
    if lengths is None or (lengths == data.shape[1]).all():
        return data, None
    used = np.arange(data.shape[1])[None, :] < lengths[:, None]
    return jnp.where(used[:, :, None], data, jnp.zeros_like(data)), lengths.astype(np.int32)


def check_gamma(gamma, dtype, n: int, m: int):
    """A Python float (validated for the compute ``dtype`` and series of lengths up to ``n`` and
    ``m``, :func:`softdtw.spec.check_gamma_for`), or a traced 0-d gamma passed on as it is."""
    if _is_tracer(gamma):
        return gamma
    gamma = spec.check_gamma(np.asarray(gamma) if isinstance(gamma, jax.Array) else gamma)
    spec.check_gamma_for(gamma, dtype, n, m)
    return gamma


def run_plan(plan: _pairwise.PairPlan, a, b, gamma, band, bar, la=None, lb=None):
    """The values of the plan's pairs, in plan order, as one ``(plan.total,)`` array (``la``,
    ``lb``: the series' lengths, or None for full length)."""
    size = min(plan.chunk_size, max(plan.total, 1))
    values = _values_traced_gamma if _is_tracer(gamma) else _values_jit
    # a band with lengths needs the lengths concrete (softdtw.jax.soft_dtw): such chunks gather
    # them in NumPy and run outside jit (soft_dtw's scans are jitted anyway), still checkpointed
    concrete = (la is not None or lb is not None) and spec.check_constraint(*band).kind is not None
    lj = [None if v is None else jnp.asarray(v) for v in (la, lb)]
    sync = not any(_is_tracer(t) for t in (a, b))
    parts = []
    for ii, jj in plan.chunks():
        k = len(ii)
        pad = size - k  # the last chunk is padded with pair (0, 0): one compiled shape
        ii_p = np.pad(ii, (0, pad)).astype(np.int32)
        jj_p = np.pad(jj, (0, pad)).astype(np.int32)
        if concrete:  # (a traced gamma is closed over: jax.checkpoint differentiates it)
            v = jax.checkpoint(lambda u, w, ii=ii_p, jj=jj_p: _values(u, w, ii, jj, gamma, band, la, lb))(a, b)[:k]
        else:
            v = values(a, b, jnp.asarray(ii_p), jnp.asarray(jj_p), gamma, band, *lj)[:k]
        if sync and not bar.disable:
            v.block_until_ready()  # the bar follows the computation, not the dispatch
        parts.append(v)
        bar.update(k)
    return jnp.concatenate(parts) if parts else None


def cdist_soft_dtw(X, Y=None, gamma=1.0, *, normalize: bool = False, global_constraint=None,
                   sakoe_chiba_radius=None, itakura_max_slope=None, chunk_size=None, progress: bool = False):
    r"""Matrix of soft-DTW values (or divergences) between two datasets of series, in JAX.

    .. math::

        K_{ij} = \mathrm{sdtw}_\gamma(X_i, Y_j), \qquad \text{or with ``normalize=True``} \quad
        K_{ij} = \mathrm{sdtw}_\gamma(X_i, Y_j)
                 - \tfrac12 \left(\mathrm{sdtw}_\gamma(X_i, X_i) + \mathrm{sdtw}_\gamma(Y_j, Y_j)\right)

    with the squared Euclidean cost; tslearn's ``cdist_soft_dtw`` (``cdist_soft_dtw_normalized``
    with ``normalize=True``). Differentiable (reverse mode) in ``X``, ``Y`` and a traced
    ``gamma``. Computed in chunks of at most ``chunk_size`` pairs; with ``Y=None`` each unordered
    pair once (and the diagonal), mirrored; the self terms of the divergence once per series.

    Parameters
    ----------
    X : array_like, shape (n, N, D) (an array or nested lists), or a list of n arrays (N_i, D)
    Y : array_like, shape (m, M, D), or a list of m arrays (M_j, D), optional
        None compares ``X`` with itself (a symmetric matrix). Lists hold series of different
        lengths, and, as in tslearn's variable-length datasets, trailing time steps whose
        features are all NaN end a series (``to_time_series_dataset``'s padding); each pair
        uses its own lengths. Any other NaN raises ValueError; an ``inf`` makes the values of
        its series NaN. The NaN padding is found in concrete data only (not in ``X`` traced
        under ``jax.jit``).
    gamma : float > 0, or a traced 0-d array
        A number the compute dtype cannot use raises ValueError (:func:`softdtw.spec.check_gamma_for`).
    normalize : bool
        The soft-DTW divergence (>= 0, 0 on the diagonal when ``Y`` is None).
    global_constraint, sakoe_chiba_radius, itakura_max_slope
        Band constraint, as in tslearn 0.10 (see :func:`softdtw.spec.check_constraint`).
    chunk_size : int >= 1, optional
        Pairs per chunk (one compiled chunk shape); default: about 2**22 DP cells per chunk.
    progress : bool
        Show a tqdm progress bar over the pairs (needs ``pip install softdtw[progress]``).

    Returns
    -------
    jax.Array, shape (n, m) (or (n, n)), in the dtype :func:`softdtw.jax.soft_dtw` returns.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[[0.0], [1.0]], [[1.0], [1.0]]], dtype=np.float32)
    >>> np.asarray(cdist_soft_dtw(X, gamma=0.01)).round(3)
    array([[ 0.   ,  0.993],
           [ 0.993, -0.011]], dtype=float32)
    >>> np.asarray(cdist_soft_dtw(X, gamma=0.01, normalize=True)).round(3)
    array([[0.   , 0.999],
           [0.999, 0.   ]], dtype=float32)
    """
    a, la = dataset(X, "X")
    b, lb = (a, la) if Y is None else dataset(Y, "Y")
    _pairwise.check_dataset_shapes(a.shape, None if Y is None else b.shape)
    longest = max(a.shape[1], b.shape[1])
    gamma = check_gamma(gamma, _dtypes(a, b)[0], *((longest, longest) if normalize else (a.shape[1], b.shape[1])))
    spec.check_constraint(global_constraint, sakoe_chiba_radius, itakura_max_slope)
    band = (global_constraint, sakoe_chiba_radius, itakura_max_slope)
    n, m = a.shape[0], b.shape[0]
    chunk = _pairwise.check_chunk_size(chunk_size, a.shape[1], b.shape[1])
    pairs = [(a, b, la, lb), (a, a, la, la), (b, b, lb, lb)]
    dtype = _dtypes(a, b)[1]

    def run(plan, which, bar):
        u, v, lu, lv = pairs[which]
        flat = run_plan(plan, u, v, gamma, band, bar, lu, lv)
        if flat is None:  # an empty dataset
            flat = jnp.zeros((0,), dtype)
        if plan.kind == "triangle":
            rows, cols = np.triu_indices(plan.n)
            return jnp.zeros((plan.n, plan.n), flat.dtype).at[rows, cols].set(flat).at[cols, rows].set(flat)
        return flat if plan.kind == "diagonal" else flat.reshape(plan.n, plan.m)

    return _pairwise.pairwise_matrix(n, m, symmetric=Y is None, normalize=normalize, chunk_size=chunk,
                                     progress=progress, run=run, diagonal=jnp.diagonal, in_place=False)
