"""The documentation site builds with warnings as errors and documents every public name."""

import importlib
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
