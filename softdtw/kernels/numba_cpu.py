r"""numba CPU kernel of soft-DTW (forward and backward), under the contract of :mod:`softdtw.kernels`.

Layout ("lanes")
----------------
A block of ``LANES`` SIMD lanes works on ``P`` pairs at once, each pair cut into ``S`` column
strips of width ``W`` (``P * S <= LANES``). Lane ``(p, s)`` holds strip ``s`` of pair ``p``
and runs one DP row behind lane ``(p, s - 1)``: at step ``t`` it computes row ``i = t - s`` of
its strip, taking the strip's left boundary column from its left neighbour's previous step.
All lanes of a step are independent, so the innermost loop runs over the lanes and vectorises
(cell-major buffers ``(W + 1, LANES)``). ``S = 1`` is "many pairs side by side", ``P = 1`` is
"one long pair in strips"; the plan (:func:`plan`) picks ``S`` from the shape. A pair takes
``N + S - 1`` steps.

Padded batches (``x_len``/``y_len`` below the padded sizes): the pairs are sorted by length
(by ``x_len``, in chunks sorted by ``y_len``) into blocks of ``P`` pairs, each block cropped to
its longest pair's lengths and given its own strips (:func:`_var_blocks`, chosen when its
lane-steps are under 0.8 of the padded layout's); the kernels read the cost and write the
gradient of the batch in place through the block's pair indices, and each block stores its
``R`` at its own offset of ``r`` (the crops sum to at most ``B N M``). Lanes whose columns are
ragged (pairs of one block with different lengths) still load the cost through the 8 x 8
register transposes and mask what lies outside their range, so padding never enters, whatever
it holds. At (64, lengths uniform in [64, 512], 8), float32, one thread: kernel forward +
backward 0.64x the time of the same batch at full length (real cells: 0.33x).

Cost source
-----------
:func:`forward` reads a ``(B, N, M)`` cost matrix (transposed into the lanes 8 x 8 through
registers, :func:`_fill_tile`) and :func:`backward` writes the cost's gradient. Their
``_sqeuclidean`` variants take float32 series ``x`` (B, N, D), ``y`` (B, M, D) instead: each
block lays ``y`` out in the lanes once, each step gathers the lanes' rows of ``x``, the forward
forms ``sum_d (x_id - y_jd)^2`` per cell (4 features per pass over the tile) and the backward
sums ``g E (x_i - y_j)`` into the gradient of ``x`` (per step, 4 columns per pass) and, unless
told ``y`` needs none, of ``y`` (in the lanes, over the sweep). The block functions are the
same, specialised by numba on the type of the source (:func:`_src_state`, :func:`_src_fill`,
:func:`_grad_state`, :func:`_grad_step`, :func:`_grad_done`). The torch loss uses them for up
to 8 features (``softdtw.torch._api.FUSED_MAX_FEATURES``).

Numerics
--------
* Values are kept in base-2 units ``R / (gamma ln 2)`` so that the softmin is
  ``m - log2(1 + 2^(m - mid) + 2^(m - max))`` (sorted inputs: two ``exp2`` and one ``log2``
  per cell). float32 uses vectorisable polynomial ``exp2`` (degree 5 on ``[-1/2, 1/2]``,
  relative error < 1.7e-7) and ``log2`` (its argument's power of 2 taken from the bits,
  absolute error < 1.4e-7);
  float64 vectorisable polynomials accurate to float64 rounding (within 0.85 ulp of the exact
  ``exp2``, 0.78 ulp of ``log2`` over what the kernel feeds them; libm's: 0.51 and 0.54;
  ``benchmarks/accuracy_exp2_log2.py``), which took the float64 kernel from scalar libm
  calls to 4 lanes per AVX2 vector.
* float32: ``r`` stores ``R`` relative to a per-lane offset, re-based every step by the
  minimum of the lane's previous row (which the backward recomputes from the stored row), so
  float32 ``R`` stays small and differences of neighbours stay accurate at any size. float64
  keeps ``R`` itself (offsets stay 0), and its products are never fused into FMAs
  (:func:`_mulx`), so that every cell's value and ``E`` are those of a plain row recursion
  with the same functions, which the checkpointed kernel recomputes to the last bit; a
  strip's first column sums its pushes as a cell inside a strip does. A strip's left boundary
  value moves from its neighbour's offset to its own by a float32 number kept in ``aux``
  (float64 ``(B, S (N + S - 1))``, see :func:`aux_shape`).
* The backward recomputes every cell's normalised softmin weights from its three stored
  predecessors (exactly as the forward formed them, exponents <= 0) and pushes
  ``E[cell] * w`` back to them: mass is conserved, nothing overflows, no cost is needed.
* ``r`` has shape ``(B, N, M)`` but an internal layout: per block, per step, per column, the
  lanes (strips are stored without padding, so it holds exactly one float per cell).

Performance notes (2-core AMD EPYC, AVX2, machine shared with other jobs; see
``benchmarks/bench_numba_cpu.py``)
-------------------------------------------------------------------------------------------
* The lane loops vectorise only over 2-d ``(W, LANES)`` buffers (flat indexing keeps numba's
  negative-index wraparound and LLVM gives up), with ``-hoist-runtime-checks=false``. Column
  0 of a row (the strip's left boundary) is a separate ``(LANES,)`` vector, so that where a
  step fills every lane (``P S = LANES``, ``S W = M``, all rows in range) the forward computes
  the row straight into ``r`` and the backward reads it from there (no per-step copies).
* The cost and gradient transposes into and out of the lane layout go through registers in
  8 x 8 blocks (:func:`_transpose8`, float32; float64 keeps scalar loops).
* float32, one thread, quiet core: forward ~3.1-3.7 ns per cell, forward + backward
  ~8.0-8.6 ns at (32,256,256), (512,32,32), (1,4096,4096) (was ~3.8-4.4 and ~10.2-10.7).
  Since (``_NoAliasCompiler``, the float32 ``log2`` range reduction from the bits, the
  degree-5 ``exp2``), the fused squared Euclidean kernels, forward / backward: (32,256,256,8)
  2.4-2.5 / 3.6-3.8, (512,32,32,2) 2.2 / 2.9-3.1, (32,256,256,1) 1.8-1.9 / 2.7-2.8 (were
  3.0-3.2 / 4.7-5.0, 2.6-2.7 / 3.7-3.9, 2.2-2.3 / 3.3-3.6). The backward's pass over each
  stored row for its minimum (``_row_delta``) also brings the row into the cache: keeping the
  minimum in ``aux`` instead and dropping the pass made the backward ~50% slower (the row
  loop then waits on the loads of the rows, read once and in reverse), and a software
  prefetch of the next row from that pass measured no gain.
  Ablations: the backward DP arithmetic (``need_gamma_grad``: three ``exp2``, one ``log2``,
  one division per cell) ~4 ns, the gradient write ~1 ns (much of it first-touch page faults
  of the new output), the cost transpose ~0.6 ns. Selecting two ``exp2`` by the sorted order
  in the backward (as the forward does) measured no gain there (AVX2); on a Zen 4 EPYC
  (AVX-512, session 11) it made the backward ~3% faster, and :func:`_weights2` does it. A
  second thread could not be measured here (the other core was busy with other jobs). With more than one thread, each
  thread (the caller's included) makes one numba call that takes blocks from a shared atomic
  counter (:func:`_fwd_blocks`, :func:`_bwd_blocks`): no Python, future or GIL hand-over
  between blocks.
* Session 10, a 2-vCPU Intel Xeon (Sapphire Rapids: AVX-512, KVM), float32, kernel
  forward / backward ns per cell, one thread: (512,32,32,2) 1.43 / 1.90-1.94, (32,256,256,8)
  1.52-1.57 / 1.87-1.93; two threads 0.73 / 0.93 and ~0.8 / ~0.95. What it took there:
  no subnormals in the recursion (:data:`_FLUSH`: the backward ran 14.3 ns per cell, every
  multiply with a subnormal taking a microcode assist), 512-bit vectors
  (:func:`_wide_vectors`), the blocks on numba's parallel region (:func:`_run_plan`: a round
  trip through the Python pool took ~85 us, a region ~2 us) and less scalar per-lane work per
  step. Tried there and not kept: reciprocal estimates for the divisions (no gain), 128 lanes
  (forward ~15% slower), one vector iteration interleaved instead of two (slower), a
  branch-free ``_lane_columns`` or y-into-lanes gather (no gain).
* Session 11, a 2-vCPU AMD EPYC (Zen 4: AVX-512, where LLVM picks 512-bit vectors by
  itself), perf by 256-byte region at (32,256,256,8), one thread: the backward's hottest
  instruction is the weights' ``vdivps``; ``_row_delta``'s min loop takes ~11% of the
  backward's samples (the first read of each stored row: the misses land there); the
  forward spends ~19% forming the D = 8 cost (``x_i - y_j``, squared and summed; the
  ``|x|^2 + |y|^2 - 2 x.y`` form would halve it but loses the cost near alignments to
  cancellation). Two threads scaled by only ~1.3x there (one thread 1.35 / 1.77, two 1.01 /
  1.32 ns per cell forward / backward at (512,32,32,2)): the vCPUs share a host.
* Measure with a warm numba cache: code compiled in the same process measured ~6x slower
  (forward ~22 ns per cell) than the same code loaded from the cache, reproducibly
  (``NUMBA_CACHE_DIR=<empty dir>``); cause not found (the MCJIT in-memory code against the
  cached object code?). A first run after install, or a read-only cache, pays it.
* Open: that first-run slowdown; two chained strip blocks for one long pair on two cores;
  cheaper backward weights.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor, wait

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.compiler import Compiler
from numba.extending import intrinsic, overload

# LLVM >= 17 hoists the runtime alias checks of the vectorised lane loops out of the loop over
# columns, where they always fail (the rows of one buffer overlap across columns), and then runs
# the scalar loop: keep them per column (NUMERICS.md).
# (LLVM exits the process on an unknown option, so only set it where it exists: LLVM >= 17.)
import llvmlite.binding as _llb

if tuple(_llb.llvm_version_info) >= (17,):
    _llb.set_option("softdtw", "-hoist-runtime-checks=false")

__all__ = ["LANES", "aux_shape", "backward", "backward_sqeuclidean", "forward", "forward_sqeuclidean", "plan"]

LANES = 64  # SIMD lanes per block (8 AVX2 float32 vectors in flight: hides the latency of a cell)
MIN_STRIP = 16  # narrowest column strip worth its boundary exchange
VAR_STRIPS = 8  # strips per pair that aux leaves room for in blocks of a padded batch
LN2 = math.log(2.0)

_FM = {"contract", "arcp"}  # no nnan/ninf: +inf marks cells outside the band
_JIT = dict(cache=True, nogil=True, error_model="numpy", fastmath=_FM)


class _NoAliasCompiler(Compiler):
    """numba's compiler with the pointer arguments of the compiled function marked ``noalias``
    (``Flags.noalias``, which numba sets for the gufuncs of its parallel loops).

    For the functions that run the lane loops (``_JIT_NOALIAS``): without it LLVM cannot tell
    that ``cur[w - 1, :]`` and ``prev[w - 2, :]`` do not overlap, and checks at run time before
    every vectorised lane loop (a block of ~100-130 scalar compares per column, ~15-20% of the
    instructions of the row loops). The contract that makes it true: no array that such a
    function writes shares memory with another of its array arguments (two rows of ``store``
    or ``scr`` given together are different rows; views that share memory with another
    argument, such as the flat cost beside the cost, are only read). Two arguments may share a
    meminfo (views of one buffer); the function touches meminfos only to take and drop its own
    references while the caller holds one, so the count never reaches zero there.
    Measured, one thread, float32, kernel forward / backward ns per cell: (32,256,256,8)
    2.8 / 4.3 -> 2.5 / 3.7, (32,256,256,1) backward 3.3 -> 2.8."""

    def __init__(self, typingctx, targetctx, library, args, return_type, flags, locals):
        flags = flags.copy()
        flags.noalias = True
        super().__init__(typingctx, targetctx, library, args, return_type, flags, locals)


_JIT_NOALIAS = dict(_JIT, pipeline_class=_NoAliasCompiler)


# ---------------------------------------------------------------------------
# Scalar math, specialised by dtype (vectorisable polynomials: float32 ~1e-7, float64 < 1 ulp)
# ---------------------------------------------------------------------------


def _host_has_avx512() -> bool:
    try:
        return "+avx512f" in _llb.get_host_cpu_features().flatten().split(",")
    except Exception:  # pragma: no cover - no feature string (not x86, or llvmlite moved)
        return False


_WIDE_ATTR = '"prefer-vector-width"="512"' if _host_has_avx512() else None


@intrinsic
def _wide_vectors(typingctx):
    """Let LLVM vectorise the calling function's loops with 512-bit vectors where the host has
    AVX-512 (the function attribute ``"prefer-vector-width"="512"``; LLVM's tuning for Intel
    server cores otherwise stops at 256 bits). The lane loops are long and uniform, so the
    wider vectors pay: measured on a Sapphire Rapids Xeon (see the performance notes)."""
    sig = types.none()

    def codegen(context, builder, signature, args):
        if _WIDE_ATTR is not None:
            set.add(builder.function.attributes, _WIDE_ATTR)  # llvmlite lists no string attributes
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _pow2i(typingctx, n):
    """``2 ** n`` for an integral float32 (float64) ``n`` in ``[-127, 0]`` (``[-1023, 0]``);
    ``n = -127`` (``-1023``) gives exactly 0."""
    if n not in (types.float32, types.float64):
        return None
    bits, mantissa, bias = (32, 23, 127) if n == types.float32 else (64, 52, 1023)
    sig = n(n)

    def codegen(context, builder, signature, args):
        it = ir.IntType(bits)
        i = builder.fptosi(args[0], it)
        i = builder.add(i, ir.Constant(it, bias))
        i = builder.shl(i, ir.Constant(it, mantissa))
        return builder.bitcast(i, context.get_value_type(n))

    return sig, codegen


@intrinsic
def _split_sqrt2(typingctx, s):
    """``(k, x)`` with ``s = 2^k x``, ``x`` in ``[1/sqrt 2, sqrt 2)``, for a positive normal
    float32 ``s`` (``k`` as float32), from the bits: ``k = (bits(s) - bits(1/sqrt 2)) >> 23``."""
    if s != types.float32:
        return None
    sig = types.UniTuple(types.float32, 2)(s)

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        f32 = ir.FloatType()
        i = builder.bitcast(args[0], i32)
        e = builder.ashr(builder.sub(i, ir.Constant(i32, 0x3F3504F3)), ir.Constant(i32, 23))
        x = builder.bitcast(builder.sub(i, builder.shl(e, ir.Constant(i32, 23))), f32)
        k = builder.sitofp(e, f32)
        return context.make_tuple(builder, signature.return_type, [k, x])

    return sig, codegen


@intrinsic
def _ticket(typingctx, counter):
    """``counter[0]``, then adds 1 to it atomically: the next block for the calling thread
    (threads sharing one ``(1,)`` int64 counter take each block once)."""
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None
    sig = types.int64(counter)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        return builder.atomic_rmw("add", ary.data, ir.Constant(ir.IntType(64), 1), "monotonic")

    return sig, codegen


@intrinsic
def _fma64(typingctx, a, b, c):
    """float64 ``a * b + c`` rounded once (``llvm.fma``): the same rounding in every kernel,
    whatever LLVM would have contracted."""
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        f64 = ir.DoubleType()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(f64, [f64, f64, f64]), "llvm.fma.f64")
        return builder.call(fn, list(args))

    return sig, codegen


# float64 2^f on [-1/2, 1/2]: Taylor series of exp(f ln 2) to degree 13 (truncation < 5e-18
# relative), highest degree first
_EXP2_F64 = (1.3691488853904128e-12, 2.5678435993488206e-11, 4.4455382718708116e-10, 7.054911620801123e-09,
             1.01780860092397e-07, 1.321548679014431e-06, 1.5252733804059841e-05, 0.0001540353039338161,
             0.0013333558146428443, 0.009618129107628477, 0.05550410866482158, 0.24022650695910072,
             0.6931471805599453)
# float64 log2(x) = u * sum_k c_k u^(2k), u = (x - 1) / (x + 1), x in [1/sqrt 2, sqrt 2]:
# c_k = 2 / ((2k + 1) ln 2), k <= 10 (truncation < 1e-18 relative), highest degree first
# (c_10 .. c_1 here; c_0 in double-double below)
_LOG2_F64 = (0.1373995277037108, 0.15186263588304877, 0.16972882833987804, 0.19235933878519512,
             0.22195308321368667, 0.2623081892525388, 0.3205988979753252, 0.4121985831111324,
             0.5770780163555853, 0.9617966939259756)
_LOG2_C0_HI = 2.8853900817779268  # c_0 = 2 / ln 2 = _LOG2_C0_HI + _LOG2_C0_LO
_LOG2_C0_LO = 4.0710547481862066e-17


def _make_prefetch(rw):
    @intrinsic
    def prefetch(typingctx, arr, idx):
        sig = types.void(arr, idx)

        def codegen(context, builder, signature, args):
            ary = context.make_array(signature.args[0])(context, builder, args[0])
            ptr = builder.gep(ary.data, [args[1]])
            i8p = ir.IntType(8).as_pointer()
            i32 = ir.IntType(32)
            fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
            builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, rw), ir.Constant(i32, 3),
                              ir.Constant(i32, 1)])
            return context.get_dummy_value()

        return sig, codegen

    return prefetch


_prefetch_r = _make_prefetch(0)  # software prefetch of arr[idx] (1-d) for reading
_prefetch_w = _make_prefetch(1)  # ... for writing


def _mulx(a, b):
    """``a * b``; in float64 never fused with an addition into an FMA, so that every kernel
    that writes the same expression rounds it the same way (the checkpointed kernel of
    :mod:`softdtw.kernels.numba_checkpoint` reproduces this one bit for bit)."""


@overload(_mulx, jit_options=dict(fastmath=_FM, error_model="numpy"))
def _ol_mulx(a, b):
    if a == types.float64 and b == types.float64:
        # fma(a, b, +0) is a * b rounded once (-0 products become +0), and LLVM folds it into
        # an fmul only under nsz, which the kernels do not set; unlike an fmul (numba flags every
        # instruction 'contract') it is never fused with a later addition, and unlike
        # llvm.arithmetic.fence it vectorises
        return lambda a, b: _fma64(a, b, 0.0)
    return lambda a, b: a * b


def _rebases(zero_):
    """Whether ``r`` holds ``R`` relative to per-lane offsets: float32 (accuracy at any size),
    not float64, which keeps ``R`` itself (enough there, and the same numbers as a plain row
    recursion: what the checkpointed kernel recomputes)."""


@overload(_rebases, jit_options=dict(fastmath=_FM, error_model="numpy"))
def _ol_rebases(zero_):
    if zero_ == types.float64:
        return lambda zero_: False
    return lambda zero_: True


@njit(inline="always", **_JIT)
def _horner64(c, x):
    """``c[0] x^(n-1) + ... + c[n-1]`` (float64), one FMA per coefficient."""
    q = c[0]
    for k in range(1, len(c)):
        q = _fma64(q, x, c[k])
    return q


def _exp2_core(t):
    """``2 ** t`` for ``t`` in ``[-127, 0]`` (float32) / ``[-1023, 0]`` (float64), exactly 0 at
    the low end (no clamp: the callers clamp)."""


def _exp2m(t):
    """``2 ** t`` for ``t <= 0`` (``-inf`` allowed; exactly 0 below the float32 normal range)."""


def _exp2w(t):
    """:func:`_exp2m` for the softmin's terms and weights: exactly 0 below ``2 ** FLUSH_T``
    (never a subnormal; see :func:`_flush_e`)."""


def _flush_e(e):
    """An ``E`` (a probability, in ``[0, 1]``) below ``2 ** FLUSH_E`` as exactly 0."""


def _clampt(t):
    """``t`` clamped from below so that ``w * t`` is 0 (not NaN) where ``w = 2 ** t == 0``."""


def _log2_13(s):
    """``log2(s)`` for ``1 <= s <= 3``."""


# Subnormals. x86 multiplies (and FMAs) whose input or result is subnormal take a microcode
# assist of ~100+ cycles unless the thread runs with FTZ/DAZ, which numba cannot set reliably
# (LLVM moves floating-point code across a write of MXCSR). In the backward, E decays away
# from the alignment path through the whole subnormal range: on a Sapphire Rapids Xeon the
# float32 backward at (32,256,256,8) took 14.3 ns per cell, 2.6 with FTZ/DAZ set. So the
# recursion never makes one: weights are 0 below 2^FLUSH_T (softmin terms >= 2^(FLUSH_T - 1/2),
# weights >= a third of that) and E below 2^FLUSH_E is 0, so that every product of a weight
# and an E is normal or 0. Terms below 2^-60 vanish in 1 + ... in float32 (below 2^-500 in
# float64), so values are unchanged to the bit; gradients change by < 2^-60 (2^-500) relative.
_FLUSH = {types.float32: (np.float32(-60.0), np.float32(2.0**-60), np.float32(-127.0)),
          types.float64: (-500.0, 2.0**-500, -1023.0)}


@overload(_exp2_core, jit_options=dict(fastmath=_FM, error_model="numpy"))
def _ol_exp2_core(t):
    if t == types.float32:
        def impl(t):
            # f in [-1/2, 1/2] (rounded to nearest): a degree-5 polynomial, relative error
            # < 2e-7 (one FMA less than degree 6 on [0, 1)); t = -127 gives exactly 0
            n = np.rint(t)
            f = t - n
            q = np.float32(0.001326472731307149)
            q = q * f + np.float32(0.009671512991189957)
            q = q * f + np.float32(0.05550733581185341)
            q = q * f + np.float32(0.24022242426872253)
            q = q * f + np.float32(0.6931470036506653)
            p = q * f + np.float32(1.0)
            return p * _pow2i(n)
        return impl
    if t == types.float64:
        c = _EXP2_F64

        def impl(t):
            # vectorisable, within 1 ulp of the exact 2^t (benchmarks/accuracy_exp2_log2.py);
            # t = -1023 gives exactly 0 (libm: subnormals), t = 0 exactly 1
            n = np.floor(t + 0.5)
            f = t - n
            q = _horner64(c, f)
            p = _fma64(q, f, 1.0)
            return _mulx(p, _pow2i(n))
        return impl


@overload(_exp2m, jit_options=dict(fastmath=_FM, error_model="numpy"))
def _ol_exp2m(t):
    if t in _FLUSH:
        lo = _FLUSH[t][2]
        return lambda t: _exp2_core(t if t > lo else lo)


@overload(_exp2w, jit_options=dict(fastmath=_FM, error_model="numpy"))
def _ol_exp2w(t):
    if t in _FLUSH:
        fl, _, lo = _FLUSH[t]
        return lambda t: _exp2_core(t if t > fl else lo)


@overload(_flush_e, jit_options=dict(fastmath=_FM, error_model="numpy"))
def _ol_flush_e(e):
    if e in _FLUSH:
        fl = _FLUSH[e][1]
        zero = fl - fl
        return lambda e: e if e >= fl else zero


@overload(_clampt, jit_options=dict(fastmath=_FM, error_model="numpy"))
def _ol_clampt(t):
    if t == types.float32:
        return lambda t: t if t > np.float32(-127.0) else np.float32(-127.0)
    if t == types.float64:
        return lambda t: t if t > -1100.0 else -1100.0


@overload(_log2_13, jit_options=dict(fastmath=_FM, error_model="numpy"))
def _ol_log2_13(s):
    if s == types.float32:
        def impl(s):
            # s = 2^k x, x in [1/sqrt 2, sqrt 2), from the bits (integer ops: no compares,
            # selects or multiplies on the FP pipes)
            k, x = _split_sqrt2(s)
            u = (x - np.float32(1.0)) / (x + np.float32(1.0))
            u2 = u * u
            q = np.float32(0.430568128824234)
            q = q * u2 + np.float32(0.5767596364021301)
            q = q * u2 + np.float32(0.9617984294891357)
            q = q * u2 + np.float32(2.885390043258667)
            return k + u * q
        return impl
    if s == types.float64:
        c = _LOG2_F64

        def impl(s):
            # vectorisable, within about 1 ulp of the exact log2 (benchmarks/accuracy_exp2_log2.py):
            # u = (x - 1) / (x + 1) with its rounding error ul, and the leading term c_0 u in
            # double-double (c_0 = _LOG2_C0_HI + _LOG2_C0_LO)
            big = s >= 1.4142135623730951
            huge = s >= 2.8284271247461903
            k = 2.0 if huge else (1.0 if big else 0.0)
            x = s * (0.25 if huge else (0.5 if big else 1.0))
            f = x - 1.0  # exact
            d = x + 1.0
            bv = d - x
            dl = (x - (d - bv)) + (1.0 - bv)  # x + 1 = d + dl exactly
            u = f / d
            r = _fma64(-u, d, f)  # f - u d, exactly
            ul = (r - _mulx(u, dl)) / d
            u2 = _mulx(u, u)
            q = _horner64(c, u2)  # c_1 + c_2 u^2 + ...
            hi = _mulx(u, _LOG2_C0_HI)
            lo = _fma64(u, _LOG2_C0_HI, -hi)  # the rounding error of hi
            lo = lo + (_mulx(u, _LOG2_C0_LO) + _mulx(ul, _LOG2_C0_HI))
            lo = _fma64(_mulx(u, u2), q, lo)
            return k + (hi + lo)
        return impl


@njit(inline="always", **_JIT)
def _softmin2(a, b, c, inf_, zero_, one_):
    """Base-2 softmin ``-log2(2^-a + 2^-b + 2^-c)``, minimum factored out; +inf when all are."""
    lo_ab = a if a < b else b
    hi_ab = b if a < b else a
    m = lo_ab if lo_ab < c else c
    mx = hi_ab if hi_ab > c else c
    t = hi_ab if hi_ab < c else c
    md = lo_ab if lo_ab > t else t
    mm = m if m < inf_ else zero_
    s = one_ + _exp2w(mm - md) + _exp2w(mm - mx)
    return m - _log2_13(s)


@njit(inline="always", **_JIT)
def _weights2(a, b, c, inf_, zero_, one_):
    """Normalised softmin weights of (a, b, c) (all 0 when all are +inf). The minimum's term
    is 2^0 = 1, so two exp2, not three (as :func:`_softmin2`); the same bits as
    ``_exp2w(m - a)``, ``_exp2w(m - b)``, ``_exp2w(m - c)`` (ties and NaN included)."""
    lo_ab = a if a < b else b
    hi_ab = b if a < b else a
    c_hi = lo_ab < c  # the minimum is lo_ab (else c)
    m = lo_ab if c_hi else c
    other = c if c_hi else lo_ab  # the one of (lo_ab, c) that is not the minimum
    fin = m < inf_
    mm = m if fin else zero_
    e_hi = _exp2w(mm - hi_ab)
    e_other = _exp2w(mm - other)
    e_min = one_ if fin else zero_
    e_lo = e_min if c_hi else e_other
    ec = e_other if c_hi else e_min
    ea = e_lo if a < b else e_hi
    eb = e_hi if a < b else e_lo
    s = ea + eb + ec
    s = s if s > one_ else one_  # s >= 1 when one input is finite
    inv = one_ / s
    return _mulx(ea, inv), _mulx(eb, inv), _mulx(ec, inv)


@njit(inline="always", **_JIT)
def _weights2_ent(a, b, c, inf_, zero_, one_):
    """:func:`_weights2` and ``sum_p w_p log2 w_p``."""
    m = a if a < b else b
    m = m if m < c else c
    m = m if m < inf_ else zero_
    ta = _clampt(m - a)
    tb = _clampt(m - b)
    tc = _clampt(m - c)
    ea = _exp2w(ta)
    eb = _exp2w(tb)
    ec = _exp2w(tc)
    s = ea + eb + ec
    s = s if s > one_ else one_
    inv = one_ / s
    wa = ea * inv
    wb = eb * inv
    wc = ec * inv
    return wa, wb, wc, wa * ta + wb * tb + wc * tc - _log2_13(s)


# ---------------------------------------------------------------------------
# Block layout
# ---------------------------------------------------------------------------


@njit(inline="always", **_JIT)
def _lane_of(p, s, S, Pr):
    # full-width strips first, then the last strip of each pair (possibly narrower): the
    # number of lanes holding column w is non-increasing in w, so the store packs them
    return p * (S - 1) + s if s < S - 1 else Pr * (S - 1) + p


@njit(**_JIT)
def _lane_tables(Pr, S, W, M):
    L = LANES
    lane_p = np.full(L, -1, np.int64)
    lane_s = np.zeros(L, np.int64)
    lane_left = np.full(L, -1, np.int64)
    lane_wid = np.zeros(L, np.int64)
    wl = M - (S - 1) * W
    for p in range(Pr):
        for s in range(S):
            ln = _lane_of(p, s, S, Pr)
            lane_p[ln] = p
            lane_s[ln] = s
            lane_wid[ln] = W if s < S - 1 else wl
            if s > 0:
                lane_left[ln] = _lane_of(p, s - 1, S, Pr)
    # store offsets: column w (0-based) of a step holds the lanes l < cnt[w], at colstart[w]
    cnt = np.zeros(W, np.int64)
    colstart = np.zeros(W + 1, np.int64)
    for w in range(W):
        cnt[w] = Pr * (S - 1) + (Pr if w < wl else 0)
        colstart[w + 1] = colstart[w] + cnt[w]
    return lane_p, lane_s, lane_left, lane_wid, cnt, colstart


# ---------------------------------------------------------------------------
# Forward
# ---------------------------------------------------------------------------


@njit(inline="always", **_JIT)
def _lane_columns(t, L, N, W, bp, lo, hi, lane_p, lane_s, lane_wid, jlo, jhi):
    """Columns (1-based within its strip) that each lane touches at step ``t``, from the band
    bounds, into ``jlo``/``jhi``; returns the union ``[wlo, whi)`` over the lanes."""
    wlo = W + 1
    whi = 1
    for ln in range(L):
        p = lane_p[ln]
        i = t - lane_s[ln]
        jlo[ln] = 0
        jhi[ln] = 0
        if p >= 0 and i >= 0 and i < N:
            c0 = lane_s[ln] * W
            a = lo[bp[p], i] - c0
            z = hi[bp[p], i] - c0
            a = a if a > 0 else 0
            z = z if z < lane_wid[ln] else lane_wid[ln]
            if z > a:
                jlo[ln] = a + 1
                jhi[ln] = z + 1
                wlo = min(wlo, a + 1)
                whi = max(whi, z + 1)
    return wlo, whi


@njit(**_JIT)
def _fwd_block(cost, lo, hi, xl, yl, bp, Pr, S, W, N, M, inv_scale, out_scale, store, shifts, value,
               inf_, zero_, one_):
    """Pairs ``bp[:Pr]`` of the batch, over their first ``N`` rows and ``M`` columns: R into
    ``store``, the boundary re-basings into ``shifts``, the values into ``value``."""
    L = LANES
    T = N + S - 1
    rowsize = Pr * M
    ring = store.size // rowsize  # N; 2 for values only (no backward: each step overwrites the one before last)
    lane_p, lane_s, lane_left, lane_wid, cnt, colstart = _lane_tables(Pr, S, W, M)
    dt = store.dtype
    src_state = _src_state(cost, bp, Pr, W, yl, lane_p, lane_s, lane_wid)
    # the row of each lane at step t - 1: column 0 (left boundary) in prev0, columns 1..W in
    # prevv; cur0, curv: at step t. curv is a view of ``store`` where the step fills every lane
    # (no copy), else scr[t % 2]
    scr = np.full((2, W, L), inf_, dt)
    prev0 = np.full(L, inf_, dt)
    cur0 = np.full(L, inf_, dt)
    prevv = scr[1]
    ct = np.full((W, L), inf_, dt)
    delta = np.zeros(L, dt)
    carry = np.zeros(L, dt)
    rmin = np.full(L, inf_, dt)
    offl = np.zeros(L, np.float64)  # each lane's offset (its R = stored + offl)
    offn = np.zeros(L, np.float64)
    bd = np.zeros(L, dt)
    # terminal cells
    t_term = np.empty(Pr, np.int64)
    w_term = np.empty(Pr, np.int64)
    l_term = np.empty(Pr, np.int64)
    for p in range(Pr):
        st = (yl[bp[p]] - 1) // W
        t_term[p] = xl[bp[p]] - 1 + st
        w_term[p] = yl[bp[p]] - 1 - st * W + 1
        l_term[p] = _lane_of(p, st, S, Pr)
    t_min = t_term.min()
    t_max = t_term.max()
    for ln in range(L):
        if lane_p[ln] >= 0 and lane_s[ln] == 0:
            prev0[ln] = zero_  # R[0, 0] = 0
    fullrow = Pr * S == L and cnt[W - 1] == L
    jlo = np.zeros(L, np.int64)
    jhi = np.zeros(L, np.int64)
    for t in range(T):
        base = (t % ring) * rowsize
        direct = fullrow and t >= S - 1 and t < N
        if direct:
            curv = store[base:base + W * L].reshape((W, L))
        else:
            curv = scr[t % 2]
        # re-base each lane on the minimum of its previous row (the backward recomputes it
        # from the stored row); the left boundary column (R[i, s W - 1], the left neighbour's
        # last column one step earlier) moves from the neighbour's offset to this lane's by
        # bd, kept in ``shifts`` so that the backward forms it identically
        for ln in range(L):
            r0 = rmin[ln]
            sh = r0 if (r0 < inf_ and _rebases(zero_)) else zero_
            delta[ln] = -sh
            offn[ln] = offl[ln] + sh
            rmin[ln] = inf_
        if S > 1:
            for ln in range(L):
                lf = lane_left[ln]
                if lf >= 0:
                    bd[ln] = offl[lf] - offn[ln]
                    shifts[lane_p[ln], lane_s[ln] * T + t] = bd[ln]
                    cur0[ln] = prevv[W - 1, lf] + bd[ln]
                else:
                    cur0[ln] = inf_
        else:  # one strip: no lane has a left neighbour
            for ln in range(L):
                cur0[ln] = inf_
        for ln in range(L):
            offl[ln] = offn[ln]
        # the columns this step touches, and the cost tile
        wlo, whi = _lane_columns(t, L, N, W, bp, lo, hi, lane_p, lane_s, lane_wid, jlo, jhi)
        for w in range(1, W + 1):
            if w < wlo or w >= whi:
                for ln in range(L):
                    curv[w - 1, ln] = inf_
        if whi > wlo:
            _src_fill(cost, src_state, t, W, bp, lane_p, lane_s, jlo, jhi, ct, wlo, whi, inv_scale, inf_)
            _fwd_rows(prev0, prevv, cur0, curv, ct, delta, carry, rmin, wlo, whi, inf_, zero_, one_)
        # values
        if t >= t_min and t <= t_max:
            for p in range(Pr):
                if t_term[p] == t:
                    value[p] = (np.float64(curv[w_term[p] - 1, l_term[p]]) + offl[l_term[p]]) * out_scale
        # store the step (lanes whose row is in [0, N)), unless computed in place
        if direct:
            pass
        elif t >= S - 1 and t < N:
            for w in range(W):
                cs = base + colstart[w]
                for ln in range(cnt[w]):
                    store[cs + ln] = curv[w, ln]
        else:
            for w in range(W):
                cs = base + colstart[w]
                for ln in range(cnt[w]):
                    i = t - lane_s[ln]
                    if i >= 0 and i < N:
                        store[cs + ln] = curv[w, ln]
        prevv = curv
        prev0, cur0 = cur0, prev0


def _src_state(src, bp, Pr, W, yl, lane_p, lane_s, lane_wid):
    """Per-block state of the forward's cost source ``src``: a ``(B, N, M)`` cost matrix, or
    ``(x, y)``, series ``(B, N, D)`` and ``(B, M, D)`` whose squared Euclidean cost the kernel
    forms itself (no cost matrix: :func:`forward_sqeuclidean`)."""


def _src_fill(src, state, t, W, bp, lane_p, lane_s, jlo, jhi, ct, wlo, whi, scale, inf_):
    """The cost tile of step ``t``: ``ct[w - 1, ln]`` = the cost of lane ``ln``'s cell in column
    ``w`` times ``scale`` for ``jlo[ln] <= w < jhi[ln]``, else +inf, over ``wlo <= w < whi``."""


@overload(_src_state, jit_options=dict(fastmath=_FM, error_model="numpy"))
def _ol_src_state(src, bp, Pr, W, yl, lane_p, lane_s, lane_wid):
    if isinstance(src, types.Array):
        def impl(src, bp, Pr, W, yl, lane_p, lane_s, lane_wid):
            # the flat cost, and each lane's offset of its row (cost[b, i, c0 + w] at flat[off + w])
            return src.reshape(-1), np.zeros(LANES, np.int64)
        return impl

    def impl(src, bp, Pr, W, yl, lane_p, lane_s, lane_wid):
        # y in the lanes, once per block: yt[(w - 1) D + d, ln] = y[b, c0 + w - 1, d], 0 past
        # the pair's length (padding never enters); x's row of each lane, per step
        y = src[1]
        D = y.shape[2]
        yt = np.zeros((W * D, LANES), y.dtype)
        for ln in range(LANES):
            p = lane_p[ln]
            if p >= 0:
                b = bp[p]
                c0 = lane_s[ln] * W
                for w in range(min(lane_wid[ln], yl[b] - c0)):
                    for d in range(D):
                        yt[w * D + d, ln] = y[b, c0 + w, d]
        return yt, np.zeros((D, LANES), y.dtype)
    return impl


@overload(_src_fill, jit_options=dict(fastmath=_FM, error_model="numpy", pipeline_class=_NoAliasCompiler))
def _ol_src_fill(src, state, t, W, bp, lane_p, lane_s, jlo, jhi, ct, wlo, whi, scale, inf_):
    if isinstance(src, types.Array):
        def impl(src, state, t, W, bp, lane_p, lane_s, jlo, jhi, ct, wlo, whi, scale, inf_):
            _wide_vectors()
            cflat, off = state
            Nf = src.shape[1]
            Mf = src.shape[2]
            for ln in range(LANES):
                if jhi[ln] > jlo[ln]:
                    off[ln] = (bp[lane_p[ln]] * Nf + t - lane_s[ln]) * Mf + lane_s[ln] * W - 1
                else:
                    off[ln] = 0  # nothing to read: any place inside cflat (masked)
            _fill_tile(cflat, off, jlo, jhi, ct, wlo, whi, scale, inf_)
            # the next step reads the next row of the same lanes: fetch it while this one computes
            last = cflat.size - 1
            for ln in range(LANES):
                if jhi[ln] > jlo[ln]:
                    nx = off[ln] + Mf
                    for k in range(wlo, whi, 16):
                        _prefetch_r(cflat, min(nx + k, last))
        return impl

    def impl(src, state, t, W, bp, lane_p, lane_s, jlo, jhi, ct, wlo, whi, scale, inf_):
        _wide_vectors()
        x = src[0]
        yt, xr = state
        D = x.shape[2]
        D0 = D % 4  # the first D % 4 features one at a time, then 4 per pass over the tile
        _x_rows(x, xr, t, bp, lane_p, lane_s, jlo, jhi)
        full = _spans(jlo, jhi, wlo, whi)
        if full and D <= 2:
            # one pass, scaled in it (the common case of few features)
            for w in range(wlo, whi):
                k = (w - 1) * D
                if D == 1:
                    for ln in range(LANES):
                        df = xr[0, ln] - yt[k, ln]
                        ct[w - 1, ln] = df * df * scale
                else:
                    for ln in range(LANES):
                        d0 = xr[0, ln] - yt[k, ln]
                        d1 = xr[1, ln] - yt[k + 1, ln]
                        ct[w - 1, ln] = (d0 * d0 + d1 * d1) * scale
            return
        for w in range(wlo, whi):
            k = (w - 1) * D
            if D0 == 0:
                for ln in range(LANES):
                    ct[w - 1, ln] = _sq4(xr, yt, 0, k, ln)
            else:
                for ln in range(LANES):
                    df = xr[0, ln] - yt[k, ln]
                    ct[w - 1, ln] = df * df
            for d in range(1, D0):
                for ln in range(LANES):
                    df = xr[d, ln] - yt[k + d, ln]
                    ct[w - 1, ln] += df * df
            for d in range(D0 if D0 > 0 else 4, D, 4):
                for ln in range(LANES):
                    ct[w - 1, ln] += _sq4(xr, yt, d, k, ln)
            if full:
                for ln in range(LANES):
                    ct[w - 1, ln] *= scale
            else:
                for ln in range(LANES):
                    ct[w - 1, ln] = ct[w - 1, ln] * scale if (w >= jlo[ln] and w < jhi[ln]) else inf_
    return impl


@njit(inline="always", **_JIT)
def _spans(jlo, jhi, wlo, whi):
    """Every lane's columns ``[jlo, jhi)`` hold ``[wlo, whi)`` (the step needs no per-lane mask)."""
    full = True
    for ln in range(LANES):
        full = full and jlo[ln] <= wlo and jhi[ln] >= whi
    return full


@njit(inline="always", **_JIT)
def _sq4(xr, yt, d, k, ln):
    """``sum_{d <= e < d + 4} (xr[e, ln] - yt[k + e, ln]) ** 2``."""
    d0 = xr[d, ln] - yt[k + d, ln]
    d1 = xr[d + 1, ln] - yt[k + d + 1, ln]
    d2 = xr[d + 2, ln] - yt[k + d + 2, ln]
    d3 = xr[d + 3, ln] - yt[k + d + 3, ln]
    return (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)


@njit(**_JIT_NOALIAS)
def _x_rows(x, xr, t, bp, lane_p, lane_s, jlo, jhi):
    """``xr[d, ln] = x[b, i, d]`` for the lanes with cells at step ``t`` (row ``i = t - s``), else 0."""
    _wide_vectors()
    N = x.shape[1]
    D = x.shape[2]
    xf = x.reshape(-1)
    zero = xr.dtype.type(0.0)
    # branch-free (a masked gather per feature where the host has one): each lane reads a row
    # that exists (clamped), then keeps it or 0
    for d in range(D):
        for ln in range(LANES):
            i = t - lane_s[ln]
            i = min(max(i, 0), N - 1)
            v = xf[(bp[lane_p[ln]] * N + i) * D + d]
            xr[d, ln] = v if jhi[ln] > jlo[ln] else zero


@njit(**_JIT_NOALIAS)
def _fill_tile(cflat, src, jlo, jhi, ct, wlo, whi, scale, inf_):
    """``ct[w - 1, ln] = cflat[src[ln] + w] * scale`` for ``jlo[ln] <= w < jhi[ln]``, else +inf,
    over ``wlo <= w < whi``: a transpose, done in blocks of 8 columns so that the stores of a
    block stay in a few cache lines. Where the lanes of a block of 8 have ragged ranges (pairs
    of different lengths) it still transposes through registers when every read stays inside
    ``cflat``, then masks (what lies outside a lane's range, padding included, never enters)."""
    _wide_vectors()
    L = LANES
    size = cflat.size
    for w0 in range(wlo, whi, 8):
        full = w0 + 8 <= whi
        for l0 in range(0, L, 8):
            allfull = full
            fits = full
            for ln in range(l0, l0 + 8):
                allfull = allfull and jlo[ln] <= w0 and w0 + 8 <= jhi[ln]
                fits = fits and src[ln] + w0 >= 0 and src[ln] + w0 + 8 <= size
            if allfull or fits:
                # 8 lanes x 8 columns through registers
                _tr8in(cflat, src, l0, w0, scale, ct, w0 - 1)
                if not allfull:
                    for w in range(w0, w0 + 8):
                        for ln in range(l0, l0 + 8):
                            if w < jlo[ln] or w >= jhi[ln]:
                                ct[w - 1, ln] = inf_
                continue
            for ln in range(l0, l0 + 8):
                a = jlo[ln]
                z = jhi[ln]
                b = src[ln]
                for w in range(w0, min(w0 + 8, whi)):
                    ct[w - 1, ln] = cflat[b + w] * scale if (w >= a and w < z) else inf_


def _transpose8(builder, rows):
    """``outs[i][j] = rows[j][i]`` for eight ``<8 x float>`` values (unpack / shuffle / 128-bit
    permute stages, as LLVM lowers them to AVX)."""

    def shuf(a, b, mask):
        return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(ir.IntType(32), 8), mask))

    lo = [0, 8, 1, 9, 4, 12, 5, 13]
    hi = [2, 10, 3, 11, 6, 14, 7, 15]
    t = []
    for j in range(0, 8, 2):
        t.append(shuf(rows[j], rows[j + 1], lo))
        t.append(shuf(rows[j], rows[j + 1], hi))
    m44 = [0, 1, 8, 9, 4, 5, 12, 13]
    mee = [2, 3, 10, 11, 6, 7, 14, 15]
    tt = [shuf(t[0], t[2], m44), shuf(t[0], t[2], mee), shuf(t[1], t[3], m44), shuf(t[1], t[3], mee),
          shuf(t[4], t[6], m44), shuf(t[4], t[6], mee), shuf(t[5], t[7], m44), shuf(t[5], t[7], mee)]
    m20 = [0, 1, 2, 3, 8, 9, 10, 11]
    m31 = [4, 5, 6, 7, 12, 13, 14, 15]
    outs = [shuf(tt[i], tt[i + 4], m20) for i in range(4)] + [shuf(tt[i], tt[i + 4], m31) for i in range(4)]
    return outs


@intrinsic
def _tr8in_f32(typingctx, src, offs, l0, k, scale, dst, r0):
    """The transpose into the lanes: ``dst[r0 + j, l0 + i] = src[offs[l0 + i] + k + j] * scale``
    for ``i, j < 8`` (``src``, ``offs`` 1-d, ``dst`` a C-contiguous 2-d float32 array)."""
    sig = types.void(src, offs, l0, k, scale, dst, r0)

    def codegen(context, builder, signature, args):
        asrc, aoffs, al0, ak, ascale, adst, ar0 = args
        f32 = ir.FloatType()
        i64 = ir.IntType(64)
        v8 = ir.VectorType(f32, 8)
        vp = v8.as_pointer()
        s_ary = context.make_array(signature.args[0])(context, builder, asrc)
        o_ary = context.make_array(signature.args[1])(context, builder, aoffs)
        d_ary = context.make_array(signature.args[5])(context, builder, adst)
        ncol = cgutils.unpack_tuple(builder, d_ary.shape, 2)[1]
        l0 = context.cast(builder, al0, signature.args[2], types.int64)
        kk = context.cast(builder, ak, signature.args[3], types.int64)
        r0 = context.cast(builder, ar0, signature.args[6], types.int64)
        sc = context.cast(builder, ascale, signature.args[4], types.float32)
        gv = ir.Constant(v8, ir.Undefined)
        for i in range(8):
            gv = builder.insert_element(gv, sc, ir.Constant(ir.IntType(32), i))
        rows = []
        for i in range(8):
            o = builder.load(builder.gep(o_ary.data, [builder.add(l0, ir.Constant(i64, i))]))
            o = context.cast(builder, o, signature.args[1].dtype, types.int64)
            v = builder.load(builder.bitcast(builder.gep(s_ary.data, [builder.add(o, kk)]), vp), align=4)
            rows.append(v)
        outs = _transpose8(builder, rows)
        for j in range(8):
            idx = builder.add(builder.mul(builder.add(r0, ir.Constant(i64, j)), ncol), l0)
            ptr = builder.bitcast(builder.gep(d_ary.data, [idx]), vp)
            builder.store(builder.fmul(outs[j], gv), ptr, align=4)
        return context.get_dummy_value()

    return sig, codegen


def _tr8in(src, offs, l0, k, scale, dst, r0):
    """See :func:`_tr8in_f32` (float64: scalar loops)."""


@overload(_tr8in, jit_options=dict(fastmath=_FM, error_model="numpy"))
def _ol_tr8in(src, offs, l0, k, scale, dst, r0):
    if src.dtype == types.float32:
        def impl(src, offs, l0, k, scale, dst, r0):
            _tr8in_f32(src, offs, l0, k, scale, dst, r0)
        return impl

    def impl(src, offs, l0, k, scale, dst, r0):
        for i in range(8):
            b = offs[l0 + i] + k
            for j in range(8):
                dst[r0 + j, l0 + i] = src[b + j] * scale
    return impl


@intrinsic
def _tr8_f32(typingctx, src, r0, c0, scale, dst, offs, k):
    """8 x 8 float32 transpose in AVX registers: row ``i`` of the result,
    ``src[r0 + j, c0 + i] * scale[c0 + i]`` for ``j < 8``, goes to ``dst[offs[c0 + i] + k + j]``
    (``src`` a C-contiguous 2-d array, ``scale``, ``dst``, ``offs`` 1-d)."""
    sig = types.void(src, r0, c0, scale, dst, offs, k)

    def codegen(context, builder, signature, args):
        asrc, ar0, ac0, ascale, adst, aoffs, ak = args
        f32 = ir.FloatType()
        i64 = ir.IntType(64)
        v8 = ir.VectorType(f32, 8)
        vp = v8.as_pointer()
        s_ary = context.make_array(signature.args[0])(context, builder, asrc)
        g_ary = context.make_array(signature.args[3])(context, builder, ascale)
        d_ary = context.make_array(signature.args[4])(context, builder, adst)
        o_ary = context.make_array(signature.args[5])(context, builder, aoffs)
        ncol = cgutils.unpack_tuple(builder, s_ary.shape, 2)[1]
        r0 = context.cast(builder, ar0, signature.args[1], types.int64)
        c0 = context.cast(builder, ac0, signature.args[2], types.int64)
        kk = context.cast(builder, ak, signature.args[6], types.int64)
        gv = builder.load(builder.bitcast(builder.gep(g_ary.data, [c0]), vp), align=4)
        rows = []
        for j in range(8):
            idx = builder.add(builder.mul(builder.add(r0, ir.Constant(i64, j)), ncol), c0)
            v = builder.load(builder.bitcast(builder.gep(s_ary.data, [idx]), vp), align=4)
            rows.append(builder.fmul(v, gv))

        outs = _transpose8(builder, rows)
        for i in range(8):
            o = builder.load(builder.gep(o_ary.data, [builder.add(c0, ir.Constant(i64, i))]))
            o = context.cast(builder, o, signature.args[5].dtype, types.int64)
            ptr = builder.gep(d_ary.data, [builder.add(o, kk)])
            builder.store(outs[i], builder.bitcast(ptr, vp), align=4)
        return context.get_dummy_value()

    return sig, codegen


def _tr8(src, r0, c0, scale, dst, offs, k):
    """See :func:`_tr8_f32` (float64: scalar loops)."""


@overload(_tr8, jit_options=dict(fastmath=_FM, error_model="numpy"))
def _ol_tr8(src, r0, c0, scale, dst, offs, k):
    if src.dtype == types.float32:
        def impl(src, r0, c0, scale, dst, offs, k):
            _tr8_f32(src, r0, c0, scale, dst, offs, k)
        return impl

    def impl(src, r0, c0, scale, dst, offs, k):
        for i in range(8):
            g = scale[c0 + i]
            b = offs[c0 + i] + k
            for j in range(8):
                dst[b + j] = src[r0 + j, c0 + i] * g
    return impl


@njit(**_JIT_NOALIAS)
def _write_grad(gflat, dst, jlo, jhi, wid, et, gscale, W, zero_):
    """The transpose back: ``gflat[dst[ln] + w - 1] = et[w - 1, ln] * gscale[ln]`` for
    ``jlo <= w < jhi`` and 0 for the other columns ``1 <= w <= wid[ln]`` of the lanes with
    ``dst[ln] >= 0``."""
    _wide_vectors()
    L = LANES
    for w0 in range(1, W + 1, 8):
        for l0 in range(0, L, 8):
            full = True
            for ln in range(l0, l0 + 8):
                full = full and dst[ln] >= 0 and jlo[ln] <= w0 and w0 + 8 <= jhi[ln]
            if full:
                # 8 lanes x 8 columns through registers
                _tr8(et, w0 - 1, l0, gscale, gflat, dst, w0 - 1)
                continue
            fits = True
            for ln in range(l0, l0 + 8):
                fits = fits and dst[ln] >= 0 and w0 + 7 <= wid[ln]
            if fits:
                # ragged ranges (pairs of different lengths): zero what lies outside, then
                # the same transpose
                for w in range(w0, w0 + 8):
                    for ln in range(l0, l0 + 8):
                        if w < jlo[ln] or w >= jhi[ln]:
                            et[w - 1, ln] = zero_
                _tr8(et, w0 - 1, l0, gscale, gflat, dst, w0 - 1)
                continue
            for ln in range(l0, l0 + 8):
                b = dst[ln]
                if b < 0:
                    continue
                a = jlo[ln]
                z = jhi[ln]
                g = gscale[ln]
                for w in range(w0, min(w0 + 8, wid[ln] + 1)):
                    gflat[b + w - 1] = et[w - 1, ln] * g if (w >= a and w < z) else zero_


@njit(inline="always", **_JIT)
def _fwd_cell(a, b, c, ct, cur, carry, rmin, w, ln, inf_, zero_, one_):
    v = ct[w - 1, ln] + _softmin2(a, b, c, inf_, zero_, one_)
    cur[w - 1, ln] = v
    carry[ln] = v
    r0 = rmin[ln]
    # (+ zero_ keeps LLVM from turning the min into a masked store)
    rmin[ln] = (v if v < r0 else r0) + zero_


@njit(**_JIT_NOALIAS)
def _fwd_rows(prev0, prev, cur0, cur, ct, delta, carry, rmin, wlo, whi, inf_, zero_, one_):
    """Cells ``wlo <= w < whi`` of one step, all lanes (column ``w`` of a row is ``row[w - 1]``,
    column 0 is ``row0``). Two independent halves of the lanes per iteration give the
    out-of-order core two dependency chains to overlap."""
    _wide_vectors()
    H = LANES // 2
    w0 = wlo
    if wlo == 1:
        for ln in range(LANES):
            dl = delta[ln]
            _fwd_cell(prev0[ln] + dl, prev[0, ln] + dl, cur0[ln], ct, cur, carry, rmin, 1, ln, inf_, zero_, one_)
        w0 = 2
    else:
        for ln in range(LANES):
            carry[ln] = cur[wlo - 2, ln]
    for w in range(w0, whi):
        for ln in range(H):
            dl = delta[ln]
            _fwd_cell(prev[w - 2, ln] + dl, prev[w - 1, ln] + dl, carry[ln], ct, cur, carry, rmin, w, ln, inf_,
                      zero_, one_)
            l2 = ln + H
            dl2 = delta[l2]
            _fwd_cell(prev[w - 2, l2] + dl2, prev[w - 1, l2] + dl2, carry[l2], ct, cur, carry, rmin, w, l2, inf_,
                      zero_, one_)


# ---------------------------------------------------------------------------
# Backward
# ---------------------------------------------------------------------------


@njit(**_JIT)
def _bwd_block(store, shifts, lo, hi, xl, yl, gv, bp, Pr, S, W, N, M, grad, ggam, need_gg,
               inf_, zero_, one_):
    """The backward of :func:`_fwd_block` for pairs ``bp[:Pr]``: their gradient rows into
    ``grad`` (the whole batch's), d value / d gamma into ``ggam[:Pr]``."""
    L = LANES
    T = N + S - 1
    rowsize = Pr * M
    lane_p, lane_s, lane_left, lane_wid, cnt, colstart = _lane_tables(Pr, S, W, M)
    dt = store.dtype
    # R of each lane's row at step t (relative to step t): column 0 (the left boundary) in rc0,
    # columns 1..W in rcv (a view of ``store`` where the step fills every lane, else a scratch
    # copy in scr[t % 2]); rp0, rpv: the same for step t - 1 (relative to step t - 1)
    scr = np.full((2, W, L), inf_, dt)
    rc0 = np.full(L, inf_, dt)
    rp0 = np.full(L, inf_, dt)
    fullrow = Pr * S == L and cnt[W - 1] == L
    acc = np.zeros((W + 1, L), dt)  # pushes into the row of step t
    accn = np.zeros((W + 1, L), dt)  # pushes into the row of step t - 1
    et = np.zeros((W, L), dt)
    delta = np.zeros(L, dt)
    cl = np.zeros(L, dt)
    cd = np.zeros(L, dt)
    gstep = np.zeros(L, dt)
    gacc = np.zeros(L, np.float64)
    jlo = np.zeros(L, np.int64)
    jhi = np.zeros(L, np.int64)
    grad_state = _grad_state(grad, bp, Pr, W, yl, lane_p, lane_s, lane_wid)
    t_term = np.empty(Pr, np.int64)
    w_term = np.empty(Pr, np.int64)
    l_term = np.empty(Pr, np.int64)
    for p in range(Pr):
        st = (yl[bp[p]] - 1) // W
        t_term[p] = xl[bp[p]] - 1 + st
        w_term[p] = yl[bp[p]] - 1 - st * W + 1
        l_term[p] = _lane_of(p, st, S, Pr)
    t_min = t_term.min()
    t_max = t_term.max()
    # rc for the last step
    mtmp = np.zeros(L, dt)
    btmp = np.zeros(L, dt)
    rcv = _load_row(store, shifts, scr[(T - 1) % 2], rc0, btmp, T - 1, N, W, rowsize, lane_p, lane_s,
                    lane_left, cnt, colstart, fullrow, inf_, zero_)
    for t in range(T - 1, -1, -1):
        if t >= 1:
            rpv = _load_row(store, shifts, scr[(t - 1) % 2], rp0, btmp, t - 1, N, W, rowsize, lane_p, lane_s,
                            lane_left, cnt, colstart, fullrow, inf_, zero_)
        else:
            rpv = scr[(t + 1) % 2]
            rpv[:, :] = inf_
            for ln in range(L):
                rp0[ln] = zero_ if (lane_p[ln] >= 0 and lane_s[ln] == 0) else inf_
        # delta of step t (added to row t - 1) is minus the minimum of each lane's stored row t - 1
        _row_delta(rpv, t - 1, N, W, lane_p, lane_s, delta, mtmp, inf_, zero_)
        # lanes whose row is 0 take the DP row 0 as predecessor row (never the case of a view);
        # (the per-lane loops below run only at the steps where a lane can need them)
        if t >= 1 and t < S:
            for ln in range(L):
                if lane_p[ln] >= 0 and t - lane_s[ln] == 0:
                    for w in range(W):
                        rpv[w, ln] = inf_
                    rp0[ln] = zero_ if lane_s[ln] == 0 else inf_
        if t >= t_min and t <= t_max:
            for p in range(Pr):
                if t_term[p] == t:
                    acc[w_term[p], l_term[p]] += one_
        wlo, whi = _lane_columns(t, L, N, W, bp, lo, hi, lane_p, lane_s, lane_wid, jlo, jhi)
        for ln in range(L):
            cl[ln] = zero_
            cd[ln] = zero_
            gstep[ln] = zero_
        if whi > wlo:
            # rows wlo..whi-1 of accn are assigned by the loop, wlo-1 right after it
            for w in range(0, wlo - 1):
                for ln in range(L):
                    accn[w, ln] = zero_
            for w in range(whi, W + 1):
                for ln in range(L):
                    accn[w, ln] = zero_
            if need_gg:
                _bwd_rows_gg(rp0, rpv, rc0, rcv, acc, accn, et, delta, cl, cd, gstep, wlo, whi, inf_, zero_,
                             one_)
            else:
                _bwd_rows(rp0, rpv, rc0, rcv, acc, accn, et, delta, cl, cd, wlo, whi, inf_, zero_, one_)
            for ln in range(L):
                accn[wlo - 1, ln] = cd[ln]
        else:
            accn[:, :] = zero_
        # pushes into column 0 (R[i, s W - 1]) belong to the left neighbour's row i at step t - 1
        if S > 1:
            for ln in range(L):
                lf = lane_left[ln]
                if lf >= 0:
                    # (diag + up) + left, as a cell inside a strip sums them
                    accn[W, lf] = (acc[0, ln] + accn[W, lf]) + cl[ln]
        if need_gg:
            for ln in range(L):
                gacc[ln] += gstep[ln]
        _grad_step(grad, grad_state, t, N, W, bp, gv, lane_p, lane_s, lane_wid, jlo, jhi, wlo, whi, et, zero_)
        rcv = rpv
        rc0, rp0 = rp0, rc0
        acc, accn = accn, acc
    _grad_done(grad, grad_state, bp, lane_p, lane_s, lane_wid)
    if need_gg:
        for p in range(Pr):
            ggam[p] = 0.0
        for ln in range(L):
            p = lane_p[ln]
            if p >= 0:
                ggam[p] += gacc[ln]
        for p in range(Pr):
            ggam[p] *= LN2 * gv[bp[p]]


def _grad_state(grad, bp, Pr, W, yl, lane_p, lane_s, lane_wid):
    """Per-block state of the backward's gradient target ``grad``: the ``(B, N, M)`` gradient
    of the cost, or ``(x, y, gx, gy)``: the gradients ``gx`` ``(B, N, D)`` (added to) and
    ``gy`` ``(B, M, D)`` of the squared Euclidean cost of ``x``, ``y`` (no cost gradient is
    formed: :func:`backward_sqeuclidean`)."""


def _grad_step(grad, state, t, N, W, bp, gv, lane_p, lane_s, lane_wid, jlo, jhi, wlo, whi, et, zero_):
    """The gradient of step ``t``'s cells from ``E`` (``et[w - 1, ln]``, valid for
    ``jlo[ln] <= w < jhi[ln]``) times the upstream gradient ``gv`` of each pair."""


def _grad_done(grad, state, bp, lane_p, lane_s, lane_wid):
    """What the block's last step leaves (the gradient of ``y``, summed over the steps)."""


@overload(_grad_state, jit_options=dict(fastmath=_FM, error_model="numpy"))
def _ol_grad_state(grad, bp, Pr, W, yl, lane_p, lane_s, lane_wid):
    if isinstance(grad, types.Array):
        def impl(grad, bp, Pr, W, yl, lane_p, lane_s, lane_wid):
            return grad.reshape(-1), np.zeros(LANES, np.int64), np.zeros(LANES, grad.dtype)
        return impl

    def impl(grad, bp, Pr, W, yl, lane_p, lane_s, lane_wid):
        # y in the lanes (as the forward has it), x's rows, the lanes' sums into gx (a step)
        # and gy (the whole sweep; none when ``gy`` has no rows: y needs no gradient)
        yt, xr = _src_state((grad[0], grad[1]), bp, Pr, W, yl, lane_p, lane_s, lane_wid)
        gyt = np.zeros((yt.shape[0] if grad[3].shape[0] > 0 else 0, LANES), yt.dtype)
        return yt, xr, np.zeros_like(xr), gyt, np.zeros(LANES, yt.dtype)
    return impl


@overload(_grad_step, jit_options=dict(fastmath=_FM, error_model="numpy", pipeline_class=_NoAliasCompiler))
def _ol_grad_step(grad, state, t, N, W, bp, gv, lane_p, lane_s, lane_wid, jlo, jhi, wlo, whi, et, zero_):
    if isinstance(grad, types.Array):
        def impl(grad, state, t, N, W, bp, gv, lane_p, lane_s, lane_wid, jlo, jhi, wlo, whi, et, zero_):
            _wide_vectors()
            gflat, dst, gsc = state
            Nf = grad.shape[1]
            Mf = grad.shape[2]
            for ln in range(LANES):
                p = lane_p[ln]
                i = t - lane_s[ln]
                if p >= 0 and i >= 0 and i < N:
                    dst[ln] = (bp[p] * Nf + i) * Mf + lane_s[ln] * W
                    gsc[ln] = gv[bp[p]]
                else:
                    dst[ln] = -1
            _write_grad(gflat, dst, jlo, jhi, lane_wid, et, gsc, W, zero_)
            for ln in range(LANES):
                if dst[ln] >= Mf:
                    for k in range(0, lane_wid[ln], 16):
                        _prefetch_w(gflat, dst[ln] - Mf + k)
        return impl

    def impl(grad, state, t, N, W, bp, gv, lane_p, lane_s, lane_wid, jlo, jhi, wlo, whi, et, zero_):
        _wide_vectors()
        # d C[i, j] / d x_i = 2 (x_i - y_j) = -d C[i, j] / d y_j: each cell adds
        # g E (x_i - y_j) to x_i's sum (over the step) and takes it from y_j's (over the sweep)
        x = grad[0]
        gx = grad[2]
        yt, xr, gxr, gyt, gsc = state
        D = x.shape[2]
        if whi <= wlo:
            return
        _x_rows(x, xr, t, bp, lane_p, lane_s, jlo, jhi)
        for ln in range(LANES):
            g = gv[bp[lane_p[ln]]]
            gsc[ln] = g if jhi[ln] > jlo[ln] else zero_
        for d in range(D):
            for ln in range(LANES):
                gxr[d, ln] = zero_
        # g E, 0 outside each lane's columns (in place: ``et`` is the step's scratch)
        if _spans(jlo, jhi, wlo, whi):
            for w in range(wlo, whi):
                for ln in range(LANES):
                    et[w - 1, ln] *= gsc[ln]
        else:
            for w in range(wlo, whi):
                for ln in range(LANES):
                    et[w - 1, ln] = et[w - 1, ln] * gsc[ln] if (w >= jlo[ln] and w < jhi[ln]) else zero_
        if gyt.shape[0] > 0:
            for w in range(wlo, whi):
                k = (w - 1) * D
                for d in range(D):
                    for ln in range(LANES):
                        q = et[w - 1, ln] * (xr[d, ln] - yt[k + d, ln])
                        gxr[d, ln] += q
                        gyt[k + d, ln] -= q
        else:
            # x's sums only: four columns per pass over gxr (one load and store per four)
            w = wlo
            while w + 4 <= whi:
                k = (w - 1) * D
                for d in range(D):
                    for ln in range(LANES):
                        xd = xr[d, ln]
                        gxr[d, ln] += ((et[w - 1, ln] * (xd - yt[k + d, ln]) + et[w, ln] * (xd - yt[k + D + d, ln]))
                                       + (et[w + 1, ln] * (xd - yt[k + 2 * D + d, ln])
                                          + et[w + 2, ln] * (xd - yt[k + 3 * D + d, ln])))
                w += 4
            for w in range(w, whi):
                k = (w - 1) * D
                for d in range(D):
                    for ln in range(LANES):
                        gxr[d, ln] += et[w - 1, ln] * (xr[d, ln] - yt[k + d, ln])
        for ln in range(LANES):
            if jhi[ln] > jlo[ln]:
                b = bp[lane_p[ln]]
                i = t - lane_s[ln]
                for d in range(D):
                    gx[b, i, d] += gxr[d, ln] + gxr[d, ln]
    return impl


@overload(_grad_done, jit_options=dict(fastmath=_FM, error_model="numpy"))
def _ol_grad_done(grad, state, bp, lane_p, lane_s, lane_wid):
    if isinstance(grad, types.Array):
        return lambda grad, state, bp, lane_p, lane_s, lane_wid: None

    def impl(grad, state, bp, lane_p, lane_s, lane_wid):
        gy = grad[3]
        gyt = state[3]
        if gyt.shape[0] == 0:
            return
        D = gy.shape[2]
        W = gyt.shape[0] // D
        for ln in range(LANES):
            p = lane_p[ln]
            if p >= 0:
                b = bp[p]
                c0 = lane_s[ln] * W
                for w in range(lane_wid[ln]):
                    for d in range(D):
                        gy[b, c0 + w, d] = gyt[w * D + d, ln] + gyt[w * D + d, ln]
    return impl


@njit(**_JIT_NOALIAS)
def _row_delta(rv, t, N, W, lane_p, lane_s, out, tmp, inf_, zero_):
    """``out[ln]`` = minus the minimum of lane ``ln``'s row ``rv`` of step ``t`` (0 where it has
    none or it is all +inf): the re-basing shift that the forward applied at step ``t + 1``."""
    _wide_vectors()
    L = LANES
    for ln in range(L):
        tmp[ln] = inf_
    if t >= 0:
        for w in range(W):
            for ln in range(L):
                v = rv[w, ln]
                r0 = tmp[ln]
                tmp[ln] = (v if v < r0 else r0) + zero_
    for ln in range(L):
        i = t - lane_s[ln]
        m = tmp[ln]
        out[ln] = -m if (lane_p[ln] >= 0 and i >= 0 and i < N and m < inf_ and _rebases(zero_)) else zero_


@njit(**_JIT_NOALIAS)
def _load_row(store, shifts, scr, d0, dtmp, t, N, W, rowsize, lane_p, lane_s, lane_left, cnt, colstart,
              fullrow, inf_, zero_):
    """The row of step ``t`` of every lane (relative to its offset at step ``t``): columns 1..W
    as a ``(W, LANES)`` array (a view of ``store`` where the step fills every lane, else copied
    into ``scr``, +inf where a lane has no row), column 0 into ``d0``, from the left lane (moved
    to this lane's offset as the forward did)."""
    _wide_vectors()
    L = LANES
    S = lane_s.max() + 1
    base = (t % N) * rowsize
    if fullrow and t >= S - 1 and t < N:
        rv = store[base:base + W * L].reshape((W, L))
    else:
        for w in range(W):
            cs = base + colstart[w]
            for ln in range(cnt[w]):
                scr[w, ln] = store[cs + ln]
            for ln in range(cnt[w], L):
                scr[w, ln] = inf_
        for ln in range(L):
            p = lane_p[ln]
            i = t - lane_s[ln]
            if p < 0 or i < 0 or i >= N:
                for w in range(W):
                    scr[w, ln] = inf_
        rv = scr
    T = N + S - 1
    for ln in range(L):
        dtmp[ln] = shifts[lane_p[ln], lane_s[ln] * T + t] if lane_left[ln] >= 0 else zero_
    for ln in range(L):
        lf = lane_left[ln]
        i = t - lane_s[ln]
        if lf >= 0 and i >= 0 and i < N:
            # as the forward formed it: the left lane's last column one step earlier, re-based
            d0[ln] = store[((t - 1) % N) * rowsize + colstart[W - 1] + lf] + dtmp[ln]
        else:
            d0[ln] = inf_
    return rv


@njit(inline="always", **_JIT)
def _bwd_cell(a, b, c, acc, accn, et, cl, cd, w, ln, inf_, zero_, one_):
    e = _flush_e(acc[w, ln] + cl[ln])
    wa, wb, wc = _weights2(a, b, c, inf_, zero_, one_)
    accn[w, ln] = cd[ln] + _mulx(wb, e)
    cd[ln] = _mulx(wa, e)
    cl[ln] = _mulx(wc, e)
    et[w - 1, ln] = e


@njit(inline="always", **_JIT)
def _bwd_cell_gg(a, b, c, acc, accn, et, cl, cd, gstep, w, ln, inf_, zero_, one_):
    e = _flush_e(acc[w, ln] + cl[ln])
    wa, wb, wc, ent = _weights2_ent(a, b, c, inf_, zero_, one_)
    accn[w, ln] = cd[ln] + _mulx(wb, e)
    cd[ln] = _mulx(wa, e)
    cl[ln] = _mulx(wc, e)
    et[w - 1, ln] = e
    gstep[ln] += e * ent


@njit(**_JIT_NOALIAS)
def _bwd_rows(rp0, rpv, rc0, rcv, acc, accn, et, delta, cl, cd, wlo, whi, inf_, zero_, one_):
    """Cells ``whi > w >= wlo`` of one step: E, and its pushes to the predecessors (column ``w``
    of a row is ``rv[w - 1]``, column 0 is ``r0``)."""
    _wide_vectors()
    for w in range(whi - 1, max(wlo, 2) - 1, -1):
        for ln in range(LANES):
            dl = delta[ln]
            _bwd_cell(rpv[w - 2, ln] + dl, rpv[w - 1, ln] + dl, rcv[w - 2, ln], acc, accn, et, cl, cd, w, ln,
                      inf_, zero_, one_)
    if wlo == 1:
        for ln in range(LANES):
            dl = delta[ln]
            _bwd_cell(rp0[ln] + dl, rpv[0, ln] + dl, rc0[ln], acc, accn, et, cl, cd, 1, ln, inf_, zero_, one_)


@njit(**_JIT_NOALIAS)
def _bwd_rows_gg(rp0, rpv, rc0, rcv, acc, accn, et, delta, cl, cd, gstep, wlo, whi, inf_, zero_, one_):
    """:func:`_bwd_rows` that also sums ``E * sum_p w_p log2 w_p`` per lane (for d value / d gamma)."""
    _wide_vectors()
    for w in range(whi - 1, max(wlo, 2) - 1, -1):
        for ln in range(LANES):
            dl = delta[ln]
            _bwd_cell_gg(rpv[w - 2, ln] + dl, rpv[w - 1, ln] + dl, rcv[w - 2, ln], acc, accn, et, cl, cd, gstep,
                         w, ln, inf_, zero_, one_)
    if wlo == 1:
        for ln in range(LANES):
            dl = delta[ln]
            _bwd_cell_gg(rp0[ln] + dl, rpv[0, ln] + dl, rc0[ln], acc, accn, et, cl, cd, gstep, 1, ln, inf_, zero_,
                         one_)


@njit(inline="always", **_JIT)
def _next_block(tickets, B, P):
    """``(b0, pairs)``: the next block of ``P`` consecutive pairs of a batch of ``B`` from the
    shared counter ``tickets``; ``pairs == 0`` when none is left. The ticket is compared with
    the number of blocks before it is scaled: :func:`_stop_tickets` sets the counter to 2**62,
    which times ``P`` would wrap around to block 0."""
    k = _ticket(tickets)
    if k >= (B + P - 1) // P:
        return B, 0
    b0 = k * P
    return b0, min(P, B - b0)


@njit(**_JIT)
def _fwd_blocks(cost, lo, hi, xl, yl, P, S, W, N, M, inv_scale, out_scale, rflat, aux, value, keep, tickets,
                inf_, zero_, one_):
    """:func:`_fwd_block` for the blocks of ``P`` consecutive pairs of the batch (the plan's
    layout), each taken by the calling thread from the shared counter ``tickets`` until none
    is left: one call per thread, no Python between blocks (:func:`_run_threads`)."""
    while True:
        b0, pr = _next_block(tickets, value.shape[0], P)
        if pr == 0:
            return
        if keep:
            store = rflat[b0 * N * M:(b0 + pr) * N * M]
            shifts = aux[b0:b0 + pr]
        else:  # values only: R for two steps, the shifts thrown away
            store = np.empty(min(2, N) * pr * M, rflat.dtype)
            shifts = np.zeros((pr, S * (N + S - 1)))
        _fwd_block(cost, lo, hi, xl, yl, np.arange(b0, b0 + pr), pr, S, W, N, M, inv_scale, out_scale, store, shifts,
                   value[b0:b0 + pr], inf_, zero_, one_)


@njit(**_JIT)
def _bwd_blocks(rflat, aux, lo, hi, xl, yl, gv, P, S, W, N, M, grad, ggam, need_gg, tickets, inf_, zero_, one_):
    """:func:`_bwd_block` over the plan's blocks, as :func:`_fwd_blocks` runs the forward."""
    while True:
        b0, pr = _next_block(tickets, gv.shape[0], P)
        if pr == 0:
            return
        _bwd_block(rflat[b0 * N * M:(b0 + pr) * N * M], aux[b0:b0 + pr], lo, hi, xl, yl, gv, np.arange(b0, b0 + pr),
                   pr, S, W, N, M, grad, ggam[b0:b0 + pr], need_gg, inf_, zero_, one_)


@njit(parallel=True, **_JIT)
def _fwd_par(threads, cost, lo, hi, xl, yl, P, S, W, N, M, inv_scale, out_scale, rflat, aux, value, keep, tickets,
             inf_, zero_, one_):
    """:func:`_fwd_blocks` on ``threads`` threads of numba's threading layer (see
    :func:`_run_plan`)."""
    for _ in numba.prange(threads):
        _fwd_blocks(cost, lo, hi, xl, yl, P, S, W, N, M, inv_scale, out_scale, rflat, aux, value, keep, tickets,
                    inf_, zero_, one_)


@njit(parallel=True, **_JIT)
def _bwd_par(threads, rflat, aux, lo, hi, xl, yl, gv, P, S, W, N, M, grad, ggam, need_gg, tickets, inf_, zero_,
             one_):
    """:func:`_bwd_blocks` as :func:`_fwd_par` runs the forward."""
    for _ in numba.prange(threads):
        _bwd_blocks(rflat, aux, lo, hi, xl, yl, gv, P, S, W, N, M, grad, ggam, need_gg, tickets, inf_, zero_, one_)


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


_POOL: ThreadPoolExecutor | None = None


def _forget_pool() -> None:
    """In a forked child: the parent's pool threads do not exist here, and work submitted to
    its executor would wait forever. The child makes its own pool on its first call."""
    global _POOL
    _POOL = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _threads(threads: int | None = None) -> int:
    """The threads a call may use: ``threads`` when the caller gives it (torch gives
    ``torch.get_num_threads()``), else numba's setting (``numba.set_num_threads``,
    ``NUMBA_NUM_THREADS``)."""
    return max(1, numba.get_num_threads() if threads is None else int(threads))


def _run_blocks(fn, nblocks: int, threads: int | None = None) -> None:
    """``fn(k)`` for every block ``k``, on up to ``threads`` (default :func:`_threads`) threads
    (the jitted block functions release the GIL).

    The calling thread works too, and every thread takes the next block from one shared
    counter until none is left (dynamic, so a thread slowed by another process does fewer
    blocks). One pool task per extra thread, not one per block: a task costs a wake-up, a
    future and GIL hand-overs (loss forward + backward at (512, 2, 2, 2), 16 blocks of
    almost no work, 2 threads: 1.65-2.0 ms with a task per block, 0.94-1.6 ms like this).
    The plan's fixed blocks go further: one numba call per thread (:func:`_fwd_blocks`)."""
    ticket = itertools.count()  # next() is atomic under the GIL
    stopped = []

    def work():
        for k in iter(ticket.__next__, None):
            if k >= nblocks or stopped:
                return
            fn(k)

    _run_threads(work, nblocks, threads, stop=lambda: stopped.append(True))


_LAYER_PID: list = []  # [(pid, whether numba's threading layer serves the plan's blocks)]


def _numba_layer_ok() -> bool:
    """Whether :func:`_run_plan` may start numba's parallel region: its threading layer is one
    that may be launched from any thread (OpenMP, TBB; not ``workqueue``), and this process is
    the one that chose it (GNU OpenMP aborts a forked child that starts a parallel region after
    its parent did: a child falls back to the Python pool). ``SOFTDTW_NUMBA_THREADS=pool``
    forces the pool."""
    pid = os.getpid()
    if _LAYER_PID and _LAYER_PID[0][0] == pid:
        return _LAYER_PID[0][1]
    ok = os.environ.get("SOFTDTW_NUMBA_THREADS", "numba") != "pool" and not _LAYER_PID
    if ok:
        try:
            from numba.np.ufunc import parallel as _par

            _par._launch_threads()
            ok = numba.threading_layer() in ("omp", "tbb")
        except Exception:  # pragma: no cover - numba internals moved, or no layer loads
            ok = False
    _LAYER_PID[:] = [(pid, ok)]
    return ok


def _run_plan(blocks_fn, par_fn, args, nblocks: int, tickets, threads: int | None = None) -> None:
    """The plan's blocks (``blocks_fn(*args)`` takes them from ``tickets``) on up to
    :func:`_threads` threads: one numba parallel region (``par_fn(threads, *args)``) where
    :func:`_numba_layer_ok`, else one ``blocks_fn`` call per thread of :func:`_run_threads`.
    The region starts in ~2 us here (OpenMP's threads spin a while between regions); a round
    trip through the Python pool took ~85 us (two thread wake-ups in this VM)."""
    threads = min(_threads(threads), nblocks)
    if threads > 1 and _numba_layer_ok():
        par_fn(threads, *args)  # (numba's region runs on at most its own pool's threads)
        return
    _run_threads(lambda: blocks_fn(*args), nblocks, threads, stop=lambda: _stop_tickets(tickets))


def _stop_tickets(tickets):
    """What :func:`_run_threads` calls on an error: no block is handed out any more."""
    tickets[0] = 1 << 62


def _run_threads(work, nblocks: int, threads: int | None = None, stop=None) -> None:
    """``work()`` on the calling thread and on ``min(threads, nblocks) - 1`` pool threads;
    each call takes blocks from a shared counter until none is left (``_fwd_blocks`` in
    numba, ``_run_blocks`` in Python). Where one raises (an error, a KeyboardInterrupt),
    ``stop()`` makes the others stop after their current block; the first exception, the
    calling thread's before the pool's, is raised once every thread is done."""
    global _POOL
    threads = min(_threads(threads), nblocks)
    if threads <= 1:
        work()
        return
    if _POOL is None or _POOL._max_workers < threads - 1:
        _POOL = ThreadPoolExecutor(max_workers=threads - 1, thread_name_prefix="softdtw-numba")

    # the pool's work items reach ``work`` through ``box``, emptied once every thread is done: a
    # worker drops its work item only after setting the future, so a direct reference would keep
    # the caller's arrays (a chunk's cost) alive while the caller already makes the next ones
    box = [work]

    def guarded():
        try:
            box[0]()
        except BaseException:
            if stop is not None:
                stop()
            raise

    futures = [_POOL.submit(guarded) for _ in range(threads - 1)]
    try:
        guarded()
    finally:
        wait(futures)
        box.clear()
    for f in futures:
        f.result()


# the layout (and so the shape of ``aux``) must be a function of the shapes alone: it is planned
# for numba's configured thread count, which set_num_threads does not change
_PLAN_THREADS = max(1, int(numba.config.NUMBA_NUM_THREADS))


def plan(B: int, N: int, M: int, threads: int | None = None) -> tuple[int, int, int]:
    """``(P, S, W)``: pairs per block, column strips per pair, strip width.

    Minimises the lane-steps of the busiest thread, ``ceil(blocks / threads) * (N + S - 1) * W``.
    """
    return _plan(int(B), int(N), int(M), _PLAN_THREADS if threads is None else int(threads))


@functools.lru_cache(maxsize=256)
def _plan(B: int, N: int, M: int, threads: int) -> tuple[int, int, int]:
    # (memoised: a loss call asks three times, 15 us each, for the same shape)
    best = None
    for s_try in range(1, LANES + 1):
        w = -(-M // s_try)
        s = -(-M // w)
        if s != s_try or (s > 1 and w < MIN_STRIP):
            continue
        p = LANES // s
        blocks = -(-B // p)
        work = -(-blocks // threads) * (N + s - 1) * w
        if best is None or work < best[0]:
            best = (work, p, s, w)
    if best is None:
        return LANES, 1, M
    return best[1], best[2], best[3]


def _aux_strips(B: int, N: int, M: int) -> int:
    """Strips per pair that ``aux`` has room for: the plan's, or up to :data:`VAR_STRIPS` where
    the columns allow, so that blocks of a padded batch (:func:`_var_blocks`) can use more."""
    _, s, _ = plan(B, N, M)
    return max(s, min(VAR_STRIPS, M // MIN_STRIP))


def aux_shape(B: int, N: int, M: int, dtype=np.float32) -> tuple[tuple[int, int], np.dtype]:
    """Shape and dtype of the ``aux`` that :func:`forward` returns for a ``(B, N, M)`` cost: the
    boundary re-basing of each strip of each pair at each step, float64 ``(B, S (N + S - 1))``
    with ``S`` from :func:`_aux_strips` (strip 0 has no left boundary and keeps zeros):
    O(B N) next to the ``B N M`` of ``r``."""
    s = _aux_strips(B, N, M)
    return (B, s * (N + s - 1)), np.dtype(np.float64)


@njit(**_JIT)
def _strips_for(P, n, m, room):
    """Per block of ``P`` pairs cropped to ``(n[k], m[k])``: the strips ``S`` and width ``W``
    that minimise its lane-steps ``(n + S - 1) W``, with ``P S <= LANES``, ``W >= MIN_STRIP``
    (unless ``S = 1``) and ``S (n + S - 1) <= room`` (its pairs' share of ``aux``)."""
    K = len(n)
    bs = np.ones(K, np.int64)
    bw = m.copy()
    steps = n * m
    for k in range(K):
        for s in range(2, LANES // P + 1):
            w = -(-m[k] // s)
            if w < MIN_STRIP or -(-m[k] // w) != s or s * (n[k] + s - 1) > room:
                continue
            c = (n[k] + s - 1) * w
            if c < steps[k]:
                steps[k] = c
                bs[k] = s
                bw[k] = w
    return bs, bw, steps


def _var_blocks(B: int, N: int, M: int, xl: np.ndarray, yl: np.ndarray):
    """:func:`_plan_var_blocks`, remembered for the last lengths (the backward asks again for
    what its forward planned)."""
    global _VAR_LAST
    key = (B, N, M, xl.tobytes(), yl.tobytes())
    last = _VAR_LAST
    if last is not None and last[0] == key:
        return last[1]
    blocks = _plan_var_blocks(B, N, M, xl, yl)
    _VAR_LAST = (key, blocks)
    return blocks


_VAR_LAST = None


def _block_offsets(blocks) -> np.ndarray:
    """Where each block of :func:`_var_blocks` keeps its ``R`` in ``r``: the running sum of
    its cells (``pairs x n x m``), at most ``B N M`` in all."""
    return np.cumsum([0] + [len(p) * n * m for p, n, m, _, _ in blocks])


def _plan_var_blocks(B: int, N: int, M: int, xl: np.ndarray, yl: np.ndarray, threads: int | None = None):
    """Blocks for a padded batch, or ``None`` where the padded layout of :func:`plan` costs as
    little: pairs sorted by their lengths, ``P`` at a time, each block cropped to its longest
    pair and given its own strips. Returns a list of ``(pairs, n, m, S, W)``, largest first.

    A function of the shapes and lengths alone, so the backward rebuilds the same blocks."""
    if threads is None:
        threads = _PLAN_THREADS
    if B == 0 or (xl.min() == N and yl.min() == M):
        return None
    P0, S0, W0 = plan(B, N, M, threads)
    full = -(-(-(-B // P0)) // threads) * (N + S0 - 1) * W0
    room = aux_shape(B, N, M)[0][1]
    best = None
    rank_x = np.empty(B, np.int64)
    rank_x[np.lexsort((yl, xl))] = np.arange(B)
    for P in (64, 32, 16, 8, 4, 2, 1):
        # pairs sorted by x length, in chunks of g sorted by y length, then P at a time: blocks
        # tight in N, and in M as far as the chunk allows
        for g in sorted({P, 2 * P, 4 * P, 8 * P, B}):
            order = np.lexsort((rank_x, yl, rank_x // g))
            starts = np.arange(0, B, P)
            n = np.maximum.reduceat(xl[order], starts).astype(np.int64)
            m = np.maximum.reduceat(yl[order], starts).astype(np.int64)
            s, w, steps = _strips_for(P, n, m, room)
            span = max(steps.sum() / threads, steps.max())
            if best is None or span < best[0]:
                best = (span, order, P, n, m, s, w, steps)
    span, order, P, n, m, s, w, steps = best
    # cropping copies the cost and the gradient: keep the padded layout unless it saves work
    if span > 0.8 * full:
        return None
    # a crop S W wide (not just m) where the cost has the columns: every lane then has a full strip
    # and the kernel computes the rows of a step in place (its "direct" path)
    m = np.where(s * w <= M, s * w, m)
    blocks = [(order[k * P:(k + 1) * P], int(n[k]), int(m[k]), int(s[k]), int(w[k])) for k in range(len(n))]
    return [blocks[k] for k in np.argsort(-steps, kind="stable")]


def _consts(dtype):
    t = np.dtype(dtype).type
    return t(np.inf), t(0.0), t(1.0)


def _check(cost_dtype):
    if cost_dtype not in (np.float32, np.float64):
        raise TypeError(f"cost must be float32 or float64, got {cost_dtype}")


def _cache_is_warm() -> bool:
    """Whether numba's cache holds the block functions (float32 and float64 costs, float32
    series), for this source, and the parallel regions that run them where they will."""
    fns = [_fwd_block, _bwd_block, _fwd_blocks, _bwd_blocks]
    if min(_PLAN_THREADS, _threads()) > 1 and _numba_layer_ok():
        fns += [_fwd_par, _bwd_par]  # what _compile_all runs on as many threads
    try:
        return all(len(f._cache._cache_file._load_index()) >= 3 for f in fns)
    except Exception:  # pragma: no cover - numba internals moved: do not spawn anything
        return True


_WARMED = False


def _warm_cache() -> None:
    """On the first call in a process whose numba cache is cold, compile in a child process.

    numba code compiled in the running process measured ~5x slower than the same code loaded
    from numba's cache (forward 17 vs 3.4 ns per cell at (32, 512, 512), reproducible with an
    empty ``NUMBA_CACHE_DIR``; cause not found). A child compiles and fills the cache, and this
    process then loads the fast code from it. ``SOFTDTW_NUMBA_WARMUP=0`` turns this off.
    """
    global _WARMED
    if _WARMED:
        return
    _WARMED = True
    if os.environ.get("SOFTDTW_NUMBA_WARMUP", "1") == "0" or _cache_is_warm():
        return
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, SOFTDTW_NUMBA_WARMUP="0",
               PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    subprocess.run([sys.executable, "-c", "from softdtw.kernels.numba_cpu import _compile_all; _compile_all()"],
                   env=env, capture_output=True, check=False)


def _compile_all() -> None:
    """Run every block function once (both dtypes, padded and cropped layouts, with and
    without d / d gamma), which compiles them into numba's cache.

    Runs in the child process of :func:`_warm_cache`, so the LLVM option set here reaches our
    kernels and never the user's process: the loop vectoriser interleaves two vector iterations
    of the lane loops. A cell's softmin is one long dependency chain (sort, exp2, log2: ~100
    cycles) and the out-of-order window held too few chains: ``llvm-mca -mcpu=znver2`` put the
    forward's row loop at ~155 cycles per two vectors against a throughput bound of ~48. With
    two iterations interleaved instruction by instruction, kernel forward + backward, float32,
    one thread, ns per cell (two rounds of alternating processes, best of 4 each):
    (32,256,256) 6.9 -> 6.4 / 6.5, (512,32,32) 7.2 / 6.8 -> 6.3 / 6.8, (1,4096,4096) 7.2 ->
    6.4 / 6.7. Four interleaved iterations spilled registers and gained nothing on the row loop;
    Estrin's scheme for the float32 exp2 gained ~3-5% more but doubled its error (1.7e-7), not
    taken.
    """
    if tuple(_llb.llvm_version_info) >= (17,):
        _llb.set_option("softdtw", "-force-vector-interleave=2")
    from .. import spec

    B = LANES + 1  # two blocks: the parallel regions too (_run_plan), where they will run
    for dt in (np.float32, np.float64):
        cost = np.ones((B, 40, 40), dt)
        for xl in (np.full(B, 40, np.int32), np.resize(np.array([40, 5, 7], np.int32), B)):
            lo, hi = spec.band_bounds(40, 40, xl, xl, spec.Constraint(None, None))
            value, r, aux = forward(cost, 1.0, xl, xl, lo, hi)
            for need in (False, True):
                backward(r, aux, 1.0, xl, xl, lo, hi, np.ones(B, dt), need)
            nonfinite_pairs(np.ones((B, 40, 2), dt), xl)
            if dt == np.float32:
                x = np.ones((B, 40, 2), dt)
                value, r, aux = forward_sqeuclidean(x, x, 1.0, xl, xl, lo, hi)
                backward_sqeuclidean(r, aux, x, x, 1.0, xl, xl, lo, hi, np.ones(B, dt))


def base2_scales(gamma: float) -> tuple[float, float]:
    """``(1 / (gamma ln 2), gamma ln 2)``: costs into the kernels' base-2 units, values back.
    Formed here only, so that the checkpointed kernel scales exactly as this one."""
    return 1.0 / (float(gamma) * LN2), float(gamma) * LN2


def exp2_log2(t: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The kernels' ``exp2`` of ``t`` (<= 0) and ``log2`` of ``s`` (in [1, 3]), elementwise, in
    the arrays' dtype (for the accuracy test and ``benchmarks/accuracy_exp2_log2.py``)."""
    e, lg = np.empty_like(t), np.empty_like(s)
    _exp2_log2(t, s, e, lg)
    return e, lg


@njit(**_JIT)
def _exp2_log2(t, s, e, lg):
    for i in range(t.size):
        e[i] = _exp2m(t[i])
    for i in range(s.size):
        lg[i] = _log2_13(s[i])


def _prep(x_len, y_len, lo, hi):
    # writable C int32 arrays: a read-only one (e.g. cached bounds) would be another numba
    # signature, compiled in this process (slower code, see _warm_cache)
    return tuple(_int32_cw(a) for a in (x_len, y_len, lo, hi))


def _int32_cw(a):
    """``a`` itself when it is a writable C-contiguous int32 array, else such a copy
    (``np.require`` took ~1.3 us an array, this ~0.8)."""
    if type(a) is np.ndarray and a.dtype == np.int32 and a.flags.c_contiguous and a.flags.writeable:
        return a
    return np.array(a, np.int32, order="C")


def values(cost, gamma, x_len, y_len, lo, hi, threads=None):
    """Soft-DTW values of ``cost`` (B, N, M), without the backward's state: ``R`` is kept for two
    steps of each block instead of ``B N M`` numbers (pairwise matrices, evaluation). The
    same numbers as :func:`forward`'s, to the last bit."""
    return forward(cost, gamma, x_len, y_len, lo, hi, keep=False, threads=threads)[0]


def forward(cost, gamma, x_len, y_len, lo, hi, keep=True, threads=None):
    """Soft-DTW values of ``cost`` (B, N, M); returns ``(value, r, aux)`` (see the contract).
    ``keep=False``: ``r`` and ``aux`` are not formed (empty), see :func:`values`. ``threads``:
    at most this many threads (default: numba's setting, :func:`_threads`)."""
    _warm_cache()
    cost = np.ascontiguousarray(cost)
    _check(cost.dtype)
    return _forward(cost, cost.shape, gamma, x_len, y_len, lo, hi, keep, threads)


def _series(x, y):
    x = np.ascontiguousarray(x)
    y = np.ascontiguousarray(y)
    if x.dtype != np.float32 or y.dtype != np.float32:
        raise TypeError(f"x and y must be float32, got {x.dtype} and {y.dtype}")
    if x.ndim != 3 or y.ndim != 3 or x.shape[0] != y.shape[0] or x.shape[2] != y.shape[2]:
        raise ValueError(f"x and y must be (B, N, D) and (B, M, D), got {x.shape} and {y.shape}")
    return x, y


def forward_sqeuclidean(x, y, gamma, x_len, y_len, lo, hi, keep=True, threads=None):
    """:func:`forward` of the squared Euclidean cost of ``x`` (B, N, D) and ``y`` (B, M, D),
    float32, which the kernel forms cell by cell (``sum_d (x_id - y_jd)^2``): no cost matrix.
    Returns ``(value, r, aux)`` for :func:`backward_sqeuclidean`; the value of a pair with a
    non-finite entry in ``x[b, :x_len[b]]`` or ``y[b, :y_len[b]]`` is NaN (and only its).
    ``keep=False``: the values alone, to the last bit the same; ``r`` and ``aux`` are empty
    (``R`` kept for two steps per block, as :func:`values`)."""
    _warm_cache()
    x, y = _series(x, y)
    value, r, aux = _forward((x, y), (x.shape[0], x.shape[1], y.shape[1]), gamma, x_len, y_len, lo, hi, keep,
                             threads)
    bad = np.zeros(x.shape[0], np.bool_)
    # (x and y are float32 C arrays here: one call for both, read as bits)
    _nonfinite_xy(x.view(np.uint32), y.view(np.uint32), _int32_cw(x_len), _int32_cw(y_len), np.uint32(0x7F800000),
                  bad)
    value[bad] = np.nan
    return value, r, aux


def nonfinite_pairs(a, lengths):
    """``(B,)`` bool: whether ``a[b, :lengths[b]]`` (``a`` float32 or float64 ``(B, N, D)``)
    holds a NaN or an infinity (one pass, no temporaries)."""
    a = np.ascontiguousarray(a)
    bad = np.zeros(a.shape[0], np.bool_)
    if a.dtype == np.dtype("=f4"):
        _nonfinite_pairs(a.view(np.uint32), _int32_cw(lengths), np.uint32(0x7F800000), bad)
    elif a.dtype == np.dtype("=f8"):
        _nonfinite_pairs(a.view(np.uint64), _int32_cw(lengths), np.uint64(0x7FF0000000000000), bad)
    else:
        raise TypeError(f"a must be float32 or float64 (native byte order), got {a.dtype}")
    return bad


@njit(**_JIT)
def _nonfinite_pairs(u, lengths, expo, bad):
    """``bad[b] = u[b, :lengths[b]]`` (the bits of floats) holds a NaN or an infinity: an
    exponent field of all ones. The largest masked exponent of a pair is an integer max
    reduction, which vectorises (a float test per entry did not: x at (64, 64, 8), best of
    200, float32 29.5 -> 12.2 us, float64 29.9 -> 12.8 us; the call's own overhead is part
    of what is left)."""
    D = u.shape[2]
    for b in range(u.shape[0]):
        flat = u[b].reshape(-1)
        top = expo - expo
        for k in range(lengths[b] * D):
            e = flat[k] & expo
            top = e if e > top else top
        bad[b] = top == expo


@njit(**_JIT)
def _nonfinite_xy(ux, uy, xl, yl, expo, bad):
    """:func:`_nonfinite_pairs` of ``x`` and of ``y``, or-ed into ``bad``, in one call (the
    loss's forward checks both; a call measured ~10-20 us after the kernel, cache-cold)."""
    _nonfinite_pairs(ux, xl, expo, bad)
    bad_y = np.empty_like(bad)
    _nonfinite_pairs(uy, yl, expo, bad_y)
    for b in range(bad.shape[0]):
        bad[b] = bad[b] or bad_y[b]


def _forward(cost, shape, gamma, x_len, y_len, lo, hi, keep, threads=None):
    B, N, M = shape
    gamma = float(gamma)
    dt = (cost[0] if isinstance(cost, tuple) else cost).dtype
    r = np.empty((B, N, M) if keep else (B, 0, 0), dt)
    aux = np.zeros(aux_shape(B, N, M, dt)[0] if keep else (B, 0), np.float64)
    value = np.empty(B, dt)
    if B == 0:
        return value, r, aux
    inf_, zero_, one_ = _consts(dt)
    inv_scale, out_scale = base2_scales(gamma)
    inv_scale = dt.type(inv_scale)
    xl, yl, lo, hi = _prep(x_len, y_len, lo, hi)
    rflat = r.reshape(-1)
    blocks = _var_blocks(B, N, M, xl, yl)
    if blocks is None:
        P, S, W = plan(B, N, M)
        tickets = np.zeros(1, np.int64)
        _run_plan(_fwd_blocks, _fwd_par, (cost, lo, hi, xl, yl, P, S, W, N, M, inv_scale, out_scale, rflat, aux,
                                           value, keep, tickets, inf_, zero_, one_), -(-B // P), tickets, threads)
        return value, r, aux

    # a padded batch: each block works on its pairs' cost cropped to their lengths, and stores
    # its R at its own offset of ``r`` (the crops sum to at most B N M)
    offsets = _block_offsets(blocks)

    def var_block(k):
        pairs, n, m, S, W = blocks[k]
        pr = len(pairs)
        shifts = np.zeros((pr, S * (n + S - 1)), np.float64)
        val = np.empty(pr, dt)
        store = rflat[offsets[k]:offsets[k + 1]] if keep else np.empty(min(2, n) * pr * m, dt)
        _fwd_block(cost, lo, hi, xl, yl, pairs, pr, S, W, n, m, inv_scale, out_scale, store, shifts, val,
                   inf_, zero_, one_)
        if keep:
            aux[pairs, :shifts.shape[1]] = shifts
        value[pairs] = val

    _run_blocks(var_block, len(blocks), threads)
    return value, r, aux


def backward(r, aux, gamma, x_len, y_len, lo, hi, grad_value, need_gamma_grad, threads=None):
    """``(grad_cost, grad_gamma)`` from the state of :func:`forward` (see the contract)."""
    _warm_cache()
    r = np.ascontiguousarray(r)
    _check(r.dtype)
    return _backward(r, aux, gamma, x_len, y_len, lo, hi, grad_value, need_gamma_grad, None, threads=threads)


def backward_sqeuclidean(r, aux, x, y, gamma, x_len, y_len, lo, hi, grad_value, need_y=True, threads=None):
    """``(grad_x, grad_y)`` from the state of :func:`forward_sqeuclidean`: ``grad_value[b]``
    times the gradient of pair ``b``'s value, ``2 sum_j E_ij (x_i - y_j)`` and
    ``2 sum_i E_ij (y_j - x_i)``, 0 past the lengths (no cost gradient is formed).
    ``need_y=False``: ``grad_y`` is None, and not summed (the faster sweep)."""
    _warm_cache()
    x, y = _series(x, y)
    return _backward(np.ascontiguousarray(r), aux, gamma, x_len, y_len, lo, hi, grad_value, False, (x, y),
                     need_y, threads)


def _backward(r, aux, gamma, x_len, y_len, lo, hi, grad_value, need_gamma_grad, series, need_y=True, threads=None):
    B, N, M = r.shape
    dt = r.dtype
    ggam = np.zeros(B, np.float64)
    if series is not None:
        gx = np.zeros(series[0].shape, dt)
        gy = np.zeros(series[1].shape if need_y else (0,) + series[1].shape[1:], dt)  # (no rows: not summed)

    def result(grad):
        if series is not None:
            return gx, (gy if need_y else None)
        return grad, (ggam.astype(dt) if need_gamma_grad else None)

    if B == 0:
        return result(np.empty((B, N, M), dt))
    inf_, zero_, one_ = _consts(dt)
    gv = np.ascontiguousarray(grad_value, dt).reshape(B)
    rflat = r.reshape(-1)
    aux = np.ascontiguousarray(aux, np.float64)
    xl, yl, lo, hi = _prep(x_len, y_len, lo, hi)
    need = bool(need_gamma_grad)
    blocks = _var_blocks(B, N, M, xl, yl)
    if blocks is None:
        P, S, W = plan(B, N, M)
        grad = np.empty((B, N, M), dt) if series is None else (series[0], series[1], gx, gy)
        tickets = np.zeros(1, np.int64)
        _run_plan(_bwd_blocks, _bwd_par, (rflat, aux, lo, hi, xl, yl, gv, P, S, W, N, M, grad, ggam, need, tickets,
                                           inf_, zero_, one_), -(-B // P), tickets, threads)
        return result(grad)

    # the kernel writes the crops; pages outside stay untouched
    grad = np.zeros((B, N, M), dt) if series is None else (series[0], series[1], gx, gy)
    offsets = _block_offsets(blocks)

    def var_block(k):
        pairs, n, m, S, W = blocks[k]
        pr = len(pairs)
        gg = np.zeros(pr, np.float64)
        _bwd_block(rflat[offsets[k]:offsets[k + 1]], np.ascontiguousarray(aux[pairs, :S * (n + S - 1)]),
                   lo, hi, xl, yl, gv, pairs, pr, S, W, n, m, grad, gg, need, inf_, zero_, one_)
        ggam[pairs] = gg

    _run_blocks(var_block, len(blocks), threads)
    return result(grad)
