"""The cross-framework validation properties (softdtw.testing.properties) for every realization
available on this machine's CPU (and CUDA when present): the same code as ``python -m softdtw.check``."""

import os

import pytest

from softdtw.check import main as check_main
from softdtw.testing import properties
from softdtw.testing.realizations import Realization, all_realizations

# a few examples per (realization, dtype, property) keep the suite within its CI budget;
# `python -m softdtw.check --examples N` runs as many as wanted
EXAMPLES = int(os.environ.get("SOFTDTW_VALIDATION_EXAMPLES", "3" if os.environ.get("CI") else "10"))

CASES = []
for device in ("cpu", "cuda"):
    for key, real in all_realizations(device).items():
        if device == "cuda" and isinstance(real, str):
            continue
        for dtype in (real.dtypes if isinstance(real, Realization) else ("-",)):
            marks = [pytest.mark.cuda] if device == "cuda" else []
            CASES.append(pytest.param(real, dtype, id=f"{key}:{device}:{dtype}", marks=marks))


CASES = [pytest.param(c.values[0], c.values[1], prop, id=f"{prop}-{c.id}", marks=c.marks)
         for prop in properties.PROPERTIES for c in CASES
         if isinstance(c.values[0], str) or properties.applies(prop, c.values[0])]


@pytest.mark.parametrize("real, dtype, prop", CASES)
def test_property(real, dtype, prop):
    if isinstance(real, str):
        pytest.fail(f"realization unavailable in the test environment: {real}")
    # the Triton interpreter runs ~1e4 cells per second: fewer examples there
    examples = max(2, EXAMPLES // 2) if real.name == "torch-triton" and real.device == "cpu" else EXAMPLES
    result = properties.run(real, dtype, [prop], max_examples=examples, derandomize=True)
    assert not result.failures, result.failures[0][1]
    assert result.stats.cases > 0


def test_check_command_passes(capsys):
    assert check_main(["--realizations", "numpy,torch-cpu", "--examples", "2",
                       "--properties", "agreement,brute_force"]) == 0
    out = capsys.readouterr().out
    assert "torch-cpu" in out and "max grad err" in out and "FAIL" not in out


def test_check_command_reports_a_broken_realization(monkeypatch, capsys):
    from softdtw.kernels import cpu

    for name in ("forward", "forward_sqeuclidean"):  # the core's values, off by 1e-3
        real = getattr(cpu, name)
        monkeypatch.setattr(cpu, name, lambda *a, _real=real, **k: (lambda v, *rest: (v + 1e-3, *rest))(*_real(*a, **k)))
    code = check_main(["--realizations", "torch-cpu", "--dtype", "float64", "--examples", "5",
                       "--properties", "agreement"])
    out = capsys.readouterr().out
    assert code != 0
    assert "FAIL: agreement" in out
    # the smallest failing example, to paste into a bug report
    assert "problem=Problem(x=array(" in out and "reproduce_failure" in out
