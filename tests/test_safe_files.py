"""Links and temp files: nothing tlf writes or locks follows a link planted in its folders, temp
files are created exclusively under unpredictable names, the ones killed processes left are
removed by the next run (those of live processes stay), and tlf imports without ``fcntl``."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from _data_helpers import make_tar, sha256
from tlf import safe_files
from tlf.data.download import Archive, fetch_and_extract
from tlf.errors import TlfError
from tlf.paths import cache_dir
from tlf.rundir import RunDirWriter
from tlf.safe_files import atomic_write, new_temp, remove_stale_temps


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The process id of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def outside(tmp_path: Path, text: str = "x" * 190) -> Path:
    target = tmp_path / "outside.txt"
    target.write_text(text)
    return target


def test_a_planted_lock_link_is_refused_and_its_target_kept(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    target = outside(tmp_path)
    (run / ".lock").symlink_to(target)
    with pytest.raises(TlfError, match=r"\.lock is a symbolic link; tlf does not write or lock through links"):
        RunDirWriter(run).lock()
    assert target.read_text() == "x" * 190


def test_a_link_at_the_final_name_is_replaced_never_written_through(tmp_path):
    target = outside(tmp_path)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "summary.json").symlink_to(target)
    atomic_write(folder / "summary.json", lambda f: f.write("{}"))
    assert target.read_text() == "x" * 190
    assert not (folder / "summary.json").is_symlink() and (folder / "summary.json").read_text() == "{}"


def test_temp_names_are_new_files_with_unpredictable_names(tmp_path):
    names = {new_temp(tmp_path / "model.onnx").name for _ in range(20)}
    assert len(names) == 20 and all(safe_files.TEMP_NAME.match(n) for n in names)


def test_stale_temps_go_and_those_of_live_processes_stay(tmp_path, dead_pid):
    host = safe_files.HOST
    dead_file = tmp_path / f".model.onnx.{dead_pid}-{host}.abcd1234.tmp"
    dead_folder = tmp_path / f".run-x.{dead_pid}-{host}.0123abcd.tmp"
    live = tmp_path / f".model.onnx.{os.getppid()}-{host}.abcd1234.tmp"  # pytest's parent shell lives
    elsewhere = tmp_path / f".model.onnx.{dead_pid}-{'0' * 6 if host != '0' * 6 else '1' * 6}.abcd1234.tmp"
    own = new_temp(tmp_path / "model.onnx")
    other = tmp_path / ".notes.tmp"
    for path in (dead_file, live, other, elsewhere):
        path.write_text("x")
    dead_folder.mkdir()
    (dead_folder / "config.yaml").write_text("x")
    assert sorted(remove_stale_temps(tmp_path)) == sorted([dead_file, dead_folder])
    assert live.exists() and own.exists() and other.exists() and elsewhere.exists()  # another machine's: a day


def test_a_run_folder_half_made_by_a_killed_process_is_removed_by_the_next(tmp_path, dead_pid):
    stale = tmp_path / f".data-net-policy-20260101T000000Z.{dead_pid}-{safe_files.HOST}.0123abcd.tmp"
    stale.mkdir()
    (stale / "config.yaml").write_text("x")
    run = RunDirWriter.create(tmp_path, "data", "net", "policy")
    run.unlock()
    assert not stale.exists() and [p.name for p in tmp_path.iterdir()] == [run.path.name]


def test_cache_folders_lose_the_temp_files_of_killed_processes(dead_pid):
    folder = cache_dir("decoded")
    folder.mkdir(parents=True)
    stale_hidden = folder / f".cifar-abc.u8.{dead_pid}-{safe_files.HOST}.abcd1234.tmp"
    stale_hidden.write_bytes(b"0" * 1000)
    cache_dir("decoded")
    assert not stale_hidden.exists()


def test_a_second_download_waits_for_the_first(tmp_path, capsys):
    (tmp_path / "thing" / "a").mkdir(parents=True)
    (tmp_path / "thing" / "a" / "f.txt").write_text("hi")
    tgz = make_tar(tmp_path / "thing", tmp_path / "thing.tgz")
    archive, cache = Archive(tgz.as_uri(), "thing.tgz", sha256=sha256(tgz)), tmp_path / "cache"
    cache.mkdir()
    first = safe_files.lock(cache / ".thing.tgz.lock")  # another process downloading
    results = []
    second = threading.Thread(target=lambda: results.append(fetch_and_extract(archive, cache, "thing")))
    second.start()
    second.join(timeout=1)
    assert second.is_alive() and not (cache / "thing").exists()  # waiting, not downloading beside it
    first.release()
    second.join(timeout=60)
    assert results == [cache / "thing"] and (cache / "thing" / "a" / "f.txt").read_text() == "hi"
    assert "is downloading thing.tgz; waiting for it" in capsys.readouterr().err


def test_every_tlf_module_imports_without_fcntl():
    """Windows has no fcntl: no tlf module may import it (filelock picks the platform's lock)."""
    script = """
import importlib, pkgutil, sys
sys.modules['fcntl'] = None
import tlf, tlf.plugins
failed = []
for package in (tlf, tlf.plugins):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):
        try:
            importlib.import_module(info.name)
        except ImportError as exc:
            if 'fcntl' in str(exc):
                failed.append(f'{info.name}: {exc}')
print('\\n'.join(failed) or 'ok')
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert out.stdout.strip() == "ok", out.stdout + out.stderr


def _read_only(*args, **kwargs):
    import errno
    raise OSError(errno.EROFS, "Read-only file system")


def test_a_read_only_output_folder_is_one_line(tmp_path, monkeypatch):
    from onnx_helpers import export_small
    monkeypatch.setattr(safe_files.tempfile, "mkstemp", _read_only)
    with pytest.raises(TlfError, match=r"cannot write .*resnet18\.onnx: the file system is read-only \(EROFS\)"):
        export_small(tmp_path, "resnet18", 32, exporter="torchscript")


def test_a_read_only_tlf_home_is_one_line_when_downloading(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "mkdir", _read_only)
    with pytest.raises(TlfError, match=r"cannot write .*\.thing\.tgz\.lock: the file system is read-only .*set TLF_HOME"):
        fetch_and_extract(Archive("file:///nonexistent/thing.tgz", "thing.tgz"), tmp_path / "home" / "thing", "thing")


def test_a_download_never_writes_through_a_link_planted_at_its_part_file(tmp_path):
    (tmp_path / "thing" / "a").mkdir(parents=True)
    (tmp_path / "thing" / "a" / "f.txt").write_text("hi")
    tgz = make_tar(tmp_path / "thing", tmp_path / "thing.tgz")
    target = outside(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "thing.tgz.part").symlink_to(target)
    with pytest.raises(TlfError, match="could not download"):
        fetch_and_extract(Archive(tgz.as_uri(), "thing.tgz", sha256=sha256(tgz)), cache, "thing")
    assert target.read_text() == "x" * 190


def test_a_cache_folder_is_pruned_once_per_process(monkeypatch):
    """A run asks for its cache folders many times; only the first call on an existing folder scans it."""
    from tlf import paths
    scans = []
    monkeypatch.setattr(paths, "remove_stale_temps", lambda folder: scans.append(folder) or [])
    cache_dir("features-once")  # not there yet: nothing to scan
    cache_dir("features-once").mkdir(parents=True)
    for _ in range(3):
        cache_dir("features-once")
    assert scans == [cache_dir("features-once")]
