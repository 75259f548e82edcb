"""The NumPy reference against oracles that share no code with it."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import softdtw.numpy as sd
from softdtw.testing import oracles
from softdtw.testing.cases import BAD_COSTS, BAD_PAIRS
from softdtw.testing.strategies import SMALL_LENGTHS, cost_matrices, gammas, problems

SEED_X = np.zeros((4, 3, 2))
SEED_Y = np.arange(24).reshape(4, 3, 2)


def rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b)))


# ---------------------------------------------------------------- golden values


def test_seed_example_values():
    v = sd.soft_dtw(SEED_X, SEED_Y, gamma=0.1)
    np.testing.assert_allclose(v, [54.99999092, 451, 1279, 2539], rtol=1e-6)
    assert abs(v.mean() - 1081) < 1e-5


def test_seed_example_gradient():
    _, gx, _ = sd.soft_dtw_value_and_grad(SEED_X, SEED_Y, gamma=0.1)
    gx = gx / 4  # gradient of the mean
    np.testing.assert_allclose(
        gx[0], [[0, -0.5], [-0.999955, -1.499977], [-2.000045, -2.500068]], atol=1e-6)
    for k in range(1, 4):
        np.testing.assert_allclose(gx[k], -(6 * k + np.arange(6).reshape(3, 2)) / 2, atol=1e-6)


# ---------------------------------------------------------------- brute force


def test_path_count_is_delannoy():
    for n in range(1, 6):
        for m in range(1, 6):
            assert len(oracles.alignment_paths(n, m)) == oracles.delannoy(n - 1, m - 1)
    assert oracles.delannoy(3, 3) == 63


@given(cost_matrices(lengths=SMALL_LENGTHS))
def test_matches_brute_force(problem):
    cost, gamma = problem
    align, value = sd.soft_dtw_alignment_from_cost(cost, gamma)
    for b in range(cost.shape[0]):
        v_ref, a_ref = oracles.brute_force(cost[b], gamma)
        assert abs(value[b] - v_ref) <= 1e-12 * max(1.0, abs(v_ref))
        np.testing.assert_allclose(align[b], a_ref, rtol=1e-12, atol=1e-12)


@given(cost_matrices(lengths=SMALL_LENGTHS), st.sampled_from([("sakoe_chiba", 0), ("sakoe_chiba", 1), ("itakura", 2.0), ("itakura", 3.0)]))
def test_band_matches_brute_force(problem, band):
    cost, gamma = problem
    kind, param = band
    kw = {"sakoe_chiba_radius": param} if kind == "sakoe_chiba" else {"itakura_max_slope": param}
    n, m = cost.shape[1:]
    from softdtw import spec
    try:
        mask = spec.band_mask(n, m, spec.check_constraint(kind, **kw))
    except ValueError:
        return  # infeasible band: raising is the documented behaviour (tested separately)
    align, value = sd.soft_dtw_alignment_from_cost(cost, gamma, global_constraint=kind, **kw)
    for b in range(cost.shape[0]):
        v_ref, a_ref = oracles.brute_force(cost[b], gamma, mask)
        assert abs(value[b] - v_ref) <= 1e-12 * max(1.0, abs(v_ref))
        np.testing.assert_allclose(align[b], a_ref, rtol=1e-12, atol=1e-12)
        assert np.all(align[b][~mask] == 0)


# ---------------------------------------------------------------- gradients


@given(problems(lengths=(1, 2, 3, 5), scale_range=(1e-1, 1e1), gamma=gammas(1e-1, 1e1)))
def test_gradient_matches_finite_differences(problem):
    x, y, gamma = problem
    _, gx, gy = sd.soft_dtw_value_and_grad(x, y, gamma)
    fdx = oracles.central_difference(lambda a: sd.soft_dtw(a, y, gamma).sum(), x)
    fdy = oracles.central_difference(lambda a: sd.soft_dtw(x, a, gamma).sum(), y)
    scale = max(1.0, np.abs(gx).max(), np.abs(gy).max())
    assert np.abs(gx - fdx).max() <= 1e-5 * scale
    assert np.abs(gy - fdy).max() <= 1e-5 * scale


@given(problems(lengths=(1, 2, 3, 5), scale_range=(1e-1, 1e1), gamma=gammas(1e-1, 1e1)))
def test_divergence_gradient_matches_finite_differences(problem):
    x, y, gamma = problem
    _, gx, gy = sd.soft_dtw_value_and_grad(x, y, gamma, normalize=True)
    fdx = oracles.central_difference(lambda a: sd.soft_dtw(a, y, gamma, normalize=True).sum(), x)
    fdy = oracles.central_difference(lambda a: sd.soft_dtw(x, a, gamma, normalize=True).sum(), y)
    scale = max(1.0, np.abs(gx).max(), np.abs(gy).max())
    assert np.abs(gx - fdx).max() <= 1e-5 * scale
    assert np.abs(gy - fdy).max() <= 1e-5 * scale


@given(cost_matrices(gamma=gammas(1e-2, 1e1)))
def test_gamma_gradient_matches_finite_differences(problem):
    cost, gamma = problem
    _, g = sd.soft_dtw_gamma_grad_from_cost(cost, gamma)
    h = gamma * 1e-5
    fd = (sd.soft_dtw_from_cost(cost, gamma + h) - sd.soft_dtw_from_cost(cost, gamma - h)) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- properties


@given(cost_matrices(lengths=(1, 2, 3, 5, 8), gamma=st.just(1e-4)))
def test_small_gamma_tends_to_hard_dtw(problem):
    cost, gamma = problem
    v = sd.soft_dtw_from_cost(cost, gamma)
    n, m = cost.shape[1:]
    for b in range(cost.shape[0]):
        hard = oracles.hard_dtw(cost[b])
        # soft-min is between min - gamma log(#paths) and min
        assert hard - gamma * np.log(oracles.delannoy(n - 1, m - 1)) - 1e-9 <= v[b] <= hard + 1e-9


@given(problems())
def test_divergence_nonnegative_and_zero_on_diagonal(problem):
    x, y, gamma = problem
    d = sd.soft_dtw(x, y, gamma, normalize=True)
    scale = np.abs(sd.soft_dtw(x, y, gamma)).max()
    assert np.all(d >= -1e-12 * max(1.0, scale))
    assert np.all(sd.soft_dtw(x, x, gamma, normalize=True) == 0)
    _, gx, _ = sd.soft_dtw_value_and_grad(x, x.copy(), gamma, normalize=True)
    assert np.abs(gx).max() <= 1e-10 * max(1.0, np.abs(x).max())


@given(problems())
def test_symmetry(problem):
    x, y, gamma = problem
    a, b = sd.soft_dtw(x, y, gamma), sd.soft_dtw(y, x, gamma)
    assert rel(a, b) <= 1e-12


@given(problems())
def test_batch_consistency(problem):
    x, y, gamma = problem
    batched = sd.soft_dtw(x, y, gamma)
    _, gx, gy = sd.soft_dtw_value_and_grad(x, y, gamma)
    for b in range(x.shape[0]):
        v1, gx1, gy1 = sd.soft_dtw_value_and_grad(x[b], y[b], gamma)
        assert np.ndim(v1) == 0
        assert batched[b] == v1
        # the matmul of the chain rule may round differently batched (BLAS): 1e-13
        np.testing.assert_allclose(gx[b], gx1, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(gy[b], gy1, rtol=1e-13, atol=1e-13)


@given(problems(gamma=gammas(1e-3, 1e2), scale_range=(1e-3, 1e3)))
def test_finite_everywhere(problem):
    x, y, gamma = problem
    v, gx, gy = sd.soft_dtw_value_and_grad(x, y, gamma)
    assert np.all(np.isfinite(v)) and np.all(np.isfinite(gx)) and np.all(np.isfinite(gy))


def test_large_costs_small_gamma_stay_finite():
    rng = np.random.default_rng(0)
    cost = rng.random((2, 7, 9)) * 1e6
    align, value = sd.soft_dtw_alignment_from_cost(cost, 1e-2)
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(align))
    # each anti-diagonal band of a path is crossed once: the alignment mass sums to >= max(N, M)
    assert align.sum(axis=(1, 2)).min() >= 9 - 1e-9


@given(problems(lengths=(2, 3, 5)))
def test_variable_lengths_equal_unpadded(problem):
    x, y, gamma = problem
    b, n, _ = x.shape
    m = y.shape[1]
    rng = np.random.default_rng(0)
    xl = rng.integers(1, n + 1, size=b)
    yl = rng.integers(1, m + 1, size=b)
    v, gx, gy = sd.soft_dtw_value_and_grad(x, y, gamma, x_lengths=xl, y_lengths=yl, normalize=True)
    for k in range(b):
        v1, gx1, gy1 = sd.soft_dtw_value_and_grad(x[k, :xl[k]], y[k, :yl[k]], gamma, normalize=True)
        assert rel(v[k], v1) <= 1e-12
        np.testing.assert_allclose(gx[k, :xl[k]], gx1, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(gy[k, :yl[k]], gy1, rtol=1e-10, atol=1e-12)
        assert np.all(gx[k, xl[k]:] == 0) and np.all(gy[k, yl[k]:] == 0)


def test_inputs_unchanged_and_integer_input():
    x = SEED_X.copy()
    y = SEED_Y.copy()
    sd.soft_dtw_value_and_grad(x, y, 0.1, normalize=True)
    np.testing.assert_array_equal(x, SEED_X)
    np.testing.assert_array_equal(y, SEED_Y)
    assert sd.soft_dtw(x, y, 0.1).dtype == np.float64


def test_dist_func():
    rng = np.random.default_rng(1)
    x, y = rng.random((2, 4, 3)), rng.random((2, 5, 3))
    l1 = lambda a, b: np.abs(a[:, :, None, :] - b[:, None, :, :]).sum(-1)  # noqa: E731
    v = sd.soft_dtw(x, y, 0.5, dist_func=l1)
    for b in range(2):
        v_ref, _ = oracles.brute_force(np.abs(x[b][:, None] - y[b][None]).sum(-1), 0.5)
        assert rel(v[b], v_ref) <= 1e-12
    with pytest.raises(ValueError, match="dist_func"):
        sd.soft_dtw(x, y, 0.5, dist_func=lambda a, b: np.zeros((2, 4)))


def test_sqeuclidean_cost_matches_loop():
    rng = np.random.default_rng(2)
    x, y = rng.random((3, 4)), rng.random((5, 4))
    np.testing.assert_allclose(sd.sqeuclidean_cost(x, y), oracles.sqeuclidean(x, y), rtol=1e-14)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "x, y, kw, exc, match",
    BAD_PAIRS + [(np.array([["a"]]), np.zeros((1, 1)), {}, TypeError, "x must hold real numbers")],
)
def test_bad_input(x, y, kw, exc, match):
    with pytest.raises(exc, match=match):
        sd.soft_dtw(x, y, **kw)


@pytest.mark.parametrize("cost, exc, match", BAD_COSTS)
def test_bad_cost(cost, exc, match):
    with pytest.raises(exc, match=match):
        sd.soft_dtw_from_cost(cost)
