"""softdtw.jax against the float64 NumPy reference, and its composition with JAX transforms.

x64 is switched on at import of this module (``jax_enable_x64``): float64 tests compare to the
reference at 1e-10; float32 tests pass float32 arrays explicitly.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
from jax.test_util import check_grads  # noqa: E402

import softdtw.jax as sj  # noqa: E402
import softdtw.numpy as snp  # noqa: E402
from softdtw.testing import oracles  # noqa: E402
from softdtw.testing.cases import BAD_COSTS, BAD_PAIRS  # noqa: E402
from softdtw.testing.strategies import cost_matrices, gammas  # noqa: E402

# every example compiles a few scans: a seventh of the profile's examples (6 in CI); two lengths
# (1 and 4: N = 1, M = 1, N != M) keep the shapes, hence the compilations, few
FEW = settings(max_examples=max(6, settings.default.max_examples // 7))


def rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.max(np.abs(a - b)) / max(1.0, np.max(np.abs(b)))


def value_and_grads(x, y, gamma, **kw):
    """Values and the gradients of their sum, in one forward and backward pass."""
    def f(a, b):
        v = sj.soft_dtw(a, b, gamma, **kw)
        return v.sum(), v

    (_, v), (gx, gy) = jax.value_and_grad(f, argnums=(0, 1), has_aux=True)(jnp.asarray(x), jnp.asarray(y))
    return np.asarray(v), np.asarray(gx), np.asarray(gy)


# ---------------------------------------------------------------- against the reference


@FEW
@given(cost_matrices(lengths=(1, 4), batches=(2,), gamma=gammas(1e-2, 1e1)))
def test_cost_alignment_and_gamma_gradient(problem):
    cost, gamma = problem
    a, v = sj.soft_dtw_alignment_from_cost(cost, gamma)
    ar, vr = snp.soft_dtw_alignment_from_cost(cost, gamma)
    assert rel(v, vr) <= 1e-10 and rel(a, ar) <= 1e-10
    assert rel(sj.soft_dtw_from_cost(cost, gamma), vr) <= 1e-10
    gc = jax.grad(lambda c: sj.soft_dtw_from_cost(c, gamma).sum())(jnp.asarray(cost))
    assert rel(gc, ar) <= 1e-10
    gg = jax.grad(lambda g: sj.soft_dtw_from_cost(cost, g).sum())(gamma)
    _, ggr = snp.soft_dtw_gamma_grad_from_cost(cost, gamma)
    assert abs(gg - ggr.sum()) <= 1e-10 * max(1.0, np.abs(ggr).sum())
    # and by finite differences
    h = gamma * 1e-5
    fd = (snp.soft_dtw_from_cost(cost, gamma + h) - snp.soft_dtw_from_cost(cost, gamma - h)).sum() / (2 * h)
    assert abs(gg - fd) <= 1e-5 * max(1.0, abs(fd))


def test_gamma_gradient_through_pairs_and_jit():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((3, 6, 2)), rng.standard_normal((3, 4, 2))
    f = jax.jit(lambda g: sj.soft_dtw(x, y, g, normalize=True).sum())
    g = jax.grad(f)(0.7)
    h = 1e-6
    fd = (snp.soft_dtw(x, y, 0.7 + h, normalize=True) - snp.soft_dtw(x, y, 0.7 - h, normalize=True)).sum() / (2 * h)
    assert g != 0 and abs(g - fd) <= 1e-6 * max(1.0, abs(fd))


def test_dist_func_and_many_features():
    rng = np.random.default_rng(1)
    x, y = rng.random((2, 4, 3)), rng.random((2, 5, 3))
    l1 = lambda a, b: jnp.abs(a[:, :, None, :] - b[:, None, :, :]).sum(-1)  # noqa: E731
    v = sj.soft_dtw(x, y, 0.5, dist_func=l1)
    for b in range(2):
        v_ref, _ = oracles.brute_force(np.abs(x[b][:, None] - y[b][None]).sum(-1), 0.5)
        assert rel(v[b], v_ref) <= 1e-12
    g = jax.grad(lambda a: sj.soft_dtw(a, y, 0.5, dist_func=l1).sum())(x)
    fd = oracles.central_difference(lambda a: snp.soft_dtw(a, y, 0.5, dist_func=lambda p, q: np.abs(
        p[:, :, None] - q[:, None]).sum(-1)).sum(), x)
    assert rel(g, fd) <= 1e-5
    with pytest.raises(ValueError, match="dist_func"):
        sj.soft_dtw(x, y, 0.5, dist_func=lambda a, b: jnp.zeros((2, 4)))
    # more features than the in-scan cost handles: the matrix-product cost
    x, y = rng.standard_normal((2, 5, 40)), rng.standard_normal((2, 3, 40))
    v, gx, gy = value_and_grads(x, y, 2.0)
    vr, gxr, gyr = snp.soft_dtw_value_and_grad(x, y, 2.0)
    assert rel(v, vr) <= 1e-10 and rel(gx, gxr) <= 1e-10 and rel(gy, gyr) <= 1e-10


@pytest.mark.parametrize("d", [2, 6])  # both sides of _core._SCAN_MAX_D: in-scan sums / matrix products
def test_sqeuclidean_gradient_paths(d, monkeypatch):
    # the cost formed inside the scan (series this short otherwise take the cost-matrix path,
    # which every other test here covers)
    monkeypatch.setattr(sj._api, "_FUSED_MIN_LENGTH", 0)
    rng = np.random.default_rng(11)
    x, y = rng.standard_normal((3, 7, d)), rng.standard_normal((3, 5, d))
    for kw in (dict(), dict(normalize=True), dict(x_lengths=np.array([7, 3, 1]), y_lengths=np.array([5, 5, 2])),
               dict(global_constraint="sakoe_chiba", sakoe_chiba_radius=2)):
        v, gx, gy = value_and_grads(x, y, 0.6, **kw)
        vr, gxr, gyr = snp.soft_dtw_value_and_grad(x, y, 0.6, **kw)
        assert rel(v, vr) <= 1e-10 and rel(gx, gxr) <= 1e-10 and rel(gy, gyr) <= 1e-10, kw
    check_grads(jax.jit(lambda a, b: sj.soft_dtw(a, b, 0.5, normalize=True, x_lengths=np.array([7, 4, 2])).sum()),
                (x, y), order=2, modes=("rev",))


@pytest.mark.parametrize("n, m", [(9, 13), (13, 9)])
def test_windowed_scans_match_reference(n, m, monkeypatch):
    # the scans split into windows of rows (softdtw.jax._core._windows), forced at small sizes
    from softdtw.jax import _core

    monkeypatch.setattr(_core, "_WINDOW_MIN_ROWS", 1)
    monkeypatch.setattr(sj._api, "_FUSED_MIN_LENGTH", 0)
    jax.clear_caches()  # compilations of these shapes from other tests had one window
    assert len(_core._windows(n, m)) >= 7
    rng = np.random.default_rng(12)
    lengths = dict(x_lengths=np.array([n, n - 3, 1]), y_lengths=np.array([m, m, m - 4]))
    for d, kws in ((2, (dict(), dict(normalize=True), lengths, dict(global_constraint="sakoe_chiba", sakoe_chiba_radius=3))),
                   (6, (dict(), lengths))):
        x, y = rng.standard_normal((3, n, d)), rng.standard_normal((3, m, d))
        for kw in kws:
            v, gx, gy = value_and_grads(x, y, 0.6, **kw)
            vr, gxr, gyr = snp.soft_dtw_value_and_grad(x, y, 0.6, **kw)
            assert rel(v, vr) <= 1e-10 and rel(gx, gxr) <= 1e-10 and rel(gy, gyr) <= 1e-10, (d, kw)
    cost = rng.random((2, n, m))
    kw = dict(x_lengths=np.array([n, n - 2]))
    a, v = sj.soft_dtw_alignment_from_cost(cost, 0.4, **kw)
    ar, vr = snp.soft_dtw_alignment_from_cost(cost, 0.4, **kw)
    assert rel(a, ar) <= 1e-10 and rel(v, vr) <= 1e-10
    gg = jax.grad(lambda g: sj.soft_dtw_from_cost(cost, g, **kw).sum())(0.4)
    assert abs(gg - snp.soft_dtw_gamma_grad_from_cost(cost, 0.4, **kw)[1].sum()) <= 1e-10 * max(1.0, abs(gg))
    if n < m:  # reverse over reverse through the windows (slow to compile: one pair of shapes)
        check_grads(jax.jit(lambda c: sj.soft_dtw_from_cost(c, 0.5).sum()), (cost,), order=2, modes=("rev",))
    jax.clear_caches()


def test_alignment_from_series():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 6, 2))
    a, v = sj.soft_dtw_alignment(x, y, 0.3)
    ar, vr = snp.soft_dtw_alignment(x, y, 0.3)
    assert a.shape == (2, 3, 6) and rel(a, ar) <= 1e-10 and rel(v, vr) <= 1e-10
    a1, v1 = sj.soft_dtw_alignment(x[0], y[0], 0.3)
    assert a1.shape == (3, 6) and v1.shape == ()


# ---------------------------------------------------------------- lengths


def test_traced_lengths_under_jit():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((3, 7, 2)), rng.standard_normal((3, 5, 2))
    xl, yl = np.array([7, 3, 1]), np.array([2, 5, 4])
    f = jax.jit(lambda a, b, la, lb: sj.soft_dtw(a, b, 0.5, normalize=True, x_lengths=la, y_lengths=lb).sum())
    v = f(x, y, xl, yl)
    vr = snp.soft_dtw(x, y, 0.5, normalize=True, x_lengths=xl, y_lengths=yl).sum()
    assert rel(v, vr) <= 1e-10
    gx = jax.grad(f)(x, y, xl, yl)
    _, gxr, _ = snp.soft_dtw_value_and_grad(x, y, 0.5, normalize=True, x_lengths=xl, y_lengths=yl)
    assert rel(gx, gxr) <= 1e-10
    c = snp.sqeuclidean_cost(x, y)
    fc = jax.jit(lambda c, la, lb: sj.soft_dtw_from_cost(c, 0.5, x_lengths=la, y_lengths=lb))
    assert rel(fc(c, xl, yl), snp.soft_dtw_from_cost(c, 0.5, x_lengths=xl, y_lengths=yl)) <= 1e-10
    with pytest.raises(NotImplementedError, match="traced"):
        jax.jit(lambda la: sj.soft_dtw(x, y, 0.5, x_lengths=la, sakoe_chiba_radius=1))(xl)


# ---------------------------------------------------------------- properties


def test_smallest_shapes():
    # ott-jax returns twice the cost for 1 x 1 inputs: the value of one cell is its cost
    assert float(sj.soft_dtw(jnp.array([[0.0]]), jnp.array([[3.0]]), 1.0)) == 9.0
    assert float(sj.soft_dtw_from_cost(jnp.array([[5.0]]), 0.1)) == 5.0
    rng = np.random.default_rng(5)
    for n, m in ((1, 1), (1, 6), (6, 1), (2, 9), (9, 2)):
        x, y = rng.standard_normal((2, n, 3)), rng.standard_normal((2, m, 3))
        v, gx, gy = value_and_grads(x, y, 0.4)
        vr, gxr, gyr = snp.soft_dtw_value_and_grad(x, y, 0.4)
        assert rel(v, vr) <= 1e-12 and rel(gx, gxr) <= 1e-10 and rel(gy, gyr) <= 1e-10


def test_dtypes():
    x, y = np.zeros((4, 3, 2)), np.arange(24).reshape(4, 3, 2)
    ref = snp.soft_dtw(x, y, 0.1)
    assert sj.soft_dtw(x, y, 0.1).dtype == jnp.float64  # integer y: the default float (x64 here)
    rng = np.random.default_rng(9)
    xh, yh = rng.standard_normal((2, 5, 2)), rng.standard_normal((2, 4, 2))
    for dt in (jnp.float16, jnp.bfloat16):
        a, b = jnp.asarray(xh, dt), jnp.asarray(yh, dt)
        a32, b32 = a.astype(jnp.float32), b.astype(jnp.float32)
        v = sj.soft_dtw(a, b, 0.1)
        # computed in float32: exactly the float32 result on the same numbers, rounded once
        assert v.dtype == dt and np.array_equal(np.asarray(v), np.asarray(sj.soft_dtw(a32, b32, 0.1).astype(dt)))
        g = jax.grad(lambda p: sj.soft_dtw(p, b, 0.1).sum().astype(jnp.float32))(a)
        g32 = jax.grad(lambda p: sj.soft_dtw(p, b32, 0.1).sum())(a32)
        assert g.dtype == dt and np.array_equal(np.asarray(g), np.asarray(g32.astype(dt)))
        vr = snp.soft_dtw(np.asarray(a32, np.float64), np.asarray(b32, np.float64), 0.1)
        assert rel(v, vr) <= 1e-2  # and the half-precision rounding of the result is all it loses
    v32 = sj.soft_dtw(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), 0.1)
    assert v32.dtype == jnp.float32 and rel(v32, ref) <= 1e-6


def test_float32_matches_float64_reference():
    # long enough that R (~1e3) dwarfs gamma: storing R without per-diagonal offsets gave
    # 2-4e-5 gradient error here
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 200, 4)).astype(np.float32)
    y = rng.standard_normal((2, 160, 4)).astype(np.float32)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)

    def relmax(a, b):  # relative to the largest entry
        return np.max(np.abs(np.asarray(a, np.float64) - b)) / np.max(np.abs(b))

    v, gx, gy = value_and_grads(x, y, 1.0)
    vr, gxr, gyr = snp.soft_dtw_value_and_grad(x64, y64, 1.0)
    assert v.dtype == np.float32 and relmax(v, vr) <= 1e-6
    assert relmax(gx, gxr) <= 1e-5 and relmax(gy, gyr) <= 1e-5
    # the cost path with a band and lengths, and the gradient in a traced gamma
    kw = dict(sakoe_chiba_radius=30, x_lengths=np.array([200, 170]))
    cost = snp.sqeuclidean_cost(x64, y64).astype(np.float32)
    v, (a, gg) = jax.value_and_grad(lambda c, g: sj.soft_dtw_from_cost(c, g, **kw).sum(), argnums=(0, 1))(
        jnp.asarray(cost), jnp.float32(0.5))
    ar, vr = snp.soft_dtw_alignment_from_cost(cost.astype(np.float64), 0.5, **kw)
    _, ggr = snp.soft_dtw_gamma_grad_from_cost(cost.astype(np.float64), 0.5, **kw)
    assert relmax(v, vr.sum()) <= 1e-6 and relmax(a, ar) <= 1e-5
    assert gg.dtype == jnp.float32 and abs(gg - ggr.sum()) <= 1e-5 * abs(ggr.sum())


# ---------------------------------------------------------------- transforms


def test_jit_vmap_value_and_grad():
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((4, 5, 2)), rng.standard_normal((4, 7, 2))
    batched = sj.soft_dtw(x, y, 0.5)
    per_pair = jax.jit(jax.vmap(lambda a, b: sj.soft_dtw(a, b, 0.5)))(x, y)
    assert per_pair.shape == (4,) and rel(per_pair, batched) <= 1e-12
    v, (gx, gy) = jax.jit(jax.value_and_grad(lambda a, b: sj.soft_dtw(a, b, 0.5).sum(), argnums=(0, 1)))(x, y)
    gxv = jax.vmap(jax.grad(lambda a, b: sj.soft_dtw(a, b, 0.5)))(x, y)
    assert rel(gxv, gx) <= 1e-12 and abs(v - batched.sum()) <= 1e-10 * abs(v)
    # vmap over gamma and over traced lengths
    gs = jnp.array([0.1, 1.0, 10.0])
    vg = jax.vmap(lambda g: sj.soft_dtw(x, y, g))(gs)
    for k, g in enumerate([0.1, 1.0, 10.0]):
        assert rel(vg[k], snp.soft_dtw(x, y, g)) <= 1e-10


def test_check_grads_order_2():
    rng = np.random.default_rng(7)
    # the default cost (normalize: the three terms in one scan, with lengths) and a cost matrix, N != M
    x, y = rng.standard_normal((2, 4, 2)), rng.standard_normal((2, 4, 2))
    # (jitted: the many evaluations reuse one compilation)
    check_grads(jax.jit(lambda a, b: sj.soft_dtw(a, b, 0.5, normalize=True, x_lengths=np.array([4, 2])).sum()),
                (x, y), order=2, modes=("rev",))
    cost = rng.random((2, 3, 4))
    check_grads(jax.jit(lambda c: sj.soft_dtw_from_cost(c, 0.3).sum()), (cost,), order=2, modes=("rev",))


def test_hessian_vector_product_matches_finite_differences():
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((2, 5, 2)), rng.standard_normal((2, 4, 2))
    v = rng.standard_normal(x.shape)

    def grad_x(a):
        return jax.grad(lambda a: sj.soft_dtw(a, y, 0.7).sum())(a)

    def hvp_fd(u, eps=1e-5):  # the reference gradient differenced along u
        return (snp.soft_dtw_value_and_grad(x + eps * u, y, 0.7)[1] - snp.soft_dtw_value_and_grad(x - eps * u, y, 0.7)[1]) / (2 * eps)

    _, vjp = jax.vjp(grad_x, jnp.asarray(x))
    (hvp,) = vjp(jnp.asarray(v))  # the Hessian is symmetric: H v
    assert rel(hvp, hvp_fd(v)) <= 1e-6
    # grad of grad through jit: d/dx |grad|^2 = 2 H grad
    gg = jax.jit(jax.grad(lambda a: (grad_x(a) ** 2).sum()))(x)
    g = snp.soft_dtw_value_and_grad(x, y, 0.7)[1]
    assert rel(gg, 2 * hvp_fd(g)) <= 1e-6


def test_forward_mode_raises():
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jvp(lambda a: sj.soft_dtw(a, jnp.ones((3, 1)), 1.0), (jnp.zeros((2, 1)),), (jnp.ones((2, 1)),))


def test_demo_values_leave_x64_alone():
    from softdtw.demo import seed_inputs

    x, y = seed_inputs()
    ref = snp.soft_dtw(x, y, 0.1)
    out = sj._demo_values(x, y, 0.1)
    assert rel(out["jax float64"], ref) <= 1e-12 and rel(out["jax float32"], ref) <= 1e-6
    assert jax.config.jax_enable_x64  # as this module set it


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "x, y, kw, exc, match",
    BAD_PAIRS + [(np.array([["a"]]), np.zeros((1, 1)), {}, TypeError, "x must hold real numbers")],
)
def test_bad_input(x, y, kw, exc, match):
    with pytest.raises(exc, match=match):
        snp.soft_dtw(x, y, **kw)  # the reference agrees on the message
    with pytest.raises(exc, match=match):
        sj.soft_dtw(x, y, **kw)
    if x.dtype.kind == "f" and y.dtype.kind == "f":  # and at trace time under jit
        with pytest.raises(exc, match=match):
            jax.jit(lambda a, b: sj.soft_dtw(a, b, **kw))(x, y)


@pytest.mark.parametrize("cost, exc, match", BAD_COSTS)
def test_bad_cost(cost, exc, match):
    with pytest.raises(exc, match=match):
        sj.soft_dtw_from_cost(cost)
    with pytest.raises(exc, match=match):  # at trace time
        jax.jit(sj.soft_dtw_from_cost)(cost)


def test_bad_traced_arguments():
    x = jnp.zeros((2, 3, 1))
    with pytest.raises(ValueError, match="gamma must be a scalar"):
        jax.jit(lambda g: sj.soft_dtw(x, x, g))(jnp.ones(2))
    with pytest.raises(TypeError, match="x_lengths must hold integers"):
        jax.jit(lambda la: sj.soft_dtw(x, x, x_lengths=la))(jnp.ones(2))
    with pytest.raises(ValueError, match="y_lengths must have shape"):
        jax.jit(lambda la: sj.soft_dtw(x, x, y_lengths=la))(jnp.ones(3, jnp.int32))


# ---------------------------------------------------------------- several devices


SHARDED = """
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    import numpy as np, jax, jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    import softdtw.jax as sj
    assert len(jax.devices()) == 2, jax.devices()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 6, 2)), rng.standard_normal((4, 5, 2))
    xl = np.array([6, 2, 5, 1])
    f = jax.jit(jax.value_and_grad(lambda a, b, g: sj.soft_dtw(a, b, g, normalize=True, x_lengths=xl).sum(),
                                   argnums=(0, 1, 2)))
    v1, g1 = f(jax.device_put(x, jax.devices()[0]), jax.device_put(y, jax.devices()[0]), 0.5)
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    s = NamedSharding(mesh, P("batch"))
    xs, ys = jax.device_put(x, s), jax.device_put(y, s)
    assert len(xs.sharding.device_set) == 2
    v2, g2 = f(xs, ys, 0.5)
    per = jax.jit(lambda a, b: sj.soft_dtw(a, b, 0.5))(xs, ys)
    np.testing.assert_allclose(np.asarray(per), np.asarray(sj.soft_dtw(x, y, 0.5)), rtol=1e-12)
    np.testing.assert_allclose(float(v2), float(v1), rtol=1e-12)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-12, atol=1e-14)
    print("ok")
"""


def test_sharded_batch_matches_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(SHARDED)], capture_output=True, text=True, env=env,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout + r.stderr


def test_second_derivative_in_gamma_matches_finite_differences():
    c = jnp.asarray(np.random.default_rng(11).random((2, 4, 5)))

    def f(g):
        return sj.soft_dtw_from_cost(c, g).sum()

    h = 1e-4
    fd = (f(0.7 + h) - 2 * f(0.7) + f(0.7 - h)) / h**2
    second = jax.grad(jax.grad(f))(0.7)
    assert np.isfinite(second) and abs(second - fd) <= 1e-5 * max(1.0, abs(fd))
