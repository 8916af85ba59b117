"""Callback plugins: the example package's callback loaded from outside, the built-ins listed,
bad names and arguments refused before any work, a raising callback named with its package
and its run resumable; the loop's events in order and its cancel exceptions."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from plugin_helpers import example_site, registered_specs, run_tlf

import tlf
from tlf.arguments import number
from tlf.cli import cli
from tlf.engine.callback import EVENTS, Callback, CancelEpoch
from tlf.errors import TlfError
from tlf.plan import RunPlan
from tlf.rundir import load_checkpoint
from tlf.specs import CallbackSpec


DATA = "synthetic:train=12,val=4,size=32,classes=3"
TINY = dict(dataset=DATA, image_size=32, batch_size=8, workers=0, device="cpu", augment="none", warmup_epochs=0.0)
FLAGS = ["--dataset", DATA, "--image-size", "32", "--batch-size", "8", "--workers", "0", "--device", "cpu",
         "--augment", "none", "--warmup-epochs", "0"]
BUILTINS = {"checkpoint", "early-stopping", "ema", "lr-finder", "schedule", "progress", "hooks", "loggers",
            "test-split"}


def test_example_callback_ends_the_run_when_the_target_is_reached(tmp_path):
    result = run_tlf("train", *FLAGS, "--epochs", "4", "--callback", "target-accuracy:0.01", "--out", str(tmp_path),
                     "--no-report", "--json", paths=[example_site()])
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["planned_epochs"] == 4 and summary["epochs"] == 1, summary  # without it: 4 epochs
    assert summary["target_accuracy"] == {"target": 0.01, "reached_at_epoch": 1}
    assert "target reached: val accuracy" in result.stderr
    run = Path(summary["run_dir"])
    assert load_checkpoint(run)["epoch"] == 0 and len((run / "metrics.jsonl").read_text().splitlines()) == 1
    assert "- target-accuracy:0.01" in (run / "config.yaml").read_text()


def test_plugins_lists_the_callback_kind():
    result = run_tlf("plugins", "--json", "--kind", "callbacks", paths=[example_site()])
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)["plugins"]}
    assert set(rows) == BUILTINS | {"target-accuracy"}
    assert {rows[name]["package"] for name in BUILTINS} == {"tlf"} and all(rows[n]["details"]["always"] for n in BUILTINS)
    assert rows["target-accuracy"]["package"] == "tlf-plugin-example" and rows["target-accuracy"]["usage"] == \
        "target-accuracy:ACC"


@pytest.fixture
def registered():
    """``registered(name, callback_class, **spec_fields)``: a callback plugin of package tlf-broken, for one test."""
    with registered_specs("tlf-broken") as register:
        yield lambda name, factory, **fields: register(
            CallbackSpec(name=name, description=f"the {name} callback", factory=factory, **fields))


def train_cli(tmp_path, *args: str):
    return CliRunner().invoke(cli, ["train", *FLAGS, "--epochs", "2", "--out", str(tmp_path / "runs"), *args])


def test_unknown_callback_gets_did_you_mean_before_any_work(tmp_path):
    result = train_cli(tmp_path, "--callback", "early-stoping")
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "unknown callback 'early-stoping'; did you mean 'early-stopping'?" in result.output
    assert not (tmp_path / "runs").exists()


def test_bad_callback_argument_is_one_line_before_any_work(tmp_path, registered):
    registered("halt", lambda value, request: None, argument="X", parse=number)
    result = train_cli(tmp_path, "--callback", "halt:abc")
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "callback 'halt': bad argument 'abc'" in result.output
    assert not (tmp_path / "runs").exists()


class Boom(Callback):
    def __init__(self) -> None:
        self.armed = True

    def after_epoch(self, loop) -> None:
        if loop.epoch == 1 and self.armed:
            raise RuntimeError("boom")


def test_a_raising_callback_stops_the_run_named_with_its_package_and_the_run_resumes(tmp_path, registered):
    boom = Boom()
    registered("boom", lambda value, request: boom)
    with pytest.raises(TlfError, match="callback 'boom' from package tlf-broken failed in after_epoch: "
                                       "RuntimeError: boom") as error:
        tlf.train(epochs=3, callbacks=("boom",), out=str(tmp_path), quiet=True, **TINY)
    assert "--resume" in error.value.hint
    (run,) = tmp_path.iterdir()
    assert load_checkpoint(run)["epoch"] == 0  # the failed epoch is trained again on resume
    boom.armed = False
    resumed = tlf.train(resume=run, quiet=True)
    assert resumed.summary["epochs"] == 3 and resumed.summary["callbacks"] == ["boom"]


class Recorder(Callback):
    """Records the events it hears; cancels the first epoch after its first batch."""

    name = "recorder"

    def __init__(self) -> None:
        self.events: list[str] = []
        for event in EVENTS:
            if event not in ("after_create", "after_failure"):
                setattr(self, event, self._hear(event))

    def _hear(self, event: str):
        def hear(loop) -> None:
            self.events.append(event)
            if event == "after_batch" and loop.epoch == 0:
                raise CancelEpoch
        return hear

    def state_dict(self) -> dict:
        return {"heard": len(self.events)}


def test_events_come_in_loop_order_and_cancel_epoch_skips_the_rest_of_its_batches(tmp_path, registered):
    recorder = Recorder()
    registered("recorder", lambda value, request: recorder)
    run = tlf.train(epochs=2, callbacks=("recorder",), out=str(tmp_path), quiet=True, **TINY)
    step = ["before_batch", "after_loss", "after_backward", "before_step", "after_step", "after_batch"]
    epoch_end = ["before_validate", "after_validate", "after_epoch"]
    assert recorder.events == ["before_fit", "before_epoch", *step, *epoch_end,  # 1 batch of 4, then cancelled
                               "before_epoch", *step * 4, *epoch_end, "after_fit"]
    assert isinstance(run.config, RunPlan)  # the loop ran on the resolved plan
    heard = len(recorder.events) - 1  # all but after_fit: its state at epoch 2's end
    assert load_checkpoint(run.directory)["recorder"] == {"heard": heard}
