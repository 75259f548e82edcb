"""The NumPy reference under the conventions of docs/algorithm.md: padding is never read, non-finite
series and costs, gamma the compute dtype can use, lengths and band arguments, and tslearn's
variable-length datasets (NaN-padded arrays, nested lists, lists of arrays)."""

import warnings

import os

import numpy as np
import pytest

import softdtw.numpy as sd
from softdtw import spec

pytest.importorskip("tslearn")
pytest.importorskip("scipy")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # tslearn warns at import when h5py is missing
    from tslearn.barycenters import softdtw_barycenter as tslearn_barycenter
    from tslearn.metrics import cdist_soft_dtw as tslearn_cdist
    from tslearn.metrics import cdist_soft_dtw_normalized as tslearn_cdist_normalized

GAMMA = 0.7
XL, YL = np.array([6, 4, 3]), np.array([3, 5, 3])  # per-pair lengths of the padded batches
BANDS = [{}, {"sakoe_chiba_radius": 1}, {"itakura_max_slope": 3.0}]


def batch(seed=0, d=2):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((3, 6, d)), rng.standard_normal((3, 5, d))


def padded(a, lengths, value):
    """A copy of ``a`` (B, L, ...) holding ``value`` beyond each pair's length."""
    a = a.copy()
    a[np.arange(a.shape[1])[None, :] >= np.asarray(lengths)[:, None]] = value
    return a


def l1(a, b):
    return np.abs(a[:, :, None, :] - b[:, None, :, :]).sum(-1)


def close(got, expected, tol=1e-12):
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)


# ---------------------------------------------------------------- 1. padding is never read


@pytest.mark.parametrize("band", BANDS)
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("pad", [np.nan, np.inf, -np.inf, 1e30])
def test_value_and_grad_never_read_the_padding(pad, normalize, band):
    x, y = batch()
    xp, yp = padded(x, XL, pad), padded(y, YL, pad)
    given = xp.copy(), yp.copy()
    v, gx, gy = sd.soft_dtw_value_and_grad(xp, yp, GAMMA, normalize=normalize, x_lengths=XL, y_lengths=YL, **band)
    np.testing.assert_array_equal(xp, given[0])  # the caller's arrays are not written
    np.testing.assert_array_equal(yp, given[1])
    for b, (n, m) in enumerate(zip(XL, YL)):
        v1, gx1, gy1 = sd.soft_dtw_value_and_grad(x[b, :n], y[b, :m], GAMMA, normalize=normalize, **band)
        close(v[b], v1)
        close(gx[b, :n], gx1)
        close(gy[b, :m], gy1)
        assert (gx[b, n:] == 0).all() and (gy[b, m:] == 0).all()
    v1, gx1, gy1 = sd.soft_dtw_value_and_grad(xp[1], yp[1], GAMMA, normalize=normalize, x_lengths=XL[1],
                                              y_lengths=[YL[1]], **band)  # one unbatched pair
    close(v1, v[1])
    close(gx1, gx[1])
    close(gy1, gy[1])


SERIES_ENTRIES = {  # name: f(x, y, **kw) -> (values, alignments or None)
    "soft_dtw": lambda x, y, **kw: (sd.soft_dtw(x, y, GAMMA, **kw), None),
    "divergence": lambda x, y, **kw: (sd.soft_dtw(x, y, GAMMA, normalize=True, **kw), None),
    "dist_func divergence": lambda x, y, **kw: (sd.soft_dtw(x, y, GAMMA, normalize=True, dist_func=l1, **kw), None),
    "alignment": lambda x, y, **kw: sd.soft_dtw_alignment(x, y, GAMMA, **kw)[::-1],
    "dist_func alignment": lambda x, y, **kw: sd.soft_dtw_alignment(x, y, GAMMA, dist_func=l1, **kw)[::-1],
}
COST_ENTRIES = {  # name: f(cost, **kw) -> (values, alignments or per-pair gamma gradients or None)
    "from_cost": lambda c, **kw: (sd.soft_dtw_from_cost(c, GAMMA, **kw), None),
    "alignment_from_cost": lambda c, **kw: sd.soft_dtw_alignment_from_cost(c, GAMMA, **kw)[::-1],
    "gamma_grad_from_cost": lambda c, **kw: sd.soft_dtw_gamma_grad_from_cost(c, GAMMA, **kw),
}


def check_against_unpadded(got, one_pair):
    """``got`` (values, extra) of the padded batch against ``one_pair(b)`` of each unpadded pair."""
    v, extra = got
    for b, (n, m) in enumerate(zip(XL, YL)):
        v1, extra1 = one_pair(b)
        close(v[b], v1)
        if extra is not None and extra.ndim == 1:  # gamma gradients
            close(extra[b], extra1)
        elif extra is not None:  # alignments: equal on the used cells, exactly 0 on the padded ones
            close(extra[b, :n, :m], extra1)
            assert (extra[b, n:] == 0).all() and (extra[b, :, m:] == 0).all()


@pytest.mark.parametrize("band", BANDS)
@pytest.mark.parametrize("pad", [np.nan, np.inf, 1e30])
@pytest.mark.parametrize("entry", sorted(SERIES_ENTRIES))
def test_series_entry_points_never_read_the_padding(entry, pad, band):
    f = SERIES_ENTRIES[entry]
    x, y = batch(1)
    got = f(padded(x, XL, pad), padded(y, YL, pad), x_lengths=XL, y_lengths=YL, **band)
    check_against_unpadded(got, lambda b: f(x[b, :XL[b]], y[b, :YL[b]], **band))


@pytest.mark.parametrize("band", BANDS)
@pytest.mark.parametrize("pad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("entry", sorted(COST_ENTRIES))
def test_cost_entry_points_never_read_the_padding(entry, pad, band):
    f = COST_ENTRIES[entry]
    x, y = batch(2)
    cost = sd.sqeuclidean_cost(x, y)
    used = (np.arange(6)[None, :, None] < XL[:, None, None]) & (np.arange(5)[None, None, :] < YL[:, None, None])
    got = f(np.where(used, cost, pad), x_lengths=XL, y_lengths=YL, **band)
    check_against_unpadded(got, lambda b: f(cost[b, :XL[b], :YL[b]], **band))


# ---------------------------------------------------------------- 2. gamma the dtype can use


def entry_calls(n=50):
    """Every NumPy entry point on series (or costs, datasets) of length ``n``: name -> f(gamma)."""
    x, y, cost, data = np.zeros((n, 1)), np.ones((n, 1)), np.ones((n, n)), np.arange(2.0 * n).reshape(2, n, 1)
    return {
        "soft_dtw": lambda g: sd.soft_dtw(x, y, g),
        "divergence": lambda g: sd.soft_dtw(x, y, g, normalize=True),
        "value_and_grad": lambda g: sd.soft_dtw_value_and_grad(x, y, g),
        "alignment": lambda g: sd.soft_dtw_alignment(x, y, g),
        "from_cost": lambda g: sd.soft_dtw_from_cost(cost, g),
        "alignment_from_cost": lambda g: sd.soft_dtw_alignment_from_cost(cost, g),
        "gamma_grad_from_cost": lambda g: sd.soft_dtw_gamma_grad_from_cost(cost, g),
        "cdist": lambda g: sd.cdist_soft_dtw(data, gamma=g),
        "cdist divergence": lambda g: sd.cdist_soft_dtw(data, data[:1], gamma=g, normalize=True),
        "barycenter": lambda g: sd.soft_dtw_barycenter(data, g, max_iter=2),
    }


@pytest.mark.parametrize("gamma", [1e-320, 5e-324, 1e306])  # subnormal; entropy term beyond max / 16
@pytest.mark.parametrize("entry", sorted(entry_calls()))
def test_gamma_the_dtype_cannot_hold_raises(entry, gamma):
    with pytest.raises(ValueError, match=r"gamma=.*float64"):
        entry_calls()[entry](gamma)


@pytest.mark.parametrize("entry", sorted(entry_calls()))
def test_extreme_gammas_the_dtype_holds_run_without_warnings(entry):
    for gamma in (3e-308, 1e-300, 1e300):  # normal, and gamma * (N + M) * log 3 far below max / 16
        out = entry_calls()[entry](gamma)
        for a in out if isinstance(out, tuple) else (out,):
            assert not np.isnan(a).any()


def test_large_costs_with_a_tiny_gamma_stay_exact():
    """Exponents -(a - m) / gamma beyond float64 are exactly 0 (no overflow warning)."""
    x, y = batch(3)
    v, gx, _ = sd.soft_dtw_value_and_grad(1e5 * x, y, 1e-300)
    v_hard, gx_hard, _ = sd.soft_dtw_value_and_grad(1e5 * x, y, 1e-12)
    close(v, v_hard)
    close(gx, gx_hard, 1e-9)


def test_float32_cdist_checks_gamma_for_float32():
    data = np.arange(100.0).reshape(2, 50, 1)
    for gamma in (1e-39, 1e36):  # float64 holds both, float32 neither
        assert np.isfinite(sd.cdist_soft_dtw(data, gamma=gamma)).all()
        with pytest.raises(ValueError, match=r"gamma=.*float32"):
            sd.cdist_soft_dtw(data.astype(np.float32), gamma=gamma)


# ---------------------------------------------------------------- 3. non-finite series and costs


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("side", ["x", "y"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_series_makes_its_pair_nan(bad, side, normalize):
    x, y = batch(4)
    xb, yb = padded(x, XL, np.nan), padded(y, YL, np.nan)
    (xb if side == "x" else yb)[1, 1, 0] = bad
    v, gx, gy = sd.soft_dtw_value_and_grad(xb, yb, GAMMA, normalize=normalize, x_lengths=XL, y_lengths=YL)
    v0, gx0, gy0 = sd.soft_dtw_value_and_grad(x, y, GAMMA, normalize=normalize, x_lengths=XL, y_lengths=YL)
    assert np.isnan(v[1])
    assert np.isnan(gx[1, :XL[1]]).all() and (gx[1, XL[1]:] == 0).all()
    assert np.isnan(gy[1, :YL[1]]).all() and (gy[1, YL[1]:] == 0).all()
    keep = [0, 2]  # the other pairs are unaffected
    close(v[keep], v0[keep])
    close(gx[keep], gx0[keep])
    close(gy[keep], gy0[keep])
    value = sd.soft_dtw(xb, yb, GAMMA, normalize=normalize, x_lengths=XL, y_lengths=YL)
    assert np.isnan(value[1])
    close(value[keep], v0[keep])
    alignment, value = sd.soft_dtw_alignment(xb, yb, GAMMA, x_lengths=XL, y_lengths=YL)
    assert np.isnan(value[1]) and np.isfinite(value[keep]).all()
    assert np.isnan(alignment[1, :XL[1], :YL[1]]).all()
    assert (alignment[1, XL[1]:] == 0).all() and (alignment[1, :, YL[1]:] == 0).all()


def test_one_non_finite_pair_with_inf_on_both_sides():
    v, gx, gy = sd.soft_dtw_value_and_grad(np.array([[np.inf], [1.0]]), np.array([[np.inf]]), GAMMA)
    assert np.isnan(v) and np.isnan(gx).all() and np.isnan(gy).all()


def test_inf_cost_forbids_a_cell_as_a_band():
    x, y = batch(5)
    cost = sd.sqeuclidean_cost(x, y)
    band = {"sakoe_chiba_radius": 0}
    mask = spec.valid_cells(6, 5, np.full(3, 6), np.full(3, 5), spec.check_constraint(**band))
    a_band, v_band = sd.soft_dtw_alignment_from_cost(np.where(mask, cost, np.nan), GAMMA, **band)  # NaN unread
    a_inf, v_inf = sd.soft_dtw_alignment_from_cost(np.where(mask, cost, np.inf), GAMMA)
    close(v_inf, v_band)
    close(a_inf, a_band)
    assert (a_inf[~mask] == 0).all()
    _, g_band = sd.soft_dtw_gamma_grad_from_cost(cost, GAMMA, **band)
    _, g_inf = sd.soft_dtw_gamma_grad_from_cost(np.where(mask, cost, np.inf), GAMMA)
    close(g_inf, g_band)


@pytest.mark.parametrize("blocked", [[[np.inf, 1.0], [1.0, 0.0]], [[0.0, np.inf], [np.inf, np.inf]],
                                     [[0.0, 1.0], [np.inf, np.inf]]])
def test_a_pair_with_no_finite_path_is_inf_with_zero_gradients(blocked):
    cost = np.array([np.ones((2, 2)), blocked])
    alignment, value = sd.soft_dtw_alignment_from_cost(cost, GAMMA)
    v, g = sd.soft_dtw_gamma_grad_from_cost(cost, GAMMA)
    assert value[1] == np.inf and v[1] == np.inf
    assert (alignment[1] == 0).all() and g[1] == 0
    close(value[0], sd.soft_dtw_from_cost(np.ones((2, 2)), GAMMA))


@pytest.mark.parametrize("bad", [np.nan, -np.inf])
def test_nan_or_minus_inf_in_a_used_cost_cell_makes_the_pair_nan(bad):
    x, y = batch(6)
    cost = sd.sqeuclidean_cost(x, y)
    broken = padded(cost, XL, np.nan)
    broken[2, 1, 0] = bad
    broken[0, 0, 4] = np.inf  # a forbidden cell elsewhere changes nothing of the rule
    alignment, value = sd.soft_dtw_alignment_from_cost(broken, GAMMA, x_lengths=XL, y_lengths=YL)
    v, g = sd.soft_dtw_gamma_grad_from_cost(broken, GAMMA, x_lengths=XL, y_lengths=YL)
    assert np.isnan(value[2]) and np.isnan(v[2]) and np.isnan(g[2])
    assert np.isnan(alignment[2, :XL[2], :YL[2]]).all()
    assert (alignment[2, XL[2]:] == 0).all() and (alignment[2, :, YL[2]:] == 0).all()
    assert np.isfinite(value[:2]).all() and np.isfinite(alignment[:2]).all() and np.isfinite(g[:2]).all()
    close(value[1], sd.soft_dtw_from_cost(cost[1, :XL[1], :YL[1]], GAMMA))


def test_dist_func_non_finite_costs_follow_the_cost_rule():
    x, y = batch(7)

    def dist(a, b):
        c = sd.sqeuclidean_cost(a, b)
        c[0, 0, 1] = np.inf  # forbidden
        c[1, 2, 2] = np.nan  # pair 1: NaN
        c[2, :, :] = np.inf  # pair 2: no path
        return c

    value = sd.soft_dtw(x, y, GAMMA, dist_func=dist)
    cost = sd.sqeuclidean_cost(x, y)
    cost[0, 0, 1] = np.inf
    close(value[0], sd.soft_dtw_from_cost(cost[0], GAMMA))
    assert np.isnan(value[1]) and value[2] == np.inf


# ---------------------------------------------------------------- 4. argument errors


@pytest.mark.parametrize("kw, name", [({"x_lengths": [3, 2]}, "x_lengths"), ({"y_lengths": [[2]]}, "y_lengths"),
                                      ({"x_lengths": np.array([1, 2, 3])}, "x_lengths")])
def test_lengths_of_the_wrong_shape_for_one_pair_name_them(kw, name):
    x, y = np.zeros((5, 2)), np.zeros((4, 2))
    for call in (lambda: sd.soft_dtw(x, y, **kw), lambda: sd.soft_dtw_value_and_grad(x, y, **kw),
                 lambda: sd.soft_dtw_alignment(x, y, **kw), lambda: sd.soft_dtw_from_cost(np.zeros((5, 4)), **kw),
                 lambda: sd.soft_dtw_alignment_from_cost(np.zeros((5, 4)), **kw)):
        with pytest.raises(ValueError, match=name):
            call()
    # a scalar or a one-element sequence is one pair's length
    x, y = batch(8)
    close(sd.soft_dtw(x[0], y[0], x_lengths=3, y_lengths=[2]), sd.soft_dtw(x[0, :3], y[0, :2]))


def test_sakoe_chiba_radius_beyond_any_length_is_no_band():
    x, y = batch(9)
    cost = sd.sqeuclidean_cost(x, y)
    r = {"sakoe_chiba_radius": 2**63}
    for f in (lambda **kw: sd.soft_dtw(x, y, GAMMA, **kw),
              lambda **kw: sd.soft_dtw(x, y, GAMMA, normalize=True, x_lengths=XL, **kw),
              lambda **kw: sd.soft_dtw_value_and_grad(x, y, GAMMA, y_lengths=YL, **kw),
              lambda **kw: sd.soft_dtw_alignment(x, y, GAMMA, **kw),
              lambda **kw: sd.soft_dtw_from_cost(cost, GAMMA, **kw),
              lambda **kw: sd.soft_dtw_alignment_from_cost(cost, GAMMA, **kw),
              lambda **kw: sd.soft_dtw_gamma_grad_from_cost(cost, GAMMA, **kw),
              lambda **kw: sd.cdist_soft_dtw(x, y, GAMMA, **kw),
              lambda **kw: sd.cdist_soft_dtw(x, gamma=GAMMA, normalize=True, **kw),
              lambda **kw: sd.soft_dtw_barycenter(x, GAMMA, max_iter=3, **kw)):
        for got, expected in zip(f(**r), f()):
            close(got, expected)


@pytest.mark.parametrize("dtype", [complex, bool])
def test_dist_func_returning_complex_or_bool_raises_type_error(dtype):
    x, y = batch(10)
    for call in (sd.soft_dtw, sd.soft_dtw_alignment):
        with pytest.raises(TypeError, match="dist_func's result must hold real numbers"):
            call(x, y, dist_func=lambda a, b: np.ones((3, 6, 5), dtype=dtype))


# ---------------------------------------------------------------- 5. tslearn's variable-length datasets


def nan_padded(seed, lengths, size, d=2):
    """tslearn's ``to_time_series_dataset`` of random walks of the given lengths."""
    rng = np.random.default_rng(seed)
    return padded(np.cumsum(rng.standard_normal((len(lengths), size, d)), axis=1), lengths, np.nan)


FORMS = {  # a NaN-padded dataset (n, L, D) in each accepted form
    "array": lambda X: X,
    "nested lists": lambda X: X.tolist(),
    "list of padded arrays": lambda X: list(X),
    "list of arrays": lambda X: [s[~np.isnan(s).all(axis=1)] for s in X],
    "list of ragged lists": lambda X: [s[~np.isnan(s).all(axis=1)].tolist() for s in X],
    "list of arrays with some NaN rows": lambda X: [s[:max(5, int((~np.isnan(s).all(axis=1)).sum()))] for s in X],
}


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("form", sorted(FORMS))
def test_cdist_accepts_tslearns_variable_length_datasets(form, normalize):
    X = nan_padded(11, [5, 8, 3, 7], 8)
    Y = nan_padded(12, [6, 2, 6], 7)
    peer = tslearn_cdist_normalized if normalize else tslearn_cdist
    given = FORMS[form](X)
    close(sd.cdist_soft_dtw(given, gamma=GAMMA, normalize=normalize), peer(X, gamma=GAMMA), 1e-10)
    close(sd.cdist_soft_dtw(given, FORMS[form](Y), GAMMA, normalize=normalize), peer(X, Y, gamma=GAMMA), 1e-10)
    close(sd.cdist_soft_dtw(X[:, :5], given, GAMMA, sakoe_chiba_radius=1),
          tslearn_cdist(X[:, :5], X, gamma=GAMMA, sakoe_chiba_radius=1), 1e-10)  # tslearn 0.10: a band too


@pytest.mark.parametrize("form", sorted(FORMS))
def test_barycenter_accepts_tslearns_variable_length_datasets(form):
    X = nan_padded(13, [6, 9, 4, 9, 7], 10)
    unpadded = FORMS["list of arrays"](X)
    z_ref, f_ref = sd.soft_dtw_barycenter(unpadded, GAMMA, max_iter=30)
    z, f = sd.soft_dtw_barycenter(FORMS[form](X), GAMMA, max_iter=30)
    assert z.shape == (9, 2)  # the longest series, as tslearn's dataset of the same series
    close(z, z_ref)
    close(f, f_ref)
    z0, _ = sd.soft_dtw_barycenter(FORMS[form](X), GAMMA, max_iter=0)
    close(z0, tslearn_barycenter(unpadded, GAMMA, max_iter=0), 1e-10)  # tslearn's start
    np.testing.assert_allclose(z, tslearn_barycenter(X, GAMMA, max_iter=30), atol=1e-6)


def test_barycenter_init_may_carry_tslearns_padding():
    X = nan_padded(14, [6, 9, 4], 9)
    init = padded(np.ones((1, 9, 2)), [5], np.nan)[0]
    z, f = sd.soft_dtw_barycenter(X, GAMMA, init=init, max_iter=5)
    z_ref, f_ref = sd.soft_dtw_barycenter(X, GAMMA, init=np.ones((5, 2)), max_iter=5)
    assert z.shape == (5, 2)
    close(z, z_ref)
    close(f, f_ref)
    init[1, 0] = np.nan
    with pytest.raises(ValueError, match="init"):
        sd.soft_dtw_barycenter(X, GAMMA, init=init)


@pytest.mark.parametrize("form", ["array", "nested lists", "list of arrays"])
def test_nan_inside_a_dataset_series_raises(form):
    X = nan_padded(15, [5, 8, 3], 8)
    X[2, 1, 0] = np.nan  # inside series 2 (length 3)
    given = FORMS[form](X) if form != "list of arrays" else [X[0, :5], X[1], X[2, :3]]
    for call in (lambda: sd.cdist_soft_dtw(given), lambda: sd.cdist_soft_dtw(X[:1], given),
                 lambda: sd.soft_dtw_barycenter(given)):
        with pytest.raises(ValueError, match=r"\[2\] has a NaN at time step 1"):
            call()
    X = nan_padded(15, [5, 8, 3], 8)
    X[0, 7, 1] = 0.0  # a partly NaN trailing step is no padding
    with pytest.raises(ValueError, match=r"X\[0\] has a NaN at time step 5"):
        sd.cdist_soft_dtw(FORMS[form](X) if form != "list of arrays" else list(X))


def test_inf_in_a_dataset_series_gives_nan_entries():
    X = nan_padded(16, [5, 8, 3, 6], 8)
    Y = nan_padded(17, [4, 7], 7)
    given = X.copy()
    X[1, 2, 1] = np.inf
    expected = tslearn_cdist(np.delete(X, 1, axis=0), Y, gamma=GAMMA)
    got = sd.cdist_soft_dtw(X, Y, GAMMA)
    assert np.isnan(got[1]).all()
    close(np.delete(got, 1, axis=0), expected, 1e-10)
    sym = sd.cdist_soft_dtw(list(X), gamma=GAMMA, normalize=True)
    assert np.isnan(sym[1]).all() and np.isnan(sym[:, 1]).all()
    assert np.isfinite(np.delete(np.delete(sym, 1, 0), 1, 1)).all()
    with pytest.raises(ValueError, match=r"X\[1\] is not finite"):
        sd.soft_dtw_barycenter(X, GAMMA)
    given[1, 2, 1] = np.inf
    np.testing.assert_array_equal(X, given)  # the caller's dataset is not written


def test_thread_count_is_the_cpus_the_process_may_use(monkeypatch):
    """NumPy's kernels (cdist) run the core on the CPUs this process may use (its affinity): no
    thread count is imposed by the caller."""
    from softdtw.kernels import cpu

    seen = []
    real = cpu._threads
    monkeypatch.setattr(cpu, "_threads", lambda threads=None: seen.append((threads, real(threads))) or real(threads))
    X = np.random.default_rng(0).standard_normal((70, 6, 2))
    sd.cdist_soft_dtw(X, gamma=1.0)
    want = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert seen and all(t is None and n == want for t, n in seen)
