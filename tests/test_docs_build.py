"""The documentation site builds with warnings as errors and documents every public name."""

import importlib
import re
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocstrings_handlers.python")  # in the test extra
    out = tmp_path_factory.mktemp("site")
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
                        "--site-dir", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return out


@pytest.mark.parametrize("module", ["numpy", "torch", "jax", "plot"])
def test_api_page_documents_every_public_name(site, module):
    mod = importlib.import_module(f"softdtw.{module}")
    html = (site / "api" / module / "index.html").read_text()
    for name in mod.__all__:
        assert f'id="softdtw.{module}.{name}"' in html, f"softdtw.{module}.{name} is missing from the API reference"
    # the reST math of the numpydoc docstrings became MathJax input
    assert ".. math::" not in html and ":math:" not in html and ":func:" not in html


def test_every_page_of_the_nav_is_built(site):
    for page in ["index", "numpy", "torch", "jax", "examples", "algorithm", "migration", "benchmarks"]:
        assert (site / page / "index.html").exists() or (page == "index" and (site / "index.html").exists())


def test_rst_math_becomes_arithmatex_blocks():
    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    try:
        from griffe_rst import rst_to_markdown
    finally:
        sys.path.pop(0)
    doc = "Text.\n\n.. math::\n\n    a = b\n    + c\n\nwhere :math:`a` is :func:`f`.\n"
    assert rst_to_markdown(doc) == "Text.\n\n$$\na = b\n+ c\n$$\n\nwhere $a$ is `f`."


def python_blocks(page: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", (ROOT / "docs" / page).read_text(), flags=re.S | re.M)


@pytest.mark.parametrize("page", ["index.md", "numpy.md", "torch.md", "migration.md"])
def test_code_blocks_run_and_print_what_they_say(page, capsys):
    """The python blocks of a page run in order in one namespace; a ``print(...)  # expected``
    comment must match what the line printed."""
    pytest.importorskip("torch")
    jax = pytest.importorskip("jax")
    namespace: dict = {}
    for block in python_blocks(page):
        # as a reader runs them: JAX's default float32 (tests/test_jax.py turns x64 on globally)
        with jax.enable_x64(False):
            exec(compile(block, f"docs/{page}", "exec"), namespace)
        printed = capsys.readouterr().out.splitlines()
        expected = [line.split("#", 1)[1].split(":")[0].strip() for line in block.splitlines()
                    if line.startswith("print(") and "#" in line]
        assert len(printed) == len(expected), (printed, expected)
        for out, exp in zip(printed, expected):
            exp = exp.rstrip(".")  # "-2.500068..." means a prefix
            assert out.startswith(exp) or " ".join(out.split()).startswith(" ".join(exp.split())), (page, out, exp)

