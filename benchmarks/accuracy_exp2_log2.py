"""Accuracy of the numba CPU kernel's float64 ``exp2``/``log2`` (vectorisable polynomials,
``softdtw/kernels/numba_cpu.py``) against long double references, in ulps, next to libm's;
then the float32 ones (relative error of ``exp2``, absolute error of ``log2``).

Run by hand: ``python benchmarks/accuracy_exp2_log2.py [--n 2000000]``. Inputs cover what the
kernel feeds them: ``exp2`` on ``[-1100, 0]`` (dense near 0, where the softmin weights live)
and ``log2`` on ``[1, 3]``.
"""

from __future__ import annotations

import argparse

import numpy as np

from softdtw.kernels.numba_cpu import exp2_log2


def ulps(got, want):
    """|got - want| in units of the last place of ``want`` (as float64)."""
    w = want.astype(np.float64)
    spacing = np.spacing(np.abs(w))
    return np.abs(got.astype(np.longdouble) - want) / spacing.astype(np.longdouble)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=2_000_000)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    t = np.concatenate([-rng.random(args.n) * 60, -rng.random(args.n // 4) * 1100, -rng.random(args.n) * 1e-3,
                        [0.0, -0.5, -1.0, -1022.0, -1074.0]])
    s = np.concatenate([1 + 2 * rng.random(args.n), 1 + rng.random(args.n) * 1e-6, [1.0, 2.0, 3.0, np.sqrt(2)]])
    e, lg = exp2_log2(t, s)
    normal = t > -1022  # below, both round to (sub)normal numbers or 0 (ours flushes below -1023)
    ref_e = np.exp2(t.astype(np.longdouble))
    ref_l = np.log2(s.astype(np.longdouble))
    libm_e, libm_l = np.exp2(t), np.log2(s)
    print(f"exp2 on {normal.sum()} inputs in (-1022, 0]: max {ulps(e[normal], ref_e[normal]).max():.2f} ulp "
          f"(libm {ulps(libm_e[normal], ref_e[normal]).max():.2f}), "
          f"equal to libm: {np.mean(e[normal] == libm_e[normal]):.4f}")
    print(f"exp2 below -1022: max |ours| {np.abs(e[~normal]).max():.3g}")
    print(f"log2 on {s.size} inputs in [1, 3]: max {ulps(lg, ref_l).max():.2f} ulp "
          f"(libm {ulps(libm_l, ref_l).max():.2f}), equal to libm: {np.mean(lg == libm_l):.4f}")
    assert e[t == 0.0][0] == 1.0 and lg[s == 1.0][0] == 0.0
    t32, s32 = t[t > -126].astype(np.float32), s.astype(np.float32)
    e32, lg32 = exp2_log2(t32, s32)
    rel = np.abs(e32 / np.exp2(t32.astype(np.float64)) - 1)
    print(f"float32 exp2 on {t32.size} inputs in (-126, 0]: max relative error {rel.max():.2e} "
          f"({rel.max() / 2.0 ** -24:.2f} half-ulp of 1)")
    print(f"float32 log2 on {s32.size} inputs in [1, 3]: max absolute error "
          f"{np.abs(lg32 - np.log2(s32.astype(np.float64))).max():.2e}")
    e32, _ = exp2_log2(np.array([0, -127, -np.inf], np.float32), np.ones(3, np.float32))
    assert e32[0] == 1 and e32[1] == 0 and e32[2] == 0


if __name__ == "__main__":
    main()
