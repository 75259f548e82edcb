"""The NumPy reference: float64, readable, the oracle for every other realization.

It drives the pure step functions of :mod:`softdtw.spec` with a Python loop over the
anti-diagonals (each step is vectorized over the batch and the diagonal).

Padding and non-finite inputs (docs/algorithm.md): time steps and cost cells beyond a pair's
lengths are never read (they may hold NaN or inf: they are replaced by 0 in the working copy)
and get gradient 0. A NaN or inf in a pair's used series, or a NaN or ``-inf`` in a used cost
cell, makes that pair's value NaN and its gradients NaN at its used positions; ``+inf`` in a
cost forbids the cell, and a pair with no finite path has value ``+inf`` and gradient 0. Other
pairs are unaffected and no floating-point warning is raised.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from .. import spec

__all__ = [
    "soft_dtw",
    "soft_dtw_alignment",
    "soft_dtw_alignment_from_cost",
    "soft_dtw_from_cost",
    "soft_dtw_value_and_grad",
    "sqeuclidean_cost",
]


class ForwardBackward(NamedTuple):
    value: np.ndarray  # (B,)
    alignment: np.ndarray | None  # (B, N, M): d value / d cost
    gamma_grad: np.ndarray | None  # (B,): d value / d gamma


def _as_float64(a, name: str) -> np.ndarray:
    arr = np.asarray(a)
    spec.check_dtype_kind(arr.dtype.kind, name)
    return arr.astype(np.float64)  # always a copy: inputs are never written


def sqeuclidean_cost(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    r"""Squared Euclidean cost between the time steps of two series.

    .. math::

        C_{ij} = \lVert x_i - y_j \rVert^2 = \sum_d (x_{id} - y_{jd})^2

    with no factor 1/2 (tslearn's convention).

    Never forms an ``(..., N, M, D)`` array (one feature at a time).

    Parameters
    ----------
    x : ndarray, shape (..., N, D)
    y : ndarray, shape (..., M, D)
        Real arrays with the same leading dimensions.

    Returns
    -------
    ndarray, shape (..., N, M)
        In the result dtype of ``x`` and ``y``.

    Examples
    --------
    >>> import numpy as np
    >>> sqeuclidean_cost(np.zeros((2, 1)), np.array([[1.0], [2.0], [3.0]]))
    array([[1., 4., 9.],
           [1., 4., 9.]])
    """
    # one feature at a time: never a (..., N, M, D) array
    out = np.zeros(x.shape[:-1] + (y.shape[-2],), dtype=np.result_type(x, y))
    for d in range(x.shape[-1]):
        out += (x[..., :, None, d] - y[..., None, :, d]) ** 2
    return out


def forward_backward(cost: np.ndarray, gamma: float, valid: np.ndarray, x_lengths: np.ndarray,
                     y_lengths: np.ndarray, *, grad: bool = True) -> ForwardBackward:
    """The recursion on a float64 batch ``cost`` (B, N, M) with the ``valid`` cells (B, N, M)."""
    batch, n, m = cost.shape
    c = spec.cost_diagonals(np, cost, valid)  # (N + M - 1, B, N)
    d0, d1 = spec.boundary_diagonals(np, np.zeros((batch, n + 1)))
    r = [d0, d1]
    for k in range(2, n + m + 1):
        r.append(spec.forward_step(np, r[k - 2], r[k - 1], c[k - 2], gamma))
    value = np.array([r[x_lengths[b] + y_lengths[b]][b, x_lengths[b]] for b in range(batch)])
    if not grad:
        return ForwardBackward(value, None, None)

    zeros = np.zeros((batch, n + 1))
    no_weights = (zeros, zeros, zeros)
    e1 = e2 = zeros  # alignment on diagonals k + 1, k + 2
    w1 = w2 = no_weights  # weights of diagonals k + 1, k + 2
    terminal_diag = x_lengths + y_lengths
    terminal_seed = (np.arange(n + 1)[None, :] == x_lengths[:, None]).astype(np.float64)
    e_diags = []
    gamma_grad = np.zeros(batch)
    for k in range(n + m, 1, -1):
        seed = np.where((terminal_diag == k)[:, None], terminal_seed, 0.0)
        e = spec.backward_step(np, e1, e2, w1, w2, seed)
        w = spec.diagonal_weights(np, r[k - 2], r[k - 1], gamma)
        gamma_grad += (e * spec.neg_entropy(np, *w)).sum(axis=-1)
        e_diags.append(e)
        e1, e2, w1, w2 = e, e1, w, w1
    skewed = np.stack(e_diags[::-1])[:, :, 1:]  # (N + M - 1, B, N): diagonal k - 2, row i - 1
    alignment = spec.unskew(np, np.moveaxis(skewed, 0, -1), m)
    return ForwardBackward(value, alignment, gamma_grad)


class _Problem(NamedTuple):
    batched: bool
    gamma: float
    constraint: spec.Constraint
    x_lengths: np.ndarray
    y_lengths: np.ndarray


def _one_pair_lengths(lengths, name: str):
    """The lengths of one unbatched pair as shape ``(1,)`` (a scalar or a 1-element sequence)."""
    if lengths is None:
        return None
    arr = np.asarray(lengths)
    if arr.ndim > 1 or arr.size != 1:
        raise ValueError(f"{name} must be one integer for an unbatched pair, got shape {arr.shape}")
    return arr.reshape(1)


def _problem(batch, n, m, batched, gamma, global_constraint=None, sakoe_chiba_radius=None,
             itakura_max_slope=None, x_lengths=None, y_lengths=None, normalize=False) -> _Problem:
    gamma = spec.check_gamma(gamma)
    # the divergence also runs the self terms (n, n) and (m, m)
    spec.check_gamma_for(gamma, np.float64, *((max(n, m),) * 2 if normalize else (n, m)))
    constraint = spec.check_constraint(global_constraint, sakoe_chiba_radius, itakura_max_slope)
    if not batched:
        x_lengths = _one_pair_lengths(x_lengths, "x_lengths")
        y_lengths = _one_pair_lengths(y_lengths, "y_lengths")
    xl = spec.check_lengths(x_lengths, batch, n, "x_lengths")
    yl = spec.check_lengths(y_lengths, batch, m, "y_lengths")
    return _Problem(batched, gamma, constraint, xl, yl)


def _run_cost(cost, p: _Problem, xl, yl, grad: bool, bad=None) -> ForwardBackward:
    """:func:`forward_backward` under the conventions of docs/algorithm.md ("Padding and
    non-finite inputs").

    Cells beyond the lengths ``xl``, ``yl`` or outside the band are never read. ``+inf`` forbids
    a cell; a pair with no finite path has value ``+inf`` and alignment (and gamma gradient) 0.
    A pair with ``NaN`` or ``-inf`` in a used cell, or flagged in ``bad`` (bool ``(B,)``: its
    series are not finite), has value ``NaN`` and ``NaN`` alignment at its used cells (0
    elsewhere); it is computed on zeros, so no warning is raised.
    """
    valid = spec.valid_cells(cost.shape[1], cost.shape[2], xl, yl, p.constraint)
    poison = (valid & (np.isnan(cost) | np.isneginf(cost))).any(axis=(1, 2))
    if bad is not None:
        poison |= bad
    # with a tiny gamma, an exponent -(a - m) / gamma may overflow to -inf: exp gives the exact 0
    with np.errstate(over="ignore"):
        fb = forward_backward(np.where(valid & ~poison[:, None, None], cost, 0.0), p.gamma, valid, xl, yl,
                              grad=grad)
    value = np.where(poison, np.nan, fb.value)
    if not grad:
        return ForwardBackward(value, None, None)
    blocked = (fb.value == np.inf)[:, None, None]
    alignment = np.where(poison[:, None, None] & valid, np.nan, np.where(blocked, 0.0, fb.alignment))
    gamma_grad = np.where(poison, np.nan, np.where(blocked[:, 0, 0], 0.0, fb.gamma_grad))
    return ForwardBackward(value, alignment, gamma_grad)


def _pair_cost(x, y, dist_func: Callable | None) -> np.ndarray:
    if dist_func is None:
        return sqeuclidean_cost(x, y)
    cost = np.asarray(dist_func(x, y))
    expected = (x.shape[0], x.shape[1], y.shape[1])
    if cost.shape != expected:
        raise ValueError(f"dist_func must return an array of shape {expected}, got {cost.shape}")
    spec.check_dtype_kind(cost.dtype.kind, "dist_func's result")
    return cost.astype(np.float64)


def _clean_series(a: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Zero, in place, the padding of a float64 batch ``a`` ``(B, L, D)`` and the whole of each
    series whose used part is not finite; return those series (bool ``(B,)``)."""
    a[np.arange(a.shape[1])[None, :] >= lengths[:, None]] = 0
    bad = ~np.isfinite(a).all(axis=(1, 2))
    a[bad] = 0
    return bad


def _prepare_pair(x, y, gamma, kw, normalize=False):
    """``(x, y, problem, bad)``: float64 copies ``(B, N, D)``, ``(B, M, D)`` with their padding
    (and the pairs ``bad`` whose series are not finite) set to 0, so that it is never read."""
    x = _as_float64(x, "x")
    y = _as_float64(y, "y")
    batched = spec.check_pair_shapes(x.shape, y.shape)
    if not batched:
        x, y = x[None], y[None]
    p = _problem(x.shape[0], x.shape[1], y.shape[1], batched, gamma, normalize=normalize, **kw)
    bad = _clean_series(x, p.x_lengths) | _clean_series(y, p.y_lengths)
    return x, y, p, bad


def _finish(p: _Problem, a):
    return a if p.batched else a[0]


def soft_dtw(x, y, gamma=1.0, *, normalize: bool = False, dist_func: Callable | None = None,
             global_constraint=None, sakoe_chiba_radius=None, itakura_max_slope=None,
             x_lengths=None, y_lengths=None):
    r"""Soft-DTW between (batches of) time series, or its divergence.

    .. math::

        \mathrm{sdtw}_\gamma(x, y) = \min_{A \in \mathcal{A}_{N,M}}{}^{\gamma} \langle A, C(x, y) \rangle,
        \qquad \min{}^\gamma(a_1, \dots, a_n) = -\gamma \log \sum_i e^{-a_i / \gamma}

    where :math:`\mathcal{A}_{N,M}` holds the monotone alignment paths from (1, 1) to
    (N, M) and :math:`C(x, y)_{ij} = \lVert x_i - y_j \rVert^2` by default. With
    ``normalize=True`` it returns the divergence
    :math:`\mathrm{sdtw}(x, y) - \tfrac12 (\mathrm{sdtw}(x, x) + \mathrm{sdtw}(y, y))`.

    Parameters
    ----------
    x : array_like, shape (B, N, D) or (N, D)
    y : array_like, shape (B, M, D) or (M, D)
    gamma : float > 0
        Smoothing; smaller is closer to DTW. It must suit float64 (every entry point checks
        :func:`softdtw.spec.check_gamma_for`), else ValueError.
    normalize : bool
        Return the soft-DTW divergence (>= 0, exactly 0 when x == y).
    dist_func : callable, optional
        ``dist_func(x, y)`` on float64 arrays (B, N, D), (B, M, D) returning (B, N, M).
        Default: squared Euclidean.
    global_constraint, sakoe_chiba_radius, itakura_max_slope
        Band constraint, as in tslearn 0.10 (see :func:`softdtw.spec.check_constraint`).
    x_lengths, y_lengths : array_like of int, shape (B,) (or one integer for one pair), optional
        Per-pair lengths of padded batches: pair b uses ``x[b, :x_lengths[b]]``; the padding is
        never read (it may hold NaN or inf).

    Returns
    -------
    ndarray of float64, shape (B,), or a 0-d float64 for one pair.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.zeros((4, 3, 2)); y = np.arange(24.0).reshape(4, 3, 2)
    >>> soft_dtw(x, y, gamma=0.1).round(4)
    array([  55.,  451., 1279., 2539.])

    References
    ----------
    M. Cuturi and M. Blondel, "Soft-DTW: a Differentiable Loss Function for Time-Series", ICML 2017.
    M. Blondel, A. Mensch and J.-P. Vert, "Differentiable Divergences Between Time Series", AISTATS 2021.
    """
    x, y, p, bad = _prepare_pair(x, y, gamma, dict(global_constraint=global_constraint,
                                                   sakoe_chiba_radius=sakoe_chiba_radius,
                                                   itakura_max_slope=itakura_max_slope,
                                                   x_lengths=x_lengths, y_lengths=y_lengths), normalize)
    value = _run_cost(_pair_cost(x, y, dist_func), p, p.x_lengths, p.y_lengths, False, bad).value
    if normalize:
        vxx = _run_cost(_pair_cost(x, x, dist_func), p, p.x_lengths, p.x_lengths, False, bad).value
        vyy = _run_cost(_pair_cost(y, y, dist_func), p, p.y_lengths, p.y_lengths, False, bad).value
        value = value - (vxx + vyy) / 2
    return _finish(p, value)


def _prepare_cost(cost, gamma, kw):
    cost = _as_float64(cost, "cost")
    batched = spec.check_cost_shape(cost.shape)
    if not batched:
        cost = cost[None]
    return cost, _problem(cost.shape[0], cost.shape[1], cost.shape[2], batched, gamma, **kw)


def soft_dtw_from_cost(cost, gamma=1.0, *, global_constraint=None, sakoe_chiba_radius=None,
                       itakura_max_slope=None, x_lengths=None, y_lengths=None):
    r"""Soft-DTW of a cost matrix, or of a batch of them, in float64.

    .. math::

        \mathrm{sdtw}_\gamma(C) = \min_{A \in \mathcal{A}_{N,M}}{}^{\gamma} \langle A, C \rangle
        = -\gamma \log \sum_{A \in \mathcal{A}_{N,M}} e^{-\langle A, C \rangle / \gamma}

    over the monotone alignment paths :math:`\mathcal{A}_{N,M}` from (1, 1) to (N, M),
    computed by :math:`R_{ij} = C_{ij} + \min{}^\gamma(R_{i-1,j-1}, R_{i-1,j}, R_{i,j-1})`.

    Parameters
    ----------
    cost : array_like, shape (B, N, M) or (N, M)
        Any real dtype; computed in float64.
    gamma : float > 0
        Smoothing; smaller is closer to DTW (the best path's total cost).
    global_constraint : str or None
        ``"sakoe_chiba"`` or ``"itakura"``: the band of allowed cells, as in tslearn 0.10
        (see docs/algorithm.md). Default None: every cell.
    sakoe_chiba_radius : int, optional
        Radius of the Sakoe-Chiba band (default 1; giving it alone selects that band).
    itakura_max_slope : float, optional
        Maximum slope of the Itakura parallelogram (default 2; giving it alone selects that band).
    x_lengths, y_lengths : array_like of int, shape (B,), optional
        Per-matrix lengths of padded batches: matrix ``b`` uses
        ``cost[b, :x_lengths[b], :y_lengths[b]]``; padded cells are never read (they may hold
        NaN or inf) and their gradients are 0.

    Returns
    -------
    ndarray of float64, shape (B,), or 0-d for one matrix.

    Examples
    --------
    >>> import numpy as np
    >>> float(soft_dtw_from_cost(np.array([[5.0]]), gamma=1.0))
    5.0
    >>> float(soft_dtw_from_cost(np.zeros((2, 2)), gamma=1.0).round(4))  # 3 paths of cost 0: -log 3
    -1.0986
    """
    cost, p = _prepare_cost(cost, gamma, dict(global_constraint=global_constraint,
                                              sakoe_chiba_radius=sakoe_chiba_radius,
                                              itakura_max_slope=itakura_max_slope,
                                              x_lengths=x_lengths, y_lengths=y_lengths))
    return _finish(p, _run_cost(cost, p, p.x_lengths, p.y_lengths, grad=False).value)


def soft_dtw_alignment_from_cost(cost, gamma=1.0, *, global_constraint=None, sakoe_chiba_radius=None,
                                 itakura_max_slope=None, x_lengths=None, y_lengths=None):
    r"""Expected alignment of a cost matrix (the gradient of soft-DTW in the cost) and the value.

    .. math::

        E = \frac{\partial\, \mathrm{sdtw}_\gamma(C)}{\partial C} = \sum_{A} p_\gamma(A)\, A,
        \qquad p_\gamma(A) \propto e^{-\langle A, C \rangle / \gamma}

    ``E[b, i, j]`` is the probability that a path drawn from the Gibbs distribution
    :math:`p_\gamma` goes through cell (i, j): in [0, 1], 1 at the first and last cells, 0
    outside a pair's lengths and band.

    Parameters
    ----------
    cost : array_like, shape (B, N, M) or (N, M)
        Any real dtype; computed in float64.
    gamma : float > 0
    global_constraint : str or None
        ``"sakoe_chiba"`` or ``"itakura"``: the band of allowed cells, as in tslearn 0.10
        (see docs/algorithm.md). Default None: every cell.
    sakoe_chiba_radius : int, optional
        Radius of the Sakoe-Chiba band (default 1; giving it alone selects that band).
    itakura_max_slope : float, optional
        Maximum slope of the Itakura parallelogram (default 2; giving it alone selects that band).
    x_lengths, y_lengths : array_like of int, shape (B,), optional
        Per-matrix lengths of padded batches: matrix ``b`` uses
        ``cost[b, :x_lengths[b], :y_lengths[b]]``; padded cells are never read (they may hold
        NaN or inf) and their gradients are 0.

    Returns
    -------
    alignment : ndarray of float64, shape (B, N, M) or (N, M)
    value : ndarray of float64, shape (B,) or 0-d
        As :func:`soft_dtw_from_cost`.

    Examples
    --------
    >>> import numpy as np
    >>> a, v = soft_dtw_alignment_from_cost(np.array([[0.0, 1.0], [1.0, 0.0]]), gamma=1e-3)
    >>> a.round(3)
    array([[1., 0.],
           [0., 1.]])
    """
    cost, p = _prepare_cost(cost, gamma, dict(global_constraint=global_constraint,
                                              sakoe_chiba_radius=sakoe_chiba_radius,
                                              itakura_max_slope=itakura_max_slope,
                                              x_lengths=x_lengths, y_lengths=y_lengths))
    fb = _run_cost(cost, p, p.x_lengths, p.y_lengths, grad=True)
    return _finish(p, fb.alignment), _finish(p, fb.value)


def soft_dtw_alignment(x, y, gamma=1.0, *, dist_func: Callable | None = None, global_constraint=None,
                       sakoe_chiba_radius=None, itakura_max_slope=None, x_lengths=None, y_lengths=None):
    r"""Expected alignment between ``x`` and ``y`` and the soft-DTW value (tslearn's order).

    .. math::

        E = \frac{\partial\, \mathrm{sdtw}_\gamma(C)}{\partial C} = \sum_{A} p_\gamma(A)\, A,
        \qquad p_\gamma(A) \propto e^{-\langle A, C \rangle / \gamma}

    ``E[b, i, j]`` is the probability that a path drawn from the Gibbs distribution
    :math:`p_\gamma` goes through cell (i, j): in [0, 1], 1 at the first and last cells, 0
    outside a pair's lengths and band.
    Here :math:`C = C(x, y)`, by default :math:`C_{ij} = \lVert x_i - y_j \rVert^2`.

    Parameters
    ----------
    x : array_like, shape (B, N, D) or (N, D)
    y : array_like, shape (B, M, D) or (M, D)
        Any real dtype; computed in float64.
    gamma : float > 0
    dist_func : callable, optional
        ``dist_func(x, y)`` on float64 arrays (B, N, D), (B, M, D) returning (B, N, M).
        Default: squared Euclidean.
    global_constraint : str or None
        ``"sakoe_chiba"`` or ``"itakura"``: the band of allowed cells, as in tslearn 0.10
        (see docs/algorithm.md). Default None: every cell.
    sakoe_chiba_radius : int, optional
        Radius of the Sakoe-Chiba band (default 1; giving it alone selects that band).
    itakura_max_slope : float, optional
        Maximum slope of the Itakura parallelogram (default 2; giving it alone selects that band).
    x_lengths, y_lengths : array_like of int, shape (B,), optional
        Per-pair lengths of padded batches: pair ``b`` uses ``x[b, :x_lengths[b]]`` and
        ``y[b, :y_lengths[b]]``; the padding is never read (it may hold NaN or inf) and its
        gradients are 0.

    Returns
    -------
    alignment : ndarray of float64, shape (B, N, M) or (N, M)
    value : ndarray of float64, shape (B,) or 0-d

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[0.0], [1.0], [2.0]]); y = np.array([[0.0], [2.0]])
    >>> a, v = soft_dtw_alignment(x, y, gamma=0.1)
    >>> a.round(3)  # the middle step of x is half with each step of y
    array([[1. , 0. ],
           [0.5, 0.5],
           [0. , 1. ]])
    """
    x, y, p, bad = _prepare_pair(x, y, gamma, dict(global_constraint=global_constraint,
                                                   sakoe_chiba_radius=sakoe_chiba_radius,
                                                   itakura_max_slope=itakura_max_slope,
                                                   x_lengths=x_lengths, y_lengths=y_lengths))
    fb = _run_cost(_pair_cost(x, y, dist_func), p, p.x_lengths, p.y_lengths, True, bad)
    return _finish(p, fb.alignment), _finish(p, fb.value)


def _sqeuclidean_vjp(x, y, e):
    """Gradients of ``<E, C(x, y)>`` w.r.t. x and y for the squared Euclidean cost."""
    gx = 2 * (x * e.sum(axis=2)[..., None] - e @ y)
    gy = 2 * (y * e.sum(axis=1)[..., None] - np.swapaxes(e, 1, 2) @ x)
    return gx, gy


def soft_dtw_value_and_grad(x, y, gamma=1.0, *, normalize: bool = False, global_constraint=None,
                            sakoe_chiba_radius=None, itakura_max_slope=None, x_lengths=None, y_lengths=None):
    r"""Soft-DTW (or its divergence) and its gradients with respect to ``x`` and ``y``, in float64.

    For the squared Euclidean cost, with :math:`E` the expected alignment
    (:func:`soft_dtw_alignment`):

    .. math::

        \nabla_{x_i} \mathrm{sdtw}_\gamma(x, y) = 2 \sum_j E_{ij} (x_i - y_j), \qquad
        \nabla_{y_j} \mathrm{sdtw}_\gamma(x, y) = 2 \sum_i E_{ij} (y_j - x_i)

    With ``normalize=True``, the value and gradients of the divergence
    :math:`\mathrm{sdtw}(x, y) - \tfrac12 (\mathrm{sdtw}(x, x) + \mathrm{sdtw}(y, y))`.

    Parameters
    ----------
    x : array_like, shape (B, N, D) or (N, D)
    y : array_like, shape (B, M, D) or (M, D)
        Any real dtype; computed in float64.
    gamma : float > 0
    normalize : bool
        The soft-DTW divergence instead of soft-DTW.
    global_constraint : str or None
        ``"sakoe_chiba"`` or ``"itakura"``: the band of allowed cells, as in tslearn 0.10
        (see docs/algorithm.md). Default None: every cell.
    sakoe_chiba_radius : int, optional
        Radius of the Sakoe-Chiba band (default 1; giving it alone selects that band).
    itakura_max_slope : float, optional
        Maximum slope of the Itakura parallelogram (default 2; giving it alone selects that band).
    x_lengths, y_lengths : array_like of int, shape (B,), optional
        Per-pair lengths of padded batches: pair ``b`` uses ``x[b, :x_lengths[b]]`` and
        ``y[b, :y_lengths[b]]``; the padding is never read (it may hold NaN or inf) and its
        gradients are 0.

    Returns
    -------
    value : ndarray of float64, shape (B,) or 0-d
    grad_x : ndarray of float64, shape of ``x``
        Each pair's gradient of its own value (of ``value.sum()`` for a batch).
    grad_y : ndarray of float64, shape of ``y``

    Examples
    --------
    >>> import numpy as np
    >>> v, gx, gy = soft_dtw_value_and_grad(np.zeros((1, 2)), np.ones((1, 2)), gamma=1.0)
    >>> float(v), gx.tolist(), gy.tolist()
    (2.0, [[-2.0, -2.0]], [[2.0, 2.0]])
    """
    x, y, p, bad = _prepare_pair(x, y, gamma, dict(global_constraint=global_constraint,
                                                   sakoe_chiba_radius=sakoe_chiba_radius,
                                                   itakura_max_slope=itakura_max_slope,
                                                   x_lengths=x_lengths, y_lengths=y_lengths), normalize)
    # a bad pair's alignment is NaN at its used cells, so its gradients are NaN at its used steps
    fb = _run_cost(sqeuclidean_cost(x, y), p, p.x_lengths, p.y_lengths, True, bad)
    value = fb.value
    gx, gy = _sqeuclidean_vjp(x, y, fb.alignment)
    if normalize:
        for a, la, ga in ((x, p.x_lengths, gx), (y, p.y_lengths, gy)):
            fs = _run_cost(sqeuclidean_cost(a, a), p, la, la, True, bad)
            g1, g2 = _sqeuclidean_vjp(a, a, fs.alignment)
            value = value - fs.value / 2
            ga -= (g1 + g2) / 2
    return _finish(p, value), _finish(p, gx), _finish(p, gy)


def soft_dtw_gamma_grad_from_cost(cost, gamma=1.0, **kw):
    r"""Soft-DTW of a cost matrix and its derivative with respect to ``gamma``.

    Since :math:`\min^\gamma(a) = \sum_p w_p a_p + \gamma \sum_p w_p \log w_p` with the softmin
    weights :math:`w`,

    .. math::

        \frac{\partial\, \mathrm{sdtw}_\gamma(C)}{\partial \gamma}
        = \sum_{i,j} E_{ij} \sum_{p} w_p(i, j) \log w_p(i, j)

    with :math:`E` the expected alignment.

    Parameters
    ----------
    cost : array_like, shape (B, N, M) or (N, M)
        Any real dtype; computed in float64.
    gamma : float > 0
    **kw
        ``global_constraint``, ``sakoe_chiba_radius``, ``itakura_max_slope``, ``x_lengths``,
        ``y_lengths``, as in :func:`soft_dtw_from_cost`.

    Returns
    -------
    value : ndarray of float64, shape (B,) or 0-d
    gamma_grad : ndarray of float64, shape (B,) or 0-d

    Examples
    --------
    >>> import numpy as np
    >>> v, g = soft_dtw_gamma_grad_from_cost(np.zeros((2, 2)), gamma=1.0)  # value -gamma log 3
    >>> round(float(v), 4), round(float(g), 4)
    (-1.0986, -1.0986)
    """
    cost, p = _prepare_cost(cost, gamma, kw)
    fb = _run_cost(cost, p, p.x_lengths, p.y_lengths, grad=True)
    return _finish(p, fb.value), _finish(p, fb.gamma_grad)
