"""The validation properties, run by the pytest suite and by ``python -m softdtw.check``.

Each property draws whole problems with Hypothesis, runs one realization, and compares it with
the NumPy reference or an oracle. Tolerances depend only on the dtype (docs/algorithm.md).
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from hypothesis import HealthCheck, assume, given, reporting, settings
from hypothesis import strategies as st

from . import oracles
from .realizations import Realization
from .strategies import SMALL_LENGTHS, cost_matrices, gammas, problems

# value: |v - v_ref| <= tol * max(1, |v_ref|);  gradient: max |g - g_ref| <= tol * max |g_ref|
VALUE_TOL = {"float64": 1e-10, "float32": 1e-5}
GRAD_TOL = {"float64": 1e-10, "float32": 1e-4}
# float32 cannot resolve a softmin whose gamma is far below the rounding of R: the properties
# draw float32 problems with gamma >= 1e-3 times the mean cost (float64: any gamma in range).
FLOAT32_MIN_RELATIVE_GAMMA = 1e-3

BANDS = [{}, {"sakoe_chiba_radius": 0}, {"sakoe_chiba_radius": 2}, {"itakura_max_slope": 2.0}]


class Mismatch(AssertionError):
    pass


@dataclass
class Stats:
    cases: int = 0
    value_err: float = 0.0  # largest error relative to the tolerance's scale
    grad_err: float = 0.0

    def value(self, got, ref, dtype, what="value"):
        got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
        if not np.array_equal(np.isnan(got), np.isnan(ref)):
            raise Mismatch(f"{what}: NaN pattern differs: got {got}, reference {ref}")
        err = float(np.nanmax(np.abs(got - ref) / np.maximum(1.0, np.abs(ref)), initial=0.0))
        self.value_err = max(self.value_err, err)
        if not err <= VALUE_TOL[dtype]:
            raise Mismatch(f"{what}: relative error {err:.3g} > {VALUE_TOL[dtype]:g}: got {got}, reference {ref}")

    def grad(self, got, ref, dtype, what="gradient"):
        got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
        scale = max(float(np.abs(ref).max(initial=0.0)), 1e-300)
        err = float(np.abs(got - ref).max(initial=0.0)) / scale
        self.grad_err = max(self.grad_err, err)
        if not err <= GRAD_TOL[dtype]:
            raise Mismatch(f"{what}: error {err:.3g} of the largest entry > {GRAD_TOL[dtype]:g}")


def _round(a, dtype):
    return np.asarray(a, dtype=dtype).astype(np.float64)


def _conditioned(x, y, gamma, dtype):
    if dtype == "float32":
        mean_cost = float(np.mean((x.mean(1)[:, None] - y.mean(1)[:, None]) ** 2) + x.var() + y.var())
        assume(gamma >= FLOAT32_MIN_RELATIVE_GAMMA * max(mean_cost, 1e-30))


def l1_cost(a, b):
    """L1 cost, written for NumPy, torch and JAX arrays alike."""
    return abs(a[:, :, None, :] - b[:, None, :, :]).sum(-1)


def cosine_cost(a, b):
    """Cosine dissimilarity 1 - <a_i, b_j> / (|a_i| |b_j|), for NumPy, torch and JAX arrays alike."""
    an = a / ((a * a).sum(-1) ** 0.5)[..., None]
    bn = b / ((b * b).sum(-1) ** 0.5)[..., None]
    return 1 - (an[:, :, None, :] * bn[:, None, :, :]).sum(-1)


DIST_FUNCS = {"l1": l1_cost, "cosine": cosine_cost}


def _weights(b):
    return np.linspace(0.5, 2.0, b)


# --------------------------------------------------------------------------- properties


def agreement(real: Realization, dtype: str, stats: Stats):
    @given(problems(), st.booleans(), st.sampled_from(range(len(BANDS))))
    def prop(problem, normalize, band):
        x, y, gamma = problem
        _conditioned(x, y, gamma, dtype)
        x, y = _round(x, dtype), _round(y, dtype)
        kw = BANDS[band]
        import softdtw.numpy as ref

        try:
            v_ref, gx_ref, gy_ref = ref.soft_dtw_value_and_grad(x, y, gamma, normalize=normalize, **kw)
        except ValueError:
            assume(False)  # infeasible band for these lengths
        w = _weights(x.shape[0])
        v, gx, gy = real.pair(x, y, gamma, dtype, w, normalize=normalize, **kw)
        stats.value(v, v_ref, dtype)
        stats.grad(gx, gx_ref * w[:, None, None], dtype, "gradient w.r.t. x")
        stats.grad(gy, gy_ref * w[:, None, None], dtype, "gradient w.r.t. y")
        stats.cases += 1

    return prop


def cost_gradient(real: Realization, dtype: str, stats: Stats):
    @given(cost_matrices(lengths=(1, 2, 3, 5, 8)), st.sampled_from(range(len(BANDS))))
    def prop(problem, band):
        cost, gamma = problem
        if dtype == "float32":
            assume(gamma >= FLOAT32_MIN_RELATIVE_GAMMA * max(cost.mean(), 1e-30))
        cost = _round(cost, dtype)
        import softdtw.numpy as ref

        try:
            e_ref, v_ref = ref.soft_dtw_alignment_from_cost(cost, gamma, **BANDS[band])
        except ValueError:
            assume(False)
        w = _weights(cost.shape[0])
        v, gc = real.cost(cost, gamma, dtype, w, **BANDS[band])
        stats.value(v, v_ref, dtype)
        stats.grad(gc, e_ref * w[:, None, None], dtype, "gradient w.r.t. the cost")
        stats.cases += 1

    return prop


def brute_force(real: Realization, dtype: str, stats: Stats):
    @given(cost_matrices(lengths=SMALL_LENGTHS, gamma=gammas(1e-2, 1e2)))
    def prop(problem):
        cost, gamma = problem
        cost = _round(cost, dtype)
        w = np.ones(cost.shape[0])
        v, gc = real.cost(cost, gamma, dtype, w)
        for b in range(cost.shape[0]):
            v_bf, a_bf = oracles.brute_force(cost[b], gamma)
            stats.value(v[b], v_bf, dtype, "value vs brute force")
            stats.grad(gc[b], a_bf, dtype, "alignment vs brute force")
        stats.cases += 1

    return prop


def divergence(real: Realization, dtype: str, stats: Stats):
    @given(problems(lengths=(1, 2, 3, 5, 8)))
    def prop(problem):
        x, y, gamma = problem
        _conditioned(x, y, gamma, dtype)
        x, y = _round(x, dtype), _round(y, dtype)
        w = np.ones(x.shape[0])
        scale = max(1.0, float(np.abs(x).max()) ** 2)
        v, _, _ = real.pair(x, y, gamma, dtype, w, normalize=True)
        if not np.all(v >= -VALUE_TOL[dtype] * scale * x.shape[1] * y.shape[1]):
            raise Mismatch(f"divergence is negative: {v}")
        v0, g0, _ = real.pair(x, x.copy(), gamma, dtype, w, normalize=True)
        if not np.all(v0 == 0):
            raise Mismatch(f"divergence at x == y is not exactly 0: {v0}")
        if not np.abs(g0).max() <= GRAD_TOL[dtype] * scale:
            raise Mismatch(f"gradient of the divergence at x == y is not 0: max {np.abs(g0).max():.3g}")
        stats.cases += 1

    return prop


def symmetry(real: Realization, dtype: str, stats: Stats):
    @given(problems())
    def prop(problem):
        x, y, gamma = problem
        _conditioned(x, y, gamma, dtype)
        x, y = _round(x, dtype), _round(y, dtype)
        w = np.ones(x.shape[0])
        a, _, _ = real.pair(x, y, gamma, dtype, w)
        b, _, _ = real.pair(y, x, gamma, dtype, w)
        stats.value(a, b, dtype, "sdtw(x, y) vs sdtw(y, x)")
        stats.cases += 1

    return prop


def hard_dtw_limit(real: Realization, dtype: str, stats: Stats):
    @given(cost_matrices(lengths=(1, 2, 3, 5, 8), gamma=st.just(1.0)))
    def prop(problem):
        cost, _ = problem
        cost = _round(cost, dtype)
        gamma = 1e-3 * max(float(cost.mean()), 1e-6)
        v, _ = real.cost(cost, gamma, dtype, np.ones(cost.shape[0]))
        n, m = cost.shape[1:]
        for b in range(cost.shape[0]):
            hard = oracles.hard_dtw(cost[b])
            slack = VALUE_TOL[dtype] * max(1.0, abs(hard))
            low = hard - gamma * math.log(oracles.delannoy(n - 1, m - 1))
            if not low - slack <= v[b] <= hard + slack:
                raise Mismatch(f"gamma -> 0: value {v[b]} outside [{low}, {hard}] (hard DTW {hard})")
        stats.cases += 1

    return prop


def batch_consistency(real: Realization, dtype: str, stats: Stats):
    @given(problems(batches=(2, 3)))
    def prop(problem):
        x, y, gamma = problem
        _conditioned(x, y, gamma, dtype)
        x, y = _round(x, dtype), _round(y, dtype)
        w = _weights(x.shape[0])
        v, gx, gy = real.pair(x, y, gamma, dtype, w)
        for b in range(x.shape[0]):
            v1, gx1, gy1 = real.pair(x[b:b + 1], y[b:b + 1], gamma, dtype, w[b:b + 1])
            stats.value(v[b], v1[0], dtype, "batched vs one pair")
            stats.grad(gx[b], gx1[0], dtype, "batched vs one pair, gradient w.r.t. x")
            stats.grad(gy[b], gy1[0], dtype, "batched vs one pair, gradient w.r.t. y")
        stats.cases += 1

    return prop


def finite(real: Realization, dtype: str, stats: Stats):
    @given(problems(gamma=gammas(1e-3, 1e2), scale_range=(1e-3, 1e3)), st.booleans())
    def prop(problem, normalize):
        x, y, gamma = problem
        x, y = _round(x, dtype), _round(y, dtype)
        v, gx, gy = real.pair(x, y, gamma, dtype, np.ones(x.shape[0]), normalize=normalize)
        for name, a in (("value", v), ("gradient w.r.t. x", gx), ("gradient w.r.t. y", gy)):
            if not np.all(np.isfinite(a)):
                raise Mismatch(f"{name} is not finite for finite inputs: {a}")
        stats.cases += 1

    return prop


def lengths(real: Realization, dtype: str, stats: Stats):
    @given(problems(lengths=(2, 3, 5, 8)), st.booleans(), st.integers(0, 2**32 - 1),
           st.sampled_from([{}, {"sakoe_chiba_radius": 1}]))
    def prop(problem, normalize, seed, band):
        x, y, gamma = problem
        _conditioned(x, y, gamma, dtype)
        x, y = _round(x, dtype), _round(y, dtype)
        b = x.shape[0]
        rng = np.random.default_rng(seed)
        xl = rng.integers(1, x.shape[1] + 1, size=b)
        yl = rng.integers(1, y.shape[1] + 1, size=b)
        w = _weights(b)
        v, gx, gy = real.pair(x, y, gamma, dtype, w, normalize=normalize, x_lengths=xl, y_lengths=yl, **band)
        for k in range(b):
            v1, gx1, gy1 = real.pair(x[k:k + 1, :xl[k]], y[k:k + 1, :yl[k]], gamma, dtype, w[k:k + 1],
                                     normalize=normalize, **band)
            stats.value(v[k], v1[0], dtype, "padded vs unpadded")
            stats.grad(gx[k, :xl[k]], gx1[0], dtype, "padded vs unpadded, gradient w.r.t. x")
            stats.grad(gy[k, :yl[k]], gy1[0], dtype, "padded vs unpadded, gradient w.r.t. y")
            if np.any(gx[k, xl[k]:] != 0) or np.any(gy[k, yl[k]:] != 0):
                raise Mismatch("padded positions got a non-zero gradient")
        stats.cases += 1

    return prop


def dist_func(real: Realization, dtype: str, stats: Stats):
    """Custom costs (L1, cosine) differentiated by the framework: values against the reference;
    float64 gradients against central differences of the reference (1e-6 of the largest entry or
    of 1e-4 if that is smaller: the accuracy of the differences)."""

    @given(problems(lengths=(1, 2, 3, 5), scale_range=(1e-1, 1e1), gamma=gammas(1e-1, 1e1)),
           st.sampled_from(sorted(DIST_FUNCS)), st.booleans())
    def prop(problem, cost_name, normalize):
        x, y, gamma = problem
        x, y = _round(x, dtype), _round(y, dtype)
        cost = DIST_FUNCS[cost_name]
        import softdtw.numpy as ref

        w = _weights(x.shape[0])
        v, gx, gy = real.pair(x, y, gamma, dtype, w, normalize=normalize, dist_func=cost)
        stats.value(v, ref.soft_dtw(x, y, gamma, normalize=normalize, dist_func=cost), dtype, f"{cost_name} value")
        if dtype == "float64":
            for a, g, i in ((x, gx, 0), (y, gy, 1)):
                def f(arr, i=i):
                    args = (arr, y) if i == 0 else (x, arr)
                    return (ref.soft_dtw(*args, gamma, normalize=normalize, dist_func=cost) * w).sum()

                fd = oracles.central_difference(f, a)
                err = float(np.abs(g - fd).max()) / max(float(np.abs(fd).max()), 1e-4)
                if not err <= 1e-6:
                    raise Mismatch(f"{cost_name} gradient vs central differences: error {err:.3g} > 1e-6")
        stats.cases += 1

    return prop


# features that reach every route: D <= 2 (exact cost), 3..8 (torch's fused kernel in float32),
# 9 (the centred matmul), 33 and 40 (JAX's matmul form)
ROUTE_FEATURES = (1, 2, 3, 8, 9, 33, 40)
PADDING = (0.0, 1e30, -1e30, math.nan, math.inf)


def padding(real: Realization, dtype: str, stats: Stats):
    """Padding never matters: whatever the padding holds (0, +-1e30, NaN, inf), the values and
    the gradients at the used positions are the unpadded pair's, and exactly 0 at padding."""

    @given(problems(lengths=(2, 3, 5), features=ROUTE_FEATURES, batches=(2,)), st.sampled_from(PADDING),
           st.booleans(), st.integers(0, 2**32 - 1))
    def prop(problem, pad, normalize, seed):
        x, y, gamma = problem
        _conditioned(x, y, gamma, dtype)
        x, y = _round(x, dtype), _round(y, dtype)
        rng = np.random.default_rng(seed)
        xl = rng.integers(1, x.shape[1] + 1, size=2)
        yl = rng.integers(1, y.shape[1] + 1, size=2)
        xp, yp = x.copy(), y.copy()
        for b in range(2):
            xp[b, xl[b]:] = pad
            yp[b, yl[b]:] = pad
        w = _weights(2)
        v, gx, gy = real.pair(xp, yp, gamma, dtype, w, normalize=normalize, x_lengths=xl, y_lengths=yl)
        for k in range(2):
            v1, gx1, gy1 = real.pair(x[k:k + 1, :xl[k]], y[k:k + 1, :yl[k]], gamma, dtype, w[k:k + 1],
                                     normalize=normalize)
            stats.value(v[k], v1[0], dtype, f"padded with {pad} vs unpadded")
            stats.grad(gx[k, :xl[k]], gx1[0], dtype, f"padded with {pad} vs unpadded, gradient w.r.t. x")
            stats.grad(gy[k, :yl[k]], gy1[0], dtype, f"padded with {pad} vs unpadded, gradient w.r.t. y")
            if np.any(gx[k, xl[k]:] != 0) or np.any(gy[k, yl[k]:] != 0):
                raise Mismatch(f"padding {pad}: padded positions got a non-zero gradient")
        stats.cases += 1

    return prop


def offset(real: Realization, dtype: str, stats: Stats):
    """Series far from 0 (around 1e3, 1e4), up to 64 features: the values of the same numbers in
    float64 (the reference) to the dtype's tolerance (the cost must not cancel)."""

    @given(problems(lengths=(2, 5, 8), features=(1, 3, 9, 33, 64), scale_range=(0.5, 2.0), gamma=gammas(1e-1, 1e1)),
           st.sampled_from((1e3, 1e4)))
    def prop(problem, shift):
        x, y, gamma = problem
        x, y = _round(x + shift, dtype), _round(y + shift, dtype)
        import softdtw.numpy as ref

        w = np.ones(x.shape[0])
        v, _, _ = real.pair(x, y, gamma, dtype, w)
        stats.value(v, ref.soft_dtw(x, y, gamma), dtype, f"series around {shift:g}")
        stats.cases += 1

    return prop


def extreme_gamma(real: Realization, dtype: str, stats: Stats):
    """Any gamma > 0, down to the subnormals and up to 1e300: finite values and gradients, or a
    ValueError that names gamma; never a silent inf or NaN."""

    @given(problems(lengths=(1, 3, 8), gamma=st.just(1.0)), st.floats(-323.5, 300.0))
    def prop(problem, log_gamma):
        x, y, _ = problem
        gamma = float(10.0**log_gamma)
        assume(gamma > 0)
        x, y = _round(x, dtype), _round(y, dtype)
        try:
            v, gx, gy = real.pair(x, y, gamma, dtype, np.ones(x.shape[0]))
        except ValueError as e:
            if "gamma" not in str(e):
                raise Mismatch(f"gamma={gamma!r}: a ValueError that does not name gamma: {e}") from e
            stats.cases += 1
            return
        for name, a in (("value", v), ("gradient w.r.t. x", gx), ("gradient w.r.t. y", gy)):
            if not np.all(np.isfinite(a)):
                raise Mismatch(f"gamma={gamma!r}: {name} is not finite and no ValueError was raised: {a}")
        stats.cases += 1

    return prop


def threads(real: Realization, dtype: str, stats: Stats):
    """Four threads calling at once get the bits of one call alone."""
    import threading

    @given(problems(lengths=(5, 13), batches=(3,), features=(2, 9)))
    def prop(problem):
        x, y, gamma = problem
        _conditioned(x, y, gamma, dtype)
        x, y = _round(x, dtype), _round(y, dtype)
        w = _weights(3)
        want = real.pair(x, y, gamma, dtype, w)
        got, errors = [None] * 4, []

        def work(k):
            try:
                got[k] = real.pair(x, y, gamma, dtype, w)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        pool = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        if errors:
            raise Mismatch(f"a call from one of 4 threads raised {errors[0]!r}")
        for out in got:
            if not all(np.array_equal(a, b, equal_nan=True) for a, b in zip(out, want)):
                raise Mismatch("4 threads at once gave other bits than one call")
        stats.cases += 1

    return prop


def fork(real: Realization, dtype: str, stats: Stats):
    """A child forked after a call (the kernels' threads started) finishes its own call.
    (JAX does not support fork: its realization is not checked for it.)"""
    import os
    import signal

    @given(problems(lengths=(13,), batches=(3,)))
    def prop(problem):
        x, y, gamma = problem
        x, y = np.repeat(_round(x, dtype), 30, axis=0), np.repeat(_round(y, dtype), 30, axis=0)
        w = np.ones(x.shape[0])
        want = real.pair(x, y, gamma, dtype, w, x_lengths=np.full(x.shape[0], x.shape[1]))
        with warnings.catch_warnings():  # (JAX, once imported, warns at every fork of the process)
            warnings.simplefilter("ignore", RuntimeWarning)
            pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            signal.alarm(60)
            try:
                if real.name.startswith("torch"):
                    # as DataLoader workers do: torch's own OpenMP pool hangs a forked child
                    # whose parent used it (plain torch ops too); the kernels follow this count
                    import torch

                    torch.set_num_threads(1)
                got = real.pair(x, y, gamma, dtype, w, x_lengths=np.full(x.shape[0], x.shape[1]))
                os._exit(0 if all(np.array_equal(a, b, equal_nan=True) for a, b in zip(got, want)) else 3)
            except BaseException:  # noqa: BLE001
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            raise Mismatch(f"a forked child's call did not finish cleanly (wait status {status}: 14 = hung, "
                           f"killed by its alarm)")
        stats.cases += 1

    return prop


PROPERTIES: dict[str, Callable] = {
    "agreement": agreement,
    "cost_gradient": cost_gradient,
    "brute_force": brute_force,
    "divergence": divergence,
    "symmetry": symmetry,
    "hard_dtw_limit": hard_dtw_limit,
    "batch_consistency": batch_consistency,
    "finite": finite,
    "lengths": lengths,
    "dist_func": dist_func,
    "padding": padding,
    "offset": offset,
    "extreme_gamma": extreme_gamma,
    "threads": threads,
    "fork": fork,
}


def applies(name: str, real: Realization) -> bool:
    """Whether property ``name`` concerns ``real``: forks and threads concern the routes a user
    runs on a CPU, not the Triton interpreter (a test tool, not thread-safe), and JAX does not
    support ``os.fork`` (its runtime is multithreaded)."""
    import os

    interpreted = real.name == "torch-triton" and real.device == "cpu"
    if name == "threads":
        return not interpreted
    if name == "fork":
        return hasattr(os, "fork") and not interpreted and real.name != "jax"
    return True


@dataclass
class Result:
    realization: str
    dtype: str
    stats: Stats = field(default_factory=Stats)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (property, report)


def run(real: Realization, dtype: str, names=None, max_examples: int | None = None,
        derandomize: bool = False) -> Result:
    """Run the properties for one realization and dtype; failures carry the shrunk example."""
    result = Result(real.label, dtype)
    kw = dict(deadline=None, suppress_health_check=list(HealthCheck), derandomize=derandomize,
              database=None, print_blob=True)
    if max_examples is not None:
        kw["max_examples"] = max_examples
    for name in names or PROPERTIES:
        if not applies(name, real):
            continue
        prop = PROPERTIES[name](real, dtype, result.stats)
        test = settings(**kw)(prop)
        out = io.StringIO()
        with reporting.with_reporter(lambda msg: out.write(str(msg) + "\n")):
            try:
                test()
            except Exception as e:  # noqa: BLE001 - a realization may fail in any way: report it
                notes = "\n".join(getattr(e, "__notes__", []))  # Hypothesis puts the shrunk example here
                result.failures.append((name, f"{type(e).__name__}: {e}\n{notes}\n{out.getvalue()}"))
    return result
