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

* forward: ``lax.scan`` over the anti-diagonals driving :func:`softdtw.spec.forward_step`,
  storing the DP diagonals, each relative to a per-pair offset (the minimum of the diagonal
  before it) so that float32 keeps the differences the softmin weights are made of however large
  ``R`` grows;
* backward: a reverse ``lax.scan`` that rebuilds each diagonal's softmin weights from the stored
  ``R`` (:func:`softdtw.spec.softmin_weights`) and pushes the alignment back with
  :func:`softdtw.spec.backward_push`; the cotangent of a traced ``gamma`` is
  ``sum E * neg_entropy(w)`` (:func:`softdtw.spec.neg_entropy`).

From 128 rows on, each scan runs in phases over windows of rows (:func:`_windows`): a diagonal
holds only the rows its cells use, not all ``N + 1``, which cut forward + backward at
(32, 256, 256, 8) from about 36 to 23 ns per cell (float32, 2-core CPU) and costs a few more
scans to compile (forward + backward 0.8 -> 3 s there).

The backward is made of JAX operations only, so JAX differentiates it again (reverse over
reverse: Hessian-vector products, ``grad(grad(...))``). Forward mode (``jvp``) is not defined
for a ``custom_vjp`` and raises JAX's own error.

Non-finite inputs (docs/algorithm.md, "Padding and non-finite inputs"): both maps also take
``bad``, the ``(B,)`` flags of the pairs whose value is NaN (the caller's: a non-finite series,
a length out of range), and ``targets``, arrays with the batch first (the series as given). A
NaN or ``-inf`` in ``cdiag`` flags its pair too (``+inf`` is a forbidden cell) and is replaced
by 0 before the scans (the caller zeroes the series it flags), so that nothing of a flagged pair
reaches another pair (nor the gradient of gamma); its value is NaN, and its cotangents (of
``ops``, the ``targets``, gamma) are NaN where its own cotangent is non-zero and 0 where it is
0. A pair with no admissible path (value ``+inf``) has cotangent 0.

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

    ``diag(ops, k0, r0, w)`` returns the cost ``(B, w)`` of rows ``r0 <= i0 < r0 + w`` of skewed
    diagonal ``k0`` (``+inf`` at the cells not used); ``diag(ops, None)`` the shape ``(K, B, N,
    dtype)``. ``grad_init(ops)`` is the initial gradient state; ``grad_step(ops, state, k0, ec,
    r0)`` consumes the alignment ``ec`` ``(B, w)`` of those rows and returns ``(state, ys)``;
    ``grad_finish(ops, state, ys)`` returns the cotangents of ``ops``, where ``ys`` lists the
    stacked ``ys`` of each window in order with its ``r0`` (:func:`_assemble` puts them together).
    ``clean(ops)`` returns ``ops`` with the entries that make a pair's value NaN replaced by 0
    and the ``(B,)`` flags of those pairs (None when ``ops`` cannot hold such entries).
    """

    diag: Callable
    grad_init: Callable
    grad_step: Callable
    grad_finish: Callable
    clean: Callable = lambda ops: (ops, None)


# Windows. The diagonal k0 of an N x M matrix holds rows max(0, k0 - M + 1) .. min(k0, N - 1)
# only: the skewed (B, N + 1) layout wastes about half of every step when N = M. The scans are
# split at a few diagonals into phases, each over the window of rows its diagonals use (the
# carried diagonals are re-windowed between phases), which cuts the work of the ramp up and the
# ramp down: with 4 cuts in each, 1.25 N^2 entries instead of 2 N^2 (N = M). The step time of
# the XLA CPU scan is proportional to the width (measured: K = 511 steps at width 257 / 129,
# 77 / 37 ms). Each phase is one more scan to compile: below _WINDOW_MIN_ROWS rows, one window.
_WINDOW_CUTS = 4
_WINDOW_MIN_ROWS = 128


def _windows(n: int, m: int):
    """``[(ks, ke, r0, w)]``: diagonals ``ks <= k0 < ke`` use rows ``r0 <= i0 < r0 + w`` only."""
    k_diags = n + m - 1
    q = _WINDOW_CUTS if min(n, m) >= _WINDOW_MIN_ROWS else 1
    s, big = min(n, m), max(n, m)
    marks = set()
    if q > 1:
        marks |= {s - 1, big - 1}
        marks |= {(i * s) // q for i in range(1, q)} | {big - 1 + (i * s) // q for i in range(1, q)}
    marks = sorted(c for c in marks if 0 < c < k_diags)
    out = []
    for ks, ke in zip([0] + marks, marks + [k_diags]):
        r0, r1 = max(0, ks - m + 1), min(ke - 1, n - 1) + 1
        if out and out[-1][2:] == (r0, r1 - r0):
            out[-1] = (out[-1][0], ke, r0, r1 - r0)
        else:
            out.append((ks, ke, r0, r1 - r0))
    return out


def _rewindow(a, r0_old, r0_new, size, fill):
    """``a`` (``(B, L)``, entry ``t`` at position ``r0_old + t``) as ``(B, size)`` from
    ``r0_new``: what falls outside ``a`` is ``fill``, what falls outside the new range is dropped."""
    left = r0_old - r0_new
    a = a[:, -left:] if left < 0 else jnp.pad(a, ((0, 0), (left, 0)), constant_values=fill)
    right = size - a.shape[1]
    return a[:, :size] if right < 0 else jnp.pad(a, ((0, 0), (0, right)), constant_values=fill)


def _assemble(ys, n):
    """The ``(K, B, N)`` skewed alignment from the windows' stacked ``(K_p, B, w)`` parts."""
    return jnp.concatenate([jnp.pad(y, ((0, 0), (0, 0), (r0, n - r0 - y.shape[2]))) for y, r0 in ys], axis=0)


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
    """Run the forward recursion; returns ``(value, stored)``.

    ``shape = (K, B, N)``. Diagonal ``k`` is kept relative to a per-pair offset,
    ``R[k] = o_k + r_k`` with ``o_k = o_{k-1} + mu_k = min R[k-1]`` and ``mu_k = min r_{k-1}``,
    so the stored values stay small and float32 keeps their differences (the softmin weights)
    accurate however large ``R`` grows. Step ``k`` forms the softmin of
    ``r_{k-2} - mu_{k-1}`` and ``r_{k-1}`` (both relative to ``o_{k-1}``), adds the cost and
    subtracts ``mu_k``. The diagonals are held over the rows of the current window
    (:func:`_windows`): entry ``t`` of a ``(B, w + 1)`` diagonal is row ``r0 + t`` of the
    ``(B, N + 1)`` one (entry 0 the boundary row). ``stored`` (only when ``store``) lists per
    window ``((r_{k0}, mu_{k0+1}), r_last2)``: for each step ``k0 = k - 2`` arrays of shapes
    ``(K_p, B, w + 1)`` and ``(K_p, B)``, and the window's second-to-last diagonal (the one its
    backward starts from; the previous window's rows may not hold all of its cells). The offsets
    carry no gradient (``R[k] - o_k`` has the derivatives of ``R[k]``); their running sum is
    compensated.
    """
    k_diags, batch, n, dtype = shape
    like = jnp.zeros((batch, n + 1), dtype)
    d2, d1 = spec.boundary_diagonals(jnp, like)
    zero = jnp.zeros((batch,), dtype)
    carry = (d2, d1, zero, zero, zero, zero)
    full = kt is None
    stored = []
    r_prev = 0
    for ks, ke, r0, w in _windows(n, k_diags - n + 1):
        d2, d1 = (_rewindow(d, r_prev, r0, w + 1, jnp.inf) for d in carry[:2])
        carry = (d2, d1, *carry[2:])
        rows = None if full else jnp.clip(it - r0, 0, w)

        def body(carry, k0, r0=r0, w=w, rows=rows):
            d2, d1, mu1, total, comp, val = carry
            mu = _offset(d1)
            d = spec.forward_step(jnp, d2 - mu1[:, None], d1, src.diag(ops, k0, r0, w), gamma) - mu[:, None]
            total, comp = _compensated_add(total, comp, mu)
            if not full:
                val = jnp.where(kt == k0 + 2, total + (_take_rows(d, rows) - comp), val)
            return (d1, d, mu, total, comp, val), ((d2, mu1) if store else None)

        carry, st = lax.scan(body, carry, jnp.arange(ks, ke, dtype=jnp.int32))
        stored.append((st, carry[0]))  # and r_{ke-2} over this window: the backward starts from it
        r_prev = r0
    r_last = carry[1]
    total, comp, val = carry[3:]
    if full:
        val = total + (r_last[:, n - r_prev] - comp)
    return val, stored


def _scan_backward(src: _Source, ops, shape, stored, gamma, g, kt, it, want_gamma: bool):
    """Reverse scan; returns ``(cotangents of ops, grad_gamma or None)``.

    Works on the cells of each diagonal without its boundary entry, in the push form
    (:func:`softdtw.spec.backward_push`): the carry is what the next diagonal has received so
    far (by sending row, so that a window's first row can still send to the row above it) and
    the diagonal products waiting for the diagonal after it. The windows of the forward are
    taken in reverse; the carry is re-windowed between them (what it drops is 0: no cell outside
    a window's rows is reachable from its diagonals).
    """
    k_diags, batch, n, dtype = shape
    windows = _windows(n, k_diags - n + 1)
    if kt is None:
        kt_ = jnp.full((batch,), k_diags + 1, jnp.int32)
        it_ = jnp.full((batch,), n, jnp.int32)
    else:
        kt_, it_ = kt.astype(jnp.int32), it.astype(jnp.int32)
    w_last = windows[-1][3]
    up, pending = jnp.zeros((batch, w_last + 1), dtype), jnp.zeros((batch, w_last + 1), dtype)
    left = jnp.zeros((batch, w_last), dtype)
    gsum = jnp.zeros((), dtype) if want_gamma else None
    gstate = src.grad_init(ops)
    ys_all = []
    r_prev = windows[-1][2]
    for (ks, ke, r0, w), (st, r_km1) in zip(reversed(windows), reversed(stored)):
        up, pending = (_rewindow(a, r_prev, r0, w + 1, 0.0) for a in (up, pending))
        left = _rewindow(left, r_prev, r0, w, 0.0)
        zeros = jnp.zeros((batch, w), dtype)
        rows = jnp.arange(r0 + 1, r0 + w + 1, dtype=jnp.int32)
        seed_vec = jnp.where(rows[None, :] == it_[:, None], g[:, None].astype(dtype), zeros)

        def body(carry, xs, r0=r0, zeros=zeros, seed_vec=seed_vec):
            up, left, pending, r_km1, gacc, gstate = carry
            (r_km2, mu1), k0 = xs
            e = spec.backward_receive(jnp, up, left) + jnp.where((kt_ == k0 + 2)[:, None], seed_vec, zeros)
            w = spec.softmin_weights(jnp, r_km2[:, :-1] - mu1[:, None], r_km1[:, :-1], r_km1[:, 1:], gamma)
            if want_gamma:
                gacc = gacc + e * spec.neg_entropy(jnp, *w)
            gstate, ys = src.grad_step(ops, gstate, k0, e, r0)
            up, left, pending = spec.backward_push(jnp, e, w, pending)
            return (up, left, pending, r_km2, gacc, gstate), ys

        init = (up, left, pending, r_km1, zeros if want_gamma else None, gstate)
        carry, ys = lax.scan(body, init, (st, jnp.arange(ks, ke, dtype=jnp.int32)), reverse=True)
        up, left, pending, _, gacc, gstate = carry
        if want_gamma:
            gsum = gsum + gacc.sum()
        ys_all.insert(0, (ys, r0))
        r_prev = r0
    return src.grad_finish(ops, gstate, ys_all), gsum


def _poison(a, flags, axis: int):
    """``a`` with NaN across the pairs ``flags`` (``(B,)``, the batch at ``axis`` of ``a``)."""
    shape = [1] * a.ndim
    shape[axis] = flags.shape[0]
    return jnp.where(flags.reshape(shape), jnp.nan, a)


def _make_vjp(src: _Source):
    """Two ``custom_vjp`` maps ``(ops, gamma, kt, it, bad, targets) -> values`` over ``src``.

    ``constant``: gamma given as a Python float by the caller, passed as a 0-d array (so that one
    compilation serves every gamma) whose cotangent is not formed (it is a constant to the caller);
    ``traced``: gamma a traced 0-d array, with its gradient. Both are jitted, so that calls outside
    ``jax.jit`` (and the transformations of them) reuse one compilation per shape.
    """

    def shape_of(ops):
        return src.diag(ops, None)

    def forward(ops, gamma, kt, it, bad, store: bool):
        """``(values, stored, clean ops, bad)``: the flagged pairs run on zeros, their value is NaN."""
        ops, bad_ops = src.clean(ops)
        bad = bad_ops if bad is None else (bad if bad_ops is None else bad | bad_ops)
        val, stored = _scan_forward(src, ops, shape_of(ops), gamma, kt, it, store=store)
        return (val if bad is None else jnp.where(bad, jnp.nan, val)), stored, ops, bad

    def make(want_gamma: bool):
        @jax.custom_vjp
        def f(ops, gamma, kt, it, bad, targets):
            return forward(ops, gamma, kt, it, bad, store=False)[0]

        def fwd(ops, gamma, kt, it, bad, targets):
            val, stored, ops, bad = forward(ops, gamma, kt, it, bad, store=True)
            return val, (ops, stored, gamma, kt, it, val, bad, targets)

        def bwd(res, g):
            ops, stored, gamma, kt, it, val, bad, targets = res
            # a pair with no admissible path (+inf) sends nothing back; the flagged pairs' cotangents
            # are replaced below
            live = jnp.where(val == jnp.inf, jnp.zeros_like(g), g)
            grads, grad_gamma = _scan_backward(src, ops, shape_of(ops), stored, gamma, live, kt, it, want_gamma)
            to_targets = tuple(jnp.zeros_like(t) for t in targets)
            if bad is not None:  # the flagged pairs with a non-zero cotangent get NaN
                nan = bad & (g != 0)
                grads = tuple(None if a is None else _poison(a, nan, 1) for a in grads)
                to_targets = tuple(_poison(t, nan, 0) for t in to_targets)
                if want_gamma:
                    grad_gamma = jnp.where(jnp.any(nan), jnp.nan, grad_gamma)
            if want_gamma:
                grad_gamma = grad_gamma.astype(gamma.dtype).reshape(gamma.shape)
            return grads, grad_gamma, None, None, None, to_targets

        f.defvjp(fwd, bwd)
        return f

    constant, traced = jax.jit(make(False)), jax.jit(make(True))

    def run(ops, gamma, kt, it, bad, targets):
        if isinstance(gamma, float):
            return constant(ops, jnp.asarray(gamma, shape_of(ops)[-1]), kt, it, bad, targets)
        return traced(ops, gamma, kt, it, bad, targets)

    return run


# ------------------------------------------------------------ source 1: a skewed cost


def _cd_diag(ops, k0, r0=0, w=None):
    (cdiag,) = ops
    if k0 is None:
        return (*cdiag.shape, cdiag.dtype)
    return lax.dynamic_index_in_dim(cdiag, k0, axis=0, keepdims=False)[:, r0:r0 + w]


def _cd_clean(ops):
    # +inf is a forbidden cell (cells outside a pair's lengths and band are +inf already);
    # NaN and -inf make the pair's value NaN
    (cdiag,) = ops
    bad = jnp.isnan(cdiag) | (cdiag == -jnp.inf)
    return (jnp.where(bad, jnp.zeros_like(cdiag), cdiag),), jnp.any(bad, axis=(0, 2))


def _stack_step(ops, state, k0, ec, r0):
    """A ``grad_step`` that only stacks the alignment's diagonals (for ``grad_finish``)."""
    return state, ec


_run_diagonals = _make_vjp(_Source(
    diag=_cd_diag,
    grad_init=lambda ops: None,
    grad_step=_stack_step,
    grad_finish=lambda ops, state, ys: (_assemble(ys, ops[0].shape[2]),),
    clean=_cd_clean,
))


def sdtw_diagonals(cdiag, gamma, kt=None, it=None, bad=None, targets=()):
    """Soft-DTW values ``(B,)`` of the skewed cost ``cdiag`` ``(K, B, N)``.

    ``gamma`` is a Python float (no gradient is formed for it) or a 0-d JAX array of the
    dtype of ``cdiag`` (differentiable). ``kt``, ``it``: int32 ``(B,)`` terminal diagonal and row
    of each pair, or both None for full-size pairs. ``bad``: bool ``(B,)`` pairs whose value is
    NaN whatever their cost (or None); a NaN or ``-inf`` in ``cdiag`` flags its pair too.
    ``targets``: arrays ``(B, ...)`` whose cotangent is NaN across the flagged pairs with a
    non-zero cotangent and 0 elsewhere (module docstring).
    """
    return _run_diagonals((cdiag,), gamma, kt, it, bad, targets)


# ------------------------------------------------------------ source 2: squared Euclidean of x, y


def _sq_m(xt, yr):
    """M, the length of y, from the padded reversed ``yr`` (``M + 2N - 2`` long)."""
    return yr.shape[2] - 2 * xt.shape[2] + 2


def _partners(xt, yr, k0, r0, w):
    """``(start, ys)``: ``ys = yr[:, :, start:start + w]``, ``ys[:, :, t] = y[:, k0 - r0 - t]``,
    the partners of rows ``r0 .. r0 + w - 1`` on diagonal ``k0``."""
    start = _sq_m(xt, yr) + xt.shape[2] - 2 - k0 + r0
    return start, lax.dynamic_slice_in_dim(yr, start, w, axis=2)


def _sq_diag(ops, k0, r0=0, w=None):
    # ops: xt (D, B, N), yr (D, B, M + 2N - 2) (y reversed along time, N - 1 zeros either side),
    # lo, hi (B, N) int32: row i0 uses the columns lo <= j0 < hi.
    xt, yr, lo, hi = ops
    d, batch, n = xt.shape
    if k0 is None:
        return (n + _sq_m(xt, yr) - 1, batch, n, xt.dtype)
    _, ys = _partners(xt, yr, k0, r0, w)
    diff = xt[:, :, r0:r0 + w] - ys
    c = jnp.sum(diff * diff, axis=0)
    j0 = k0 - jnp.arange(r0, r0 + w, dtype=jnp.int32)[None, :]
    return jnp.where((j0 >= lo[:, r0:r0 + w]) & (j0 < hi[:, r0:r0 + w]), c, jnp.inf)


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


def _sq_scan_step(ops, state, k0, ec, r0):
    xt, yr, _, _ = ops
    gx, gy = state
    w = ec.shape[1]
    start, ys = _partners(xt, yr, k0, r0, w)
    t = 2 * ec[None] * (xt[:, :, r0:r0 + w] - ys)
    gx = lax.dynamic_update_slice_in_dim(gx, lax.slice_in_dim(gx, r0, r0 + w, axis=2) + t, r0, axis=2)
    gy = lax.dynamic_update_slice_in_dim(gy, lax.dynamic_slice_in_dim(gy, start, w, axis=2) - t, start, axis=2)
    return (gx, gy), None


def _sq_scan_finish(ops, state, ys):
    return state[0], state[1], None, None


def _sq_matmul_finish(ops, state, ys):
    # ys: the windows' alignment diagonals, assembled (K, B, N) and unskewed to E (B, N, M); the
    # cotangents of x and y are 2 (x rowsum(E) - E y) and 2 (y colsum(E) - E^T x)
    xt, yr, _, _ = ops
    n, m = xt.shape[2], _sq_m(xt, yr)
    e = spec.unskew(jnp, jnp.transpose(_assemble(ys, n), (1, 2, 0)), m)
    x = jnp.transpose(xt, (1, 2, 0))
    y = jnp.transpose(yr[:, :, n - 1:n - 1 + m], (1, 2, 0))[:, ::-1]
    gx = 2 * (x * jnp.sum(e, axis=2)[..., None] - jnp.matmul(e, y))
    ex = jnp.swapaxes(jnp.matmul(jnp.swapaxes(x, 1, 2), e), 1, 2)  # E^T x, without transposing E
    gy = 2 * (y * jnp.sum(e, axis=1)[..., None] - ex)
    gxt = jnp.transpose(gx, (2, 0, 1))
    gyr = jnp.pad(jnp.transpose(gy[:, ::-1], (2, 0, 1)), ((0, 0), (0, 0), (n - 1, n - 1)))
    return gxt, gyr, None, None


_run_sq_scan = _make_vjp(_Source(_sq_diag, _sq_scan_init, _sq_scan_step, _sq_scan_finish))
_run_sq_matmul = _make_vjp(_Source(_sq_diag, lambda ops: None, _stack_step, _sq_matmul_finish))


def sdtw_sqeuclidean(x, y, gamma, lo, hi, kt=None, it=None, bad=None, targets=()):
    """Soft-DTW values ``(B,)`` of ``x`` ``(B, N, D)``, ``y`` ``(B, M, D)`` (squared Euclidean cost).

    ``x`` and ``y`` must be finite (the caller flags and zeroes the pairs that are not).
    ``lo``, ``hi``: int32 ``(B, N)`` column bounds of each row (:func:`softdtw.spec.band_bounds`).
    Other arguments as :func:`sdtw_diagonals`.
    """
    n = x.shape[1]
    xt = jnp.transpose(x, (2, 0, 1))
    yt = jnp.transpose(y[:, ::-1], (2, 0, 1))
    yr = jnp.pad(yt, ((0, 0), (0, 0), (n - 1, n - 1)))
    run = _run_sq_scan if x.shape[2] <= _SCAN_MAX_D else _run_sq_matmul
    return run((xt, yr, lo, hi), gamma, kt, it, bad, targets)

