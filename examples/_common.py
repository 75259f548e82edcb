"""What the examples share: arguments (all of them), and for the forecasting examples the
generated data, DTW, the figure, the report.

Not an example itself; the examples import it (their folder is on ``sys.path`` when run).
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np


def parse_args(description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--small", action="store_true", help="small sizes (a few seconds; what CI runs)")
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("examples_out"),
                   help="folder for the figures and metrics.json (created)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def forecasting_sizes(small: bool) -> dict:
    """Series, length and training length of the forecasting examples."""
    if small:
        return dict(n_train=96, n_test=32, length=48, epochs=100, hidden=64)
    return dict(n_train=512, n_test=128, length=80, epochs=200, hidden=128)


def pulse_series(n: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` series ``(n, length)`` of narrow pulses, float32.

    Each series has its own period (12 to 20 steps) and phase, so its first half tells where the
    next pulses fall; in the second half every pulse is shifted by an unknown jitter (normal,
    2 steps), so the exact timing of the future cannot be known. The MSE-optimal forecast
    averages the possible timings into low, wide bumps; a soft-DTW forecast keeps sharp pulses.
    """
    t = np.arange(length)[None, :]
    period = rng.uniform(12.0, 20.0, size=(n, 1))
    phase = rng.uniform(0.0, 1.0, size=(n, 1)) * period
    jitter = np.where(t >= length // 2, rng.normal(0.0, 2.0, size=(n, 1)), 0.0)
    u = (t - phase - jitter) / period
    dist = (u - np.round(u)) * period  # steps to the nearest pulse
    noise = rng.normal(0.0, 0.02, size=(n, length))
    return (np.exp(-0.5 * (dist / 1.2) ** 2) + noise).astype(np.float32)


def forecasting_data(sizes: dict, seed: int):
    """``(train_in, train_out, test_in, test_out)``: first half -> second half, float32."""
    rng = np.random.default_rng(seed)
    half = sizes["length"] // 2
    train = pulse_series(sizes["n_train"], sizes["length"], rng)
    test = pulse_series(sizes["n_test"], sizes["length"], rng)
    return train[:, :half], train[:, half:], test[:, :half], test[:, half:]


def hard_dtw(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """DTW (squared differences, the best path's total cost) of each pair of rows of ``a``, ``b``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    n, m = a.shape[1], b.shape[1]
    cost = (a[:, :, None] - b[:, None, :]) ** 2
    r = np.full((a.shape[0], n + 1, m + 1), np.inf)
    r[:, 0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            r[:, i, j] = cost[:, i - 1, j - 1] + np.minimum(np.minimum(r[:, i - 1, j - 1], r[:, i - 1, j]),
                                                            r[:, i, j - 1])
    return r[:, n, m]


def evaluate(forecast: np.ndarray, truth: np.ndarray, gamma: float) -> dict:
    """Mean MSE, DTW and soft-DTW divergence (float64 reference) of a forecast over the test series."""
    import softdtw.numpy

    div = softdtw.numpy.soft_dtw(forecast[..., None], truth[..., None], gamma=gamma, normalize=True)
    return {"mse": float(np.mean((forecast - truth) ** 2)),
            "dtw": float(np.mean(hard_dtw(forecast, truth))),
            "sdtw_divergence": float(np.mean(div))}


def plot_forecasts(path: pathlib.Path, inputs, truth, forecasts: dict, title: str, n_shown: int = 3) -> None:
    """Rows of test series: the input, the true future and each model's forecast."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    half = inputs.shape[1]
    t_in, t_out = np.arange(half), np.arange(half, half + truth.shape[1])
    fig, axes = plt.subplots(n_shown, 1, figsize=(8, 2.0 * n_shown), sharex=True, layout="constrained")
    colours = ["tab:blue", "tab:red", "tab:green"]
    for k, ax in enumerate(np.atleast_1d(axes)):
        ax.plot(t_in, inputs[k], color="black", label="input (first half)")
        ax.plot(t_out, truth[k], color="0.6", linewidth=3, label="true future")
        for (name, f), c in zip(forecasts.items(), colours):
            ax.plot(t_out, f[k], color=c, label=name)
        ax.axvline(half - 0.5, color="0.8", linestyle=":")
    np.atleast_1d(axes)[0].legend(loc="upper left", fontsize="small", ncol=2)
    np.atleast_1d(axes)[0].set_title(title)
    np.atleast_1d(axes)[-1].set_xlabel("time step")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def compare(description: str, losses: dict, fit, predict, figure: str, title: str, gamma: float) -> None:
    """The whole forecasting example: parse the arguments, make the data, train one model per loss.

    ``fit(loss_fn, train_in, train_out, sizes, seed) -> (model, training losses per epoch)`` and
    ``predict(model, inputs) -> forecasts`` take and return NumPy arrays ``(n, T/2)``. Saves the
    figure ``figure`` and ``metrics.json`` into ``--out`` and prints the table.
    """
    args = parse_args(description)
    sizes = forecasting_sizes(args.small)
    train_in, train_out, test_in, test_out = forecasting_data(sizes, args.seed)
    metrics, forecasts = {}, {}
    for name, loss_fn in losses.items():
        model, history = fit(loss_fn, train_in, train_out, sizes, args.seed)
        forecasts[name] = np.asarray(predict(model, test_in))
        metrics[name] = evaluate(forecasts[name], test_out, gamma) | {"train_loss": history}
    plot_forecasts(args.out / figure, test_in, test_out, forecasts, title)
    report(args.out, metrics)


def report(out: pathlib.Path, metrics: dict) -> None:
    """Print the test metrics as a table and write ``metrics.json``."""
    print("| model | test MSE | test DTW | test soft-DTW divergence | train loss first -> last |")
    print("| --- | ---: | ---: | ---: | --- |")
    for name, m in metrics.items():
        print(f"| {name} | {m['mse']:.4f} | {m['dtw']:.3f} | {m['sdtw_divergence']:.3f} | "
              f"{m['train_loss'][0]:.4f} -> {m['train_loss'][-1]:.4f} |")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
