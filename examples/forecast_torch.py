"""Forecasting with a small PyTorch MLP trained with MSE and with the soft-DTW divergence.

    python examples/forecast_torch.py [--small] [--out FOLDER]

The MLP reads the first half of a series of pulses and predicts the second half, whose pulses
come with an unknown timing jitter (data generated here, see ``_common.pulse_series``). Trained
with MSE it predicts the average over the possible timings (low, wide bumps); trained with the
soft-DTW divergence (``SoftDTWLossPyTorch(gamma, normalize=True)``) it predicts sharp pulses,
placed where they are most likely. Writes ``forecast_torch.png`` and ``metrics.json`` (test
MSE, DTW and soft-DTW divergence of both models, and their training losses) into ``--out``.
"""

from __future__ import annotations

import torch

from _common import compare
from softdtw.torch import SoftDTWLossPyTorch

GAMMA = 0.1


def mlp(n_in: int, n_out: int, hidden: int) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(n_in, hidden), torch.nn.ReLU(),
                               torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
                               torch.nn.Linear(hidden, n_out))


def train(loss_fn, x, y, sizes, seed: int):
    """Adam on mini-batches of 32; returns the model and its mean training loss per epoch."""
    torch.manual_seed(seed)
    model = mlp(x.shape[1], y.shape[1], sizes["hidden"])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    history = []
    for _ in range(sizes["epochs"]):
        total = 0.0
        for idx in torch.randperm(len(x), generator=g).split(32):
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        history.append(total / len(x))
    return model, history


def fit(loss_fn, x, y, sizes, seed: int):
    return train(loss_fn, torch.from_numpy(x), torch.from_numpy(y), sizes, seed)


def predict(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def sdtw_divergence(pred, target, loss=SoftDTWLossPyTorch(gamma=GAMMA, normalize=True)):
    # series as (B, T, 1): one feature per time step
    return loss(pred[..., None], target[..., None]).mean()


if __name__ == "__main__":
    torch.set_num_threads(1)  # tiny tensors: threads cost more than they give
    torch.set_flush_denormal(True)  # Adam's second moments of dead ReLU units turn denormal (slow)
    compare(__doc__.splitlines()[0], {"MSE": torch.nn.functional.mse_loss, "soft-DTW divergence": sdtw_divergence},
            fit, predict, "forecast_torch.png",
            f"PyTorch MLP trained with MSE and with the soft-DTW divergence (gamma = {GAMMA})", GAMMA)
