"""Loggers (``--log``): TensorBoard and MLflow read back with their own readers, resumed runs,
loggers that fail, and the plugin kind itself."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pytest
from plugin_helpers import example_site

import tlf
from tlf.errors import TlfError
from tlf.hookspecs import hookimpl
from tlf.pluginmanager import get_plugin_manager
from tlf.specs import LoggerSpec
from tlf.tracking import STEP_EVERY, Logger

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")

# 40 training images in batches of 4: 10 steps per epoch, one step-level log per epoch
FAST = dict(dataset="synthetic:train=20,val=10,size=32,classes=2", backbone="efficientnet_lite0", policy="transfer",
            image_size=32, batch_size=4, workers=0, augment="none", device="cpu", warmup_epochs=0.0, lr=1e-2,
            cache="off")
STEPS_PER_EPOCH = 10


def logged_steps(epochs: int) -> list[int]:
    return [s for s in range(1, epochs * STEPS_PER_EPOCH + 1) if s % STEP_EVERY == 0]


def metrics_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def tensorboard_scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


def mlflow_history(run_dir: Path, key: str) -> list[tuple[int, float]]:
    from mlflow import MlflowClient
    record = json.loads((run_dir / "mlflow.json").read_text())
    client = MlflowClient(record["tracking_uri"])
    return sorted((m.step, m.value) for m in client.get_metric_history(record["run_id"], key))


@pytest.fixture
def extra_logger() -> Iterator[Any]:
    """Register a logger plugin for one test: ``extra_logger(name, factory)``."""
    pm = get_plugin_manager()
    names = []

    def add(name: str, factory: Any) -> None:
        spec = LoggerSpec(name=name, description=f"the {name} test logger", factory=factory)
        pm.register_object(SimpleNamespace(tlf_register_loggers=hookimpl(lambda register: register(spec))),
                           f"test-{name}")
        names.append(f"test-{name}")

    yield add
    for name in names:
        pm.unregister(name=name)


def test_tensorboard_and_mlflow_read_back_equal_metrics_jsonl_with_each_epochs_confusion_matrix(tmp_path: Path) -> None:
    run = tlf.train(epochs=2, out=str(tmp_path), quiet=True, loggers="tensorboard,mlflow", **FAST)
    rows = metrics_rows(run.directory)
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "images_per_second"):
        expected = [(STEPS_PER_EPOCH * r["epoch"], pytest.approx(r[key], rel=1e-6)) for r in rows]
        assert tensorboard_scalars(run.directory, f"epoch/{key}") == expected
        assert mlflow_history(run.directory, key) == [(r["epoch"], pytest.approx(r[key], rel=1e-12)) for r in rows]
    assert [step for step, _ in tensorboard_scalars(run.directory, "train/loss")] == logged_steps(2)
    lr_tags = [t for t in _tags(run.directory) if t.startswith("lr/")]
    assert lr_tags, "the learning rate of each parameter group is logged"

    from mlflow import MlflowClient
    record = json.loads((run.directory / "mlflow.json").read_text())
    assert record["tracking_uri"] == f"sqlite:///{(tmp_path / 'mlflow.db').resolve()}"
    client = MlflowClient(record["tracking_uri"])
    mlrun = client.get_run(record["run_id"])
    assert mlrun.info.status == "FINISHED"
    assert mlrun.data.params["lr"] == "0.01" and mlrun.data.params["policy"] == "transfer"
    assert mlrun.data.tags["backbone"] == "efficientnet_lite0"
    artifacts = {a.path for a in client.list_artifacts(record["run_id"])}
    assert {"config.yaml", "metrics.jsonl", "summary.json", "curves.png"} <= artifacts
    assert (tmp_path / "mlartifacts").is_dir()

    # the validation confusion matrix of every epoch: TensorBoard images, MLflow artifacts
    images = tensorboard_images(run.directory)
    assert [step for step, _ in images["val/confusion"]] == [STEPS_PER_EPOCH * r["epoch"] for r in rows]
    assert [step for step, _ in images["curves"]] == [2]
    assert all(nonblank(png) for series in images.values() for _, png in series)
    names = [a.path for a in client.list_artifacts(record["run_id"], "confusion")]
    assert names == [f"confusion/epoch-00{e}.{kind}" for e in (1, 2) for kind in ("json", "png")]
    for row in rows:
        saved = json.loads(Path(client.download_artifacts(record["run_id"], f"confusion/epoch-00{row['epoch']}.json",
                                                          str(tmp_path / f"download-{row['epoch']}"))).read_text())
        matrix = saved["matrix"]
        assert saved["classes"] == run.classes and [sum(r) for r in matrix] == [10, 10]  # 10 val images per class
        assert sum(matrix[i][i] for i in range(2)) / 20 == pytest.approx(row["val_acc"])


def tensorboard_images(run_dir: Path) -> dict[str, list[tuple[int, bytes]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0})
    events.Reload()
    return {tag: [(e.step, e.encoded_image_string) for e in events.Images(tag)] for tag in events.Tags()["images"]}


def nonblank(png: bytes) -> bool:
    import io

    import numpy as np
    from PIL import Image
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float32)
    return pixels.std() > 10


def _tags(run_dir: Path) -> list[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return events.Tags()["scalars"]


class Interrupt(Logger):
    """Stops the process (as Ctrl-C would) at one optimizer step of the first run."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def log_step(self, step: int, metrics: dict) -> None:
        if step == self.at_step:
            raise KeyboardInterrupt


def test_a_resumed_run_logs_each_epoch_and_step_exactly_once(tmp_path: Path, extra_logger: Any) -> None:
    extra_logger("interrupt", lambda argument, request: Interrupt(3 * STEPS_PER_EPOCH))
    with pytest.raises(KeyboardInterrupt):  # in epoch 3, after TensorBoard logged step 30
        tlf.train(epochs=3, out=str(tmp_path), name="run", quiet=True, loggers="tensorboard,mlflow,interrupt", **FAST)
    run_dir = tmp_path / "run"
    assert [r["epoch"] for r in metrics_rows(run_dir)] == [1, 2]
    assert [s for s, _ in tensorboard_scalars(run_dir, "train/loss")] == logged_steps(3)

    run = tlf.train(resume=run_dir, quiet=True, loggers="tensorboard,mlflow")
    rows = metrics_rows(run.directory)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert [s for s, _ in tensorboard_scalars(run_dir, "train/loss")] == logged_steps(3)
    assert tensorboard_scalars(run_dir, "epoch/val_acc") == [(STEPS_PER_EPOCH * r["epoch"], pytest.approx(r["val_acc"]))
                                                             for r in rows]
    assert mlflow_history(run_dir, "val_acc") == [(r["epoch"], pytest.approx(r["val_acc"])) for r in rows]


class Broken(Logger):
    calls = 0

    def log_epoch(self, step: int, row: dict) -> None:
        Broken.calls += 1
        raise ConnectionError("tracking server down")


def test_a_failing_logger_warns_once_by_name_and_the_run_goes_on(tmp_path: Path, extra_logger: Any,
                                                                  warnings_shown) -> None:
    extra_logger("broken", lambda argument, request: Broken())
    Broken.calls = 0
    run = tlf.train(epochs=2, out=str(tmp_path), quiet=True, loggers="broken", **FAST)
    assert warnings_shown() == ["logger 'broken' failed in log_epoch: ConnectionError: tracking server down; "
                        "the run goes on without it"]
    assert Broken.calls == 1 and run.summary["epochs"] == 2


def test_a_logger_that_cannot_start_warns_and_the_run_goes_on(tmp_path: Path, extra_logger: Any,
                                                               warnings_shown) -> None:
    def refuse(argument: Any, request: Any) -> Logger:
        raise OSError("no space left on device")

    extra_logger("full", refuse)
    run = tlf.train(epochs=1, out=str(tmp_path), quiet=True, loggers="full", **FAST)
    assert warnings_shown() == ["logger 'full' could not start: OSError: no space left on device; "
                                "the run goes on without it"]
    assert run.summary["epochs"] == 1


def test_unknown_logger_is_an_error_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(TlfError, match="unknown logger 'tensorbord'; did you mean 'tensorboard'"):
        tlf.train(epochs=1, out=str(tmp_path), quiet=True, loggers="tensorbord", **FAST)
    assert not any(tmp_path.iterdir())


def test_logger_whose_package_is_missing_names_the_extra(tmp_path: Path, extra_logger: Any) -> None:
    pm = get_plugin_manager()
    spec = LoggerSpec(name="needy", description="needs a package", factory=print,
                      modules=("no_such_module_tlf",), install="'tlf[needy]'")
    pm.register_object(SimpleNamespace(tlf_register_loggers=hookimpl(lambda register: register(spec))), "test-needy")
    try:
        with pytest.raises(TlfError, match=r"logger 'needy' needs the Python package\(s\) no_such_module_tlf") as info:
            tlf.train(epochs=1, out=str(tmp_path), quiet=True, loggers="needy", **FAST)
        assert info.value.hint == "pip install 'tlf[needy]'"
    finally:
        pm.unregister(name="test-needy")


def test_no_logger_means_no_tracker_files(tmp_path: Path, warnings_shown) -> None:
    run = tlf.train(epochs=1, out=str(tmp_path), quiet=True, **FAST)
    assert warnings_shown() == []
    assert not list(run.directory.glob("events.out.tfevents.*")) and not (run.directory / "mlflow.json").exists()
    assert not (tmp_path / "mlflow.db").exists()



def test_the_example_packages_jsonl_logger_loads_from_outside(tmp_path: Path) -> None:
    args = ["train", "--out", str(tmp_path), "--name", "run", "--epochs", "2", "--log", "jsonl", "--quiet"]
    for key, value in FAST.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    env = {k: v for k, v in os.environ.items() if k != "TLF_LOAD_PLUGINS"}
    env.update(PYTHONPATH=str(example_site()), NO_ALBUMENTATIONS_UPDATE="1", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "tlf", *args], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["start", "step", "epoch", "step", "epoch", "end"]
    epochs = [{k: v for k, v in e.items() if k not in ("event", "step")} for e in events if e["event"] == "epoch"]
    assert epochs == metrics_rows(tmp_path / "run")
    assert events[-1]["status"] == "finished" and events[-1]["summary"]["epochs"] == 2


def test_under_torchrun_rank_0_alone_logs_and_the_confusion_matrix_covers_every_rank(tmp_path: Path) -> None:
    """Two gloo processes on the CPU: one TensorBoard event file, one MLflow run, each epoch
    logged once, and the confusion matrix summed over both ranks' halves of the val set.
    (``--loggers``: torchrun's own parser would take ``--log`` for its ``--log-dir``.)"""
    args = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "tlf", "train",
            "--out", str(tmp_path), "--name", "ddp", "--epochs", "2", "--loggers", "tensorboard,mlflow", "--quiet",
            "--no-report"]
    for key, value in FAST.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "ddp"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp", "mlartifacts", "mlflow.db"]
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
    rows = metrics_rows(run_dir)
    assert tensorboard_scalars(run_dir, "epoch/val_acc") == [(STEPS_PER_EPOCH // 2 * r["epoch"], pytest.approx(r["val_acc"]))
                                                             for r in rows]  # each rank takes half the steps

    from mlflow import MlflowClient
    record = json.loads((run_dir / "mlflow.json").read_text())
    client = MlflowClient(record["tracking_uri"])
    experiments = [e.experiment_id for e in client.search_experiments()]
    assert [r.info.run_id for r in client.search_runs(experiments)] == [record["run_id"]]
    assert mlflow_history(run_dir, "val_acc") == [(r["epoch"], pytest.approx(r["val_acc"])) for r in rows]
    saved = json.loads(Path(client.download_artifacts(record["run_id"], "confusion/epoch-002.json",
                                                      str(tmp_path / "download"))).read_text())
    assert sum(map(sum, saved["matrix"])) == 20  # both ranks' halves of the 20 val images


def test_loggers_are_told_the_lr_that_lr_auto_chose(tmp_path: Path, extra_logger: Any) -> None:
    told: list[dict] = []

    def record(argument: Any, request: Any) -> Logger:
        told.append(request.config)
        return Logger()

    extra_logger("told", record)
    run = tlf.train(epochs=1, out=str(tmp_path), quiet=True, loggers="told", **{**FAST, "lr": "auto"})
    assert [c["lr"] for c in told] == [run.summary["lr"]] and isinstance(run.summary["lr"], float)


@pytest.fixture
def wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """W&B without an account or a network: offline mode, its own folders under tmp_path."""
    pytest.importorskip("wandb")
    for name, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_X_DISABLE_STATS": "true",
                        "WANDB_CONFIG_DIR": tmp_path / "wandb-config", "WANDB_CACHE_DIR": tmp_path / "wandb-cache",
                        "WANDB_DATA_DIR": tmp_path / "wandb-data"}.items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.delenv("WANDB_PROJECT", raising=False)


def wandb_records(run_dir: Path) -> list[dict]:
    """Every record of the run's offline W&B logs, oldest first, read by W&B's own reader."""
    records = []
    for offline in sorted((run_dir / "wandb").glob("offline-run-*")):
        done = subprocess.run([str(Path(sys.executable).parent / "wandb"), "leet", "inspect", "--json", str(offline)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        records += [json.loads(line) for line in done.stdout.splitlines()]
    return records


def wandb_history(run_dir: Path, key: str, axis: str) -> list[tuple[int, Any]]:
    rows = [r["history"]["item"] for r in wandb_records(run_dir) if r["type"] == "history"]
    return [(row[axis], row[key]) for row in rows if key in row]


def test_wandb_offline_reads_back_equal_metrics_jsonl_with_each_epochs_confusion_matrix(tmp_path: Path,
                                                                                       wandb_offline: None) -> None:
    run = tlf.train(epochs=2, out=str(tmp_path), quiet=True, loggers="wandb", **FAST)
    rows = metrics_rows(run.directory)
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "images_per_second"):
        assert wandb_history(run.directory, f"epoch/{key}", "epoch") == [(r["epoch"], pytest.approx(r[key], rel=1e-12))
                                                                         for r in rows]
    assert [step for step, _ in wandb_history(run.directory, "train/loss", "step")] == logged_steps(2)
    confusion = wandb_history(run.directory, "val/confusion.path", "epoch")  # W&B flattens an image's record
    assert [epoch for epoch, _ in confusion] == [1, 2]
    files = next((run.directory / "wandb").glob("offline-run-*")) / "files"
    assert all(nonblank((files / path).read_bytes()) for _, path in confusion)

    records = wandb_records(run.directory)
    started = next(r["run"] for r in records if r["type"] == "run")
    config = json.loads(json.dumps(started["config"]["update"]))
    assert started["project"] == "synthetic" and started["display_name"] == run.directory.name
    assert config["lr"] == 0.01 and config["policy"] == "transfer"
    assert json.loads((run.directory / "wandb.json").read_text())["run_id"] == started["run_id"]
    summary = {k: v for r in records if r["type"] == "summary" for k, v in r["summary"].get("update", {}).items()}
    assert summary["best_val_accuracy"] == pytest.approx(run.summary["best_val_accuracy"])
    saved = {f["path"] for r in records if r["type"] == "files" for f in r["files"]["files"]}
    assert {"config.yaml", "metrics.jsonl", "summary.json", "curves.png"} <= saved
    assert next(r["exit"]["exit_code"] for r in records if r["type"] == "exit") in (0, None)


def test_a_resumed_run_sends_each_epoch_and_step_to_wandb_exactly_once(tmp_path: Path, extra_logger: Any,
                                                                       wandb_offline: None) -> None:
    extra_logger("interrupt", lambda argument, request: Interrupt(3 * STEPS_PER_EPOCH))
    with pytest.raises(KeyboardInterrupt):  # in epoch 3, after W&B was sent step 30
        tlf.train(epochs=3, out=str(tmp_path), name="run", quiet=True, loggers="wandb:tlf-test,interrupt", **FAST)
    run_dir = tmp_path / "run"
    assert [step for step, _ in wandb_history(run_dir, "train/loss", "step")] == logged_steps(3)

    run = tlf.train(resume=run_dir, quiet=True, loggers="wandb")
    rows = metrics_rows(run.directory)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert [step for step, _ in wandb_history(run_dir, "train/loss", "step")] == logged_steps(3)
    assert wandb_history(run_dir, "epoch/val_acc", "epoch") == [(r["epoch"], pytest.approx(r["val_acc"])) for r in rows]
    runs = [r["run"] for r in wandb_records(run_dir) if r["type"] == "run"]
    assert len(runs) == 2 and {(r["run_id"], r["project"]) for r in runs} == {(runs[0]["run_id"], "tlf-test")}
