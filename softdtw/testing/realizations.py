"""Every realization of soft-DTW behind one small interface, for the validation properties.

A realization computes, for float64 NumPy inputs cast to its dtype, the values and the
gradients of ``sum_b w_b value_b`` w.r.t. ``x`` and ``y`` (pair form) or the cost (cost form),
returned as float64 NumPy arrays. The properties (``softdtw.testing.properties``) compare them
with the NumPy reference. Every call also checks that its inputs are unchanged after the forward
and the backward (JAX arrays are immutable).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Realization:
    name: str
    device: str
    pair: Callable  # (x, y, gamma, dtype, w, **kw) -> (value, grad_x, grad_y)
    cost: Callable  # (cost, gamma, dtype, w, **kw) -> (value, grad_cost)
    dtypes: tuple[str, ...] = ("float32", "float64")

    @property
    def label(self) -> str:
        return f"{self.name}:{self.device}"


# --------------------------------------------------------------------------- NumPy


def _numpy_pair(x, y, gamma, dtype, w, dist_func=None, **kw):
    import softdtw.numpy as ref

    x0, y0 = x.copy(), y.copy()
    out = _numpy_pair_values(ref, x, y, gamma, w, dist_func, **kw)
    if not (np.array_equal(x, x0) and np.array_equal(y, y0)):
        raise AssertionError("the NumPy reference modified its inputs")
    return out


def _numpy_pair_values(ref, x, y, gamma, w, dist_func, **kw):
    if dist_func is not None:  # the reference differentiates custom costs by central differences
        from .oracles import central_difference

        ww = np.asarray(w)
        v = ref.soft_dtw(x, y, gamma, dist_func=dist_func, **kw)
        gx = central_difference(lambda a: (ref.soft_dtw(a, y, gamma, dist_func=dist_func, **kw) * ww).sum(), x)
        gy = central_difference(lambda a: (ref.soft_dtw(x, a, gamma, dist_func=dist_func, **kw) * ww).sum(), y)
        return v, gx, gy
    v, gx, gy = ref.soft_dtw_value_and_grad(x, y, gamma, **kw)
    w = np.asarray(w)[..., None, None] if np.ndim(v) else w
    return v, gx * w, gy * w


def _numpy_cost(cost, gamma, dtype, w, **kw):
    import softdtw.numpy as ref

    e, v = ref.soft_dtw_alignment_from_cost(cost, gamma, **kw)
    return v, e * (np.asarray(w)[..., None, None] if np.ndim(v) else w)


# --------------------------------------------------------------------------- torch


_FORCED = threading.Lock()
_FORCED_USERS: list = []  # the calls inside _forced_kernel now, and the value it replaced


@contextlib.contextmanager
def _forced_kernel(kernel: str | None):
    """``SOFTDTW_KERNEL=kernel`` for the duration of a call. Several threads may be inside at
    once (the threads property): the variable is set by the first and restored by the last, so
    that no thread's call runs on another kernel halfway (all of them force the same one)."""
    with _FORCED:
        if not _FORCED_USERS:
            _FORCED_USERS.append(os.environ.get("SOFTDTW_KERNEL"))
            if kernel:
                os.environ["SOFTDTW_KERNEL"] = kernel
            else:
                os.environ.pop("SOFTDTW_KERNEL", None)
        elif os.environ.get("SOFTDTW_KERNEL") != (kernel or None):
            raise RuntimeError("two realizations forced different kernels at once")
        _FORCED_USERS.append(kernel)
    try:
        yield
    finally:
        with _FORCED:
            _FORCED_USERS.pop()
            if len(_FORCED_USERS) == 1:
                old = _FORCED_USERS.pop()
                if old is None:
                    os.environ.pop("SOFTDTW_KERNEL", None)
                else:
                    os.environ["SOFTDTW_KERNEL"] = old


def _unchanged(name, tensor, original):
    """Inputs must be unchanged after forward and backward."""
    import torch

    if not torch.equal(tensor.detach().cpu(), original):
        raise AssertionError(f"{name} was modified by the forward or backward")


def _torch_pair(kernel, device):
    def run(x, y, gamma, dtype, w, normalize=False, dist_func=None, **kw):
        import torch

        from softdtw.torch import soft_dtw

        td = getattr(torch, dtype)
        xt = torch.tensor(x, dtype=td, device=device, requires_grad=True)
        yt = torch.tensor(y, dtype=td, device=device, requires_grad=True)
        lengths = {k: (None if v is None else torch.as_tensor(v)) for k, v in kw.items() if k.endswith("_lengths")}
        band = {k: v for k, v in kw.items() if not k.endswith("_lengths")}
        x0, y0 = xt.detach().cpu().clone(), yt.detach().cpu().clone()
        with _forced_kernel(kernel):
            v = soft_dtw(xt, yt, gamma, normalize=normalize, dist_func=dist_func, **band, **lengths)
            (v * torch.as_tensor(w, dtype=td, device=device)).sum().backward()
        _unchanged("x", xt, x0)
        _unchanged("y", yt, y0)
        return (v.detach().double().cpu().numpy(), xt.grad.double().cpu().numpy(), yt.grad.double().cpu().numpy())

    return run


def _torch_cost(kernel, device):
    def run(cost, gamma, dtype, w, **kw):
        import torch

        from softdtw.torch import soft_dtw_from_cost

        td = getattr(torch, dtype)
        ct = torch.tensor(cost, dtype=td, device=device, requires_grad=True)
        kw = {k: (torch.as_tensor(v) if k.endswith("_lengths") and v is not None else v) for k, v in kw.items()}
        c0 = ct.detach().cpu().clone()
        with _forced_kernel(kernel):
            v = soft_dtw_from_cost(ct, gamma, **kw)
            (v * torch.as_tensor(w, dtype=td, device=device)).sum().backward()
        _unchanged("cost", ct, c0)
        return v.detach().double().cpu().numpy(), ct.grad.double().cpu().numpy()

    return run


# --------------------------------------------------------------------------- JAX


@contextlib.contextmanager
def _x64(dtype):
    import jax

    with jax.enable_x64(dtype == "float64"):
        yield


def _jax_pair(x, y, gamma, dtype, w, normalize=False, dist_func=None, **kw):
    import jax
    import jax.numpy as jnp

    from softdtw.jax import soft_dtw

    with _x64(dtype):
        xj, yj = jnp.asarray(x, dtype=dtype), jnp.asarray(y, dtype=dtype)
        wj = jnp.asarray(w, dtype=dtype)

        def f(a, b):
            v = soft_dtw(a, b, gamma, normalize=normalize, dist_func=dist_func, **kw)
            return (v * wj).sum(), v

        (_, v), (gx, gy) = jax.value_and_grad(f, argnums=(0, 1), has_aux=True)(xj, yj)
        return tuple(np.asarray(a, dtype=np.float64) for a in (v, gx, gy))


def _jax_cost(cost, gamma, dtype, w, **kw):
    import jax
    import jax.numpy as jnp

    from softdtw.jax import soft_dtw_from_cost

    with _x64(dtype):
        cj = jnp.asarray(cost, dtype=dtype)
        wj = jnp.asarray(w, dtype=dtype)

        def f(c):
            v = soft_dtw_from_cost(c, gamma, **kw)
            return (v * wj).sum(), v

        (_, v), gc = jax.value_and_grad(f, has_aux=True)(cj)
        return np.asarray(v, dtype=np.float64), np.asarray(gc, dtype=np.float64)


# --------------------------------------------------------------------------- registry


def _has(mod: str) -> bool:
    return importlib.util.find_spec(mod) is not None


def all_realizations(device: str = "cpu") -> dict[str, Realization | str]:
    """Every realization for ``device``: a Realization, or a string saying why it is unavailable."""
    out: dict[str, Realization | str] = {}
    if device == "cpu":
        out["numpy"] = Realization("numpy", "cpu", _numpy_pair, _numpy_cost, ("float64",))
    if _has("torch"):
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            out["torch"] = "no CUDA device"
        else:
            if device == "cpu":
                out["torch-cpu"] = Realization("torch-cpu", device, _torch_pair("cpu", device),
                                               _torch_cost("cpu", device))
            out["torch-pure"] = Realization("torch-pure", device, _torch_pair("pure", device),
                                            _torch_cost("pure", device))
            if _has("triton"):
                if device == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
                    out["torch-triton"] = "Triton on CPU needs TRITON_INTERPRET=1 before triton is imported"
                else:
                    out["torch-triton"] = Realization("torch-triton", device, _torch_pair("triton", device),
                                                      _torch_cost("triton", device))
            else:
                out["torch-triton"] = "triton is not installed"
    else:
        out["torch"] = "torch is not installed (pip install softdtw[torch])"
    if _has("jax"):
        if device == "cpu":
            out["jax"] = Realization("jax", "cpu", _jax_pair, _jax_cost)
        else:
            out["jax"] = "the JAX realization is checked on its default (CPU) device here"
    else:
        out["jax"] = "jax is not installed (pip install softdtw[jax])"
    return out
