"""The compiled core's own C++ tests (core/tests/test_core.cpp), built with CMake and run: on
this machine (every instruction set it has, and the array fallback of other compilers), and as
an aarch64 (NEON) build under qemu-user when Debian's cross compiler is installed (.ci/run
installs it)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "core"


def _build(tmp_path: Path, *cmake_args: str) -> Path:
    build = tmp_path / "build"
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    subprocess.run(["cmake", "-S", str(CORE), "-B", str(build), *gen, "-DSOFTDTW_PYTHON=OFF", "-DSOFTDTW_TESTS=ON",
                    *cmake_args], check=True, capture_output=True, text=True)
    subprocess.run(["cmake", "--build", str(build), "-j", str(os.cpu_count() or 1)], check=True,
                   capture_output=True, text=True)
    return build


def _run(cmd, env=None) -> str:  # (a C++ test binary: exits 0 and says it passed)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "passed (0 failed checks)" in out.stdout
    return out.stdout


@pytest.mark.slow
def test_core_cpp_native(tmp_path):
    if shutil.which("cmake") is None:
        pytest.fail("cmake is needed to build the core (pip install cmake)")
    build = _build(tmp_path, "-DSOFTDTW_BENCH=ON")
    isa = _run([str(build / "test_core")]).splitlines()[0]
    assert isa.startswith("isa: ")
    # every lower instruction set this machine has
    lower = {"avx512": ["avx2", "sse2"], "avx2": ["sse2"]}.get(isa.split()[1], [])
    for name in lower:
        out = _run([str(build / "test_core")], env={**os.environ, "SOFTDTW_ISA": name})
        assert out.splitlines()[0] == f"isa: {name}"
    assert _run([str(build / "test_core_scalar")]).splitlines()[0] == "isa: scalar"
    # the kernels' micro-benchmark builds and runs (a tiny size)
    out = subprocess.run([str(build / "bench_core"), "3", "9", "40", "2", "2"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "ns per cell" in out.stdout, out.stdout + out.stderr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-g++") is None or shutil.which("qemu-aarch64") is None,
                    reason="needs g++-aarch64-linux-gnu and qemu-user (apt-get install; .ci/run installs them)")
def test_core_cpp_aarch64_under_qemu(tmp_path):
    build = _build(tmp_path, "-DCMAKE_SYSTEM_NAME=Linux", "-DCMAKE_SYSTEM_PROCESSOR=aarch64",
                   "-DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++")
    # (qemu-user itself aborts in a forked child of a threaded process: the fork check runs natively)
    out = _run(["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", str(build / "test_core"), "--no-fork"])
    assert out.splitlines()[0] == "isa: neon"
