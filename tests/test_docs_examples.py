"""The code blocks of the docs run as written."""

import pathlib
import re

import pytest

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


def python_blocks(name):
    return re.findall(r"```python\n(.*?)```", (DOCS / name).read_text(), flags=re.S)


def test_jax_optax_training_example_learns(capsys):
    pytest.importorskip("optax")  # in the test extra
    block = next(b for b in python_blocks("jax.md") if "optax" in b)
    # the same example with fewer steps; it must lower the loss
    first = block.replace("for i in range(200):", "for i in range(1):")
    exec(compile(first, "docs/jax.md", "exec"), {})
    loss_after_1 = float(capsys.readouterr().out.strip().splitlines()[-1])
    few = block.replace("for i in range(200):", "for i in range(30):")
    exec(compile(few, "docs/jax.md", "exec"), {})
    loss_after_30 = float(capsys.readouterr().out.strip().splitlines()[-1])
    assert loss_after_30 < loss_after_1
