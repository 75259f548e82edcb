"""The compiled CPU core (softdtw._core through softdtw.kernels.cpu) against the float64 NumPy
reference: values, cost gradients and gamma gradients for many shapes (block lanes, column
strips), bands and lengths, the fused squared Euclidean source, padding and non-finite inputs,
threads, forked children, concurrent callers, every instruction set of the host, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from softdtw import spec
from softdtw.kernels import cpu as K
from softdtw.numpy import _reference as ref

DTYPES = [np.float64, np.float32]
TOL = {np.float64: 1e-10, np.float32: 1e-5}  # values
GTOL = {np.float64: 1e-10, np.float32: 1e-4}  # gradients, relative to the largest entry
EPS = {np.float64: 4e-16, np.float32: 2e-7}
LANES = {np.float64: 32, np.float32: 64}
NONE = spec.Constraint(None, None)
TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _kw(constraint, xl, yl):
    kw = dict(x_lengths=xl, y_lengths=yl)
    if constraint.kind == "sakoe_chiba":
        kw.update(global_constraint="sakoe_chiba", sakoe_chiba_radius=int(constraint.param))
    elif constraint.kind == "itakura":
        kw.update(global_constraint="itakura", itakura_max_slope=constraint.param)
    return kw


def _lengths(B, N, M, xl, yl):
    xl = np.full(B, N, np.int32) if xl is None else np.asarray(xl, np.int32)
    yl = np.full(B, M, np.int32) if yl is None else np.asarray(yl, np.int32)
    return xl, yl


def strip_width(B, N, M, dtype):
    """The width W of the plan's column strips, read off the state's sizes (r: blocks * steps *
    W * lanes rounded up to whole rows of M, aux: blocks * steps * 2 * lanes): exactly M
    without strips, at most M / 2 + M / 32 with them."""
    (rows, m), (aux,) = K.state_shapes(B, N, M, dtype)
    assert m == M
    return 2 * rows * m // aux


def run(cost, gamma, xl=None, yl=None, constraint=NONE, grad_value=None, need_gamma_grad=True, threads=None):
    """forward + backward of the cost path, checking what the API promises of every call."""
    B, N, M = cost.shape
    xl, yl = _lengths(B, N, M, xl, yl)
    lo, hi = spec.band_bounds(N, M, xl, yl, constraint)
    gv = np.ones(B, cost.dtype) if grad_value is None else np.asarray(grad_value, cost.dtype)
    snapshot = [a.copy() for a in (cost, xl, yl, lo, hi, gv)]
    value, r, aux = K.forward(cost, gamma, xl, yl, lo, hi, threads=threads)
    rs, auxs = K.state_shapes(B, N, M, cost.dtype)
    assert r.shape == rs and aux.shape == auxs and r.dtype == aux.dtype == cost.dtype
    assert K.aux_shape(B, N, M, cost.dtype) == (auxs, np.dtype(cost.dtype))
    r_copy, aux_copy = r.copy(), aux.copy()
    grad, ggam = K.backward(r, aux, gamma, xl, yl, lo, hi, gv, need_gamma_grad, threads=threads)
    for a, b in zip((cost, xl, yl, lo, hi, gv, r, aux), snapshot + [r_copy, aux_copy]):
        np.testing.assert_array_equal(a, b)  # inputs and state never written
    assert value.dtype == grad.dtype == cost.dtype and value.shape == (B,) and grad.shape == cost.shape
    if need_gamma_grad:
        assert ggam.dtype == cost.dtype and ggam.shape == (B,)
    else:
        assert ggam is None
    return value, grad, ggam, (xl, yl, lo, hi, gv)


def check(cost, gamma, xl=None, yl=None, constraint=NONE, grad_value=None, threads=None):
    """Values, cost gradients and gamma gradients of the core against the float64 reference."""
    dtype = cost.dtype.type
    # the exponents (C - R) / gamma resolve only to ~eps |C| / gamma: the problem's own
    # conditioning in the dtype, whatever the implementation
    cond = EPS[dtype] * float(np.abs(cost[np.isfinite(cost)]).max(initial=0.0)) / gamma
    # (gradients: a few such roundings add up along the paths through a cell)
    tol, gtol = max(TOL[dtype], cond), max(GTOL[dtype], 4 * cond)
    value, grad, ggam, (xl, yl, lo, hi, gv) = run(cost, gamma, xl, yl, constraint, grad_value, threads=threads)
    c64 = cost.astype(np.float64)
    kw = _kw(constraint, xl, yl)
    align, vref = ref.soft_dtw_alignment_from_cost(c64, gamma, **kw)
    _, gref = ref.soft_dtw_gamma_grad_from_cost(c64, gamma, **kw)
    gv64 = gv.astype(np.float64)
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad)) and np.all(np.isfinite(ggam))
    np.testing.assert_allclose(value, vref, rtol=tol, atol=tol * np.abs(vref).max())
    gexp = align * gv64[:, None, None]
    scale = max(np.abs(gexp).max(), 1e-300)
    err = np.abs(grad - gexp).max()
    assert err <= gtol * scale, (err, scale)
    # d value / d gamma = sum_cells E * sum_p w_p log w_p, each cell's term in [-log 3, 0]: its
    # error is judged against sum_cells E (float32 weights near 0 are only relatively accurate)
    gg = gref * gv64
    mass = np.abs(gexp).sum(axis=(1, 2))
    assert np.all(np.abs(ggam - gg) <= gtol * np.maximum(np.abs(gg), mass) + 1e-300), (ggam, gg)
    valid = spec.valid_cells(cost.shape[1], cost.shape[2], xl, yl, constraint)
    assert np.all(grad[~valid] == 0)  # exactly 0 outside the used cells
    return value, grad, ggam


def costs(rng, shape, dtype, scale=1.0):
    return (rng.random(shape) * scale).astype(dtype)


def feasible_lengths(rng, B, N, M, constraint, low=1):
    """Random lengths in [low, N], [low, M] that the band admits (pair 0 at full length)."""
    xl = np.empty(B, np.int32)
    yl = np.empty(B, np.int32)
    xl[0], yl[0] = N, M
    for b in range(1, B):
        while True:
            n, m = int(rng.integers(low, N + 1)), int(rng.integers(low, M + 1))
            try:
                spec.row_bounds(n, m, constraint)
            except ValueError:
                continue
            xl[b], yl[b] = n, m
            break
    return xl, yl


# ---------------------------------------------------------------------------
# 1. Shapes, lanes, strips, gammas
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 1, 7), (3, 6, 1), (3, 5, 7), (1, 9, 4), (70, 9, 13),
                                   (33, 2, 3), (65, 3, 2), (5, 33, 20), (2, 500, 3), (1, 1, 700), (1, 700, 1),
                                   (300, 5, 4)], ids=str)
def test_shapes(dtype, shape):
    rng = np.random.default_rng(sum(shape))
    check(costs(rng, shape, dtype), 1.0, grad_value=rng.standard_normal(shape[0]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 40, 700), (2, 300, 500), (8, 100, 1000), (3, 130, 301)], ids=str)
def test_long_pairs_in_column_strips(dtype, shape):
    """Long pairs that the plan cuts into column strips (W < M), the last strip partial where M
    is no multiple of the strips."""
    B, N, M = shape
    assert strip_width(B, N, M, dtype) < M
    rng = np.random.default_rng(sum(shape))
    check(costs(rng, shape, dtype), 0.5, grad_value=rng.standard_normal(B))


@pytest.mark.parametrize("dtype", DTYPES)
def test_many_blocks(dtype):
    """More pairs than lanes and not a multiple of them: several blocks, the last one partial."""
    rng = np.random.default_rng(5)
    B = 2 * LANES[dtype] + 3
    assert strip_width(B, 6, 5, dtype) == 5
    check(costs(rng, (B, 6, 5), dtype), 1.0, grad_value=rng.standard_normal(B))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gamma", [1e-3, 1e-2, 0.1, 1.0, 10.0])
def test_gammas(dtype, gamma):
    rng = np.random.default_rng(1)
    check(costs(rng, (4, 12, 17), dtype, 3.0), gamma, grad_value=rng.standard_normal(4))
    check(costs(rng, (1, 24, 300), dtype, 3.0), gamma)  # strips


@pytest.mark.parametrize("dtype", DTYPES)
def test_grad_value_scales_exactly(dtype):
    """grad_cost = grad_value * E and grad_gamma = grad_value * d value / d gamma, exactly: a
    power of two scales the bits, 0 gives exact zeros, no gamma gradient leaves E unchanged."""
    rng = np.random.default_rng(7)
    cost = costs(rng, (5, 11, 13), dtype)
    _, g1, gg1, _ = run(cost, 0.7, grad_value=np.ones(5))
    _, g2, gg2, _ = run(cost, 0.7, grad_value=[2.0, -4.0, 0.0, 0.5, -1.0])
    scale = np.array([2.0, -4.0, 0.0, 0.5, -1.0], dtype)
    np.testing.assert_array_equal(g2, g1 * scale[:, None, None])
    np.testing.assert_array_equal(gg2, gg1 * scale)
    assert not g2[2].any() and gg2[2] == 0
    _, g3, none, _ = run(cost, 0.7, need_gamma_grad=False)
    assert none is None
    np.testing.assert_array_equal(g3, g1)


def test_float32_accuracy_at_size():
    """float32 stays within 1e-5 of float64 where plain float32 R would not (the re-based rows)."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 400, 3))
    y = rng.standard_normal((2, 400, 3))
    check(ref.sqeuclidean_cost(x, y).astype(np.float32), 1.0)
    check(ref.sqeuclidean_cost(x, y).astype(np.float32), 0.05)


@pytest.mark.parametrize("dtype", DTYPES)
def test_no_subnormals_in_the_gradients(dtype):
    """E decays off the alignment path through the whole subnormal range: the kernel flushes
    it (FTZ inside the call), and the other entries still agree with the reference."""
    rng = np.random.default_rng(9)
    gamma = 0.05 if dtype is np.float32 else 0.5
    cost = costs(rng, (2, 60, 70), dtype, 30.0)
    cost[:, 0] = 0  # a row of equal costs: E reaches every column of the first row
    _, grad, _ = check(cost, gamma)
    nz = grad[grad != 0]
    assert nz.size and np.all(np.abs(nz) >= np.finfo(dtype).tiny)
    align, _ = ref.soft_dtw_alignment_from_cost(cost.astype(np.float64), gamma)
    assert np.any((align > 0) & (align < (2.0**-126 if dtype is np.float32 else 1e-290)))  # not vacuous


# ---------------------------------------------------------------------------
# 2. Bands and variable lengths
# ---------------------------------------------------------------------------

BANDS = [spec.Constraint("sakoe_chiba", 0.0), spec.Constraint("sakoe_chiba", 3.0), spec.Constraint("itakura", 2.0)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("constraint", BANDS, ids=str)
def test_bands_and_lengths(dtype, constraint):
    rng = np.random.default_rng(2)
    B, N, M = 19, 24, 30
    cost = costs(rng, (B, N, M), dtype)
    xl, yl = feasible_lengths(rng, B, N, M, constraint, low=1 if constraint.kind == "sakoe_chiba" else 8)
    assert (xl < N).any() and (yl < M).any()
    check(cost, 0.5, xl, yl, constraint, grad_value=rng.standard_normal(B))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("constraint", [NONE, BANDS[1]], ids=str)
def test_variable_lengths_down_to_one(dtype, constraint):
    rng = np.random.default_rng(3)
    cost = costs(rng, (6, 30, 40), dtype)
    check(cost, 1.0, [30, 3, 1, 17, 30, 1], [40, 1, 40, 22, 5, 1], constraint, grad_value=rng.standard_normal(6))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("constraint", [NONE, spec.Constraint("sakoe_chiba", 0.0), spec.Constraint("sakoe_chiba", 40.0),
                                        spec.Constraint("itakura", 3.0)], ids=str)
def test_bands_and_lengths_in_strips(dtype, constraint):
    """Lengths and bands across column strips: strips past a pair's length, rows whose band
    lies in one strip only, the value cell in an inner strip."""
    rng = np.random.default_rng(4)
    B, N, M = 3, 200, 500
    assert strip_width(B, N, M, dtype) < M
    cost = costs(rng, (B, N, M), dtype)
    check(cost, 0.3, [200, 150, 120], [500, 333, 100], constraint, grad_value=rng.standard_normal(B))


# ---------------------------------------------------------------------------
# 3. Gamma gradients
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [1e-2, 0.3, 2.0])
@pytest.mark.parametrize("shape, constraint", [((4, 9, 13), NONE), ((2, 40, 300), NONE),
                                               ((3, 20, 20), spec.Constraint("sakoe_chiba", 2.0))], ids=str)
def test_gamma_grad_finite_difference(gamma, shape, constraint):
    """float64 d value / d gamma against a central difference of the reference's value."""
    rng = np.random.default_rng(11)
    B, N, M = shape
    cost = costs(rng, shape, np.float64)
    xl, yl = np.full(B, N, np.int32), np.full(B, M, np.int32)
    xl[-1], yl[-1] = max(1, N - 3), max(1, M - 5)
    _, _, ggam, _ = run(cost, gamma, xl, yl, constraint)
    kw = _kw(constraint, xl, yl)
    h = 1e-4 * gamma
    fd = (ref.soft_dtw_from_cost(cost, gamma + h, **kw) - ref.soft_dtw_from_cost(cost, gamma - h, **kw)) / (2 * h)
    np.testing.assert_allclose(ggam, fd, rtol=1e-6, atol=1e-6 * np.abs(fd).max())
    assert (ggam < 0).all()  # minus an entropy: the value decreases with gamma


@pytest.mark.parametrize("gamma", [1e-2, 0.3, 5.0])
def test_gamma_grad_float32_against_float64(gamma):
    rng = np.random.default_rng(12)
    cost = costs(rng, (6, 30, 200), np.float64, 2.0)
    gv = rng.standard_normal(6)
    _, g64, gg64, _ = run(cost, gamma, grad_value=gv)
    _, _, gg32, _ = run(cost.astype(np.float32), gamma, grad_value=gv)
    mass = np.abs(g64).sum(axis=(1, 2))
    assert np.all(np.abs(gg32 - gg64) <= 1e-4 * np.maximum(np.abs(gg64), mass))


# ---------------------------------------------------------------------------
# 4. values() and threads: the same bits
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(70, 9, 12), (2, 150, 140), (1, 1, 5), (3, 40, 700)], ids=str)
def test_values_without_state_equal_forward(dtype, shape):
    B, N, M = shape
    rng = np.random.default_rng(3)
    cost = rng.random(shape).astype(dtype)
    for xl, yl, constraint in ((np.full(B, N), np.full(B, M), NONE),
                               (rng.integers(1, N + 1, B), rng.integers(1, M + 1, B), NONE),
                               (np.full(B, N), np.full(B, M), spec.Constraint("sakoe_chiba", 3.0))):
        lo, hi = spec.band_bounds(N, M, xl, yl, constraint)
        want, r, aux = K.forward(cost, 0.5, xl, yl, lo, hi)
        got = K.values(cost, 0.5, xl, yl, lo, hi)
        assert got.dtype == dtype and np.array_equal(got, want)
        v2, r2, aux2 = K.forward(cost, 0.5, xl, yl, lo, hi, keep=False)
        assert np.array_equal(v2, want) and r2.size == 0 and aux2.size == 0
        x = rng.standard_normal((B, N, 2)).astype(dtype)
        y = rng.standard_normal((B, M, 2)).astype(dtype)
        want, _, _ = K.forward_sqeuclidean(x, y, 0.5, xl, yl, lo, hi)
        got, r3, aux3 = K.forward_sqeuclidean(x, y, 0.5, xl, yl, lo, hi, keep=False)
        assert got.dtype == dtype and np.array_equal(got, want) and r3.size == 0 and aux3.size == 0


def _everything(dtype, threads, seed=0, B=70, N=23, M=31, D=3):
    """Every output of every entry point for one batch (random lengths, several blocks)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, N, D)).astype(dtype)
    y = rng.standard_normal((B, M, D)).astype(dtype)
    cost = costs(rng, (B, N, M), dtype)
    xl, yl = rng.integers(1, N + 1, B).astype(np.int32), rng.integers(1, M + 1, B).astype(np.int32)
    lo, hi = spec.band_bounds(N, M, xl, yl, NONE)
    gv = rng.standard_normal(B).astype(dtype)
    value, r, aux = K.forward(cost, 0.7, xl, yl, lo, hi, threads=threads)
    grad, gg = K.backward(r, aux, 0.7, xl, yl, lo, hi, gv, True, threads=threads)
    vals = K.values(cost, 0.7, xl, yl, lo, hi, threads=threads)
    sv, sr, saux = K.forward_sqeuclidean(x, y, 0.7, xl, yl, lo, hi, threads=threads)
    gx, gy, sgg = K.backward_sqeuclidean(sr, saux, x, y, 0.7, xl, yl, lo, hi, gv, need_gamma_grad=True,
                                         threads=threads)
    gx0, _ = K.backward_sqeuclidean(sr, saux, x, y, 0.7, xl, yl, lo, hi, gv, need_y=False, threads=threads)
    # (not r and aux: the steps past a block's longest pair and r's rounding to whole rows of M
    # are never written, np.empty's bits)
    return [value, grad, gg, vals, sv, gx, gy, sgg, gx0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(70, 23, 31), (2, 300, 500), (5, 64, 400)], ids=str)
def test_same_bits_on_any_thread_count(dtype, shape):
    B, N, M = shape
    want = _everything(dtype, 1, B=B, N=N, M=M)
    for threads in (2, 3, 8, None):
        got = _everything(dtype, threads, B=B, N=N, M=M)
        for a, b in zip(got, want):
            assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


def test_caller_keeps_its_denormals():
    """The kernel flushes denormals inside its call only: the caller's thread gets its mode back."""
    tiny = np.array([1e-40, -3e-42], np.float32)
    assert (tiny * np.float32(1.0) != 0).all()
    for threads in (1, 2):
        _everything(np.float32, threads, B=3, N=5, M=6)
        assert (tiny * np.float32(1.0) != 0).all()
        assert (np.array([1e-310], np.float64) * 1.0 != 0).all()


# ---------------------------------------------------------------------------
# 5. The fused squared Euclidean source
# ---------------------------------------------------------------------------


def _sqeuclidean_expected(x, y, gamma, xl, yl, constraint, gv):
    """float64 value, grad_x, grad_y, grad_gamma by the chain rule through the reference's E."""
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    B = x.shape[0]
    for b in range(B):  # the padding (whatever it holds) is not part of the pair
        x64[b, xl[b]:] = 0
        y64[b, yl[b]:] = 0
    cost = ((x64[:, :, None] - y64[:, None]) ** 2).sum(-1)
    kw = _kw(constraint, xl, yl)
    e, value = ref.soft_dtw_alignment_from_cost(cost, gamma, **kw)
    _, dg = ref.soft_dtw_gamma_grad_from_cost(cost, gamma, **kw)
    g = e * gv[:, None, None]
    gx = 2 * (x64 * g.sum(-1)[..., None] - g @ y64)
    gy = 2 * (y64 * g.sum(-2)[..., None] - g.transpose(0, 2, 1) @ x64)
    return value, gx, gy, dg * gv, cost


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("D", [1, 3, 8])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("constraint", [NONE, spec.Constraint("sakoe_chiba", 3.0)], ids=str)
def test_sqeuclidean_equals_cost_path(dtype, D, padded, constraint):
    rng = np.random.default_rng(D + 10 * padded)
    for B, N, M in ((70, 13, 11), (2, 150, 400), (1, 1, 1), (3, 1, 9), (3, 9, 1)):
        x = rng.standard_normal((B, N, D)).astype(dtype)
        y = rng.standard_normal((B, M, D)).astype(dtype)
        xl, yl = np.full(B, N, np.int32), np.full(B, M, np.int32)
        if padded:
            xl = rng.integers(1, N + 1, B).astype(np.int32)
            yl = rng.integers(1, M + 1, B).astype(np.int32)
        lo, hi = spec.band_bounds(N, M, xl, yl, constraint)
        gv = rng.standard_normal(B).astype(dtype)
        snapshot = [a.copy() for a in (x, y, xl, yl, lo, hi, gv)]
        value, r, aux = K.forward_sqeuclidean(x, y, 0.7, xl, yl, lo, hi)
        assert (r.shape, aux.shape) == K.state_shapes(B, N, M, dtype)
        gx, gy, gg = K.backward_sqeuclidean(r, aux, x, y, 0.7, xl, yl, lo, hi, gv, need_gamma_grad=True)
        gx0, none = K.backward_sqeuclidean(r, aux, x, y, 0.7, xl, yl, lo, hi, gv, need_y=False)
        none2, gy0 = K.backward_sqeuclidean(r, aux, x, y, 0.7, xl, yl, lo, hi, gv, need_x=False)
        for a, b in zip((x, y, xl, yl, lo, hi, gv), snapshot):
            np.testing.assert_array_equal(a, b)  # inputs never written
        assert none is None and none2 is None
        assert value.dtype == gx.dtype == gy.dtype == gg.dtype == dtype and gx.shape == x.shape and gy.shape == y.shape
        assert np.array_equal(gy0, gy)
        vref, gxref, gyref, ggref, cost = _sqeuclidean_expected(x, y, 0.7, xl, yl, constraint, gv.astype(np.float64))
        tol = max(TOL[dtype], EPS[dtype] * cost.max() / 0.7)
        gtol = max(GTOL[dtype], EPS[dtype] * cost.max() / 0.7)
        assert np.all(np.isfinite(value)) and np.all(np.isfinite(gx)) and np.all(np.isfinite(gy))
        np.testing.assert_allclose(value, vref, rtol=tol, atol=tol * np.abs(vref).max())
        scale = max(np.abs(gxref).max(), np.abs(gyref).max(), 1e-3)
        for got, want in ((gx, gxref), (gy, gyref), (gx0, gxref)):
            assert np.abs(got - want).max() <= gtol * scale, (np.abs(got - want).max(), scale)
        # the same numbers as the cost path on the cost formed outside
        cv, cr, caux = K.forward(cost.astype(dtype), 0.7, xl, yl, lo, hi)
        _, cgg = K.backward(cr, caux, 0.7, xl, yl, lo, hi, gv, True)
        np.testing.assert_allclose(value, cv, rtol=tol, atol=tol * np.abs(vref).max())
        mass = np.abs(gv.astype(np.float64)) * (xl + yl)
        assert np.all(np.abs(gg - ggref) <= gtol * np.maximum(np.abs(ggref), mass))
        assert np.all(np.abs(cgg - ggref) <= gtol * np.maximum(np.abs(ggref), mass))
        for b in range(B):  # exactly 0 past the lengths
            assert not gx[b, xl[b]:].any() and not gy[b, yl[b]:].any() and not gx0[b, xl[b]:].any()


# ---------------------------------------------------------------------------
# 6. Padding is never read
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, constraint", [((70, 9, 13), NONE), ((3, 120, 500), NONE),
                                               ((5, 30, 40), spec.Constraint("sakoe_chiba", 2.0)),
                                               ((4, 30, 35), spec.Constraint("itakura", 3.0))], ids=str)
def test_padding_is_never_read(dtype, shape, constraint):
    """NaN and infinities beyond each pair's lengths (and, for the cost, outside its band) change
    no bit of the values or gradients; the gradients there are exactly 0."""
    B, N, M = shape
    rng = np.random.default_rng(B + N + M)
    xl, yl = feasible_lengths(rng, B, N, M, constraint, low=1 if constraint.kind != "itakura" else 10)
    lo, hi = spec.band_bounds(N, M, xl, yl, constraint)
    gv = rng.standard_normal(B).astype(dtype)
    cost = costs(rng, shape, dtype)
    x = rng.standard_normal((B, N, 2)).astype(dtype)
    y = rng.standard_normal((B, M, 2)).astype(dtype)
    valid = spec.valid_cells(N, M, xl, yl, constraint)
    junk = np.array([np.nan, np.inf, -np.inf, -1e30], dtype)
    dirty = np.where(valid, cost, junk[rng.integers(0, 4, shape)])
    dx, dy = x.copy(), y.copy()
    for b in range(B):
        dx[b, xl[b]:] = junk[b % 4]
        dy[b, yl[b]:] = junk[(b + 1) % 4]

    def cost_path(c):
        v, r, aux = K.forward(c, 0.6, xl, yl, lo, hi)
        g, gg = K.backward(r, aux, 0.6, xl, yl, lo, hi, gv, True)
        return v, K.values(c, 0.6, xl, yl, lo, hi), g, gg

    def series_path(a, b):
        v, r, aux = K.forward_sqeuclidean(a, b, 0.6, xl, yl, lo, hi)
        return (v,) + K.backward_sqeuclidean(r, aux, a, b, 0.6, xl, yl, lo, hi, gv, need_gamma_grad=True)

    for clean, got in ((cost_path(cost), cost_path(dirty)), (series_path(x, y), series_path(dx, dy))):
        for a, b in zip(clean, got):
            assert np.array_equal(a, b)
            assert np.isfinite(b).all()
    _, _, g, _ = cost_path(dirty)
    assert not g[~valid].any()
    _, gx, gy, _ = series_path(dx, dy)
    for b in range(B):
        assert not gx[b, xl[b]:].any() and not gy[b, yl[b]:].any()
    check(cost, 0.6, xl, yl, constraint, grad_value=gv)  # and the clean numbers are right


# ---------------------------------------------------------------------------
# 7. Non-finite inputs
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_nonfinite_series_pair_only(dtype):
    """A NaN or an infinity in a pair's used x or y makes that pair's value NaN and changes no
    bit of any other pair's value or gradients."""
    rng = np.random.default_rng(3)
    B, N, M = 70, 9, 11
    x = rng.standard_normal((B, N, 2)).astype(dtype)
    y = rng.standard_normal((B, M, 2)).astype(dtype)
    xl, yl = np.full(B, N, np.int32), np.full(B, M, np.int32)
    xl[5] = 4
    lo, hi = spec.band_bounds(N, M, xl, yl, spec.Constraint("sakoe_chiba", 1.0))
    gv = rng.standard_normal(B).astype(dtype)

    def once(a, b):
        v, r, aux = K.forward_sqeuclidean(a, b, 1.0, xl, yl, lo, hi)
        return (v,) + K.backward_sqeuclidean(r, aux, a, b, 1.0, xl, yl, lo, hi, gv, need_gamma_grad=True)

    clean = once(x, y)
    x[3, 8, 1] = np.nan
    y[40, 0, 0] = np.inf
    x[66, 2, 0] = -np.inf
    y[67, 10, 1] = np.nan
    x[68, 0, 0] = np.nan  # a row the band keeps far from some columns: the pair is still NaN
    x[5, 6, 0] = np.nan  # past x_len[5]: never read
    got = once(x, y)
    bad = [3, 40, 66, 67, 68]
    assert np.isnan(got[0][bad]).all()
    keep = np.ones(B, bool)
    keep[bad] = False
    for a, b in zip(got, clean):
        assert np.array_equal(a[keep], b[keep])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("poison", [np.nan, -np.inf])
def test_nan_or_neg_inf_cost_pair_only(dtype, poison):
    rng = np.random.default_rng(4)
    B, N, M = 70, 8, 300  # strips: the poisoned cell lies in an inner strip of pair 2
    cost = costs(rng, (B, N, M), dtype)
    xl, yl = np.full(B, N, np.int32), np.full(B, M, np.int32)
    lo, hi = spec.band_bounds(N, M, xl, yl)
    gv = rng.standard_normal(B).astype(dtype)

    def once(c):
        v, r, aux = K.forward(c, 1.0, xl, yl, lo, hi)
        return (v, K.values(c, 1.0, xl, yl, lo, hi)) + K.backward(r, aux, 1.0, xl, yl, lo, hi, gv, True)

    clean = once(cost)
    cost[2, 5, 170] = poison
    cost[69, 0, 0] = poison
    cost[30, N - 1, M - 1] = poison
    got = once(cost)
    bad = [2, 30, 69]
    assert np.isnan(got[0][bad]).all() and np.isnan(got[1][bad]).all()
    keep = np.ones(B, bool)
    keep[bad] = False
    for a, b in zip(got, clean):
        assert np.array_equal(a[keep], b[keep])


@pytest.mark.parametrize("dtype", DTYPES)
def test_pos_inf_cost_forbids_a_cell(dtype):
    """+inf in a used cell forbids it, as a band does: the reference's numbers (which take +inf
    the same way), and a pair whose every path is forbidden has value +inf."""
    rng = np.random.default_rng(5)
    B, N, M = 6, 12, 260
    cost = costs(rng, (B, N, M), dtype)
    cost[0, 3, :200] = np.inf  # paths remain through columns >= 200 (another strip)
    cost[1, 1:4, 1:5] = np.inf
    cost[2, :, 0] = np.inf  # column 0 forbidden: no path
    cost[3, 5, :] = np.inf  # row 5 forbidden: no path
    cost[4, N - 1, M - 1] = np.inf  # the last cell: no path
    xl, yl = np.full(B, N, np.int32), np.full(B, M, np.int32)
    lo, hi = spec.band_bounds(N, M, xl, yl)
    value, r, aux = K.forward(cost, 0.5, xl, yl, lo, hi)
    assert np.array_equal(K.values(cost, 0.5, xl, yl, lo, hi), value)
    assert (value[2:5] == np.inf).all() and np.isfinite(value[[0, 1, 5]]).all()
    grad, gg = K.backward(r, aux, 0.5, xl, yl, lo, hi, np.ones(B, dtype), True)
    ok = [0, 1, 5]
    align, vref = ref.soft_dtw_alignment_from_cost(cost[ok].astype(np.float64), 0.5)
    _, ggref = ref.soft_dtw_gamma_grad_from_cost(cost[ok].astype(np.float64), 0.5)
    np.testing.assert_allclose(value[ok], vref, rtol=TOL[dtype])
    assert np.abs(grad[ok] - align).max() <= GTOL[dtype]
    np.testing.assert_allclose(gg[ok], ggref, rtol=GTOL[dtype] * 10)
    assert not grad[0, 3, :200].any() and not grad[1, 1:4, 1:5].any()
    assert np.isfinite(grad).all() and np.isfinite(gg).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_nonfinite_pairs_exponent_test(dtype):
    """nonfinite_pairs: NaN, +inf and -inf within a pair's length flag it; the largest finite
    value, subnormals, -0.0 and anything past the length do not."""
    fi = np.finfo(dtype)
    a = np.ones((9, 5, 3), dtype)
    a[0, 4, 2] = np.nan
    a[1, 0, 0] = np.inf
    a[2, 2, 1] = -np.inf
    a[3] = fi.max
    a[3, 1] = -fi.max
    a[4] = fi.smallest_subnormal
    a[4, 0, 0] = -0.0
    a[5, 3, 0] = np.nan  # past pair 5's length
    a[6, 4, 2] = -np.nan
    lengths = np.array([5, 1, 5, 5, 5, 3, 5, 5, 0], np.int32)
    a[8] = np.nan  # length 0: nothing used
    want = [True, True, True, False, False, False, True, False, False]
    before = a.copy()
    assert K.nonfinite_pairs(a, lengths).tolist() == want
    np.testing.assert_array_equal(a, before)
    assert K.nonfinite_pairs(a, np.full(9, 5)).tolist() == want[:5] + [True, True, False, True]
    with pytest.raises(TypeError, match="float32 or float64"):
        K.nonfinite_pairs(np.zeros(a.shape, np.float16), lengths)
    with pytest.raises(ValueError, match="lengths"):
        K.nonfinite_pairs(a, np.full(9, 6))
    with pytest.raises(ValueError, match="lengths"):
        K.nonfinite_pairs(a, lengths[:3])


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_length_pair_has_no_path(dtype):
    """A length 0 is no pair (the core accepts [0, N]): +inf, zero gradients, no other pair changes."""
    rng = np.random.default_rng(6)
    B, N, M = 4, 7, 9
    cost = costs(rng, (B, N, M), dtype)
    xl, yl = np.array([7, 0, 3, 7], np.int32), np.array([9, 4, 0, 9], np.int32)
    lo, hi = spec.band_bounds(N, M, xl, yl)
    value, r, aux = K.forward(cost, 1.0, xl, yl, lo, hi)
    grad, gg = K.backward(r, aux, 1.0, xl, yl, lo, hi, np.ones(B, dtype), True)
    assert (value[1:3] == np.inf).all() and not grad[1:3].any() and (gg[1:3] == 0).all()
    ok = [0, 3]
    _, g2, gg2, _ = run(cost[ok], 1.0)
    np.testing.assert_allclose(value[ok], ref.soft_dtw_from_cost(cost[ok].astype(np.float64), 1.0), rtol=TOL[dtype])
    assert np.abs(grad[ok] - g2).max() <= GTOL[dtype] and np.abs(gg[ok] - gg2).max() <= GTOL[dtype] * 10


# ---------------------------------------------------------------------------
# 8. Large costs, small gamma
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gamma", [1e-3, 1e-2])
def test_large_costs_small_gamma_finite(dtype, gamma):
    rng = np.random.default_rng(6)
    cost = costs(rng, (3, 20, 25), dtype, 1e5)  # values ~1e6
    value, grad, ggam = check(cost, gamma, grad_value=rng.standard_normal(3))
    assert np.abs(value).max() > 1e5
    cost = costs(rng, (1, 30, 400), dtype, 1e5)  # and in strips
    value, grad, ggam = check(cost, gamma)
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad)) and np.all(np.isfinite(ggam))
    # the fused source at the same scale
    x = (rng.standard_normal((2, 20, 3)) * 300).astype(dtype)
    y = (rng.standard_normal((2, 25, 3)) * 300).astype(dtype)
    xl, yl = np.full(2, 20, np.int32), np.full(2, 25, np.int32)
    lo, hi = spec.band_bounds(20, 25, xl, yl)
    v, r, aux = K.forward_sqeuclidean(x, y, gamma, xl, yl, lo, hi)
    gx, gy, gg = K.backward_sqeuclidean(r, aux, x, y, gamma, xl, yl, lo, hi, np.ones(2, dtype), need_gamma_grad=True)
    assert all(np.isfinite(a).all() for a in (v, gx, gy, gg))
    vref = ref.soft_dtw(x.astype(np.float64), y.astype(np.float64), gamma)
    np.testing.assert_allclose(v, vref, rtol=max(TOL[dtype], 1e-6 if dtype is np.float32 else 0))


# ---------------------------------------------------------------------------
# 9. Threads and processes
# ---------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork: POSIX only")
def test_forked_child_runs_the_kernel_after_its_parent_did():
    """The parent's pool (threads=2) does not exist in a forked child: the child runs the kernel,
    on 2 threads too, with the parent's numbers, and does not hang."""
    code = textwrap.dedent("""
        import os, numpy as np
        from softdtw import spec
        from softdtw.kernels import cpu as K
        rng = np.random.default_rng(0)
        B, N, M = 150, 9, 300
        cost = rng.random((B, N, M)).astype(np.float32)
        x = rng.standard_normal((B, N, 2)); y = rng.standard_normal((B, M, 2))
        xl, yl = np.full(B, N, np.int32), np.full(B, M, np.int32)
        lo, hi = spec.band_bounds(N, M, xl, yl)
        def once():
            value, r, aux = K.forward(cost, 1.0, xl, yl, lo, hi, threads=2)
            g, _ = K.backward(r, aux, 1.0, xl, yl, lo, hi, np.ones(B, np.float32), False, threads=2)
            sv, sr, saux = K.forward_sqeuclidean(x, y, 1.0, xl, yl, lo, hi, threads=2)
            gx, gy = K.backward_sqeuclidean(sr, saux, x, y, 1.0, xl, yl, lo, hi, np.ones(B), threads=2)
            return value, g, sv, gx, gy
        want = once()
        for _ in range(2):  # twice: a child of a child's parent state too
            pid = os.fork()
            if pid == 0:
                ok = all(np.array_equal(a, b) for a, b in zip(once(), want))
                ok = ok and all(np.array_equal(a, b) for a, b in zip(once(), want))
                os._exit(0 if ok else 3)
            _, status = os.waitpid(pid, 0)
            print("child", os.waitstatus_to_exitcode(status))
            want = once()
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.split() == ["child", "0", "child", "0"], (out.stdout,
                                                                                       out.stderr[-3000:])


def test_host_openmp_threads_then_a_forked_child():
    """With torch loaded (its GNU OpenMP), the core runs on that pool: the same numbers as on its
    own pool (SOFTDTW_OPENMP=0), from several Python threads at once too; a child forked after
    the parent's OpenMP use runs the core on 2 threads of its own pool and does not hang."""
    code = textwrap.dedent("""
        import os, sys, threading, numpy as np
        import torch
        from softdtw import spec
        from softdtw.kernels import cpu as K
        torch.set_num_threads(2)
        torch.randn(2_000_000).exp_()  # a parallel torch op: its OpenMP pool exists
        rng = np.random.default_rng(0)
        B, N, M = 150, 9, 300
        x = rng.standard_normal((B, N, 2)).astype(np.float32); y = rng.standard_normal((B, M, 2)).astype(np.float32)
        xl, yl = np.full(B, N, np.int32), np.full(B, M, np.int32)
        lo, hi = spec.band_bounds(N, M, xl, yl)
        def once():
            v, r, aux = K.forward_sqeuclidean(x, y, 1.0, xl, yl, lo, hi, threads=2)
            gx, gy = K.backward_sqeuclidean(r, aux, x, y, 1.0, xl, yl, lo, hi, np.ones(B, np.float32), threads=2)
            return v, gx, gy
        want = once()
        print("openmp", K.host_openmp())
        got = []
        ts = [threading.Thread(target=lambda: got.append(once())) for _ in range(4)]
        [t.start() for t in ts]; [t.join() for t in ts]
        print("threads", len(got) == 4 and all(np.array_equal(a, b) for g in got for a, b in zip(g, want)))
        pid = os.fork()
        if pid == 0:
            ok = not K.host_openmp() and all(np.array_equal(a, b) for a, b in zip(once(), want))
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        np.save(sys.argv[1], np.concatenate([a.ravel() for a in want]))
    """)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        outs = []
        for env in ({}, {"SOFTDTW_OPENMP": "0"}):
            path = os.path.join(tmp, f"{len(outs)}.npy")
            out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, timeout=120,
                                 cwd=ROOT, env={**os.environ, **env})
            assert out.returncode == 0, out.stderr[-3000:]
            outs.append((out.stdout.split(), np.load(path)))
    (on, v_on), (off, v_off) = outs
    on_linux = sys.platform.startswith("linux")
    assert on == ["openmp", str(on_linux), "threads", "True", "child", "0"], on
    assert off == ["openmp", "False", "threads", "True", "child", "0"], off
    assert np.array_equal(v_on, v_off)


@pytest.mark.parametrize("dtype", DTYPES)
def test_concurrent_python_threads_get_serial_results(dtype):
    """Several Python threads in the core at once (threads=2 each: one gets the pool, the others
    run alone) get the bits of calls made one at a time."""
    seeds = list(range(6))
    want = {s: _everything(dtype, 2, seed=s, B=40, N=30, M=90) for s in seeds}
    got, errors = {}, []
    barrier = threading.Barrier(len(seeds))

    def work(s):
        try:
            barrier.wait(timeout=30)
            for _ in range(3):
                got.setdefault(s, []).append(_everything(dtype, 2, seed=s, B=40, N=30, M=90))
        except BaseException as e:  # reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(s,)) for s in seeds]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in ts), "a thread hung in the core"
    assert not errors, errors
    for s in seeds:
        assert len(got[s]) == 3
        for outs in got[s]:
            for a, b in zip(outs, want[s]):
                assert np.array_equal(a, b, equal_nan=True)


# ---------------------------------------------------------------------------
# Instruction sets (SOFTDTW_ISA, read once per process: in subprocesses)
# ---------------------------------------------------------------------------


def _host_flags():
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _isa_cases():
    """A few cases through every entry point; run in a subprocess under SOFTDTW_ISA."""
    out = []
    for dtype in DTYPES:
        rng = np.random.default_rng(0)
        check(costs(rng, (70, 9, 13), dtype), 0.7, grad_value=rng.standard_normal(70))
        check(costs(rng, (2, 60, 500), dtype), 0.3)
        c = spec.Constraint("sakoe_chiba", 3.0)
        xl, yl = feasible_lengths(rng, 9, 20, 25, c)
        check(costs(rng, (9, 20, 25), dtype), 1.0, xl, yl, c, grad_value=rng.standard_normal(9))
        check(costs(rng, (3, 20, 25), dtype, 1e5), 1e-2)
        x = rng.standard_normal((5, 17, 3)).astype(dtype)
        y = rng.standard_normal((5, 300, 3)).astype(dtype)
        xl, yl = np.array([17, 3, 17, 1, 9], np.int32), np.array([300, 300, 20, 1, 77], np.int32)
        lo, hi = spec.band_bounds(17, 300, xl, yl)
        gv = rng.standard_normal(5).astype(dtype)
        v, r, aux = K.forward_sqeuclidean(x, y, 0.5, xl, yl, lo, hi)
        gx, gy = K.backward_sqeuclidean(r, aux, x, y, 0.5, xl, yl, lo, hi, gv)
        vref, gxref, gyref, _, _ = _sqeuclidean_expected(x, y, 0.5, xl, yl, NONE, gv.astype(np.float64))
        np.testing.assert_allclose(v, vref, rtol=TOL[dtype] * 10)
        scale = max(np.abs(gxref).max(), np.abs(gyref).max())
        assert max(np.abs(gx - gxref).max(), np.abs(gy - gyref).max()) <= GTOL[dtype] * 10 * scale
        out.append(v)
    return out


@pytest.mark.parametrize("name", ["default", "avx2", "sse2"])
def test_instruction_sets(name):
    flags = _host_flags()
    machine = os.uname().machine if hasattr(os, "uname") else ""
    if name != "default" and machine not in ("x86_64", "AMD64"):
        pytest.skip("SOFTDTW_ISA's x86 instruction sets")
    if name == "avx2" and not {"avx2", "fma"} <= flags:
        pytest.skip("the host has no AVX2 and FMA")
    env = dict(os.environ)
    env.pop("SOFTDTW_ISA", None)
    if name != "default":
        env["SOFTDTW_ISA"] = name
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        import test_kernel_cpu as T
        T._isa_cases()
        print("isa", T.K.isa())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr[-3000:]
    got = out.stdout.split()[-1]
    if name != "default":
        assert got == name
    elif machine in ("x86_64", "AMD64"):
        best = "avx512" if {"avx512f", "avx512dq", "avx512bw", "avx512vl"} <= flags else \
            "avx2" if {"avx2", "fma"} <= flags else "sse2"
        assert got == best == K.isa()


# ---------------------------------------------------------------------------
# 10. Bad input
# ---------------------------------------------------------------------------


def _good(B=2, N=3, M=4, dtype=np.float32):
    cost = np.random.default_rng(0).random((B, N, M)).astype(dtype)
    xl, yl = np.full(B, N, np.int32), np.full(B, M, np.int32)
    lo, hi = spec.band_bounds(N, M, xl, yl)
    return cost, xl, yl, lo, hi


def test_bad_shapes_and_lengths_name_the_argument():
    cost, xl, yl, lo, hi = _good()
    cases = [
        (lambda: K.forward(cost, 1.0, xl[:1], yl, lo, hi), "x_len"),
        (lambda: K.forward(cost, 1.0, xl, np.full(3, 4, np.int32), lo, hi), "y_len"),
        (lambda: K.forward(cost, 1.0, xl, yl, lo[:, :2], hi), "lo"),
        (lambda: K.forward(cost, 1.0, xl, yl, lo, hi[:1]), "hi"),
        (lambda: K.forward(cost, 1.0, np.array([3, 4], np.int32), yl, lo, hi), "x_len"),
        (lambda: K.forward(cost, 1.0, np.array([-1, 3], np.int32), yl, lo, hi), "x_len"),
        (lambda: K.forward(cost, 1.0, xl, np.array([4, 5], np.int32), lo, hi), "y_len"),
        (lambda: K.values(cost, 1.0, xl, np.array([4, -2], np.int32), lo, hi), "y_len"),
        (lambda: K.forward(cost, 0.0, xl, yl, lo, hi), "gamma"),
        (lambda: K.forward(cost, -1.0, xl, yl, lo, hi), "gamma"),
        (lambda: K.forward(cost, float("nan"), xl, yl, lo, hi), "gamma"),
    ]
    _, r, aux = K.forward(cost, 1.0, xl, yl, lo, hi)
    gv = np.ones(2, np.float32)
    cases += [
        (lambda: K.backward(r[:-1], aux, 1.0, xl, yl, lo, hi, gv, False), "r"),
        (lambda: K.backward(r.reshape(-1), aux, 1.0, xl, yl, lo, hi, gv, False), "r"),  # another M
        (lambda: K.backward(r, aux[1:], 1.0, xl, yl, lo, hi, gv, False), "aux"),
        (lambda: K.backward(r, aux, 1.0, xl, np.array([4, 9], np.int32), lo, hi, gv, False), "y_len"),
        (lambda: K.backward(r, aux, 1.0, xl, yl, lo, hi[:, :1], gv, False), "hi"),
        (lambda: K.backward(r, aux, 0.0, xl, yl, lo, hi, gv, False), "gamma"),
    ]
    x = np.zeros((2, 3, 2), np.float32)
    y = np.zeros((2, 4, 2), np.float32)
    _, sr, saux = K.forward_sqeuclidean(x, y, 1.0, xl, yl, lo, hi)
    cases += [
        (lambda: K.forward_sqeuclidean(x, y[:, :, :1], 1.0, xl, yl, lo, hi), "x and y"),
        (lambda: K.forward_sqeuclidean(x, y[:1], 1.0, xl, yl, lo, hi), "x and y"),
        (lambda: K.forward_sqeuclidean(x[0], y, 1.0, xl, yl, lo, hi), "x and y"),
        (lambda: K.forward_sqeuclidean(x, y, 1.0, np.array([3, 4], np.int32), yl, lo, hi), "x_len"),
        (lambda: K.forward_sqeuclidean(x, y, 1.0, xl, yl, lo[:, 1:], hi), "lo"),
        (lambda: K.backward_sqeuclidean(sr[1:], saux, x, y, 1.0, xl, yl, lo, hi, gv), "r"),
        (lambda: K.backward_sqeuclidean(sr, saux, x, y[:, :, :1], 1.0, xl, yl, lo, hi, gv), "x and y"),
        (lambda: K.backward_sqeuclidean(sr, saux, x, y, 1.0, xl, np.array([4, 5], np.int32), lo, hi, gv), "y_len"),
    ]
    for fn, name in cases:
        with pytest.raises(ValueError, match=name):
            fn()


def test_wrong_dtypes_raise_type_error():
    cost, xl, yl, lo, hi = _good()
    x = np.zeros((2, 3, 2), np.float32)
    y = np.zeros((2, 4, 2), np.float32)
    for dt in (np.int32, np.int64, np.float16):
        with pytest.raises(TypeError, match="float32 or float64"):
            K.forward(cost.astype(dt), 1.0, xl, yl, lo, hi)
        with pytest.raises(TypeError, match="float32 or float64"):
            K.values(cost.astype(dt), 1.0, xl, yl, lo, hi)
        with pytest.raises(TypeError, match="float32 or float64"):
            K.forward_sqeuclidean(x.astype(dt), y.astype(dt), 1.0, xl, yl, lo, hi)
    with pytest.raises(TypeError, match="one dtype"):
        K.forward_sqeuclidean(x, y.astype(np.float64), 1.0, xl, yl, lo, hi)
    _, r, aux = K.forward(cost, 1.0, xl, yl, lo, hi)


# ---------------------------------------------------------------------------
# 11. Hypothesis
# ---------------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_hypothesis_against_reference(data):
    dtype = data.draw(st.sampled_from(DTYPES))
    if data.draw(st.booleans()):  # small pairs, many lanes
        B = data.draw(st.sampled_from([1, 2, 3, 17, 33, 65]))
        N = data.draw(st.sampled_from([1, 2, 3, 5, 8, 21, 40]))
        M = data.draw(st.sampled_from([1, 2, 4, 7, 40, 130]))
    else:  # long pairs in column strips
        B = data.draw(st.sampled_from([1, 2, 3]))
        N = data.draw(st.sampled_from([16, 33, 64, 130]))
        M = data.draw(st.sampled_from([100, 257, 640]))
        if dtype is np.float32:  # (wider float32 rows: test_float32_gradients_in_wide_rows)
            M = min(M, 4 * N)
    gamma = data.draw(st.floats(-3, 1).map(lambda e: float(10.0**e)))
    scale = data.draw(st.floats(-2, 4).map(lambda e: float(10.0**e)))
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    xl = rng.integers(1, N + 1, B)
    yl = rng.integers(1, M + 1, B)
    if data.draw(st.booleans()):
        xl[:], yl[:] = N, M
    kind = data.draw(st.sampled_from([None, "sakoe_chiba", "itakura"]))
    constraint = NONE
    if kind == "sakoe_chiba":
        constraint = spec.Constraint(kind, float(data.draw(st.integers(0, 4))))
    elif kind == "itakura":
        constraint = spec.Constraint(kind, data.draw(st.sampled_from([2.0, 3.0])))
        try:
            spec.band_bounds(N, M, xl, yl, constraint)
        except ValueError:
            constraint = NONE
    cost = costs(rng, (B, N, M), dtype, scale)
    threads = data.draw(st.sampled_from([1, 2]))
    check(cost, gamma, xl, yl, constraint, grad_value=rng.standard_normal(B), threads=threads)


# ---------------------------------------------------------------------------
# Contract checks that the core currently fails (kept last; see the report)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_pair_with_no_path_has_zero_gradient(dtype):
    """docs/algorithm.md: "a pair whose every path is forbidden has value +inf and gradient 0"
    (the reference's alignment of such a pair is 0); the kernel contract: grad_cost = gv * E."""
    rng = np.random.default_rng(8)
    B, N, M = 3, 4, 5
    cost = costs(rng, (B, N, M), dtype)
    cost[1, 2, :] = np.inf  # row 2 forbidden: no path
    xl, yl = np.full(B, N, np.int32), np.full(B, M, np.int32)
    lo, hi = spec.band_bounds(N, M, xl, yl)
    value, r, aux = K.forward(cost, 1.0, xl, yl, lo, hi)
    grad, gg = K.backward(r, aux, 1.0, xl, yl, lo, hi, np.ones(B, dtype), True)
    align, vref = ref.soft_dtw_alignment_from_cost(cost.astype(np.float64), 1.0)
    assert value[1] == vref[1] == np.inf and not align[1].any()
    assert gg[1] == 0
    assert not grad[1].any(), np.argwhere(grad[1] != 0).tolist()


def test_bad_shapes_name_the_argument_in_the_wrapper():
    """A cost that is not (B, N, M) and a grad_value that is not (B,) raise ValueError naming
    them (not NumPy's unpacking or reshape message)."""
    cost, xl, yl, lo, hi = _good()
    _, r, aux = K.forward(cost, 1.0, xl, yl, lo, hi)
    x = np.zeros((2, 3, 2), np.float32)
    y = np.zeros((2, 4, 2), np.float32)
    _, sr, saux = K.forward_sqeuclidean(x, y, 1.0, xl, yl, lo, hi)
    cases = [
        (lambda: K.forward(cost[0], 1.0, xl, yl, lo, hi), "cost"),
        (lambda: K.backward(r, aux, 1.0, xl, yl, lo, hi, np.ones(3), False), "grad_value"),
        (lambda: K.backward_sqeuclidean(sr, saux, x, y, 1.0, xl, yl, lo, hi, np.ones(3)), "grad_value"),
    ]
    for fn, name in cases:
        with pytest.raises(ValueError, match=name):
            fn()


def test_state_of_another_dtype_is_refused():
    """backward_sqeuclidean with a float32 state and float64 series (or any output buffer of the
    wrong dtype) must raise, not return zeros: the binding's outputs (Out<T> without
    .noconvert()) accept a converted temporary copy, the kernel writes into it and the caller's
    array is left as allocated."""
    rng = np.random.default_rng(0)
    B, N, M = 2, 3, 4
    x = rng.standard_normal((B, N, 2)).astype(np.float32)
    y = rng.standard_normal((B, M, 2)).astype(np.float32)
    xl, yl = np.full(B, N, np.int32), np.full(B, M, np.int32)
    lo, hi = spec.band_bounds(N, M, xl, yl)
    _, r, aux = K.forward_sqeuclidean(x, y, 1.0, xl, yl, lo, hi)
    gx32, _ = K.backward_sqeuclidean(r, aux, x, y, 1.0, xl, yl, lo, hi, np.ones(B))
    assert np.abs(gx32).max() > 0
    try:
        gx, gy = K.backward_sqeuclidean(r, aux, x.astype(np.float64), y.astype(np.float64), 1.0, xl, yl, lo, hi,
                                        np.ones(B))
    except TypeError:
        pass
    else:
        # accepted: then the gradients must at least be the float32 state's
        assert np.allclose(gx, gx32, rtol=1e-5, atol=1e-5), "gradients silently lost (all zero)"


def test_core_refuses_output_buffers_it_would_copy():
    """softdtw._core writes its outputs in place: an output of the wrong dtype or not
    C-contiguous must raise TypeError, not be converted to a temporary that is thrown away."""
    from softdtw import _core

    rng = np.random.default_rng(0)
    B, N, M = 2, 3, 4
    cost = rng.random((B, N, M)).astype(np.float32)
    xl, yl = np.full(B, N, np.int32), np.full(B, M, np.int32)
    lo, hi = spec.band_bounds(N, M, xl, yl)
    _, r, aux = K.forward(cost, 1.0, xl, yl, lo, hi)
    gv = np.ones(B, np.float32)
    value = np.zeros(B, np.float64)  # float64 output of a float32 cost
    with pytest.raises(TypeError):
        _core.forward(cost, 1.0, xl, yl, lo, hi, value, None, None, 1)
    grad = np.zeros((B, N, 2 * M), np.float32)[:, :, ::2]  # strided
    with pytest.raises(TypeError):
        _core.backward(r.reshape(-1), aux, N, M, 1.0, xl, yl, lo, hi, gv, grad, None, 1)


def _float32_grad_error(cost, gamma):
    B, N, M = cost.shape
    _, grad, _, _ = run(cost, gamma)
    align, _ = ref.soft_dtw_alignment_from_cost(cost.astype(np.float64), gamma)
    return np.abs(grad - align).max() / np.abs(align).max()


def test_float32_gradients_in_wide_rows():
    """float32 gradients where N << M (paths forced along long runs of a row) within the 1e-4 of
    the largest entry that the transposed problem (the same alignment, transposed) meets: the
    core's rows are re-based on their minimum only, so cells far along a wide row are held to
    eps32 * (R - min) / gamma, where R - min grows with the column (the numba kernel gets
    2.3e-5 here; the core, 4.6e-4 on its cost and 5.5e-5 on the transposed cost)."""
    rng = np.random.default_rng(1)
    cost = (rng.random((8, 16, 696)) * 4).astype(np.float32)
    wide = _float32_grad_error(cost, 0.1)
    tall = _float32_grad_error(np.ascontiguousarray(cost.transpose(0, 2, 1)), 0.1)
    assert tall <= 1e-4
    assert wide <= 1e-4, (wide, tall)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seg", [0, 5])
def test_state_moved_to_another_address_gives_the_same_gradients(dtype, seg):
    """The state's layout depends on the problem alone, not on where r lives: a copy at another
    alignment (torch may clone or move saved tensors) gives the same bits; streaming stores are
    an implementation detail of the writes."""
    rng = np.random.default_rng(8)
    B, N, M, D = 5, 40, 90, 2
    x, y = rng.standard_normal((B, N, D)).astype(dtype), rng.standard_normal((B, M, D)).astype(dtype)
    xl, yl = np.full(B, N, np.int32), np.full(B, M, np.int32)
    lo, hi = spec.band_bounds(N, M, xl, yl)
    gv = np.ones(B, dtype)
    if seg:
        value, (r, aux) = K.checkpoint_forward(x, y, None, 0.5, xl, yl, lo, hi, seg)
        want = K.checkpoint_backward(x, y, None, 0.5, xl, yl, lo, hi, seg, (r, aux), gv)
    else:
        value, r, aux = K.forward_sqeuclidean(x, y, 0.5, xl, yl, lo, hi)
        want = K.backward_sqeuclidean(r, aux, x, y, 0.5, xl, yl, lo, hi, gv)
    for shift in (1, 3):  # the same numbers at an address 4 or 12 bytes (8 or 24) further on
        buf = np.empty(r.size + shift, dtype)
        moved = buf[shift:].reshape(r.shape)
        moved[...] = r
        if seg:
            got = K.checkpoint_backward(x, y, None, 0.5, xl, yl, lo, hi, seg, (moved, aux.copy()), gv)
        else:
            got = K.backward_sqeuclidean(moved, aux.copy(), x, y, 0.5, xl, yl, lo, hi, gv)
        for a, b in zip(got, want):
            assert np.array_equal(a, b)
