"""What the benchmarks that run the ``tlf`` command share: one ``tlf train`` in a fresh process
and TLF_HOME, a run directory's files, the CPU's name."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def tlf(args: list[str], home: Path) -> str:
    """``tlf ARGS`` in a fresh process with TLF_HOME ``home``; its stdout. A failed command
    ends the benchmark with the command and the end of its error output."""
    command = [sys.executable, "-m", "tlf", *args]
    env = {**os.environ, "TLF_HOME": str(home), "NO_ALBUMENTATIONS_UPDATE": "1"}
    print("$ tlf " + " ".join(args), file=sys.stderr, flush=True)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"tlf {' '.join(args)} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout


def tlf_train(flags: list[str], out: Path, name: str) -> tuple[Path, float]:
    """``tlf train FLAGS --out OUT --name NAME --quiet --no-report`` with its own TLF_HOME
    (:func:`run_home`: no caches of earlier runs); (the run directory, the wall seconds)."""
    start = time.perf_counter()
    tlf(["train", *flags, "--out", str(out), "--name", name, "--quiet", "--no-report"], run_home(out / name))
    return out / name, time.perf_counter() - start


def run_home(run_dir: Path) -> Path:
    """The TLF_HOME of the run in ``run_dir`` (beside it), for the commands that follow it."""
    return run_dir.parent / f"{run_dir.name}-tlf_home"


def tlf_evaluate(run_dir: Path) -> dict[str, Any]:
    """``tlf evaluate RUN_DIR --json --no-report`` (the best checkpoint on the validation split)."""
    return json.loads(tlf(["evaluate", str(run_dir), "--json", "--no-report"], run_home(run_dir)))


def run_files(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(summary.json, the rows of metrics.jsonl) of a run directory."""
    summary = json.loads((run_dir / "summary.json").read_text())
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return summary, history


def cpu_name() -> str:
    """``lscpu``'s model name (or the platform's processor string)."""
    try:
        listing = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        listing = ""
    return next((line.split(":", 1)[1].strip() for line in listing.splitlines() if line.startswith("Model name")),
                platform.processor() or "unknown CPU")
