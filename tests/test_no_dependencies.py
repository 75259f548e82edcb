"""``import softdtw`` and ``softdtw.numpy`` load neither torch nor jax; missing extras name the install."""

import subprocess
import sys
import textwrap

import pytest


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True)


def test_import_loads_no_framework():
    r = run("""
        import sys
        import softdtw, softdtw.numpy, softdtw.spec
        softdtw.numpy.soft_dtw([[0.0]], [[1.0]])
        bad = [m for m in ("torch", "jax", "jaxlib", "triton") if m in sys.modules]
        assert not bad, bad
    """)
    assert r.returncode == 0, r.stderr


def test_cpu_routes_load_no_numba_and_import_changes_no_thread():
    """The CPU routes run the compiled core: no JIT compiler is loaded by an import or a call
    (a loss with its gradient, checkpointed, cdist, barycenter), and importing starts no Python thread."""
    r = run("""
        import sys, threading
        import numpy as np
        import softdtw.numpy as snp
        import torch
        import softdtw.torch as st
        assert threading.active_count() == 1, threading.enumerate()
        x = torch.randn(3, 9, 2, requires_grad=True)
        st.soft_dtw(x, torch.randn(3, 7, 2), 1.0).sum().backward()
        st.soft_dtw(x.double(), torch.randn(3, 7, 2).double(), 1.0, memory="checkpoint").sum().backward()
        st.soft_dtw_from_cost(torch.rand(3, 5, 4, requires_grad=True), 0.5).sum().backward()
        st.cdist_soft_dtw(torch.randn(4, 6, 2))
        snp.cdist_soft_dtw(np.random.rand(4, 6, 2))
        snp.soft_dtw_barycenter(np.random.rand(3, 6, 2), max_iter=2)
        bad = [m for m in ("numba", "llvmlite") if m in sys.modules]
        assert not bad, bad
    """)
    assert r.returncode == 0, r.stderr


BLOCK = """
    import sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == {mod!r}:
                raise ImportError("No module named " + {mod!r})
    sys.meta_path.insert(0, Block())
    try:
        import softdtw.{sub}
    except ImportError as e:
        print(e)
        sys.exit(3)
"""


@pytest.mark.parametrize("sub, mod", [("torch", "torch"), ("jax", "jax")])
def test_missing_extra_names_the_install(sub, mod):
    r = run(BLOCK.format(sub=sub, mod=mod))
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert f"pip install softdtw[{sub}]" in r.stdout


def test_numba_is_not_required():
    """softdtw's own requirements (without extras) do not name numba: the CPU kernels are the core."""
    from importlib.metadata import requires

    plain = [r for r in requires("softdtw") or [] if "extra ==" not in r]
    assert plain, "softdtw's metadata lists no requirement at all (numpy is one)"
    assert not [r for r in plain if r.split(";")[0].strip().lower().startswith("numba")], plain


def test_forced_numba_kernel_without_numba_names_the_install():
    r = run("""
        import os, sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "numba":
                    raise ImportError("No module named numba", name="numba")
        sys.meta_path.insert(0, Block())
        os.environ["SOFTDTW_KERNEL"] = "numba"
        import torch
        import softdtw.torch as st
        try:
            st.soft_dtw(torch.randn(2, 3, 1), torch.randn(2, 3, 1))
        except ImportError as e:
            print(e)
            sys.exit(3)
    """)
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert "SOFTDTW_KERNEL=numba" in r.stdout and "numba" in r.stdout
