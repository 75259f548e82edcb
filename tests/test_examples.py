"""Every example runs at its small size, writes its figures, and shows what it claims to show."""

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_example(name: str, out: pathlib.Path) -> dict:
    r = subprocess.run([sys.executable, str(EXAMPLES / name), "--small", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads((out / "metrics.json").read_text())


def assert_png(path: pathlib.Path):
    assert path.exists(), path
    assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 10_000


@pytest.mark.parametrize("name, figure, framework", [("forecast_torch.py", "forecast_torch.png", "torch"),
                                                     ("forecast_jax.py", "forecast_jax.png", "optax")])
def test_forecasting_example(tmp_path, name, figure, framework):
    pytest.importorskip(framework)  # torch / jax and optax: in the extras CI installs
    pytest.importorskip("matplotlib")
    metrics = run_example(name, tmp_path)
    assert_png(tmp_path / figure)
    mse, sdtw = metrics["MSE"], metrics["soft-DTW divergence"]
    for m in (mse, sdtw):
        assert m["train_loss"][-1] < 0.5 * m["train_loss"][0]  # both models learned
    # each model is the better one on the test series under the loss it was trained with
    assert sdtw["sdtw_divergence"] < mse["sdtw_divergence"]
    assert mse["mse"] < sdtw["mse"]


def test_alignment_example(tmp_path):
    pytest.importorskip("matplotlib")
    metrics = run_example("alignment.py", tmp_path)
    assert_png(tmp_path / "alignment_gammas.png")
    assert_png(tmp_path / "alignment.png")
    mass = [metrics["path_mass"][g] for g in ("0.01", "0.1", "1.0", "10.0")]
    # the expected alignment concentrates on the hard DTW path as gamma decreases
    assert all(a > b for a, b in zip(mass, mass[1:])), mass


def test_barycenters_example(tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("scipy")
    metrics = run_example("barycenters.py", tmp_path)
    assert_png(tmp_path / "barycenters.png")
    assert len(metrics) == 3
    for per_gamma in metrics.values():
        for gamma, m in per_gamma.items():
            # the barycenter improves on the Euclidean mean it started from; at gamma = 0.1 (close
            # to DTW, where the mean's blur costs most) by a clear margin
            margin = 0.02 * abs(m["objective_at_mean"]) if gamma == "0.1" else 0.0
            assert m["objective_at_barycenter"] < m["objective_at_mean"] - margin, (gamma, m)
