"""The checkpointed numba kernel (softdtw.kernels.numba_checkpoint) against the NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest

from softdtw import spec
from softdtw.numpy import soft_dtw_alignment_from_cost, soft_dtw_value_and_grad

K = pytest.importorskip("softdtw.kernels.numba_checkpoint")

CONSTRAINTS = [(None, {}), ("sakoe_chiba", dict(global_constraint="sakoe_chiba", sakoe_chiba_radius=2)),
               ("itakura", dict(global_constraint="itakura", itakura_max_slope=2.0))]


def _bounds(n, m, xl, yl, kw):
    c = spec.check_constraint(kw.get("global_constraint"), kw.get("sakoe_chiba_radius"), kw.get("itakura_max_slope"))
    return spec.band_bounds(n, m, xl, yl, c)


@pytest.mark.parametrize("name,kw", CONSTRAINTS)
def test_squared_euclidean_against_reference_any_band_size(name, kw):
    rng = np.random.default_rng(1)
    B, N, M, D = 4, 11, 9, 3
    x, y = rng.normal(size=(B, N, D)), rng.normal(size=(B, M, D))
    xl, yl = np.array([11, 5, 8, 1]), np.array([9, 9, 4, 1])
    if name == "itakura":
        xl, yl = np.array([11, 8, 9, 6]), np.array([9, 7, 9, 5])
    lo, hi = _bounds(N, M, xl, yl, kw)
    gv = rng.normal(size=B)
    v_ref, gx_ref, gy_ref = soft_dtw_value_and_grad(x, y, 0.7, x_lengths=xl, y_lengths=yl, **kw)
    results = []
    for seg in (1, 2, 3, 5, N):
        v, ck = K.forward(x, y, None, 0.7, xl, yl, lo, hi, seg)
        assert ck.shape == (B, N // seg + 1, M + 1)  # the only (., ., M) state kept
        gx, gy = K.backward(x, y, None, 0.7, xl, yl, lo, hi, seg, ck, gv)
        np.testing.assert_allclose(v, v_ref, rtol=1e-12)
        np.testing.assert_allclose(gx, gx_ref * gv[:, None, None], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(gy, gy_ref * gv[:, None, None], rtol=1e-10, atol=1e-12)
        results.append((v, gx, gy))
    for v, gx, gy in results[1:]:  # the band size changes nothing, to the last bit
        assert all(np.array_equal(a, b) for a, b in zip((v, gx, gy), results[0]))


def test_cost_matrix_and_threads():
    rng = np.random.default_rng(2)
    B, N, M = 5, 8, 10
    cost = rng.random((B, N, M)) * 3
    xl, yl = np.array([8, 3, 6, 8, 2]), np.array([10, 10, 4, 1, 7])
    lo, hi = _bounds(N, M, xl, yl, {})
    align, v_ref = soft_dtw_alignment_from_cost(cost, 0.3, x_lengths=xl, y_lengths=yl)
    for threads in (1, 2):
        v, ck = K.forward(None, None, cost, 0.3, xl, yl, lo, hi, 3, threads=threads)
        g = K.backward(None, None, cost, 0.3, xl, yl, lo, hi, 3, ck, np.ones(B), threads=threads)
        np.testing.assert_allclose(v, v_ref, rtol=1e-12)
        np.testing.assert_allclose(g, align, rtol=1e-10, atol=1e-13)


def test_small_gamma_large_cost_finite():
    rng = np.random.default_rng(3)
    cost = rng.random((2, 9, 9)) * 1e4
    xl = yl = np.array([9, 9])
    lo, hi = _bounds(9, 9, xl, yl, {})
    v, ck = K.forward(None, None, cost, 1e-3, xl, yl, lo, hi, 3)
    g = K.backward(None, None, cost, 1e-3, xl, yl, lo, hi, 3, ck, np.ones(2))
    assert np.isfinite(v).all() and np.isfinite(g).all()
    align, v_ref = soft_dtw_alignment_from_cost(cost, 1e-3)
    np.testing.assert_allclose(v, v_ref, rtol=1e-12)
    np.testing.assert_allclose(g, align, atol=1e-9)
