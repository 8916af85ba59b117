"""Crash safety of run directories: atomic creation under races, the run lock, one-line write
errors that keep the previous files, resume repairing every file to the last checkpoint, and
feature-cache views kept across a resume. benchmarks/reliability.py repeats the kill trials."""
from __future__ import annotations

import errno
import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tlf
from test_engine import FAST, make_colour_folder
from test_plugins import plugin
from tlf.errors import TlfError
from tlf.pluginmanager import get_plugin_manager
from tlf.rundir import RunDirWriter, load_checkpoint

TIMING = {"images_per_second", "epoch_seconds"}


@pytest.fixture(scope="module")
def colours(tmp_path_factory) -> Path:
    return make_colour_folder(tmp_path_factory.mktemp("colours"), per_class=8, val_per_class=4, size=32)


def train(colours: Path, out: Path, **settings):
    options = {**FAST, "dataset": f"folder:{colours}", "policy": "transfer", "epochs": 1, "lr": 1e-2,
               "out": str(out), "quiet": True, **settings}
    return tlf.train(**options)


def without_timing(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# --- creation and locking -------------------------------------------------------------------

def _create(out: str, barrier, results) -> None:
    barrier.wait()
    try:
        results.put(str(RunDirWriter.create(out, "data", "net", "policy").path))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        results.put(f"{type(exc).__name__}: {exc}")


def test_eight_concurrent_creations_get_eight_directories(tmp_path):
    context = multiprocessing.get_context("fork")
    for round_ in range(5):
        out = tmp_path / f"round{round_}"
        barrier, results = context.Barrier(8), context.Queue()
        workers = [context.Process(target=_create, args=(str(out), barrier, results)) for _ in range(8)]
        for w in workers:
            w.start()
        got = [results.get(timeout=60) for _ in workers]
        for w in workers:
            w.join()
        assert all(Path(g).is_dir() for g in got), got
        assert len(set(got)) == 8
        assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_a_run_directory_appears_only_complete(tmp_path, monkeypatch):
    run = RunDirWriter.create(tmp_path, "d", "b", "p", files={"config.yaml": "epochs: 1\n", "classes.json": "[]\n"})
    assert {p.name for p in run.path.iterdir()} == {"config.yaml", "classes.json", ".lock"}
    run.unlock()

    def broken(self, name, text):  # as if the process died while filling the directory
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(RunDirWriter, "write_text", broken)
    with pytest.raises(OSError):
        RunDirWriter.create(tmp_path, "d", "b", "p", name="second", files={"config.yaml": "epochs: 1\n"})
    assert sorted(p.name for p in tmp_path.iterdir()) == [run.path.name]


def test_a_folder_left_empty_by_an_interrupted_start_is_taken_over(tmp_path):
    (tmp_path / "named").mkdir()  # what an older tlf left when killed before config.yaml
    run = RunDirWriter.create(tmp_path, "d", "b", "p", name="named", files={"config.yaml": "epochs: 1\n"})
    assert (run.path / "config.yaml").is_file() and run.path == tmp_path / "named"
    run.unlock()
    with pytest.raises(TlfError, match="already exists"):
        RunDirWriter.create(tmp_path, "d", "b", "p", name="named", files={"config.yaml": "epochs: 1\n"})


def test_a_run_being_trained_cannot_be_resumed_twice(colours, tmp_path):
    run = train(colours, tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from tlf.rundir import RunDirWriter; "
                               f"w = RunDirWriter({str(run.directory)!r}); w.lock(); print('locked', flush=True); time.sleep(120)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(TlfError, match=f"run {run.directory} is being trained by process {holder.pid}"):
            tlf.train(resume=run.directory, quiet=True)
        result = subprocess.run([sys.executable, "-m", "tlf", "train", "--resume", str(run.directory)],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 1 and result.stderr.count("\n") == 1
        assert f"being trained by process {holder.pid}" in result.stderr
    finally:
        holder.kill()
        holder.wait()
    assert tlf.train(resume=run.directory, quiet=True).summary["epochs"] == 1  # released with the process


# --- write failures ----------------------------------------------------------------------------

class _FailingFile:
    """A file whose writes fail with ``code`` after ``budget`` bytes (a disk filling up)."""

    def __init__(self, file, code: int, budget: int = 4096) -> None:
        self.file, self.code, self.budget = file, code, budget

    def write(self, data) -> int:
        self.budget -= len(data)
        if self.budget < 0:
            raise OSError(self.code, os.strerror(self.code))
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()


@pytest.mark.parametrize("code, cause", [(errno.ENOSPC, "the disk is full"), (errno.EFBIG, "the file is too large"),
                                         (errno.EPERM, "permission denied")])
def test_a_failed_checkpoint_write_is_one_line_and_keeps_the_previous_file(tmp_path, monkeypatch, code, cause):
    run = RunDirWriter(tmp_path)
    run.save_checkpoint("last", {"epoch": 1, "weights": torch.zeros(4)})
    before = (tmp_path / "last.pt").read_bytes()
    fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: _FailingFile(fdopen(fd, *a, **k), code))
    with pytest.raises(TlfError) as caught:
        run.save_checkpoint("last", {"epoch": 2, "weights": torch.zeros(100_000)})
    message = str(caught.value)
    assert f"cannot write {tmp_path / 'last.pt'}: {cause}" in message and "\n" not in message
    assert caught.value.hint and "enforce fail" not in message
    assert (tmp_path / "last.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_a_full_disk_mid_run_then_resume_ends_with_every_file(colours, tmp_path):
    """A real write failure (the file-size limit: EFBIG) in the CLI, then a resume without it."""
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20)); sys.argv = ['tlf'] + sys.argv[1:]; "
            "from tlf.cli import main; main()")
    args = ["train", "--dataset", f"folder:{colours}", "--policy", "transfer", "--epochs", "2", "--out", str(tmp_path),
            "--name", "full", "--backbone", "efficientnet_lite0", "--image-size", "32", "--batch-size", "8",
            "--workers", "0", "--augment", "none", "--device", "cpu", "--quiet"]
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"cannot write {tmp_path / 'full'}" in result.stderr and "too large" in result.stderr
    resumed = tlf.train(resume=tmp_path / "full", quiet=True)
    assert resumed.summary["epochs"] == 2
    assert load_checkpoint(resumed.directory, "best")["epoch"] + 1 == resumed.summary["best_epoch"]
    assert tlf.evaluate(resumed.directory, write=False)["accuracy"] >= 0


def test_a_hostile_checkpoint_is_refused_in_one_line(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    torch.save({"epoch": 0, "payload": Payload()}, tmp_path / "last.pt")
    with pytest.raises(TlfError) as caught:
        load_checkpoint(tmp_path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"refused checkpoint {tmp_path / 'last.pt'}")
    assert "GLOBAL posix.system" in message
    from tlf.models.weights import read_state_dict
    with pytest.raises(TlfError) as caught:  # --weights files alike
        read_state_dict(tmp_path / "last.pt")
    assert "\n" not in str(caught.value) and str(caught.value).startswith("refused weights file")
    assert not (tmp_path / "pwned").exists()
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("which", ["last", "best"])
def test_a_checkpoint_that_is_not_a_tlf_checkpoint_is_one_line(colours, tmp_path, which):
    run = train(colours, tmp_path)
    torch.save(torch.nn.Linear(2, 2).state_dict(), run.directory / f"{which}.pt")  # a plain state dict
    from click.testing import CliRunner
    from tlf.cli import cli
    args = ["train", "--resume", str(run.directory)] if which == "last" else ["evaluate", str(run.directory)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.exception.__class__ is SystemExit
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("Error: ") and f"{which}.pt is not a tlf checkpoint" in line and "'model'" in line


# --- resume repairs ----------------------------------------------------------------------------

def test_resume_repairs_metrics_and_best_checkpoint_of_a_finished_run(colours, tmp_path):
    run = train(colours, tmp_path)
    rows = metrics(run.directory)
    (run.directory / "metrics.jsonl").write_text("")  # killed before the last row landed
    (run.directory / "metrics.csv").write_text("")
    (run.directory / "best.pt").unlink()  # killed (or disk full) before best.pt was written
    resumed = tlf.train(resume=run.directory, quiet=True)
    assert metrics(run.directory) == rows
    assert (run.directory / "metrics.csv").read_text().count("\n") == 2
    assert load_checkpoint(run.directory, "best")["epoch"] == 0
    assert resumed.summary["best_epoch"] == 1
    assert tlf.evaluate(run.directory, write=False)["accuracy"] >= 0


def test_a_resumed_feature_cache_run_matches_an_uninterrupted_one(colours, tmp_path):
    settings = dict(epochs=4, augment="basic", feature_cache="auto", seed=3)
    whole = train(colours, tmp_path / "whole", **settings)
    assert whole.summary["feature_cache"]

    def stop(epoch: int) -> None:
        if epoch == 1:
            raise KeyboardInterrupt  # not a plugin failure: it ends the run, like a kill after epoch 1

    pm = get_plugin_manager()
    pm.register_object(plugin(tlf_on_epoch_end=stop), "stopper")
    try:
        with pytest.raises(KeyboardInterrupt):
            train(colours, tmp_path / "cut", **settings)
    finally:
        pm.unregister(name="stopper")
        pm.infos.pop("stopper", None)
    (cut,) = (tmp_path / "cut").iterdir()
    assert load_checkpoint(cut)["feature_cache_views"] == 4
    resumed = tlf.train(resume=cut, quiet=True)
    assert without_timing(metrics(resumed.directory)) == without_timing(metrics(whole.directory))


# --- a checkpoint checked against the plan ------------------------------------------------------

def test_resuming_after_a_class_was_added_names_the_class(colours, tmp_path):
    import shutil
    data = shutil.copytree(colours, tmp_path / "data")
    run = train(data, tmp_path / "runs")
    for split in ("train", "val"):
        shutil.copytree(data / split / "red", data / split / "purple")
    with pytest.raises(TlfError, match=r"last\.pt was trained on 3 classes and the dataset now has 4 \(new: purple\)"):
        tlf.train(resume=str(run.directory), epochs=2, quiet=True)


def test_a_config_naming_another_backbone_is_one_line_from_evaluate_and_export(colours, tmp_path):
    import yaml
    from click.testing import CliRunner
    from tlf.cli import cli
    run = train(colours, tmp_path)
    config = yaml.safe_load((run.directory / "config.yaml").read_text())
    (run.directory / "config.yaml").write_text(yaml.safe_dump({**config, "backbone": "resnet18"}))
    for args in (["evaluate", str(run.directory)], ["export", str(run.directory)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert "best.pt does not fit the model the run's settings build (it was trained with backbone efficientnet_lite0)" \
            in result.output
