"""The numba CPU kernel (softdtw.kernels.numba_cpu) against the float64 NumPy reference."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from softdtw import spec
from softdtw.numpy import _reference as ref

K = pytest.importorskip("softdtw.kernels.numba_cpu")

TOL = {np.float64: 1e-10, np.float32: 1e-5}


def _kw(constraint, xl, yl):
    kw = dict(x_lengths=xl, y_lengths=yl)
    if constraint.kind == "sakoe_chiba":
        kw.update(global_constraint="sakoe_chiba", sakoe_chiba_radius=int(constraint.param))
    elif constraint.kind == "itakura":
        kw.update(global_constraint="itakura", itakura_max_slope=constraint.param)
    return kw


def run(cost, gamma, xl=None, yl=None, constraint=spec.Constraint(None, None), grad_value=None,
        need_gamma_grad=True):
    B, N, M = cost.shape
    xl = np.full(B, N, np.int32) if xl is None else np.asarray(xl, np.int32)
    yl = np.full(B, M, np.int32) if yl is None else np.asarray(yl, np.int32)
    lo, hi = spec.band_bounds(N, M, xl, yl, constraint)
    gv = np.ones(B, cost.dtype) if grad_value is None else np.asarray(grad_value, cost.dtype)
    snapshot = [a.copy() for a in (cost, xl, yl, lo, hi, gv)]
    value, r, aux = K.forward(cost, gamma, xl, yl, lo, hi)
    r_copy, aux_copy = r.copy(), aux.copy()
    grad, ggam = K.backward(r, aux, gamma, xl, yl, lo, hi, gv, need_gamma_grad)
    for a, b in zip((cost, xl, yl, lo, hi, gv, r, aux), snapshot + [r_copy, aux_copy]):
        np.testing.assert_array_equal(a, b)  # inputs never written
    assert value.dtype == cost.dtype and grad.dtype == cost.dtype and grad.shape == cost.shape
    assert r.shape == cost.shape and aux.ndim == 2 and aux.shape[0] == B
    assert aux.shape[1] <= K.LANES * (N + M)
    shape, dtype = K.aux_shape(B, N, M, cost.dtype)
    assert aux.shape == shape and aux.dtype == dtype
    return value, grad, ggam, (xl, yl, lo, hi, gv)


def check(cost, gamma, xl=None, yl=None, constraint=spec.Constraint(None, None), grad_value=None,
          tol=None):
    dtype = cost.dtype.type
    tol = TOL[dtype] if tol is None else tol
    if dtype is np.float32:
        # float32 resolves exponents (C - R) / gamma only to ~eps32 * |C| / gamma: the problem's
        # own conditioning, whatever the implementation
        tol = max(tol, 2e-7 * float(np.abs(cost).max()) / gamma)
    value, grad, ggam, (xl, yl, lo, hi, gv) = run(cost, gamma, xl, yl, constraint, grad_value)
    c64 = cost.astype(np.float64)
    kw = _kw(constraint, xl, yl)
    align, vref = ref.soft_dtw_alignment_from_cost(c64, gamma, **kw)
    _, gref = ref.soft_dtw_gamma_grad_from_cost(c64, gamma, **kw)
    gv64 = gv.astype(np.float64)
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad)) and np.all(np.isfinite(ggam))
    np.testing.assert_allclose(value, vref, rtol=tol, atol=tol * np.abs(vref).max())
    gexp = align * gv64[:, None, None]
    scale = max(np.abs(gexp).max(), 1e-300)
    assert np.abs(grad - gexp).max() <= tol * scale
    gg = gref * gv64
    # d value / d gamma = sum_cells E * sum_p w_p log w_p, each cell's term in [-log 3, 0]: its
    # error is judged against sum_cells E (float32 weights near 0 are only relatively accurate)
    mass = np.abs(gexp).sum(axis=(1, 2))
    assert np.all(np.abs(ggam - gg) <= tol * np.maximum(np.abs(gg), mass) + 1e-300)
    # exactly zero outside the used cells
    valid = spec.valid_cells(cost.shape[1], cost.shape[2], xl, yl, constraint)
    assert np.all(grad[~valid] == 0)
    return value, grad


DTYPES = [np.float64, np.float32]


def costs(rng, shape, dtype, scale=1.0):
    return (rng.random(shape) * scale).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 1, 7), (3, 6, 1), (3, 5, 7), (1, 9, 4), (70, 9, 13),
                                   (5, 33, 20), (2, 40, 130), (1, 150, 151)])
def test_shapes(dtype, shape):
    rng = np.random.default_rng(sum(shape))
    check(costs(rng, shape, dtype), 1.0, grad_value=rng.standard_normal(shape[0]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gamma", [1e-3, 1e-2, 0.1, 1.0, 10.0])
def test_gammas(dtype, gamma):
    rng = np.random.default_rng(1)
    check(costs(rng, (4, 12, 17), dtype, 3.0), gamma)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("constraint", [spec.Constraint("sakoe_chiba", 0.0), spec.Constraint("sakoe_chiba", 3.0),
                                        spec.Constraint("itakura", 2.0), spec.Constraint("itakura", 3.0)])
def test_bands_and_lengths(dtype, constraint):
    rng = np.random.default_rng(2)
    cost = costs(rng, (19, 24, 30), dtype)
    xl = rng.integers(12, 25, 19)
    yl = rng.integers(12, 31, 19)
    xl[0], yl[0] = 24, 30
    check(cost, 0.5, xl, yl, constraint, grad_value=rng.standard_normal(19))


@pytest.mark.parametrize("dtype", DTYPES)
def test_variable_lengths_down_to_one(dtype):
    rng = np.random.default_rng(3)
    cost = costs(rng, (5, 30, 40), dtype)
    check(cost, 1.0, [30, 3, 1, 17, 30], [40, 1, 40, 22, 5], grad_value=rng.standard_normal(5))


@pytest.mark.parametrize("dtype", DTYPES)
def test_long_pair_strips(dtype):
    """One long pair: the lanes hold column strips (S > 1), also with a band and lengths."""
    rng = np.random.default_rng(4)
    B, N, M = 1, 300, 2000
    assert K.plan(B, N, M)[1] > 8
    check(costs(rng, (B, N, M), dtype), 1.0)
    B, N, M = 1, 1500, 1500
    check(costs(rng, (B, N, M), dtype), 1.0)
    B, N, M = 2, 200, 500
    assert K.plan(B, N, M)[1] > 1
    check(costs(rng, (B, N, M), dtype), 0.3, [200, 150], [500, 333], spec.Constraint("sakoe_chiba", 40.0))


@pytest.mark.parametrize("dtype", DTYPES)
def test_many_pairs_lanes(dtype):
    """More pairs than lanes, not a multiple of the lane count (several blocks, padded lanes)."""
    rng = np.random.default_rng(5)
    B = 2 * K.LANES + 3
    assert K.plan(B, 6, 5)[1] == 1
    check(costs(rng, (B, 6, 5), dtype), 1.0, grad_value=rng.standard_normal(B))


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_costs_small_gamma_finite(dtype):
    rng = np.random.default_rng(6)
    cost = costs(rng, (3, 20, 25), dtype, 1e6)
    for gamma in (1e-3, 1e-2):
        value, grad, ggam, _ = run(cost, gamma)
        assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad)) and np.all(np.isfinite(ggam))
        check(cost, gamma)


@pytest.mark.parametrize("dtype", DTYPES)
def test_no_gamma_grad(dtype):
    rng = np.random.default_rng(7)
    cost = costs(rng, (3, 8, 9), dtype)
    _, grad, ggam, _ = run(cost, 1.0, need_gamma_grad=False)
    assert ggam is None
    _, grad2, _, _ = run(cost, 1.0)
    np.testing.assert_array_equal(grad, grad2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_makes_no_subnormals(dtype):
    """E decays away from the alignment path through the whole subnormal range; the kernel
    flushes it (and the softmin weights) to 0 first (numba_cpu._FLUSH: x86 multiplies with
    subnormals take microcode assists, measured 5x slower), so the expected alignment holds
    no subnormal, the float32 series' gradient none where the inputs have none, the values and
    the alignment's other entries still agree with the reference."""
    rng = np.random.default_rng(9)
    tiny = np.finfo(dtype).tiny
    gamma = 0.05 if dtype is np.float32 else 0.5  # E spans past 2^-126 (2^-1022) off the path
    cost = costs(rng, (2, 60, 70), dtype, 30.0)
    cost[:, 0] = 0  # a row of equal costs: E reaches every column of the first row
    _, grad = check(cost, gamma)
    nz = grad[grad != 0]
    assert nz.size and np.all(np.abs(nz) >= tiny), np.abs(nz).min()
    # the same cells decay past the subnormal range in the reference (the test is not vacuous)
    align, _ = ref.soft_dtw_alignment_from_cost(cost.astype(np.float64), gamma)
    assert np.any((align > 0) & (align < 2.0**-126 if dtype is np.float32 else align < 1e-290))
    if dtype is not np.float32:
        return
    x = rng.standard_normal((3, 120, 2)).astype(dtype) * 4
    y = rng.standard_normal((3, 110, 2)).astype(dtype) * 4
    xl, yl = np.full(3, 120, np.int32), np.full(3, 110, np.int32)
    lo, hi = spec.band_bounds(120, 110, xl, yl)
    _, r, aux = K.forward_sqeuclidean(x, y, gamma, xl, yl, lo, hi)
    gx, gy = K.backward_sqeuclidean(r, aux, x, y, gamma, xl, yl, lo, hi, np.ones(3, dtype))
    for g in (gx, gy):
        assert np.all((g == 0) | (np.abs(g) >= tiny))


def test_float32_accuracy_at_size():
    """float32 stays within 1e-5 of float64 where plain float32 R would not (offsets)."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 400, 3))
    y = rng.standard_normal((2, 400, 3))
    cost = ref.sqeuclidean_cost(x, y).astype(np.float32)
    check(cost, 1.0)


@given(st.data())
def test_hypothesis_against_reference(data):
    dtype = data.draw(st.sampled_from(DTYPES))
    B = data.draw(st.sampled_from([1, 2, 3, 17]))
    N = data.draw(st.sampled_from([1, 2, 3, 5, 8, 21]))
    M = data.draw(st.sampled_from([1, 2, 4, 7, 40]))
    gamma = data.draw(st.floats(-3, 1).map(lambda e: float(10.0**e)))
    scale = data.draw(st.floats(-2, 6).map(lambda e: float(10.0**e)))
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    xl = rng.integers(1, N + 1, B)
    yl = rng.integers(1, M + 1, B)
    kind = data.draw(st.sampled_from([None, "sakoe_chiba", "itakura"]))
    constraint = spec.Constraint(None, None)
    if kind == "sakoe_chiba":
        constraint = spec.Constraint(kind, float(data.draw(st.integers(0, 4))))
    elif kind == "itakura":
        constraint = spec.Constraint(kind, data.draw(st.sampled_from([2.0, 3.0])))
        try:
            spec.band_bounds(N, M, xl, yl, constraint)
        except ValueError:
            constraint = spec.Constraint(None, None)
    cost = costs(rng, (B, N, M), dtype, scale)
    check(cost, gamma, xl, yl, constraint, grad_value=rng.standard_normal(B))


# ---------------------------------------------------------------------------
# Padded batches: blocks of pairs sorted by length, cropped to their lengths
# ---------------------------------------------------------------------------


def _lengths(rng, B, N, M, low=1):
    return rng.integers(low, N + 1, B).astype(np.int32), rng.integers(low, M + 1, B).astype(np.int32)


def test_var_blocks_cover_every_pair_once_and_save_work():
    rng = np.random.default_rng(11)
    B, N, M = 64, 512, 512
    xl, yl = _lengths(rng, B, N, M, low=64)
    blocks = K._var_blocks(B, N, M, xl, yl)
    assert blocks is not None
    pairs = np.concatenate([p for p, *_ in blocks])
    assert sorted(pairs.tolist()) == list(range(B))
    room = K.aux_shape(B, N, M)[0][1]
    for p, n, m, S, W in blocks:
        assert n == xl[p].max() and yl[p].max() <= m <= M and (S - 1) * W < m <= S * W
        assert len(p) * S <= K.LANES and S * (n + S - 1) <= room
    # the crops fit in r, and the lane-steps are well below those of the padded layout
    assert sum(len(p) * n * m for p, n, m, _, _ in blocks) <= B * N * M
    P, S, W = K.plan(B, N, M)
    padded = -(-B // P) * (N + S - 1) * W
    assert sum((n + S - 1) * W for _, n, _, S, W in blocks) < 0.7 * padded
    # full lengths keep the padded layout
    assert K._var_blocks(B, N, M, np.full(B, N, np.int32), np.full(B, M, np.int32)) is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ["many", "few", "one"])
def test_padded_batch_blocks(dtype, case):
    rng = np.random.default_rng(3)
    if case == "many":  # short pairs and one at full length
        B, N, M = 64, 100, 100
        xl, yl = _lengths(rng, B, N // 2, M // 2)
        xl[-1] = N
    elif case == "few":
        B, N, M = 3, 200, 150
        xl, yl = np.array([60, 90, 100], np.int32), np.array([150, 40, 30], np.int32)
    else:
        B, N, M = 1, 50, 80
        xl, yl = np.array([17], np.int32), np.array([40], np.int32)
    cost = rng.random((B, N, M)).astype(dtype)
    assert K._var_blocks(B, N, M, xl, yl) is not None  # the cropped path runs
    gv = rng.normal(size=B)
    v0, g0 = check(cost, 0.7, xl=xl, yl=yl, grad_value=gv)
    check(cost, 0.7, xl=xl, yl=yl, constraint=spec.Constraint("sakoe_chiba", 3.0))
    # what lies in the padding never enters (the crops read past short pairs' ends, masked)
    dirty = cost.copy()
    for b in range(B):
        dirty[b, xl[b]:] = np.nan
        dirty[b, :, yl[b]:] = -1e30
    v1, g1, _, _ = run(dirty, 0.7, xl, yl, grad_value=gv)
    np.testing.assert_array_equal(v0, v1)
    np.testing.assert_array_equal(g0, g1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_padding_content_never_enters(dtype):
    # NaN and huge values in the padding: values and gradients are those of clean padding
    B, N, M = 24, 30, 36
    rng = np.random.default_rng(5)
    cost = rng.random((B, N, M)).astype(dtype)
    xl, yl = _lengths(rng, B, N, M)
    dirty = cost.copy()
    for b in range(B):
        dirty[b, xl[b]:] = np.nan
        dirty[b, :, yl[b]:] = 1e30
    v0, g0 = check(cost, 0.5, xl=xl, yl=yl)
    v1, g1, _, _ = run(dirty, 0.5, xl, yl)
    np.testing.assert_array_equal(v0, v1)
    np.testing.assert_array_equal(g0, g1)


def test_cold_cache_compiles_in_a_child_and_loads_from_the_cache(tmp_path):
    # code compiled in-process ran ~5x slower than the same code loaded from numba's cache: the
    # first call with a cold cache compiles in a child process, then loads from the cache
    code = (
        "import numpy as np\n"
        "from softdtw import spec\n"
        "from softdtw.kernels import numba_cpu as K\n"
        "assert not K._cache_is_warm()\n"
        "xl = np.full(2, 9, np.int32)\n"
        "lo, hi = spec.band_bounds(9, 9, xl, xl, spec.Constraint(None, None))\n"
        "v, r, aux = K.forward(np.ones((2, 9, 9), np.float32), 1.0, xl, xl, lo, hi)\n"
        "K.backward(r, aux, 1.0, xl, xl, lo, hi, np.ones(2, np.float32), True)\n"
        "assert K._cache_is_warm()\n"
        "for f in (K._fwd_blocks, K._bwd_blocks):  # the entry points (they run _fwd_block, _bwd_block)\n"
        "    assert sum(f.stats.cache_hits.values()) >= 1 and not f.stats.cache_misses, f.stats\n"
        "print('ok')\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    env.pop("SOFTDTW_NUMBA_WARMUP", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]


def test_float64_exp2_log2_within_one_ulp():
    # the float64 kernel's vectorisable exp2/log2 against long double references (x86: 64-bit
    # mantissa), over what the kernel feeds them; exact where the recursion needs it exact
    rng = np.random.default_rng(0)
    t = np.concatenate([-rng.random(100_000) * 60, -rng.random(20_000) * 1000, -rng.random(50_000) * 1e-4,
                        [0.0, -1.0, -1023.0, -2000.0, -np.inf]])
    s = np.concatenate([1 + 2 * rng.random(100_000), 1 + rng.random(50_000) * 1e-7, [1.0, 2.0, 3.0]])
    e, lg = K.exp2_log2(t, s)
    assert e[-5] == 1.0 and e[-4] == 0.5 and (e[-3:] == 0.0).all() and lg[-3] == 0.0 and lg[-2] == 1.0
    if np.finfo(np.longdouble).nmant < 63:
        pytest.skip("no extended precision long double here for the reference")
    ok = t > -1000
    for got, x, fn in ((e[ok], t[ok], np.exp2), (lg, s, np.log2)):
        ref = fn(x.astype(np.longdouble))
        ulp = np.abs(got.astype(np.longdouble) - ref) / np.spacing(np.abs(ref.astype(np.float64))).astype(np.longdouble)
        assert ulp.max() <= 1.0, (fn.__name__, ulp.max())


def test_float32_exp2_log2_accuracy():
    # float32: exp2 of degree 5 on [-1/2, 1/2] (relative error measured 1.66e-7), log2 with its
    # argument's power of 2 taken from the bits (absolute error 1.32e-7); exact where the
    # recursion needs it exact (2^0 = 1, 0 from -127 down, log2 of 1, 2 and their neighbours'
    # k), and the bit split right at the sqrt 2 boundaries
    rng = np.random.default_rng(1)
    t = np.concatenate([-rng.random(100_000) * 126, -rng.random(50_000) * 1e-3,
                        [0.0, -0.5, -1.0, -127.0, -300.0, -np.inf]]).astype(np.float32)
    s = np.concatenate([1 + 2 * rng.random(100_000), [1.0, 2.0, 3.0, np.sqrt(2), 2 * np.sqrt(2)],
                        np.nextafter(np.float32([np.sqrt(2), 2 * np.sqrt(2)]), np.float32(0))]).astype(np.float32)
    e, lg = K.exp2_log2(t, s)
    assert e.dtype == np.float32 and lg.dtype == np.float32
    assert e[-6] == 1.0 and (e[-3:] == 0.0).all() and lg[100_000] == 0.0 and lg[100_001] == 1.0
    ok = t > -126
    rel = np.abs(e[ok] / np.exp2(t[ok].astype(np.float64)) - 1)
    assert rel.max() < 2e-7, rel.max()
    err = np.abs(lg - np.log2(s.astype(np.float64)))
    assert err.max() < 2e-7, err.max()


@pytest.mark.parametrize("dispatch", ["numba", "pool"])
@pytest.mark.parametrize("threads", [2, 3])
def test_blocks_from_shared_counter_same_on_any_thread_count(threads, dispatch, monkeypatch):
    """The plan's blocks run through one numba call per thread that takes blocks from a shared
    atomic counter (_fwd_blocks, _bwd_blocks): every block once, the same numbers to the last
    bit as one thread, whatever the threads' interleaving (cost and series paths), whether the
    threads are numba's parallel region (_fwd_par, _bwd_par) or the Python pool."""
    import numba

    monkeypatch.setenv("SOFTDTW_NUMBA_THREADS", dispatch)
    monkeypatch.setattr(K, "_LAYER_PID", [])
    regions = []
    for name in ("_fwd_par", "_bwd_par"):
        monkeypatch.setattr(K, name, lambda *a, _f=getattr(K, name): regions.append(a[0]) or _f(*a))

    rng = np.random.default_rng(11)
    B, N, M, D = 5 * K.LANES + 3, 7, 6, 2
    assert K.plan(B, N, M) == (K.LANES, 1, M)  # 6 blocks, the last one of 3 pairs
    x = rng.standard_normal((B, N, D)).astype(np.float32)
    y = rng.standard_normal((B, M, D)).astype(np.float32)
    cost = ((x[:, :, None] - y[:, None]) ** 2).sum(-1).astype(np.float32)
    xl, yl = np.full(B, N, np.int32), np.full(B, M, np.int32)
    lo, hi = spec.band_bounds(N, M, xl, yl, spec.Constraint(None, None))
    gv = rng.standard_normal(B).astype(np.float32)

    def once():
        value, r, aux = K.forward(cost, 0.7, xl, yl, lo, hi)
        grad, ggam = K.backward(r, aux, 0.7, xl, yl, lo, hi, gv, True)
        sv, sr, saux = K.forward_sqeuclidean(x, y, 0.7, xl, yl, lo, hi)
        gx, gy = K.backward_sqeuclidean(sr, saux, x, y, 0.7, xl, yl, lo, hi, gv)
        return value, K.values(cost, 0.7, xl, yl, lo, hi), grad, ggam, sv, gx, gy

    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        want = once()
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        got = [once() for _ in range(3)]
    finally:
        numba.set_num_threads(before)
    for g in got:
        for a, b in zip(g, want):
            assert np.array_equal(a, b)
    if dispatch == "pool" or numba.threading_layer() == "workqueue":
        assert regions == []
    else:  # the 5 kernel calls of once(), 3 times, on as many threads as asked for
        assert regions == [min(threads, numba.config.NUMBA_NUM_THREADS)] * 15
    value, _, grad, *_ = want
    _, vref = ref.soft_dtw_alignment_from_cost(cost.astype(np.float64), 0.7)
    np.testing.assert_allclose(value, vref, rtol=1e-5)  # every pair computed (none left empty)
    assert np.isfinite(grad).all() and (np.abs(grad).reshape(B, -1).max(1) > 0).all()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork: POSIX only")
def test_forked_child_runs_the_kernel_after_its_parent_did():
    """GNU OpenMP aborts a forked child that starts a parallel region after its parent did
    (a DataLoader worker started with fork, say): the child's blocks go through the Python
    pool instead (_numba_layer_ok), with the parent's numbers."""
    code = """
import os, numpy as np, numba
from softdtw import spec
from softdtw.kernels import numba_cpu as K
numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
rng = np.random.default_rng(0)
cost = rng.random((3 * K.LANES, 9, 8)).astype(np.float32)
xl, yl = np.full(3 * K.LANES, 9, np.int32), np.full(3 * K.LANES, 8, np.int32)
lo, hi = spec.band_bounds(9, 8, xl, yl, spec.Constraint(None, None))
def once():
    value, r, aux = K.forward(cost, 1.0, xl, yl, lo, hi)
    return value, K.backward(r, aux, 1.0, xl, yl, lo, hi, np.ones(len(xl), np.float32), False)[0]
want = once()
pid = os.fork()
if pid == 0:
    got = once()
    os._exit(0 if all(np.array_equal(a, b) for a, b in zip(got, want)) and not K._LAYER_PID[0][1] else 3)
_, status = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(status), "layer", numba.threading_layer())
"""
    env = dict(os.environ)
    env.pop("SOFTDTW_NUMBA_THREADS", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "child 0 " in out.stdout, (out.stdout, out.stderr[-3000:])


def test_wide_vectors_reach_llvm():
    """_wide_vectors() marks the calling function "prefer-vector-width"="512" where the host has
    AVX-512: LLVM then vectorises its loops with zmm registers (it stops at ymm otherwise)."""
    from numba import njit

    @njit(error_model="numpy", fastmath=K._FM)
    def scale(a, b):
        K._wide_vectors()
        for i in range(a.size):
            a[i] = a[i] * b[i] + np.float32(1.0)

    @njit(error_model="numpy", fastmath=K._FM)
    def plain(a, b):
        for i in range(a.size):
            a[i] = a[i] * b[i] + np.float32(1.0)

    a = np.ones(100, np.float32)
    for fn in (scale, plain):
        fn(a, a)
    wide, narrow = (fn.inspect_asm(fn.signatures[0]) for fn in (scale, plain))
    ir = scale.inspect_llvm(scale.signatures[0])
    if K._WIDE_ATTR is None:
        assert K._host_has_avx512() is False and "zmm" not in wide and "prefer-vector-width" not in ir
    else:
        # the attribute is in the function's IR and its loop runs on zmm registers; the plain
        # function's width is LLVM's choice for the CPU (ymm on Intel Xeons, zmm on AMD Zen 4)
        assert K._WIDE_ATTR in ir and "zmm" in wide
        assert "prefer-vector-width" not in plain.inspect_llvm(plain.signatures[0])
    np.testing.assert_array_equal(a, np.float32(5.0))  # a * a + 1, twice: 1 -> 2 -> 5


def test_ticket_hands_out_each_number_once():
    """The atomic counter behind the block drivers, taken from three threads at once."""
    import threading

    from numba import njit

    @njit(nogil=True)
    def take(counter, n, out):
        while True:
            k = K._ticket(counter)
            if k >= n:
                return
            out[k] += 1

    counter, n = np.zeros(1, np.int64), 200_000
    out = np.zeros(n, np.int64)
    take(np.zeros(1, np.int64), 0, out)  # compile first
    threads = [threading.Thread(target=take, args=(counter, n, out)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (out == 1).all() and counter[0] >= n


@pytest.mark.parametrize("B, P", [(512, 64), (32, 16), (7, 2), (1, 1)])
def test_next_block_hands_out_the_blocks_then_none_after_a_stop(B, P):
    """_next_block: the blocks of P pairs in order, then none; and none after _stop_tickets
    (whose 2**62 times P wraps around to 0 in int64: block 0 again, were it scaled first)."""
    tickets = np.zeros(1, np.int64)
    got = [K._next_block(tickets, B, P) for _ in range(-(-B // P) + 2)]
    want = [(b0, min(P, B - b0)) for b0 in range(0, B, P)]
    assert got[:len(want)] == want and all(pr == 0 for _, pr in got[len(want):])
    tickets = np.zeros(1, np.int64)
    K._stop_tickets(tickets)
    assert all(K._next_block(tickets, B, P)[1] == 0 for _ in range(3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(70, 9, 12), (2, 150, 140), (1, 1, 5)], ids=str)
def test_values_without_state_equal_forward(dtype, shape):
    # values() keeps R for two steps only; same numbers as forward(), padded blocks included
    B, N, M = shape
    rng = np.random.default_rng(3)
    cost = rng.random(shape).astype(dtype)
    for xl, yl in ((np.full(B, N), np.full(B, M)), (rng.integers(1, N + 1, B), rng.integers(1, M + 1, B))):
        lo, hi = spec.band_bounds(N, M, xl, yl, spec.Constraint(None, None))
        want, r, _ = K.forward(cost, 0.5, xl, yl, lo, hi)
        assert r.shape == shape
        got = K.values(cost, 0.5, xl, yl, lo, hi)
        assert got.dtype == dtype and np.array_equal(got, want)


def _sqeuclidean_reference(x, y, gamma, xl, yl, lo, hi, gv):
    """Values and gradients w.r.t. x, y of the float64 cost path (the kernel on the float64
    cost matrix, the cost's gradient by hand)."""
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    cost = ((x64[:, :, None] - y64[:, None]) ** 2).sum(-1)
    value, r, aux = K.forward(cost, gamma, xl, yl, lo, hi)
    g, _ = K.backward(r, aux, gamma, xl, yl, lo, hi, gv.astype(np.float64), False)
    gx = 2 * (x64 * g.sum(-1)[..., None] - g @ y64)
    gy = 2 * (y64 * g.sum(-2)[..., None] - g.transpose(0, 2, 1) @ x64)
    return value, gx, gy


@pytest.mark.parametrize("shape", [(3, 7, 5, 2), (70, 33, 29, 3), (2, 300, 200, 4), (1, 1, 1, 1), (5, 1, 9, 2),
                                   (5, 9, 1, 2), (130, 20, 40, 8), (9, 70, 90, 5), (4, 40, 37, 11)], ids=str)
@pytest.mark.parametrize("constraint", [spec.Constraint(None, None), spec.Constraint("sakoe_chiba", 3.0)], ids=str)
@pytest.mark.parametrize("padded", [False, True])
def test_sqeuclidean_series_equal_cost_path(shape, constraint, padded):
    # forward_sqeuclidean / backward_sqeuclidean form the cost of x, y in the kernel and return
    # the gradients of x and y: the same numbers as the cost-matrix path (float64 reference),
    # strips (N = 300) and padded blocks included, whatever the padding holds
    B, N, M, D = shape
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal((B, N, D)).astype(np.float32)
    y = rng.standard_normal((B, M, D)).astype(np.float32)
    xl, yl = np.full(B, N, np.int32), np.full(B, M, np.int32)
    if padded:
        xl = rng.integers(1, N + 1, B).astype(np.int32)
        yl = rng.integers(1, M + 1, B).astype(np.int32)
        for b in range(B):
            x[b, xl[b]:] = np.nan
            y[b, yl[b]:] = -1e30
    lo, hi = spec.band_bounds(N, M, xl, yl, constraint)
    gv = rng.standard_normal(B).astype(np.float32)
    snapshot = [a.copy() for a in (x, y, xl, yl, lo, hi, gv)]
    value, r, aux = K.forward_sqeuclidean(x, y, 0.7, xl, yl, lo, hi)
    gx, gy = K.backward_sqeuclidean(r, aux, x, y, 0.7, xl, yl, lo, hi, gv)
    gx2, gy2 = K.backward_sqeuclidean(r, aux, x, y, 0.7, xl, yl, lo, hi, gv)
    for a, b in zip((x, y, xl, yl, lo, hi, gv), snapshot):
        np.testing.assert_array_equal(a, b)  # inputs never written
    np.testing.assert_array_equal(gx, gx2)  # the state is reusable (retain_graph)
    np.testing.assert_array_equal(gy, gy2)
    gx0, none = K.backward_sqeuclidean(r, aux, x, y, 0.7, xl, yl, lo, hi, gv, need_y=False)
    assert none is None  # the sweep without y's sums: x's in another order
    np.testing.assert_allclose(gx0, gx, rtol=0, atol=1e-6 * max(np.abs(gx).max(), 1e-3))
    assert value.dtype == gx.dtype == gy.dtype == np.float32 and gx.shape == x.shape and gy.shape == y.shape
    xs = np.where(np.isnan(x), 0, x)
    ys = np.where(y < -1e29, 0, y)
    vref, gxref, gyref = _sqeuclidean_reference(xs, ys, 0.7, xl, yl, lo, hi, gv)
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(gx)) and np.all(np.isfinite(gy))
    np.testing.assert_allclose(value, vref, rtol=2e-5, atol=2e-5 * np.abs(vref).max())
    scale = max(np.abs(gxref).max(), np.abs(gyref).max(), 1e-3)
    assert np.abs(gx - gxref).max() <= 2e-5 * scale
    assert np.abs(gy - gyref).max() <= 2e-5 * scale
    for b in range(B):  # exactly 0 past the lengths
        assert not gx[b, xl[b]:].any() and not gy[b, yl[b]:].any()


def test_sqeuclidean_series_bad_input():
    x = np.zeros((2, 3, 2), np.float32)
    xl = np.full(2, 3, np.int32)
    lo, hi = spec.band_bounds(3, 3, xl, xl, spec.Constraint(None, None))
    with pytest.raises(TypeError, match="float32"):
        K.forward_sqeuclidean(x.astype(np.float64), x, 1.0, xl, xl, lo, hi)
    with pytest.raises(ValueError, match=r"\(B, N, D\)"):
        K.forward_sqeuclidean(x, x[:, :, :1], 1.0, xl, xl, lo, hi)


def test_sqeuclidean_series_nonfinite_pair_only():
    # a NaN or an infinity inside a pair's lengths makes that pair's value NaN, and no other's
    rng = np.random.default_rng(3)
    x = rng.standard_normal((70, 9, 2)).astype(np.float32)
    y = rng.standard_normal((70, 11, 2)).astype(np.float32)
    xl = np.full(70, 9, np.int32)
    yl = np.full(70, 11, np.int32)
    xl[5] = 4
    lo, hi = spec.band_bounds(9, 11, xl, yl, spec.Constraint(None, None))
    clean, _, _ = K.forward_sqeuclidean(x, y, 1.0, xl, yl, lo, hi)
    x[3, 8, 1] = np.nan
    y[40, 0, 0] = np.inf
    x[5, 6, 0] = np.nan  # past x_len[5]: never read
    value, _, _ = K.forward_sqeuclidean(x, y, 1.0, xl, yl, lo, hi)
    assert np.isnan(value[3]) and np.isnan(value[40])
    keep = np.ones(70, bool)
    keep[[3, 40]] = False
    np.testing.assert_array_equal(value[keep], clean[keep])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nonfinite_pairs_exponent_test(dtype):
    """nonfinite_pairs reads the exponent bits: NaN, +inf and -inf within a pair's length flag
    it; the largest finite value, subnormals, -0.0 and anything past the length do not."""
    fi = np.finfo(dtype)
    a = np.ones((8, 5, 3), dtype)
    a[0, 4, 2] = np.nan
    a[1, 0, 0] = np.inf
    a[2, 2, 1] = -np.inf
    a[3] = fi.max
    a[3, 1] = -fi.max
    a[4] = fi.smallest_subnormal
    a[4, 0, 0] = -0.0
    a[5, 3, 0] = np.nan  # past pair 5's length
    a[6, 4, 2] = -np.nan
    lengths = np.array([5, 1, 5, 5, 5, 3, 5, 5], np.int32)
    want = [True, True, True, False, False, False, True, False]
    assert K.nonfinite_pairs(a, lengths).tolist() == want
    assert K.nonfinite_pairs(a, np.full(8, 5)).tolist() == want[:5] + [True] + want[6:]
    before = a.copy()
    K.nonfinite_pairs(a, lengths)
    np.testing.assert_array_equal(a, before)


def test_nonfinite_pairs_refuses_other_dtypes():
    for dt in (np.int64, np.float16, np.dtype(">f8")):
        with pytest.raises(TypeError, match="float32 or float64"):
            K.nonfinite_pairs(np.zeros((2, 3, 1), dt), np.full(2, 3))


@pytest.mark.parametrize("python_blocks", [False, True])
def test_an_error_in_one_thread_stops_the_others(python_blocks):
    """_run_threads: the first exception is raised once every thread is done, and the other
    threads stop taking blocks instead of running the rest of the batch."""
    import threading
    import time

    done, lock = [], threading.Lock()

    def fn(k):
        if k == 3:
            raise KeyError("block 3")
        time.sleep(0.002)
        with lock:
            done.append(k)

    with pytest.raises(KeyError, match="block 3"):
        if python_blocks:
            K._run_blocks(fn, 1000, threads=2)
        else:
            tickets = iter(range(1000))
            stopped = []

            def work():
                for k in tickets:
                    if stopped:
                        return
                    fn(k)

            K._run_threads(work, 1000, threads=2, stop=lambda: stopped.append(True))
    time.sleep(0.05)
    assert len(done) < 20 and len(set(done)) == len(done)


def test_run_threads_lets_go_of_the_work_when_it_returns(monkeypatch):
    """_run_threads: once it returns, no pool thread still holds the work (and so the arrays
    it closes over). A worker drops its work item only after setting its future; here each
    worker is held 0.2 s at that point, as a descheduled thread would be."""
    import concurrent.futures.thread as cft
    import gc
    import time
    import weakref

    run = cft._WorkItem.run

    def slow_run(self):
        run(self)
        time.sleep(0.2)  # the future is set, the work item still referenced

    monkeypatch.setattr(cft._WorkItem, "run", slow_run)

    class Buffer:
        pass

    buf = Buffer()
    ref = weakref.ref(buf)

    def work(buf=buf):
        assert isinstance(buf, Buffer)

    gc.disable()  # freed by reference counting alone, right away
    try:
        K._run_threads(work, 2, threads=2)
        del work, buf
        assert ref() is None
    finally:
        gc.enable()
        time.sleep(0.25)  # the pool's worker is back in its loop before the patch goes


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
@pytest.mark.parametrize("threads", [2, 3])
def test_pool_works_in_a_forked_child(threads):
    """The kernels' thread pool, used by the parent, is re-made in a forked child (it hung there:
    work submitted to the parent's executor waited forever for threads the child does not have)."""
    import signal
    import warnings

    from softdtw.kernels import numba_cpu

    done = []
    numba_cpu._run_blocks(done.append, 8, threads)
    assert sorted(done) == list(range(8))
    with warnings.catch_warnings():  # (JAX, once imported by another test, warns at every fork)
        warnings.simplefilter("ignore", RuntimeWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        signal.alarm(20)
        seen = []
        numba_cpu._run_blocks(seen.append, 8, threads)
        os._exit(0 if sorted(seen) == list(range(8)) else 3)
    _, status = os.waitpid(pid, 0)
    assert status == 0, f"the child's call did not finish (wait status {status}; 14: hung until its alarm)"
