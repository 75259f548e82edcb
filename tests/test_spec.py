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
