"""The PyTorch realization against the NumPy reference, autograd, custom ops, compile, DDP, errors."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import softdtw.numpy as ref
from softdtw.testing.cases import BAD_COSTS, BAD_PAIRS
from softdtw.testing.strategies import gammas, problems
from softdtw.torch import (
    SoftDTWLossPyTorch,
    soft_dtw,
    soft_dtw_alignment,
    soft_dtw_alignment_from_cost,
    soft_dtw_from_cost,
    sqeuclidean_cost,
)
from softdtw.torch import _ops

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def rel_err(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.abs(a - b).max() / max(1.0, np.abs(b).max())


# ---------------------------------------------------------------- seed example


def test_seed_example_float64_gradient():
    x = torch.zeros((4, 3, 2), dtype=torch.float64, requires_grad=True)
    y = torch.arange(24).reshape(4, 3, 2)
    loss = SoftDTWLossPyTorch(gamma=0.1)(x, y)
    assert loss.dtype == torch.float64
    loss.mean().backward()
    np.testing.assert_allclose(x.grad[0].numpy(), [[0, -0.5], [-0.999955, -1.499977], [-2.000045, -2.500068]],
                               atol=1e-6)


# ---------------------------------------------------------------- agreement with the reference


@given(problem=problems(lengths=(1, 2, 3, 5), gamma=gammas(1e-3, 1e2)),
       band=st.sampled_from([(None, None, None), ("sakoe_chiba", 0, None), ("sakoe_chiba", 2, None),
                             ("itakura", None, 2.0)]))
def test_cost_gradient_matches_reference(kernel, problem, band):
    x, y, gamma = problem
    cost = ref.sqeuclidean_cost(x, y)
    kind, radius, slope = band
    kw = dict(global_constraint=kind, sakoe_chiba_radius=radius, itakura_max_slope=slope)
    try:
        a_ref, v_ref = ref.soft_dtw_alignment_from_cost(cost, gamma, **kw)
    except ValueError:
        with pytest.raises(ValueError, match="itakura_max_slope"):
            soft_dtw_from_cost(torch.tensor(cost), gamma, **kw)
        return
    ct = torch.tensor(cost, requires_grad=True)
    v = soft_dtw_from_cost(ct, gamma, **kw)
    v.sum().backward()
    assert rel_err(v.detach().numpy(), v_ref) <= 1e-10
    assert rel_err(ct.grad.numpy(), a_ref) <= 1e-10
    a, v2 = soft_dtw_alignment_from_cost(torch.tensor(cost), gamma, **kw)
    assert rel_err(a.numpy(), a_ref) <= 1e-10
    assert torch.equal(v2, v.detach())


def test_alignment_entry_point():
    rng = np.random.default_rng(3)
    x, y = rng.random((2, 4, 2)), rng.random((2, 6, 2))
    a, v = soft_dtw_alignment(torch.tensor(x), torch.tensor(y), 0.3)
    a_ref, v_ref = ref.soft_dtw_alignment(x, y, 0.3)
    assert rel_err(a.numpy(), a_ref) <= 1e-10 and rel_err(v.numpy(), v_ref) <= 1e-10
    a1, v1 = soft_dtw_alignment(torch.tensor(x[0]), torch.tensor(y[0]), 0.3)
    assert a1.shape == (4, 6) and v1.ndim == 0


def l1(a, b):
    return (a[:, :, None, :] - b[:, None, :, :]).abs().sum(-1)


def cosine(a, b):
    an = a / a.norm(dim=-1, keepdim=True)
    bn = b / b.norm(dim=-1, keepdim=True)
    return 1 - an @ bn.transpose(1, 2)


@pytest.mark.parametrize("dist", [l1, cosine])
def test_dist_func_gradient(kernel, dist):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 5, 2, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.rand(3, 4, 2, dtype=torch.float64, generator=g, requires_grad=True)
    v = soft_dtw(x, y, 0.5, dist_func=dist, normalize=True)
    v.sum().backward()
    # chain rule by hand: E from the reference, then autograd through dist_func only
    gx = torch.zeros_like(x)
    gy = torch.zeros_like(y)
    value = 0
    for a, b, sign in ((x, y, 1.0), (x, x, -0.5), (y, y, -0.5)):
        a_ = a.detach().requires_grad_()
        b_ = b.detach().requires_grad_()
        c = dist(a_, b_)
        e, val = ref.soft_dtw_alignment_from_cost(c.detach().numpy(), 0.5)
        value = value + sign * val
        ga, gb = torch.autograd.grad((c * torch.tensor(e)).sum(), (a_, b_))
        for t, gt in ((a, ga), (b, gb)):
            (gx if t is x else gy).add_(sign * gt)
    assert rel_err(v.detach().numpy(), value) <= 1e-10
    assert rel_err(x.grad.numpy(), gx.numpy()) <= 1e-10
    assert rel_err(y.grad.numpy(), gy.numpy()) <= 1e-10


def test_dist_func_output_not_written(kernel):
    x = torch.rand(2, 4, 3, dtype=torch.float64, requires_grad=True)
    y = torch.rand(2, 5, 3, dtype=torch.float64)
    kept = {}

    def dist(a, b):
        c = sqeuclidean_cost(a, b)
        kept[len(kept)] = (c, c.detach().clone())
        return c

    soft_dtw(x, y, 0.1, dist_func=dist, sakoe_chiba_radius=1).sum().backward()
    for c, copy in kept.values():
        assert torch.equal(c.detach(), copy)


# ---------------------------------------------------------------- autograd


@pytest.mark.parametrize("shape", [((2, 3, 2), (2, 4, 2)), ((1, 1, 1), (1, 3, 1)), ((2, 4, 1), (2, 1, 1))])
def test_gradcheck(kernel, shape):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(*shape[0], dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.rand(*shape[1], dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: soft_dtw(a, b, 0.7), (x, y))
    assert torch.autograd.gradcheck(lambda a, b: soft_dtw(a, b, 0.7, normalize=True), (x, y))
    c = torch.rand(2, 3, 4, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda c: soft_dtw_from_cost(c, 0.3, sakoe_chiba_radius=1), (c,))


def test_sqeuclidean_cost_large_d_matches_direct():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 3, 10, dtype=torch.float64, generator=g) + 100
    y = torch.randn(1, 4, 10, dtype=torch.float64, generator=g) + 100
    direct = ((x[:, :, None] - y[:, None]) ** 2).sum(-1)
    assert torch.allclose(sqeuclidean_cost(x, y), direct, rtol=1e-10, atol=1e-9)
    xr, yr = x.clone().requires_grad_(), y.clone().requires_grad_()
    assert torch.autograd.gradcheck(sqeuclidean_cost, (xr, yr))
    assert torch.autograd.gradgradcheck(sqeuclidean_cost, (xr, yr))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_computes_in_float32(dtype):
    g = torch.Generator().manual_seed(4)
    x = torch.rand(3, 6, 2, generator=g).to(dtype).requires_grad_()
    y = torch.rand(3, 5, 2, generator=g).to(dtype)
    v = soft_dtw(x, y, 0.1)
    assert v.dtype == dtype
    v32 = soft_dtw(x.detach().float(), y.float(), 0.1)
    assert torch.allclose(v.float(), v32.to(dtype).float())
    v.sum().backward()
    assert x.grad.dtype == dtype and torch.isfinite(x.grad.float()).all()


def test_inputs_unchanged(kernel):
    x = torch.rand(2, 4, 3, requires_grad=True)
    y = torch.rand(2, 6, 3, requires_grad=True)
    x0, y0 = x.detach().clone(), y.detach().clone()
    soft_dtw(x, y, 0.1, normalize=True).sum().backward()
    assert torch.equal(x.detach(), x0) and torch.equal(y.detach(), y0)


def test_large_costs_small_gamma_finite(kernel):
    c = torch.rand(2, 9, 7, dtype=torch.float32) * 1e6
    c.requires_grad_()
    soft_dtw_from_cost(c, 1e-2).sum().backward()
    assert torch.isfinite(c.grad).all()


def test_nan_propagates_to_its_pair_only(kernel):
    x = torch.rand(3, 4, 2)
    y = torch.rand(3, 5, 2)
    x[1, 2, 0] = float("nan")
    v = soft_dtw(x, y, 0.5)
    assert torch.isnan(v[1]) and torch.isfinite(v[[0, 2]]).all()
    for d in (3, 8):  # the exact per-feature cost and the matmul cost
        x = torch.rand(3, 4, d)
        y = torch.rand(3, 5, d)
        y[2, 0, 1] = float("nan")
        c = x.clone()
        c[0, 1, 0] = float("nan")
        assert torch.isnan(soft_dtw(x, y, 0.5)).tolist() == [False, False, True]
        assert torch.isnan(soft_dtw_from_cost(sqeuclidean_cost(c, y), 0.5)).tolist() == [True, False, True]
        assert torch.isnan(soft_dtw(x, y, 0.5, dist_func=sqeuclidean_cost)).tolist() == [False, False, True]


@pytest.mark.parametrize("dist_func", [None, "sq"])
def test_nan_in_padding_is_ignored(kernel, dist_func):
    # pair b uses x[b, :x_lengths[b]] only: what lies beyond (NaN here) never enters
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 6, 2, generator=g)
    y = torch.rand(3, 5, 2, generator=g)
    xl, yl = torch.tensor([6, 2, 4]), torch.tensor([3, 5, 1])
    xd, yd = x.clone(), y.clone()
    for b in range(3):
        xd[b, xl[b]:] = float("nan")
        yd[b, yl[b]:] = float("nan")
    kw = dict(x_lengths=xl, y_lengths=yl, dist_func=None if dist_func is None else sqeuclidean_cost)
    want = soft_dtw(x, y, 0.5, **kw)
    xd.requires_grad_()
    got = soft_dtw(xd, yd, 0.5, **kw)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, want)


# ---------------------------------------------------------------- lengths


def test_packed_sequence():
    from torch.nn.utils.rnn import pack_padded_sequence

    x = torch.rand(3, 5, 2, dtype=torch.float64)
    y = torch.rand(3, 4, 2, dtype=torch.float64)
    xl, yl = torch.tensor([5, 2, 3]), torch.tensor([1, 4, 2])
    px = pack_padded_sequence(x, xl, batch_first=True, enforce_sorted=False)
    py = pack_padded_sequence(y, yl, batch_first=True, enforce_sorted=False)
    v = soft_dtw(px, py, 0.3)
    expected = soft_dtw(x, y, 0.3, x_lengths=xl, y_lengths=yl)
    assert torch.allclose(v, expected, rtol=1e-12)


# ---------------------------------------------------------------- custom ops and compile


def test_cpu_kernel_is_used():
    mod = _ops._kernel_module("cpu")
    assert mod.__name__ == "softdtw.kernels.cpu"  # the compiled core


def test_opcheck(kernel):
    g = torch.Generator().manual_seed(6)
    cost = torch.rand(3, 4, 5, dtype=torch.float64, generator=g, requires_grad=True)
    for args in [(cost, 0.5, None, None, 0, 0.0),
                 (cost, 0.5, torch.tensor([4, 2, 3]), torch.tensor([5, 5, 1]), 1, 1.0)]:
        torch.library.opcheck(_ops.sdtw_forward, args)
    value, r, aux, xl, yl, lo, hi = _ops.sdtw_forward(cost.detach(), 0.5, None, None, 0, 0.0)
    torch.library.opcheck(_ops.sdtw_backward, (r, aux, 0.5, xl, yl, lo, hi, torch.rand(3, dtype=torch.float64), True))


class _Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)
        self.loss = SoftDTWLossPyTorch(gamma=0.1, normalize=True, sakoe_chiba_radius=2)

    def forward(self, x, y):
        return self.loss(self.lin(x), y).mean()


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_torch_compile_fullgraph(backend):
    torch.manual_seed(0)
    model = _Model()
    x, y = torch.rand(4, 6, 2), torch.rand(4, 5, 2)
    eager = model(x, y)
    eager.backward()
    g_eager = model.lin.weight.grad.clone()
    model.zero_grad()
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    out = compiled(x, y)
    out.backward()
    assert torch.allclose(out, eager, rtol=1e-5, atol=1e-5)
    assert torch.allclose(model.lin.weight.grad, g_eager, rtol=1e-4, atol=1e-5)


DDP_SCRIPT = r"""
import os, sys, torch, torch.distributed as dist
from softdtw.torch import SoftDTWLossPyTorch

def run(rank, world, port, out):
    os.environ["MASTER_ADDR"] = "127.0.0.1"; os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 3).double()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 7, 3, dtype=torch.float64, generator=g)
    y = torch.rand(4, 5, 3, dtype=torch.float64, generator=g)
    xs, ys = x.chunk(world)[rank], y.chunk(world)[rank]
    loss = SoftDTWLossPyTorch(gamma=0.5)(ddp(xs), ys).sum() * world / 4
    loss.backward()
    if rank == 0:
        torch.save(model.weight.grad, out)
    dist.barrier()
    # leave without running C++ destructors: gloo's and the kernels' worker threads can abort
    # ("terminate called without an active exception") when torn down at interpreter exit
    os._exit(0)

if __name__ == "__main__":
    import torch.multiprocessing as mp
    port, out = int(sys.argv[1]), sys.argv[2]
    mp.spawn(run, args=(2, port, out), nprocs=2, join=True)
"""


def test_ddp_two_processes_match_single(tmp_path):
    import socket

    script = tmp_path / "ddp.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "grad.pt"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    r = subprocess.run([sys.executable, str(script), str(port), str(out)], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    ddp_grad = torch.load(out)
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 3).double()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 7, 3, dtype=torch.float64, generator=g)
    y = torch.rand(4, 5, 3, dtype=torch.float64, generator=g)
    (SoftDTWLossPyTorch(gamma=0.5)(model(x), y).sum() / 4).backward()
    assert torch.allclose(ddp_grad, model.weight.grad, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- drop-in for tslearn


def test_same_numbers_as_tslearn():
    tslearn = pytest.importorskip("tslearn.metrics")
    g = torch.Generator().manual_seed(7)
    x = torch.rand(3, 6, 2, dtype=torch.float64, generator=g)
    y = torch.rand(3, 8, 2, dtype=torch.float64, generator=g)
    for kw in [dict(), dict(normalize=True), dict(global_constraint="sakoe_chiba", sakoe_chiba_radius=2),
               dict(global_constraint="itakura", itakura_max_slope=3.0)]:
        if kw.get("global_constraint") == "itakura":
            y = y[:, :6]  # tslearn's itakura self-terms need feasible shapes
        xa = x.clone().requires_grad_()
        xb = x.clone().requires_grad_()
        ours = SoftDTWLossPyTorch(gamma=0.3, **kw)(xa, y)
        theirs = tslearn.SoftDTWLossPyTorch(gamma=0.3, **kw)(xb, y)
        ours.sum().backward()
        theirs.sum().backward()
        assert torch.allclose(ours, theirs.double(), rtol=1e-6), kw
        assert torch.allclose(xa.grad, xb.grad.double(), rtol=1e-5, atol=1e-6), kw


# ---------------------------------------------------------------- bad input


def _as_torch(a):
    return torch.tensor(a) if isinstance(a, np.ndarray) else a


def _torch_case(x, y, kw, exc, match):
    kw = {k: (torch.tensor(v) if k.endswith("_lengths") else v) for k, v in kw.items()}
    return _as_torch(x), _as_torch(y), kw, exc, match


@pytest.mark.parametrize(
    "x, y, kw, exc, match",
    [_torch_case(*case) for case in BAD_PAIRS] + [
        (torch.zeros(1, 1, dtype=torch.bool), torch.zeros(1, 1), {}, TypeError, "x must hold real numbers"),
        (np.zeros((1, 1)), torch.zeros(1, 1), {}, TypeError, "x must be a torch.Tensor"),
        (torch.zeros(1, 3, 1), torch.zeros(1, 3, 1), {"dist_func": lambda a, b: a}, ValueError, "dist_func must return"),
    ],
)
def test_bad_input(x, y, kw, exc, match):
    with pytest.raises(exc, match=match):
        soft_dtw(x, y, **kw)


@pytest.mark.parametrize("cost, exc, match", BAD_COSTS)
def test_bad_cost(cost, exc, match):
    with pytest.raises(exc, match=match):
        soft_dtw_from_cost(torch.tensor(cost))


def test_bad_module_arguments():
    with pytest.raises(ValueError, match="gamma must be > 0"):
        SoftDTWLossPyTorch(gamma=-1)
    with pytest.raises(ValueError, match="global_constraint"):
        SoftDTWLossPyTorch(global_constraint="sakoe")
    with pytest.raises(ValueError, match="sakoe_chiba_radius"):
        SoftDTWLossPyTorch(sakoe_chiba_radius=-2)


def test_different_devices():
    if not torch.cuda.is_available():
        x = torch.zeros(1, 2, 1, device="meta")
        with pytest.raises(ValueError, match="same device"):
            soft_dtw(x, torch.zeros(1, 2, 1), 1.0)
    else:  # pragma: no cover
        with pytest.raises(ValueError, match="same device"):
            soft_dtw(torch.zeros(1, 2, 1, device="cuda"), torch.zeros(1, 2, 1), 1.0)


# ---------------------------------------------------------------- learnable gamma


def test_gamma_tensor_gradcheck(kernel):
    # d value / d gamma (with the cost gradient, normalize and lengths) against finite differences
    g = torch.Generator().manual_seed(3)
    cost = torch.rand(3, 5, 4, dtype=torch.float64, generator=g, requires_grad=True)
    gamma = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    xl, yl = torch.tensor([5, 2, 4]), torch.tensor([4, 4, 1])
    assert torch.autograd.gradcheck(lambda c, gm: soft_dtw_from_cost(c, gm, x_lengths=xl, y_lengths=yl),
                                    (cost, gamma))
    x = torch.rand(2, 4, 3, dtype=torch.float64, generator=g)
    y = torch.rand(2, 6, 3, dtype=torch.float64, generator=g)
    assert torch.autograd.gradcheck(lambda gm: soft_dtw(x, y, gm, normalize=True), (gamma,))
    # and against the NumPy reference's d value / d gamma
    c = cost.detach().numpy()
    _, want = ref.soft_dtw_gamma_grad_from_cost(c, 0.7, x_lengths=xl.numpy(), y_lengths=yl.numpy())
    (got,) = torch.autograd.grad(soft_dtw_from_cost(cost, gamma, x_lengths=xl, y_lengths=yl).sum(), gamma)
    np.testing.assert_allclose(got.item(), want.sum(), rtol=1e-10)


def test_gamma_parameter_is_learned(kernel):
    # an nn.Parameter gamma registers with the module and moves under an optimizer
    gamma = torch.nn.Parameter(torch.tensor(1.0))
    loss_fn = SoftDTWLossPyTorch(gamma=gamma)
    assert any(p is gamma for p in loss_fn.parameters())
    x, y = torch.rand(4, 6, 2), torch.rand(4, 5, 2)
    opt = torch.optim.SGD([gamma], lr=0.05)
    loss_fn(x, y).mean().backward()
    assert gamma.grad is not None and gamma.grad.dtype == torch.float32 and gamma.grad.shape == ()
    before = gamma.item()
    opt.step()
    assert gamma.item() != before
    # a float32 gamma tensor with float64 series: the gradient keeps gamma's dtype
    g64 = torch.tensor(0.5, requires_grad=True)
    soft_dtw(x.double(), y.double(), g64).sum().backward()
    assert g64.grad.dtype == torch.float32 and torch.isfinite(g64.grad)


@pytest.mark.parametrize("gamma,exc", [
    (torch.tensor([0.5, 1.0]), ValueError), (torch.tensor(1), TypeError),
    (torch.tensor(-1.0), ValueError), (torch.tensor(float("nan")), ValueError),
])
def test_bad_gamma_tensor(gamma, exc):
    with pytest.raises(exc, match="gamma"):
        soft_dtw(torch.rand(2, 3, 1), torch.rand(2, 3, 1), gamma)
    with pytest.raises(exc, match="gamma"):
        SoftDTWLossPyTorch(gamma=gamma)


# ---------------------------------------------------------------- second order


def test_double_backward_gradgradcheck():
    # float64, by default (no option): gradgradcheck for the cost matrix (with a band and
    # lengths) and for x and y through the default squared-Euclidean cost (the core's fused
    # route, with lengths, a band, normalize), checkpointed too
    g = torch.Generator().manual_seed(4)
    cost = torch.rand(2, 5, 4, dtype=torch.float64, generator=g, requires_grad=True)
    xl, yl = torch.tensor([5, 3]), torch.tensor([4, 2])
    band = dict(global_constraint="sakoe_chiba", sakoe_chiba_radius=1)
    for kw in ({}, dict(band, x_lengths=xl, y_lengths=yl), dict(memory="checkpoint")):
        assert torch.autograd.gradgradcheck(lambda c: soft_dtw_from_cost(c, 0.8, **kw), (cost,))
    x = torch.rand(2, 4, 2, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.rand(2, 3, 2, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda a, b: soft_dtw(a, b, 0.5, normalize=True), (x, y))
    for kw in (dict(band, x_lengths=[4, 2], y_lengths=[3, 1]), dict(memory="checkpoint")):
        assert torch.autograd.gradgradcheck(lambda a, b: soft_dtw(a, b, 0.5, **kw), (x, y))
    loss = SoftDTWLossPyTorch(gamma=0.5)
    assert torch.autograd.gradgradcheck(lambda a, b: loss(a, b), (x, y))
    # only x requires grad (y a target); a dist_func's cost
    assert torch.autograd.gradgradcheck(lambda a: soft_dtw(a, y.detach(), 0.5), (x,))
    l1 = lambda a, b: (a[:, :, None] - b[:, None]).abs().sum(-1)  # noqa: E731 (a dist_func: the cost route)
    assert torch.autograd.gradgradcheck(lambda a: soft_dtw(a, y.detach(), 0.5, dist_func=l1), (x,))


def test_double_backward_float32_training_route():
    # the float32 route a training loop takes (the core's fused kernel) differentiates twice:
    # its Hessian-vector product equals float64's
    g = torch.Generator().manual_seed(6)
    x64 = torch.randn(3, 7, 2, dtype=torch.float64, generator=g)
    y64 = torch.randn(3, 5, 2, dtype=torch.float64, generator=g)
    v = torch.randn(x64.shape, dtype=torch.float64, generator=g)

    def hvp(x, y):
        x = x.clone().requires_grad_()
        (gx,) = torch.autograd.grad(soft_dtw(x, y, 1.0).sum(), x, create_graph=True)
        (h,) = torch.autograd.grad((gx * v.to(x.dtype)).sum(), x)
        return gx.detach(), h

    g32, h32 = hvp(x64.float(), y64.float())
    g64, h64 = hvp(x64, y64)
    torch.testing.assert_close(g32.double(), g64, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(h32.double(), h64, rtol=1e-4, atol=1e-5)
    assert h64.abs().max() > 0


def test_hessian_vector_product_against_finite_differences():
    # H v from double backward equals the central difference of the gradient along v
    g = torch.Generator().manual_seed(5)
    cost = torch.rand(3, 6, 5, dtype=torch.float64, generator=g) * 3
    v = torch.randn(cost.shape, dtype=torch.float64, generator=g)

    def grad_at(c):
        c = c.clone().requires_grad_()
        (gc,) = torch.autograd.grad(soft_dtw_from_cost(c, 0.3).sum(), c, create_graph=True)
        return c, gc

    c, gc = grad_at(cost)
    (hv,) = torch.autograd.grad(gc, c, v)
    eps = 1e-5
    fd = (grad_at(cost + eps * v)[1] - grad_at(cost - eps * v)[1]) / (2 * eps)
    torch.testing.assert_close(hv, fd.detach(), rtol=1e-6, atol=1e-8)
    # and the first-order gradient equals the default path's
    c0 = cost.clone().requires_grad_()
    soft_dtw_from_cost(c0, 0.3).sum().backward()
    torch.testing.assert_close(gc.detach(), c0.grad, rtol=1e-12, atol=1e-12)


def test_double_backward_with_learnable_gamma():
    # d value / d gamma stays right under create_graph=True, and the cost's gradient is differentiable
    g = torch.Generator().manual_seed(7)
    cost = torch.rand(2, 4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    gamma = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    gc, gg = torch.autograd.grad(soft_dtw_from_cost(cost, gamma).sum(), (cost, gamma), create_graph=True)
    c0, g0 = cost.detach().clone().requires_grad_(), gamma.detach().clone().requires_grad_()
    soft_dtw_from_cost(c0, g0).sum().backward()
    torch.testing.assert_close(gc.detach(), c0.grad)
    torch.testing.assert_close(gg.detach(), g0.grad)
    assert torch.autograd.gradgradcheck(lambda c: soft_dtw_from_cost(c, gamma.detach()), (cost,))


def test_second_order_is_deprecated_and_changes_nothing():
    g = torch.Generator().manual_seed(8)
    x = torch.rand(2, 4, 2, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.rand(2, 3, 2, dtype=torch.float64, generator=g)
    with pytest.warns(DeprecationWarning, match="second_order"):
        v = soft_dtw(x, y, 0.5, second_order=True)
    torch.testing.assert_close(v, soft_dtw(x, y, 0.5), rtol=0, atol=0)
    with pytest.warns(DeprecationWarning, match="second_order"):
        loss = SoftDTWLossPyTorch(gamma=0.5, second_order=True)
    torch.testing.assert_close(loss(x, y), v, rtol=0, atol=0)  # (warned once, at construction)
    with pytest.warns(DeprecationWarning, match="second_order"):
        soft_dtw(x, y, 0.5, memory="checkpoint", second_order=True)


@pytest.mark.parametrize("D", [1, 2, 3, 8, 9])
@pytest.mark.parametrize("kw", [{}, dict(x_lengths=[40, 7, 1, 33, 20], y_lengths=[30, 30, 4, 1, 17]),
                                dict(global_constraint="sakoe_chiba", sakoe_chiba_radius=3), dict(normalize=True)],
                         ids=["plain", "lengths", "band", "normalize"])
def test_fused_sqeuclidean_equals_cost_path(monkeypatch, D, kw):
    # float32 CPU series with few features take the kernel that forms the cost itself
    # (_FusedSqEuclidean: no cost matrix, no cost gradient): the cost path's numbers
    from softdtw.torch import _api

    torch.manual_seed(D)
    x = torch.randn(5, 40, D, requires_grad=True)
    y = torch.randn(5, 30 if not kw.get("normalize") else 40, D, requires_grad=True)
    assert _api._fused(x, torch.float32) == (D <= _api.FUSED_MAX_FEATURES)
    calls = []
    run = _api._FusedSqEuclidean.run
    monkeypatch.setattr(_api._FusedSqEuclidean, "run", staticmethod(lambda *a: calls.append(1) or run(*a)))
    g = torch.randn(5)
    v1 = soft_dtw(x, y, 0.5, **kw)
    gx1, gy1 = torch.autograd.grad(v1, (x, y), g)
    assert bool(calls) == (D <= _api.FUSED_MAX_FEATURES)
    # y without grad: the kernel's sweep that does not sum y's gradient, the same gradient of x
    gx0, = torch.autograd.grad(soft_dtw(x, y.detach(), 0.5, **kw), x, g)
    scale = float(gx1.abs().max())
    torch.testing.assert_close(gx0, gx1, rtol=0, atol=1e-6 * scale)
    monkeypatch.setattr(_api, "FUSED_MAX_FEATURES", 0)
    v2 = soft_dtw(x, y, 0.5, **kw)
    gx2, gy2 = torch.autograd.grad(v2, (x, y), g)
    v1, v2 = v1.detach(), v2.detach()
    torch.testing.assert_close(v1, v2, rtol=1e-5, atol=1e-5 * float(v2.abs().max()))
    scale = max(float(gx2.abs().max()), float(gy2.abs().max()))
    torch.testing.assert_close(gx1, gx2, rtol=0, atol=2e-5 * scale)
    torch.testing.assert_close(gy1, gy2, rtol=0, atol=2e-5 * scale)
    # and the float64 reference
    xs, ys = x.detach().double().numpy(), y.detach().double().numpy()
    vref = ref.soft_dtw(xs, ys, 0.5, **{k: (np.asarray(v) if isinstance(v, list) else v) for k, v in kw.items()})
    np.testing.assert_allclose(v1.detach().numpy(), vref, rtol=2e-5, atol=2e-5 * np.abs(vref).max())


@pytest.mark.parametrize("kw", [{}, {"normalize": True}, {"x_lengths": [40, 3, 17], "y_lengths": [30, 30, 1]},
                                {"global_constraint": "sakoe_chiba", "sakoe_chiba_radius": 4}], ids=str)
def test_fused_values_without_grad_keep_no_state(monkeypatch, kw):
    # no gradient wanted (torch.no_grad, inference mode, or no input requiring grad): the fused
    # kernel's values without R (keep=False), to the last bit those of the differentiable call
    from softdtw import spec
    from softdtw.kernels import cpu

    torch.manual_seed(2)
    x = torch.randn(3, 40, 2, requires_grad=True)
    y = torch.randn(3, 40 if kw.get("normalize") else 30, 2)
    want = soft_dtw(x, y, 0.3, **kw).detach()
    keeps = []
    fwd = cpu.forward_sqeuclidean
    monkeypatch.setattr(cpu, "forward_sqeuclidean", lambda *a, **k: keeps.append(a[-1]) or fwd(*a, **k))
    with torch.no_grad():
        got_no_grad = soft_dtw(x, y, 0.3, **kw)
    with torch.inference_mode():
        got_inference = soft_dtw(x, y, 0.3, **kw)
    got_detached = soft_dtw(x.detach(), y, 0.3, **kw)
    assert keeps and not any(keeps)  # every call without the backward's state
    for got in (got_no_grad, got_inference, got_detached):
        assert not got.requires_grad and torch.equal(got, want)
    value, r, aux = fwd(x.detach().numpy(), y.numpy(), 0.3, np.full(3, 40, np.int32), np.full(3, y.shape[1], np.int32),
                        *spec.band_bounds(40, y.shape[1], np.full(3, 40), np.full(3, y.shape[1])), False)
    assert r.size == 0 and aux.size == 0
    # and with a gradient wanted, the state is kept (the divergence's sdtw(y, y) needs none)
    keeps.clear()
    soft_dtw(x, y, 0.3, **kw).sum().backward()
    assert keeps == ([True, True, False] if kw.get("normalize") else [True])


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")  # torch's jvp decompositions
def test_fused_forward_mode_tangent_is_not_dropped():
    # a dual input (forward-mode AD) does not require grad; the stateless no-grad path must not
    # take it and silently drop the tangent: the call refuses as it did before (no jvp)
    import torch.autograd.forward_ad as fwAD

    x, y, t = torch.randn(2, 6, 2), torch.randn(2, 5, 2), torch.randn(2, 6, 2)
    with fwAD.dual_level():
        dual = fwAD.make_dual(x, t)
        assert not dual.requires_grad
        with pytest.raises(RuntimeError, match="jvp"):
            soft_dtw(dual, y, 0.5)
        with torch.no_grad(), pytest.raises(RuntimeError, match="jvp"):
            soft_dtw(dual, y, 0.5)


def test_common_call_is_the_checked_call(monkeypatch):
    # the training loop's call (batched float32 series, a number for gamma, default options)
    # is checked in a few comparisons (_common_problem) and solved on the same route: the same
    # numbers, to the bit, as after the general checks; everything else, bad input included,
    # goes through those checks
    from softdtw.torch import _api

    torch.manual_seed(4)
    x = torch.randn(6, 20, 3, requires_grad=True)
    y = torch.randn(6, 17, 3, requires_grad=True)
    g = torch.randn(6)
    taken = _api._common_problem(x, y, 0.7)
    assert taken is not None and _api._route(taken) == "series"
    wide = _api._common_problem(torch.randn(2, 5, 9), torch.randn(2, 5, 9), 0.7)  # (past the fused kernel)
    assert wide is not None and _api._route(wide) == "cost"
    assert _api._common_problem(x, y, 2) is not None
    for a, b, gamma in [(x.double(), y.double(), 0.7), (x[0], y[0], 0.7), (x, y, torch.tensor(0.7)),
                        (x, y, float("nan")), (x, y, -1.0), (x, y[:3], 0.7), (x, y[..., :2], 0.7),
                        (torch.nn.Parameter(x.detach()), y, 0.7), (x.half(), y, 0.7), (x, y.to(torch.int32), 0.7),
                        (x[:, :0], y, 0.7)]:
        assert _api._common_problem(a, b, gamma) is None
    v1 = soft_dtw(x, y, 0.7)
    gx1, gy1 = torch.autograd.grad(v1, (x, y), g)
    w1 = soft_dtw(x.repeat(1, 1, 3), y.repeat(1, 1, 3), 0.7)
    monkeypatch.setattr(_api, "_common_problem", lambda *a: None)
    v2 = soft_dtw(x, y, 0.7)
    gx2, gy2 = torch.autograd.grad(v2, (x, y), g)
    assert torch.equal(v1, v2) and torch.equal(gx1, gx2) and torch.equal(gy1, gy2)
    assert torch.equal(w1, soft_dtw(x.repeat(1, 1, 3), y.repeat(1, 1, 3), 0.7))
    monkeypatch.undo()
    loss = SoftDTWLossPyTorch(0.7)
    assert torch.equal(loss(x, y), v2)
    loss.gamma = -1.0  # set after construction: the common call does not take it, the checks refuse it
    with pytest.raises(ValueError, match="gamma"):
        loss(x, y)
