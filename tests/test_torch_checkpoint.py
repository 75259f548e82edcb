"""``memory="checkpoint"`` (softdtw.torch._checkpoint): the same numbers as the default path
(to the last bit in float64 on CPU), independent of the segment length, with bounded memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

from softdtw import spec
from softdtw.torch import SoftDTWLossPyTorch, soft_dtw, soft_dtw_from_cost, sqeuclidean_cost
from softdtw.torch import _checkpoint

# the ``kernel`` fixture (tests/conftest.py): the CPU kernel, and the sweep other devices run


CASES = [
    {},
    dict(normalize=True),
    dict(global_constraint="sakoe_chiba", sakoe_chiba_radius=2),
    dict(global_constraint="itakura", itakura_max_slope=2.0),
    dict(x_lengths=torch.tensor([9, 4, 6]), y_lengths=torch.tensor([7, 7, 2])),
    dict(dist_func=sqeuclidean_cost, normalize=True),
]


def _grads_of(fn, x, y, gv, **kw):
    v = fn(x, y, **kw)
    return (v, *torch.autograd.grad(v, (x, y), gv))


def _same(got, want, kernel):
    """Bit for bit on the CPU core (its checkpointed sweep recomputes every row as the default
    state holds it); to rounding for the diagonal sweep of other devices (forced here by
    SOFTDTW_KERNEL=pure)."""
    for a, b in zip(got, want):
        if kernel == "pure":
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
        else:
            assert torch.equal(a, b), (a - b).abs().max()


@pytest.mark.parametrize("kw", CASES, ids=range(len(CASES)))
def test_same_values_and_gradients_as_default(kernel, kw):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 9, 3, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.rand(3, 7, 3, dtype=torch.float64, generator=g, requires_grad=True)
    gv = torch.rand(3, dtype=torch.float64, generator=g)
    want = _grads_of(soft_dtw, x, y, gv, gamma=0.4, **kw)
    got = _grads_of(soft_dtw, x, y, gv, gamma=0.4, memory="checkpoint", **kw)
    _same(got, want, kernel)


# shapes where the default kernel cuts each pair into column strips (one long pair, a few
# pairs), many pairs side by side, and padded batches sorted into cropped blocks
SHAPES = [(1, 130, 111, 2), (3, 64, 70, 8), (70, 12, 9, 1)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("kw", CASES[:5] + [dict(gamma=0.05)], ids=range(6))
def test_last_bit_equal_to_default_float64(shape, kw):
    # float64 on CPU: the core's checkpointed sweep recomputes every row as the default state
    # holds it, so values and gradients are equal to the last bit
    from softdtw import _core

    B, N, M, D = shape
    if B == 1:
        assert _core.state_sizes(B, N, M, 8)[2] > N  # column strips (a block's steps: N + strips - 1)
    kw = dict(kw)
    gamma = kw.pop("gamma", 0.7)
    if "x_lengths" in kw:
        g = torch.Generator().manual_seed(5)
        kw = dict(x_lengths=torch.randint(1, N + 1, (B,), generator=g), y_lengths=torch.randint(1, M + 1, (B,), generator=g))
    g = torch.Generator().manual_seed(4)
    x = (3 * torch.rand(B, N, D, dtype=torch.float64, generator=g)).requires_grad_()
    y = (3 * torch.rand(B, M, D, dtype=torch.float64, generator=g)).requires_grad_()
    gv = torch.randn(B, dtype=torch.float64, generator=g)
    want = _grads_of(soft_dtw, x, y, gv, gamma=gamma, **kw)
    got = _grads_of(soft_dtw, x, y, gv, gamma=gamma, memory="checkpoint", **kw)
    _same(got, want, "default")
    cost = sqeuclidean_cost(x, y).detach().requires_grad_()
    kw.pop("normalize", None)
    want = soft_dtw_from_cost(cost, gamma, **kw)
    got = soft_dtw_from_cost(cost, gamma, memory="checkpoint", **kw)
    assert torch.equal(got, want)
    assert torch.equal(torch.autograd.grad(got, cost, gv)[0], torch.autograd.grad(want, cost, gv)[0])


def test_cost_matrix_module_and_float32(kernel):
    g = torch.Generator().manual_seed(1)
    cost = torch.rand(2, 8, 6, dtype=torch.float64, generator=g, requires_grad=True)
    want = soft_dtw_from_cost(cost, 0.5)
    (wc,) = torch.autograd.grad(want.sum(), cost)
    got = soft_dtw_from_cost(cost, 0.5, memory="checkpoint")
    (gc,) = torch.autograd.grad(got.sum(), cost)
    _same((got, gc), (want, wc), kernel)
    x = torch.rand(2, 8, 2, generator=g, requires_grad=True)
    y = torch.rand(2, 5, 2, generator=g)
    loss = SoftDTWLossPyTorch(gamma=0.5, memory="checkpoint")
    v = loss(x, y)
    assert v.dtype == torch.float32
    v.sum().backward()
    x64 = x.detach().double().requires_grad_()
    ref = soft_dtw(x64, y.double(), 0.5)
    ref.sum().backward()
    torch.testing.assert_close(v.double(), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x.grad.double(), x64.grad, rtol=1e-4, atol=1e-5)


def test_diagonal_sweep_does_not_depend_on_segment_length():
    # the pure-torch sweep (other devices): any segment length, the same numbers to the last bit
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 10, 2, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.rand(2, 8, 2, dtype=torch.float64, generator=g)
    xl, yl = torch.tensor([10, 6], dtype=torch.int32), torch.tensor([8, 3], dtype=torch.int32)
    lo, hi = (torch.tensor(a) for a in spec.band_bounds(10, 8, xl.numpy(), yl.numpy(), spec.Constraint(None, None)))
    outs = []
    for seg in (2, 3, 7, 18):
        diags = _checkpoint._Diagonals(x.detach(), y, None, lo, hi)
        value, ckpts = _checkpoint.forward(diags, 0.6, xl, yl, seg)
        assert len(ckpts) == len(range(1, 10 + 8 + 1, seg))
        grads = [torch.zeros_like(x), torch.zeros_like(y)]
        _checkpoint.backward(diags, 0.6, xl, yl, ckpts, seg, torch.ones(2, dtype=torch.float64), grads)
        outs.append((value, *grads))
    for o in outs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(o, outs[0]))
    torch.testing.assert_close(outs[0][0], soft_dtw(x, y, 0.6, x_lengths=xl, y_lengths=yl).detach(),
                               rtol=1e-12, atol=1e-12)


def test_memory_is_bounded():
    # numba path: everything it allocates is NumPy (traced by tracemalloc). The default path
    # holds B N M numbers (R) besides the cost; the checkpointed one O(B sqrt(N) M).
    B, N, D = 2, 1024, 1
    g = torch.Generator().manual_seed(3)
    x = torch.rand(B, N, D, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.rand(B, N, D, dtype=torch.float64, generator=g)
    soft_dtw(x[:, :16], y[:, :16], 1.0, memory="checkpoint").sum().backward()  # compile / load first
    tracemalloc.start()
    try:
        soft_dtw(x, y, 1.0, memory="checkpoint").sum().backward()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    full = B * N * N * 8
    assert peak < full / 10, (peak, full)
    assert torch.isfinite(x.grad).all()


def test_bad_options():
    x, y = torch.rand(2, 3, 1), torch.rand(2, 4, 1)
    with pytest.raises(ValueError, match="memory"):
        soft_dtw(x, y, 1.0, memory="low")
    with pytest.raises(ValueError, match="memory"):
        SoftDTWLossPyTorch(memory="tiny")
    with pytest.raises(ValueError, match="checkpoint"):
        soft_dtw(x, y, torch.tensor(1.0, requires_grad=True), memory="checkpoint")
