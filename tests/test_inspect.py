"""``tlf inspect``: stage shapes, parameter counts and frozen state, as a table and as JSON."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from helpers_models import model as fresh_model

from tlf.cli import cli
from tlf.models import STAGES
from tlf.policies import build_policy


def inspect_json(*args: str) -> dict:
    result = CliRunner().invoke(cli, ["inspect", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_vgg16_shapes_at_32() -> None:
    info = inspect_json("--backbone", "vgg16", "--image-size", "32", "--num-classes", "10")
    shapes = [tuple(row["output_shape"]) for row in info["stages"]]
    assert shapes == [(64, 16, 16), (128, 8, 8), (256, 4, 4), (512, 2, 2), (512, 1, 1)]
    assert info["head"]["output_shape"] == [10] and info["weights"] is None
    assert info["totals"]["params"] == info["totals"]["trainable"] == 14_719_818  # 14,714,688 + 512*10+10


@pytest.mark.parametrize("backbone", ["vgg16", "resnet50", "convnext_tiny", "efficientnet_lite0"])
def test_partial_conv5_freezes_exactly_conv1_to_conv4(backbone: str) -> None:
    info = inspect_json("--backbone", backbone, "--policy", "partial:conv5", "--image-size", "32",
                        "--num-classes", "3")
    model = fresh_model(backbone)
    build_policy("partial:conv5").apply(model)
    assert model.frozen_stages == STAGES[:4]
    rows = {row["name"]: row for row in info["stages"]}
    for name, stage in model.backbone.stages.named_children():
        count = sum(p.numel() for p in stage.parameters())
        trainable = sum(p.numel() for p in stage.parameters() if p.requires_grad)
        assert (rows[name]["params"], rows[name]["trainable"]) == (count, trainable)
        assert trainable == (count if name == "conv5" else 0)
        assert rows[name]["state"] == ("trainable" if name == "conv5" else "frozen")
    frozen = sum(p.numel() for n in STAGES[:4] for p in getattr(model.backbone.stages, n).parameters())
    assert info["totals"]["frozen"] == frozen
    assert info["totals"]["trainable"] == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_table_output_and_train_bn() -> None:
    result = CliRunner().invoke(cli, ["inspect", "-b", "resnet18", "-p", "transfer", "--image-size", "64",
                                      "--train-bn"], terminal_width=140)
    assert result.exit_code == 0, result.output
    for text in ("conv1", "conv5", "layer4", "head", "total", "(512, 2, 2)", "norm only"):
        assert text in result.output
    info = inspect_json("-b", "resnet18", "-p", "transfer", "--image-size", "64", "--train-bn")
    assert all(0 < row["trainable"] < row["params"] for row in info["stages"])


def test_inspect_errors_are_one_line() -> None:
    result = CliRunner().invoke(cli, ["inspect", "-b", "resnet18", "-p", "partial:layer9"])
    assert result.exit_code == 1
    assert "no stage 'layer9'" in result.output and "layer4" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["inspect", "-b", "resnet18", "--image-size", "16"])
    assert result.exit_code == 1 and "image_size must be at least 32 and at most 2048, got 16" in result.output


def test_weights_file_is_checked(tmp_path) -> None:
    import torch
    import torchvision
    path = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34().state_dict(), path)
    result = CliRunner().invoke(cli, ["inspect", "-b", "resnet18", "--weights", str(path)])
    assert result.exit_code == 1 and "do not fit" in result.output
    info = inspect_json("-b", "resnet34", "--weights", str(path), "--image-size", "32", "-p", "transfer")
    assert info["weights"] == str(path) and info["policy_defaults"] == {"lr": 1e-3, "epochs": 10, "augment": "none",
                                                                  "min_steps": 300, "head_lr_scale": 1.0}

