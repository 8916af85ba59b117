"""Planning a run checks everything that needs no data first, and reports every problem at once."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import tlf
from tlf.cli import cli
from tlf.errors import TlfError

from _data_helpers import make_class_tree


def refuse_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails the test when a folder dataset is read or an archive fetched (the checks come first)."""
    import tlf.data.download
    import tlf.data.folder

    def refuse(*args, **kwargs):
        raise AssertionError("data was read before the plan was checked")
    monkeypatch.setattr(tlf.data.folder, "load_folder", refuse)
    monkeypatch.setattr(tlf.data.download, "_fetch", refuse)


def train_cli(*args: str):
    return CliRunner().invoke(cli, ["train", *args])


def test_an_unknown_stage_fails_before_any_image_is_read(tmp_path, monkeypatch):
    data = make_class_tree(tmp_path / "photos", {"a": 2, "b": 2})
    refuse_data(monkeypatch)
    result = train_cli("--dataset", f"folder:{data}", "--policy", "partial:layer9", "--out", str(tmp_path / "runs"))
    assert result.exit_code == 1
    assert "backbone 'efficientnet_lite0' has no stage 'layer9'" in result.output and "conv5 (" in result.output
    assert not (tmp_path / "runs").exists()


def test_a_native_stage_name_passes_the_check():
    from tlf.plan import plan_run
    plan = plan_run(settings={"backbone": "resnet18", "policy": "partial:layer3"})
    assert plan.policy == "partial:layer3"


def test_the_stage_error_is_not_hidden_by_a_download(monkeypatch, tmp_path):
    refuse_data(monkeypatch)
    result = train_cli("--dataset", "flowers", "--policy", "partial:layer9", "--out", str(tmp_path))
    assert result.exit_code == 1 and "has no stage 'layer9'" in result.output


def test_every_problem_is_reported_at_once(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(TlfError) as caught:
        tlf.train(dataset="flowerz", policy="partial:layer9", augment="basic+bogus", loggers="tensorbored",
                  epochs=0, out=str(tmp_path / "file" / "runs"))
    message = str(caught.value)
    assert message.startswith("6 problems, nothing was run: (1) epochs must be at least 1")
    for part in ("unknown dataset 'flowerz'", "has no stage 'layer9'", "unknown augmentation 'bogus'",
                 "unknown logger 'tensorbored'", "is under the file"):
        assert part in message, part
    assert "\n" not in message


def test_a_setting_that_fails_its_own_check_is_reported_once(tmp_path):
    """An invalid --pooling is one problem: the model is assembled only from settings that passed."""
    with pytest.raises(TlfError) as caught:
        tlf.train(pooling="bogus", image_size=32, out=str(tmp_path))
    assert str(caught.value).startswith("invalid pooling 'bogus'")


def test_a_folder_path_as_dataset_is_read_as_folder(tmp_path):
    from tlf.plan import plan_run
    data = make_class_tree(tmp_path / "my photos", {"a": 2, "b": 2})
    result = train_cli("--dataset", str(data), "--policy", "partial:layer9")
    assert f"--dataset {data} is a folder: reading it as --dataset folder:{data}" in result.output
    assert plan_run(settings={"dataset": str(data)}).dataset == f"folder:{data}"


def test_a_path_that_is_no_folder_suggests_folder(tmp_path):
    result = train_cli("--dataset", str(tmp_path / "missing"))
    assert result.exit_code == 1
    assert "no such dataset, and no such folder" in result.output and "--dataset folder:PATH" in result.output


def test_a_plain_unknown_name_still_gets_suggestions():
    result = train_cli("--dataset", "flowrs")
    assert "unknown dataset 'flowrs'; did you mean 'flowers'" in result.output


def test_resuming_is_checked_the_same_way(tmp_path):
    with pytest.raises(TlfError, match="cannot change policy when resuming"):
        tlf.train(resume=Path(tmp_path), policy="partial:layer9")
