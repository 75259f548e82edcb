r"""The soft-DTW algorithm, stated once.

Every realization of softdtw (the NumPy reference, the torch paths, the JAX
scan, and the tests of the numba and Triton kernels) follows the conventions
and uses the functions of this module. It imports nothing but NumPy and the
standard library.

Conventions
-----------
* ``x`` has shape ``(B, N, D)`` and ``y`` shape ``(B, M, D)``; an unbatched
  pair ``(N, D)``, ``(M, D)`` gives a 0-d result. A cost matrix has shape
  ``(B, N, M)`` (or ``(N, M)``).
* Default cost: squared Euclidean, ``C[b, i, j] = sum_d (x[b, i, d] - y[b, j, d]) ** 2``.
* ``R[0, 0] = 0``, ``R[i, 0] = R[0, j] = +inf`` and for ``1 <= i <= N``, ``1 <= j <= M``
  ``R[i, j] = C[i-1, j-1] + softmin_gamma(R[i-1, j-1], R[i-1, j], R[i, j-1])``;
  the value is ``R[N, M]`` (or ``R[n_b, m_b]`` with per-pair lengths).
* Cells outside a band constraint or beyond a pair's lengths have cost ``+inf``.

The anti-diagonal ("skewed") layout
-----------------------------------
The DP runs over anti-diagonals ``k = i + j`` of the padded ``(N+1) x (M+1)``
matrix ``R``. Diagonal ``k`` is stored as a vector ``d_k`` of length ``N + 1``
with ``d_k[i] = R[i, k - i]`` (``+inf`` where ``k - i`` is outside ``[0, M]``).
Cells of one diagonal depend only on the two previous diagonals, so a whole
diagonal (for a whole batch) is one vectorized step:

    d_k[i] = c_k[i - 1] + softmin(d_{k-2}[i-1], d_{k-1}[i-1], d_{k-1}[i]),   i >= 1
    d_k[0] = +inf

where ``c_k[i0] = C[i0, k - 2 - i0]`` is diagonal ``k - 2`` of the skewed cost
(:func:`skew`). The step functions below are pure (no in-place writes) and take
the array namespace ``xp`` (``numpy``, ``jax.numpy`` or ``torch``), so NumPy
drives them with a Python loop and JAX with ``lax.scan``.

The backward (expected alignment)
---------------------------------
``E[i, j] = dR[N, M] / dC[i-1, j-1]`` satisfies ``E[N, M] = 1`` and

    E[i, j] = w_diag(i+1, j+1) E[i+1, j+1] + w_up(i+1, j) E[i+1, j] + w_left(i, j+1) E[i, j+1]

where ``(w_diag, w_up, w_left)(s)`` are the softmin weights of cell ``s``: the
normalized ``exp(-(a_p - m) / gamma) / sum_q exp(-(a_q - m) / gamma)`` of its
three predecessors ``a_p`` with their minimum ``m`` factored out. They are
recomputed from the stored ``R`` exactly as the forward formed them (never from
``R[s] - C[s]``, which cancels in float32, nor with exponents that can
overflow). Each cell's weights sum to one, so the backward conserves the total
alignment mass. The derivative with respect to gamma is
``sum_{i,j} E[i, j] * sum_p w_p log w_p`` (the negative entropy of each cell's
softmin weights): no cancellation, no overflow.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "CONSTRAINTS",
    "Constraint",
    "backward_step",
    "band_bounds",
    "band_mask",
    "boundary_diagonals",
    "check_constraint",
    "check_cost_shape",
    "check_gamma",
    "check_gamma_for",
    "check_lengths",
    "check_pair_shapes",
    "cost_diagonals",
    "forward_step",
    "softmin",
    "softmin_weights",
    "skew",
    "unskew",
    "valid_cells",
]

CONSTRAINTS = (None, "sakoe_chiba", "itakura")
# Sakoe-Chiba radii at or above this are clamped to it: no series is this long, so the band keeps
# every cell (and the radius fits the kernels' int32 bounds)
MAX_RADIUS = 2**30


# ---------------------------------------------------------------------------
# Argument validation (shared by every realization)
# ---------------------------------------------------------------------------


def check_gamma(gamma: Any) -> float:
    """Return ``gamma`` as a Python float, or raise if it is not a finite number > 0."""
    if isinstance(gamma, (bool, np.bool_)) or not isinstance(gamma, numbers.Real):
        if isinstance(gamma, np.ndarray) and gamma.ndim == 0 and gamma.dtype.kind in "iuf":
            gamma = gamma.item()
        else:
            raise TypeError(f"gamma must be a real number, got {type(gamma).__name__}")
    gamma = float(gamma)
    if not math.isfinite(gamma):
        raise ValueError(f"gamma must be finite, got {gamma}")
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    return gamma


def check_gamma_for(gamma: float, dtype: Any, n: int, m: int) -> None:
    """Raise ValueError when the compute ``dtype`` cannot run soft-DTW with ``gamma`` on series of
    lengths up to ``n`` and ``m``.

    ``gamma`` must be a normal number of ``dtype`` (``1 / gamma`` finite: a subnormal gamma
    overflows the softmin's scale), and the entropy term of the value, at most
    ``gamma * log(number of paths) <= gamma * (n + m) * log(3)``, must stay far from the
    largest finite number (a huge gamma would overflow it to ``-inf``). ``dtype`` is anything
    ``numpy.finfo`` takes (a NumPy dtype or its name); ``gamma`` is already :func:`check_gamma`'d.
    """
    info = np.finfo(np.dtype(dtype))
    name = np.dtype(dtype).name
    if gamma < float(info.tiny):
        hint = "" if name == "float64" else " or float64 inputs"
        raise ValueError(f"gamma={gamma!r} is below the smallest normal {name} ({float(info.tiny):.3g}): "
                         f"{name} cannot hold 1 / gamma; use a larger gamma{hint}")
    bound = float(info.max) / 16
    if gamma * (n + m) * math.log(3.0) > bound:
        raise ValueError(f"gamma={gamma!r} is too large for {name} with series of lengths {n} and {m}: "
                         f"the value, about -gamma * log(number of paths), would overflow; use a gamma "
                         f"below {bound / ((n + m) * math.log(3.0)):.3g}")


def check_pair_shapes(x_shape: tuple, y_shape: tuple, *, x_name: str = "x", y_name: str = "y") -> bool:
    """Check the shapes of a pair of (batches of) series.

    Returns True when the inputs are batched ``(B, N, D)``, False for one pair ``(N, D)``.
    """
    x_shape, y_shape = tuple(x_shape), tuple(y_shape)
    for name, shape in ((x_name, x_shape), (y_name, y_shape)):
        if len(shape) not in (2, 3):
            raise ValueError(
                f"{name} must have shape (B, length, D) or (length, D), got {len(shape)} dimensions {shape}"
            )
    if len(x_shape) != len(y_shape):
        raise ValueError(
            f"{x_name} and {y_name} must both be batched (3-d) or both unbatched (2-d), "
            f"got shapes {x_shape} and {y_shape}"
        )
    if len(x_shape) == 3 and x_shape[0] != y_shape[0]:
        raise ValueError(
            f"{x_name} and {y_name} must have the same batch size, got {x_shape[0]} and {y_shape[0]}"
        )
    if x_shape[-1] != y_shape[-1]:
        raise ValueError(
            f"{x_name} and {y_name} must have the same number of features, got {x_shape[-1]} and {y_shape[-1]}"
        )
    for name, shape in ((x_name, x_shape), (y_name, y_shape)):
        if shape[-2] < 1:
            raise ValueError(f"{name} is an empty series: its length is 0 (shape {shape})")
        if shape[-1] < 1:
            raise ValueError(f"{name} has no features: its last dimension is 0 (shape {shape})")
    return len(x_shape) == 3


def check_cost_shape(shape: tuple, *, name: str = "cost") -> bool:
    """Check the shape of a cost matrix; True when batched ``(B, N, M)``."""
    shape = tuple(shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"{name} must have shape (B, N, M) or (N, M), got {len(shape)} dimensions {shape}")
    if shape[-2] < 1 or shape[-1] < 1:
        raise ValueError(f"{name} must be non-empty, got shape {shape}")
    return len(shape) == 3


def check_dtype_kind(kind: str, name: str) -> None:
    """Reject non-numeric arrays (``kind`` is a NumPy dtype kind character)."""
    if kind not in "iuf":
        raise TypeError(f"{name} must hold real numbers (integer or floating point), got dtype kind {kind!r}")


def check_lengths(lengths: Any, batch: int, size: int, name: str) -> np.ndarray:
    """Validate per-pair lengths and return them as an int64 NumPy array of shape ``(batch,)``.

    ``None`` means every pair uses the full padded ``size``.
    """
    if lengths is None:
        return np.full(batch, size, dtype=np.int64)
    arr = np.asarray(lengths)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    if arr.shape != (batch,):
        raise ValueError(f"{name} must have shape ({batch},), got {arr.shape}")
    if batch and arr.min() < 1:
        raise ValueError(f"{name} must be >= 1, got minimum {arr.min()}")
    if batch and arr.max() > size:
        raise ValueError(f"{name} must be <= the padded length {size}, got maximum {arr.max()}")
    return arr.astype(np.int64)


class Constraint(NamedTuple):
    """A validated global constraint: ``kind`` in CONSTRAINTS and its parameter."""

    kind: str | None
    param: float | None


def check_constraint(global_constraint=None, sakoe_chiba_radius=None, itakura_max_slope=None) -> Constraint:
    """Validate the band arguments; semantics of tslearn 0.10's ``compute_mask``.

    ``global_constraint`` names the band ("sakoe_chiba" or "itakura"); when it is None, a
    given ``sakoe_chiba_radius`` or ``itakura_max_slope`` selects its band (both given is an
    error, since the band cannot be inferred). The radius defaults to 1, the slope to 2.
    """
    if global_constraint not in CONSTRAINTS:
        raise ValueError(
            f"global_constraint must be one of None, 'sakoe_chiba', 'itakura', got {global_constraint!r}"
        )
    if sakoe_chiba_radius is not None:
        if isinstance(sakoe_chiba_radius, (bool, np.bool_)) or not isinstance(sakoe_chiba_radius, numbers.Integral):
            raise TypeError(f"sakoe_chiba_radius must be an integer, got {type(sakoe_chiba_radius).__name__}")
        if sakoe_chiba_radius < 0:
            raise ValueError(f"sakoe_chiba_radius must be >= 0, got {sakoe_chiba_radius}")
        # a radius beyond any length is no band: the same cells as MAX_RADIUS (kernels use int32)
        sakoe_chiba_radius = min(int(sakoe_chiba_radius), MAX_RADIUS)
    if itakura_max_slope is not None:
        if isinstance(itakura_max_slope, (bool, np.bool_)) or not isinstance(itakura_max_slope, numbers.Real):
            raise TypeError(f"itakura_max_slope must be a real number, got {type(itakura_max_slope).__name__}")
        if not math.isfinite(itakura_max_slope) or itakura_max_slope < 1:
            raise ValueError(f"itakura_max_slope must be finite and >= 1, got {itakura_max_slope}")
    if global_constraint is None:
        if sakoe_chiba_radius is not None and itakura_max_slope is not None:
            raise ValueError(
                "both sakoe_chiba_radius and itakura_max_slope are set but global_constraint is None: "
                "name the band with global_constraint"
            )
        if sakoe_chiba_radius is not None:
            global_constraint = "sakoe_chiba"
        elif itakura_max_slope is not None:
            global_constraint = "itakura"
    if global_constraint == "sakoe_chiba":
        return Constraint("sakoe_chiba", float(1 if sakoe_chiba_radius is None else sakoe_chiba_radius))
    if global_constraint == "itakura":
        return Constraint("itakura", float(2.0 if itakura_max_slope is None else itakura_max_slope))
    return Constraint(None, None)


# ---------------------------------------------------------------------------
# Band constraints (tslearn 0.10 definitions, also for N != M)
# ---------------------------------------------------------------------------


def _sakoe_chiba_mask(n: int, m: int, radius: int) -> np.ndarray:
    # tslearn 0.10: the band is widened by |n - m| along the longer axis, so that the
    # corner (n-1, m-1) is always inside; cell (i, j) with n <= m is kept when
    # i - radius <= j <= i + (m - n) + radius.
    i = np.arange(n)[:, None]
    j = np.arange(m)[None, :]
    if n > m:
        return (i >= j - radius) & (i <= j + (n - m) + radius)
    return (j >= i - radius) & (j <= i + (m - n) + radius)


def _itakura_rows(n: int, m: int, max_slope: float) -> tuple[np.ndarray, np.ndarray]:
    # tslearn 0.10: a parallelogram with slopes in [1/max_slope, max_slope] (scaled by n/m)
    # from (0, 0) and into (n-1, m-1); bounds rounded to 2 decimals, then ceil/floor. Column j
    # keeps the rows lower[j] <= i < upper[j] (both non-decreasing in j).
    min_slope = 1.0 / float(max_slope)
    max_s = float(max_slope) * (float(n) / float(m))
    min_s = min_slope * (float(n) / float(m))
    j = np.arange(m, dtype=np.float64)
    lower = np.maximum(np.round(min_s * j, 2), np.round((n - 1) - max_s * (m - 1) + max_s * j, 2))
    upper = np.minimum(np.round(max_s * j, 2), np.round((n - 1) - min_s * (m - 1) + min_s * j, 2))
    return np.ceil(lower), np.floor(upper + 1)


def _itakura_mask(n: int, m: int, max_slope: float) -> np.ndarray:
    lower, upper = _itakura_rows(n, m, max_slope)
    i = np.arange(n)[:, None]
    return (i >= lower[None, :]) & (i < upper[None, :])


def row_bounds(n: int, m: int, constraint: Constraint = Constraint(None, None)) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)`` int64 ``(n,)``: row ``i`` of :func:`band_mask` is ``lo[i] <= j < hi[i]``.

    O(n + m), with no ``(n, m)`` mask (long series: N = M = 32768 has 10^9 cells). Raises as
    :func:`band_mask` does when the band leaves no admissible path.
    """
    i = np.arange(n, dtype=np.int64)
    if constraint.kind is None:
        return np.zeros(n, np.int64), np.full(n, m, np.int64)
    if constraint.kind == "sakoe_chiba":
        r = int(constraint.param)
        if n > m:  # i - (n - m) - r <= j <= i + r
            return np.clip(i - (n - m) - r, 0, m), np.clip(i + r + 1, 0, m)
        return np.clip(i - r, 0, m), np.clip(i + (m - n) + r + 1, 0, m)  # i - r <= j <= i + (m - n) + r
    lower, upper = _itakura_rows(n, m, constraint.param)
    lo = np.searchsorted(upper, i, side="right")  # the first column with upper > i
    hi = np.searchsorted(lower, i, side="right")  # the columns with lower <= i
    cols_ok = np.maximum(lower, 0) < np.minimum(upper, n)
    if not ((hi > lo).all() and cols_ok.all()):
        raise ValueError(
            f"itakura_max_slope={constraint.param} leaves no admissible path for series of "
            f"lengths {n} and {m}; use a larger slope"
        )
    return lo.astype(np.int64), hi.astype(np.int64)


def band_mask(n: int, m: int, constraint: Constraint = Constraint(None, None)) -> np.ndarray:
    """Boolean ``(n, m)`` mask of the cells a path may use under ``constraint``.

    Raises ValueError when the band leaves no admissible path from (0, 0) to (n-1, m-1).
    """
    if constraint.kind is None:
        return np.ones((n, m), dtype=bool)
    if constraint.kind == "sakoe_chiba":
        mask = _sakoe_chiba_mask(n, m, int(constraint.param))
    else:
        mask = _itakura_mask(n, m, constraint.param)
        if not (mask.any(axis=1).all() and mask.any(axis=0).all()):
            raise ValueError(
                f"itakura_max_slope={constraint.param} leaves no admissible path for series of "
                f"lengths {n} and {m}; use a larger slope"
            )
    return mask


def valid_cells(n_pad: int, m_pad: int, x_lengths: np.ndarray, y_lengths: np.ndarray,
                constraint: Constraint = Constraint(None, None)) -> np.ndarray:
    """Boolean ``(B, n_pad, m_pad)`` mask of the cells each pair uses (its lengths and band)."""
    batch = len(x_lengths)
    out = np.zeros((batch, n_pad, m_pad), dtype=bool)
    cache: dict[tuple[int, int], np.ndarray] = {}
    for b in range(batch):
        n, m = int(x_lengths[b]), int(y_lengths[b])
        if (n, m) not in cache:
            cache[(n, m)] = band_mask(n, m, constraint)
        out[b, :n, :m] = cache[(n, m)]
    return out


# ---------------------------------------------------------------------------
# Layout: skew a (..., N, M) matrix into anti-diagonals and back (pure, any xp)
# ---------------------------------------------------------------------------


def _full(xp, like, shape, fill):
    """``xp.full`` with the dtype (and, for torch, the device) of ``like``."""
    if xp.__name__ == "torch":
        return xp.full(shape, fill, dtype=like.dtype, device=like.device)
    return xp.full(shape, fill, dtype=like.dtype)


def skew(xp, a, fill):
    """``(..., N, M) -> (..., N, N + M - 1)`` with ``out[..., i, k] = a[..., i, k - i]``.

    Entries with ``k - i`` outside ``[0, M)`` are ``fill``. Pure: pad, flatten, reshape.
    """
    *lead, n, m = a.shape
    width = n + m
    padded = xp.concatenate([a, _full(xp, a, (*lead, n, n), fill)], axis=-1)  # (..., n, n + m)
    flat = xp.reshape(padded, (*lead, n * width))[..., : n * (width - 1)]
    return xp.reshape(flat, (*lead, n, width - 1))


def unskew(xp, s, m):
    """Inverse of :func:`skew`: ``(..., N, N + M - 1) -> (..., N, M)``, ``out[..., i, j] = s[..., i, i + j]``."""
    *lead, n, w = s.shape
    flat = xp.concatenate([xp.reshape(s, (*lead, n * w)), _full(xp, s, (*lead, n), 0)], axis=-1)  # n * (w + 1)
    return xp.reshape(flat, (*lead, n, w + 1))[..., :m]


def cost_diagonals(xp, cost, valid=None):
    """Skewed cost with the cells outside ``valid`` set to ``+inf``.

    Returns ``(N + M - 1, ..., N)``: entry ``k0`` is the cost along DP diagonal ``k0 + 2``
    (``c_k`` of the module docstring), indexed by row ``i0 = i - 1``.
    """
    if valid is not None:
        cost = xp.where(valid, cost, math.inf)
    s = skew(xp, cost, math.inf)  # (..., N, K)
    return xp.moveaxis(s, -1, 0)


def boundary_diagonals(xp, like_diag):
    """The DP diagonals ``d_0`` (``R[0,0] = 0``, rest +inf) and ``d_1`` (all +inf).

    ``like_diag`` is any array of shape ``(..., N + 1)`` giving shape, dtype and device.
    """
    inf = xp.full_like(like_diag, math.inf)
    d0 = xp.concatenate([xp.zeros_like(like_diag[..., :1]), inf[..., 1:]], axis=-1)
    return d0, inf


# ---------------------------------------------------------------------------
# The recursion: pure step functions
# ---------------------------------------------------------------------------


def _safe_min3(xp, a, b, c):
    """``(m, finite, m_raw)``: the minimum, 0 where it is not finite, and the raw minimum."""
    m_raw = xp.minimum(xp.minimum(a, b), c)
    finite = xp.isfinite(m_raw)
    return xp.where(finite, m_raw, xp.zeros_like(m_raw)), finite, m_raw


def _shifted_exp(xp, a, m, scale):
    """``exp((a - m) * scale)`` (``scale = -1 / gamma``), exactly 0 where ``a`` is +inf with no
    inf in between, so that derivatives of any order (e.g. in a traced gamma) see no ``0 * inf``;
    NaN stays NaN. (A multiplication by ``-1 / gamma``, not a division: the backends' vector
    division is several times slower.)"""
    inf = a == math.inf
    z = xp.where(inf, xp.zeros_like(a), a - m)
    return xp.where(inf, xp.zeros_like(a), xp.exp(z * scale))


def _shifted_exps(xp, a, b, c, gamma):
    """``(m, finite, m_raw, (e_a, e_b, e_c))``: :func:`_safe_min3` and the three exponentials
    ``exp(-(v - m) / gamma)`` (:func:`_shifted_exp`) that the softmin and its weights share."""
    m, finite, m_raw = _safe_min3(xp, a, b, c)
    scale = -1 / gamma
    return m, finite, m_raw, tuple(_shifted_exp(xp, v, m, scale) for v in (a, b, c))


def softmin(xp, a, b, c, gamma):
    """``-gamma log(exp(-a/gamma) + exp(-b/gamma) + exp(-c/gamma))`` with the minimum factored out.

    ``+inf`` when all three are ``+inf``, NaN when any is NaN; never overflows.
    """
    m, finite, m_raw, (ea, eb, ec) = _shifted_exps(xp, a, b, c, gamma)
    s = xp.where(finite, ea + eb + ec, xp.ones_like(ea))  # s >= 1 where finite
    return xp.where(finite, m - gamma * xp.log(s), m_raw)  # +inf stays +inf, NaN stays NaN


def softmin_weights(xp, a, b, c, gamma):
    """Normalized softmin weights ``(w_a, w_b, w_c)`` (each in [0, 1], summing to 1 up to rounding).

    All zero where the three inputs are ``+inf`` (an unreachable cell).
    """
    _, finite, _, (ea, eb, ec) = _shifted_exps(xp, a, b, c, gamma)
    inv = 1 / xp.where(finite, ea + eb + ec, xp.ones_like(ea))
    return ea * inv, eb * inv, ec * inv


def neg_entropy(xp, wa, wb, wc):
    """``sum_p w_p log w_p``: the derivative of a cell's softmin with respect to gamma."""

    def term(w):
        pos = w > 0
        return xp.where(pos, w * xp.log(xp.where(pos, w, xp.ones_like(w))), xp.zeros_like(w))

    return term(wa) + term(wb) + term(wc)


def _with_boundary(xp, tail, fill):
    """Prepend the boundary entry (index 0) to a ``(..., N)`` diagonal."""
    head = xp.full_like(tail[..., :1], fill)
    return xp.concatenate([head, tail], axis=-1)


def forward_step(xp, d2, d1, c, gamma):
    """One anti-diagonal of the forward recursion.

    ``d2``, ``d1``: DP diagonals ``k-2`` and ``k-1``, shape ``(..., N + 1)``;
    ``c``: the cost along diagonal ``k``, shape ``(..., N)`` (+inf at invalid cells).
    Returns ``d_k``, shape ``(..., N + 1)``.
    """
    tail = c + softmin(xp, d2[..., :-1], d1[..., :-1], d1[..., 1:], gamma)
    return _with_boundary(xp, tail, math.inf)


def diagonal_weights(xp, d2, d1, gamma):
    """Softmin weights of the cells of DP diagonal ``k`` from its predecessors ``d2``, ``d1``.

    Returns ``(w_diag, w_up, w_left)``, each of shape ``(..., N + 1)`` with 0 at index 0.
    """
    wd, wu, wl = softmin_weights(xp, d2[..., :-1], d1[..., :-1], d1[..., 1:], gamma)
    return tuple(_with_boundary(xp, w, 0.0) for w in (wd, wu, wl))


def backward_step(xp, e1, e2, w1, w2, seed):
    """One anti-diagonal of the backward recursion (pull form).

    ``e1``, ``e2``: the alignment on diagonals ``k+1`` and ``k+2``; ``w1``, ``w2``: the weight
    triples (:func:`diagonal_weights`) of diagonals ``k+1`` and ``k+2``; ``seed``: 1 at the
    terminal cell of each pair when it lies on diagonal ``k``, else 0. All ``(..., N + 1)``.

        e_k[i] = w2_diag[i+1] e2[i+1] + w1_up[i+1] e1[i+1] + w1_left[i] e1[i] + seed[i]
    """
    from_below = w2[0][..., 1:] * e2[..., 1:] + w1[1][..., 1:] * e1[..., 1:]
    zero = xp.zeros_like(e1[..., :1])
    shifted = xp.concatenate([from_below, zero], axis=-1)
    return shifted + w1[2] * e1 + seed


def backward_push(xp, e, w, pending):
    """The backward recursion of :func:`backward_step`, regrouped to push each diagonal's
    alignment to its predecessors (the same sums, added in another order).

    Works on the cells of a diagonal without the boundary entry: ``e`` (the alignment of
    diagonal ``k``, shape ``(..., L)``, index ``t`` = row ``t + 1``) and ``w`` (its weight triple,
    :func:`softmin_weights` of its predecessors). Pushes are indexed by the sending row, one
    more than ``e`` (a row just below the cells, whose pushes may still be pending):
    ``pending`` ``(..., L + 1)`` is ``w_diag * e`` of diagonal ``k + 1`` (for diagonal ``k - 1``).
    Returns ``(up, left, pending')``: what diagonal ``k - 1`` receives from diagonals ``k`` and
    ``k + 1``, ``up`` ``(..., L + 1)`` by sending row (row ``t + 1`` sends ``up[t + 1]`` to row
    ``t``, :func:`backward_receive`) and ``left`` ``(..., L)`` by receiving row; and
    ``w_diag * e`` of diagonal ``k`` ``(..., L + 1)`` (for diagonal ``k - 2``).
    """
    wd, wu, wl = w
    up = xp.concatenate([wu * e + pending[..., :-1], pending[..., -1:]], axis=-1)
    return up, wl * e, xp.concatenate([wd * e, xp.zeros_like(e[..., :1])], axis=-1)


def backward_receive(xp, up, left):
    """What a diagonal receives (:func:`backward_push`), by receiving row: its alignment before
    the terminal seed, ``e_{k-1}[t] = up[t + 1] + left[t]``."""
    return up[..., 1:] + left


def band_bounds(n_pad: int, m_pad: int, x_lengths: np.ndarray, y_lengths: np.ndarray,
                constraint: Constraint = Constraint(None, None)) -> tuple[np.ndarray, np.ndarray]:
    """Per-row column bounds ``lo, hi`` (int32, shape ``(B, n_pad)``) of the cells each pair uses.

    Row ``i`` of pair ``b`` uses the columns ``lo[b, i] <= j < hi[b, i]``; rows at or beyond
    ``x_lengths[b]`` are empty (``lo == hi == 0``). Every band of this module is contiguous in
    each row, so this is the compact form that kernels take instead of a ``(B, N, M)`` mask;
    it is computed in O(B N) (:func:`row_bounds`), never through the mask.
    """
    batch = len(x_lengths)
    lo = np.zeros((batch, n_pad), np.int32)
    hi = np.zeros((batch, n_pad), np.int32)
    cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    for b in range(batch):
        n, m = int(x_lengths[b]), int(y_lengths[b])
        if (n, m) not in cache:
            cache[(n, m)] = row_bounds(n, m, constraint)
        lo[b, :n], hi[b, :n] = cache[(n, m)]
    return lo, hi
