"""``tlf compare --storage``: two worker processes split one grid, and no cell runs twice."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

FLAGS = ["--dataset", "synthetic:train=12,val=6,size=32,classes=2", "--backbone", "efficientnet_lite0",
         "--policies", "transfer,partial:conv5", "--seeds", "2", "--epochs", "1", "--image-size", "32",
         "--batch-size", "8", "--workers", "0", "--augment", "none", "--device", "cpu", "--cache", "off", "--quiet"]
CELLS = {"efficientnet_lite0-transfer-s0", "efficientnet_lite0-partial_conv5-s0",
         "efficientnet_lite0-transfer-s1", "efficientnet_lite0-partial_conv5-s1"}


def _worker(out: Path, storage: str) -> subprocess.Popen:
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "tlf", "compare", *FLAGS, "--out", str(out), "--storage", storage,
                             "--study", "grid", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


def test_two_workers_split_the_grid_with_no_cell_run_twice(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'grid.db'}"
    out = tmp_path / "cmp"
    workers = [_worker(out, storage) for _ in range(2)]
    trained = []
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=600)
        assert worker.returncode == 0, stderr
        trained.append(re.findall(r"\] efficientnet_lite0 · (\S+) · seed (\d): training", stderr))
    names = [f"efficientnet_lite0-{policy.replace(':', '_')}-s{seed}" for cells in trained for policy, seed in cells]
    assert sorted(names) == sorted(CELLS), "every cell trained exactly once, by one of the workers"
    assert all(trained), "both workers took cells"
    study = optuna.load_study(study_name="grid", storage=storage)
    assert len(study.trials) == 4 and all(t.state.name == "COMPLETE" for t in study.trials)
    assert {t.user_attrs["tlf_cell"] for t in study.trials} == CELLS
    for cell in CELLS:
        summary = json.loads((out / "runs" / cell / "summary.json").read_text())
        trial = next(t for t in study.trials if t.user_attrs["tlf_cell"] == cell)
        assert trial.value == summary["best_val_accuracy"]
    assert (out / "comparison.json").is_file()


def test_a_worker_with_another_grid_is_refused(tmp_path: Path) -> None:
    import tlf
    from tlf.errors import TlfError
    from tlf.experiments.cells import plan_runs
    from tlf.experiments.scaleout import _study

    storage = f"sqlite:///{tmp_path / 'grid.db'}"
    _study(storage, "g", plan_runs("synthetic", ["efficientnet_lite0"], ["transfer"], [0]))
    with pytest.raises(TlfError, match="study 'g' holds another comparison's grid"):
        tlf.compare("synthetic", "efficientnet_lite0", "transfer,partial:conv5", out=tmp_path / "o", storage=storage,
                    study="g", epochs=1)
