r"""Pairwise soft-DTW matrices in NumPy, on the compiled CPU core (:mod:`softdtw.kernels.cpu`).

The pairs of the matrix are cut into chunks (:class:`softdtw._pairwise.PairPlan`); each chunk
gathers its pairs' series and runs the core's values-only forward, which forms the squared
Euclidean cost cell by cell: memory stays O(chunk (N + M) D) besides the result.
"""

from __future__ import annotations

import numpy as np

from .. import _pairwise, spec
from ..kernels import cpu

__all__ = ["cdist_soft_dtw"]

_LOW = (np.dtype(np.float16), np.dtype(np.float32))


class Dataset:
    """A dataset of series: ``data`` ``(n, L, D)`` with ``L`` the longest length, ``lengths``
    int64 ``(n,)``, ``nan`` bool ``(n,)``: the series whose used part is not finite (their
    entries are NaN). The padding and those series are zeros in ``data`` (never read as given)."""

    def __init__(self, data: np.ndarray, lengths: np.ndarray, nan=None):
        self.data, self.lengths = data, lengths
        self.nan = np.zeros(len(data), dtype=bool) if nan is None else nan

    @property
    def equal(self) -> bool:
        """Whether every series has the full length ``L``."""
        return bool((self.lengths == self.data.shape[1]).all())

    @classmethod
    def from_array(cls, data: np.ndarray, name: str, nan_padding: bool, lengths=None) -> "Dataset":
        """A validated ``(n, L, D)`` array, not modified (a copy is made where needed).

        ``lengths`` (int ``(n,)``): the series' lengths when known (a padded batch), else all
        ``L``; steps beyond them are padding, whatever they hold. With ``nan_padding``
        (tslearn's convention for variable lengths) trailing all-NaN time steps also end a
        series and any other NaN raises ValueError (:func:`softdtw._pairwise.nan_padded_lengths`);
        without it a NaN marks its series, as ``inf`` always does.
        """
        _pairwise.check_dataset_shapes(data.shape, None, x_name=name)
        n, size = data.shape[:2]
        lengths = np.full(n, size, dtype=np.int64) if lengths is None else np.array(lengths, dtype=np.int64)
        if nan_padding:
            lengths = _pairwise.nan_padded_lengths(data, name, lengths)
        if n:
            data = data[:, :int(lengths.max())]  # a view: the steps no series uses are dropped
        if data.dtype.kind != "f":
            return cls(data, lengths)
        finite = np.isfinite(data).all(axis=2)  # (n, L)
        used = np.arange(data.shape[1])[None, :] < lengths[:, None]
        nan = (~finite & used).any(axis=1)
        if not finite.all():
            data = np.where((used & ~nan[:, None])[..., None], data, 0)
        return cls(data, lengths, nan)

    @property
    def shape(self):
        return self.data.shape


def as_dataset(X, name: str) -> Dataset:
    """An array ``(n, L, D)`` or nested lists, or a sequence of ``(L_i, D)`` arrays of possibly
    different lengths; in each, trailing all-NaN time steps end a series (tslearn's padding)."""
    if isinstance(X, (list, tuple)) and len(X) > 0:
        series = [np.asarray(s) for s in X]
        _pairwise.check_series_shapes([s.shape for s in series], name)
        for k, s in enumerate(series):
            spec.check_dtype_kind(s.dtype.kind, f"{name}[{k}]")
        lengths = np.array([s.shape[0] for s in series], dtype=np.int64)
        dtype = np.result_type(*(s.dtype for s in series))
        data = np.zeros((len(series), int(lengths.max()), series[0].shape[1]), dtype=dtype)
        for k, s in enumerate(series):
            data[k, :s.shape[0]] = s
        return Dataset.from_array(data, name, nan_padding=True, lengths=lengths)
    data = np.asarray(X)
    spec.check_dtype_kind(data.dtype.kind, name)
    return Dataset.from_array(data, name, nan_padding=True)


def compute_dtype(*datasets: Dataset) -> np.dtype:
    """float32 when every input is float32 or float16, else float64."""
    return np.dtype(np.float32) if all(d.data.dtype in _LOW for d in datasets) else np.dtype(np.float64)


class PairKernel:
    """Soft-DTW values of chosen pairs ``(a_i, b_j)`` of two datasets, by the compiled core
    (:mod:`softdtw.kernels.cpu`), which forms the squared Euclidean cost cell by cell.

    The series are cast once to the compute dtype ``dtype``; bounds of the DP band are computed
    once per distinct pair of lengths. A chunk gathers its pairs' series (``k (N + M) D``
    numbers), never a ``(k, N, M)`` cost.
    """

    def __init__(self, a: Dataset, b: Dataset, gamma: float, constraint: spec.Constraint, dtype):
        self.dtype = np.dtype(dtype)
        self.a = np.ascontiguousarray(a.data, dtype=self.dtype)
        self.b = np.ascontiguousarray(b.data, dtype=self.dtype)
        self.la, self.lb = a.lengths, b.lengths
        self.n_pad, self.m_pad = a.data.shape[1], b.data.shape[1]
        self.gamma, self.constraint = gamma, constraint

    def bounds(self, ii, jj):
        """``lo, hi`` (int32 ``(k, N)``) of the pairs, from each distinct pair of lengths once."""
        xl, yl = self.la[ii], self.lb[jj]
        keys, inverse = np.unique(xl * (self.m_pad + 1) + yl, return_inverse=True)
        lo, hi = spec.band_bounds(self.n_pad, self.m_pad, keys // (self.m_pad + 1), keys % (self.m_pad + 1),
                                  self.constraint)
        return lo[inverse.ravel()], hi[inverse.ravel()], xl.astype(np.int32), yl.astype(np.int32)

    def forward(self, ii, jj):
        """``(value, state)`` of the core's forward on the pairs ``(ii[p], jj[p])``; ``state``
        for :meth:`grad_first`."""
        lo, hi, xl, yl = self.bounds(ii, jj)
        x, y = self.a[ii], self.b[jj]
        value, r, aux = cpu.forward_sqeuclidean(x, y, self.gamma, xl, yl, lo, hi)
        return value, (r, aux, x, y, xl, yl, lo, hi)

    def grad_first(self, state, grad_value) -> np.ndarray:
        """``(k, N, D)``: ``grad_value[p]`` times the gradient of pair ``p``'s value in its first
        series, from the state of :meth:`forward`."""
        r, aux, x, y, xl, yl, lo, hi = state
        return cpu.backward_sqeuclidean(r, aux, x, y, self.gamma, xl, yl, lo, hi, grad_value, need_y=False)[0]

    def values(self, ii, jj) -> np.ndarray:
        """The values alone (the core keeps no ``R`` for a backward)."""
        lo, hi, xl, yl = self.bounds(ii, jj)
        return cpu.forward_sqeuclidean(self.a[ii], self.b[jj], self.gamma, xl, yl, lo, hi, keep=False)[0]


def cdist_soft_dtw(X, Y=None, gamma=1.0, *, normalize: bool = False, global_constraint=None,
                   sakoe_chiba_radius=None, itakura_max_slope=None, chunk_size=None, progress: bool = False):
    r"""Matrix of soft-DTW values (or divergences) between two datasets of time series.

    .. math::

        K_{ij} = \mathrm{sdtw}_\gamma(X_i, Y_j), \qquad \text{or with ``normalize=True``} \quad
        K_{ij} = \mathrm{sdtw}_\gamma(X_i, Y_j)
                 - \tfrac12 \left(\mathrm{sdtw}_\gamma(X_i, X_i) + \mathrm{sdtw}_\gamma(Y_j, Y_j)\right)

    with the squared Euclidean cost. Equal to tslearn's ``cdist_soft_dtw`` (and, with
    ``normalize=True``, ``cdist_soft_dtw_normalized``, the soft-DTW divergence).

    Runs the compiled CPU core on chunks of at most ``chunk_size`` pairs: memory is the result plus
    O(chunk_size N M). With ``Y=None`` each unordered pair is computed once (and the diagonal),
    then mirrored; with ``normalize=True`` the self terms are computed once per series (they are
    the diagonal when ``Y`` is None).

    Parameters
    ----------
    X : array_like, shape (n, N, D) (an array or nested lists), or a sequence of n arrays (N_i, D)
        A dataset of series; a sequence may hold series of different lengths, and, as in
        tslearn (``to_time_series_dataset``), trailing time steps whose features are all NaN
        end a shorter series. Any other NaN raises ValueError; an ``inf`` in a series makes
        its entries NaN.
    Y : array_like, shape (m, M, D), or a sequence of arrays (M_j, D), optional
        A second dataset, in the same forms; None compares ``X`` with itself (a symmetric matrix).
    gamma : float > 0
        Smoothing; smaller is closer to DTW. It must suit the compute dtype
        (:func:`softdtw.spec.check_gamma_for`), else ValueError.
    normalize : bool
        Return the soft-DTW divergence (>= 0, 0 on the diagonal when ``Y`` is None).
    global_constraint, sakoe_chiba_radius, itakura_max_slope
        Band constraint, as in tslearn 0.10 (see :func:`softdtw.spec.check_constraint`).
    chunk_size : int >= 1, optional
        Pairs per chunk; default: about 2**22 DP cells per chunk (1024 pairs at N = M = 64).
    progress : bool
        Show a tqdm progress bar over the pairs (needs ``pip install softdtw[progress]``).

    Returns
    -------
    ndarray, shape (n, m) (or (n, n))
        float32 when every input is float32 (or float16; computed in float32), else float64
        (computed in float64 end to end).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[[0.0], [1.0]], [[1.0], [1.0]]])
    >>> cdist_soft_dtw(X, gamma=0.01).round(3)
    array([[ 0.   ,  0.993],
           [ 0.993, -0.011]])
    >>> cdist_soft_dtw(X, gamma=0.01, normalize=True).round(3)
    array([[0.   , 0.999],
           [0.999, 0.   ]])

    References
    ----------
    M. Cuturi and M. Blondel, "Soft-DTW: a Differentiable Loss Function for Time-Series", ICML 2017.
    M. Blondel, A. Mensch and J.-P. Vert, "Differentiable Divergences Between Time Series", AISTATS 2021.
    """
    gamma = spec.check_gamma(gamma)
    constraint = spec.check_constraint(global_constraint, sakoe_chiba_radius, itakura_max_slope)
    a = as_dataset(X, "X")
    b = a if Y is None else as_dataset(Y, "Y")
    _pairwise.check_dataset_shapes(a.shape, b.shape)
    n, m = a.shape[1], b.shape[1]
    dtype = compute_dtype(a, b)
    spec.check_gamma_for(gamma, dtype, *((max(n, m),) * 2 if normalize else (n, m)))  # self terms: (n, n), (m, m)
    chunk = _pairwise.check_chunk_size(chunk_size, n, m)
    return kernel_matrix(a, None if Y is None else b, gamma, constraint, dtype,
                         normalize=normalize, chunk_size=chunk, progress=progress)


def kernel_matrix(a: Dataset, b: Dataset | None, gamma: float, constraint: spec.Constraint, dtype, *,
                  normalize: bool, chunk_size: int, progress: bool) -> np.ndarray:
    """The matrix of :func:`cdist_soft_dtw` from validated arguments (``b`` None: symmetric), by the
    compiled core in ``dtype`` (also the CPU fast path of ``softdtw.torch`` outside autograd)."""
    pairs = [(a, a if b is None else b), (a, a), (b, b)]

    def run(plan, which, bar):
        kernel = PairKernel(*pairs[which], gamma, constraint, dtype)
        out = np.empty((plan.n,) if plan.kind == "diagonal" else (plan.n, plan.m), dtype=dtype)
        return _pairwise.fill(plan, kernel.values, out, bar)

    out = _pairwise.pairwise_matrix(a.shape[0], pairs[0][1].shape[0], symmetric=b is None, normalize=normalize,
                                    chunk_size=chunk_size, progress=progress, run=run,
                                    diagonal=lambda out: np.diagonal(out).copy())
    out[a.nan, :] = np.nan  # a NaN in a series makes its pairs NaN (as soft_dtw)
    out[:, pairs[0][1].nan] = np.nan
    return out
