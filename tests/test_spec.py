"""The spec's layout helpers, band definitions and validation."""

import numpy as np
import pytest

from softdtw import spec


@pytest.mark.parametrize("n, m", [(1, 1), (1, 4), (4, 1), (3, 5), (6, 2)])
def test_skew_roundtrip(n, m):
    a = np.arange(2 * n * m, dtype=float).reshape(2, n, m) + 1
    s = spec.skew(np, a, -1.0)
    assert s.shape == (2, n, n + m - 1)
    for i in range(n):
        for k in range(n + m - 1):
            expected = a[:, i, k - i] if 0 <= k - i < m else -1.0
            np.testing.assert_array_equal(s[:, i, k], expected)
    np.testing.assert_array_equal(spec.unskew(np, s, m), a)


def test_softmin_stable_and_infinite():
    v = spec.softmin(np, np.array([1e6, np.inf]), np.array([1e6 + 1, np.inf]), np.array([2e6, np.inf]), 1e-2)
    assert v[0] == pytest.approx(1e6) and v[1] == np.inf
    w = spec.softmin_weights(np, np.array([np.inf]), np.array([np.inf]), np.array([np.inf]), 1.0)
    assert all(wi[0] == 0 for wi in w)


@pytest.mark.parametrize("n, m", [(1, 1), (1, 4), (4, 1), (3, 5), (6, 2)])
def test_backward_push_equals_backward_step(n, m):
    # the two statements of the backward recursion (pull: backward_step, push: backward_push and
    # backward_receive) give the same alignment over a whole matrix
    rng = np.random.default_rng(n * 10 + m)
    cost = rng.random((2, n, m))
    c = spec.cost_diagonals(np, cost)
    d0, d1 = spec.boundary_diagonals(np, np.zeros((2, n + 1)))
    r = [d0, d1]
    for k in range(2, n + m + 1):
        r.append(spec.forward_step(np, r[k - 2], r[k - 1], c[k - 2], 0.7))
    seed = np.zeros((2, n + 1))
    seed[:, n] = 1.0
    zeros, no_w = np.zeros((2, n + 1)), (np.zeros((2, n + 1)),) * 3
    e1 = e2 = zeros
    w1 = w2 = no_w
    up, left, pending = np.zeros((2, n + 1)), np.zeros((2, n)), np.zeros((2, n + 1))
    for k in range(n + m, 1, -1):
        s = seed if k == n + m else zeros
        e = spec.backward_step(np, e1, e2, w1, w2, s)
        w = spec.diagonal_weights(np, r[k - 2], r[k - 1], 0.7)
        ep = spec.backward_receive(np, up, left) + s[:, 1:]
        up, left, pending = spec.backward_push(np, ep, tuple(x[:, 1:] for x in w), pending)
        np.testing.assert_allclose(ep, e[:, 1:], rtol=1e-13, atol=1e-15)
        e1, e2, w1, w2 = e, e1, w, w1


tslearn_masks = pytest.importorskip("tslearn.metrics._masks")


@pytest.mark.parametrize("n, m", [(1, 1), (4, 4), (3, 7), (7, 3), (10, 6), (5, 12)])
@pytest.mark.parametrize("radius", [0, 1, 3])
def test_sakoe_chiba_matches_tslearn(n, m, radius):
    expected = tslearn_masks.sakoe_chiba_mask(n, m, radius=radius)
    got = spec.band_mask(n, m, spec.check_constraint("sakoe_chiba", sakoe_chiba_radius=radius))
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("n, m", [(4, 4), (6, 6), (5, 8), (8, 5), (12, 9), (20, 20)])
@pytest.mark.parametrize("slope", [2.0, 3.0, 1.5])
def test_itakura_matches_tslearn(n, m, slope):
    try:
        expected = tslearn_masks.itakura_mask(n, m, max_slope=slope)
    except RuntimeWarning:
        with pytest.raises(ValueError, match="itakura_max_slope"):
            spec.band_mask(n, m, spec.check_constraint("itakura", itakura_max_slope=slope))
        return
    got = spec.band_mask(n, m, spec.check_constraint("itakura", itakura_max_slope=slope))
    np.testing.assert_array_equal(got, expected)


def test_constraint_inference():
    assert spec.check_constraint() == (None, None)
    assert spec.check_constraint(sakoe_chiba_radius=2) == ("sakoe_chiba", 2.0)
    assert spec.check_constraint(itakura_max_slope=3) == ("itakura", 3.0)
    assert spec.check_constraint("sakoe_chiba") == ("sakoe_chiba", 1.0)
    assert spec.check_constraint("itakura") == ("itakura", 2.0)
    assert spec.check_constraint("itakura", 5, 3.0) == ("itakura", 3.0)
    with pytest.raises(ValueError, match="global_constraint"):
        spec.check_constraint(None, 2, 3.0)


def test_row_bounds_are_the_mask_rows():
    # the O(n + m) bounds equal the rows of the (n, m) masks (tslearn's definitions)
    rng = np.random.default_rng(7)
    constraints = [spec.Constraint(None, None)] + [spec.Constraint("sakoe_chiba", float(r)) for r in (0, 1, 3, 40)] + [
        spec.Constraint("itakura", s) for s in (1.5, 2.0, 3.0, 7.5)]
    for _ in range(60):
        n, m = (int(v) for v in rng.integers(1, 40, 2))
        for c in constraints:
            try:
                mask = spec.band_mask(n, m, c)
            except ValueError:
                with pytest.raises(ValueError, match="itakura"):
                    spec.row_bounds(n, m, c)
                continue
            lo, hi = spec.row_bounds(n, m, c)
            cols = np.arange(m)
            np.testing.assert_array_equal((cols >= lo[:, None]) & (cols < hi[:, None]), mask, err_msg=f"{n} {m} {c}")
