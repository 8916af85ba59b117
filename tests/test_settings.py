"""Every setting is checked once, in the plan: wrong types and out-of-range values are one-line
errors from the CLI, config files and the Python API alike, before anything is created."""
from __future__ import annotations

import typing
from dataclasses import fields
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

import tlf
from tlf.cli import cli
from tlf.config import RunConfig, load_config
from tlf.errors import TlfError

NUMERIC = (click.types.IntParamType, click.types.FloatParamType)


def numeric_options() -> list[tuple[tuple[str, ...], str]]:
    """(command path, option) for every int/float option of every command."""
    ctx = click.Context(cli)
    found = []

    def walk(command: click.Command, path: tuple[str, ...]) -> None:
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                walk(command.get_command(ctx, name), (*path, name))
            return
        for param in command.params:
            if isinstance(param, click.Option) and not param.is_flag and isinstance(param.type, NUMERIC):
                found.append((path, max(param.opts, key=len)))

    walk(cli, ())
    return found


def arguments(path: tuple[str, ...], tmp_path: Path) -> list[str]:
    """Arguments that get a command past click to its own checks."""
    folder = tmp_path / "arg"
    folder.mkdir(exist_ok=True)
    image = folder / "x.png"
    image.write_bytes(b"not really")
    return {("evaluate",): [str(folder)], ("export",): [str(folder)], ("predict",): [str(image), str(image)],
            ("data", "download"): ["synthetic"], ("data", "show"): ["synthetic"],
            ("inspect",): ["--backbone", "resnet18"], ("tune",): ["--space", str(space_file(tmp_path))]}.get(path, [])


def space_file(tmp_path: Path) -> Path:
    """A valid search space, so that tune reaches its settings' checks."""
    path = tmp_path / "space.yaml"
    path.write_text("lr: loguniform(1e-4, 1e-2)\n")
    return path


def assert_one_line_error(result, option: str) -> None:
    assert result.exit_code in (1, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    error = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(error) == 1, result.output
    words = option.lstrip("-")
    assert words in error[0] or words.replace("-", "_") in error[0], error[0]


@pytest.mark.parametrize("value", ["abc", "-1"])
@pytest.mark.parametrize("path,option", numeric_options(), ids=lambda x: " ".join(x) if isinstance(x, tuple) else x)
def test_every_numeric_option_refuses_wrong_type_and_range(path, option, value, tmp_path) -> None:
    out = tmp_path / "out"
    extra = ["--out", str(out)] if path in (("train",), ("compare",)) else []
    result = CliRunner().invoke(cli, [*path, *arguments(path, tmp_path), option, value, *extra])
    assert_one_line_error(result, option)
    assert not out.exists()  # a failed start leaves nothing behind


@pytest.mark.parametrize("args,says", [
    (["--workers", "-2"], "workers must be at least 0"),
    (["--dropout", "2"], "dropout must be at least 0 and below 1"),
    (["--label-smoothing", "5"], "label_smoothing must be at least 0 and below 1"),
    (["--weight-decay", "-0.1"], "weight_decay must be at least 0"),
    (["--seed", "-1"], "seed must be at least 0"),
    (["--seed", str(2**64)], "seed must be at least 0 and at most"),
    (["--patience", "-1"], "patience must be at least 1"),
    (["--image-size", "1"], "image_size must be at least 32 and at most 2048, got 1 (conv5 has stride 32)"),
    (["--image-size", "100000"], "image_size must be at least 32 and at most 2048, got 100000 (larger images need gigabytes each)"),
    (["--batch-size", str(10**30)], "batch_size must be at least 1 and at most 65536, got 1000000000000000000000000000000"),
    (["--val-split", "1"], "val_split must be above 0 and below 1"),
    (["--feature-cache", "lots"], "invalid feature_cache 'lots'"),
    (["--warmup-epochs", "3", "--epochs", "2"], "warmup_epochs 3 is longer than the run's 2 epoch(s)"),
    (["--dataset", "nope"], "unknown dataset 'nope'"),
    (["--backbone", "resnet5"], "unknown backbone 'resnet5'"),
    (["--augment", "basic+basci"], "unknown augmentation 'basci'"),
    (["--name", "../escape"], "--name '../escape' is not a plain folder name"),
])
def test_train_refuses_bad_settings_before_creating_anything(args, says, tmp_path) -> None:
    out = tmp_path / "runs"
    result = CliRunner().invoke(cli, ["train", *args, "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert result.output.count("\n") == 1 and says in result.output, result.output
    assert not out.exists()


def test_out_under_a_file_or_a_pseudo_filesystem(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out, says in ((blocker / "runs", f"is under the file {blocker}"), ("/proc/tlf-runs", "pseudo-filesystem")):
        result = CliRunner().invoke(cli, ["train", "--out", str(out)])
        assert result.exit_code == 1 and says in result.output, result.output


def wrong_values(name: str, annotation) -> list:
    """Values of the wrong type for a setting annotated ``annotation``."""
    kinds = set(typing.get_args(annotation)) or {annotation}
    wrong = [[1, 2], {"a": 1}]
    if str in kinds and not kinds & {int, float} and name != "feature_cache":  # feature_cache: 3 is a number of views
        wrong.append(123)  # (lr takes a number or "auto": 123 is its type)
    if int in kinds or float in kinds:
        wrong += ["ten", True]
    if bool in kinds:
        wrong += ["maybe", 1]
    return wrong


CASES = [(f.name, value) for f in fields(RunConfig) for value in wrong_values(f.name, typing.get_type_hints(RunConfig)[f.name])]


@pytest.mark.parametrize("name,value", CASES, ids=[f"{n}={v!r}" for n, v in CASES])
def test_config_file_with_a_wrong_type(name, value, tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({name: value}))
    with pytest.raises(TlfError, match=name):
        load_config(path)


def test_python_api_gets_the_same_errors(tmp_path) -> None:
    with pytest.raises(TlfError, match="epochs must be a whole number, got '1'"):
        tlf.train(epochs="1", out=str(tmp_path / "runs"))
    with pytest.raises(TlfError, match="dropout must be"):
        tlf.train(RunConfig(dropout=2.0), out=str(tmp_path / "runs"))
    with pytest.raises(TlfError, match="unknown setting.*'epoch' \\(did you mean 'epochs'"):
        tlf.train(epoch=3)
    assert not (tmp_path / "runs").exists()
    with pytest.raises(TlfError, match="top_k must be at least 1"):
        tlf.evaluate(tmp_path, top_k=0)


def test_broken_config_yaml_of_a_run(tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("epochs: [1,\n")
    for args in (["evaluate", str(run)], ["train", "--resume", str(run)], ["export", str(run)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1 and "config.yaml is not valid YAML" in result.output, result.output
    (run / "config.yaml").write_text("epochs: ten\n")
    result = CliRunner().invoke(cli, ["evaluate", str(run)])
    assert result.exit_code == 1 and "epochs must be a whole number, got 'ten'" in result.output


def test_export_opset_beyond_onnx(tmp_path) -> None:
    result = CliRunner().invoke(cli, ["export", str(tmp_path), "--opset", "99"])
    assert result.exit_code == 1 and "opset must be at least 7 and at most" in result.output, result.output


def test_plan_is_resolved_once_and_immutable(tmp_path) -> None:
    from tlf.plan import plan_run, resume_plan
    plan = plan_run(None, {"dataset": "synthetic", "policy": "finetune", "augment": "basic", "out": str(tmp_path)})
    from tlf.policies import build_policy
    assert (plan.policy, plan.lr, plan.augment) == ("partial:conv5", build_policy("partial").defaults["lr"], "basic")
    assert isinstance(plan.workers, int) and plan.image_size is None  # fixed from the backbone when it is built
    assert plan.epochs is None and plan.head_lr_scale is None  # fixed from the training set (tlf.adaptive_defaults)
    with pytest.raises(Exception):
        plan.epochs = 3  # frozen
    assert plan_run(plan) == plan  # resolving a plan again changes nothing
    with pytest.raises(TlfError, match="cannot change lr when resuming"):
        resume_plan(tmp_path, {"lr": 0.1})


@pytest.mark.parametrize("kind, values, message", [
    ("EvaluationSettings", {"top_k": 0}, "top_k must be at least 1"),
    ("EvaluationSettings", {"checkpoint": "worst"}, "invalid checkpoint 'worst'"),
    ("EvaluationSettings", {"tta": "mirror"}, "invalid tta 'mirror'"),
    ("ExportSettings", {"quantize": "int4"}, "unknown quantization 'int4'"),
    ("ExportSettings", {"fp16": True, "quantize": "int8"}, "--fp16 and --quantize int8 are alternatives"),
    ("ExportSettings", {"parity_images": 0}, "parity_images must be at least 1"),
    ("ExportSettings", {"checkpoint": "worst"}, "invalid checkpoint 'worst'"),
])
def test_evaluate_and_export_settings_are_checked_before_any_work(kind, values, message, tmp_path) -> None:
    """A bad field of tlf.EvaluationSettings / tlf.ExportSettings is a one-line error before the run is read."""
    chosen = getattr(tlf, kind)(**values)
    with pytest.raises(TlfError, match=message):
        chosen.checked()
    call = tlf.evaluate if kind == "EvaluationSettings" else tlf.export_run
    with pytest.raises(TlfError, match=message):
        call(tmp_path / "no-run", settings=chosen)


@pytest.mark.parametrize("content, message", [
    ("model: ü\nepochs: 2\n".encode("latin-1"), "is not UTF-8 text (byte 0xfc at position 7)"),
    ("epochs: 2\n".encode("utf-16"), "is not UTF-8 text (byte 0xff at position 0)"),
    (b"a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\ndataset: *c\n", "alias *a at line 2: tlf does not read YAML aliases"),
    (b"epochs: " + b"[" * 100_000 + b"]" * 100_000 + b"\n", "nested too deeply"),
    (b"# " + b"x" * (1 << 20) + b"\nepochs: 2\n", "is larger than 1024 KiB; a settings file is a few lines"),
])
def test_config_files_are_read_within_bounds_in_one_line(tmp_path, content, message) -> None:
    path = tmp_path / "settings.yaml"
    path.write_bytes(content)
    result = CliRunner().invoke(cli, ["train", "--config", str(path), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output, result.output
    assert not (tmp_path / "runs").exists()
