"""Forecasting with a small JAX MLP (optax) trained with MSE and with the soft-DTW divergence.

    python examples/forecast_jax.py [--small] [--out FOLDER]

The JAX twin of ``forecast_torch.py``: the same generated series of pulses (the first half in,
the second half out, with an unknown timing jitter), the same MLP, trained with optax's Adam on
MSE and on ``softdtw.jax.soft_dtw(..., normalize=True)``. Writes ``forecast_jax.png`` and
``metrics.json`` into ``--out``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from _common import compare
from softdtw.jax import soft_dtw

GAMMA = 0.1
BATCH = 32


def init_mlp(key, sizes):
    """He-initialised weights and zero biases of the layers ``sizes[0] -> ... -> sizes[-1]``."""
    params = []
    for k, (a, b) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes[:-1], sizes[1:])):
        params.append((jax.random.normal(k, (a, b)) * jnp.sqrt(2.0 / a), jnp.zeros(b)))
    return params


def mlp(params, x):
    for w, b in params[:-1]:
        x = jax.nn.relu(x @ w + b)
    w, b = params[-1]
    return x @ w + b


def mse(pred, target):
    return jnp.mean((pred - target) ** 2)


def sdtw_divergence(pred, target):
    # series as (B, T, 1): one feature per time step
    return soft_dtw(pred[..., None], target[..., None], gamma=GAMMA, normalize=True).mean()


def train(loss_fn, x, y, sizes, seed: int):
    """Adam on mini-batches of 32 (the remainder of an epoch is left out); returns params, losses."""
    key = jax.random.PRNGKey(seed)
    params = init_mlp(key, [x.shape[1], sizes["hidden"], sizes["hidden"], y.shape[1]])
    opt = optax.adam(1e-3)
    state = opt.init(params)

    @jax.jit
    def step(params, state, xb, yb):
        loss, grads = jax.value_and_grad(lambda p: loss_fn(mlp(p, xb), yb))(params)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    rng = np.random.default_rng(seed)
    n_batches = len(x) // BATCH
    history = []
    for _ in range(sizes["epochs"]):
        order = rng.permutation(len(x))[: n_batches * BATCH].reshape(n_batches, BATCH)
        total = 0.0
        for idx in order:
            params, state, loss = step(params, state, x[idx], y[idx])
            total += float(loss)
        history.append(total / n_batches)
    return params, history


def fit(loss_fn, x, y, sizes, seed: int):
    return train(loss_fn, jnp.asarray(x), jnp.asarray(y), sizes, seed)


def predict(params, x):
    return np.asarray(mlp(params, jnp.asarray(x)))


if __name__ == "__main__":
    compare(__doc__.splitlines()[0], {"MSE": mse, "soft-DTW divergence": sdtw_divergence}, fit, predict,
            "forecast_jax.png", f"JAX + optax MLP trained with MSE and with the soft-DTW divergence (gamma = {GAMMA})",
            GAMMA)
