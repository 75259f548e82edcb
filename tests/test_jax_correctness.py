"""softdtw.jax on the conventions of docs/algorithm.md ("Padding and non-finite inputs", gamma).

Padding is never read, a non-finite pair is NaN without touching the others (and its gradient
is 0 when its weight in the loss is 0), float32 keeps its accuracy far from the origin, a gamma
the compute dtype cannot use raises, and tslearn's NaN-padded datasets work in
``cdist_soft_dtw`` and ``soft_dtw_barycenter``. The float64 oracle is :mod:`softdtw.numpy`,
called on each pair sliced to its lengths (finite, unpadded inputs only).

x64 is switched on at import of this module, as in tests/test_jax.py; float32 arrays are passed
explicitly, and some tests run with x64 off (``jax.enable_x64(False)``).
"""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

import softdtw.jax as sj  # noqa: E402
import softdtw.numpy as snp  # noqa: E402

TOL = {np.float32: (1e-5, 1e-4), np.float64: (1e-10, 1e-10)}  # (values, gradients), docs/algorithm.md
FILLS = (np.nan, np.inf, 1e30)


def l1(a, b):
    return jnp.abs(a[:, :, None, :] - b[:, None, :, :]).sum(-1)


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.max(np.abs(a - b)) / max(1.0, np.max(np.abs(b)))


def padded_pairs(rng, n, m, d, xl, yl, fill, dtype):
    """x (B, n, d), y (B, m, d) with the steps beyond the lengths set to ``fill``."""
    return padded(rng.standard_normal((len(xl), n, d)).astype(dtype), rng.standard_normal((len(yl), m, d)).astype(
        dtype), xl, yl, fill)


def padded(x, y, xl, yl, fill):
    """Copies of x and y with the steps beyond the lengths set to ``fill``."""
    x, y = x.copy(), y.copy()
    for b, (p, q) in enumerate(zip(xl, yl)):
        x[b, p:], y[b, q:] = fill, fill
    return x, y


def weighted_step(gamma, **kw):
    """A jitted ``(x, y, w) -> (values, gradients of sum(w * values) in x and y)`` of ``soft_dtw``."""
    def f(a, b, w):
        v = sj.soft_dtw(a, b, gamma, **kw)
        return jnp.sum(v * w), v

    grad = jax.jit(jax.value_and_grad(f, argnums=(0, 1), has_aux=True))

    def step(x, y, w):
        (_, v), (gx, gy) = grad(jnp.asarray(x), jnp.asarray(y), jnp.asarray(w))
        return np.asarray(v), np.asarray(gx), np.asarray(gy)

    return step


def reference_pair(x, y, gamma, n, m, dist_func=None, **kw):
    """Value and gradients of one unpadded pair: the NumPy reference (float64) for the default
    cost, JAX itself in float64 for a ``dist_func`` (the reference has no gradient for one)."""
    a, b = np.asarray(x[None, :n], np.float64), np.asarray(y[None, :m], np.float64)
    if dist_func is None:
        v, gx, gy = snp.soft_dtw_value_and_grad(a, b, gamma, **kw)
        return v[0], gx[0], gy[0]
    v, (gx, gy) = jax.value_and_grad(lambda p, q: sj.soft_dtw(p, q, gamma, dist_func=dist_func, **kw).sum(),
                                     argnums=(0, 1))(a, b)
    return float(v), np.asarray(gx)[0], np.asarray(gy)[0]


# ---------------------------------------------------------------- 1. padding is never read

ROUTES = {
    "in-scan cost": (2, dict()),  # series of 65 steps and more: the cost formed inside the scan
    "cost matrix": (3, dict()),  # short series: the cost matrix, sum over features
    "gram cost": (40, dict()),  # more than 32 features: the centred matrix product
    "dist_func": (2, dict(dist_func=l1)),
    "normalize": (2, dict(normalize=True)),
    "band": (2, dict(sakoe_chiba_radius=1)),
}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_padding_is_never_read(route, dtype, monkeypatch):
    if route == "in-scan cost":
        monkeypatch.setattr(sj._api, "_FUSED_MIN_LENGTH", 0)
    d, kw = ROUTES[route]
    rng = np.random.default_rng(1)
    xl, yl = np.array([6, 3, 7]), np.array([4, 5, 2])
    gamma = 0.7
    tol_v, tol_g = TOL[dtype]
    x0, y0 = padded_pairs(rng, 7, 5, d, xl, yl, 0.0, dtype)
    refs = [reference_pair(x0[b], y0[b], gamma, xl[b], yl[b], **kw) for b in range(3)]
    step = weighted_step(gamma, x_lengths=xl, y_lengths=yl, **kw)
    for fill in FILLS:
        with jax.enable_x64(dtype == np.float64):
            v, gx, gy = step(*padded(x0, y0, xl, yl, fill), np.ones(3, dtype))
        assert v.dtype == dtype
        for b, (vr, gxr, gyr) in enumerate(refs):
            n, m = xl[b], yl[b]
            assert rel(v[b], vr) <= tol_v, (fill, b)
            assert rel(gx[b, :n], gxr) <= tol_g * max(1.0, np.abs(gxr).max()), (fill, b)
            assert rel(gy[b, :m], gyr) <= tol_g * max(1.0, np.abs(gyr).max()), (fill, b)
            assert np.all(gx[b, n:] == 0) and np.all(gy[b, m:] == 0), (fill, b)


def test_padding_with_traced_lengths_and_alignment():
    rng = np.random.default_rng(2)
    xl, yl = np.array([6, 2]), np.array([3, 5])
    x, y = padded_pairs(rng, 6, 5, 2, xl, yl, np.nan, np.float64)
    f = jax.jit(jax.grad(lambda a, la, lb: sj.soft_dtw(a, y, 0.5, x_lengths=la, y_lengths=lb).sum()))
    g = np.asarray(f(x, xl, yl))
    for b in range(2):
        _, gxr, _ = reference_pair(x[b], y[b], 0.5, xl[b], yl[b])
        assert rel(g[b, :xl[b]], gxr) <= 1e-10 and np.all(g[b, xl[b]:] == 0)
    a, v = sj.soft_dtw_alignment(x, y, 0.5, x_lengths=xl, y_lengths=yl)
    for b in range(2):
        ar, vr = snp.soft_dtw_alignment(x[b:b + 1, :xl[b]], y[b:b + 1, :yl[b]], 0.5)
        assert rel(v[b], vr[0]) <= 1e-10 and rel(a[b, :xl[b], :yl[b]], ar[0]) <= 1e-10
        assert np.all(np.asarray(a[b])[xl[b]:] == 0) and np.all(np.asarray(a[b])[:, yl[b]:] == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cost_padding_is_never_read(dtype):
    rng = np.random.default_rng(3)
    xl, yl = np.array([4, 2]), np.array([3, 5])
    tol_v, tol_g = TOL[dtype]
    for fill in FILLS:
        cost = rng.random((2, 4, 5))
        for b in range(2):
            cost[b, xl[b]:], cost[b, :, yl[b]:] = fill, fill
        cost = cost.astype(dtype)
        for kw in (dict(), dict(sakoe_chiba_radius=1)):
            with jax.enable_x64(dtype == np.float64):
                v, g = jax.value_and_grad(
                    lambda c: sj.soft_dtw_from_cost(c, 0.4, x_lengths=xl, y_lengths=yl, **kw).sum())(jnp.asarray(cost))
                values = np.asarray(sj.soft_dtw_from_cost(cost, 0.4, x_lengths=xl, y_lengths=yl, **kw))
            g = np.asarray(g)
            assert np.isfinite(v)
            for b in range(2):
                c = np.asarray(cost[b:b + 1, :xl[b], :yl[b]], np.float64)
                ar, vr = snp.soft_dtw_alignment_from_cost(c, 0.4, **kw)
                assert rel(values[b], vr[0]) <= tol_v and rel(g[b, :xl[b], :yl[b]], ar[0]) <= tol_g, (fill, kw)
                assert np.all(g[b, xl[b]:] == 0) and np.all(g[b, :, yl[b]:] == 0)


# ---------------------------------------------------------------- 2. float32 far from the origin


@pytest.mark.parametrize("offset", [1e3, 1e4])
@pytest.mark.parametrize("d", [40, 64])  # above 32 features: the matrix product
def test_float32_gram_cost_is_centred(offset, d):
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((2, 6, d)) + offset).astype(np.float32)
    y = (rng.standard_normal((2, 7, d)) + offset).astype(np.float32)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    for x64_on in (False, True):
        with jax.enable_x64(x64_on):
            v = sj.soft_dtw(x, y, 1.0)
            c = sj.sqeuclidean_cost(x, y)
        assert v.dtype == np.float32 and rel(v, snp.soft_dtw(x64, y64, 1.0)) <= 1e-5
        assert np.max(np.abs(np.asarray(c, np.float64) - snp.sqeuclidean_cost(x64, y64))) <= 1e-5 * np.max(
            snp.sqeuclidean_cost(x64, y64))
    # with lengths, and padding that is zeros (its mean is not the pair's) or NaN
    xl, yl = np.array([6, 3]), np.array([2, 7])
    step = weighted_step(1.0, x_lengths=xl, y_lengths=yl)
    for fill in (0.0, np.nan):
        xp, yp = padded(x, y, xl, yl, fill)
        v, gx, _ = step(xp, yp, np.ones(2, np.float32))
        vn = sj.soft_dtw(xp, yp, 1.0, normalize=True, x_lengths=xl, y_lengths=yl)
        for b in range(2):
            vr, gxr, _ = reference_pair(x64[b], y64[b], 1.0, xl[b], yl[b])
            assert abs(v[b] - vr) <= 1e-5 * abs(vr), (fill, b)
            assert np.max(np.abs(gx[b, :xl[b]] - gxr)) <= 1e-4 * np.abs(gxr).max(), (fill, b)
            vnr = snp.soft_dtw(x64[b:b + 1, :xl[b]], y64[b:b + 1, :yl[b]], 1.0, normalize=True)[0]
            assert abs(vn[b] - vnr) <= 1e-5 * max(abs(vr), 1.0), (fill, b)


# ---------------------------------------------------------------- 3. gamma the dtype cannot hold


@pytest.mark.parametrize("gamma, dtype", [(1e-39, np.float32), (1e39, np.float32), (1e-320, np.float64)])
def test_gamma_the_compute_dtype_cannot_hold_raises(gamma, dtype):
    name = np.dtype(dtype).name
    x, y = np.zeros((2, 3, 1), dtype), np.ones((2, 4, 1), dtype)
    cost = np.ones((2, 3, 4), dtype)
    calls = [
        lambda: sj.soft_dtw(x, y, gamma),
        lambda: sj.soft_dtw(x, y, gamma, normalize=True),
        lambda: sj.soft_dtw_from_cost(cost, gamma),
        lambda: sj.soft_dtw_alignment(x, y, gamma),
        lambda: sj.soft_dtw_alignment_from_cost(cost, gamma),
        lambda: sj.cdist_soft_dtw(x, y, gamma),
        lambda: sj.cdist_soft_dtw(x, gamma=gamma, normalize=True),
        lambda: sj.soft_dtw_barycenter(x, gamma, max_iter=1),
        lambda: jax.jit(lambda a: sj.soft_dtw(a, y, gamma))(x),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=f"gamma.*{name}"):
            call()
    if dtype == np.float32:
        with jax.enable_x64(False):  # float64 inputs compute in float32
            with pytest.raises(ValueError, match="gamma.*float32"):
                sj.soft_dtw(x.astype(np.float64), y.astype(np.float64), gamma)
    # a traced gamma cannot be checked: no error
    jax.jit(lambda g: sj.soft_dtw(x, y, g))(jnp.asarray(1.0, dtype))


# ---------------------------------------------------------------- 4. lengths out of range


def test_traced_lengths_out_of_range_give_nan():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((3, 5, 2)), rng.standard_normal((3, 4, 2))
    xl = jnp.array([9, -3, 4])
    yl = jnp.array([4, 2, 3])

    def f(a, la, w):
        v = sj.soft_dtw(a, y, 0.5, x_lengths=la, y_lengths=yl)
        return jnp.sum(v * w), v

    step = jax.jit(jax.value_and_grad(f, has_aux=True))
    (_, v), g = step(x, xl, jnp.ones(3))
    v, g = np.asarray(v), np.asarray(g)
    vr, gxr, _ = reference_pair(x[2], y[2], 0.5, 4, 3)
    assert np.isnan(v[0]) and np.isnan(v[1]) and rel(v[2], vr) <= 1e-10
    assert np.isnan(g[0, :5]).all() and np.isnan(g[1, :1]).all()
    assert rel(g[2, :4], gxr) <= 1e-10 and np.all(g[2, 4:] == 0)
    (_, v), g = step(x, xl, jnp.array([0.0, 0.0, 1.0]))  # the bad pairs weigh nothing
    g = np.asarray(g)
    assert np.all(g[:2] == 0) and rel(g[2, :4], gxr) <= 1e-10
    vc = jax.jit(lambda c, la: sj.soft_dtw_from_cost(c, 0.5, x_lengths=la))(rng.random((3, 5, 4)), xl)
    assert np.isnan(vc[:2]).all() and np.isfinite(vc[2])
    for kw, name in ((dict(x_lengths=[9, 3, 2]), "x_lengths"), (dict(y_lengths=[0, 1, 2]), "y_lengths")):
        with pytest.raises(ValueError, match=name):
            sj.soft_dtw(x, y, 0.5, **kw)
    assert "NaN" in sj.soft_dtw.__doc__.split("x_lengths, y_lengths")[1].split("Returns")[0]


# ---------------------------------------------------------------- 5. non-finite inputs


@pytest.mark.parametrize("route", ["in-scan cost", "cost matrix", "gram cost", "dist_func", "normalize"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_series_make_their_pair_nan_only(route, bad, monkeypatch):
    if route == "in-scan cost":
        monkeypatch.setattr(sj._api, "_FUSED_MIN_LENGTH", 0)
    d, kw = ROUTES[route]
    rng = np.random.default_rng(6)
    xl, yl = np.array([5, 4, 5]), np.array([4, 3, 2])
    x, y = padded_pairs(rng, 5, 4, d, xl, yl, np.nan, np.float64)
    x[0, 2, 0] = bad  # pair 0: in x; pair 1: in y
    y[1, 1, -1] = bad
    step = weighted_step(0.6, x_lengths=xl, y_lengths=yl, **kw)
    for w in (np.ones(3), np.array([0.0, 0.0, 1.0])):
        v, gx, gy = step(x, y, w)
        assert np.isnan(v[:2]).all()
        vr, gxr, gyr = reference_pair(x[2], y[2], 0.6, xl[2], yl[2], **kw)
        assert rel(v[2], vr) <= 1e-10 and rel(gx[2, :5], gxr) <= 1e-10 and rel(gy[2, :2], gyr) <= 1e-10
        assert np.all(gy[2, 2:] == 0)
        for b in range(2):
            used_x, used_y = gx[b, :xl[b]], gy[b, :yl[b]]
            if w[b]:
                assert np.isnan(used_x).all() and np.isnan(used_y).all(), (b, w)
            else:
                assert np.all(used_x == 0) and np.all(used_y == 0), (b, w)
            assert np.all(gx[b, xl[b]:] == 0) and np.all(gy[b, yl[b]:] == 0)


def test_nonfinite_gamma_gradient_vmap_and_unbatched():
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((2, 4, 2)), rng.standard_normal((2, 3, 2))
    x[0, 1, 1] = np.inf
    v = sj.soft_dtw(x, y, 0.5)
    assert np.isnan(v[0]) and abs(v[1] - snp.soft_dtw(x[1:], y[1:], 0.5)[0]) <= 1e-10
    assert np.isnan(sj.soft_dtw(x[0], y[0], 0.5)) and np.isnan(jax.vmap(lambda a, b: sj.soft_dtw(a, b, 0.5))(x, y)[0])
    for w in (jnp.ones(2), jnp.array([0.0, 1.0])):
        gg = jax.grad(lambda g: jnp.sum(w * sj.soft_dtw(x, y, g)))(0.5)
        gv = jax.vmap(jax.grad(lambda a, b, wb: wb * sj.soft_dtw(a, b, 0.5)))(x, y, w)
        if w[0]:
            assert np.isnan(gg) and np.isnan(gv[0]).all()
        else:
            _, ggr = snp.soft_dtw_gamma_grad_from_cost(snp.sqeuclidean_cost(x[1:], y[1:]), 0.5)
            assert abs(gg - ggr.sum()) <= 1e-10 * max(1.0, abs(ggr.sum())) and np.all(gv[0] == 0)
    # reverse over reverse with the bad pair weighed 0: the other pair's Hessian-vector product
    u = rng.standard_normal(x.shape)
    hvp = jax.grad(lambda a: jnp.vdot(jax.grad(lambda p: sj.soft_dtw(p, y, 0.5)[1])(a), u))(jnp.asarray(x))
    hvp_ref = jax.grad(lambda a: jnp.vdot(jax.grad(lambda p: sj.soft_dtw(p, y[1:], 0.5)[0])(a), u[1:]))(x[1:])
    assert np.all(hvp[0] == 0) and rel(hvp[1], hvp_ref[0]) <= 1e-12


def test_nonfinite_costs():
    rng = np.random.default_rng(8)
    cost = rng.random((4, 3, 4))
    cost[0, 1, 2] = np.nan
    cost[1, 2, 0] = -np.inf
    cost[2, 1, :] = np.inf  # every path crosses row 1: no admissible path
    cost[3, 0, 1] = cost[3, 1, 1] = np.inf  # forbidden cells, other paths remain
    for w in (jnp.ones(4), jnp.array([0.0, 0.0, 1.0, 1.0])):
        v, g = jax.jit(jax.value_and_grad(lambda c: jnp.sum(w * sj.soft_dtw_from_cost(c, 0.3))))(cost)
        values = np.asarray(jax.jit(lambda c: sj.soft_dtw_from_cost(c, 0.3))(cost))
        g = np.asarray(g)
        assert np.isnan(values[:2]).all() and values[2] == np.inf
        ar, vr = snp.soft_dtw_alignment_from_cost(cost[3:], 0.3)
        assert rel(values[3], vr[0]) <= 1e-10 and rel(g[3], ar[0]) <= 1e-10
        assert np.all(g[3][np.isinf(cost[3])] == 0) and np.all(g[2] == 0)
        for b in range(2):
            assert np.isnan(g[b]).all() if w[b] else np.all(g[b] == 0)
    # with lengths: a NaN / -inf beyond them is padding, inside them it is the pair's
    xl = np.array([1, 3, 3, 3])
    v = sj.soft_dtw_from_cost(cost, 0.3, x_lengths=xl)
    assert np.isfinite(v[0]) and np.isnan(v[1]) and v[2] == np.inf
    a, va = sj.soft_dtw_alignment_from_cost(cost, 0.3)
    assert np.isnan(va[:2]).all() and np.isnan(np.asarray(a[:2])).all() and np.all(np.asarray(a[2]) == 0)
    # a dist_func that returns NaN at a used cell
    x = rng.standard_normal((2, 3, 1))
    nan_at_00 = lambda a, b: l1(a, b).at[0, 0, 0].set(jnp.nan)  # noqa: E731
    vd = sj.soft_dtw(x, x, 0.3, dist_func=nan_at_00)
    assert np.isnan(vd[0]) and abs(vd[1] - sj.soft_dtw(x[1:], x[1:], 0.3, dist_func=l1)[0]) <= 1e-12


# ---------------------------------------------------------------- 6. messages and the radius


def test_messages_and_huge_radius(monkeypatch):
    x, y = np.random.default_rng(9).standard_normal((2, 5, 2)), np.zeros((2, 4, 2))
    for kw, name in ((dict(x_lengths=[3, 2]), "x_lengths"), (dict(y_lengths=np.array([[1]])), "y_lengths")):
        with pytest.raises(ValueError, match=name):
            sj.soft_dtw(x[0], y[0], 1.0, **kw)
        with pytest.raises(ValueError, match=name):
            sj.soft_dtw_from_cost(np.ones((5, 4)), 1.0, **kw)
    assert sj.soft_dtw(x[0], y[0], 1.0, x_lengths=3) == sj.soft_dtw(x[0, :3], y[0], 1.0)
    assert sj.soft_dtw(x[0], y[0], 1.0, x_lengths=[3]) == sj.soft_dtw(x[0, :3], y[0], 1.0)
    for dt in (complex, bool):
        with pytest.raises(TypeError, match="dist_func"):
            sj.soft_dtw(x, y, 1.0, dist_func=lambda a, b: jnp.zeros((2, 5, 4), dt))
    big = dict(sakoe_chiba_radius=2**63)
    xl = np.array([5, 3])
    ref = snp.soft_dtw(x, y, 1.0, x_lengths=xl)
    for fused_min in (65, 0):  # the cost matrix, then the cost formed in the scan (int32 row bounds)
        monkeypatch.setattr(sj._api, "_FUSED_MIN_LENGTH", fused_min)
        assert rel(sj.soft_dtw(x, y, 1.0, x_lengths=xl, **big), ref) <= 1e-12
        assert rel(sj.soft_dtw(x, y, 1.0, normalize=True, **big), snp.soft_dtw(x, y, 1.0, normalize=True)) <= 1e-12
    c = snp.sqeuclidean_cost(x, y)
    assert rel(sj.soft_dtw_from_cost(c, 1.0, **big), snp.soft_dtw_from_cost(c, 1.0)) <= 1e-12
    assert rel(sj.cdist_soft_dtw(x, y, 1.0, **big), snp.cdist_soft_dtw(x, y, 1.0)) <= 1e-12
    assert rel(sj.cdist_soft_dtw([x[0], x[1, :3]], y, 1.0, **big),
               snp.cdist_soft_dtw([x[0], x[1, :3]], y, 1.0)) <= 1e-12


# ---------------------------------------------------------------- 7. tslearn's variable-length datasets


def _datasets(rng):
    from tslearn.utils import to_time_series_dataset

    xs = [rng.standard_normal((n, 2)) for n in (3, 6, 4)]
    ys = [rng.standard_normal((n, 2)) for n in (5, 2)]
    return xs, ys, to_time_series_dataset(xs), to_time_series_dataset(ys)


def test_cdist_nan_padded_datasets_match_tslearn():
    from tslearn.metrics import cdist_soft_dtw, cdist_soft_dtw_normalized

    rng = np.random.default_rng(10)
    xs, ys, X, Y = _datasets(rng)
    assert np.isnan(X).any()
    with_nan_rows = [np.concatenate([s, np.full((2, 2), np.nan)]) for s in xs]
    for normalize, ref_fn in ((False, cdist_soft_dtw), (True, cdist_soft_dtw_normalized)):
        for other in (None, Y):
            ref = ref_fn(X, other, gamma=0.4)
            forms = [X, X.tolist(), xs, with_nan_rows]
            for form in forms:
                other_form = other if other is None else (other.tolist() if isinstance(form, list) else other)
                got = np.asarray(sj.cdist_soft_dtw(form, other_form, 0.4, normalize=normalize))
                assert got.dtype == np.float64 and np.isfinite(got).all()
                assert np.max(np.abs(got - ref)) <= 1e-10 * max(1.0, np.abs(ref).max()), (normalize, type(form))
    # a band with lengths (concrete lengths), and chunks of one pair
    ref = cdist_soft_dtw(X, Y, gamma=0.4, global_constraint="sakoe_chiba", sakoe_chiba_radius=1)
    got = sj.cdist_soft_dtw(X, Y, 0.4, global_constraint="sakoe_chiba", sakoe_chiba_radius=1, chunk_size=1)
    assert np.max(np.abs(np.asarray(got) - ref)) <= 1e-10 * np.abs(ref).max()
    # float32 with x64 off
    with jax.enable_x64(False):
        got = sj.cdist_soft_dtw(X.astype(np.float32), gamma=0.4)
    assert got.dtype == np.float32 and rel(got, cdist_soft_dtw(X, gamma=0.4)) <= 1e-5
    # a NaN that is not trailing padding
    bad = X.copy()
    bad[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match=r"X\[1\].*time step 2"):
        sj.cdist_soft_dtw(bad, gamma=0.4)
    with pytest.raises(ValueError, match=r"Y\[1\]"):
        sj.cdist_soft_dtw(X, [ys[0], np.full((3, 2), np.nan)], gamma=0.4)


def test_cdist_inf_follows_the_nonfinite_rule():
    rng = np.random.default_rng(11)
    xs, ys, X, Y = _datasets(rng)
    X[1, 0, 0] = np.inf
    got = np.asarray(sj.cdist_soft_dtw(X, Y, 0.4))
    assert np.isnan(got[1]).all() and np.isfinite(got[[0, 2]]).all()


def test_barycenter_of_nan_padded_dataset():
    pytest.importorskip("optax")
    rng = np.random.default_rng(12)
    xs, _, X, _ = _datasets(rng)
    z_pad, f_pad = sj.soft_dtw_barycenter(X, 0.5, max_iter=30, tol=1e-8)
    z_list, f_list = sj.soft_dtw_barycenter(xs, 0.5, max_iter=30, tol=1e-8)
    assert z_pad.shape == (6, 2) and np.isfinite(np.asarray(z_pad)).all() and np.isfinite(f_pad)
    assert rel(z_pad, z_list) <= 1e-10 and abs(f_pad - f_list) <= 1e-10 * abs(f_list)
    # the objective is the weighted sum of the unpadded pairs' values
    f_ref = sum(snp.soft_dtw(np.asarray(z_pad)[None], s[None], 0.5)[0] for s in xs)
    assert abs(f_pad - f_ref) <= 1e-9 * abs(f_ref)
    # and the same start as the reference (tslearn's: each series resampled to the longest)
    z0, _ = sj.soft_dtw_barycenter(X, 0.5, max_iter=0)
    z0_ref, _ = snp.soft_dtw_barycenter(X, 0.5, max_iter=0)
    assert rel(z0, z0_ref) <= 1e-12
