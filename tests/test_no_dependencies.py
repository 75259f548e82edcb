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
