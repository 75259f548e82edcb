r"""Soft-DTW barycenters in PyTorch: ``torch.optim.LBFGS`` on the weighted sum of soft-DTW values."""

from __future__ import annotations

import torch

from .. import _pairwise
from ._api import soft_dtw
from ._cdist import _padded, check_dataset, check_gamma, nan_padding

__all__ = ["soft_dtw_barycenter"]


def resampled(x: torch.Tensor, lengths) -> torch.Tensor:
    """tslearn's ``TimeSeriesResampler``: each series ``x[k, :lengths[k]]`` resampled linearly to
    the padded length (``x`` itself when ``lengths`` is None)."""
    if lengths is None:
        return x
    size = x.shape[1]
    return torch.stack([torch.nn.functional.interpolate(s[:n].T[None], size=size, mode="linear",
                                                        align_corners=True)[0].T
                        for s, n in zip(x, lengths.tolist())])


def soft_dtw_barycenter(X, gamma=1.0, *, weights=None, init=None, max_iter: int = 50, tol: float = 1e-3,
                        global_constraint=None, sakoe_chiba_radius=None, itakura_max_slope=None):
    r"""Soft-DTW barycenter of a batch of series, by L-BFGS (``torch.optim.LBFGS``, strong Wolfe).

    .. math::

        \min_{Z \in \mathbb{R}^{L \times D}} \; f(Z) = \sum_{i=1}^{n} w_i \, \mathrm{sdtw}_\gamma(Z, X_i)

    The objective, default weights (all 1, not normalised) and default start (the weighted mean
    of ``X``) are tslearn's ``softdtw_barycenter``; the optimiser is torch's, so the path to the
    minimum differs from SciPy's L-BFGS-B, not the objective.

    Parameters
    ----------
    X : Tensor or array_like, shape (n, N, D), or a list of n series of shapes (N_i, D)
        The series to average, a dataset as for :func:`cdist_soft_dtw`: series of different
        lengths come as a list or padded with trailing all-NaN time steps (tslearn's
        convention). ``X`` is not differentiated (nor modified).
    gamma : float > 0
    weights : array_like or Tensor, shape (n,), optional
        Non-negative weights, not all 0; default all 1.
    init : Tensor or array_like, shape (L, D), optional
        Start (and length ``L``); default the weighted mean of ``X`` (each series first
        resampled linearly to the longest length when the lengths differ, as tslearn).
    max_iter : int >= 0
        L-BFGS iterations at most (0 returns ``init`` and its objective).
    tol : float >= 0
        Stops when the largest absolute gradient entry is <= ``tol`` (``tolerance_grad``).
    global_constraint, sakoe_chiba_radius, itakura_max_slope
        Band constraint (tslearn 0.10 semantics).

    Returns
    -------
    barycenter : Tensor, shape (L, D)
        On the device of ``X``, float64 for float64 ``X`` and float32 otherwise; detached.
    objective : Tensor, 0-d
        :math:`f` at the returned barycenter (same dtype, detached).

    Raises
    ------
    ValueError
        A NaN inside a series (not trailing padding), naming the series and the time step.

    Examples
    --------
    >>> import torch
    >>> X = torch.tensor([[[0.0], [1.0], [2.0]], [[0.0], [2.0], [4.0]]], dtype=torch.float64)
    >>> z, f = soft_dtw_barycenter(X, gamma=0.1, max_iter=100, tol=1e-8)
    >>> z.ravel().round(decimals=2), f.round(decimals=3)
    (tensor([0.0000, 1.5200, 3.0000], dtype=torch.float64), tensor(2.4910, dtype=torch.float64))
    """
    x, lengths = _padded(X, "X")
    band = dict(global_constraint=global_constraint, sakoe_chiba_radius=sakoe_chiba_radius,
                itakura_max_slope=itakura_max_slope)
    max_iter, tol = _pairwise.check_barycenter_args(tuple(x.shape), max_iter, tol, **band)
    gamma = check_gamma(gamma)
    x, lengths = nan_padding(x.detach(), lengths, "X")
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    x = x.to(dtype)
    w_np = weights.detach().cpu().numpy() if isinstance(weights, torch.Tensor) else weights
    w = torch.as_tensor(_pairwise.check_weights(w_np, x.shape[0]), dtype=dtype, device=x.device)
    if init is None:
        z0 = (w[:, None, None] * resampled(x, lengths)).sum(0) / w.sum()
    else:
        z0 = check_dataset(torch.as_tensor(init), "init").detach().to(device=x.device)
        _pairwise.check_init_shape(tuple(z0.shape), x.shape[2])
    z = z0.to(dtype).clone().requires_grad_(True)

    def objective():
        return (w * soft_dtw(z.expand(x.shape[0], -1, -1), x, gamma, y_lengths=lengths, **band)).sum()

    if max_iter > 0:
        opt = torch.optim.LBFGS([z], lr=1, max_iter=max_iter, tolerance_grad=tol, tolerance_change=1e-12,
                                history_size=10, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            f = objective()
            f.backward()
            return f

        opt.step(closure)
    with torch.no_grad():
        return z.detach(), objective().detach()

