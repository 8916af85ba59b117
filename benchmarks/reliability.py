"""Reliability trials: kill `tlf train` at random moments and resume it; race run-directory
creation and resumes; feed hostile files and wrong inputs to the command line. Prints counts.

    python benchmarks/reliability.py [--kills 20] [--races 20] [--double-resumes 3] [--seed 0]
                                     [--export-kills 3] [--skip-escapes] [--skip-sweep] [--skip-limits] [--json]

Kill trials (``--kills``, default 20) alternate two runs on a generated 3-class image tree (tiny,
CPU, 4 epochs): ``transfer --augment basic`` (a frozen-feature cache of 4 augmented views) and
``partial:conv5 --augment basic --feature-cache off`` (the live path). Each trial SIGKILLs a run at a moment drawn by one of three modes, in turn:

- ``uniform``: anywhere in the run's reference duration;
- ``checkpoint``: as soon as a checkpoint's temp file appears (inside a ``best.pt``/``last.pt``
  write), plus 0-30 ms;
- ``cache``: after the run's first line (set-up done), within the time the reference run took
  to its first checkpoint: the feature-cache build and epoch 1;

then resumes it (``tlf train --resume``; a run killed before its directory appeared is started
again with the same ``--name``) and compares the finished run with an uninterrupted reference:
metrics rows identical except wall-time columns, ``best.pt`` of the best epoch, no temp file.

Race trials: ``--races`` rounds of 8 processes calling ``RunDirWriter.create`` at once (counts
exceptions and duplicate directories), and ``--double-resumes`` rounds of two ``--resume`` of
the same run started together (exactly one may train).

Every ``tlf`` invocation is a child forked from this process after it imported tlf (its CLI
entry point, ``tlf.cli.main``, with the child's stdout/stderr in files): a SIGKILL kills a
whole ``tlf`` process as in real use, without paying an interpreter start per trial, which on a
shared 2-core machine costs more than the tiny training itself.

Escape trials (unless ``--skip-escapes``): links planted at a run's ``.lock`` and at every file
``tlf export --quantize int8`` and ``tlf evaluate`` write (counts files outside written through a
link); a dataset whose class folder links to images outside, to the dataset root and to another
class (counts images read against the tree's own); ``--export-kills`` (default 3) exports
SIGKILLed at a random moment, each followed by the same export (counts half-written files at a
final name and temp files left after it).

The sweep runs hostile files through ``tlf predict`` / ``tlf data show`` (FIFO, a 100000x1
PNG, a link loop, with a timeout: hangs are counted) and wrong inputs through every command,
counting tracebacks; and inputs that ask for too much or are not what they claim (a YAML
"billion laughs", a 2 MB config, latin-1 and UTF-16 configs, ``--image-size 100000``,
``--batch-size 10**30``, a dataset path holding ``[/b]``, which rich read as markup).

Limit trials (unless ``--skip-limits``), each in a fresh interpreter: ``tlf train`` under
``ulimit -v`` of 1.5, 2, 2.5 and 3.5 GB (counts one-line errors, tracebacks, crashes and
hangs); a plugin registering 10,000 datasets and 10,000 augmentations through ``tlf plugins``,
``tlf --help`` and a short ``tlf train``; the peak resident memory of ``tlf train --policy init``
at the default batch and image size (the memory target: at most 3 GB); and ``tlf export
--quantize int8`` with a link to a file outside planted at every name an ONNX writer is given
in a folder others can write in, at the moment it writes (counts files outside written).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

TIMING = {"images_per_second", "epoch_seconds"}
EPOCHS = 4
# (policy, augment, feature cache): the cached path (4 augmented views) and the live one
POLICIES = (("transfer", "basic", "auto"), ("partial:conv5", "basic", "off"))
MODES = ("uniform", "checkpoint", "cache")


def make_data(root: Path, per_class: int = 8, val_per_class: int = 4, size: int = 40) -> Path:
    """A train/val class tree whose classes differ by colour."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("val", val_per_class)):
        for name, rgb in {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (50, 60, 210)}.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = np.clip(np.array(rgb) + rng.integers(-40, 40, (size, size, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


class Tlf:
    """One ``tlf ARGS`` process, forked from this one (see the module docstring)."""

    def __init__(self, args: list[str], logs: Path) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=logs, prefix="tlf-")
        os.close(fd)
        self.stdout, self.stderr = Path(name + ".out"), Path(name + ".err")
        self.process = multiprocessing.get_context("fork").Process(target=_tlf_main, args=(args, self.stdout, self.stderr))
        self.process.start()
        self.pid = self.process.pid

    def poll(self) -> int | None:
        return self.process.exitcode

    def kill(self) -> None:
        self.process.kill()  # SIGKILL
        self.process.join()

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit status; None (and the process killed) when it ran past ``timeout``."""
        self.process.join(timeout)
        if self.process.exitcode is None:
            self.kill()
            return None
        return self.process.exitcode

    def first_line(self, timeout: float) -> None:
        """Wait until the process wrote its first line on stderr (or ended)."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline and self.poll() is None and "\n" not in self.err():
            time.sleep(0.005)

    def out(self) -> str:
        return self.stdout.read_text() if self.stdout.exists() else ""

    def err(self) -> str:
        return self.stderr.read_text(errors="replace") if self.stderr.exists() else ""


def _tlf_main(args: list[str], stdout: Path, stderr: Path) -> None:
    out, err = os.open(stdout, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(out, 1)
    os.dup2(err, 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    sys.argv = ["tlf", *args]
    from tlf.cli import main as tlf_main
    tlf_main()


def run_tlf(args: list[str], logs: Path, timeout: float = 900) -> tuple[int | None, str, str]:
    """(exit status or None after a hang, stdout, stderr) of ``tlf ARGS``."""
    proc = Tlf(args, logs)
    return proc.wait(timeout), proc.out(), proc.err()


def train_args(data: Path, out: Path, name: str, policy: str, augment: str, cache: str = "auto") -> list[str]:
    return ["train", "--dataset", f"folder:{data}", "--policy", policy, "--augment", augment, "--epochs", str(EPOCHS),
            "--feature-cache", cache,
            "--backbone", "efficientnet_lite0", "--image-size", "32", "--batch-size", "8", "--workers", "0",
            "--device", "cpu", "--lr", "0.01", "--seed", "1", "--out", str(out), "--name", name]


def rows(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def reference(data: Path, out: Path, policy: str, augment: str, cache: str) -> dict:
    """An uninterrupted run: its metrics and timings (to first line, to first checkpoint, total)."""
    name = f"ref-{policy.replace(':', '_')}"
    start = time.perf_counter()
    proc = Tlf(train_args(data, out, name, policy, augment, cache), out / "logs")
    proc.first_line(600)
    first_line = time.perf_counter() - start
    first_checkpoint = None
    while proc.poll() is None:
        if first_checkpoint is None and (out / name / "last.pt").exists():
            first_checkpoint = time.perf_counter() - start
        time.sleep(0.01)
    if proc.poll() != 0:
        raise SystemExit(f"reference run {name} failed: {proc.err()[-2000:]}")
    return {"rows": rows(out / name), "first_line": first_line,
            "first_checkpoint": first_checkpoint or time.perf_counter() - start, "total": time.perf_counter() - start}


def kill_trial(data: Path, out: Path, trial: int, ref: dict, policy: str, augment: str, cache: str, mode: str,
               rng: random.Random) -> dict:
    name = f"kill{trial:02d}-{policy.replace(':', '_')}"
    run_dir = out / name
    args = train_args(data, out, name, policy, augment, cache)
    proc = Tlf(args, out / "logs")
    start = time.perf_counter()
    if mode == "uniform":
        time.sleep(rng.uniform(0, ref["total"]))
    elif mode == "checkpoint":
        deadline = start + 3 * ref["total"]
        while time.perf_counter() < deadline and proc.poll() is None and not list(run_dir.glob(".*.pt.*.tmp")):
            time.sleep(0.001)
        time.sleep(rng.uniform(0, 0.03))
    else:
        proc.first_line(3 * ref["total"])  # the run's first line: set-up done, the cache build starts
        time.sleep(rng.uniform(0, max(0.05, ref["first_checkpoint"] - ref["first_line"])))
    killed_at = time.perf_counter() - start
    finished_before = proc.poll() is not None
    proc.kill()
    existed = (run_dir / "config.yaml").is_file()
    epochs_done = len(rows(run_dir)) if (run_dir / "metrics.jsonl").is_file() else 0
    command = ["train", "--resume", str(run_dir), "--json"] if existed else [*args, "--json"]
    rc, stdout, stderr = run_tlf(command, out / "logs")
    result = {"trial": trial, "policy": policy, "mode": mode, "killed_at_s": round(killed_at, 3),
              "finished_before_kill": finished_before, "dir_existed": existed, "epochs_before": epochs_done,
              "resume_rc": rc, "traceback": "Traceback" in stderr}
    if rc != 0:
        result["error"] = stderr.strip().splitlines()[-1:] or [""]
        return {**result, "complete": False, "identical": False}
    import torch
    summary = json.loads(stdout.strip().splitlines()[-1])
    best = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=True, mmap=True)["epoch"] + 1
    result["complete"] = (summary["epochs"] == EPOCHS and best == summary["best_epoch"]
                          and not list(run_dir.glob(".*.tmp")) and (run_dir / "summary.json").is_file())
    result["identical"] = rows(run_dir) == ref["rows"]
    return result


def _create(out: str, barrier, results) -> None:
    from tlf.rundir import RunDirWriter
    barrier.wait()
    try:
        run = RunDirWriter.create(out, "data", "net", "policy")
        results.put(("ok", str(run.path)))
    except BaseException as exc:  # noqa: BLE001 - counted by the parent
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def race_trials(out: Path, rounds: int) -> dict:
    context = multiprocessing.get_context("fork")
    errors, duplicates = 0, 0
    for r in range(rounds):
        folder = out / f"race{r:02d}"
        barrier, results = context.Barrier(8), context.Queue()
        procs = [context.Process(target=_create, args=(str(folder), barrier, results)) for _ in range(8)]
        for p in procs:
            p.start()
        got = [results.get(timeout=120) for _ in procs]
        for p in procs:
            p.join()
        errors += sum(kind == "error" for kind, _ in got)
        paths = [path for kind, path in got if kind == "ok"]
        duplicates += len(paths) - len(set(paths))
    return {"rounds": rounds, "processes": 8 * rounds, "exceptions": errors, "duplicate_dirs": duplicates}


def double_resume_trials(data: Path, out: Path, rounds: int) -> dict:
    """Two resumes of one run at once: exactly one trains, the other gets the one-line lock error."""
    good = 0
    for r in range(rounds):
        name = f"double{r}"
        if run_tlf(train_args(data, out, name, "transfer", "none"), out / "logs")[0] != 0:
            continue
        (out / name / "last.pt").unlink()  # as if killed in epoch 1: both resumes have work to do
        procs = [Tlf(["train", "--resume", str(out / name)], out / "logs") for _ in range(2)]
        outcomes = [(p.wait(900), p.err()) for p in procs]
        codes = sorted(rc if rc is not None else -1 for rc, _ in outcomes)
        locked = [err for rc, err in outcomes if rc == 1]
        good += codes == [0, 1] and len(locked) == 1 and "is being trained by process" in locked[0] \
            and locked[0].count("\n") == 1
    return {"rounds": rounds, "one_trained_other_refused": good}


def run_cli(args: list[str], logs: Path, timeout: float = 120) -> dict:
    rc, _, stderr = run_tlf(args, logs, timeout)
    return {"args": args, "rc": rc, "hang": rc is None, "traceback": "Traceback" in stderr,
            "last_line": (stderr.strip().splitlines() or [""])[-1][:160]}


def sweep(data: Path, out: Path, work: Path) -> dict:
    """Hostile files (hangs, tracebacks) and wrong inputs (tracebacks) over the command line."""
    import shutil

    from PIL import Image

    logs = work / "logs"
    run = out / "ref-transfer"
    model = work / "model.onnx"
    run_tlf(["export", str(run), "--output", str(model)], logs)
    hostile = work / "hostile"
    (hostile / "a").mkdir(parents=True)
    (hostile / "b").mkdir()
    for cls in "ab":
        for i in range(3):
            Image.new("RGB", (40, 40), (i * 40, 100, 200 if cls == "a" else 20)).save(hostile / cls / f"{i}.png")
    os.mkfifo(hostile / "a" / "pipe.jpg")
    Image.new("L", (100_000, 1)).save(hostile / "b" / "strip.png")
    (hostile / "b" / "loop.jpg").symlink_to(hostile / "b" / "loop.jpg")
    files = [["predict", str(model), str(hostile), "--json"], ["data", "show", f"folder:{hostile}"],
             ["data", "show", f"folder:{hostile}", "--check"],
             ["train", "--dataset", f"folder:{hostile}", "--epochs", "1", "--image-size", "32", "--batch-size", "2",
              "--workers", "0", "--device", "cpu", "--out", str(work / "runs"), "--val-split", "0.34"]]
    wrong = [["train", "--workers", "-1"], ["train", "--dropout", "2"], ["train", "--label-smoothing", "5"],
             ["train", "--weight-decay", "-1"], ["train", "--seed", "-1"], ["train", "--seed", str(2 ** 65)],
             ["train", "--out", "/proc/tlf"], ["train", "--epochs", "ten"], ["train", "--patience", "-1"],
             ["train", "--image-size", "1", "--epochs", "1"], ["evaluate", str(run), "--top-k", "0"],
             ["export", str(run), "--opset", "99", "--output", str(work / "x.onnx")],
             ["train", "--resume", str(work)], ["predict", str(work / "missing.onnx"), str(hostile)],
             ["evaluate", str(work)], ["inspect", "--backbone", "nope"], ["data", "show", "nope"]]
    small = {"--dataset": "synthetic:train=8,val=4", "--image-size": "32", "--epochs": "1", "--workers": "0",
             "--device": "cpu", "--out": str(work / "runs")}  # so that an input accepted by mistake trains briefly
    wrong = [a + [x for k, v in small.items() if k not in a for x in (k, v)] if a[:2] != ["train", "--resume"]
             and a[0] == "train" else a for a in wrong]
    small_args = [x for item in small.items() for x in item]
    wrong += [["train", "--config", str(path), *small_args] for path in _hostile_configs(work)]
    wrong += [["train", "--image-size", "100000", *small_args], ["train", "--batch-size", str(10 ** 30), *small_args]]
    brackets = work / "a[" / "b]"  # a dataset path holding "[/b]", which rich read as a closing tag
    shutil.copytree(hostile, brackets, ignore=shutil.ignore_patterns("pipe.jpg", "loop.jpg"))  # a FIFO would block the copy
    wrong += [["data", "show", f"folder:{brackets}"], ["predict", str(model), str(brackets), "--batch-size", "2"]]
    results = [run_cli(a, logs) for a in files] + [run_cli(a, logs) for a in wrong]
    return {"invocations": len(results), "hangs": sum(r["hang"] for r in results),
            "tracebacks": sum(r["traceback"] for r in results),
            "with_traceback": [" ".join(r["args"][:3]) for r in results if r["traceback"]],
            "hostile_file_runs": results[:len(files)]}


def escape_trials(data: Path, out: Path, work: Path, kills: int, rng: random.Random) -> dict:
    """Links planted in a run, an output folder and a dataset, and exports killed mid-write: counts
    files outside written through a link, images read from outside, half-written files at a final
    name and temp files left after the next export."""
    import shutil

    logs, run = work / "logs", work / "escape-run"
    shutil.copytree(out / "ref-transfer", run)
    canaries = {name: work / "outside" / name for name in
                (".lock", "model.onnx", "model.int8.onnx", "evaluation.json", "predictions.csv", "report.html")}
    for name, canary in canaries.items():
        canary.parent.mkdir(exist_ok=True)
        canary.write_text(f"canary {name}\n")
        (run / name).unlink(missing_ok=True)
        (run / name).symlink_to(canary)
    refused = run_tlf(["train", "--resume", str(run), "--epochs", str(EPOCHS + 1)], logs)
    (run / ".lock").unlink()
    commands = [refused, run_tlf(["export", str(run), "--quantize", "int8"], logs), run_tlf(["evaluate", str(run)], logs)]
    written = [name for name, canary in canaries.items() if canary.read_bytes() != f"canary {name}\n".encode()]
    result = {"planted_links": len(canaries), "written_through": written,
              "lock_link_refused_in_one_line": refused[0] == 1 and refused[2].count("\n") == 1
              and "symbolic link" in refused[2], "tracebacks": sum("Traceback" in err for _, _, err in commands)}
    return {**result, **_dataset_link_trial(data, work, logs), **_export_kill_trials(run, work, kills, rng)}


def _dataset_link_trial(data: Path, work: Path, logs: Path) -> dict:
    """A class folder with links to a folder of images outside, to the dataset root and to another class."""
    import shutil

    tree = work / "linked-data"
    shutil.copytree(data, tree)
    expected = sum(1 for _ in tree.rglob("*.png"))
    (tree / "train" / "red" / "outside").symlink_to(work / "outside-images", target_is_directory=True)
    shutil.copytree(data / "train" / "blue", work / "outside-images")
    (tree / "train" / "red" / "up").symlink_to(tree)
    (tree / "train" / "red" / "blue0.png").symlink_to(tree / "train" / "blue" / "0.png")
    rc, stdout, stderr = run_tlf(["data", "show", f"folder:{tree}", "--json"], logs)
    if rc != 0:
        return {"dataset_links": {"rc": rc, "error": stderr.strip().splitlines()[-1:]}}
    info = json.loads(stdout)
    read = info["splits"]["train"]["count"] + info["splits"]["val"]["count"]
    return {"dataset_links": {"images_expected": expected, "images_read": read,
                              "links_reported": sum("not followed" in p["reason"] for p in info["problems"])}}


def _export_kill_trials(run: Path, work: Path, kills: int, rng: random.Random) -> dict:
    """SIGKILL ``tlf export --quantize int8`` at a random moment, then export again."""
    import onnx

    logs, folder = work / "logs", work / "exports"
    start = time.perf_counter()
    run_tlf(["export", str(run), "--quantize", "int8", "--output", str(work / "timed.onnx")], logs)
    duration = time.perf_counter() - start
    half_written, left, failed = 0, 0, 0
    for _ in range(kills):
        args = ["export", str(run), "--quantize", "int8", "--output", str(folder / "model.onnx")]
        proc = Tlf(args, logs)
        time.sleep(rng.uniform(0, duration))
        proc.kill()
        for final in (folder / "model.onnx", folder / "model.int8.onnx"):
            try:
                if final.exists():
                    onnx.checker.check_model(onnx.load(str(final)))
            except Exception:  # noqa: BLE001 - a half-written file at a final name is what is counted
                half_written += 1
        failed += run_tlf(args, logs)[0] != 0
        left += len(list(folder.glob(".*.tmp")))
    return {"export_kills": {"trials": kills, "half_written_at_final_name": half_written,
                             "temp_files_left_after_next_export": left, "next_export_failed": failed}}


def limit_trials(data: Path, out: Path, work: Path) -> dict:
    """Address-space limits, a plugin with 10,000 specs, the memory target, ONNX writer names."""
    import resource
    import subprocess

    def fresh(args: list[str], kib: int | None = None, path: str = "") -> dict:
        def limit() -> None:
            if kib is not None:
                resource.setrlimit(resource.RLIMIT_AS, (kib << 10, resource.getrlimit(resource.RLIMIT_AS)[1]))
        env = {**os.environ, "PYTHONPATH": path}
        proc = subprocess.Popen([sys.executable, "-m", "tlf", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, errors="replace", env=env, preexec_fn=limit)
        try:
            stdout, stderr = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            return {"args": args[:3], "hang": True}
        said = [line for line in stderr.splitlines() if not line[:3].rstrip(":").isdigit()]
        return {"args": args[:3], "hang": False, "rc": proc.returncode, "traceback": "Traceback" in stderr,
                "crash": proc.returncode < 0, "one_line": proc.returncode == 1 and len(said) == 1,
                "last_line": (said or [""])[-1][:200], "stdout_lines": stdout.count("\n")}

    small = ["--dataset", "synthetic:train=8,val=4", "--epochs", "1", "--image-size", "32", "--workers", "0",
             "--no-report", "--out", str(work / "limit-runs")]
    limits = [fresh(["train", *small], kib) for kib in (1_500_000, 2_000_000, 2_500_000, 3_500_000)]
    site = _many_specs_plugin(work / "many-site")
    many = [fresh(args, path=str(site)) for args in (["plugins"], ["--help"], ["train", *small])]
    return {"address_space": {"trials": len(limits), "one_line": sum(r.get("one_line", False) for r in limits),
                              "tracebacks": sum(r.get("traceback", False) for r in limits),
                              "crashes": sum(r.get("crash", False) for r in limits),
                              "hangs": sum(r["hang"] for r in limits)},
            "plugin_with_20000_specs": [{k: r.get(k) for k in ("args", "rc", "hang", "traceback", "stdout_lines")}
                                        for r in many],
            "init_peak_rss_gib": _peak_rss(["train", "--dataset", f"folder:{data}", "--policy", "init", "--epochs", "1",
                                            "--no-report", "--out", str(work / "limit-runs")]) / 2**20,
            "onnx_writer_names": _planted_writer_trial(out / "ref-transfer", work)}


def _many_specs_plugin(site: Path) -> Path:
    """An installed distribution whose plugin registers 10,000 datasets and 10,000 augmentations."""
    site.mkdir(parents=True)
    (site / "tlf_many.py").write_text(
        "from tlf.hookspecs import hookimpl\nfrom tlf.specs import AugmentationSpec, DatasetSpec\n"
        "@hookimpl\ndef tlf_register_datasets(register):\n    for i in range(10_000):\n"
        "        register(DatasetSpec(name=f'many-{i}', description='one of many', factory=print))\n"
        "@hookimpl\ndef tlf_register_augmentations(register):\n    for i in range(10_000):\n"
        "        register(AugmentationSpec(name=f'many-aug-{i}', description='one of many', factory=print))\n")
    info = site / "tlf_many-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tlf-many\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[tlf]\nmany = tlf_many\n")
    return site


def _peak_rss(args: list[str]) -> int:
    """Peak resident KiB of ``tlf ARGS`` in a fresh interpreter (its own ``ru_maxrss``)."""
    import subprocess
    proc = subprocess.Popen([sys.executable, "-m", "tlf", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(proc.pid, 0)
    return usage.ru_maxrss


def _planted_writer_trial(run: Path, work: Path) -> dict:
    """``tlf export --quantize int8`` into a folder others can write in, a link to a file outside
    planted at every name torch.onnx.export, onnx.save or the quantizer writes in such a folder."""
    folder, outside = work / "shared-exports", work / "outside" / "writer-canary"
    folder.mkdir(parents=True)
    folder.chmod(0o777)
    outside.parent.mkdir(exist_ok=True)
    outside.write_text("canary\n")
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    args = ["export", str(run), "--quantize", "int8", "--output", str(folder / "model.onnx")]
    process = multiprocessing.get_context("fork").Process(
        target=_planting_main, args=(args, logs / "planted.out", logs / "planted.err", outside))
    process.start()
    process.join(600)
    return {"rc": process.exitcode, "outside_written": outside.read_bytes() != b"canary\n",
            "links_at_final_names": sum(p.is_symlink() for p in folder.iterdir())}


def _planting_main(args: list[str], stdout: Path, stderr: Path, outside: Path) -> None:
    import onnx
    import torch

    from tlf.export import quantize

    def planting(real, position: int):
        def write(*a, **kw):
            target = Path(a[position])
            if os.stat(target.parent).st_mode & 0o022:  # a folder others can write in
                target.unlink(missing_ok=True)
                target.symlink_to(outside)
            return real(*a, **kw)
        return write

    torch.onnx.export = planting(torch.onnx.export, 2)
    onnx.save = planting(onnx.save, 1)
    quantize.quantize_static = planting(quantize.quantize_static, 1)
    quantize.quant_pre_process = planting(quantize.quant_pre_process, 1)
    _tlf_main(args, stdout, stderr)


def _hostile_configs(work: Path) -> list[Path]:
    """Config files that asked for too much or were not UTF-8: billion laughs, 2 MB, latin-1, UTF-16."""
    folder = work / "configs"
    folder.mkdir(exist_ok=True)
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi")) + "dataset: *i\n"
    contents = {"laughs.yaml": laughs.encode(), "huge.yaml": b"# " + b"x" * (2 << 20) + b"\n",
                "latin1.yaml": "model: \u00fc\n".encode("latin-1"), "utf16.yaml": "epochs: 2\n".encode("utf-16")}
    for name, content in contents.items():
        (folder / name).write_bytes(content)
    return [folder / name for name in contents]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--races", type=int, default=20)
    parser.add_argument("--double-resumes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--export-kills", type=int, default=3, help="exports SIGKILLed mid-write (escape trials)")
    parser.add_argument("--skip-escapes", action="store_true", help="no planted-link and export-kill trials")
    parser.add_argument("--skip-limits", action="store_true",
                        help="no address-space, plugin-count, memory-target and writer-name trials")
    parser.add_argument("--json", action="store_true", help="print every trial as JSON")
    opts = parser.parse_args()
    rng = random.Random(opts.seed)
    import timm  # noqa: F401 - what every tlf process imports, once here: each one is forked from this one
    import tlf.augment  # noqa: F401
    import tlf.cli  # noqa: F401
    import tlf.engine.api  # noqa: F401
    import tlf.runtime  # noqa: F401
    with tempfile.TemporaryDirectory(prefix="tlf-reliability-") as tmp:
        work = Path(tmp)
        os.environ["TLF_HOME"] = str(work / "home")
        data = make_data(work / "data")
        out = work / "runs"
        needed = POLICIES if opts.kills else POLICIES[:1] if not (opts.skip_sweep and opts.skip_escapes
                                                                   and opts.skip_limits) else ()
        # (the sweep, the escape and the limit trials use ref-transfer)
        refs = {policy: reference(data, out, policy, augment, cache) for policy, augment, cache in needed}
        kills = []
        for trial in range(opts.kills):
            policy, augment, cache = POLICIES[trial % len(POLICIES)]
            mode = MODES[trial % len(MODES)]
            kills.append(kill_trial(data, out, trial, refs[policy], policy, augment, cache, mode, rng))
            print(json.dumps(kills[-1]), file=sys.stderr, flush=True)  # partial counts survive an interrupted run
        report = {
            "kills": {"trials": len(kills), "complete": sum(k["complete"] for k in kills),
                      "identical_metrics": sum(k["identical"] for k in kills),
                      "resume_tracebacks": sum(k["traceback"] for k in kills),
                      "killed_before_dir": sum(not k["dir_existed"] for k in kills),
                      "finished_before_kill": sum(k["finished_before_kill"] for k in kills),
                      "by_mode": {m: sum(k["mode"] == m for k in kills) for m in MODES}},
            "create_races": race_trials(work / "races", opts.races),
            "double_resumes": double_resume_trials(data, out, opts.double_resumes),
        }
        if not opts.skip_escapes:
            report["escapes"] = escape_trials(data, out, work, opts.export_kills, rng)
        if not opts.skip_sweep:
            report["sweep"] = sweep(data, out, work)
        if not opts.skip_limits:
            report["limits"] = limit_trials(data, out, work)
        if opts.json:
            report["kill_trials"] = kills
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
