"""cdist_soft_dtw in NumPy, torch and JAX: tslearn's values, each pair once, bounded chunks,
gradients, progress bar, bad input."""

import contextlib
import sys
import tracemalloc

import numpy as np
import pytest

import softdtw.numpy as snp
from softdtw import _pairwise
from softdtw.numpy import _cdist as np_cdist

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

import softdtw.jax as sjax  # noqa: E402
import softdtw.torch as storch  # noqa: E402
from softdtw.jax import _cdist as jax_cdist  # noqa: E402
from softdtw.torch import _cdist as torch_cdist  # noqa: E402

tslearn_metrics = pytest.importorskip("tslearn.metrics")

BANDS = [{}, {"global_constraint": "sakoe_chiba", "sakoe_chiba_radius": 2},
         {"global_constraint": "itakura", "itakura_max_slope": 2.0}]


class Realization:
    """Converts NumPy inputs to a realization's type and its result back to NumPy."""

    def __init__(self, name):
        self.name = name

    def context(self):
        return jax.enable_x64(True) if self.name == "jax" else contextlib.nullcontext()

    def array(self, a):
        if a is None:
            return None
        if self.name == "torch":
            return torch.as_tensor(a)
        if self.name == "jax":
            return jnp.asarray(a)
        return a

    def cdist(self, X, Y=None, *args, **kw):
        fn = {"numpy": snp, "torch": storch, "jax": sjax}[self.name].cdist_soft_dtw
        with self.context():
            out = fn(self.array(X), self.array(Y), *args, **kw)
            return np.asarray(out), str(out.dtype).replace("torch.", "")


@pytest.fixture(params=["numpy", "torch", "jax"])
def impl(request):
    return Realization(request.param)


def data(seed=0, n=5, m=4, N=7, M=5, D=2):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, N, D)), rng.standard_normal((m, M, D))


def rel_err(a, b):
    return np.abs(np.asarray(a, np.float64) - b).max() / max(1.0, np.abs(b).max())


# ---------------------------------------------------------------- the pair plan


@pytest.mark.parametrize("kind, n, m", [("cross", 5, 3), ("triangle", 6, 6), ("diagonal", 4, 4), ("cross", 0, 3)])
@pytest.mark.parametrize("chunk", [1, 4, 7, 100])
def test_plan_lists_each_pair_once_in_bounded_chunks(kind, n, m, chunk):
    plan = _pairwise.PairPlan(kind, n, m, chunk)
    got = [(i.tolist(), j.tolist()) for i, j in plan.chunks()]
    assert all(len(i) <= chunk for i, _ in got)
    assert len(got) == len(plan)
    pairs = [p for i, j in got for p in zip(i, j)]
    expected = {"cross": [(i, j) for i in range(n) for j in range(m)],
                "triangle": list(zip(*np.triu_indices(n))),
                "diagonal": [(i, i) for i in range(n)]}[kind]
    assert pairs == [tuple(map(int, p)) for p in expected]


def test_default_chunk_bounds_cells():
    assert _pairwise.check_chunk_size(None, 64, 64) == 1024
    assert _pairwise.check_chunk_size(None, 128, 128) * 128 * 128 <= _pairwise.CELLS_PER_CHUNK
    assert _pairwise.check_chunk_size(None, 10_000, 10_000) == 1


# ---------------------------------------------------------------- tslearn's values


@pytest.mark.parametrize("band", BANDS)
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("normalize", [False, True])
def test_equals_tslearn(impl, band, symmetric, normalize):
    X, Y = data(N=7, M=6)
    Y = None if symmetric else Y
    peer = tslearn_metrics.cdist_soft_dtw_normalized if normalize else tslearn_metrics.cdist_soft_dtw
    expected = peer(X, Y, gamma=0.5, **band)
    got, dtype = impl.cdist(X, Y, 0.5, normalize=normalize, chunk_size=3, **band)
    assert dtype == "float64"
    assert got.shape == expected.shape
    assert rel_err(got, expected) < 1e-10
    if symmetric:
        assert (got == got.T).all()
    if normalize:
        assert got.min() >= -1e-12
        if symmetric:
            assert (np.diagonal(got) == 0).all()


def test_float32_agrees_with_float64(impl):
    X, Y = data(seed=1, n=6, m=5, N=12, M=9, D=3)
    expected = tslearn_metrics.cdist_soft_dtw(X, Y, gamma=1.0)
    got, dtype = impl.cdist(X.astype(np.float32), Y.astype(np.float32), 1.0)
    assert dtype == "float32"
    assert rel_err(got, expected) < 1e-5


def test_numpy_variable_lengths_equal_tslearn():
    rng = np.random.default_rng(3)
    X = [rng.standard_normal((k, 2)) for k in (3, 8, 5, 6)]
    Y = [rng.standard_normal((k, 2)) for k in (7, 2, 4)]
    for band in BANDS[:2]:
        np.testing.assert_allclose(snp.cdist_soft_dtw(X, Y, 0.3, chunk_size=5, **band),
                                   tslearn_metrics.cdist_soft_dtw(X, Y, 0.3, **band), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(snp.cdist_soft_dtw(X, gamma=0.3, normalize=True),
                               tslearn_metrics.cdist_soft_dtw_normalized(X, gamma=0.3), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("grad", [False, True])  # the numba fast path / the autograd path
def test_torch_variable_length_lists_equal_tslearn(grad):
    rng = np.random.default_rng(15)
    X = [rng.standard_normal((k, 2)) for k in (3, 8, 5, 6)]
    Y = [rng.standard_normal((k, 2)) for k in (7, 2, 4)]
    xt = [torch.tensor(s, requires_grad=grad) for s in X]
    yt = [torch.tensor(s, requires_grad=grad) for s in Y]
    for band in BANDS[:2]:
        got = storch.cdist_soft_dtw(xt, yt, 0.3, chunk_size=5, **band)
        assert got.shape == (4, 3) and got.dtype == torch.float64
        np.testing.assert_allclose(got.detach().numpy(), tslearn_metrics.cdist_soft_dtw(X, Y, 0.3, **band),
                                   rtol=1e-10, atol=1e-10)
    got = storch.cdist_soft_dtw(xt, gamma=0.3, normalize=True)
    np.testing.assert_allclose(got.detach().numpy(), tslearn_metrics.cdist_soft_dtw_normalized(X, gamma=0.3),
                               rtol=1e-10, atol=1e-10)
    # a list of equal lengths is the stacked tensor
    same = [torch.tensor(s[:2]) for s in X]
    assert torch.equal(storch.cdist_soft_dtw(same, gamma=0.3), storch.cdist_soft_dtw(torch.stack(same), gamma=0.3))


def test_torch_variable_length_gradients_reach_each_series():
    rng = np.random.default_rng(16)
    X = [rng.standard_normal((k, 2)) for k in (3, 6, 4)]
    Y = [rng.standard_normal((k, 2)) for k in (5, 2)]
    W = rng.standard_normal((3, 2))
    xt = [torch.tensor(s, requires_grad=True) for s in X]
    yt = [torch.tensor(s, requires_grad=True) for s in Y]
    (torch.tensor(W) * storch.cdist_soft_dtw(xt, yt, 0.7, normalize=True, chunk_size=4)).sum().backward()
    GX = [np.zeros_like(a) for a in X]
    GY = [np.zeros_like(b) for b in Y]
    for i, a in enumerate(X):
        for j, b in enumerate(Y):
            _, gx, gy = snp.soft_dtw_value_and_grad(a, b, 0.7, normalize=True)
            GX[i] += W[i, j] * gx
            GY[j] += W[i, j] * gy
    for t, g in zip(xt + yt, GX + GY):
        np.testing.assert_allclose(t.grad.numpy(), g, rtol=1e-9, atol=1e-10)


def test_torch_bad_series_in_a_list():
    with pytest.raises(ValueError, match=r"X\[1\] must have shape \(length, D\)"):
        storch.cdist_soft_dtw([torch.zeros(3, 1), torch.zeros(3)])
    with pytest.raises(ValueError, match="same number of features"):
        storch.cdist_soft_dtw([torch.zeros(3, 1), torch.zeros(3, 2)])
    with pytest.raises(ValueError, match=r"X holds empty series: X\[0\] has length 0"):
        storch.cdist_soft_dtw([torch.zeros(0, 1)])
    with pytest.raises(ValueError, match="non-empty list"):
        storch.cdist_soft_dtw([])
    # tslearn's datasets: a list may mix tensors and arrays
    assert storch.cdist_soft_dtw([torch.zeros(3, 1)], [np.zeros((3, 1))]).shape == (1, 1)


def test_jax_variable_length_lists_equal_tslearn_and_differentiate():
    rng = np.random.default_rng(17)
    X = [rng.standard_normal((k, 2)) for k in (3, 6, 4)]
    Y = [rng.standard_normal((k, 2)) for k in (5, 2)]
    W = rng.standard_normal((3, 2))
    with jax.enable_x64(True):
        xs, ys = [jnp.asarray(a) for a in X], [jnp.asarray(b) for b in Y]
        for band in BANDS[:2]:
            got = sjax.cdist_soft_dtw(xs, ys, 0.3, chunk_size=4, **band)
            np.testing.assert_allclose(np.asarray(got), tslearn_metrics.cdist_soft_dtw(X, Y, 0.3, **band),
                                       rtol=1e-10, atol=1e-10)
        got = sjax.cdist_soft_dtw(xs, gamma=0.3, normalize=True)
        np.testing.assert_allclose(np.asarray(got), tslearn_metrics.cdist_soft_dtw_normalized(X, gamma=0.3),
                                   rtol=1e-10, atol=1e-10)
        gx, gy = jax.grad(lambda a, b: (W * sjax.cdist_soft_dtw(a, b, 0.7, normalize=True)).sum(),
                          argnums=(0, 1))(xs, ys)
    for i, a in enumerate(X):
        ref = sum(W[i, j] * snp.soft_dtw_value_and_grad(a, b, 0.7, normalize=True)[1] for j, b in enumerate(Y))
        np.testing.assert_allclose(np.asarray(gx[i]), ref, rtol=1e-9, atol=1e-10)
    for j, b in enumerate(Y):
        ref = sum(W[i, j] * snp.soft_dtw_value_and_grad(a, b, 0.7, normalize=True)[2] for i, a in enumerate(X))
        np.testing.assert_allclose(np.asarray(gy[j]), ref, rtol=1e-9, atol=1e-10)
    with pytest.raises(ValueError, match=r"X\[1\] must have shape \(length, D\)"):
        sjax.cdist_soft_dtw([np.zeros((3, 1)), np.zeros(3)])
    with pytest.raises(ValueError, match="same number of features"):
        sjax.cdist_soft_dtw([np.zeros((3, 1)), np.zeros((3, 2))])


def test_numpy_nan_padding_is_tslearns_variable_length():
    rng = np.random.default_rng(14)
    X = rng.standard_normal((4, 8, 2))
    X[1, 5:] = np.nan  # tslearn's padding: series 1 has length 5, series 3 length 7
    X[3, 7:] = np.nan
    Y = rng.standard_normal((3, 6, 2))
    np.testing.assert_allclose(snp.cdist_soft_dtw(X, Y, 0.5), tslearn_metrics.cdist_soft_dtw(X, Y, 0.5),
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(snp.cdist_soft_dtw(X, gamma=0.5, normalize=True),
                               tslearn_metrics.cdist_soft_dtw_normalized(X, gamma=0.5), rtol=1e-10, atol=1e-10)


def test_nan_inside_a_series_raises(impl):
    """tslearn's datasets: NaN only as trailing padding, anywhere else an error."""
    X, Y = data(seed=15)
    X[2, 1, 0] = np.nan
    with pytest.raises(ValueError, match=r"X\[2\] has a NaN at time step 1"):
        impl.cdist(X, Y, 1.0)


def test_inf_inside_a_series_gives_nan_entries(impl):
    """The non-finite rule of docs/algorithm.md: NaN for the pairs of that series only."""
    X, Y = data(seed=15)
    X[2, 1, 0] = np.inf
    got, _ = impl.cdist(X, Y, 1.0)
    expected = tslearn_metrics.cdist_soft_dtw(np.delete(X, 2, axis=0), Y, 1.0)
    assert np.isnan(got[2]).all()
    np.testing.assert_allclose(np.delete(got, 2, axis=0), expected, rtol=1e-10)
    sym, _ = impl.cdist(X, None, 1.0, normalize=True)
    assert np.isnan(sym[2]).all() and np.isnan(sym[:, 2]).all()
    assert np.isfinite(np.delete(np.delete(sym, 2, 0), 2, 1)).all()


def test_equals_reference_soft_dtw_pairwise(impl):
    """Entry (i, j) is softdtw.numpy.soft_dtw(X[i], Y[j]) (the float64 reference), also for n != m, N != M."""
    X, Y = data(seed=4, n=3, m=5, N=4, M=9, D=1)
    ii, jj = np.meshgrid(np.arange(3), np.arange(5), indexing="ij")
    expected = snp.soft_dtw(X[ii.ravel()], Y[jj.ravel()], 0.2).reshape(3, 5)
    got, _ = impl.cdist(X, Y, 0.2, chunk_size=4)
    assert rel_err(got, expected) < 1e-10


def test_empty_dataset(impl):
    X, Y = data()
    got, _ = impl.cdist(X[:0], Y, 1.0)
    assert got.shape == (0, Y.shape[0])


# ---------------------------------------------------------------- each pair once, bounded chunks


def record_pairs(monkeypatch, name):
    """Record the (i, j) pairs each chunk sends down to soft-DTW."""
    seen = []
    if name in ("numpy", "torch"):  # torch outside autograd: the NumPy realization's numba path
        original = np_cdist.PairKernel.values

        def values(self, ii, jj):
            seen.append((np.asarray(ii), np.asarray(jj)))
            return original(self, ii, jj)

        monkeypatch.setattr(np_cdist.PairKernel, "values", values)
    else:
        original = jax_cdist.run_plan

        def run_plan(plan, a, b, gamma, band, bar, *lengths):
            seen.extend(plan.chunks())
            return original(plan, a, b, gamma, band, bar, *lengths)

        monkeypatch.setattr(jax_cdist, "run_plan", run_plan)
    return seen


def test_symmetric_computes_each_unordered_pair_once(impl, monkeypatch):
    X, _ = data(n=9)
    seen = record_pairs(monkeypatch, impl.name)
    got, _ = impl.cdist(X, None, 1.0, normalize=True, chunk_size=8)
    pairs = [(int(i), int(j)) for ii, jj in seen for i, j in zip(ii, jj)]
    assert sorted(pairs) == [(i, j) for i in range(9) for j in range(i, 9)]  # no self terms apart
    assert max(len(ii) for ii, _ in seen) <= 8
    assert (np.diagonal(got) == 0).all()


def test_divergence_self_terms_once_per_series(impl, monkeypatch):
    X, Y = data(n=4, m=3)
    seen = record_pairs(monkeypatch, impl.name)
    impl.cdist(X, Y, 1.0, normalize=True, chunk_size=5)
    assert sum(len(ii) for ii, _ in seen) == 4 * 3 + 4 + 3


def record_sizes(monkeypatch, module, name):
    sizes = []
    original = getattr(module, name)

    def values(*args):
        sizes.append(len(args[3] if module is torch_cdist else args[1]))
        return original(*args)

    monkeypatch.setattr(module, name, values)
    return sizes


def test_torch_chunks_stay_bounded_for_large_n(monkeypatch):
    """n = 300, m = 200: 60,000 pairs, never more than chunk_size of them (and their DP state) at once."""
    X = torch.as_tensor(np.random.default_rng(5).standard_normal((300, 4, 1)), dtype=torch.float32)
    sizes = record_sizes(monkeypatch, np_cdist.PairKernel, "values")
    with torch.no_grad():
        out = storch.cdist_soft_dtw(X.requires_grad_(), X[:200], chunk_size=4096)
    assert out.shape == (300, 200)
    assert max(sizes) == 4096 and sum(sizes) == 300 * 200


@pytest.mark.parametrize("kernel", ["numba", "pure"])
def test_torch_autograd_path_in_bounded_chunks_equals_fast_path(monkeypatch, kernel):
    """Under autograd (or another kernel) chunks go through softdtw.torch.soft_dtw: same values."""
    X, Y = data(seed=13, n=6, m=5, N=4, M=3)
    fast = storch.cdist_soft_dtw(torch.as_tensor(X), torch.as_tensor(Y), 0.5, normalize=True)
    if kernel == "pure":
        monkeypatch.setenv("SOFTDTW_KERNEL", "pure")
    sizes = record_sizes(monkeypatch, torch_cdist, "_values")
    xt = torch.tensor(X, requires_grad=kernel == "numba")
    slow = storch.cdist_soft_dtw(xt, torch.as_tensor(Y), 0.5, normalize=True, chunk_size=7)
    assert max(sizes) <= 7 and sum(sizes) == 6 * 5 + 6 + 5
    np.testing.assert_allclose(slow.detach().numpy(), fast.numpy(), rtol=1e-12, atol=1e-12)


def numpy_peak_extra_bytes(n, chunk, T):
    """Peak traced memory of a NumPy cdist beyond its inputs and its (n, n) result."""
    X = np.random.default_rng(6).standard_normal((n, T, 2))
    snp.cdist_soft_dtw(X[:2], gamma=1.0, chunk_size=chunk)  # compiled and warm
    tracemalloc.start()
    try:
        out = snp.cdist_soft_dtw(X, gamma=1.0, chunk_size=chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - out.nbytes


def test_numpy_peak_memory_is_bounded_by_the_chunk():
    # chunks of 2 MiB: the interpreter's and numba's own bounded bookkeeping (up to ~0.3 MB over
    # the first few hundred kernel calls, measured) stays small against one chunk
    chunk, T = 256, 32
    per_chunk = chunk * T * T * 8  # one float64 (chunk, N, M) array
    small, large = numpy_peak_extra_bytes(60, chunk, T), numpy_peak_extra_bytes(240, chunk, T)  # 16x the pairs
    assert large < 4 * per_chunk, (large, per_chunk)  # cost, R and the kernel's scratch: a few chunks
    assert large < small + per_chunk / 2, (small, large, per_chunk)  # independent of n * m


# ---------------------------------------------------------------- gradients


def reference_grads(X, Y, gamma, weights, normalize):
    """d/dX, d/dY of sum_ij W_ij sdtw(X_i, Y_j) from the NumPy reference, pair by pair."""
    n, m = len(X), len(Y)
    ii, jj = (a.ravel() for a in np.meshgrid(np.arange(n), np.arange(m), indexing="ij"))
    _, gx, gy = snp.soft_dtw_value_and_grad(X[ii], Y[jj], gamma, normalize=normalize)
    w = weights.ravel()[:, None, None]
    GX, GY = np.zeros_like(X), np.zeros_like(Y)
    np.add.at(GX, ii, gx * w)
    np.add.at(GY, jj, gy * w)
    return GX, GY


@pytest.mark.parametrize("normalize", [False, True])
def test_torch_gradients_match_reference(normalize):
    X, Y = data(seed=7, n=4, m=3, N=5, M=4)
    W = np.random.default_rng(8).standard_normal((4, 3))
    xt = torch.tensor(X, requires_grad=True)
    yt = torch.tensor(Y, requires_grad=True)
    (torch.tensor(W) * storch.cdist_soft_dtw(xt, yt, 0.7, normalize=normalize, chunk_size=5)).sum().backward()
    GX, GY = reference_grads(X, Y, 0.7, W, normalize)
    np.testing.assert_allclose(xt.grad.numpy(), GX, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(yt.grad.numpy(), GY, rtol=1e-9, atol=1e-10)


def test_torch_gradcheck_symmetric():
    X, _ = data(seed=9, n=3, N=4, D=2)
    xt = torch.tensor(X, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: storch.cdist_soft_dtw(x, gamma=0.5, chunk_size=2), (xt,))
    assert torch.autograd.gradcheck(lambda x: storch.cdist_soft_dtw(x, gamma=0.5, normalize=True, chunk_size=4),
                                    (xt,))


@pytest.mark.parametrize("normalize", [False, True])
def test_jax_gradients_match_reference(normalize):
    X, Y = data(seed=7, n=4, m=3, N=5, M=4)
    W = np.random.default_rng(8).standard_normal((4, 3))
    with jax.enable_x64(True):
        gx, gy = jax.grad(lambda a, b: (W * sjax.cdist_soft_dtw(a, b, 0.7, normalize=normalize, chunk_size=5)).sum(),
                          argnums=(0, 1))(jnp.asarray(X), jnp.asarray(Y))
    GX, GY = reference_grads(X, Y, 0.7, W, normalize)
    np.testing.assert_allclose(np.asarray(gx), GX, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(np.asarray(gy), GY, rtol=1e-9, atol=1e-10)


def test_jax_symmetric_gradient_and_jit():
    X, _ = data(seed=10, n=4, N=5)
    W = np.random.default_rng(11).standard_normal((4, 4))
    with jax.enable_x64(True):
        f = lambda a: (W * sjax.cdist_soft_dtw(a, gamma=0.5, chunk_size=5)).sum()  # noqa: E731
        g = np.asarray(jax.grad(f)(jnp.asarray(X)))
        jitted = np.asarray(jax.jit(lambda a: sjax.cdist_soft_dtw(a, gamma=0.5, chunk_size=5))(jnp.asarray(X)))
    # symmetric: sum_ij W_ij sdtw(X_i, X_j) over all ordered pairs, with both arguments moving
    GX, GY = reference_grads(X, X, 0.5, W, False)
    np.testing.assert_allclose(g, GX + GY, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(jitted, snp.cdist_soft_dtw(X, gamma=0.5), rtol=1e-12)


def test_jax_traced_gamma_gradient_matches_finite_differences():
    X, Y = data(seed=12, n=4, m=3, N=5, M=4)
    with jax.enable_x64(True):
        f = lambda g: sjax.cdist_soft_dtw(X, Y, g, normalize=True, chunk_size=5).sum()  # noqa: E731
        grad = float(jax.grad(f)(0.6))
    eps = 1e-6
    fd = (snp.cdist_soft_dtw(X, Y, 0.6 + eps, normalize=True).sum()
          - snp.cdist_soft_dtw(X, Y, 0.6 - eps, normalize=True).sum()) / (2 * eps)
    assert abs(grad - fd) < 1e-6 * max(1.0, abs(fd))


# ---------------------------------------------------------------- progress bar


def test_progress_bar_shows_and_changes_nothing(impl, capsys):
    pytest.importorskip("tqdm")
    X, Y = data()
    quiet, _ = impl.cdist(X, Y, 1.0, normalize=True)
    capsys.readouterr()
    shown, _ = impl.cdist(X, Y, 1.0, normalize=True, chunk_size=3, progress=True)
    np.testing.assert_array_equal(shown, quiet)
    assert "cdist_soft_dtw" in capsys.readouterr().err


def test_progress_without_tqdm_names_the_install(impl, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    X, Y = data()
    with pytest.raises(ImportError, match=r"pip install softdtw\[progress\]"):
        impl.cdist(X, Y, 1.0, progress=True)
    got, _ = impl.cdist(X, Y, 1.0)  # off by default: no tqdm needed
    assert got.shape == (5, 4)


# ---------------------------------------------------------------- bad input


BAD = [
    (np.zeros((3, 2)), None, {}, ValueError, "X must have shape"),
    (np.zeros((2, 3, 2)), np.zeros((2, 3)), {}, ValueError, "Y must have shape"),
    (np.zeros((2, 3, 2)), np.zeros((2, 3, 1)), {}, ValueError, "same number of features"),
    (np.zeros((2, 0, 2)), None, {}, ValueError, "X holds empty series"),
    (np.zeros((2, 3, 0)), None, {}, ValueError, "X has no features"),
    (np.zeros((2, 3, 1)), None, {"gamma": 0.0}, ValueError, "gamma must be > 0"),
    (np.zeros((2, 3, 1)), None, {"gamma": "1"}, TypeError, "gamma must be a real number"),
    (np.zeros((2, 3, 1)), None, {"chunk_size": 0}, ValueError, "chunk_size must be >= 1"),
    (np.zeros((2, 3, 1)), None, {"chunk_size": 2.5}, TypeError, "chunk_size must be an integer"),
    (np.zeros((2, 3, 1)), None, {"global_constraint": "band"}, ValueError, "global_constraint"),
    (np.zeros((2, 3, 1)), None, {"sakoe_chiba_radius": -1}, ValueError, "sakoe_chiba_radius"),
    (np.zeros((2, 3, 1), dtype=bool), None, {}, TypeError, "X must hold real numbers"),
]


@pytest.mark.parametrize("X, Y, kw, exc, match", BAD)
def test_bad_input_names_the_argument(impl, X, Y, kw, exc, match):
    with pytest.raises(exc, match=match):
        impl.cdist(X, Y, **kw)


def test_numpy_bad_series_in_a_list():
    with pytest.raises(ValueError, match=r"X\[1\] must have shape \(length, D\)"):
        snp.cdist_soft_dtw([np.zeros((3, 1)), np.zeros(3)])
    with pytest.raises(ValueError, match="same number of features"):
        snp.cdist_soft_dtw([np.zeros((3, 1)), np.zeros((3, 2))])


def test_torch_devices_must_match():
    with pytest.raises(ValueError, match="same device"):
        storch.cdist_soft_dtw(torch.zeros(2, 3, 1), torch.zeros(2, 3, 1, device="meta"))


def test_demo_cdist_runs_without_tqdm(monkeypatch, capsys):
    from softdtw import demo

    monkeypatch.setitem(sys.modules, "tqdm", None)  # as if not installed: no bar, no error
    k = demo.cdist_demo(snp, n=12, length=6)
    assert "no progress bar" in capsys.readouterr().out
    assert k.shape == (12, 12) and (k == k.T).all() and (np.diagonal(k) == 0).all() and k.min() >= 0


def test_numpy_cdist_and_barycenter_load_no_numba():
    import subprocess

    code = ("import sys, numpy as np, softdtw.numpy as s\n"
            "assert 'numba' not in sys.modules\n"
            "s.cdist_soft_dtw(np.zeros((2, 3, 1)))\n"
            "s.soft_dtw_barycenter(np.arange(12.0).reshape(2, 3, 2), max_iter=2)\n"
            "assert not {'numba', 'llvmlite', 'torch', 'jax'} & set(sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
