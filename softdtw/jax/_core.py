"""The cost -> value map of soft-DTW in JAX: ``lax.scan`` over the spec's step functions.

Two differentiable maps share one forward and one backward scan:

* :func:`sdtw_diagonals`: from the skewed cost ``cdiag`` (:func:`softdtw.spec.cost_diagonals`,
  shape ``(K, B, N)``, ``K = N + M - 1``) to the values ``(B,)``; its cotangent is the expected
  alignment ``E`` in the same skewed layout (any ``dist_func``, and the cost-matrix entry points).
* :func:`sdtw_sqeuclidean`: from the series ``x`` ``(B, N, D)`` and ``y`` ``(B, M, D)`` with the
  squared Euclidean cost formed one anti-diagonal at a time inside the scan (no ``(B, N, M)``
  cost, no transposition of it); its cotangents are ``dV/dx``, ``dV/dy``, accumulated in the
  backward scan from each diagonal of ``E`` when ``D <= 4``, else formed after the scan as two
  batched matrix products with the unskewed ``E`` (see ``_SCAN_MAX_D``).

Each is a ``jax.custom_vjp``:

* forward: a ``lax.scan`` over the anti-diagonals driving :func:`softdtw.spec.forward_step`,
  storing the DP diagonals ``r_0 .. r_{N+M-2}`` (the last two stay in the carry), each relative
  to a per-pair offset (the minimum of the diagonal before it) so that float32 keeps the
  differences the softmin weights are made of however large ``R`` grows;
* backward: a reverse ``lax.scan`` that rebuilds each diagonal's softmin weights from the stored
  ``R`` (:func:`softdtw.spec.softmin_weights`) and pushes the alignment back with
  :func:`softdtw.spec.backward_push`; the cotangent of a traced ``gamma`` is
  ``sum E * neg_entropy(w)`` (:func:`softdtw.spec.neg_entropy`).

The backward is made of JAX operations only, so JAX differentiates it again (reverse over
reverse: Hessian-vector products, ``grad(grad(...))``). Forward mode (``jvp``) is not defined
for a ``custom_vjp`` and raises JAX's own error.

The terminal cell of pair ``b`` is row ``it[b]`` of diagonal ``kt[b]`` (``it = x_lengths``,
``kt = x_lengths + y_lengths``); ``kt = it = None`` means that every pair uses the whole padded
matrix, whose terminal cell is the last entry of the last diagonal.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from .. import spec

__all__ = ["sdtw_diagonals", "sdtw_sqeuclidean"]


class _Source(NamedTuple):
    """Where the cost of each anti-diagonal comes from, and where its alignment goes.

    ``diag(ops, k0)`` returns the cost ``(B, N)`` of skewed diagonal ``k0`` (``+inf`` at the
    cells not used); ``grad_init(ops)`` the initial gradient state; ``grad_step(ops, state, k0, ec)``
    consumes the alignment ``ec`` ``(B, N)`` of diagonal ``k0`` and returns ``(state, ys)``;
    ``grad_finish(ops, state, ys)`` returns the cotangents of ``ops``.
    """

    diag: Callable
    grad_init: Callable
    grad_step: Callable
    grad_finish: Callable


def _take_rows(d, it):
    """``d[b, it[b]]`` for a ``(B, N + 1)`` diagonal."""
    return jnp.take_along_axis(d, it[:, None], axis=1)[:, 0]


def _offset(d):
    """Per pair, the minimum of the diagonal ``d`` (0 where every entry is +inf): a constant offset."""
    mu = jnp.min(d, axis=-1)
    return lax.stop_gradient(jnp.where(jnp.isfinite(mu), mu, jnp.zeros_like(mu)))


def _compensated_add(total, comp, x):
    """Kahan summation: ``total - comp`` is the running sum after adding ``x``."""
    y = x - comp
    t = total + y
    return t, (t - total) - y


def _scan_forward(src: _Source, ops, shape, gamma, kt, it, store: bool):
    """Run the forward recursion; returns ``(value, stored, r_last2)``.

    ``shape = (K, B, N)``. Diagonal ``k`` is kept relative to a per-pair offset,
    ``R[k] = o_k + r_k`` with ``o_k = o_{k-1} + mu_k = min R[k-1]`` and ``mu_k = min r_{k-1}``,
    so the stored values stay small and float32 keeps their differences (the softmin weights)
    accurate however large ``R`` grows. Step ``k`` forms the softmin of
    ``r_{k-2} - mu_{k-1}`` and ``r_{k-1}`` (both relative to ``o_{k-1}``), adds the cost and
    subtracts ``mu_k``. ``stored`` (only when ``store``) is ``(r_{k0}, mu_{k0+1})`` for each step
    ``k0 = k - 2``, of shapes ``(K, B, N + 1)`` and ``(K, B)``; ``r_last2`` is ``r_{N+M-1}``.
    The offsets carry no gradient (``R[k] - o_k`` has the derivatives of ``R[k]``); their running
    sum is compensated.
    """
    k_diags, batch, n, dtype = shape
    like = jnp.zeros((batch, n + 1), dtype)
    d0, d1 = spec.boundary_diagonals(jnp, like)
    zero = jnp.zeros((batch,), dtype)
    full = kt is None

    def body(carry, k0):
        d2, d1, mu1, total, comp, val = carry
        mu = _offset(d1)
        d = spec.forward_step(jnp, d2 - mu1[:, None], d1, src.diag(ops, k0), gamma) - mu[:, None]
        total, comp = _compensated_add(total, comp, mu)
        if not full:
            val = jnp.where(kt == k0 + 2, total + (_take_rows(d, it) - comp), val)
        return (d1, d, mu, total, comp, val), ((d2, mu1) if store else None)

    ks = jnp.arange(k_diags, dtype=jnp.int32)
    (r_last2, r_last, _, total, comp, val), stored = lax.scan(body, (d0, d1, zero, zero, zero, zero), ks)
    if full:
        val = total + (r_last[:, n] - comp)
    return val, stored, r_last2


def _scan_backward(src: _Source, ops, stored, r_last2, gamma, g, kt, it, want_gamma: bool):
    """Reverse scan; returns ``(cotangents of ops, grad_gamma or None)``.

    Works on the cells of each diagonal without its boundary entry, in the push form
    (:func:`softdtw.spec.backward_push`): the carry is what the next diagonal has received so
    far and the diagonal products waiting for the one after it.
    """
    k_diags, batch, n1 = stored[0].shape
    n = n1 - 1
    dtype = stored[0].dtype
    rows = jnp.arange(1, n1, dtype=jnp.int32)
    zeros = jnp.zeros((batch, n), dtype)
    if kt is None:
        kt_ = jnp.full((batch,), k_diags + 1, jnp.int32)
        it_ = jnp.full((batch,), n, jnp.int32)
    else:
        kt_, it_ = kt.astype(jnp.int32), it.astype(jnp.int32)
    seed_vec = jnp.where(rows[None, :] == it_[:, None], g[:, None].astype(dtype), zeros)

    def body(carry, xs):
        into, pending, r_km1, gacc, gstate = carry
        (r_km2, mu1), k0 = xs
        e = into + jnp.where((kt_ == k0 + 2)[:, None], seed_vec, zeros)
        w = spec.softmin_weights(jnp, r_km2[:, :-1] - mu1[:, None], r_km1[:, :-1], r_km1[:, 1:], gamma)
        if want_gamma:
            gacc = gacc + e * spec.neg_entropy(jnp, *w)
        gstate, ys = src.grad_step(ops, gstate, k0, e)
        into, pending = spec.backward_push(jnp, e, w, pending)
        return (into, pending, r_km2, gacc, gstate), ys

    gacc0 = zeros if want_gamma else None
    ks = jnp.arange(k_diags, dtype=jnp.int32)
    init = (zeros, zeros, r_last2, gacc0, src.grad_init(ops))
    carry, ys = lax.scan(body, init, (stored, ks), reverse=True)
    grad_gamma = carry[3].sum() if want_gamma else None
    return src.grad_finish(ops, carry[4], ys), grad_gamma


def _make_vjp(src: _Source):
    """Two ``custom_vjp`` maps ``(ops, gamma, kt, it) -> values`` over ``src``.

    ``constant``: gamma given as a Python float by the caller, passed as a 0-d array (so that one
    compilation serves every gamma) whose cotangent is not formed (it is a constant to the caller);
    ``traced``: gamma a traced 0-d array, with its gradient. Both are jitted, so that calls outside
    ``jax.jit`` (and the transformations of them) reuse one compilation per shape.
    """

    def shape_of(ops):
        return src.diag(ops, None)

    def make(want_gamma: bool):
        @jax.custom_vjp
        def f(ops, gamma, kt, it):
            return _scan_forward(src, ops, shape_of(ops), gamma, kt, it, store=False)[0]

        def fwd(ops, gamma, kt, it):
            val, stored, r_last2 = _scan_forward(src, ops, shape_of(ops), gamma, kt, it, store=True)
            return val, (ops, stored, r_last2, gamma, kt, it)

        def bwd(res, g):
            ops, stored, r_last2, gamma, kt, it = res
            grads, grad_gamma = _scan_backward(src, ops, stored, r_last2, gamma, g, kt, it, want_gamma)
            if want_gamma:
                grad_gamma = grad_gamma.astype(gamma.dtype).reshape(gamma.shape)
            return grads, grad_gamma, None, None

        f.defvjp(fwd, bwd)
        return f

    constant, traced = jax.jit(make(False)), jax.jit(make(True))

    def run(ops, gamma, kt, it):
        if isinstance(gamma, float):
            return constant(ops, jnp.asarray(gamma, shape_of(ops)[-1]), kt, it)
        return traced(ops, gamma, kt, it)

    return run


# ------------------------------------------------------------ source 1: a skewed cost


def _cd_diag(ops, k0):
    (cdiag,) = ops
    if k0 is None:
        return (*cdiag.shape, cdiag.dtype)
    return lax.dynamic_index_in_dim(cdiag, k0, axis=0, keepdims=False)


_run_diagonals = _make_vjp(_Source(
    diag=_cd_diag,
    grad_init=lambda ops: None,
    grad_step=lambda ops, state, k0, ec: (state, ec),
    grad_finish=lambda ops, state, ys: (ys,),
))


def sdtw_diagonals(cdiag, gamma, kt=None, it=None):
    """Soft-DTW values ``(B,)`` of the skewed cost ``cdiag`` ``(K, B, N)``.

    ``gamma`` is a Python float (no gradient is formed for it) or a 0-d JAX array of the
    dtype of ``cdiag`` (differentiable). ``kt``, ``it``: int32 ``(B,)`` terminal diagonal and row
    of each pair, or both None for full-size pairs.
    """
    return _run_diagonals((cdiag,), gamma, kt, it)


# ------------------------------------------------------------ source 2: squared Euclidean of x, y


def _sq_diag(ops, k0):
    # ops: xt (D, B, N), yr (D, B, M + 2N - 2) (y reversed along time, N - 1 zeros either side),
    # lo, hi (B, N) int32: row i0 uses the columns lo <= j0 < hi.
    xt, yr, lo, hi = ops
    d, batch, n = xt.shape
    if k0 is None:
        m = yr.shape[2] - 2 * n + 2
        return (n + m - 1, batch, n, xt.dtype)
    m = yr.shape[2] - 2 * n + 2
    ys = lax.dynamic_slice_in_dim(yr, m + n - 2 - k0, n, axis=2)  # ys[:, :, i0] = y[:, k0 - i0]
    diff = xt - ys
    c = jnp.sum(diff * diff, axis=0)
    j0 = k0 - jnp.arange(n, dtype=jnp.int32)[None, :]
    return jnp.where((j0 >= lo) & (j0 < hi), c, jnp.inf)


# Two ways to form the cotangents of x and y from the alignment E, chosen by D (the number of
# features), measured at the benchmark sizes: accumulating 2 E (x_i - y_j) inside the backward
# scan moves (D, B, N) arrays through memory at every step, which costs more than the alternative
# when D > 4 (13 ns per cell at D = 8); stacking the diagonals of E and forming two batched
# matrix products after the scan costs a fixed 4-7 ns per cell (the skewed diagonals are
# transposed and unskewed), which is more when D <= 4.
_SCAN_MAX_D = 4


def _sq_scan_init(ops):
    xt, yr, _, _ = ops
    return jnp.zeros_like(xt), jnp.zeros_like(yr)


def _sq_scan_step(ops, state, k0, ec):
    xt, yr, _, _ = ops
    gx, gy = state
    n = xt.shape[2]
    m = yr.shape[2] - 2 * n + 2
    start = m + n - 2 - k0
    ys = lax.dynamic_slice_in_dim(yr, start, n, axis=2)
    t = 2 * ec[None] * (xt - ys)
    gx = gx + t
    gy = lax.dynamic_update_slice_in_dim(gy, lax.dynamic_slice_in_dim(gy, start, n, axis=2) - t, start, axis=2)
    return (gx, gy), None


def _sq_scan_finish(ops, state, ys):
    return state[0], state[1], None, None


def _sq_matmul_finish(ops, state, ys):
    # ys: the alignment diagonals (K, B, N), unskewed to E (B, N, M); the cotangents of x and y
    # are 2 (x rowsum(E) - E y) and 2 (y colsum(E) - E^T x)
    xt, yr, _, _ = ops
    n = xt.shape[2]
    m = yr.shape[2] - 2 * n + 2
    e = spec.unskew(jnp, jnp.transpose(ys, (1, 2, 0)), m)
    x = jnp.transpose(xt, (1, 2, 0))
    y = jnp.transpose(yr[:, :, n - 1:n - 1 + m], (1, 2, 0))[:, ::-1]
    gx = 2 * (x * jnp.sum(e, axis=2)[..., None] - jnp.matmul(e, y))
    ex = jnp.swapaxes(jnp.matmul(jnp.swapaxes(x, 1, 2), e), 1, 2)  # E^T x, without transposing E
    gy = 2 * (y * jnp.sum(e, axis=1)[..., None] - ex)
    gxt = jnp.transpose(gx, (2, 0, 1))
    gyr = jnp.pad(jnp.transpose(gy[:, ::-1], (2, 0, 1)), ((0, 0), (0, 0), (n - 1, n - 1)))
    return gxt, gyr, None, None


_run_sq_scan = _make_vjp(_Source(_sq_diag, _sq_scan_init, _sq_scan_step, _sq_scan_finish))
_run_sq_matmul = _make_vjp(_Source(_sq_diag, lambda ops: None, lambda ops, state, k0, ec: (state, ec),
                                   _sq_matmul_finish))


def sdtw_sqeuclidean(x, y, gamma, lo, hi, kt=None, it=None):
    """Soft-DTW values ``(B,)`` of ``x`` ``(B, N, D)``, ``y`` ``(B, M, D)`` (squared Euclidean cost).

    ``lo``, ``hi``: int32 ``(B, N)`` column bounds of each row (:func:`softdtw.spec.band_bounds`).
    Other arguments as :func:`sdtw_diagonals`.
    """
    n = x.shape[1]
    xt = jnp.transpose(x, (2, 0, 1))
    yt = jnp.transpose(y[:, ::-1], (2, 0, 1))
    yr = jnp.pad(yt, ((0, 0), (0, 0), (n - 1, n - 1)))
    run = _run_sq_scan if x.shape[2] <= _SCAN_MAX_D else _run_sq_matmul
    return run((xt, yr, lo, hi), gamma, kt, it)

