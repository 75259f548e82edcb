"""softdtw.plot: the figure shows the reference alignment and the hard DTW path; matplotlib stays optional."""

import subprocess
import sys

import numpy as np
import pytest

from softdtw import spec
from softdtw.numpy import soft_dtw_alignment, sqeuclidean_cost
from softdtw.testing.oracles import hard_dtw

matplotlib = pytest.importorskip("matplotlib")  # in the test extra
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from softdtw.plot import _dtw_path, plot_alignment  # noqa: E402


@pytest.fixture
def close_figures():
    yield
    plt.close("all")


def _series(n, d=1, shift=0.0, seed=0):
    t = np.linspace(0, 2 * np.pi, n)
    noise = np.random.default_rng(seed).normal(scale=0.05, size=(n, d))
    return np.sin(t[:, None] * (1 + np.arange(d)) - shift) + noise


@pytest.mark.parametrize("n, m, d", [(12, 9, 1), (7, 15, 3)])
def test_figure_shows_the_reference_alignment_and_the_dtw_path(close_figures, n, m, d):
    x, y = _series(n, d), _series(m, d, shift=0.7, seed=1)
    fig = plot_alignment(x, y, gamma=0.3)
    axes = {a.get_label(): a for a in fig.axes}
    assert {"x", "y", "alignment", "colorbar"} <= set(axes)
    shown = np.asarray(axes["alignment"].images[0].get_array())
    expected, _ = soft_dtw_alignment(x, y, gamma=0.3)
    np.testing.assert_allclose(shown, expected, rtol=0, atol=1e-12)
    path_line = [ln for ln in axes["alignment"].lines if ln.get_label() == "DTW path"]
    assert len(path_line) == 1
    jj, ii = path_line[0].get_data()
    cost = sqeuclidean_cost(x, y)
    assert np.isclose(cost[np.asarray(ii), np.asarray(jj)].sum(), hard_dtw(cost), rtol=1e-12)
    assert len(axes["x"].lines) == d and len(axes["y"].lines) == d


@pytest.mark.parametrize("seed", range(5))
def test_dtw_path_is_an_optimal_monotone_path(seed):
    rng = np.random.default_rng(seed)
    n, m = rng.integers(1, 9, size=2)
    cost = rng.random((n, m))
    path = _dtw_path(cost)
    assert path[0] == (0, 0) and path[-1] == (n - 1, m - 1)
    steps = {(i2 - i1, j2 - j1) for (i1, j1), (i2, j2) in zip(path, path[1:])}
    assert steps <= {(1, 0), (0, 1), (1, 1)}
    assert np.isclose(sum(cost[p] for p in path), hard_dtw(cost), rtol=1e-12)


def test_dtw_path_stays_in_the_band(close_figures):
    x, y = _series(20), _series(14, shift=2.0)
    band = dict(global_constraint="sakoe_chiba", sakoe_chiba_radius=1)
    mask = spec.band_mask(20, 14, spec.check_constraint(**band))
    free = _dtw_path(sqeuclidean_cost(x, y))
    banded = _dtw_path(sqeuclidean_cost(x, y), mask)
    assert all(mask[p] for p in banded)
    assert not all(mask[p] for p in free)  # the band changes this path
    fig = plot_alignment(x, y, gamma=0.1, **band)
    shown = np.asarray(next(a for a in fig.axes if a.get_label() == "alignment").images[0].get_array())
    assert np.all(shown[~mask] == 0)


def test_into_given_axes_with_torch_input(close_figures):
    torch = pytest.importorskip("torch")
    fig, (a1, a2) = plt.subplots(1, 2)
    x = torch.linspace(0, 1, 10, requires_grad=True) ** 2  # a non-leaf tensor that requires grad
    out = plot_alignment(x, torch.linspace(0, 1, 8), gamma=10.0, ax=a2, dtw_path=False, title="t")
    assert out is fig
    assert len(a2.images) == 1 and len(a1.images) == 0 and a2.get_title() == "t" and not a2.lines
    assert len(fig.axes) == 2  # nothing else was added


def test_bad_inputs(close_figures):
    with pytest.raises(ValueError, match="x must be one series"):
        plot_alignment(np.zeros((2, 3, 1)), np.zeros(3))
    with pytest.raises(ValueError, match="same number of features"):
        plot_alignment(np.zeros((4, 2)), np.zeros((3, 1)))
    with pytest.raises(TypeError, match="y"):
        plot_alignment(np.zeros(3), np.array(["a", "b"]))
    with pytest.raises(ValueError, match="gamma"):
        plot_alignment(np.zeros(3), np.zeros(3), gamma=0.0)


def _run(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_import_softdtw_does_not_import_matplotlib():
    r = _run("import sys, softdtw, softdtw.numpy, softdtw.plot; print('matplotlib' in sys.modules)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_missing_matplotlib_names_the_extra():
    r = _run("import sys; sys.modules['matplotlib'] = None; sys.modules['matplotlib.pyplot'] = None\n"
             "import numpy as np; from softdtw.plot import plot_alignment\n"
             "try:\n    plot_alignment(np.zeros(3), np.zeros(3))\n"
             "except ImportError as e:\n    print(e)\n")
    assert r.returncode == 0, r.stderr
    assert "pip install softdtw[plot]" in r.stdout


def test_benchmark_plot_draws_every_realization(tmp_path, monkeypatch, close_figures):
    import importlib.util
    import json
    import pathlib

    path = pathlib.Path(__file__).resolve().parent.parent / "benchmarks" / "plot.py"
    spec_ = importlib.util.spec_from_file_location("bench_plot", path)
    bench_plot = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(bench_plot)
    results = {"bench": "torch CPU", "dtype": "float32", "date": "today", "versions": {"torch": "x"},
               "results": [{"size": [b, n, n, 2], "impl": impl, "fwd_s": t * b * n * n * 1e-9, "fwd_bwd_s": 2 * t * b * n * n * 1e-9}
                           for b, n in ((64, 64), (8, 1024)) for impl, t in (("softdtw", 5.0), ("tslearn", 50.0))]}
    (tmp_path / "r.json").write_text(json.dumps(results))
    data = bench_plot.load(tmp_path / "r.json")
    assert [r["cells"] for r in data["results"]][:3] == [64 * 64 * 64, 64 * 64 * 64, 8 * 1024 * 1024]
    drawn = {}
    real_savefig = plt.Figure.savefig

    def spy(fig, out, **kw):  # keep the figure's lines to check them
        drawn.update({(ax.get_title(), ln.get_label()): ln.get_ydata() for ax in fig.axes for ln in ax.lines})
        real_savefig(fig, out, **kw)

    monkeypatch.setattr(plt.Figure, "savefig", spy)
    bench_plot.draw(data, tmp_path / "img" / "bench.png")
    assert (tmp_path / "img" / "bench.png").read_bytes()[:4] == b"\x89PNG"
    np.testing.assert_allclose(drawn[("forward", "softdtw")], [5.0, 5.0])
    np.testing.assert_allclose(drawn[("forward + backward", "tslearn")], [100.0, 100.0])
