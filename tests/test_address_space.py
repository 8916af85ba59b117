"""Under a small ``ulimit -v`` tlf says so in one line (tlf.address_space): no ImportError
traceback, no crash in a library's import, no failure in the middle of a step as a traceback."""
from __future__ import annotations

import resource
import subprocess
import sys

import pytest
from cli_output import said

from tlf import address_space, cli
from tlf.address_space import MIN_ADDRESS_SPACE, address_space_failure


def _limited(kib: int, *args: str) -> subprocess.CompletedProcess:
    """``python -m tlf ARGS`` with its address space limited to ``kib`` KiB (as ``ulimit -v`` does)."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (kib << 10, resource.getrlimit(resource.RLIMIT_AS)[1]))
    return subprocess.run([sys.executable, "-m", "tlf", *args], capture_output=True, text=True, timeout=120,
                          preexec_fn=limit)


@pytest.mark.parametrize("kib", [1_500_000, 3_500_000])
def test_a_command_under_a_small_address_space_limit_is_one_line_naming_it(kib, tmp_path):
    result = _limited(kib, "train", "--dataset", "synthetic", "--epochs", "1", "--out", str(tmp_path))
    assert result.returncode == 1, result.stderr[-2000:]
    assert said(result.stderr).strip().count("\n") == 0, result.stderr[-2000:]
    assert "address-space limit (ulimit -v)" in result.stderr and "ulimit -v unlimited" in result.stderr
    assert not list(tmp_path.iterdir())


def test_help_and_version_need_no_address_space_check():
    assert _limited(1_500_000, "--version").returncode == 0
    assert _limited(1_500_000, "train", "--help").returncode == 0


FAILURES = [ImportError("libtorch_cpu.so: failed to map segment from shared object"),
            RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                         "you tried to allocate 78452736 bytes. Error code 12 (Cannot allocate memory)"),
            RuntimeError("could not create a primitive"), MemoryError()]


@pytest.mark.parametrize("failure", FAILURES, ids=lambda e: type(e).__name__)
def test_a_failure_for_lack_of_address_space_is_one_line(failure, monkeypatch, capsys):
    """A failure a finite limit explains, anywhere in a command: one line naming the limit and the fix."""
    monkeypatch.setattr(address_space, "address_space_limit", lambda: MIN_ADDRESS_SPACE)

    def fails(**kwargs) -> None:
        raise failure

    monkeypatch.setattr(cli.cli, "main", fails)
    monkeypatch.setattr(sys, "argv", ["tlf", "train"])
    monkeypatch.setattr(cli, "add_plugin_commands", lambda group: None)
    with pytest.raises(SystemExit) as stopped:
        cli.main()
    err = capsys.readouterr().err
    assert stopped.value.code == 1 and err.count("\n") == 1, err
    assert err.startswith("Error: out of address space under the limit ulimit -v sets") and "ulimit -v unlimited" in err


def test_other_failures_are_left_alone(monkeypatch):
    monkeypatch.setattr(address_space, "address_space_limit", lambda: None)
    assert address_space_failure(FAILURES[0]) is None  # no limit: a broken install, not this
    monkeypatch.setattr(address_space, "address_space_limit", lambda: MIN_ADDRESS_SPACE)
    assert address_space_failure(RuntimeError("shape mismatch")) is None
    assert address_space_failure(ValueError("can't allocate memory")) is None


def test_a_run_under_a_limit_that_fits_trains(tmp_path):
    """At the documented minimum the default run (synthetic data, the default backbone) trains."""
    result = _limited(MIN_ADDRESS_SPACE >> 10, "train", "--dataset", "synthetic", "--epochs", "1", "--image-size", "64",
                      "--no-report", "--out", str(tmp_path), "-q")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "run directory" in result.stdout + result.stderr


def test_torch_free_commands_still_run_under_a_small_limit(tmp_path):
    """predict runs ONNX models with onnxruntime alone (under 1 GiB of address space): no refusal."""
    import numpy as np
    from onnx_helpers import export_small
    from PIL import Image
    _, report = export_small(tmp_path, "resnet18", 32, exporter="torchscript")
    Image.fromarray(np.full((40, 40, 3), 120, np.uint8)).save(tmp_path / "a.png")
    result = _limited(1_500_000, "predict", str(report.path), str(tmp_path / "a.png"), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "a.png" in result.stdout
