"""Backend-neutral pieces of the pairwise matrices and barycenters (NumPy and the standard library only).

* :class:`PairPlan`: which pairs ``(i, j)`` a pairwise matrix computes, cut into chunks of at most
  ``chunk_size`` pairs, generated one chunk at a time (O(chunk) memory, never O(n m) indices).
  ``"cross"`` is every pair of an ``(n, m)`` matrix in row-major order, ``"triangle"`` each
  unordered pair of one dataset once (the upper triangle with its diagonal, row-major, the order
  of ``numpy.triu_indices``), ``"diagonal"`` the pairs ``(i, i)`` (self terms of a divergence).
* validation shared by the NumPy, torch and JAX realizations (chunk size, datasets, weights,
  optimiser settings), and the optional progress bar (tqdm).
"""

from __future__ import annotations

import math
import numbers
from typing import Iterator

import numpy as np

from . import spec

__all__ = [
    "CELLS_PER_CHUNK",
    "PairPlan",
    "check_barycenter_args",
    "check_chunk_size",
    "check_init_shape",
    "check_dataset_shapes",
    "check_max_iter",
    "check_tol",
    "check_weights",
    "nan_padded_lengths",
    "fill",
    "pairwise_matrix",
    "progress_bar",
    "require_scipy",
]

# Default chunk: about this many DP cells (2**22 cells: 32 MB per float64 (chunk, N, M) array).
CELLS_PER_CHUNK = 1 << 22
# Default chunks are whole multiples of this many pairs (the numba kernel's SIMD lane group).
CHUNK_MULTIPLE = 64

KINDS = ("cross", "triangle", "diagonal")


def check_chunk_size(chunk_size, n_len: int, m_len: int) -> int:
    """Pairs per chunk: ``chunk_size`` validated, or by default about :data:`CELLS_PER_CHUNK`
    cells for series of lengths ``n_len`` and ``m_len`` (a multiple of 64 pairs when >= 64)."""
    if chunk_size is None:
        size = max(1, CELLS_PER_CHUNK // max(1, n_len * m_len))
        return size - size % CHUNK_MULTIPLE if size >= CHUNK_MULTIPLE else size
    if isinstance(chunk_size, (bool, np.bool_)) or not isinstance(chunk_size, numbers.Integral):
        raise TypeError(f"chunk_size must be an integer or None, got {type(chunk_size).__name__}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return int(chunk_size)


class PairPlan:
    """The pairs of a pairwise matrix, in chunks of at most ``chunk_size`` pairs.

    Examples
    --------
    >>> plan = PairPlan("triangle", 3, 3, chunk_size=4)
    >>> plan.total, [(i.tolist(), j.tolist()) for i, j in plan.chunks()]
    (6, [([0, 0, 0, 1], [0, 1, 2, 1]), ([1, 2], [2, 2])])
    """

    def __init__(self, kind: str, n: int, m: int, chunk_size: int):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if kind != "cross" and n != m:
            raise ValueError(f"a {kind} plan needs n == m, got {n} and {m}")
        self.kind, self.n, self.m, self.chunk_size = kind, int(n), int(m), int(chunk_size)
        if kind == "cross":
            self.total = self.n * self.m
        elif kind == "triangle":
            self.total = self.n * (self.n + 1) // 2
            rows = np.arange(self.n, dtype=np.int64)
            self._row_start = rows * self.n - rows * (rows - 1) // 2  # first pair index of row i
        else:
            self.total = self.n

    def __len__(self) -> int:
        """The number of chunks."""
        return -(-self.total // self.chunk_size)

    def pairs(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Row and column indices (int64) of the pairs ``start <= p < stop`` of the plan."""
        p = np.arange(start, stop, dtype=np.int64)
        if self.kind == "cross":
            return p // self.m, p % self.m
        if self.kind == "diagonal":
            return p, p.copy()
        i = np.searchsorted(self._row_start, p, side="right") - 1
        return i, i + (p - self._row_start[i])

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(i, j)`` index arrays of each chunk, in order."""
        for start in range(0, self.total, self.chunk_size):
            yield self.pairs(start, min(start + self.chunk_size, self.total))


def fill(plan: PairPlan, values, out, bar, index=None):
    """Write the values of the plan's pairs into ``out`` (NumPy array or torch tensor), in place.

    ``values(i, j)`` returns the values of the pairs ``(i[p], j[p])`` of one chunk (``index``, if
    given, first converts the NumPy index arrays, e.g. to tensors). A ``"triangle"`` plan also
    writes the mirrored entries; a ``"diagonal"`` plan fills a vector ``out[i]``.
    """
    for ii, jj in plan.chunks():
        i, j = (ii, jj) if index is None else (index(ii), index(jj))
        v = values(i, j)
        if plan.kind == "diagonal":
            out[i] = v
        else:
            out[i, j] = v
            if plan.kind == "triangle":
                out[j, i] = v
        bar.update(len(ii))
    return out


def pairwise_matrix(n: int, m: int, *, symmetric: bool, normalize: bool, chunk_size: int, progress: bool,
                    run, diagonal, in_place: bool = True):
    r"""The driver of every ``cdist_soft_dtw``: plans, progress bar, divergence.

    ``run(plan, which, bar)`` returns the ``(n, m)`` matrix of a ``"cross"``/``"triangle"`` plan
    (``which == 0``) or the self values of a ``"diagonal"`` plan over the first (``which == 1``)
    or second (``which == 2``) dataset. ``diagonal(out)`` returns a copy of the matrix diagonal.
    With ``normalize`` the result is ``out - (sx[:, None] + sy[None, :]) / 2`` (symmetric to the
    last bit when ``out`` is, and exactly 0 where ``out[i, i] == sx[i] == sy[i]``), formed in
    place block by block when ``in_place`` (no second ``(n, m)`` array), else as a new array.
    """
    plan = PairPlan("triangle" if symmetric else "cross", n, m, chunk_size)
    selfs = [] if (symmetric or not normalize) else [PairPlan("diagonal", k, k, chunk_size) for k in (n, m)]
    bar = progress_bar(progress, plan.total + sum(p.total for p in selfs), "cdist_soft_dtw")
    try:
        out = run(plan, 0, bar)
        if normalize:
            sx = sy = diagonal(out) if symmetric else None
            if not symmetric:
                sx, sy = run(selfs[0], 1, bar), run(selfs[1], 2, bar)
            if not in_place:
                return out - (sx[:, None] + sy[None, :]) / 2
            rows = max(1, chunk_size // max(m, 1))
            for r0 in range(0, n, rows):
                out[r0:r0 + rows] -= (sx[r0:r0 + rows, None] + sy[None, :]) / 2
    finally:
        bar.close()
    return out


def check_dataset_shapes(x_shape: tuple, y_shape: tuple | None, *, x_name: str = "X",
                         y_name: str = "Y") -> None:
    """Datasets are ``(n, length, D)``: 3 dimensions, series of length >= 1, D >= 1, same D."""
    shapes = [(x_name, tuple(x_shape))] + ([] if y_shape is None else [(y_name, tuple(y_shape))])
    for name, shape in shapes:
        if len(shape) != 3:
            raise ValueError(f"{name} must have shape (n_series, length, D), got {len(shape)} dimensions {shape}")
        if shape[1] < 1:
            raise ValueError(f"{name} holds empty series: its length is 0 (shape {shape})")
        if shape[2] < 1:
            raise ValueError(f"{name} has no features: its last dimension is 0 (shape {shape})")
    if y_shape is not None and x_shape[-1] != y_shape[-1]:
        raise ValueError(
            f"{x_name} and {y_name} must have the same number of features, got {x_shape[-1]} and {y_shape[-1]}"
        )


def check_series_shapes(shapes: list, name: str) -> None:
    """A dataset given as a list of series: non-empty, each ``(length >= 1, D)``, one ``D``."""
    if len(shapes) == 0:
        raise ValueError(f"{name} must have shape (n_series, length, D) or be a non-empty list of (length, D) series")
    for k, shape in enumerate(shapes):
        if len(shape) != 2:
            raise ValueError(f"{name}[{k}] must have shape (length, D), got {len(shape)} dimensions {tuple(shape)}")
        if shape[0] < 1:
            raise ValueError(f"{name} holds empty series: {name}[{k}] has length 0")
    if len({shape[1] for shape in shapes}) > 1:
        raise ValueError(f"the series of {name} must have the same number of features, got "
                         f"{sorted({shape[1] for shape in shapes})}")


def nan_padded_lengths(data: np.ndarray, name: str, lengths=None) -> np.ndarray:
    """The lengths of a dataset in tslearn's variable-length convention, as int64 ``(n,)``.

    ``data`` is a NumPy array ``(n, L, D)`` (a detached copy of a torch or JAX array will do).
    Trailing time steps whose features are all NaN end a series (tslearn's ``ts_size``), within
    ``lengths`` when given (a padded batch: steps beyond them are padding whatever they hold).
    Any other NaN (inside a series, or a step only partly NaN) raises ValueError naming the
    series and the step, as does a series that is NaN throughout (an empty series).
    """
    n, size = data.shape[:2]
    lengths = np.full(n, size, np.int64) if lengths is None else np.array(lengths, dtype=np.int64)
    if data.dtype.kind not in "fc" or n == 0:
        return lengths
    inside = np.arange(size)[None, :] < lengths[:, None]
    nan_steps = np.isnan(data).all(axis=2) & inside  # (n, L)
    # trailing all-NaN steps within each length: reverse the used part and count the leading run
    rev = np.take_along_axis(nan_steps, np.clip(lengths[:, None] - 1 - np.arange(size)[None, :], 0, None), axis=1)
    rev &= np.arange(size)[None, :] < lengths[:, None]
    lengths = lengths - np.cumprod(rev, axis=1).sum(axis=1)
    if lengths.min() < 1:
        k = int(np.argmin(lengths))
        raise ValueError(f"{name}[{k}] is all NaN: an empty series (tslearn's NaN padding leaves no time step)")
    used = np.arange(size)[None, :] < lengths[:, None]
    stray = np.isnan(data).any(axis=2) & used
    if stray.any():
        k, t = (int(v) for v in np.argwhere(stray)[0])
        raise ValueError(f"{name}[{k}] has a NaN at time step {t}, before its end: NaN marks padding only as "
                         f"trailing time steps with every feature NaN (tslearn's convention)")
    return lengths


def check_weights(weights, n: int) -> np.ndarray:
    """Barycenter weights as float64 ``(n,)``: finite, >= 0, not all 0; None gives ones (tslearn)."""
    if weights is None:
        return np.ones(n)
    w = np.asarray(weights)
    if w.dtype.kind not in "iuf":
        raise TypeError(f"weights must hold real numbers, got dtype {w.dtype}")
    if w.shape != (n,):
        raise ValueError(f"weights must have shape ({n},) (one per series), got {w.shape}")
    w = w.astype(np.float64)
    if not np.isfinite(w).all():
        raise ValueError("weights must be finite")
    if (w < 0).any():
        raise ValueError(f"weights must be >= 0, got minimum {w.min()}")
    if not (w > 0).any():
        raise ValueError("weights must not all be 0")
    return w


def check_barycenter_args(shape: tuple, max_iter, tol, global_constraint=None, sakoe_chiba_radius=None,
                          itakura_max_slope=None) -> tuple[int, float]:
    """Validate the arguments of a barycenter (not gamma, weights, init); returns ``(max_iter, tol)``."""
    check_dataset_shapes(shape, None)
    if shape[0] < 1:
        raise ValueError("X must hold at least one series")
    spec.check_constraint(global_constraint, sakoe_chiba_radius, itakura_max_slope)
    return check_max_iter(max_iter), check_tol(tol)


def check_init_shape(shape: tuple, features: int) -> None:
    if len(shape) != 2 or shape[0] < 1 or shape[1] != features:
        raise ValueError(f"init must have shape (length, {features}) with length >= 1, got {tuple(shape)}")


def check_max_iter(max_iter) -> int:
    if isinstance(max_iter, (bool, np.bool_)) or not isinstance(max_iter, numbers.Integral):
        raise TypeError(f"max_iter must be an integer, got {type(max_iter).__name__}")
    if max_iter < 0:
        raise ValueError(f"max_iter must be >= 0, got {max_iter}")
    return int(max_iter)


def check_tol(tol) -> float:
    if isinstance(tol, (bool, np.bool_)) or not isinstance(tol, numbers.Real):
        raise TypeError(f"tol must be a real number, got {type(tol).__name__}")
    if not (math.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be finite and >= 0, got {tol}")
    return float(tol)


def require_scipy():
    """``scipy.optimize`` or an ImportError naming the install."""
    try:
        import scipy.optimize
    except ImportError as e:
        raise ImportError(
            "soft_dtw_barycenter in softdtw.numpy needs SciPy (L-BFGS-B): pip install softdtw[barycenter]"
        ) from e
    return scipy.optimize


class _NoBar:
    disable = True  # as a tqdm bar that does not display

    def update(self, k: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(enabled: bool, total: int, desc: str):
    """A tqdm bar over ``total`` pairs when ``enabled`` (tqdm is optional), else a no-op bar."""
    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError as e:
        raise ImportError("progress=True needs tqdm: pip install softdtw[progress] (or pip install tqdm)") from e
    return tqdm(total=total, desc=desc, unit="pair", unit_scale=True, leave=False)
