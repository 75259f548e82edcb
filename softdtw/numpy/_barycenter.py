r"""Soft-DTW barycenters in NumPy: SciPy's L-BFGS-B on the compiled core's values and gradients."""

from __future__ import annotations

import numpy as np

from .. import _pairwise, spec
from ._cdist import Dataset, PairKernel, as_dataset

__all__ = ["soft_dtw_barycenter"]


def resampled_mean(data: Dataset, weights: np.ndarray) -> np.ndarray:
    """tslearn's default start: the weighted mean of the series, each first resampled linearly
    to the longest length when the lengths differ (``TimeSeriesResampler``)."""
    x = data.data.astype(np.float64)
    if not data.equal:
        size = x.shape[1]
        grid = np.linspace(0, 1, size)
        x = np.stack([
            np.stack([np.interp(grid, np.linspace(0, 1, n), s[:n, d]) for d in range(s.shape[1])], axis=1)
            for s, n in zip(x, data.lengths)])
    return np.average(x, axis=0, weights=weights)


def check_init(init, features: int):
    """``init`` as a float64 ``(L, D)`` array (a copy), without its trailing all-NaN time steps
    (tslearn's padding, as a series of ``X``); any other NaN or an ``inf`` raises ValueError."""
    z = np.array(init)
    spec.check_dtype_kind(z.dtype.kind, "init")
    _pairwise.check_init_shape(z.shape, features)
    z = z[:int(_pairwise.nan_padded_lengths(z[None], "init")[0])].astype(np.float64)
    if not np.isfinite(z).all():
        raise ValueError("init must be finite (NaN only as tslearn's trailing padding)")
    return z


class Objective:
    r"""``f(Z) = sum_i w_i sdtw(Z, X_i)`` and its gradient in ``Z`` (float64), by the compiled core."""

    def __init__(self, data: Dataset, weights: np.ndarray, gamma: float, constraint: spec.Constraint,
                 length: int):
        self.data, self.w, self.length = data, weights, length
        self.gamma, self.constraint = gamma, constraint
        self.ii = np.zeros(data.shape[0], dtype=np.int64)  # pair i: (Z, X_i)
        self.jj = np.arange(data.shape[0], dtype=np.int64)

    def _kernel(self, z: np.ndarray) -> PairKernel:
        zdata = Dataset(z[None], np.array([self.length], dtype=np.int64))
        return PairKernel(zdata, self.data, self.gamma, self.constraint, np.float64)

    def value(self, z: np.ndarray) -> float:
        return float(self.w @ self._kernel(z).values(self.ii, self.jj))

    def __call__(self, flat: np.ndarray) -> tuple[float, np.ndarray]:
        z = flat.reshape(self.length, -1)
        kernel = self._kernel(z)
        value, state = kernel.forward(self.ii, self.jj)
        # d/dZ sum_i w_i sdtw(Z, X_i): each pair's gradient in its first series (Z), summed
        grad = kernel.grad_first(state, self.w).sum(axis=0)
        return float(self.w @ value), grad.ravel()


def soft_dtw_barycenter(X, gamma=1.0, *, weights=None, init=None, max_iter: int = 50, tol: float = 1e-3,
                        global_constraint=None, sakoe_chiba_radius=None, itakura_max_slope=None):
    r"""Soft-DTW barycenter of a dataset: a local minimiser of the weighted sum of soft-DTW values.

    .. math::

        \min_{Z \in \mathbb{R}^{L \times D}} \; f(Z) = \sum_{i=1}^{n} w_i \, \mathrm{sdtw}_\gamma(Z, X_i)

    minimised from ``init`` by SciPy's L-BFGS-B with the exact gradient
    :math:`\nabla_Z f = \sum_i w_i \, (\partial C(Z, X_i) / \partial Z)^\top E_i` (``E_i`` the
    expected alignment), as tslearn's ``softdtw_barycenter``: the same objective (weights are
    not normalised; default 1 each), the same default start and the same stopping rule.

    Parameters
    ----------
    X : array_like, shape (n, N, D) (an array or nested lists), or a sequence of n arrays (N_i, D)
        The series to average; a sequence may hold series of different lengths, and, as in
        tslearn, trailing time steps whose features are all NaN end a shorter series (any other
        NaN, or an ``inf``, raises ValueError).
    gamma : float > 0
        It must suit float64 (:func:`softdtw.spec.check_gamma_for`), else ValueError.
    weights : array_like, shape (n,), optional
        Non-negative weights ``w_i``, not all 0; default all 1.
    init : array_like, shape (L, D), optional
        Start (and length ``L`` of the barycenter; trailing all-NaN time steps are dropped);
        default the weighted mean of ``X`` (each series first resampled linearly to the longest
        length when the lengths differ).
    max_iter : int >= 0
        L-BFGS-B iterations at most (0 returns ``init`` and its objective).
    tol : float >= 0
        SciPy's ``tol`` of L-BFGS-B: stops when the relative decrease of ``f`` or the largest
        gradient entry falls below it.
    global_constraint, sakoe_chiba_radius, itakura_max_slope
        Band constraint, as in tslearn 0.10 (see :func:`softdtw.spec.check_constraint`).

    Returns
    -------
    barycenter : ndarray of float64, shape (L, D)
    objective : float
        :math:`f` at the returned barycenter.

    Raises
    ------
    ImportError
        When SciPy is not installed (``pip install softdtw[barycenter]``).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[[0.0], [1.0], [2.0]], [[0.0], [2.0], [4.0]]])
    >>> z, f = soft_dtw_barycenter(X, gamma=0.1, max_iter=100, tol=1e-8)
    >>> z.round(2).ravel(), round(f, 3)
    (array([0.  , 1.52, 3.  ]), 2.491)

    References
    ----------
    M. Cuturi and M. Blondel, "Soft-DTW: a Differentiable Loss Function for Time-Series", ICML 2017.
    """
    optimize = _pairwise.require_scipy()
    gamma = spec.check_gamma(gamma)
    data = as_dataset(X, "X")
    band = (global_constraint, sakoe_chiba_radius, itakura_max_slope)
    max_iter, tol = _pairwise.check_barycenter_args(data.shape, max_iter, tol, *band)
    constraint = spec.check_constraint(*band)
    if data.nan.any():
        raise ValueError(f"X[{int(np.argmax(data.nan))}] is not finite: it holds an inf")
    w = _pairwise.check_weights(weights, data.shape[0])
    z0 = resampled_mean(data, w) if init is None else check_init(init, data.shape[2])
    spec.check_gamma_for(gamma, np.float64, z0.shape[0], data.shape[1])
    objective = Objective(data, w, gamma, constraint, z0.shape[0])
    if max_iter == 0:
        return z0, objective.value(z0)
    res = optimize.minimize(objective, z0.ravel(), method="L-BFGS-B", jac=True, tol=tol,
                            options=dict(maxiter=max_iter))
    return res.x.reshape(z0.shape), float(res.fun)
