"""torch: padding never matters, the non-finite rule, odd inputs, torch.func, forks and threads.

Each test here failed before its fix (issue "Correctness on every route").
"""

import math
import os
import signal
import threading
import warnings

import numpy as np
import pytest
import torch

import softdtw.numpy as ref
from softdtw.torch import soft_dtw, soft_dtw_alignment_from_cost, soft_dtw_from_cost

# the routes a default-cost call can take on CPU (float32 D <= 8 is the fused kernel)
ROUTES = [
    ("fused", torch.float32, 2, {}),
    ("cost f32 D=9", torch.float32, 9, {}),
    ("cost f64", torch.float64, 9, {}),
    ("learnable gamma", torch.float32, 3, {"learnable": True}),
    ("checkpoint", torch.float64, 3, {"memory": "checkpoint"}),
    ("dist_func", torch.float64, 3, {"dist_func": lambda a, b: ((a[:, :, None] - b[:, None]) ** 2).sum(-1)}),
]


def _call(x, y, route_kw, **kw):
    kw = dict(kw)
    rk = dict(route_kw)
    gamma = 1.0
    if rk.pop("learnable", False):
        gamma = torch.tensor(1.0, dtype=x.dtype, requires_grad=True)
    return soft_dtw(x, y, gamma, **rk, **kw)


@pytest.mark.parametrize("name,dtype,d,route_kw", ROUTES, ids=[r[0] for r in ROUTES])
@pytest.mark.parametrize("pad", [0.0, 1e3, 1e4, -1e30, math.inf, math.nan])
def test_padding_never_matters(name, dtype, d, route_kw, pad):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, d, generator=g, dtype=dtype)
    y = torch.randn(2, 5, d, generator=g, dtype=dtype)
    xl, yl = torch.tensor([6, 3]), torch.tensor([5, 2])
    x[1, 3:] = pad
    y[1, 2:] = pad
    x.requires_grad_(True)
    y.requires_grad_(True)
    v = _call(x, y, route_kw, x_lengths=xl, y_lengths=yl)
    v.sum().backward()
    x1 = x.detach()[1:, :3].clone().requires_grad_(True)
    y1 = y.detach()[1:, :2].clone().requires_grad_(True)
    v1 = _call(x1, y1, route_kw)
    v1.sum().backward()
    v, v1 = v.detach(), v1.detach()
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    assert torch.isfinite(v).all()
    assert abs(float(v[1]) - float(v1[0])) <= tol * max(1.0, abs(float(v1[0])))
    torch.testing.assert_close(x.grad[1, :3], x1.grad[0], rtol=10 * tol, atol=10 * tol)
    torch.testing.assert_close(y.grad[1, :2], y1.grad[0], rtol=10 * tol, atol=10 * tol)
    assert (x.grad[1, 3:] == 0).all() and (y.grad[1, 2:] == 0).all()


@pytest.mark.parametrize("offset", [1e3, 1e4])
@pytest.mark.parametrize("d", [3, 9, 33, 64])
def test_offset_data_float32(offset, d):
    g = torch.Generator().manual_seed(1)
    x = offset + torch.randn(3, 7, d, generator=g, dtype=torch.float64)
    y = offset + torch.randn(3, 6, d, generator=g, dtype=torch.float64)
    x, y = x.float().double(), y.float().double()  # the same numbers in both dtypes
    v64 = soft_dtw(x, y, 1.0)
    v32 = soft_dtw(x.float(), y.float(), 1.0)
    assert torch.allclose(v32.double(), v64, rtol=1e-5)


@pytest.mark.parametrize("name,dtype,d,route_kw", ROUTES, ids=[r[0] for r in ROUTES])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_rule(name, dtype, d, route_kw, bad):
    """A non-finite entry: its pair's value is NaN, its gradient NaN at its used positions with
    a non-zero weight and exactly 0 with weight 0; the other pair is unchanged."""
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(2, 5, d, generator=g, dtype=dtype)
    y0 = torch.randn(2, 4, d, generator=g, dtype=dtype)
    x0[0, 1, 0] = bad
    for weight in (0.0, 1.0):
        x, y = x0.clone().requires_grad_(True), y0.clone().requires_grad_(True)
        v = _call(x, y, route_kw, x_lengths=torch.tensor([5, 5]), y_lengths=torch.tensor([3, 4]))
        (v * torch.tensor([weight, 1.0], dtype=dtype)).sum().backward()
        v = v.detach()
        assert math.isnan(v[0]) and math.isfinite(v[1])
        good = _call(x0[1:].clone(), y0[1:].clone(), route_kw).detach()
        assert abs(float(v[1]) - float(good[0])) <= 1e-5 * max(1.0, abs(float(good[0])))
        assert torch.isfinite(x.grad[1]).all() and torch.isfinite(y.grad[1]).all()
        if weight == 0.0:
            assert (x.grad[0] == 0).all() and (y.grad[0] == 0).all()
        else:
            assert torch.isnan(x.grad[0]).all() and torch.isnan(y.grad[0, :3]).all()
            assert (y.grad[0, 3:] == 0).all()


def test_non_finite_cost_rule():
    c = torch.ones(3, 3, 4, dtype=torch.float64)
    c[0, 1, 1] = math.nan
    c[1, 0, 2] = -math.inf
    c[2, :, 1] = math.inf  # forbidden column: no path: +inf
    for weight in (0.0, 1.0):
        ct = c.clone().requires_grad_(True)
        v = soft_dtw_from_cost(ct, 1.0)
        (v[:2] * weight).sum().backward()
        v = v.detach()
        assert math.isnan(v[0]) and math.isnan(v[1]) and v[2] == math.inf
        if weight == 0.0:
            assert (ct.grad == 0).all()
        else:
            assert torch.isnan(ct.grad[:2]).all()
    a, v = soft_dtw_alignment_from_cost(c, 1.0)
    assert torch.isnan(a[0]).all() and math.isnan(v[0])


@pytest.mark.parametrize("dtype,gamma", [(torch.float32, 1e-39), (torch.float32, 1e39), (torch.float64, 1e-320),
                                         (torch.float32, 1e36), (torch.float32, 2e-38), (torch.float64, 1e-307)])
def test_extreme_gamma_raises(dtype, gamma):
    x, y = torch.randn(2, 50, 2, dtype=dtype), torch.randn(2, 50, 2, dtype=dtype)
    with pytest.raises(ValueError, match=f"gamma.*{str(dtype)[6:]}"):
        soft_dtw(x, y, gamma)
    if gamma > 1 or gamma < np.finfo(str(dtype)[6:]).tiny:
        with pytest.raises(ValueError, match="gamma"):
            soft_dtw_from_cost(torch.ones(2, 50, 50, dtype=dtype), gamma)


def test_extreme_but_usable_gamma_is_finite():
    x, y = torch.randn(2, 50, 2), torch.randn(2, 50, 2)
    for gamma in (1e-30, 1e30):
        assert torch.isfinite(soft_dtw(x, y, gamma)).all()


def test_huge_radius_is_no_band():
    x, y = torch.randn(2, 6, 2, dtype=torch.float64), torch.randn(2, 5, 2, dtype=torch.float64)
    torch.testing.assert_close(soft_dtw(x, y, 1.0, sakoe_chiba_radius=2**63), soft_dtw(x, y, 1.0))


def test_one_pair_lengths_of_the_wrong_shape():
    x, y = torch.randn(5, 2), torch.randn(4, 2)
    with pytest.raises(ValueError, match="x_lengths"):
        soft_dtw(x, y, 1.0, x_lengths=[3, 2])
    with pytest.raises(ValueError, match="y_lengths"):
        soft_dtw_from_cost(torch.ones(5, 4), 1.0, y_lengths=[3, 2])
    assert torch.isclose(soft_dtw(x, y, 1.0, x_lengths=3), soft_dtw(x[:3], y, 1.0))


@pytest.mark.parametrize("dtype", [torch.complex64, torch.bool])
def test_dist_func_dtype(dtype):
    x, y = torch.randn(2, 5, 2), torch.randn(2, 4, 2)
    with pytest.raises(TypeError, match="dist_func"):
        soft_dtw(x, y, 1.0, dist_func=lambda a, b: torch.ones(2, 5, 4, dtype=dtype))


@pytest.mark.parametrize("dtype,d", [(torch.float32, 2), (torch.float32, 9), (torch.float64, 3)])
def test_torch_func_equals_autograd(dtype, d):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 6, d, generator=g, dtype=dtype)
    y = torch.randn(4, 5, d, generator=g, dtype=dtype)
    w = torch.linspace(0.5, 2, 4, dtype=dtype)
    xa = x.clone().requires_grad_(True)
    va = soft_dtw(xa, y, 1.0)
    (va * w).sum().backward()
    gx = torch.func.grad(lambda a: (soft_dtw(a, y, 1.0) * w).sum())(x)
    torch.testing.assert_close(gx, xa.grad)
    with pytest.warns(UserWarning, match="first order under torch.func"):  # vjp runs the backward with grad enabled
        v, vjp_fn = torch.func.vjp(lambda a: soft_dtw(a, y, 1.0), x)
        torch.testing.assert_close(vjp_fn(w)[0], xa.grad)
    torch.testing.assert_close(v, va.detach())
    # vmap over an extra batch axis, and per-sample gradients
    vv = torch.func.vmap(lambda a: soft_dtw(a, y, 1.0))(torch.stack([x, 2 * x]))
    torch.testing.assert_close(vv[0], va.detach())
    torch.testing.assert_close(vv[1], soft_dtw(2 * x, y, 1.0))
    per = torch.func.vmap(torch.func.grad(lambda a, b: soft_dtw(a[None], b[None], 1.0)[0]))(x, y)
    torch.testing.assert_close(per * w[:, None, None], xa.grad)


def _fork_and_call(fn):
    with warnings.catch_warnings():  # (JAX, once imported by another test, warns at every fork)
        warnings.simplefilter("ignore", RuntimeWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        signal.alarm(60)
        try:
            # as DataLoader workers do: torch's own OpenMP pool hangs a forked child whose parent
            # used it (plain torch ops too). The kernels' pool after a fork is tested in
            # test_kernel_numba_cpu.py, where the child runs it on two threads.
            torch.set_num_threads(1)
            fn()
        except BaseException:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return status


CPU_ROUTES = {
    "float32": lambda x, y: soft_dtw(x.float(), y.float(), 1.0).sum().backward(),
    "float64": lambda x, y: soft_dtw(x, y, 1.0).sum().backward(),
    "padded": lambda x, y: soft_dtw(x.float(), y.float(), 1.0, x_lengths=torch.arange(x.shape[0]) % 30 + 1
                                    ).sum().backward(),
    "checkpoint": lambda x, y: soft_dtw(x, y, 1.0, memory="checkpoint").sum().backward(),
    "cost": lambda x, y: soft_dtw_from_cost(torch.ones(64, 20, 20), 1.0).sum(),
}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
@pytest.mark.parametrize("route", sorted(CPU_ROUTES))
def test_fork_after_each_route(route):
    x = torch.randn(64, 30, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(64, 20, 3, dtype=torch.float64)
    old = torch.get_num_threads()
    torch.set_num_threads(2)  # the kernels' own threads start in the parent
    try:
        CPU_ROUTES[route](x, y)
        assert _fork_and_call(lambda: CPU_ROUTES[route](x, y)) == 0
    finally:
        torch.set_num_threads(old)


@pytest.mark.parametrize("route", sorted(CPU_ROUTES))
def test_threads_give_the_single_thread_bits(route):
    x = torch.randn(64, 30, 3, dtype=torch.float64)
    y = torch.randn(64, 20, 3, dtype=torch.float64)

    def run():
        xx = x.clone().requires_grad_(True)
        if route == "cost":
            return (soft_dtw_from_cost(torch.ones(64, 20, 20) + x[:, :20, :1], 1.0),)
        v = {"float32": lambda: soft_dtw(xx.float(), y.float(), 1.0),
             "float64": lambda: soft_dtw(xx, y, 1.0),
             "padded": lambda: soft_dtw(xx.float(), y.float(), 1.0, x_lengths=torch.arange(64) % 30 + 1),
             "checkpoint": lambda: soft_dtw(xx, y, 1.0, memory="checkpoint")}[route]()
        v.sum().backward()
        return v.detach(), xx.grad

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        want = run()
    finally:
        torch.set_num_threads(old)
    got = [None] * 4
    errors = []

    def work(k):
        try:
            got[k] = run()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for out in got:
        for a, b in zip(out, want):
            assert torch.equal(a, b)


def test_thread_count_follows_torch(monkeypatch):
    """The CPU core runs on torch.get_num_threads() threads."""
    from softdtw.kernels import cpu

    seen = []
    real = cpu._threads
    monkeypatch.setattr(cpu, "_threads", lambda threads=None: seen.append(threads) or real(threads))
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x = torch.randn(64, 30, 2, requires_grad=True)
        soft_dtw(x, torch.randn(64, 20, 2), 1.0).sum().backward()
        soft_dtw_from_cost(torch.ones(64, 20, 20, dtype=torch.float64), 1.0)
    finally:
        torch.set_num_threads(old)
    assert seen and all(t == 1 for t in seen)


def test_numpy_reference_still_agrees_on_padding():
    """The unpadded pair of test_padding_never_matters is the reference's value."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 2, generator=g, dtype=torch.float64)
    y = torch.randn(1, 2, 2, generator=g, dtype=torch.float64)
    assert np.allclose(soft_dtw(x, y, 1.0).numpy(), ref.soft_dtw(x.numpy(), y.numpy(), 1.0), rtol=1e-12)


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="no SIGINT")
@pytest.mark.parametrize("route", ["float64", "padded", "checkpoint"])
def test_a_call_after_an_interrupted_call(route):
    """Ctrl-C during a call (the kernels' threads running) leaves nothing behind: the next
    call gives the bits of an undisturbed one."""
    x = torch.randn(512, 60, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(512, 50, 3, dtype=torch.float64)
    want_x = torch.randn(64, 30, 3, dtype=torch.float64)
    want_y = torch.randn(64, 20, 3, dtype=torch.float64)

    def small():
        xx = want_x.clone().requires_grad_(True)
        v = {"float64": lambda: soft_dtw(xx, want_y, 1.0),
             "padded": lambda: soft_dtw(xx.float(), want_y.float(), 1.0, x_lengths=torch.arange(64) % 30 + 1),
             "checkpoint": lambda: soft_dtw(xx, want_y, 1.0, memory="checkpoint")}[route]()
        v.sum().backward()
        return v.detach(), xx.grad

    want = small()
    interrupted = False
    timer = threading.Timer(0.02, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        for _ in range(200):  # until the interrupt lands inside a call
            CPU_ROUTES[route](x, y)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        timer.cancel()
    assert interrupted
    got = small()
    assert all(torch.equal(a, b) for a, b in zip(got, want))


def test_dist_func_forbidding_every_path_gives_inf():
    """+inf from a dist_func forbids cells (the cost rule): no path left is +inf, not an overflow."""
    def blocked(a, b):
        c = ((a[:, :, None] - b[:, None]) ** 2).sum(-1)
        return torch.where(torch.arange(c.shape[2]) == 1, math.inf, c)

    x, y = torch.randn(2, 4, 2, dtype=torch.float64), torch.randn(2, 3, 2, dtype=torch.float64)
    assert (soft_dtw(x, y, 1.0, dist_func=blocked) == math.inf).all()
