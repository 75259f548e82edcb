"""``python -m softdtw.check`` (softdtw/check.py): its arguments, output and exit codes, on one
small property so that each test takes seconds (test_validation.py runs the properties)."""

import importlib.util
import os
import subprocess
import sys

import pytest

from softdtw import check

FAST = ["--properties", "symmetry", "--examples", "2", "--dtype", "float64"]
HAS_TORCH = importlib.util.find_spec("torch") is not None


def test_one_property_passes_with_a_line_per_realization_and_the_table(capsys):
    assert check.main(["--realizations", "numpy", *FAST]) == 0
    out = capsys.readouterr().out
    assert "numpy:cpu float64: ok (2 cases," in out  # printed as soon as it is done
    assert "max value err" in out and "* cases: the examples that passed" in out


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
def test_worker_processes_give_the_same_table(capsys):
    assert check.main(["--realizations", "numpy,torch-pure", "--jobs", "2", *FAST]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "numpy:cpu float64: ok (2 cases," in "\n".join(lines)
    assert "torch-pure:cpu float64: ok (2 cases," in "\n".join(lines)
    table = [line.split()[0] for line in lines[lines.index("") + 2:] if line.startswith(("numpy ", "torch-"))]
    assert table == ["numpy", "torch-pure"]  # in the order asked, whichever finished first


@pytest.mark.parametrize("args, message", [
    (["--realizations", "numpy,nope"], "unknown realization 'nope'"),
    (["--properties", "symmetry,nope"], "unknown property 'nope'"),
    (["--dtype", "float16"], "unknown dtype 'float16'"),
])
def test_unknown_names_are_errors(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        check.main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "choose from" in err


def test_help_is_plain_text_and_lists_properties_and_realizations(capsys):
    from softdtw.testing.properties import PROPERTIES

    with pytest.raises(SystemExit) as e:
        check.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "``" not in out
    assert all(name in out for name in PROPERTIES)
    assert all(name in out for name in check.REALIZATIONS)
    assert "cases (in the table): the examples that passed every check" in out


def _without_hypothesis(*args):
    code = ("import sys; sys.modules['hypothesis'] = None\n"  # import hypothesis -> ModuleNotFoundError
            "from softdtw.check import main; sys.exit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})


def test_without_hypothesis_a_clear_message_and_exit_code_2():
    r = _without_hypothesis(*FAST)
    assert r.returncode == 2, r.stderr
    assert 'pip install -e ".[test]"' in r.stderr
    assert "Traceback" not in r.stderr
    r = _without_hypothesis("--help")  # the help still works, without the property names
    assert r.returncode == 0 and "needs hypothesis to list them" in r.stdout


def _tasks(monkeypatch, capsys, args):
    """The realizations main runs (and its output), with the properties left out."""
    ran = []

    def fake(device, key, dtype, names, examples, derandomize):
        ran.append(key)
        return (key, device, dtype, 0, "-", "-", "0.0", "ok"), []

    monkeypatch.setattr(check, "_check", fake)
    assert check.main([*args, "--jobs", "1", *FAST]) == 0
    return ran, capsys.readouterr().out


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
@pytest.mark.parametrize("interpret", [None, "1"])  # conftest.py sets 1 on a machine without CUDA
def test_the_triton_interpreter_runs_only_when_asked(interpret, monkeypatch, capsys):
    if interpret is None:
        monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    else:
        monkeypatch.setenv("TRITON_INTERPRET", interpret)  # restored after the test
    ran, out = _tasks(monkeypatch, capsys, [])
    assert "torch-triton" not in ran and "torch-pure" in ran
    assert "torch-triton:cpu: skipped: interpreter: ask for it with --realizations torch-triton" in out
    ran, out = _tasks(monkeypatch, capsys, ["--realizations", "torch-triton"])
    assert ran == ["torch-triton"]
    assert os.environ["TRITON_INTERPRET"] == "1"
