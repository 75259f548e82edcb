"""Public JAX entry points: validation (at trace time), dtypes, lengths and bands, the cost."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .. import spec
from . import _core

__all__ = [
    "soft_dtw",
    "soft_dtw_alignment",
    "soft_dtw_alignment_from_cost",
    "soft_dtw_from_cost",
    "sqeuclidean_cost",
]

# Above this many features, or for short series, the cost is a matrix product
# (|x|^2 + |y|^2 - 2 x.y) computed once and skewed, not a sum over features formed again on
# every anti-diagonal inside the scan. Measured forward + backward, float32, ns per cell, fused
# against matrix: (64,64,64,8) 37 / 28, (512,32,32,2) 29 / 25, (16,512,512,8) 37 / 36,
# (32,256,256,2) 23 / 38, (8,1024,1024,4) 28 / 39, (1,4096,4096,1) 20 / 34 (2-core CPU).
_FUSED_MAX_FEATURES = 32
_FUSED_MIN_LENGTH = 65  # both series at most 64 long: the matrix
_LOW_PRECISION = (jnp.dtype(jnp.float16), jnp.dtype(jnp.bfloat16))


def _is_tracer(a) -> bool:
    return isinstance(a, jax.core.Tracer)


def _as_array(a, name: str):
    """``a`` as a JAX array after the dtype check of the spec (strings, complex, bool rejected)."""
    dtype = a.dtype if hasattr(a, "dtype") else np.asarray(a).dtype
    kind = "f" if jnp.issubdtype(dtype, jnp.floating) else np.dtype(dtype).kind
    spec.check_dtype_kind(kind, name)
    return jnp.asarray(a)


def _dtypes(*arrays):
    """``(compute dtype, output dtype)``: float16/bfloat16 compute in float32; integers become float."""
    dt = jnp.result_type(*[a.dtype for a in arrays])
    if not jnp.issubdtype(dt, jnp.floating):
        dt = jnp.zeros((), dtype=float).dtype  # the default float: float32, or float64 under x64
    dt = jnp.dtype(dt)
    return (jnp.dtype(jnp.float32) if dt in _LOW_PRECISION else dt), dt


def _gamma(gamma, dtype):
    """A Python float (validated), or for a traced gamma a 0-d array of ``dtype`` (differentiable)."""
    if _is_tracer(gamma):
        if jnp.ndim(gamma) != 0:
            raise ValueError(f"gamma must be a scalar, got shape {jnp.shape(gamma)}")
        if not (jnp.issubdtype(gamma.dtype, jnp.floating) or jnp.issubdtype(gamma.dtype, jnp.integer)):
            raise TypeError(f"gamma must be a real number, got dtype {gamma.dtype}")
        return jnp.asarray(gamma, dtype)  # traced values cannot be checked: gamma > 0 is the caller's
    if isinstance(gamma, jax.Array):
        gamma = np.asarray(gamma)
    return spec.check_gamma(gamma)


class _Lengths:
    """Per-pair lengths, concrete (NumPy, validated) or traced (JAX, shape and dtype checked).

    Traced lengths out of ``[1, size]`` cannot raise: they are clamped into it (so that the
    pair is well formed) and flagged in ``bad`` (``(B,)``, None for concrete lengths), which
    makes the pair's value NaN.
    """

    def __init__(self, lengths, batch: int, size: int, name: str, batched: bool):
        self.size, self.value, self.traced, self.bad = size, None, False, None
        if lengths is None:
            return
        if not batched:
            if np.shape(lengths) not in ((), (1,)):
                raise ValueError(f"{name} must have shape () or (1,) for one pair, got {np.shape(lengths)}")
            lengths = jnp.reshape(lengths, (1,)) if _is_tracer(lengths) else np.reshape(lengths, (1,))
        if _is_tracer(lengths):
            if not jnp.issubdtype(lengths.dtype, jnp.integer):
                raise TypeError(f"{name} must hold integers, got dtype {lengths.dtype}")
            if lengths.shape != (batch,):
                raise ValueError(f"{name} must have shape ({batch},), got {lengths.shape}")
            self.bad = (lengths < 1) | (lengths > size)
            self.value, self.traced = jnp.clip(lengths, 1, size).astype(jnp.int32), True
            return
        arr = spec.check_lengths(np.asarray(lengths), batch, size, name)
        self.value = None if np.all(arr == size) else arr

    def full(self, batch: int) -> np.ndarray:
        return np.full(batch, self.size, np.int64) if self.value is None else self.value

    def jnp(self, batch: int):
        return jnp.asarray(self.full(batch) if not self.traced else self.value, jnp.int32)

    def zero_padding(self, a):
        """``a`` ``(B, size, D)`` with the steps beyond the lengths set to 0 (gradient 0 there)."""
        if self.value is None:
            return a
        steps = (jnp if self.traced else np).arange(self.size)
        return jnp.where((steps[None, :] < self.value[:, None])[:, :, None], a, jnp.zeros_like(a))


def _flags(bad, *lengths: _Lengths):
    """``bad`` (``(B,)`` or None) or'ed with the flags of traced lengths out of range."""
    for lens in lengths:
        if lens.bad is not None:
            bad = lens.bad if bad is None else bad | lens.bad
    return bad


def _terminal(xl: _Lengths, yl: _Lengths, batch: int):
    """``(kt, it)`` of :mod:`._core`, or ``(None, None)`` for full-size pairs."""
    if xl.value is None and yl.value is None:
        return None, None
    a, b = xl.jnp(batch), yl.jnp(batch)
    return a + b, a


def _traced_band_error():
    return NotImplementedError(
        "band constraints with traced x_lengths/y_lengths are not supported: pass the lengths as "
        "concrete (NumPy) arrays, e.g. as static arguments of jax.jit"
    )


def _bounds(n: int, m: int, batch: int, xl: _Lengths, yl: _Lengths, constraint):
    """Per-row column bounds ``lo, hi`` (int32, ``(B, n)``) of the cells each pair uses."""
    if not (xl.traced or yl.traced):
        lo, hi = spec.band_bounds(n, m, xl.full(batch), yl.full(batch), constraint)
        return jnp.asarray(lo), jnp.asarray(hi)
    if constraint.kind is not None:
        raise _traced_band_error()
    rows = jnp.arange(n, dtype=jnp.int32)[None, :]
    hi = jnp.where(rows < xl.jnp(batch)[:, None], yl.jnp(batch)[:, None], 0).astype(jnp.int32)
    return jnp.zeros_like(hi), hi


def _valid(n: int, m: int, batch: int, xl: _Lengths, yl: _Lengths, constraint):
    """The ``(B, n, m)`` mask of used cells (NumPy when static), or None when every cell is used."""
    if not (xl.traced or yl.traced):
        if constraint.kind is None and xl.value is None and yl.value is None:
            return None
        return spec.valid_cells(n, m, xl.full(batch), yl.full(batch), constraint)
    if constraint.kind is not None:
        raise _traced_band_error()
    i = jnp.arange(n)[None, :, None]
    j = jnp.arange(m)[None, None, :]
    return (i < xl.jnp(batch)[:, None, None]) & (j < yl.jnp(batch)[:, None, None])


def sqeuclidean_cost(x, y):
    r"""Squared Euclidean cost between the time steps of two series (or batches), in JAX.

    .. math::

        C_{ij} = \lVert x_i - y_j \rVert^2 = \sum_d (x_{id} - y_{jd})^2

    with no factor 1/2 (tslearn's convention).

    Never forms a ``(..., N, M, D)`` array: the sum over features is written out (up to 32
    features), else :math:`\lVert x_i \rVert^2 + \lVert y_j \rVert^2 - 2 x_i \cdot y_j` after
    centring each pair on the mean of its time steps (which keeps float32 accurate far from the
    origin), clamped at 0.

    Parameters
    ----------
    x : jax.Array, shape (..., N, D)
    y : jax.Array, shape (..., M, D)
        Floating arrays with the same leading dimensions.

    Returns
    -------
    jax.Array, shape (..., N, M)
        In the promoted dtype of ``x`` and ``y``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> sqeuclidean_cost(jnp.zeros((2, 1)), jnp.ones((3, 1))).tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """
    return _sqeuclidean(x, y, x.shape[-2], y.shape[-2])


def _sqeuclidean(x, y, nx, ny):
    """:func:`sqeuclidean_cost` of series whose steps beyond ``nx`` and ``ny`` (ints, or arrays
    ``(B,)`` for a batch) are 0: the matrix product form centres each pair on the mean of its
    used steps of ``x`` and ``y`` together (the cancellation of ``|x|^2 + |y|^2 - 2 x.y`` grows
    with ``|x|^2``: 33% error in float32 at 1e4 from the origin without it). The mean is a
    constant shift (the cost does not change), so no gradient goes through it; its non-finite
    entries are left out of it (they make their own rows and columns non-finite only)."""
    if x.shape[-1] <= _FUSED_MAX_FEATURES:
        out = None
        for d in range(x.shape[-1]):
            t = x[..., :, None, d] - y[..., None, :, d]
            out = t * t if out is None else out + t * t
        return out

    def total(a):
        return jnp.sum(jnp.where(jnp.isfinite(a), a, jnp.zeros_like(a)), axis=-2)

    count = jnp.asarray(nx + ny, x.dtype)[..., None]
    mu = lax.stop_gradient((total(x) + total(y)) / count)[..., None, :]
    x, y = x - mu, y - mu
    xx = jnp.sum(x * x, axis=-1)[..., :, None]
    yy = jnp.sum(y * y, axis=-1)[..., None, :]
    xy = jnp.einsum("...nd,...md->...nm", x, y)
    return jnp.maximum(xx + yy - 2 * xy, 0)


def _values_from_cost(cost, gamma, constraint, xl: _Lengths, yl: _Lengths, bad=None, targets=()):
    """Values ``(B,)`` of a batch of cost matrices ``(B, N, M)`` (compute dtype); ``bad`` and
    ``targets`` as :func:`softdtw.jax._core.sdtw_diagonals` (NaN and ``-inf`` in a used cell
    flag their pair there; the cells not used are +inf, whatever ``cost`` holds)."""
    batch, n, m = cost.shape
    valid = _valid(n, m, batch, xl, yl, constraint)
    kt, it = _terminal(xl, yl, batch)
    cdiag = spec.cost_diagonals(jnp, cost, valid)
    return _core.sdtw_diagonals(cdiag, gamma, kt, it, _flags(bad, xl, yl), targets)


def _values_sqeuclidean(x, y, gamma, constraint, xl: _Lengths, yl: _Lengths, bad=None, targets=()):
    """Values ``(B,)`` of the default cost of finite series, formed inside the scan."""
    batch, n, d = x.shape
    m = y.shape[1]
    if d > _FUSED_MAX_FEATURES or max(n, m) < _FUSED_MIN_LENGTH:
        cost = _sqeuclidean(x, y, xl.jnp(batch), yl.jnp(batch))
        return _values_from_cost(cost, gamma, constraint, xl, yl, bad, targets)
    if n > m and constraint.kind is None:
        # the value is symmetric: run along the shorter series (diagonals of length min + 1)
        x, y, xl, yl, n, m = y, x, yl, xl, m, n
    lo, hi = _bounds(n, m, batch, xl, yl, constraint)
    kt, it = _terminal(xl, yl, batch)
    return _core.sdtw_sqeuclidean(x, y, gamma, lo, hi, kt, it, _flags(bad, xl, yl), targets)


def _finite_pairs(x, y):
    """``(x, y, bad)``: ``bad`` flags the pairs with a non-finite entry (``(B,)``), whose series
    are replaced by zeros (their value is NaN, :mod:`softdtw.jax._core`)."""
    bad = ~(jnp.all(jnp.isfinite(x), axis=(1, 2)) & jnp.all(jnp.isfinite(y), axis=(1, 2)))
    keep = ~bad[:, None, None]
    return jnp.where(keep, x, jnp.zeros_like(x)), jnp.where(keep, y, jnp.zeros_like(y)), bad


def _series_values(x, y, gamma, constraint, xl: _Lengths, yl: _Lengths, dist_func, dtype):
    """Values ``(B,)`` of the pairs of ``x`` and ``y`` (their padding zeroed): a non-finite
    series makes its pair NaN, with the cotangents of ``x`` and ``y`` the rule gives."""
    xf, yf, bad = _finite_pairs(x, y)
    if dist_func is None:
        return _values_sqeuclidean(xf, yf, gamma, constraint, xl, yl, bad, (x, y))
    cost = _pair_cost(xf, yf, dist_func, dtype, xl, yl)
    return _values_from_cost(cost, gamma, constraint, xl, yl, bad, (x, y))


def _pair_cost(x, y, dist_func, dtype, xl: _Lengths, yl: _Lengths):
    if dist_func is None:
        return _sqeuclidean(x, y, xl.jnp(x.shape[0]), yl.jnp(x.shape[0]))
    cost = dist_func(x, y)
    expected = (x.shape[0], x.shape[1], y.shape[1])
    if jnp.shape(cost) != expected:
        raise ValueError(f"dist_func must return an array of shape {expected}, got {jnp.shape(cost)}")
    return _as_array(cost, "dist_func's result").astype(dtype)


def _prepare_pair(x, y, gamma, kw):
    x = _as_array(x, "x")
    y = _as_array(y, "y")
    batched = spec.check_pair_shapes(x.shape, y.shape)
    dtype, out_dtype = _dtypes(x, y)
    x, y = x.astype(dtype), y.astype(dtype)
    if not batched:
        x, y = x[None], y[None]
    batch, n, m = x.shape[0], x.shape[1], y.shape[1]
    p = _problem(batch, n, m, batched, gamma, dtype, out_dtype, **kw)
    # padding is never read: zeros from here on (and a gradient of 0 there)
    return p["xl"].zero_padding(x), p["yl"].zero_padding(y), p


def _problem(batch, n, m, batched, gamma, dtype, out_dtype, global_constraint=None, sakoe_chiba_radius=None,
             itakura_max_slope=None, x_lengths=None, y_lengths=None, normalize=False):
    gamma = _gamma(gamma, dtype)
    if isinstance(gamma, float):  # (a divergence also runs x with x and y with y)
        spec.check_gamma_for(gamma, dtype, *((max(n, m),) * 2 if normalize else (n, m)))
    constraint = spec.check_constraint(global_constraint, sakoe_chiba_radius, itakura_max_slope)
    xl = _Lengths(x_lengths, batch, n, "x_lengths", batched)
    yl = _Lengths(y_lengths, batch, m, "y_lengths", batched)
    if constraint.kind is not None and not (xl.traced or yl.traced):
        # an infeasible band raises here, at trace time (as the NumPy reference does)
        spec.valid_cells(n, m, xl.full(batch), yl.full(batch), constraint)
    return dict(batched=batched, gamma=gamma, constraint=constraint, xl=xl, yl=yl, dtype=dtype,
                out_dtype=out_dtype)


def _finish(p, a):
    a = a.astype(p["out_dtype"])
    return a if p["batched"] else a[0]


def soft_dtw(x, y, gamma=1.0, *, normalize: bool = False, dist_func: Callable | None = None,
             global_constraint=None, sakoe_chiba_radius=None, itakura_max_slope=None,
             x_lengths=None, y_lengths=None):
    r"""Soft-DTW between (batches of) time series, or its divergence, in JAX.

    .. math::

        \mathrm{sdtw}_\gamma(x, y) = \min_{A \in \mathcal{A}_{N,M}}{}^{\gamma} \langle A, C(x, y) \rangle,
        \qquad \min{}^\gamma(a_1, \dots, a_n) = -\gamma \log \sum_i e^{-a_i / \gamma}

    where :math:`\mathcal{A}_{N,M}` holds the monotone alignment paths from (1, 1) to (N, M)
    and :math:`C(x, y)_{ij} = \lVert x_i - y_j \rVert^2` by default. With ``normalize=True`` it
    returns the divergence :math:`\mathrm{sdtw}(x, y) - \tfrac12 (\mathrm{sdtw}(x, x) + \mathrm{sdtw}(y, y))`.

    Differentiable (reverse mode, any order) with respect to ``x``, ``y`` and a traced ``gamma``;
    composes with ``jax.jit``, ``jax.vmap``, ``jax.grad``. Forward mode (``jax.jvp``) is not
    supported. Invalid arguments raise at trace time, as in :mod:`softdtw.numpy`; a traced
    ``gamma`` cannot be checked (it must be > 0).

    Parameters
    ----------
    x : array_like, shape (B, N, D) or (N, D)
    y : array_like, shape (B, M, D) or (M, D)
    gamma : float > 0, or a 0-d JAX array
        Smoothing; smaller is closer to DTW. A number the compute dtype cannot use (e.g. 1e-39
        in float32, :func:`softdtw.spec.check_gamma_for`) raises ValueError.
    normalize : bool
        Return the soft-DTW divergence (>= 0, exactly 0 when x == y).
    dist_func : callable, optional
        A JAX function ``dist_func(x, y)`` of (B, N, D), (B, M, D) returning (B, N, M),
        differentiated by JAX. Default: squared Euclidean, formed one anti-diagonal at a time.
    global_constraint, sakoe_chiba_radius, itakura_max_slope
        Band constraint, as in tslearn 0.10 (see :func:`softdtw.spec.check_constraint`).
    x_lengths, y_lengths : array_like of int, shape (B,), optional
        Per-pair lengths of padded batches: pair b uses ``x[b, :x_lengths[b]]``. The padding is
        never read (it may hold anything, NaN included) and gets gradient 0. Concrete lengths
        outside ``[1, padded length]`` raise ValueError; traced lengths (under ``jax.jit``)
        cannot be checked: a pair with one out of range gets the value NaN (and NaN gradients when
        its weight in the loss is non-zero). Traced lengths take no band constraint.

    Returns
    -------
    jax.Array of shape (B,), or 0-d for one pair; the dtype of the inputs (float16 and bfloat16
    inputs are computed in float32; integer inputs give the default float dtype). A NaN or
    ``inf`` in the used part of a pair's series makes its value NaN, and no other pair's; its
    gradients are NaN at its used positions when its weight in the loss is non-zero, and 0 when
    it is 0 (docs/algorithm.md, "Padding and non-finite inputs").

    Examples
    --------
    >>> import numpy as np
    >>> x = np.zeros((4, 3, 2)); y = np.arange(24.0).reshape(4, 3, 2)
    >>> np.asarray(soft_dtw(x, y, gamma=0.1)).round(2).tolist()
    [55.0, 451.0, 1279.0, 2539.0]

    References
    ----------
    M. Cuturi and M. Blondel, "Soft-DTW: a Differentiable Loss Function for Time-Series", ICML 2017.
    M. Blondel, A. Mensch and J.-P. Vert, "Differentiable Divergences Between Time Series", AISTATS 2021.
    """
    kw = dict(global_constraint=global_constraint, sakoe_chiba_radius=sakoe_chiba_radius,
              itakura_max_slope=itakura_max_slope, x_lengths=x_lengths, y_lengths=y_lengths, normalize=normalize)
    x, y, p = _prepare_pair(x, y, gamma, kw)
    g, c, xl, yl = p["gamma"], p["constraint"], p["xl"], p["yl"]

    def run(a, b, la, lb):
        return _series_values(a, b, g, c, la, lb, dist_func, p["dtype"])

    if not normalize:
        return _finish(p, run(x, y, xl, yl))
    batch = x.shape[0]
    if x.shape[1] == y.shape[1] and not (xl.traced or yl.traced):
        # one scan over the three terms stacked along the batch
        lx, ly = xl.full(batch), yl.full(batch)
        both = _Lengths(None, 3 * batch, x.shape[1], "", True)
        if xl.value is not None or yl.value is not None:
            both = _Lengths(np.concatenate([lx, lx, ly]), 3 * batch, x.shape[1], "x_lengths", True)
            both_y = _Lengths(np.concatenate([ly, lx, ly]), 3 * batch, y.shape[1], "y_lengths", True)
        else:
            both_y = both
        v = run(jnp.concatenate([x, x, y]), jnp.concatenate([y, x, y]), both, both_y)
        vxy, vxx, vyy = v[:batch], v[batch:2 * batch], v[2 * batch:]
    else:
        vxy, vxx, vyy = run(x, y, xl, yl), run(x, x, xl, xl), run(y, y, yl, yl)
    return _finish(p, vxy - (vxx + vyy) / 2)


def _prepare_cost(cost, gamma, kw):
    cost = _as_array(cost, "cost")
    batched = spec.check_cost_shape(cost.shape)
    dtype, out_dtype = _dtypes(cost)
    cost = cost.astype(dtype)
    if not batched:
        cost = cost[None]
    return cost, _problem(cost.shape[0], cost.shape[1], cost.shape[2], batched, gamma, dtype, out_dtype, **kw)


def soft_dtw_from_cost(cost, gamma=1.0, *, global_constraint=None, sakoe_chiba_radius=None,
                       itakura_max_slope=None, x_lengths=None, y_lengths=None):
    r"""Soft-DTW of a cost matrix (or a batch of them), in JAX.

    .. math::

        \mathrm{sdtw}_\gamma(C) = \min_{A \in \mathcal{A}_{N,M}}{}^{\gamma} \langle A, C \rangle
        = -\gamma \log \sum_{A \in \mathcal{A}_{N,M}} e^{-\langle A, C \rangle / \gamma}

    over the monotone alignment paths :math:`\mathcal{A}_{N,M}` from (1, 1) to (N, M),
    computed by :math:`R_{ij} = C_{ij} + \min{}^\gamma(R_{i-1,j-1}, R_{i-1,j}, R_{i,j-1})`.
    Differentiable (reverse mode, any order) with respect to ``cost`` (the gradient is the
    expected alignment, :func:`soft_dtw_alignment_from_cost`) and a traced ``gamma``.

    Parameters
    ----------
    cost : array_like, shape (B, N, M) or (N, M)
    gamma : float > 0, or a 0-d JAX array
    global_constraint : str or None
        ``"sakoe_chiba"`` or ``"itakura"``: the band of allowed cells, as in tslearn 0.10
        (see docs/algorithm.md). Default None: every cell.
    sakoe_chiba_radius : int, optional
        Radius of the Sakoe-Chiba band (default 1; giving it alone selects that band).
    itakura_max_slope : float, optional
        Maximum slope of the Itakura parallelogram (default 2; giving it alone selects that band).
    x_lengths, y_lengths : array_like of int, shape (B,), optional
        Per-matrix lengths of padded batches: matrix ``b`` uses
        ``cost[b, :x_lengths[b], :y_lengths[b]]``; the padded cells are never read (they may
        hold anything) and get gradient 0. Traced lengths out of range give NaN, as in
        :func:`soft_dtw`.

    Returns
    -------
    jax.Array, shape (B,), or 0-d for one matrix
        in the inputs' dtype: float64 (under ``jax_enable_x64``) computes in float64, float32 in
        float32, float16/bfloat16 compute in float32 and return the input dtype, integer inputs
        give the default float dtype. A ``+inf`` cost forbids its cell (a matrix with no path
        left has the value ``+inf`` and gradient 0); a NaN or ``-inf`` in a used cell makes the
        matrix's value NaN, with gradients NaN at its used cells when its weight in the loss is
        non-zero and 0 when it is 0.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> float(soft_dtw_from_cost(jnp.array([[5.0]]), gamma=1.0))
    5.0
    >>> g = jax.grad(lambda c: soft_dtw_from_cost(c, gamma=1.0))(jnp.zeros((2, 2)))
    >>> (3 * g).round().tolist()  # the expected alignment: 3 paths, all through the corners
    [[3.0, 1.0], [1.0, 3.0]]
    """
    kw = dict(global_constraint=global_constraint, sakoe_chiba_radius=sakoe_chiba_radius,
              itakura_max_slope=itakura_max_slope, x_lengths=x_lengths, y_lengths=y_lengths)
    cost, p = _prepare_cost(cost, gamma, kw)
    return _finish(p, _values_from_cost(cost, p["gamma"], p["constraint"], p["xl"], p["yl"]))


def _alignment(cost, p, bad=None):
    value, vjp = jax.vjp(lambda c: _values_from_cost(c, p["gamma"], p["constraint"], p["xl"], p["yl"], bad), cost)
    (align,) = vjp(jnp.ones_like(value))
    return _finish(p, align), _finish(p, value)


def soft_dtw_alignment_from_cost(cost, gamma=1.0, *, global_constraint=None, sakoe_chiba_radius=None,
                                 itakura_max_slope=None, x_lengths=None, y_lengths=None):
    r"""Expected alignment of a cost matrix and the soft-DTW value, in JAX: ``(alignment, value)``.

    .. math::

        E = \frac{\partial\, \mathrm{sdtw}_\gamma(C)}{\partial C} = \sum_{A} p_\gamma(A)\, A,
        \qquad p_\gamma(A) \propto e^{-\langle A, C \rangle / \gamma}

    ``E[b, i, j]`` is the probability that a path drawn from the Gibbs distribution
    :math:`p_\gamma` goes through cell (i, j): in [0, 1], 1 at the first and last cells, 0
    outside a pair's lengths and band.
    The alignment is itself differentiable (reverse mode).

    Parameters
    ----------
    cost : array_like, shape (B, N, M) or (N, M)
    gamma : float > 0, or a 0-d JAX array
    global_constraint : str or None
        ``"sakoe_chiba"`` or ``"itakura"``: the band of allowed cells, as in tslearn 0.10
        (see docs/algorithm.md). Default None: every cell.
    sakoe_chiba_radius : int, optional
        Radius of the Sakoe-Chiba band (default 1; giving it alone selects that band).
    itakura_max_slope : float, optional
        Maximum slope of the Itakura parallelogram (default 2; giving it alone selects that band).
    x_lengths, y_lengths : array_like of int, shape (B,), optional
        Per-matrix lengths of padded batches: matrix ``b`` uses
        ``cost[b, :x_lengths[b], :y_lengths[b]]``; gradients at padded cells are 0.

    Returns
    -------
    alignment : jax.Array, shape (B, N, M) or (N, M)
    value : jax.Array, shape (B,) or 0-d
        Both in the dtype of ``cost`` (see :func:`soft_dtw`).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> a, v = soft_dtw_alignment_from_cost(jnp.array([[0.0, 5.0], [5.0, 0.0]]), gamma=1e-3)
    >>> a.round(3).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    kw = dict(global_constraint=global_constraint, sakoe_chiba_radius=sakoe_chiba_radius,
              itakura_max_slope=itakura_max_slope, x_lengths=x_lengths, y_lengths=y_lengths)
    cost, p = _prepare_cost(cost, gamma, kw)
    return _alignment(cost, p)


def soft_dtw_alignment(x, y, gamma=1.0, *, dist_func: Callable | None = None, global_constraint=None,
                       sakoe_chiba_radius=None, itakura_max_slope=None, x_lengths=None, y_lengths=None):
    r"""Expected alignment between ``x`` and ``y`` and the soft-DTW value (tslearn's order), in JAX.

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
    gamma : float > 0, or a 0-d JAX array
    dist_func : callable, optional
        A JAX function ``dist_func(x, y) -> (B, N, M)``. Default: squared Euclidean.
    global_constraint : str or None
        ``"sakoe_chiba"`` or ``"itakura"``: the band of allowed cells, as in tslearn 0.10
        (see docs/algorithm.md). Default None: every cell.
    sakoe_chiba_radius : int, optional
        Radius of the Sakoe-Chiba band (default 1; giving it alone selects that band).
    itakura_max_slope : float, optional
        Maximum slope of the Itakura parallelogram (default 2; giving it alone selects that band).
    x_lengths, y_lengths : array_like of int, shape (B,), optional
        Per-pair lengths of padded batches: pair ``b`` uses ``x[b, :x_lengths[b]]`` and
        ``y[b, :y_lengths[b]]``; gradients at padded positions are 0.
        May be traced (then without a band constraint).

    Returns
    -------
    alignment : jax.Array, shape (B, N, M) or (N, M)
    value : jax.Array, shape (B,) or 0-d
        Both in the dtype of the inputs (see :func:`soft_dtw`).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> a, v = soft_dtw_alignment(jnp.array([[0.0], [1.0]]), jnp.array([[0.0], [1.0]]), gamma=0.01)
    >>> a.round(3).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    kw = dict(global_constraint=global_constraint, sakoe_chiba_radius=sakoe_chiba_radius,
              itakura_max_slope=itakura_max_slope, x_lengths=x_lengths, y_lengths=y_lengths)
    x, y, p = _prepare_pair(x, y, gamma, kw)
    x, y, bad = _finite_pairs(x, y)
    return _alignment(_pair_cost(x, y, dist_func, p["dtype"], p["xl"], p["yl"]), p, bad)
