"""The float64 squared Euclidean cost kernels (softdtw.kernels.numba_sqeuclidean)."""

from __future__ import annotations

import numpy as np
import pytest

K = pytest.importorskip("softdtw.kernels.numba_sqeuclidean")


@pytest.mark.parametrize("D", [1, 2, 5])
def test_cost_and_gradient_against_numpy(D):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(3, 7, D)), rng.normal(size=(3, 5, D))
    want = ((x[:, :, None] - y[:, None]) ** 2).sum(-1)
    np.testing.assert_allclose(K.cost(x, y), want, rtol=1e-13, atol=1e-14)
    out = np.full((3, 7, 5), np.nan)
    assert K.cost(x, y, out=out, threads=2) is out
    np.testing.assert_allclose(out, want, rtol=1e-13, atol=1e-14)
    g = rng.normal(size=(3, 7, 5))
    g[0, 2, 3] = 0.0
    gx, gy = K.grad(x, y, g)
    diff = x[:, :, None] - y[:, None]
    np.testing.assert_allclose(gx, 2 * np.einsum("bij,bijd->bid", g, diff), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(gy, -2 * np.einsum("bij,bijd->bjd", g, diff), rtol=1e-12, atol=1e-13)


def test_gradient_sums_in_the_documented_order():
    # rows from the last, each row from its last column; a sum in another order (here the
    # natural one) differs in the last bits for most inputs: this is what the checkpointed
    # kernel reproduces
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(1, 40, 1)), rng.normal(size=(1, 30, 1))
    g = rng.random((1, 40, 30))
    gx, gy = K.grad(x, y, g)
    ex, ey = np.zeros(40), np.zeros(30)
    for i in range(39, -1, -1):
        for j in range(29, -1, -1):
            t = (2.0 * g[0, i, j]) * (x[0, i, 0] - y[0, j, 0])
            ex[i] += t
            ey[j] -= t
    assert np.array_equal(gx[0, :, 0], ex) and np.array_equal(gy[0, :, 0], ey)
