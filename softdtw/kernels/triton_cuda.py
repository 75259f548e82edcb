r"""Triton kernels of soft-DTW (the CUDA path), under the contract of :mod:`softdtw.kernels`.

``forward(cost, gamma, x_len, y_len, lo, hi) -> (value, r, aux)`` and
``backward(r, aux, gamma, x_len, y_len, lo, hi, grad_value, need_gamma_grad) -> (grad_cost, grad_gamma)``
take torch tensors on one device: CUDA tensors run the compiled kernels; CPU tensors run the same
kernels in Triton's interpreter (the tests' path on machines with no GPU; about 10^4 cells per
second, so tiny sizes only). Triton is imported on the first call, not on import.

Design
------
* One persistent launch per direction, a loop over the anti-diagonals ``k0 = i0 + j0`` (0-based
  cells) inside the kernel; each diagonal is processed in chunks of ``BLOCK`` rows, so N and M are
  unbounded. The predecessors of a cell are read back from the stored ``r`` (global memory) and
  the diagonals of a program are separated by ``tl.debug_barrier()``. Two schedules
  (:func:`_schedule` chooses; ``block=``, ``pairs=``, ``strips=`` override):

  - *pairs* (many pairs, or short ones): a program owns ``PAIRS`` pairs, a ``[PAIRS, BLOCK]``
    block of lanes (pair x row), and runs their whole diagonals; ``PAIRS = 1`` with up to 1024
    lanes when the pairs are long but numerous enough to fill the GPU. Programs take the pairs
    sorted by length (``order``) so that a program's loop bounds waste little.
  - *strips* (few long pairs: fewer than half as many pairs as SMs, ``N, M >= 256``): ``S``
    programs per pair (``B S <= SMs``), program ``s`` owning the columns ``[s W, (s + 1) W)``.
    All strips run the same global diagonal sequence, each its own part of a diagonal, in a
    pipelined wavefront: before diagonal ``k`` strip ``s`` waits until strip ``s - 1`` has
    published (an int32 progress flag, atomic release; read with acquire by one thread and
    broadcast through a CTA barrier) that it has finished diagonal ``k - 1``, whose left-column
    cells it reads from ``r``. Flags are published every ``_SYNC`` diagonals, so a strip trails
    its left neighbour by 1 to ``_SYNC`` diagonals and the launch takes about
    ``N + M + S _SYNC`` diagonal steps of ``W`` cells. The backward is the mirror: strip ``s``
    waits for strip ``s + 1`` to have finished diagonal ``k + 1``. A program's id is taken from
    an atomic start counter, in the order strips are waited on (reversed in the backward), so a
    program only ever waits on programs that have already started and themselves only wait on
    lower ids: the waits end whatever the number of co-resident programs. Triton's interpreter
    runs programs one after another in id order, so it runs this exact code with every wait
    satisfied at once (``MAXSPIN = 1`` there turns a wait that is not into an error).
* Only the cells of each pair's band are visited: the row range of every (pair, diagonal)
  is computed once from ``lo``/``hi`` (``_diagonal_rows``, O(B (N + M))), the chunk loop covers
  that range only (intersected with the strip's columns; band work O(B N w)), and every cell is
  masked by its row's ``[lo, hi)``. Cells outside are never read, written or computed (``r``
  holds garbage there, ``grad_cost`` is 0); strips beyond a pair's ``y_len`` exit at once.
* Softmin in base 2 with the minimum factored out: the three inputs are sorted (min, median,
  max), ``softmin = m - gamma ln2 log2(1 + 2^{(m - med) s} + 2^{(m - max) s})`` with
  ``s = log2(e) / gamma``: 2 exp2 + 1 log2 per cell; every exponent is <= 0.
* Offsets (float32 accuracy at large N): ``r`` stores ``R - off[k0]`` where ``off[k0]`` is the
  minimum of diagonal ``k0 - 1`` (``off`` accumulated in float64 inside the forward); ``aux`` holds
  ``delta[k0] = off[k0] - off[k0 - 1]``, all the backward needs to put the three predecessors of a
  cell in one frame; the value is ``r + off`` in float64. In the strip schedule the minimum is
  the strip's own (a global one would need every strip to finish each diagonal first): ``aux``
  holds per strip its ``N + W - 1`` deltas and, per row, the frame correction ``e`` between the
  left neighbour's frame and its own for the two predecessors in the left neighbour's last
  column (from the neighbour's float64 offsets, exchanged through an ``(B, S + 1, N)`` float64
  buffer). :func:`aux_shape` is a function of the shapes only: wide enough for whatever the
  automatic choice can pick on any GPU (``B S <= 256``), so ``aux`` is ``(B, N + M - 1)`` for
  many pairs and at most ``(B, 2 S (N + W))`` floats (a few % of ``r``) for few long ones.
* Backward in pull form, propagating ``G = grad_value * E`` (the recursion is linear, so the
  scaling is fused and the terminal seed is ``grad_value``). Each cell's softmin weights are
  recomputed once, from its stored predecessors exactly as the forward formed them (2 exp2, one
  reciprocal); the products ``G * w_p`` a cell sends to its three predecessors go to a ring of
  three diagonals of scratch (``(B, 3, 3, N + 1)`` floats by row; per strip ``(3, 3, W)`` by
  column, and the products sent across a strip boundary to a ``(B, S + 1, 2, N)`` buffer);
  ``grad_cost`` receives ``G`` at the used cells. ``grad_gamma = sum G * sum_p w_p ln w_p``
  (1 extra log2 per cell, only when asked), accumulated in float64 (per strip, summed on the host).
* Compute dtype: float32 or float64 (the dtype of ``cost``; float16/bfloat16 are upcast to float32).
* NaN in a pair's cost gives NaN for that pair only (the minimum propagates NaN, as spec.softmin).

Status and open problems
------------------------
* Verified without a GPU: every path against the float64 reference in the interpreter
  (tests/test_kernel_triton.py: values, gradients, d/dgamma, both schedules, N != M, N = 1,
  M = 1, strips wider and narrower than BLOCK, empty strips, bands, variable lengths, float32 and
  float64, gamma 1e-3..10), and every kernel compiled to cubin for sm_80/sm_90. The interpreter
  runs programs sequentially, so it checks the strip schedule's arithmetic, frames, boundary
  exchange and wait targets, but not its concurrency.
* Not yet run on a GPU: the real concurrency of the strip schedule (that the release/acquire
  flags and the ``.cg`` loads make a neighbour's ``r``, frames and products visible, with no
  stale L1 line; ``test_cuda_strips_deterministic`` repeats a run to catch races), the
  spin-wait's cost, and all timings. The thresholds of the automatic choice (``_STRIP_*``,
  ``_SYNC``, strips of >= 128 columns) are untuned guesses.
* Speed: predecessors are re-read from ``r`` in global memory (L1/L2) every diagonal; when a
  diagonal fits in one chunk they could stay in registers (a lane shift per step).
"""

from __future__ import annotations

import math

__all__ = ["forward", "backward", "available"]

_INF = float("inf")


# ---------------------------------------------------------------------------
# Kernels, as plain Python functions: wrapped by triton.jit (CUDA) or by the interpreter (CPU)
# on first use. ``tl`` and the helpers are bound lazily in this module's globals by _build().
# ---------------------------------------------------------------------------

tl = None  # triton.language, bound by _build()


def _cell(r_ptr, lo_ptr, hi_ptr, rowb, matb, M, i0, j0, act, first, e_l, e_d, delta_prev, zero):
    """The cells ``(i0, j0)`` of one diagonal (lanes with ``act``): whether each is used, its flat
    index, its row's ``hi`` and its three stored predecessors in the frame of the previous diagonal.
    ``a_d`` is stored relative to the diagonal before (``- delta_prev``); where ``first`` (a strip's
    first column) the left and diagonal predecessors belong to the strip on the left, whose frames
    differ by ``e_l`` and ``e_d``. Unused predecessors are +inf; the origin's is 0."""
    lo_c = tl.load(lo_ptr + rowb + i0, mask=act, other=0)
    hi_c = tl.load(hi_ptr + rowb + i0, mask=act, other=0)
    valid = act & (j0 >= lo_c) & (j0 < hi_c)
    vrow = valid & (i0 >= 1)
    lo_u = tl.load(lo_ptr + rowb + i0 - 1, mask=vrow, other=0)
    hi_u = tl.load(hi_ptr + rowb + i0 - 1, mask=vrow, other=0)
    cell = matb + i0.to(tl.int64) * M + j0
    a_l = tl.load(r_ptr + cell - 1, mask=valid & (j0 - 1 >= lo_c), other=float("inf"))
    a_u = tl.load(r_ptr + cell - M, mask=vrow & (j0 >= lo_u) & (j0 < hi_u), other=float("inf"))
    a_d = tl.load(r_ptr + cell - M - 1, mask=vrow & (j0 - 1 >= lo_u) & (j0 - 1 < hi_u), other=float("inf"))
    a_l = tl.where(first, a_l + e_l, a_l)
    a_d = tl.where(first, a_d + e_d, a_d)
    a_d = tl.where((i0 == 0) & (j0 == 0), zero, a_d - delta_prev)
    return cell, valid, hi_c, a_l, a_u, a_d


def _softmin_terms(a_d, a_u, a_l, scale, zero, inf):
    """Softmin in base 2 with the minimum factored out, inputs sorted (min, median, max):
    ``softmin = ms - gamma ln2 log2(1 + t1 + t2)`` where it is finite (``fin``)."""
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
    return mn, md, fin, ms, t1, t2


def _softmin_value(a_d, a_u, a_l, c, delta, scale, gln2, zero, inf):
    """``c + softmin(a_d, a_u, a_l) - delta`` (+inf stays +inf, NaN stays NaN, as spec.softmin)."""
    mn, md, fin, ms, t1, t2 = _softmin_terms(a_d, a_u, a_l, scale, zero, inf)
    return c + tl.where(fin, (ms - delta) - gln2 * tl.log2(1.0 + t1 + t2), mn)


def _softmin_weights(a_d, a_u, a_l, scale, zero, inf):
    """The softmin weights of a cell's predecessors (recomputed as the forward formed them), and
    ``sum_p w_p ln w_p`` (its negative entropy; for d/dgamma), 0 where the cell is unreachable."""
    mn, md, fin, ms, t1, t2 = _softmin_terms(a_d, a_u, a_l, scale, zero, inf)
    ssum = 1.0 + t1 + t2
    inv = tl.where(fin, 1.0 / ssum, zero)
    w_d = tl.where(a_d == mn, 1.0, tl.where(a_d == md, t1, t2)) * inv
    w_u = tl.where(a_u == mn, 1.0, tl.where(a_u == md, t1, t2)) * inv
    w_l = tl.where(a_l == mn, 1.0, tl.where(a_l == md, t1, t2)) * inv
    # sum_p w_p ln w_p = ln2 * (sum_p w_p (m - a_p) s - log2(sum))
    x_d = tl.where(a_d < inf, ms - a_d, zero) * scale
    x_u = tl.where(a_u < inf, ms - a_u, zero) * scale
    x_l = tl.where(a_l < inf, ms - a_l, zero) * scale
    ne = ((w_d * x_d + w_u * x_u + w_l * x_l) - tl.log2(ssum) * (w_d + w_u + w_l)) * 0.6931471805599453
    return w_d, w_u, w_l, tl.where(fin, ne, zero)


def _wait(flag_ptr, known, target, MAXSPIN):
    """Spin until the int32 at ``flag_ptr`` (another program's progress, published with release
    semantics) is ``>= target``; ``known`` is the last value read. Returns the new ``known``
    (``< target`` only after ``MAXSPIN`` reads: the interpreter, whose programs run one after
    another, passes 1, so a wait not satisfied at once is reported instead of hanging).
    One thread reads with acquire semantics and broadcasts (a CTA barrier), so every thread's
    later loads see what the other program stored before its release."""
    spins = 0
    while (known < target) & (spins < MAXSPIN):
        known = tl.atomic_add(flag_ptr, 0, sem="acquire", scope="gpu")
        spins += 1
    return known


_HELPERS = ("_cell", "_softmin_terms", "_softmin_value", "_softmin_weights", "_wait")


def _softdtw_fwd_kernel(cost_ptr, r_ptr, value_ptr, delta_ptr, xlen_ptr, ylen_ptr, lo_ptr, hi_ptr,
                        dstart_ptr, dend_ptr, order_ptr, par_ptr, B, N, M, K, AUXC,
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
    auxb = pb * AUXC
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
        tl.store(delta_ptr + auxb + k0, delta, mask=inr)
        start = tl.load(dstart_ptr + diagb + k0, mask=inr, other=0)
        end = tl.load(dend_ptr + diagb + k0, mask=inr, other=0)
        end = tl.maximum(end, start)
        nch = tl.max((end - start + BLOCK - 1) // BLOCK, axis=0)
        newmin = tl.zeros([PAIRS], dtype=scale.dtype) + inf
        for ch in range(0, nch):
            i0 = start[:, None] + ch * BLOCK + lanes
            j0 = k0 - i0
            act = i0 < end[:, None]
            cell, valid, _, a_l, a_u, a_d = _cell(r_ptr, lo_ptr, hi_ptr, rowb, matb, M, i0, j0, act, i0 < 0,
                                                  zero, zero, delta_prev[:, None], zero)
            c = tl.load(cost_ptr + cell, mask=valid, other=0.0)
            rnew = _softmin_value(a_d, a_u, a_l, c, delta[:, None], scale, gln2, zero, inf)
            tl.store(r_ptr + cell, rnew, mask=valid)
            newmin = tl.minimum(newmin, tl.min(tl.where(valid, rnew, inf), axis=1))
            term = valid & (i0 == nt) & (j0 == mt)
            val = (rnew.to(tl.float64) + off[:, None]).to(scale.dtype)
            tl.store(value_ptr + pairs[:, None] + lanes * 0, val, mask=term)
        curmin = newmin
        delta_prev = delta
        tl.debug_barrier()


def _softdtw_bwd_kernel(r_ptr, delta_ptr, gv_ptr, grad_ptr, ggam_ptr, scr_ptr, xlen_ptr, ylen_ptr,
                        lo_ptr, hi_ptr, dstart_ptr, dend_ptr, order_ptr, par_ptr, B, N, M, K, AUXC,
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
    auxb = pb * AUXC
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
        delta_prev = tl.load(delta_ptr + auxb + k0 - 1, mask=inr & (kcount * 0 + k0 >= 1), other=0.0)[:, None]
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
            cell, valid, hi_c, a_l, a_u, a_d = _cell(r_ptr, lo_ptr, hi_ptr, rowb, matb, M, i0, j0, act, i0 < 0,
                                                     zero, zero, delta_prev, zero)
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
            w_d, w_u, w_l, ne = _softmin_weights(a_d, a_u, a_l, scale, zero, inf)
            tl.store(grad_ptr + cell, gcell, mask=valid)
            tl.store(scr_ptr + s0 + i0, gcell * w_d, mask=valid)
            tl.store(scr_ptr + s0 + (N + 1) + i0, gcell * w_u, mask=valid)
            tl.store(scr_ptr + s0 + 2 * (N + 1) + i0, gcell * w_l, mask=valid)
            if NEED_GAMMA:
                gacc += tl.where(valid, (gcell * ne).to(tl.float64), 0.0)
        tl.debug_barrier()
    if NEED_GAMMA:
        tl.store(ggam_ptr + pairs, tl.sum(gacc, axis=1).to(scale.dtype), mask=pmask)


def _softdtw_fwd_strip_kernel(cost_ptr, r_ptr, value_ptr, aux_ptr, bnd_ptr, flag_ptr, ctr_ptr, xlen_ptr,
                              ylen_ptr, lo_ptr, hi_ptr, dstart_ptr, dend_ptr, par_ptr, N, M, K, AUXC, S, W,
                              SYNC, MAXSPIN, BLOCK: tl.constexpr):
    # program ids in the order programs start (a counter, not program_id): a program only waits
    # on lower ids, which have started and only wait on lower ids, so the waits always end
    vid = tl.atomic_add(ctr_ptr, 1)
    pair = vid // S
    s = vid % S
    n = tl.load(xlen_ptr + pair)
    m = tl.load(ylen_ptr + pair)
    c0 = s * W  # the strip's columns: [c0, c0 + W), used ones [c0, cend)
    cend = tl.minimum(c0 + W, m)
    last = cend - 1 + n - 1  # its last diagonal (before c0 when the strip is empty)
    pb = pair.to(tl.int64)
    matb = pb * N * M
    rowb = pb * N
    diagb = pb * K
    ks = N + W - 1  # diagonals a strip can hold
    auxb = pb * AUXC + s * 2 * ks - c0  # aux[auxb + k]: delta of diagonal k, aux[auxb + ks + k]: e_l
    sb = pb * (S + 1) + s
    wait_ptr = flag_ptr + sb  # progress of strip s - 1 (slot s = 0 of each pair is preset "done")
    pub_ptr = flag_ptr + sb + 1
    bin_ptr = bnd_ptr + sb * N  # frames (float64) of strip s - 1's last column, by row
    bout_ptr = bnd_ptr + (sb + 1) * N
    lanes = tl.arange(0, BLOCK)
    scale = tl.load(par_ptr)
    gln2 = tl.load(par_ptr + 1)
    zero = scale * 0
    inf = zero + float("inf")
    off = tl.zeros([], dtype=tl.float64)
    delta_prev = zero
    e_d = zero
    curmin = inf
    known = vid * 0 - 1
    stalled = vid < 0
    for k in range(c0, last + 1):
        # strip s - 1 has finished diagonal k - 1 (the left column's predecessors and frames)
        known = _wait(wait_ptr, known, k, MAXSPIN)
        stalled = stalled | (known < k)
        ib = k - c0  # row of this diagonal's cell in the strip's first column
        bo = tl.load(bin_ptr + ib, mask=ib < n, other=0.0, cache_modifier=".cg")  # off_{s-1}[k - 1]
        off_prev = tl.where(k == c0, bo, off)  # a strip starts in its left neighbour's frame
        delta = tl.where(curmin < inf, curmin, zero)
        off = off_prev + delta.to(tl.float64)
        e_l = (bo - off_prev).to(scale.dtype)  # strip s - 1's frame -> this strip's, at diagonal k - 1
        tl.store(aux_ptr + auxb + k, delta)
        tl.store(aux_ptr + auxb + ks + k, e_l)
        start = tl.maximum(tl.load(dstart_ptr + diagb + k), k - cend + 1)
        end = tl.minimum(tl.load(dend_ptr + diagb + k), k - c0 + 1)
        end = tl.maximum(end, start)
        newmin = inf
        for ch in range(0, (end - start + BLOCK - 1) // BLOCK):
            i0 = start + ch * BLOCK + lanes
            j0 = k - i0
            act = i0 < end
            cell, valid, _, a_l, a_u, a_d = _cell(r_ptr, lo_ptr, hi_ptr, rowb, matb, M, i0, j0, act,
                                                  (j0 == c0) & (j0 > 0), e_l, e_d, delta_prev, zero)
            c = tl.load(cost_ptr + cell, mask=valid, other=0.0)
            rnew = _softmin_value(a_d, a_u, a_l, c, delta, scale, gln2, zero, inf)
            tl.store(r_ptr + cell, rnew, mask=valid)
            newmin = tl.minimum(newmin, tl.min(tl.where(valid, rnew, inf), axis=0))
            term = valid & (i0 == n - 1) & (j0 == m - 1)
            tl.store(value_ptr + pair + lanes * 0, (rnew.to(tl.float64) + off).to(scale.dtype), mask=term)
        # the frame of diagonal k at this strip's last column (row k - (c0 + W - 1)), for strip s + 1
        ob = k - (c0 + W - 1)
        tl.store(bout_ptr + ob, off, mask=(ob >= 0) & (ob < n))
        curmin = newmin
        delta_prev = delta
        e_d = e_l
        tl.debug_barrier()
        if (k + 1 - c0) % SYNC == 0:
            tl.atomic_xchg(pub_ptr, k + 1, sem="release", scope="gpu")  # diagonals <= k are done
    tl.debug_barrier()
    tl.atomic_xchg(pub_ptr, 1 << 30, sem="release", scope="gpu")
    tl.store(ctr_ptr + 1, 1, mask=stalled)  # a failed wait (only possible with a finite MAXSPIN)


def _softdtw_bwd_strip_kernel(r_ptr, aux_ptr, gv_ptr, grad_ptr, ggp_ptr, scr_ptr, bnd_ptr, flag_ptr, ctr_ptr,
                              xlen_ptr, ylen_ptr, lo_ptr, hi_ptr, dstart_ptr, dend_ptr, par_ptr, N, M, K, AUXC,
                              S, W, SYNC, MAXSPIN, BLOCK: tl.constexpr, NEED_GAMMA: tl.constexpr):
    vid = tl.atomic_add(ctr_ptr, 1)  # start order, as in the forward
    pair = vid // S
    s = S - 1 - vid % S  # strips in reverse: strip s waits on strip s + 1 (a lower id)
    n = tl.load(xlen_ptr + pair)
    m = tl.load(ylen_ptr + pair)
    c0 = s * W
    cend = tl.minimum(c0 + W, m)
    last = cend - 1 + n - 1
    pb = pair.to(tl.int64)
    matb = pb * N * M
    rowb = pb * N
    diagb = pb * K
    ks = N + W - 1
    auxb = pb * AUXC + s * 2 * ks - c0
    sb = pb * (S + 1) + s
    wait_ptr = flag_ptr + sb + 1  # progress of strip s + 1 (slot S of each pair is preset "done")
    pub_ptr = flag_ptr + sb
    # products G * w sent across the strip boundary, by the row of the receiving cell: kind 0 from
    # (i, c) to its left neighbour (i, c - 1), kind 1 from (i + 1, c) to (i, c - 1)
    gin_ptr = bnd_ptr + (sb + 1) * 2 * N
    gout_ptr = bnd_ptr + sb * 2 * N
    # ring of 3 diagonals x 3 kinds (0 = to the diagonal predecessor, 1 = up, 2 = left) by column - c0
    scrb = (pb * S + s) * 9 * W
    lanes = tl.arange(0, BLOCK)
    scale = tl.load(par_ptr)
    zero = scale * 0
    inf = zero + float("inf")
    g = tl.load(gv_ptr + pair)
    gacc = tl.zeros([BLOCK], dtype=tl.float64)
    known = vid * 0 - 1
    stalled = vid < 0
    for kk in range(0, last + 1 - c0):
        k = last - kk
        # strip s + 1 has finished diagonals >= k + 1 (progress K - k - 1)
        known = _wait(wait_ptr, known, K - k - 1, MAXSPIN)
        stalled = stalled | (known < K - k - 1)
        has_prev = k > c0
        delta_prev = tl.load(aux_ptr + auxb + k - 1, mask=has_prev, other=0.0)
        e_l = tl.load(aux_ptr + auxb + ks + k)
        e_d = tl.load(aux_ptr + auxb + ks + k - 1, mask=has_prev, other=0.0)
        start = tl.maximum(tl.load(dstart_ptr + diagb + k), k - cend + 1)
        end = tl.minimum(tl.load(dend_ptr + diagb + k), k - c0 + 1)
        end = tl.maximum(end, start)
        s0 = scrb + (k % 3) * 3 * W
        s1 = scrb + ((k + 1) % 3) * 3 * W
        s2 = scrb + ((k + 2) % 3) * 3 * W
        for ch in range(0, (end - start + BLOCK - 1) // BLOCK):
            i0 = start + ch * BLOCK + lanes
            j0 = k - i0
            act = i0 < end
            first = (j0 == c0) & (j0 > 0)
            cell, valid, hi_c, a_l, a_u, a_d = _cell(r_ptr, lo_ptr, hi_ptr, rowb, matb, M, i0, j0, act, first,
                                                     e_l, e_d, delta_prev, zero)
            vdn = valid & (i0 + 1 < N)
            lo_dn = tl.load(lo_ptr + rowb + i0 + 1, mask=vdn, other=0)
            hi_dn = tl.load(hi_ptr + rowb + i0 + 1, mask=vdn, other=0)
            jl = j0 - c0
            inner = jl + 1 < W  # the successors to the right are in this strip (else in strip s + 1)
            ok_l = valid & (j0 + 1 < hi_c)
            ok_d = vdn & (j0 + 1 >= lo_dn) & (j0 + 1 < hi_dn)
            gsum = tl.load(scr_ptr + s1 + 2 * W + jl + 1, mask=ok_l & inner, other=0.0)
            gsum += tl.load(gin_ptr + i0, mask=ok_l & (jl + 1 == W), other=0.0, cache_modifier=".cg")
            gsum += tl.load(scr_ptr + s1 + W + jl, mask=vdn & (j0 >= lo_dn) & (j0 < hi_dn), other=0.0)
            gsum += tl.load(scr_ptr + s2 + jl + 1, mask=ok_d & inner, other=0.0)
            gsum += tl.load(gin_ptr + N + i0, mask=ok_d & (jl + 1 == W), other=0.0, cache_modifier=".cg")
            gcell = gsum + tl.where(valid & (i0 == n - 1) & (j0 == m - 1), g, zero)
            w_d, w_u, w_l, ne = _softmin_weights(a_d, a_u, a_l, scale, zero, inf)
            tl.store(grad_ptr + cell, gcell, mask=valid)
            tl.store(scr_ptr + s0 + jl, gcell * w_d, mask=valid)
            tl.store(scr_ptr + s0 + W + jl, gcell * w_u, mask=valid)
            tl.store(scr_ptr + s0 + 2 * W + jl, gcell * w_l, mask=valid)
            tl.store(gout_ptr + i0, gcell * w_l, mask=valid & first)
            tl.store(gout_ptr + N + i0 - 1, gcell * w_d, mask=valid & first & (i0 >= 1))
            if NEED_GAMMA:
                gacc += tl.where(valid, (gcell * ne).to(tl.float64), 0.0)
        tl.debug_barrier()
        if (kk + 1) % SYNC == 0:
            tl.atomic_xchg(pub_ptr, K - k, sem="release", scope="gpu")  # diagonals >= k are done
    tl.debug_barrier()
    tl.atomic_xchg(pub_ptr, 1 << 30, sem="release", scope="gpu")
    tl.store(ctr_ptr + 1, 1, mask=stalled)  # a failed wait (only possible with a finite MAXSPIN)
    if NEED_GAMMA:
        tl.store(ggp_ptr + pb * S + s, tl.sum(gacc, axis=0))


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
    """The kernels ``(forward, backward, strip forward, strip backward)``, compiled or interpreted
    following triton's mode; built once (the helpers they call are jitted in place)."""
    if "kernels" in _BUILT:
        return _BUILT["kernels"]
    triton, tl_mod = _import_triton()
    global tl
    tl = tl_mod
    for name in _HELPERS:
        globals()[name] = triton.jit(globals()[name])
    _BUILT["kernels"] = tuple(triton.jit(f) for f in (_softdtw_fwd_kernel, _softdtw_bwd_kernel,
                                                      _softdtw_fwd_strip_kernel, _softdtw_bwd_strip_kernel))
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

# Strip schedule (few long pairs). Untuned: no GPU was available to measure the thresholds.
_STRIP_MIN_WIDTH = 128  # columns per strip chosen automatically (one chunk of >= 128 lanes)
_STRIP_MIN_ROWS = 256  # rows below which the pipeline's ramp (S * SYNC diagonals) is not worth it
_STRIP_PROGRAMS = 256  # at most B * S programs: bounds aux_shape whatever the GPU's SM count
_SYNC = 8  # diagonals between two progress publications (pipeline slack per strip)
_SPIN_FOREVER = 2**31 - 1


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


def _strip_geometry(m_pad: int, strips: int):
    """``(S, W)``: ``S`` strips of ``W`` columns covering ``m_pad`` columns, for ``strips`` asked."""
    width = -(-int(m_pad) // max(1, int(strips)))
    return -(-int(m_pad) // width), width


def _strip_cap(batch: int, n_pad: int, m_pad: int) -> int:
    """The most strips per pair the automatic schedule may choose for this shape, on any GPU."""
    if n_pad < _STRIP_MIN_ROWS or batch < 1:
        return 1
    return max(1, min(_STRIP_PROGRAMS // batch, m_pad // _STRIP_MIN_WIDTH))


def _aux_cols(n_pad: int, m_pad: int, strips: int, width: int) -> int:
    """Columns of ``aux`` a schedule needs: ``N + M - 1`` deltas (one program per pair), or per
    strip of ``width`` columns ``N + width - 1`` deltas and as many frame corrections."""
    return n_pad + m_pad - 1 if strips <= 1 else strips * 2 * (n_pad + width - 1)


def _sm_count(device) -> int:
    if device.type != "cuda":
        return 1  # the interpreter: the strip schedule only when asked for (strips=)
    import torch

    return torch.cuda.get_device_properties(device).multi_processor_count


def _schedule(batch: int, n_pad: int, m_pad: int, sms: int, block=None, pairs=None, strips=None):
    """Choose ``(PAIRS, BLOCK, num_warps, S, W)`` for a GPU with ``sms`` multiprocessors.

    Many short pairs: several pairs per program (about 256 lanes per program, while keeping at
    least about two programs per SM). Few long pairs (fewer than ``sms / 2`` pairs, ``N >= 256``,
    ``M >= 256``): ``S`` column strips of ``W`` columns per pair, one program each (``B S <= sms``);
    else one pair per program with up to 1024 lanes. ``block``/``pairs``/``strips`` override.
    """
    if strips is None:
        strips = max(1, min(sms // max(batch, 1), _strip_cap(batch, n_pad, m_pad)))
    if int(strips) < 1:
        raise ValueError(f"strips must be >= 1, got {strips}")
    s, width = _strip_geometry(m_pad, strips)
    if s > 1:
        if pairs not in (None, 1):
            raise ValueError(f"the strip schedule takes one pair per program, got pairs={pairs}")
        pairs = 1
    else:
        width = min(n_pad, m_pad)  # longest diagonal
    if block is None:
        block = min(1024, max(16, _next_pow2(min(width, n_pad))))
    if pairs is None:
        pairs = max(1, 256 // block)
        while pairs > 1 and -(-batch // pairs) < 2 * sms:
            pairs //= 2
    block, pairs = int(block), int(pairs)
    if block < 1 or block & (block - 1) or pairs < 1 or pairs & (pairs - 1):
        raise ValueError(f"block and pairs must be powers of 2, got block={block}, pairs={pairs}")
    num_warps = max(1, min(16, block * pairs // 64))
    return pairs, block, num_warps, s, width


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
    """Shape and dtype of ``aux`` for a ``(batch, n, m)`` cost (the contract's fake-tensor hook).

    A function of the shapes only: wide enough for every schedule the automatic choice can make
    for them on any GPU (the strip schedule's per-strip offsets included)."""
    import numpy as np

    cols = max(_aux_cols(n, m, *_strip_geometry(m, s)) for s in range(1, _strip_cap(batch, n, m) + 1))
    return (batch, cols), (np.float64 if np.dtype(dtype) == np.float64 else np.float32)


class _Sync:
    """The strip schedule's cross-program state for one launch: progress flags ``(B, S + 1)``
    (one slot per pair preset to "done": the first strip in the order of the waits), the start
    counter and the count of failed waits (interpreter only)."""

    def __init__(self, batch: int, strips: int, dev, preset_slot: int):
        import torch

        self.flags = torch.zeros((batch, strips + 1), dtype=torch.int32, device=dev)
        self.flags[:, preset_slot] = 1 << 30
        self.counter = torch.zeros(2, dtype=torch.int32, device=dev)
        self.maxspin = 1 if dev.type == "cpu" else _SPIN_FOREVER

    def check(self):
        if self.maxspin == 1 and int(self.counter[1]) != 0:
            raise RuntimeError("strip schedule: a program waited on one that had not run")


def forward(cost, gamma, x_len, y_len, lo, hi, *, block=None, pairs=None, strips=None):
    """Soft-DTW values and the state for :func:`backward` (see :mod:`softdtw.kernels`).

    ``cost`` ``(B, N, M)`` float32/float64 on CUDA (or CPU: interpreted). Returns
    ``(value (B,), r (B, N, M), aux)``: ``r`` is ``R`` relative to per-diagonal offsets (per strip
    and diagonal in the strip schedule) whose increments are in ``aux`` (shape :func:`aux_shape`);
    outside the used cells ``r`` is unspecified. ``block``/``pairs`` (powers of 2) override the
    schedule: rows per chunk and pairs per program; ``strips``: column strips per pair (1: one
    program per pair). :func:`backward` must be given the same overrides.
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
    p, blk, warps, s, width = _schedule(batch, n_pad, m_pad, _sm_count(dev), block, pairs, strips)
    auxc = max(aux_shape(batch, n_pad, m_pad, "float32")[0][1], _aux_cols(n_pad, m_pad, s, width))
    value = torch.zeros(batch, dtype=dtype, device=dev)
    r = torch.empty((batch, n_pad, m_pad), dtype=dtype, device=dev)
    aux = torch.zeros((batch, auxc), dtype=dtype, device=dev)
    if batch == 0:
        return value, r, aux
    fwd, _, fwd_strip, _ = _kernels_for(dev)
    dstart, dend = _diagonal_rows(lo, hi, x_len, n_pad, m_pad)
    par = _params(gamma, dtype, dev)
    if s == 1:
        fwd[(triton_cdiv(batch, p),)](cost, r, value, aux, x_len, y_len, lo, hi, dstart, dend,
                                       _order(x_len, y_len, p), par, batch, n_pad, m_pad, kdim, auxc,
                                       PAIRS=p, BLOCK=blk, num_warps=warps, enable_fp_fusion=True)
        return value, r, aux
    sync = _Sync(batch, s, dev, 0)
    bnd = torch.zeros((batch, s + 1, n_pad), dtype=torch.float64, device=dev)
    fwd_strip[(batch * s,)](cost, r, value, aux, bnd, sync.flags, sync.counter, x_len, y_len, lo, hi, dstart,
                            dend, par, n_pad, m_pad, kdim, auxc, s, width, _SYNC, sync.maxspin,
                            BLOCK=blk, num_warps=warps, enable_fp_fusion=True)
    sync.check()
    return value, r, aux


def backward(r, aux, gamma, x_len, y_len, lo, hi, grad_value, need_gamma_grad, *, block=None, pairs=None,
             strips=None):
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
    dev = r.device
    p, blk, warps, s, width = _schedule(batch, n_pad, m_pad, _sm_count(dev), block, pairs, strips)
    need = _aux_cols(n_pad, m_pad, s, width)
    if aux.dim() != 2 or aux.shape[0] != batch or aux.shape[1] < need:
        raise ValueError(f"aux must have shape ({batch}, >= {need}) for this schedule, got {tuple(aux.shape)}")
    grad_value = torch.as_tensor(grad_value, device=dev).to(dtype).expand(batch).contiguous()
    grad = torch.zeros((batch, n_pad, m_pad), dtype=dtype, device=dev)
    ggam = torch.zeros(batch, dtype=dtype, device=dev)
    if batch == 0:
        return grad, (ggam if need_gamma_grad else None)
    _, bwd, _, bwd_strip = _kernels_for(dev)
    dstart, dend = _diagonal_rows(lo, hi, x_len, n_pad, m_pad)
    par = _params(gamma, dtype, dev)
    need_gamma = bool(need_gamma_grad)
    if s == 1:
        scratch = torch.empty((batch, 3, 3, n_pad + 1), dtype=dtype, device=dev)
        bwd[(triton_cdiv(batch, p),)](r, aux, grad_value, grad, ggam, scratch, x_len, y_len, lo, hi, dstart,
                                       dend, _order(x_len, y_len, p), par, batch, n_pad, m_pad, kdim,
                                       aux.shape[1], PAIRS=p, BLOCK=blk, NEED_GAMMA=need_gamma,
                                       num_warps=warps, enable_fp_fusion=True)
        return grad, (ggam if need_gamma_grad else None)
    sync = _Sync(batch, s, dev, s)
    scratch = torch.empty((batch, s, 3, 3, width), dtype=dtype, device=dev)
    bnd = torch.zeros((batch, s + 1, 2, n_pad), dtype=dtype, device=dev)
    ggp = torch.zeros((batch, s), dtype=torch.float64, device=dev)  # per strip, summed here
    bwd_strip[(batch * s,)](r, aux, grad_value, grad, ggp, scratch, bnd, sync.flags, sync.counter, x_len,
                            y_len, lo, hi, dstart, dend, par, n_pad, m_pad, kdim, aux.shape[1], s, width,
                            _SYNC, sync.maxspin, BLOCK=blk, NEED_GAMMA=need_gamma, num_warps=warps,
                            enable_fp_fusion=True)
    sync.check()
    return grad, (ggp.sum(dim=1).to(dtype) if need_gamma_grad else None)


def triton_cdiv(a: int, b: int) -> int:
    return -(-int(a) // int(b))
