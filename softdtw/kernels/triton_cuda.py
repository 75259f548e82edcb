r"""Triton kernels of soft-DTW (the CUDA path), under the contract of :mod:`softdtw.kernels`.

``forward(cost, gamma, x_len, y_len, lo, hi) -> (value, r, aux)`` and
``backward(r, aux, gamma, x_len, y_len, lo, hi, grad_value, need_gamma_grad) -> (grad_cost, grad_gamma)``
take torch tensors on one device: CUDA tensors run the compiled kernels; CPU tensors run the same
kernels in Triton's interpreter (the tests' path on machines with no GPU; about 10^4 cells per
second, so tiny sizes only). Triton is imported on the first call, not on import.

Design
------
* One persistent launch per direction. A program owns ``PAIRS`` pairs (a ``[PAIRS, BLOCK]`` block
  of lanes: pair x row) and loops over the anti-diagonals ``k0 = i0 + j0`` (0-based cells) inside the
  kernel; each diagonal is processed in chunks of ``BLOCK`` rows, so N and M are unbounded. The
  predecessors of a cell are read back from the stored ``r`` (global memory) and the diagonals are
  separated by ``tl.debug_barrier()``. Many short pairs: ``PAIRS > 1`` packs several pairs per
  program; few long pairs: ``PAIRS = 1`` and a wide ``BLOCK`` (a program per pair, any length).
* Only the cells of each pair's band are visited: the row range of every (pair, diagonal)
  is computed once from ``lo``/``hi`` (``_diagonal_rows``, O(B (N + M))), the chunk loop covers
  that range only (band work O(B N w)), and every cell is masked by its row's ``[lo, hi)``.
  Cells outside are never read, written or computed (``r`` holds garbage there, ``grad_cost`` is 0).
* Softmin in base 2 with the minimum factored out: the three inputs are sorted (min, median,
  max), ``softmin = m - gamma ln2 log2(1 + 2^{(m - med) s} + 2^{(m - max) s})`` with
  ``s = log2(e) / gamma``: 2 exp2 + 1 log2 per cell; every exponent is <= 0.
* Offsets (float32 accuracy at large N): ``r`` stores ``R - off[k0]`` where ``off[k0]`` is the
  minimum of diagonal ``k0 - 1`` (``off`` accumulated in float64 inside the forward). ``aux``
  ``(B, N + M - 1)`` holds ``delta[k0] = off[k0] - off[k0 - 1]``, which is all the backward needs
  to put the three predecessors of a cell in one frame; the value is ``r + off`` in float64.
* Backward in pull form, propagating ``G = grad_value * E`` (the recursion is linear, so the
  scaling is fused and the terminal seed is ``grad_value``). Each cell's softmin weights are
  recomputed once, from its stored predecessors exactly as the forward formed them (2 exp2, one
  reciprocal); the products ``G * w_p`` a cell sends to its three predecessors go to a ring of
  three diagonals of scratch, ``(B, 3, 3, N + 1)`` floats; ``grad_cost`` receives ``G`` at the used
  cells. ``grad_gamma = sum G * sum_p w_p ln w_p`` (1 extra log2 per cell, only when asked),
  accumulated in float64.
* Compute dtype: float32 or float64 (the dtype of ``cost``; float16/bfloat16 are upcast to float32).
* NaN in a pair's cost gives NaN for that pair only (the minimum propagates NaN, as spec.softmin).

Status and open problems
------------------------
* Verified under the interpreter against the float64 reference (tests/test_kernel_triton.py) and
  compiled to cubin for sm_80/sm_90 without a GPU; not yet run or timed on a GPU.
* Long pairs: one program per pair is correct for any length but leaves most SMs idle when B is
  small (B = 1, N = 16384 runs on one SM). The planned cooperative schedule: S programs per pair,
  each owning a row segment, in a wavefront (segment s runs diagonal k once segment s - 1 has
  published diagonal k - 1 through a per-segment progress counter, acquire/release atomics,
  L1-bypassing loads of the neighbour's boundary row; in the backward the order is reversed and
  the boundary products go to an O(B S (N + M)) buffer so that no segment waits on a slower one).
  Programs wait only on lower program ids, so the interpreter (sequential programs) can run it.
  Per-segment offsets replace the per-diagonal minimum there.
* Speed: predecessors are re-read from ``r`` in global memory (L1/L2) every diagonal; when a
  diagonal fits in one chunk they could stay in registers (a lane shift per step).
"""

from __future__ import annotations

import math

__all__ = ["forward", "backward", "available"]

_INF = float("inf")


# ---------------------------------------------------------------------------
# Kernels, as plain Python functions: wrapped by triton.jit (CUDA) or by the interpreter (CPU)
# on first use. ``tl`` is bound lazily in this module's globals by _build().
# ---------------------------------------------------------------------------

tl = None  # triton.language, bound by _build()


def _softdtw_fwd_kernel(cost_ptr, r_ptr, value_ptr, delta_ptr, xlen_ptr, ylen_ptr, lo_ptr, hi_ptr,
                        dstart_ptr, dend_ptr, order_ptr, par_ptr, B, N, M, K,
                        PAIRS: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    slots = pid * PAIRS + tl.arange(0, PAIRS)
    pmask = slots < B
    pairs = tl.load(order_ptr + slots, mask=pmask, other=0)  # pairs sorted by length (_order)
    n = tl.load(xlen_ptr + pairs, mask=pmask, other=1)
    m = tl.load(ylen_ptr + pairs, mask=pmask, other=1)
    kcount = tl.where(pmask, n + m - 1, 0)
    kmax = tl.max(kcount, axis=0)
    pb = pairs.to(tl.int64)
    matb = (pb * N * M)[:, None]
    rowb = (pb * N)[:, None]
    diagb = pb * K
    lanes = tl.arange(0, BLOCK)[None, :]
    scale = tl.load(par_ptr)  # log2(e) / gamma
    gln2 = tl.load(par_ptr + 1)  # gamma * ln(2)
    zero = scale * 0
    inf = zero + float("inf")
    off = tl.zeros([PAIRS], dtype=tl.float64)
    delta_prev = tl.zeros([PAIRS], dtype=scale.dtype)
    curmin = tl.zeros([PAIRS], dtype=scale.dtype) + inf
    nt = n[:, None] - 1
    mt = m[:, None] - 1
    for k0 in range(0, kmax):
        delta = tl.where(curmin < inf, curmin, zero)
        off += delta.to(tl.float64)
        inr = pmask & (k0 < kcount)
        tl.store(delta_ptr + diagb + k0, delta, mask=inr)
        start = tl.load(dstart_ptr + diagb + k0, mask=inr, other=0)
        end = tl.load(dend_ptr + diagb + k0, mask=inr, other=0)
        end = tl.maximum(end, start)
        nch = tl.max((end - start + BLOCK - 1) // BLOCK, axis=0)
        newmin = tl.zeros([PAIRS], dtype=scale.dtype) + inf
        for ch in range(0, nch):
            i0 = start[:, None] + ch * BLOCK + lanes
            j0 = k0 - i0
            act = i0 < end[:, None]
            lo_c = tl.load(lo_ptr + rowb + i0, mask=act, other=0)
            hi_c = tl.load(hi_ptr + rowb + i0, mask=act, other=0)
            valid = act & (j0 >= lo_c) & (j0 < hi_c)
            vrow = valid & (i0 >= 1)
            lo_u = tl.load(lo_ptr + rowb + i0 - 1, mask=vrow, other=0)
            hi_u = tl.load(hi_ptr + rowb + i0 - 1, mask=vrow, other=0)
            cell = matb + i0.to(tl.int64) * M + j0
            a_l = tl.load(r_ptr + cell - 1, mask=valid & (j0 - 1 >= lo_c), other=float("inf"))
            a_u = tl.load(r_ptr + cell - M, mask=vrow & (j0 >= lo_u) & (j0 < hi_u), other=float("inf"))
            a_d = tl.load(r_ptr + cell - M - 1, mask=vrow & (j0 - 1 >= lo_u) & (j0 - 1 < hi_u),
                          other=float("inf"))
            a_d = tl.where((i0 == 0) & (j0 == 0), zero, a_d - delta_prev[:, None])
            # softmin, base 2, minimum factored out, inputs sorted: 2 exp2 + 1 log2
            lo2 = tl.minimum(a_d, a_u)
            hi2 = tl.maximum(a_d, a_u)
            mn = tl.minimum(tl.minimum(a_d, a_u, propagate_nan=tl.PropagateNan.ALL), a_l,
                            propagate_nan=tl.PropagateNan.ALL)  # NaN when any input is NaN
            mx = tl.maximum(hi2, a_l)
            md = tl.maximum(lo2, tl.minimum(hi2, a_l))
            fin = mn < inf
            ms = tl.where(fin, mn, zero)
            t1 = tl.exp2((ms - md) * scale)
            t2 = tl.exp2((ms - mx) * scale)
            # +inf (unreachable) stays +inf, NaN stays NaN (spec.softmin)
            sm = tl.where(fin, (ms - delta[:, None]) - gln2 * tl.log2(1.0 + t1 + t2), mn)
            c = tl.load(cost_ptr + cell, mask=valid, other=0.0)
            rnew = c + sm
            tl.store(r_ptr + cell, rnew, mask=valid)
            newmin = tl.minimum(newmin, tl.min(tl.where(valid, rnew, inf), axis=1))
            term = valid & (i0 == nt) & (j0 == mt)
            val = (rnew.to(tl.float64) + off[:, None]).to(scale.dtype)
            tl.store(value_ptr + pairs[:, None] + lanes * 0, val, mask=term)
        curmin = newmin
        delta_prev = delta
        tl.debug_barrier()


def _softdtw_bwd_kernel(r_ptr, delta_ptr, gv_ptr, grad_ptr, ggam_ptr, scr_ptr, xlen_ptr, ylen_ptr,
                        lo_ptr, hi_ptr, dstart_ptr, dend_ptr, order_ptr, par_ptr, B, N, M, K,
                        PAIRS: tl.constexpr, BLOCK: tl.constexpr, NEED_GAMMA: tl.constexpr):
    pid = tl.program_id(0)
    slots = pid * PAIRS + tl.arange(0, PAIRS)
    pmask = slots < B
    pairs = tl.load(order_ptr + slots, mask=pmask, other=0)  # pairs sorted by length (_order)
    n = tl.load(xlen_ptr + pairs, mask=pmask, other=1)
    m = tl.load(ylen_ptr + pairs, mask=pmask, other=1)
    kcount = tl.where(pmask, n + m - 1, 0)
    kmax = tl.max(kcount, axis=0)
    pb = pairs.to(tl.int64)
    matb = (pb * N * M)[:, None]
    rowb = (pb * N)[:, None]
    diagb = pb * K
    # scratch (B, 3 slots, 3 kinds, N + 1): kinds 0 = to the diagonal predecessor, 1 = up, 2 = left
    slotw = 3 * (N + 1)
    scrb = (pb * 3 * slotw)[:, None]
    lanes = tl.arange(0, BLOCK)[None, :]
    scale = tl.load(par_ptr)
    zero = scale * 0
    inf = zero + float("inf")
    g = tl.load(gv_ptr + pairs, mask=pmask, other=0.0)[:, None]
    gacc = tl.zeros([PAIRS, BLOCK], dtype=tl.float64)
    nt = n[:, None] - 1
    mt = m[:, None] - 1
    for kk in range(0, kmax):
        k0 = kmax - 1 - kk
        inr = pmask & (k0 < kcount)
        delta_prev = tl.load(delta_ptr + diagb + k0 - 1, mask=inr & (kcount * 0 + k0 >= 1), other=0.0)[:, None]
        start = tl.load(dstart_ptr + diagb + k0, mask=inr, other=0)
        end = tl.load(dend_ptr + diagb + k0, mask=inr, other=0)
        end = tl.maximum(end, start)
        nch = tl.max((end - start + BLOCK - 1) // BLOCK, axis=0)
        s0 = scrb + (k0 % 3) * slotw
        s1 = scrb + ((k0 + 1) % 3) * slotw
        s2 = scrb + ((k0 + 2) % 3) * slotw
        for ch in range(0, nch):
            i0 = start[:, None] + ch * BLOCK + lanes
            j0 = k0 - i0
            act = i0 < end[:, None]
            lo_c = tl.load(lo_ptr + rowb + i0, mask=act, other=0)
            hi_c = tl.load(hi_ptr + rowb + i0, mask=act, other=0)
            valid = act & (j0 >= lo_c) & (j0 < hi_c)
            vrow = valid & (i0 >= 1)
            lo_u = tl.load(lo_ptr + rowb + i0 - 1, mask=vrow, other=0)
            hi_u = tl.load(hi_ptr + rowb + i0 - 1, mask=vrow, other=0)
            vdn = valid & (i0 + 1 < N)
            lo_dn = tl.load(lo_ptr + rowb + i0 + 1, mask=vdn, other=0)
            hi_dn = tl.load(hi_ptr + rowb + i0 + 1, mask=vdn, other=0)
            # pull: G = sum over the (used) successors of G[s] * w_p(s), plus the seed
            gsum = tl.load(scr_ptr + s1 + 2 * (N + 1) + i0, mask=valid & (j0 + 1 < hi_c), other=0.0)
            gsum += tl.load(scr_ptr + s1 + (N + 1) + i0 + 1, mask=vdn & (j0 >= lo_dn) & (j0 < hi_dn),
                            other=0.0)
            gsum += tl.load(scr_ptr + s2 + i0 + 1, mask=vdn & (j0 + 1 >= lo_dn) & (j0 + 1 < hi_dn), other=0.0)
            gcell = gsum + tl.where(valid & (i0 == nt) & (j0 == mt), g, zero)
            # this cell's softmin weights, recomputed from its stored predecessors as in the forward
            cell = matb + i0.to(tl.int64) * M + j0
            a_l = tl.load(r_ptr + cell - 1, mask=valid & (j0 - 1 >= lo_c), other=float("inf"))
            a_u = tl.load(r_ptr + cell - M, mask=vrow & (j0 >= lo_u) & (j0 < hi_u), other=float("inf"))
            a_d = tl.load(r_ptr + cell - M - 1, mask=vrow & (j0 - 1 >= lo_u) & (j0 - 1 < hi_u),
                          other=float("inf"))
            a_d = tl.where((i0 == 0) & (j0 == 0), zero, a_d - delta_prev)
            lo2 = tl.minimum(a_d, a_u)
            hi2 = tl.maximum(a_d, a_u)
            mn = tl.minimum(tl.minimum(a_d, a_u, propagate_nan=tl.PropagateNan.ALL), a_l,
                            propagate_nan=tl.PropagateNan.ALL)  # NaN when any input is NaN
            mx = tl.maximum(hi2, a_l)
            md = tl.maximum(lo2, tl.minimum(hi2, a_l))
            fin = mn < inf
            ms = tl.where(fin, mn, zero)
            t1 = tl.exp2((ms - md) * scale)
            t2 = tl.exp2((ms - mx) * scale)
            ssum = 1.0 + t1 + t2
            inv = tl.where(fin, 1.0 / ssum, zero)
            e_d = tl.where(a_d == mn, 1.0, tl.where(a_d == md, t1, t2))
            e_u = tl.where(a_u == mn, 1.0, tl.where(a_u == md, t1, t2))
            e_l = tl.where(a_l == mn, 1.0, tl.where(a_l == md, t1, t2))
            w_d = e_d * inv
            w_u = e_u * inv
            w_l = e_l * inv
            tl.store(grad_ptr + cell, gcell, mask=valid)
            tl.store(scr_ptr + s0 + i0, gcell * w_d, mask=valid)
            tl.store(scr_ptr + s0 + (N + 1) + i0, gcell * w_u, mask=valid)
            tl.store(scr_ptr + s0 + 2 * (N + 1) + i0, gcell * w_l, mask=valid)
            if NEED_GAMMA:
                # sum_p w_p ln w_p = ln2 * (sum_p w_p (m - a_p) s - log2(sum))
                x_d = tl.where(a_d < inf, ms - a_d, zero) * scale
                x_u = tl.where(a_u < inf, ms - a_u, zero) * scale
                x_l = tl.where(a_l < inf, ms - a_l, zero) * scale
                ne = (w_d * x_d + w_u * x_u + w_l * x_l) - tl.log2(ssum) * (w_d + w_u + w_l)
                ne = ne * 0.6931471805599453
                gacc += tl.where(valid & fin, (gcell * ne).to(tl.float64), 0.0)
        tl.debug_barrier()
    if NEED_GAMMA:
        tl.store(ggam_ptr + pairs, tl.sum(gacc, axis=1).to(scale.dtype), mask=pmask)


# ---------------------------------------------------------------------------
# Lazy build
# ---------------------------------------------------------------------------

_BUILT: dict[str, tuple] = {}


def available() -> bool:
    """True when triton can be imported (the kernels can then run, on CUDA or interpreted on CPU)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _import_triton():
    try:
        import triton
        import triton.language as tl_mod
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "softdtw's CUDA kernels need Triton (it ships with Linux CUDA builds of torch; "
            "`pip install triton`)"
        ) from exc
    return triton, tl_mod


def _interpreted() -> bool:
    """Whether triton was imported in interpreter mode (``TRITON_INTERPRET=1`` set before import).

    Triton's own library functions (``tl.max``, ``tl.sum``) are decorated when triton is imported,
    so the mode cannot be switched afterwards.
    """
    _, tl_mod = _import_triton()
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(tl_mod.standard.max, InterpretedFunction)


def _build():
    """The two kernels, compiled or interpreted following triton's mode; built once."""
    if "kernels" in _BUILT:
        return _BUILT["kernels"]
    triton, tl_mod = _import_triton()
    global tl
    tl = tl_mod
    _BUILT["kernels"] = (triton.jit(_softdtw_fwd_kernel), triton.jit(_softdtw_bwd_kernel))
    return _BUILT["kernels"]


def _kernels_for(device):
    if device.type == "cpu":
        if not _interpreted():
            raise RuntimeError(
                "the Triton kernels run on CPU tensors only in Triton's interpreter: set the "
                "environment variable TRITON_INTERPRET=1 before triton is first imported"
            )
    elif device.type != "cuda":
        raise ValueError(f"the Triton kernels take CUDA (or, interpreted, CPU) tensors, got device {device}")
    return _build()


# ---------------------------------------------------------------------------
# Host side
# ---------------------------------------------------------------------------


def _next_pow2(x: int) -> int:
    return 1 << max(0, int(x) - 1).bit_length()


def _diagonal_rows(lo, hi, x_len, n_pad: int, m_pad: int):
    """Row range ``[start, end)`` of the used cells of each (pair, diagonal ``k0 = i0 + j0``).

    Exact for bands whose ``lo``/``hi`` do not decrease along the rows (all of spec's bands);
    conservative otherwise (the kernels still mask every cell by its row's bounds).
    Returns two int32 tensors of shape ``(B, N + M - 1)``.
    """
    import torch

    batch = lo.shape[0]
    kdim = n_pad + m_pad - 1
    dev = lo.device
    rows = torch.arange(n_pad, device=dev, dtype=torch.int64)[None, :]
    lo64 = lo.to(torch.int64)
    hi64 = hi.to(torch.int64)
    used = (rows < x_len.to(torch.int64)[:, None]) & (hi64 > lo64)
    # first row whose last used diagonal reaches k0: prefix maximum of i0 + hi - 1
    last_diag = torch.where(used, rows + hi64 - 1, torch.full_like(hi64, -1))
    pmax = torch.cummax(last_diag, dim=1).values.contiguous()
    # last row whose first used diagonal is <= k0: suffix minimum of i0 + lo
    big = n_pad + m_pad + 1
    first_diag = torch.where(used, rows + lo64, torch.full_like(lo64, big))
    smin = torch.flip(torch.cummin(torch.flip(first_diag, [1]), dim=1).values, [1]).contiguous()
    ks = torch.arange(kdim, device=dev, dtype=torch.int64)[None, :].expand(batch, kdim).contiguous()
    start = torch.searchsorted(pmax, ks, right=False)
    end = torch.searchsorted(smin, ks, right=True)
    end = torch.maximum(end, start)
    return start.to(torch.int32).contiguous(), end.to(torch.int32).contiguous()


def _order(x_len, y_len, pairs: int):
    """The pairs in the order programs take them: by decreasing ``x_len + y_len`` (the diagonals
    a pair runs) when a program holds several pairs of different lengths, so that its loop
    bounds (the longest of its pairs) waste little; else the batch order."""
    import torch

    n = x_len.shape[0]
    if pairs > 1 and n > 0 and bool(((x_len != x_len[0]) | (y_len != y_len[0])).any()):
        return torch.argsort(-(x_len.to(torch.int64) + y_len), stable=True).to(torch.int32)
    return torch.arange(n, dtype=torch.int32, device=x_len.device)


def _schedule(batch: int, n_pad: int, m_pad: int, device, block, pairs):
    """Choose ``(PAIRS, BLOCK, num_warps)``.

    Many short pairs: several pairs per program (about 256 lanes per program, while keeping at
    least about two programs per SM). Few long pairs: one pair per program with up to 1024 lanes.
    """
    width = min(n_pad, m_pad)  # longest diagonal
    if block is None:
        block = min(1024, max(16, _next_pow2(width)))
    if pairs is None:
        pairs = max(1, 256 // block)
        sms = 1
        if device.type == "cuda":
            import torch

            sms = torch.cuda.get_device_properties(device).multi_processor_count
        while pairs > 1 and -(-batch // pairs) < 2 * sms:
            pairs //= 2
    block, pairs = int(block), int(pairs)
    if block < 1 or block & (block - 1) or pairs < 1 or pairs & (pairs - 1):
        raise ValueError(f"block and pairs must be powers of 2, got block={block}, pairs={pairs}")
    lanes = block * pairs
    num_warps = max(1, min(16, lanes // 64))
    return pairs, block, num_warps


def _check(cost_like, x_len, y_len, lo, hi):
    import torch

    dev = cost_like.device
    for name, t in (("x_len", x_len), ("y_len", y_len), ("lo", lo), ("hi", hi)):
        if not isinstance(t, torch.Tensor) or t.device != dev:
            raise ValueError(f"{name} must be a torch tensor on {dev}")
    batch, n_pad, m_pad = cost_like.shape
    if x_len.shape != (batch,) or y_len.shape != (batch,):
        raise ValueError(f"x_len and y_len must have shape ({batch},)")
    if lo.shape != (batch, n_pad) or hi.shape != (batch, n_pad):
        raise ValueError(f"lo and hi must have shape ({batch}, {n_pad})")
    i32 = torch.int32
    return (x_len.to(i32).contiguous(), y_len.to(i32).contiguous(), lo.to(i32).contiguous(),
            hi.to(i32).contiguous())


def _params(gamma: float, dtype, device):
    import torch

    gamma = float(gamma)
    if not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma must be a finite number > 0, got {gamma}")
    return torch.tensor([1.0 / (gamma * math.log(2.0)), gamma * math.log(2.0)], dtype=dtype, device=device)


def _compute_dtype(dtype):
    import torch

    if dtype == torch.float64:
        return torch.float64
    if dtype in (torch.float32, torch.float16, torch.bfloat16):
        return torch.float32
    raise TypeError(f"cost must be floating point, got {dtype}")


def aux_shape(batch: int, n: int, m: int, dtype):
    """Shape and dtype of ``aux`` for a ``(batch, n, m)`` cost (the contract's fake-tensor hook)."""
    import numpy as np

    return (batch, n + m - 1), (np.float64 if np.dtype(dtype) == np.float64 else np.float32)


def forward(cost, gamma, x_len, y_len, lo, hi, *, block=None, pairs=None):
    """Soft-DTW values and the state for :func:`backward` (see :mod:`softdtw.kernels`).

    ``cost`` ``(B, N, M)`` float32/float64 on CUDA (or CPU: interpreted). Returns
    ``(value (B,), r (B, N, M), aux (B, N + M - 1))``: ``r`` is ``R`` relative to per-diagonal
    offsets whose increments are ``aux``; outside the used cells ``r`` is unspecified.
    ``block``/``pairs`` (powers of 2) override the schedule: rows per chunk and pairs per program.
    """
    import torch

    if cost.dim() != 3:
        raise ValueError(f"cost must have shape (B, N, M), got {tuple(cost.shape)}")
    dtype = _compute_dtype(cost.dtype)
    cost = cost.to(dtype).contiguous()
    x_len, y_len, lo, hi = _check(cost, x_len, y_len, lo, hi)
    batch, n_pad, m_pad = cost.shape
    kdim = n_pad + m_pad - 1
    dev = cost.device
    value = torch.zeros(batch, dtype=dtype, device=dev)
    r = torch.empty((batch, n_pad, m_pad), dtype=dtype, device=dev)
    aux = torch.zeros((batch, kdim), dtype=dtype, device=dev)
    if batch == 0:
        return value, r, aux
    fwd, _ = _kernels_for(dev)
    dstart, dend = _diagonal_rows(lo, hi, x_len, n_pad, m_pad)
    p, blk, warps = _schedule(batch, n_pad, m_pad, dev, block, pairs)
    grid = (triton_cdiv(batch, p),)
    fwd[grid](cost, r, value, aux, x_len, y_len, lo, hi, dstart, dend, _order(x_len, y_len, p),
              _params(gamma, dtype, dev),
              batch, n_pad, m_pad, kdim, PAIRS=p, BLOCK=blk, num_warps=warps, enable_fp_fusion=True)
    return value, r, aux


def backward(r, aux, gamma, x_len, y_len, lo, hi, grad_value, need_gamma_grad, *, block=None, pairs=None):
    """``grad_value[b] * d value_b / d cost`` (0 outside the used cells) and, when
    ``need_gamma_grad``, ``grad_value[b] * d value_b / d gamma`` (else None)."""
    import torch

    dtype = r.dtype
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"r must be float32 or float64, got {dtype}")
    r = r.contiguous()
    aux = aux.to(dtype).contiguous()
    x_len, y_len, lo, hi = _check(r, x_len, y_len, lo, hi)
    batch, n_pad, m_pad = r.shape
    kdim = n_pad + m_pad - 1
    if aux.shape != (batch, kdim):
        raise ValueError(f"aux must have shape ({batch}, {kdim}), got {tuple(aux.shape)}")
    dev = r.device
    grad_value = torch.as_tensor(grad_value, device=dev).to(dtype).expand(batch).contiguous()
    grad = torch.zeros((batch, n_pad, m_pad), dtype=dtype, device=dev)
    ggam = torch.zeros(batch, dtype=dtype, device=dev)
    if batch > 0:
        _, bwd = _kernels_for(dev)
        dstart, dend = _diagonal_rows(lo, hi, x_len, n_pad, m_pad)
        p, blk, warps = _schedule(batch, n_pad, m_pad, dev, block, pairs)
        scratch = torch.empty((batch, 3, 3, n_pad + 1), dtype=dtype, device=dev)
        grid = (triton_cdiv(batch, p),)
        bwd[grid](r, aux, grad_value, grad, ggam, scratch, x_len, y_len, lo, hi, dstart, dend,
                  _order(x_len, y_len, p), _params(gamma, dtype, dev), batch, n_pad, m_pad, kdim,
                  PAIRS=p, BLOCK=blk, NEED_GAMMA=bool(need_gamma_grad), num_warps=warps,
                  enable_fp_fusion=True)
    return grad, (ggam if need_gamma_grad else None)


def triton_cdiv(a: int, b: int) -> int:
    return -(-int(a) // int(b))
