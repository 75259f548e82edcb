"""Where the numba CPU kernel spends its time, instruction by instruction (Linux, by hand).

    python benchmarks/profile_numba_cpu.py [--size 32,256,256,8] [--phase f|b] [--seconds 6]
                                           [--threads 1] [--top 40]

Runs ``forward_sqeuclidean`` (``f``) or ``backward_sqeuclidean`` (``b``, the loss's sweep:
``need_y=False``) in a loop under ``perf record -e cpu-clock`` (a timer, so it needs no
hardware counters: it works in VMs where ``perf stat`` does not), then prints

- the share of samples in numba's compiled code and in everything else (libpython, libc, ...),
- the hottest 256-byte regions of the kernel's code,
- its hottest instructions, disassembled (``objdump``),
- the code around the hottest instruction.

Numba's compiled code has no symbols that perf can read. The child process writes the address of
each entry point (``_fwd_blocks``, ``_bwd_blocks``) and dumps 64 KiB of code from there; the
functions they call are in the same code object (numba links them in), so the whole row loop is
in the dump. A sample counts against the instruction that was about to retire, so in a loop
bound by a dependency chain the samples pile up on the first instruction that waits for the
chain (e.g. a ``vblendvps`` right after the ``vminps`` that reads the carried column).

Needs ``perf`` and ``objdump`` (binutils) on the PATH.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import os
import re
import subprocess
import sys
import tempfile
import time

DUMP = 0x10000  # bytes of code dumped from each entry point


def child(size, phase, seconds, threads, out):
    import numba
    import numpy as np
    from numba.core.registry import CPUDispatcher

    from softdtw import spec
    from softdtw.kernels import numba_cpu as K

    numba.set_num_threads(threads)
    B, N, M, D = size
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, N, D)).astype(np.float32)
    y = rng.standard_normal((B, M, D)).astype(np.float32)
    xl, yl = np.full(B, N, np.int32), np.full(B, M, np.int32)
    lo, hi = spec.band_bounds(N, M, xl, yl)
    _, r, aux = K.forward_sqeuclidean(x, y, 1.0, xl, yl, lo, hi)
    gv = np.ones(B, np.float32)
    K.backward_sqeuclidean(r, aux, x, y, 1.0, xl, yl, lo, hi, gv, need_y=False)
    entries = []
    for name in ("_fwd_blocks", "_bwd_blocks"):
        disp = getattr(K, name)
        assert isinstance(disp, CPUDispatcher)
        for cres in disp.overloads.values():
            addr = cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)
            if addr:
                path = os.path.join(out, f"{name}-{addr:x}.bin")
                with open(path, "wb") as fh:
                    fh.write(ctypes.string_at(addr, DUMP))
                entries.append(f"{addr:x} {name} {path}")
    with open(os.path.join(out, "entries.txt"), "w") as fh:
        fh.write("\n".join(entries) + "\n")
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        if phase == "f":
            K.forward_sqeuclidean(x, y, 1.0, xl, yl, lo, hi)
        else:
            K.backward_sqeuclidean(r, aux, x, y, 1.0, xl, yl, lo, hi, gv, need_y=False)


def disassemble(path, base):
    """``[(address, text)]`` of the dumped code (objdump of raw bytes, so some lines past the
    function's end are data or padding)."""
    text = subprocess.run(["objdump", "-D", "-b", "binary", "-m", "i386:x86-64", f"--adjust-vma={base:#x}", path],
                          check=True, capture_output=True, text=True).stdout
    out = []
    for line in text.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s+(?:[0-9a-f]{2} )+\s*(.*)", line)
        if m and m.group(2).strip():
            out.append((int(m.group(1), 16), m.group(2).strip()))
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--size", default="32,256,256,8", help="B,N,M,D")
    p.add_argument("--phase", default="f", choices=("f", "b"))
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    size = tuple(int(v) for v in a.size.split(","))
    if a.child:
        child(size, a.phase, a.seconds, a.threads, a.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "5000", "-o", data, sys.executable,
                        __file__, "--size", a.size, "--phase", a.phase, "--seconds", str(a.seconds),
                        "--threads", str(a.threads), "--child", tmp], check=True)
        samples = subprocess.run(["perf", "script", "-i", data, "-F", "ip,dso"], check=True, capture_output=True,
                                 text=True).stdout
        ips, dsos = [], collections.Counter()
        for line in samples.splitlines():
            parts = line.split(None, 1)
            if len(parts) == 2:
                ip, dso = int(parts[0], 16), parts[1].strip("()")
                ips.append(ip)
                dsos["numba's compiled code" if "perf-" in dso or "JIT" in dso else os.path.basename(dso)] += 1
        total = len(ips)
        with open(os.path.join(tmp, "entries.txt")) as fh:
            entries = [(int(a_, 16), n, pth) for a_, n, pth in (ln.split() for ln in fh if ln.strip())]
        print(f"# {a.size}, phase {a.phase}, {a.threads} thread(s), {total} samples (loading and the first "
              f"calls included)")
        for dso, n in dsos.most_common(6):
            print(f"{100 * n / total:6.1f}%  {dso}")
        count = collections.Counter(ips)
        name = "_fwd_blocks" if a.phase == "f" else "_bwd_blocks"
        for base, ename, path in entries:
            if ename != name:
                continue
            inside = [ip - base for ip in ips if 0 <= ip - base < DUMP]
            print(f"\n{100 * len(inside) / total:.1f}% of the samples in the {DUMP // 1024} KiB from {ename} "
                  f"({base:#x})\n\nhottest 256-byte regions (offset: share)")
            regions = collections.Counter(off >> 8 for off in inside)
            for reg, n in sorted(regions.most_common(12)):
                print(f"  {reg << 8:#07x}: {100 * n / total:5.1f}%")
            code = disassemble(path, base)
            hot = sorted(((count.get(addr, 0), addr, txt) for addr, txt in code), reverse=True)[:a.top]
            print("\nhottest instructions (offset, share, instruction)")
            for n, addr, txt in sorted(hot, key=lambda h: h[1]):
                print(f"  {addr - base:#07x} {100 * n / total:5.2f}%  {txt}")
            top = hot[0][1]
            print("\naround the hottest one")
            for addr, txt in code:
                if top - 0x60 <= addr <= top + 0x30:
                    print(f"  {addr - base:#07x} {100 * count.get(addr, 0) / total:5.2f}%  {txt}")


if __name__ == "__main__":
    main()
