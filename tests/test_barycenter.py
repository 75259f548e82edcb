"""soft_dtw_barycenter in NumPy, torch and JAX against tslearn's softdtw_barycenter (same objective,
same start), the reference objective, bad input and missing optional optimisers."""

import sys
import warnings

import numpy as np
import pytest

import softdtw.numpy as snp

torch = pytest.importorskip("torch")
jax = pytest.importorskip("jax")

import softdtw.jax as sjax  # noqa: E402
import softdtw.torch as storch  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # tslearn warns at import when h5py is missing
    from tslearn.barycenters import softdtw_barycenter as tslearn_barycenter

BAND = {"global_constraint": "sakoe_chiba", "sakoe_chiba_radius": 3}


def objective(z, X, gamma, weights=None, **band):
    """sum_i w_i sdtw(z, X_i) by the NumPy reference (X: array or list of series)."""
    w = np.ones(len(X)) if weights is None else np.asarray(weights)
    return float(sum(wi * snp.soft_dtw(z, x, gamma, **band) for wi, x in zip(w, X)))


def random_walks(seed=1, n=6, length=12, d=2):
    return np.cumsum(np.random.default_rng(seed).standard_normal((n, length, d)), axis=1)


def cluster(seed=2, n=5, length=16):
    """Noisy shifted copies of one curve (one basin around their mean: every optimiser meets there)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * np.pi, length)
    base = np.stack([np.stack([np.sin(t + s), np.cos(2 * t + s)], 1) for s in rng.uniform(-0.4, 0.4, n)])
    return base + 0.1 * rng.standard_normal((n, length, 2)), rng.uniform(0.5, 2, n)


# ---------------------------------------------------------------- NumPy: tslearn's own path


@pytest.mark.parametrize("case", ["default", "weights", "init", "few_iterations", "band", "gamma"])
def test_numpy_matches_tslearn_from_the_same_start(case):
    X = random_walks()
    w = np.random.default_rng(3).uniform(0.5, 2.0, len(X))
    kw = {"default": {}, "weights": {"weights": w}, "init": {"init": X[2][::2]},
          "few_iterations": {"max_iter": 3}, "band": dict(BAND), "gamma": {}}[case]
    gamma = 0.1 if case == "gamma" else 1.0
    expected = tslearn_barycenter(X, gamma, **kw)
    z, f = snp.soft_dtw_barycenter(X, gamma, **kw)
    band = BAND if case == "band" else {}
    f_peer = objective(expected, X, gamma, kw.get("weights"), **band)
    assert z.shape == expected.shape
    assert abs(f - f_peer) <= 1e-6 * abs(f_peer)
    assert abs(f - objective(z, X, gamma, kw.get("weights"), **band)) <= 1e-9 * abs(f)
    np.testing.assert_allclose(z, expected, atol=1e-6)


def test_numpy_variable_lengths_match_tslearn():
    X = random_walks(seed=4, n=4)
    series = [X[0], X[1][:7], X[2][:10], X[3][:5]]
    expected = tslearn_barycenter(series, 1.0)  # its start: each series resampled to 12, averaged
    z, f = snp.soft_dtw_barycenter(series, 1.0)
    assert z.shape == (12, 2)
    assert abs(f - objective(expected, series, 1.0)) <= 1e-6 * abs(f)
    np.testing.assert_allclose(z, expected, atol=1e-6)


def test_zero_iterations_return_the_weighted_mean_and_its_objective():
    X, w = cluster()
    for name, fn, conv in (("numpy", snp.soft_dtw_barycenter, np.asarray),
                           ("torch", storch.soft_dtw_barycenter, torch.as_tensor),
                           ("jax", sjax.soft_dtw_barycenter, np.asarray)):
        with jax.enable_x64(True):
            z, f = fn(conv(X), 0.5, weights=w, max_iter=0)
            z, f = np.asarray(z), float(f)
        mean = np.average(X, axis=0, weights=w)
        np.testing.assert_allclose(z, mean, rtol=1e-12, err_msg=name)
        assert abs(f - objective(mean, X, 0.5, w)) <= 1e-9 * abs(f), name


# ---------------------------------------------------------------- torch and JAX: same minimum


def run_torch(X, gamma, dtype=torch.float64, **kw):
    z, f = storch.soft_dtw_barycenter(torch.as_tensor(X, dtype=dtype), gamma, **kw)
    assert z.dtype == dtype and f.dtype == dtype and not z.requires_grad
    return z.numpy(), float(f)


def run_jax(X, gamma, dtype=np.float64, **kw):
    with jax.enable_x64(dtype == np.float64):
        z, f = sjax.soft_dtw_barycenter(X.astype(dtype), gamma, **kw)
        assert z.dtype == dtype
        return np.asarray(z), float(f)


@pytest.mark.parametrize("run", [run_torch, run_jax], ids=["torch", "jax"])
@pytest.mark.parametrize("gamma, weighted, band", [(0.1, False, False), (1.0, True, False), (1.0, False, True)])
def test_gradient_based_reach_tslearns_objective(run, gamma, weighted, band):
    X, w = cluster()
    kw = {"weights": w} if weighted else {}
    extra = BAND if band else {}
    expected = tslearn_barycenter(X, gamma, tol=1e-10, max_iter=1000, **kw, **extra)
    f_peer = objective(expected, X, gamma, kw.get("weights"), **extra)
    z, f = run(X, gamma, tol=1e-8, max_iter=1000, **kw, **extra)
    assert abs(f - f_peer) <= 1e-6 * abs(f_peer)
    assert abs(f - objective(z, X, gamma, kw.get("weights"), **extra)) <= 1e-9 * abs(f)
    np.testing.assert_allclose(z, expected, atol=1e-3)


@pytest.mark.parametrize("run, dtype", [(run_torch, torch.float32), (run_jax, np.float32)], ids=["torch", "jax"])
def test_float32_reaches_the_float64_objective(run, dtype):
    X, _ = cluster()
    _, f64 = snp.soft_dtw_barycenter(X, 1.0, tol=1e-10, max_iter=1000)
    z, f = run(X, 1.0, dtype=dtype, tol=1e-4, max_iter=200)
    assert abs(f - f64) <= 1e-5 * abs(f64)


def test_init_sets_the_length():
    X, _ = cluster()
    init = X[0][::2]
    for z in (snp.soft_dtw_barycenter(X, 1.0, init=init, max_iter=5)[0],
              storch.soft_dtw_barycenter(torch.as_tensor(X), 1.0, init=init, max_iter=5)[0].numpy(),
              np.asarray(sjax.soft_dtw_barycenter(X, 1.0, init=init, max_iter=5)[0])):
        assert z.shape == (8, 2)


# ---------------------------------------------------------------- bad input, missing optimisers


BAD = [
    (np.zeros((4, 2)), {}, ValueError, "X must have shape"),
    (np.zeros((0, 4, 2)), {}, ValueError, "at least one series"),
    (np.zeros((2, 4, 1)), {"gamma": -1.0}, ValueError, "gamma must be > 0"),
    (np.zeros((2, 4, 1)), {"weights": [1.0]}, ValueError, r"weights must have shape \(2,\)"),
    (np.zeros((2, 4, 1)), {"weights": [1.0, -1.0]}, ValueError, "weights must be >= 0"),
    (np.zeros((2, 4, 1)), {"weights": [0.0, 0.0]}, ValueError, "weights must not all be 0"),
    (np.zeros((2, 4, 1)), {"weights": [1.0, np.nan]}, ValueError, "weights must be finite"),
    (np.zeros((2, 4, 1)), {"init": np.zeros((3, 2))}, ValueError, r"init must have shape \(length, 1\)"),
    (np.zeros((2, 4, 1)), {"init": np.zeros(3)}, ValueError, "init must have shape"),
    (np.zeros((2, 4, 1)), {"max_iter": -1}, ValueError, "max_iter must be >= 0"),
    (np.zeros((2, 4, 1)), {"max_iter": 2.5}, TypeError, "max_iter must be an integer"),
    (np.zeros((2, 4, 1)), {"tol": -1.0}, ValueError, "tol must be finite and >= 0"),
    (np.zeros((2, 4, 1)), {"sakoe_chiba_radius": -2}, ValueError, "sakoe_chiba_radius"),
]


@pytest.mark.parametrize("X, kw, exc, match", BAD)
@pytest.mark.parametrize("name", ["numpy", "torch", "jax"])
def test_bad_input_names_the_argument(name, X, kw, exc, match):
    fn = {"numpy": snp, "torch": storch, "jax": sjax}[name].soft_dtw_barycenter
    if name == "torch":
        X = torch.as_tensor(X)
    with pytest.raises(exc, match=match):
        fn(X, **kw)


@pytest.mark.parametrize("name, blocked, install", [("numpy", "scipy", "scipy"), ("jax", "optax", "optax")])
def test_missing_optimiser_names_the_install(name, blocked, install, monkeypatch):
    monkeypatch.setitem(sys.modules, blocked, None)
    monkeypatch.setitem(sys.modules, blocked + ".optimize", None)
    fn = {"numpy": snp, "jax": sjax}[name].soft_dtw_barycenter
    with pytest.raises(ImportError, match=r"pip install softdtw\[barycenter\]"):
        fn(np.zeros((2, 3, 1)))
