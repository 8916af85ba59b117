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


def tlf_train(flags: list[str], out: Path, name: str) -> tuple[Path, float]:
    """``tlf train FLAGS --out OUT --name NAME --quiet --no-report`` with its own TLF_HOME
    (no caches of earlier runs); (the run directory, the process's wall seconds). A failed
    run ends the benchmark with its command and the end of its error output."""
    command = [sys.executable, "-m", "tlf", "train", *flags, "--out", str(out), "--name", name, "--quiet",
               "--no-report"]
    env = {**os.environ, "TLF_HOME": str(out / f"{name}-tlf_home"), "NO_ALBUMENTATIONS_UPDATE": "1"}
    print("$ tlf " + " ".join(command[3:]), file=sys.stderr, flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"tlf {' '.join(command[3:])} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return out / name, time.perf_counter() - start


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
