"""torch.library custom ops: ``softdtw::forward`` and ``softdtw::backward``.

They wrap the kernels of ``softdtw.kernels`` (the compiled core on CPU, Triton on CUDA, the
pure-torch path elsewhere), so autograd, ``torch.compile(fullgraph=True)`` and every device see one op.
The per-row band bounds are computed inside the forward op (opaque to the compiler) and
returned, so the backward reuses them.
"""

from __future__ import annotations

import functools
import importlib
import os

import numpy as np
import torch

from .. import spec
from . import _pure

BAND_KINDS = (None, "sakoe_chiba", "itakura")


KERNEL_MODULES = {
    "pure": "softdtw.torch._pure",
    "cpu": "softdtw.kernels.cpu",
    "numba": "softdtw.kernels.numba_cpu",  # the benchmark's baseline until the core replaces it
    "triton": "softdtw.kernels.triton_cuda",
}
DEFAULT_KERNEL = {"cpu": "cpu", "cuda": "triton"}


def _kernel_module(device_type: str):
    """:func:`_resolve_kernel`, remembered per device type and ``SOFTDTW_KERNEL`` value (each loss
    call asks; resolving imports)."""
    key = (device_type, os.environ.get("SOFTDTW_KERNEL"))
    module = _KERNELS.get(key)
    if module is None:
        module = _KERNELS[key] = _resolve_kernel(device_type)
    return module


_KERNELS: dict = {}


def _resolve_kernel(device_type: str):
    """The kernel for a device: the compiled core on CPU, Triton on CUDA, the pure-torch path
    otherwise.

    The environment variable ``SOFTDTW_KERNEL`` (``pure``, ``cpu``, ``numba`` or ``triton``) forces one
    kernel on every device; the validation suite and ``python -m softdtw.check`` use it (Triton
    on CPU tensors needs ``TRITON_INTERPRET=1`` set before triton is imported).
    """
    forced = os.environ.get("SOFTDTW_KERNEL")
    if forced:
        if forced not in KERNEL_MODULES:
            raise ValueError(f"SOFTDTW_KERNEL must be one of {sorted(KERNEL_MODULES)}, got {forced!r}")
        try:
            return importlib.import_module(KERNEL_MODULES[forced])
        except ImportError as e:
            raise ImportError(f"SOFTDTW_KERNEL={forced} needs a package softdtw does not require ({e.name}): "
                              f"install it (numba: the core's predecessor, the benchmark's baseline) "
                              f"or unset SOFTDTW_KERNEL") from e
    name = DEFAULT_KERNEL.get(device_type)
    if name is None:
        return _pure
    try:
        module = importlib.import_module(KERNEL_MODULES[name])
    except ImportError:
        return _pure
    available = getattr(module, "available", None)  # triton may be missing (e.g. Windows)
    return module if available is None or available() else _pure


def _state_spec(module, batch: int, n: int, m: int, dtype: torch.dtype):
    """``(r_shape, aux_shape, aux_dtype)`` of a kernel's backward state, for the fake
    implementation: ``r`` is ``(B, N, M)``, except for the compiled core (``state_shapes``),
    whose state has the sizes of its plan, not expressions in (B, N, M) that dynamic shapes could
    trace: sizes of their own (``r`` keeps ``M`` as its last dimension for the backward)."""
    if hasattr(module, "state_shapes"):
        ctx = torch.library.get_ctx()
        return (ctx.new_dynamic_size(), m), (ctx.new_dynamic_size(),), dtype
    fn = getattr(module, "aux_shape", None)
    if fn is None:
        return (batch, n, m), (batch, 0), dtype
    shape, aux_dtype = fn(batch, n, m, np.dtype(str(dtype)[6:]))
    return (batch, n, m), tuple(shape), getattr(torch, np.dtype(aux_dtype).name)


def _numpy_kernel(module) -> bool:
    """The CPU kernels (the core, numba) take and return NumPy arrays (zero-copy views of CPU
    tensors)."""
    return module.__name__ in ("softdtw.kernels.cpu", "softdtw.kernels.numba_cpu")


def _to_numpy(a):
    return a.detach().numpy() if isinstance(a, torch.Tensor) else a


def _to_torch(a):
    return torch.from_numpy(a) if isinstance(a, np.ndarray) else a


def _call(module, fn_name, *args):
    fn = getattr(module, fn_name)
    if _numpy_kernel(module):  # on torch's thread count (torch.set_num_threads)
        out = fn(*(_to_numpy(a) for a in args), threads=torch.get_num_threads())
        return tuple(_to_torch(o) for o in out)
    return fn(*args)


@functools.lru_cache(maxsize=64)
def _full_bounds(batch: int, n: int, m: int, band_kind: int, band_param: float):
    constraint = spec.Constraint(BAND_KINDS[band_kind], band_param if band_kind else None)
    lo, hi = spec.band_bounds(n, m, np.full(batch, n), np.full(batch, m), constraint)
    lo.flags.writeable = False
    hi.flags.writeable = False
    return lo, hi


@functools.lru_cache(maxsize=64)
def _full_bounds_numba(batch: int, n: int, m: int, band_kind: int, band_param: float):
    """:func:`_full_bounds` as writable arrays, for the numba kernel's fused path, which only
    reads them: a read-only array would be another numba signature (compiled in the process:
    slower code, see ``numba_cpu._warm_cache``), so the kernel copied the cached read-only
    bounds on every forward and backward (~10 us each at (512, 32), more right after a kernel)."""
    lo, hi = _full_bounds(batch, n, m, band_kind, band_param)
    return lo.copy(), hi.copy()


def _bounds(batch, n, m, x_len, y_len, band_kind, band_param):
    if x_len is None and y_len is None:
        return _full_bounds(batch, n, m, band_kind, band_param)
    xl = spec.check_lengths(None if x_len is None else x_len.cpu().numpy(), batch, n, "x_lengths")
    yl = spec.check_lengths(None if y_len is None else y_len.cpu().numpy(), batch, m, "y_lengths")
    constraint = spec.Constraint(BAND_KINDS[band_kind], band_param if band_kind else None)
    return spec.band_bounds(n, m, xl, yl, constraint)


def _lengths(t, batch, size, device):
    if t is None:
        return torch.full((batch,), size, dtype=torch.int32, device=device)
    return t.to(device=device, dtype=torch.int32, copy=True)  # an op output may not alias an input


@torch.library.custom_op("softdtw::forward", mutates_args=())
def sdtw_forward(cost: torch.Tensor, gamma: float, x_len: torch.Tensor | None, y_len: torch.Tensor | None,
                 band_kind: int, band_param: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                             torch.Tensor, torch.Tensor, torch.Tensor,
                                                             torch.Tensor]:
    """Value and backward state of a ``(B, N, M)`` cost; returns
    ``(value, r, aux, x_len, y_len, lo, hi)`` (the last four int32)."""
    batch, n, m = cost.shape
    lo_np, hi_np = _bounds(batch, n, m, x_len, y_len, band_kind, band_param)
    dev = cost.device
    lo = torch.tensor(lo_np, device=dev)  # a copy: the cached bounds stay read-only
    hi = torch.tensor(hi_np, device=dev)
    xl = _lengths(x_len, batch, n, dev)
    yl = _lengths(y_len, batch, m, dev)
    module = _kernel_module(dev.type)
    cost = cost.contiguous()
    value, r, aux = _call(module, "forward", cost, gamma, xl, yl, lo, hi)
    return value, r, aux, xl, yl, lo, hi


@sdtw_forward.register_fake
def _(cost, gamma, x_len, y_len, band_kind, band_param):
    batch, n, m = cost.shape
    r_shape, aux_shape, aux_dtype = _state_spec(_kernel_module(cost.device.type), batch, n, m, cost.dtype)
    i32 = dict(dtype=torch.int32, device=cost.device)
    return (cost.new_empty((batch,)), cost.new_empty(r_shape),
            cost.new_empty(aux_shape, dtype=aux_dtype),
            torch.empty((batch,), **i32), torch.empty((batch,), **i32),
            torch.empty((batch, n), **i32), torch.empty((batch, n), **i32))


@torch.library.custom_op("softdtw::backward", mutates_args=())
def sdtw_backward(r: torch.Tensor, aux: torch.Tensor, gamma: float, x_len: torch.Tensor, y_len: torch.Tensor,
                  lo: torch.Tensor, hi: torch.Tensor, grad_value: torch.Tensor,
                  need_gamma_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(grad_cost, grad_gamma)`` = ``grad_value`` times (expected alignment, d value / d gamma)."""
    module = _kernel_module(r.device.type)
    grad_value = grad_value.to(r.dtype).contiguous()
    grad_cost, grad_gamma = _call(module, "backward", r, aux, gamma, x_len, y_len, lo, hi, grad_value,
                                  need_gamma_grad)
    if grad_gamma is None:
        grad_gamma = r.new_zeros((lo.shape[0],))
    return grad_cost, grad_gamma


@sdtw_backward.register_fake
def _(r, aux, gamma, x_len, y_len, lo, hi, grad_value, need_gamma_grad):
    return r.new_empty((lo.shape[0], lo.shape[1], r.shape[-1])), r.new_empty((lo.shape[0],))


def save_state(ctx, gamma: float, output, *extra) -> None:
    """Keep what the backward of ``softdtw::forward``'s output needs: ``gamma``, ``extra``
    tensors, then the state ``(r, aux, x_len, y_len, lo, hi)`` (``ctx.saved_tensors`` in that
    order). Shared by every autograd wrapper of the op."""
    _, r, aux, xl, yl, lo, hi = output
    ctx.gamma = gamma
    ctx.save_for_backward(*extra, r, aux, xl, yl, lo, hi)
    ctx.mark_non_differentiable(r, aux, xl, yl, lo, hi)
    # no zero gradients for r and aux: filling a (B, N, M) tensor measured 35 ms at (64, 512, 512)
    ctx.set_materialize_grads(False)


def _setup_context(ctx, inputs, output):
    save_state(ctx, inputs[1], output)


def _backward(ctx, grad_value, *_unused):
    if grad_value is None:
        return None, None, None, None, None, None
    r, aux, xl, yl, lo, hi = ctx.saved_tensors
    grad_cost, _ = sdtw_backward(r, aux, ctx.gamma, xl, yl, lo, hi, grad_value, False)
    return grad_cost, None, None, None, None, None


torch.library.register_autograd("softdtw::forward", _backward, setup_context=_setup_context)
