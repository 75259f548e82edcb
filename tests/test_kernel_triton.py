"""The Triton kernels (softdtw.kernels.triton_cuda) against the float64 NumPy reference.

With no CUDA device the kernels run in Triton's interpreter on CPU tensors (tiny sizes: about
10^4 cells per second). The interpreter has to be chosen before triton is first imported
(``TRITON_INTERPRET=1``), so this module sets it at import when no GPU is present. Where triton
was imported already in compiled mode (a GPU machine), the interpreter tests run in one child
pytest process instead (``test_interpreter_tests_in_subprocess``). Tests marked ``cuda`` run the
compiled kernels on the GPU.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

_CUDA = torch.cuda.is_available()
if not _CUDA and "triton" not in sys.modules:
    os.environ["TRITON_INTERPRET"] = "1"

pytest.importorskip("triton")

from softdtw import spec  # noqa: E402
from softdtw.kernels import triton_cuda as K  # noqa: E402
from softdtw.numpy import soft_dtw_alignment_from_cost, soft_dtw_gamma_grad_from_cost  # noqa: E402
from softdtw.testing.strategies import gammas  # noqa: E402

_INTERP = K._interpreted()
_CHILD = os.environ.get("SOFTDTW_TRITON_CHILD") == "1"

interp = pytest.mark.skipif(
    not _INTERP, reason="triton was imported in compiled mode: run by test_interpreter_tests_in_subprocess")
cuda = pytest.mark.cuda
needs_gpu = pytest.mark.skipif(not _CUDA or _INTERP, reason="needs a CUDA device (and compiled Triton)")

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def _bounds(n, m, xl, yl, constraint):
    lo, hi = spec.band_bounds(n, m, xl, yl, constraint)
    return torch.from_numpy(lo), torch.from_numpy(hi)


def _kw(constraint):
    if constraint.kind == "sakoe_chiba":
        return dict(global_constraint="sakoe_chiba", sakoe_chiba_radius=int(constraint.param))
    if constraint.kind == "itakura":
        return dict(global_constraint="itakura", itakura_max_slope=constraint.param)
    return {}


def check(cost, gamma, *, xl=None, yl=None, constraint=spec.Constraint(None, None), dtype=torch.float64,
          block=None, pairs=None, strips=None, grad_value=None, device="cpu", tol=None, need_gamma=True):
    """Run forward + backward and compare value, grad_cost and grad_gamma with the reference."""
    cost = np.asarray(cost, dtype=np.float64)
    b, n, m = cost.shape
    xl = np.full(b, n) if xl is None else np.asarray(xl)
    yl = np.full(b, m) if yl is None else np.asarray(yl)
    lo, hi = _bounds(n, m, xl, yl, constraint)
    align, value = soft_dtw_alignment_from_cost(cost, gamma, x_lengths=xl, y_lengths=yl, **_kw(constraint))
    _, ggam = soft_dtw_gamma_grad_from_cost(cost, gamma, x_lengths=xl, y_lengths=yl, **_kw(constraint))
    rng = np.random.default_rng(n * 100 + m)
    gv = rng.normal(size=b) if grad_value is None else np.broadcast_to(np.asarray(grad_value, float), (b,))
    tol = TOL[dtype] if tol is None else tol

    ct = torch.tensor(cost, dtype=dtype, device=device)
    ct_before = ct.clone()
    args = (torch.tensor(xl, dtype=torch.int32, device=device), torch.tensor(yl, dtype=torch.int32, device=device),
            lo.to(device), hi.to(device))
    args_before = [a.clone() for a in args]
    v, r, aux = K.forward(ct, gamma, *args, block=block, pairs=pairs, strips=strips)
    assert v.shape == (b,) and v.dtype == dtype and r.shape == (b, n, m) and aux.shape[0] == b
    gvt = torch.tensor(gv, dtype=dtype, device=device)
    g, gg = K.backward(r, aux, gamma, *args, gvt, need_gamma, block=block, pairs=pairs, strips=strips)
    assert torch.equal(ct, ct_before) and all(torch.equal(a, a0) for a, a0 in zip(args, args_before))
    assert g.shape == (b, n, m) and g.dtype == dtype

    v, g = v.double().cpu().numpy(), g.double().cpu().numpy()
    assert np.isfinite(v).all() and np.isfinite(g).all()
    np.testing.assert_allclose(v, value, rtol=tol, atol=tol * np.abs(value).max())
    want = align * gv[:, None, None]
    scale = np.abs(want).max(axis=(1, 2), keepdims=True) + 1e-300
    assert np.abs(g - want).max() <= tol * scale.max(), np.abs(g - want).max() / scale.max()
    valid = spec.valid_cells(n, m, xl, yl, constraint)
    assert (g[~valid] == 0).all()  # exactly zero outside the used cells
    if need_gamma:
        gg = gg.double().cpu().numpy()
        want_g = ggam * gv
        assert np.isfinite(gg).all()
        # d value / d gamma is a sum of E * (negative entropies in [-ln 3, 0]): its scale is
        # at most ln 3 times the alignment's mass per unit grad_value, and it vanishes as gamma -> 0
        gscale = np.abs(want_g).max() + np.abs(gv).max()
        np.testing.assert_allclose(gg, want_g, rtol=tol, atol=tol * gscale)
    else:
        assert gg is None
    return v, g


def _cost(b, n, m, seed=0, scale=1.0, offset=0.0):
    return offset + scale * np.random.default_rng(seed).random((b, n, m))


# ---------------------------------------------------------------------------
# Interpreter tests (every kernel path, tiny sizes)
# ---------------------------------------------------------------------------


@interp
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n,m", [(4, 6), (6, 3), (1, 5), (5, 1), (1, 1)])
def test_shapes(n, m, dtype):
    check(_cost(2, n, m), 1.0, dtype=dtype, block=4, pairs=2)


@interp
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("block,pairs", [(2, 1), (4, 2), (16, 4)])
def test_multi_chunk_and_schedules(block, pairs, dtype):
    # diagonals longer than BLOCK (several chunks); one pair per program (the long-pair schedule)
    # and several pairs per program (the short-pair schedule, with a partial last program)
    check(_cost(3, 9, 7, seed=1), 0.5, dtype=dtype, block=block, pairs=pairs)


# several pairs per program; three column strips per pair
SCHEDULES = pytest.mark.parametrize("sched", [dict(block=4, pairs=2), dict(block=2, strips=3)],
                                    ids=["pairs", "strips"])


@interp
@SCHEDULES
@pytest.mark.parametrize("gamma", [1e-3, 1e-2, 0.1, 1.0, 10.0])
def test_gamma_range(gamma, sched):
    check(_cost(2, 5, 6, seed=2), gamma, dtype=torch.float64, **sched)
    check(_cost(2, 5, 6, seed=2), gamma, dtype=torch.float32, **sched)


@interp
@SCHEDULES
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_variable_lengths(dtype, sched):
    # strips: pairs 2 and 3 leave the last strips empty (y_len <= their first column)
    check(_cost(4, 7, 6, seed=3), 0.3, xl=[7, 3, 1, 5], yl=[6, 6, 2, 1], dtype=dtype, **sched)


@interp
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("constraint,xl,yl", [
    (spec.Constraint("sakoe_chiba", 1.0), None, None),
    (spec.Constraint("sakoe_chiba", 0.0), [8, 5, 8], [6, 6, 3]),
    (spec.Constraint("sakoe_chiba", 2.0), [8, 4, 6], [6, 6, 2]),
    (spec.Constraint("itakura", 2.0), None, None),
    (spec.Constraint("itakura", 3.0), [8, 6, 7], [6, 5, 6]),
])
@pytest.mark.parametrize("sched", [dict(block=2, pairs=2), dict(block=2, strips=3)], ids=["pairs", "strips"])
def test_bands(constraint, xl, yl, dtype, sched):
    check(_cost(3, 8, 6, seed=4), 0.2, xl=xl, yl=yl, constraint=constraint, dtype=dtype, **sched)


@interp
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), gamma=gammas(1e-3, 10.0))
def test_random_problems(data, gamma):
    b = data.draw(st.integers(1, 3))
    n = data.draw(st.integers(1, 7))
    m = data.draw(st.integers(1, 7))
    xl = np.array(data.draw(st.lists(st.integers(1, n), min_size=b, max_size=b)))
    yl = np.array(data.draw(st.lists(st.integers(1, m), min_size=b, max_size=b)))
    constraint = data.draw(st.sampled_from([
        spec.Constraint(None, None), spec.Constraint("sakoe_chiba", 0.0), spec.Constraint("sakoe_chiba", 2.0),
        spec.Constraint("itakura", 2.0), spec.Constraint("itakura", 4.0)]))
    try:
        spec.valid_cells(n, m, xl, yl, constraint)
    except ValueError:
        assume(False)  # an itakura band with no admissible path
    dtype = data.draw(st.sampled_from([torch.float64, torch.float32]))
    block = data.draw(st.sampled_from([1, 2, 4, 8]))
    strips = data.draw(st.sampled_from([1, 2, 3]))
    pairs = data.draw(st.sampled_from([1, 2, 4])) if strips == 1 else 1
    cost = np.random.default_rng(data.draw(st.integers(0, 2**16))).random((b, n, m)) * data.draw(
        st.sampled_from([0.1, 1.0, 30.0]))
    check(cost, gamma, xl=xl, yl=yl, constraint=constraint, dtype=dtype, block=block, pairs=pairs, strips=strips)


def test_programs_take_pairs_sorted_by_length():
    # several pairs per program: the longest pairs share programs, so a program's loops (its
    # longest pair's diagonals) waste little on the others; one pair per program: batch order
    xl = torch.tensor([3, 9, 5, 9, 1], dtype=torch.int32)
    yl = torch.tensor([2, 7, 5, 8, 1], dtype=torch.int32)
    order = K._order(xl, yl, 2)
    assert sorted(order.tolist()) == list(range(5))
    total = (xl + yl)[order.long()]
    assert (total[:-1] >= total[1:]).all() and order.tolist()[:2] == [3, 1]
    assert K._order(xl, yl, 1).tolist() == list(range(5))
    same = torch.full((5,), 4, dtype=torch.int32)
    assert K._order(same, same, 4).tolist() == list(range(5))


@interp
def test_band_work_is_band_limited():
    # the row range of each diagonal covers exactly the used cells of a contiguous band
    rng = np.random.default_rng(5)
    for constraint in (spec.Constraint(None, None), spec.Constraint("sakoe_chiba", 1.0),
                       spec.Constraint("itakura", 2.0), spec.Constraint("sakoe_chiba", 0.0)):
        b, n, m = 4, 13, 9
        xl = rng.integers(4, n + 1, b)
        yl = rng.integers(4, m + 1, b)
        if constraint.kind == "itakura":
            xl, yl = np.array([13, 12, 9, 10]), np.array([9, 8, 9, 7])
        lo, hi = _bounds(n, m, xl, yl, constraint)
        start, end = K._diagonal_rows(lo, hi, torch.tensor(xl, dtype=torch.int32), n, m)
        valid = spec.valid_cells(n, m, xl, yl, constraint)
        for bb in range(b):
            for k in range(n + m - 1):
                rows = [i for i in range(n) if 0 <= k - i < m and valid[bb, i, k - i]]
                got = list(range(int(start[bb, k]), int(end[bb, k])))
                assert got == rows, (constraint, bb, k, got, rows)


@interp
def test_float32_large_values_offsets():
    # R grows to ~1e3 along the pair; relative storage keeps float32 gradients at 1e-5
    check(_cost(1, 24, 20, seed=6, scale=10.0, offset=50.0), 1.0, dtype=torch.float32, block=8, pairs=1)
    check(_cost(1, 16, 16, seed=7, scale=1.0, offset=200.0), 0.05, dtype=torch.float32, block=16, pairs=1)
    # and while the frames move from strip to strip
    check(_cost(1, 20, 16, seed=6, scale=10.0, offset=50.0), 1.0, dtype=torch.float32, block=4, strips=4)


@interp
def test_large_costs_small_gamma_finite():
    # no overflow: costs ~1e6 with gamma 1e-2
    check(_cost(2, 4, 5, seed=8, scale=1e6), 1e-2, dtype=torch.float64, block=4, pairs=2)
    check(_cost(2, 4, 5, seed=8, scale=1e6), 1e-2, dtype=torch.float32, block=4, pairs=2, tol=1e-5)


@interp
@SCHEDULES
def test_grad_value_zero_and_no_gamma_grad(sched):
    _, g = check(_cost(2, 4, 3, seed=9), 1.0, grad_value=0.0, **sched)
    assert (g == 0).all()
    check(_cost(2, 4, 3, seed=9), 1.0, grad_value=[2.0, -3.0], need_gamma=False, **sched)


@interp
@SCHEDULES
@pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning")  # the interpreter's tl.min is nanmin
def test_nan_propagates_to_its_pair_only(sched):
    cost = _cost(3, 4, 5, seed=13)
    cost[1, 2, 1] = np.nan
    xl = torch.full((3,), 4, dtype=torch.int32)
    yl = torch.full((3,), 5, dtype=torch.int32)
    lo, hi = _bounds(4, 5, xl.numpy(), yl.numpy(), spec.Constraint(None, None))
    v, r, aux = K.forward(torch.tensor(cost), 1.0, xl, yl, lo, hi, **sched)
    g, gg = K.backward(r, aux, 1.0, xl, yl, lo, hi, torch.ones(3, dtype=torch.float64), True, **sched)
    assert torch.isnan(v[1]) and torch.isfinite(v[[0, 2]]).all()
    assert torch.isfinite(g[[0, 2]]).all() and torch.isfinite(gg[[0, 2]]).all()
    ref = soft_dtw_alignment_from_cost(cost[[0, 2]], 1.0)[1]
    np.testing.assert_allclose(v[[0, 2]].numpy(), ref, rtol=1e-10)


@interp
def test_default_schedule_and_half_inputs():
    cost = _cost(3, 5, 4, seed=10)
    check(cost, 0.7, dtype=torch.float32)  # block/pairs chosen by the heuristic
    xl = torch.full((3,), 5, dtype=torch.int32)
    yl = torch.full((3,), 4, dtype=torch.int32)
    lo, hi = _bounds(5, 4, xl.numpy(), yl.numpy(), spec.Constraint(None, None))
    v16, r, _ = K.forward(torch.tensor(cost, dtype=torch.float16), 0.7, xl, yl, lo, hi)
    assert v16.dtype == torch.float32 and r.dtype == torch.float32  # computed in float32
    ref = soft_dtw_alignment_from_cost(torch.tensor(cost, dtype=torch.float16).double().numpy(), 0.7)[1]
    np.testing.assert_allclose(v16.numpy(), ref, rtol=1e-5)


@interp
def test_bad_arguments():
    cost = torch.zeros((2, 3, 3))
    xl = torch.full((2,), 3, dtype=torch.int32)
    lo, hi = _bounds(3, 3, np.array([3, 3]), np.array([3, 3]), spec.Constraint(None, None))
    with pytest.raises(ValueError, match="gamma"):
        K.forward(cost, 0.0, xl, xl, lo, hi)
    with pytest.raises(ValueError, match="lo and hi"):
        K.forward(cost, 1.0, xl, xl, lo[:, :2], hi[:, :2])
    with pytest.raises(ValueError, match="powers of 2"):
        K.forward(cost, 1.0, xl, xl, lo, hi, block=3)
    with pytest.raises(TypeError, match="floating"):
        K.forward(cost.to(torch.int64), 1.0, xl, xl, lo, hi)


# ---------------------------------------------------------------------------
# The strip schedule (few long pairs: S programs per pair, one per column strip, in a pipelined
# wavefront). The interpreter runs programs one after another in the order of their ids, so every
# wait is already satisfied there: these tests check the arithmetic, the frames, the boundary
# exchange and the waits' targets, not the concurrency.
# ---------------------------------------------------------------------------


@interp
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n,m,strips,block", [
    (9, 7, 3, 2),  # strips of 3 columns, wider than BLOCK: several chunks per strip diagonal
    (6, 8, 2, 8),  # strips of 4 columns, narrower than BLOCK
    (5, 10, 4, 4),  # strips of 3, 3, 3, 1 columns
    (1, 6, 3, 4),  # N = 1
    (7, 2, 2, 2),  # strips of one column
])
def test_strips(n, m, strips, block, dtype):
    assert K._schedule(2, n, m, 1, block, None, strips)[3] > 1
    check(_cost(2, n, m, seed=n + m), 0.5, dtype=dtype, block=block, strips=strips)


@interp
def test_strips_one_column_matrix_falls_back():
    # M = 1 has a single strip: the one-program-per-pair schedule runs
    assert K._schedule(2, 6, 1, 1, 4, None, 3)[3] == 1
    check(_cost(2, 6, 1, seed=3), 0.5, dtype=torch.float32, block=4, strips=3)


def test_schedule_chooses_strips_for_few_long_pairs():
    # (PAIRS, BLOCK, num_warps, S, W) on a 132-SM GPU
    assert K._schedule(1, 16384, 16384, 132)[1:] == (128, 2, 128, 128)
    assert K._schedule(4, 4096, 4096, 132)[3:] == (32, 128)
    assert K._schedule(32, 1024, 1024, 132)[3:] == (4, 256)
    assert K._schedule(512, 256, 256, 132)[3] == 1  # many pairs: no strips
    assert K._schedule(1, 100, 16384, 132)[3] == 1  # short rows: no strips
    assert K._schedule(1, 16384, 16384, 1)[3] == 1  # the interpreter: strips only when asked
    with pytest.raises(ValueError, match="one pair per program"):
        K._schedule(2, 8, 8, 1, None, 2, 2)
    with pytest.raises(ValueError, match="strips"):
        K._schedule(2, 8, 8, 1, None, None, 0)


def test_aux_shape_fits_every_automatic_schedule():
    # aux_shape is a function of the shapes only (torch.compile's fake tensors) yet wide enough
    # for the schedule chosen on any GPU
    for batch in (1, 2, 3, 5, 16, 60, 100, 129, 300):
        for n, m in ((1, 1), (300, 300), (256, 4000), (5000, 300), (16384, 16384), (255, 9000)):
            (b, cols), _ = K.aux_shape(batch, n, m, np.float32)
            assert b == batch and cols >= n + m - 1
            for sms in (1, 16, 46, 108, 132, 148, 264, 1000):
                _, _, _, s, w = K._schedule(batch, n, m, sms)
                assert s * batch <= max(sms, batch) and K._aux_cols(n, m, s, w) <= cols, (batch, n, m, sms)


@interp
def test_automatic_strip_schedule(monkeypatch):
    # with the thresholds lowered and an 8-SM device, the automatic choice takes the strip
    # schedule at a tiny size: aux has aux_shape's shape and the backward makes the same choice
    monkeypatch.setattr(K, "_STRIP_MIN_ROWS", 4)
    monkeypatch.setattr(K, "_STRIP_MIN_WIDTH", 2)
    monkeypatch.setattr(K, "_sm_count", lambda device: 8)
    assert K._schedule(2, 6, 8, 8)[3:] == (4, 2)
    check(_cost(2, 6, 8, seed=14), 0.4, dtype=torch.float32)
    xl = torch.full((2,), 6, dtype=torch.int32)
    yl = torch.full((2,), 8, dtype=torch.int32)
    lo, hi = _bounds(6, 8, xl.numpy(), yl.numpy(), spec.Constraint(None, None))
    _, _, aux = K.forward(torch.tensor(_cost(2, 6, 8)), 0.4, xl, yl, lo, hi)
    assert aux.shape == K.aux_shape(2, 6, 8, np.float64)[0] == (2, 4 * 2 * (6 + 2 - 1))
    with pytest.raises(ValueError, match="aux must have shape"):
        K.backward(torch.zeros((2, 6, 8)), torch.zeros((2, 13)), 0.4, xl, yl, lo, hi, torch.ones(2), False)


@interp
def test_strip_wait_not_satisfied_is_reported(monkeypatch):
    # in the interpreter a wait that is not satisfied at once (the program waited on has not
    # run) raises instead of hanging: here no strip is marked as having no predecessor
    class NoPreset(K._Sync):
        def __init__(self, batch, strips, dev, preset_slot):
            super().__init__(batch, strips, dev, preset_slot)
            self.flags.zero_()

    monkeypatch.setattr(K, "_Sync", NoPreset)
    xl = torch.full((1,), 3, dtype=torch.int32)
    lo, hi = _bounds(3, 4, np.array([3]), np.array([4]), spec.Constraint(None, None))
    with pytest.raises(RuntimeError, match="waited"):
        K.forward(torch.zeros((1, 3, 4)), 1.0, xl, xl + 1, lo, hi, block=2, strips=2)


def test_import_without_triton():
    # importing the module needs no triton; calling it then raises a clear ImportError
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import torch\n"
        "from softdtw.kernels import triton_cuda as K\n"
        "assert not K.available()\n"
        "z = torch.zeros(1, dtype=torch.int32)\n"
        "try:\n"
        "    K.forward(torch.zeros((1, 1, 1)), 1.0, z + 1, z + 1, z[None], z[None] + 1)\n"
        "except ImportError as e:\n"
        "    assert 'Triton' in str(e)\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=root, timeout=120)


_COMPILE_CODE = """
import os, sys
os.environ.pop("TRITON_INTERPRET", None)
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from softdtw.kernels import triton_cuda as K
fwd, bwd, fwd_strip, bwd_strip = K._build()
common = {"xlen_ptr": "*i32", "ylen_ptr": "*i32", "lo_ptr": "*i32", "hi_ptr": "*i32", "dstart_ptr": "*i32",
          "dend_ptr": "*i32"}
dims = {"N": "i32", "M": "i32", "K": "i32", "AUXC": "i32"}
strip = {"S": "i32", "W": "i32", "SYNC": "i32", "MAXSPIN": "i32"}

def build(fn, signature, constexprs, warps, arch):
    src = ASTSource(fn=fn, signature=signature, constexprs=constexprs)
    triton.compile(src, target=GPUTarget("cuda", arch, 32), options={"num_warps": warps, "enable_fp_fusion": True})

for arch in (80, 90):
    for dt in ("fp32", "fp64"):
        f = {"cost_ptr": "*" + dt, "r_ptr": "*" + dt, "value_ptr": "*" + dt, "delta_ptr": "*" + dt, **common,
             "order_ptr": "*i32", "par_ptr": "*" + dt, "B": "i32", **dims, "PAIRS": "constexpr", "BLOCK": "constexpr"}
        b = {"r_ptr": "*" + dt, "delta_ptr": "*" + dt, "gv_ptr": "*" + dt, "grad_ptr": "*" + dt,
             "ggam_ptr": "*" + dt, "scr_ptr": "*" + dt, **common, "order_ptr": "*i32", "par_ptr": "*" + dt,
             "B": "i32", **dims, "PAIRS": "constexpr", "BLOCK": "constexpr", "NEED_GAMMA": "constexpr"}
        for pairs, block, warps in ((4, 64, 4), (1, 1024, 16)):
            build(fwd, f, {"PAIRS": pairs, "BLOCK": block}, warps, arch)
            for need in (True, False):
                build(bwd, b, {"PAIRS": pairs, "BLOCK": block, "NEED_GAMMA": need}, warps, arch)
        fs = {"cost_ptr": "*" + dt, "r_ptr": "*" + dt, "value_ptr": "*" + dt, "aux_ptr": "*" + dt,
              "bnd_ptr": "*fp64", "flag_ptr": "*i32", "ctr_ptr": "*i32", **common, "par_ptr": "*" + dt, **dims,
              **strip, "BLOCK": "constexpr"}
        bs = {"r_ptr": "*" + dt, "aux_ptr": "*" + dt, "gv_ptr": "*" + dt, "grad_ptr": "*" + dt,
              "ggp_ptr": "*fp64", "scr_ptr": "*" + dt, "bnd_ptr": "*" + dt, "flag_ptr": "*i32", "ctr_ptr": "*i32",
              **common, "par_ptr": "*" + dt, **dims, **strip, "BLOCK": "constexpr", "NEED_GAMMA": "constexpr"}
        for block, warps in ((128, 2), (512, 8)):
            build(fwd_strip, fs, {"BLOCK": block}, warps, arch)
            for need in (True, False):
                build(bwd_strip, bs, {"BLOCK": block, "NEED_GAMMA": need}, warps, arch)
print("compiled")
"""


def test_kernels_compile_for_cuda():
    """The compiled path (not run by the interpreter) builds to cubin for sm_80 and sm_90, no GPU needed."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = root + os.pathsep + os.environ.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-W", "error", "-c", _COMPILE_CODE], env=env, cwd=root,
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0 and ("ptxas" in out.stderr and "not found" in out.stderr):
        pytest.skip("no ptxas in this triton installation")  # pragma: no cover
    assert out.returncode == 0 and "compiled" in out.stdout, out.stderr[-5000:]


if not _INTERP and not _CHILD:
    def test_interpreter_tests_in_subprocess():
        """On a machine where triton is compiled (a GPU), run the interpreter tests in a child."""
        env = dict(os.environ, TRITON_INTERPRET="1", SOFTDTW_TRITON_CHILD="1", CUDA_VISIBLE_DEVICES="")
        out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not cuda",
                              "-k", "not compile_for_cuda and not import_without_triton", __file__],
                             env=env, capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-5000:]
        assert " passed" in out.stdout and " skipped" not in out.stdout, out.stdout[-2000:]


# ---------------------------------------------------------------------------
# CUDA tests (compiled kernels; skipped with no GPU)
# ---------------------------------------------------------------------------


@cuda
@needs_gpu
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("b,n,m,block,pairs", [
    (7, 33, 20, None, None), (5, 70, 90, 16, 4), (2, 300, 257, None, None), (1, 1500, 1100, None, None),
    (64, 16, 16, None, None), (3, 1, 40, None, None), (3, 40, 1, None, None),
])
def test_cuda_against_reference(b, n, m, block, pairs, dtype):
    rng = np.random.default_rng(b + n + m)
    xl = rng.integers(max(1, n // 2), n + 1, b)
    yl = rng.integers(max(1, m // 2), m + 1, b)
    xl[0], yl[0] = n, m
    tol = 2e-5 if (dtype == torch.float32 and n * m > 10**5) else None
    check(_cost(b, n, m, seed=11), 0.5, xl=xl, yl=yl, dtype=dtype, block=block, pairs=pairs,
          device="cuda", tol=tol)


@cuda
@needs_gpu
@pytest.mark.parametrize("constraint", [spec.Constraint("sakoe_chiba", 5.0), spec.Constraint("itakura", 2.0)])
@pytest.mark.parametrize("gamma", [1e-3, 1.0, 10.0])
def test_cuda_bands(constraint, gamma):
    check(_cost(4, 200, 150, seed=12), gamma, constraint=constraint, dtype=torch.float64, device="cuda")
    check(_cost(4, 200, 150, seed=12), gamma, constraint=constraint, dtype=torch.float32, device="cuda")


@cuda
@needs_gpu
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("b,n,m,strips,block", [
    (2, 700, 900, 30, 32),  # 30 strips of 30 columns running concurrently
    (3, 400, 640, 5, 64),  # strips of 128 columns, 2 chunks per strip diagonal
    (2, 1, 300, 7, None), (2, 300, 2, 2, None),
])
def test_cuda_strips(b, n, m, strips, block, dtype):
    rng = np.random.default_rng(b + n + m)
    xl = rng.integers(max(1, n // 2), n + 1, b)
    yl = rng.integers(max(1, m // 2), m + 1, b)
    xl[0], yl[0] = n, m
    check(_cost(b, n, m, seed=15), 0.5, xl=xl, yl=yl, dtype=dtype, block=block, strips=strips, device="cuda",
          tol=2e-5 if dtype == torch.float32 else None)


@cuda
@needs_gpu
def test_cuda_strips_deterministic():
    # a race between strips (a read before the neighbour's write is visible) would show as
    # run-to-run differences; the schedules agree to rounding
    b, n, m = 2, 600, 1000
    cost = torch.tensor(_cost(b, n, m, seed=16), device="cuda")
    xl = torch.full((b,), n, dtype=torch.int32, device="cuda")
    yl = torch.full((b,), m, dtype=torch.int32, device="cuda")
    lo, hi = (t.cuda() for t in _bounds(n, m, xl.cpu().numpy(), yl.cpu().numpy(), spec.Constraint(None, None)))
    gv = torch.ones(b, dtype=torch.float64, device="cuda")
    runs = []
    for _ in range(5):
        v, r, aux = K.forward(cost, 0.3, xl, yl, lo, hi, strips=50, block=32)
        runs.append((v, r, *K.backward(r, aux, 0.3, xl, yl, lo, hi, gv, True, strips=50, block=32)))
    for run in runs[1:]:
        assert all(torch.equal(x, y) for x, y in zip(run, runs[0]))
    v1, r1, aux1 = K.forward(cost, 0.3, xl, yl, lo, hi, strips=1)
    g1, gg1 = K.backward(r1, aux1, 0.3, xl, yl, lo, hi, gv, True, strips=1)
    torch.testing.assert_close(runs[0][0], v1, rtol=1e-12, atol=0)
    torch.testing.assert_close(runs[0][2], g1, rtol=0, atol=1e-12)
    torch.testing.assert_close(runs[0][3], gg1, rtol=1e-10, atol=1e-12)
