"""Columnar backbones (timm ViTs): stages embed, block1..blockN, token heads, policies, training with
the feature cache, export, weights files, Grad-CAM on the token grid, bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from cli_output import said

import tlf
from helpers_models import marked_cams, model as fresh_model
from imagefiles import marked_square_folder
from tlf.cli import cli
from tlf.errors import TlfError
from tlf.models import build_model

VIT = "timm:vit_tiny_patch16_224"
FAST = dict(backbone=VIT, pretrained=False, image_size=32, batch_size=8, workers=0, augment="none", device="cpu",
            warmup_epochs=0.0, epochs=1, quiet=True)
DATA = "synthetic:train=2,val=1"  # per class: 12 training and 6 validation images



def run_cli(*args: str, code: int = 0):
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, result.output
    return result


# ---- stages, tokens, inspect ------------------------------------------------------------

def test_inspect_shows_blocks_token_shapes_and_what_is_frozen():
    info = json.loads(run_cli("inspect", "-b", VIT, "-p", "partial:block10", "--image-size", "32", "--json").stdout)
    assert [r["name"] for r in info["stages"]] == ["embed", *(f"block{i}" for i in range(1, 13))]
    assert {tuple(r["output_shape"]) for r in info["stages"]} == {(5, 192)}  # class token + a 2x2 grid
    assert [r["state"] for r in info["stages"]] == ["frozen"] * 10 + ["trainable"] * 3
    assert info["contract"] == "columnar" and info["head"]["output_shape"] == [10]
    assert info["tokens"] == {"prefix": 1, "class_token": True, "patch": 16, "grid": [2, 2], "pooling": "cls",
                              "recipe_pooling": "cls"}
    table = run_cli("inspect", "-b", VIT, "-p", "partial:last3", "--image-size", "32").stdout
    assert "block10" in table and "(5, 192)" in table and "2x2 grid of 16 px patches" in table


@pytest.mark.parametrize("stage", ["block13", "last99", "layer9"])
def test_a_bad_vit_stage_is_caught_by_the_plan_before_any_data(stage):
    """The plan checks stage names on the backbone built on the meta device (no weights, no run)."""
    from tlf.plan_checks import check_model
    from tlf.policies import build_policy
    with pytest.raises(TlfError, match=f"has no stage '{stage}'"):
        check_model(build_policy(f"partial:{stage}", False), VIT)


def test_a_head_pooling_or_size_the_backbone_cannot_take_is_caught_before_any_data(tmp_path):
    """--pooling on a CNN, --head mlp on a ViT, a size its patches do not tile: one line, no dataset read
    (a missing dataset folder would otherwise be the error, after the model's)."""
    missing = f"folder:{tmp_path / 'no-such-folder'}"
    cases = [("-b", "efficientnet_lite0", "--pooling", "cls"), ("-b", VIT, "--head", "mlp"),
             ("-b", VIT, "--image-size", "40")]
    for case, said_first in zip(cases, ["--pooling cls is for columnar backbones", "head 'mlp' flattens a conv5 map",
                                        "cannot take 40 px images"]):
        out = run_cli("train", "--dataset", missing, *case, "--no-pretrained", "--out", str(tmp_path), code=1).output
        assert said_first in out and "no-such-folder" not in out and out.count("\n") == 1, out


def test_a_bad_stage_lists_the_valid_ones_in_one_line():
    out = run_cli("inspect", "-b", VIT, "-p", "partial:block13", "--image-size", "32", code=1).output
    assert out.count("\n") == 1 and "has no stage 'block13'" in out
    assert "embed, block1..block12" in out and "lastK" in out


def test_stage_names_numbers_native_aliases_and_last_k():
    body = fresh_model(VIT).backbone
    assert body.stage_names == ("embed", *(f"block{i}" for i in range(1, 13))) and body.contract == "columnar"
    resolved = [body.resolve_stage(s) for s in ("block10", "10", "last4", "last13", "blocks_9", "norm")]
    assert resolved == ["block10", "block10", "block9", "embed", "block10", "block12"]
    cnn = fresh_model("resnet18").backbone
    assert cnn.contract == "pyramid" and [cnn.resolve_stage(s) for s in ("last1", "last2", "4")] == ["conv5", "conv4",
                                                                                                     "conv4"]
    with pytest.raises(TlfError, match="no stage 'last14'"):
        body.resolve_stage("last14")


def test_token_map_puts_each_patch_token_on_its_grid_cell():
    body = fresh_model(VIT).backbone
    tokens = torch.zeros(1, 1 + 2 * 3, 4)
    tokens[0, 1:, 0] = torch.arange(6.0)  # patch k of a 2 x 3 grid (32 x 48 px), row-major
    grid = body.token_map(tokens, 32, 48)
    assert grid.shape == (1, 4, 2, 3) and grid[0, 0].tolist() == [[0, 1, 2], [3, 4, 5]]


# ---- heads and pooling -------------------------------------------------------------------

@pytest.mark.parametrize("pooling, width", [(None, 192), ("cls", 192), ("mean", 192), ("cls+mean", 384)])
def test_pooling_sets_the_head_width(pooling, width):
    model = build_model(VIT, 3, pretrained=False, image_size=32, pooling=pooling)
    assert model.head.fc.in_features == width
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_dinov2_registers_are_left_out_and_its_probe_concatenates():
    model = build_model("timm:vit_small_patch14_reg4_dinov2", 3, pretrained=False, image_size=28)
    tokens = model.backbone.tokens
    assert (tokens.prefix, tokens.patch, tokens.pooling) == (5, 14, "cls+mean") and model.head.fc.in_features == 768
    x = torch.randn(2, 5 + 4, 384)
    pooled = model.head.pool(x)
    assert torch.equal(pooled, torch.cat([x[:, 0], x[:, 5:].mean(1)], 1))  # class token, then the patch mean
    assert torch.equal(model.head.pool(pooled), pooled)  # cached (pooled) features pass through


def test_the_pre_logits_norm_applies_to_each_pooled_part():
    from tlf.models import token_head
    head = token_head("cls+mean", 1, 8, 3, 0.0, torch.nn.LayerNorm(8)).eval()
    x = torch.randn(2, 5, 8)
    parts = torch.cat([torch.nn.functional.layer_norm(p, (8,)) for p in (x[:, 0], x[:, 1:].mean(1))], 1)
    assert torch.allclose(head(x), head.fc(parts), atol=1e-6)


def test_bad_pooling_and_head_are_one_line_errors(monkeypatch):
    from tlf.models import Tokens
    with pytest.raises(TlfError, match="columnar backbones"):
        build_model("resnet18", 3, pretrained=False, pooling="cls")
    with pytest.raises(TlfError, match="use --head linear"):
        build_model(VIT, 3, pretrained=False, head="mlp", image_size=32)
    from tlf.plugins.backbones import timm_columnar  # a model without a class token (SigLIP's towers)
    monkeypatch.setattr(timm_columnar, "check", lambda model, stages, name: Tokens(0, False, 16, "mean"))
    with pytest.raises(TlfError, match="has no class token, so it cannot pool with 'cls\\+mean'"):
        build_model(VIT, 3, pretrained=False, image_size=32, pooling="cls+mean")


# ---- policies ----------------------------------------------------------------------------

def test_transfer_gradual_and_layerwise_lr_decay_follow_the_blocks():
    from tlf.policies import build_policy
    model = fresh_model(VIT)
    build_policy("transfer").apply(model)
    assert len(model.frozen_stages) == 13
    gradual = build_policy("gradual:1")
    gradual.apply(model)
    optimizer = torch.optim.AdamW(gradual.param_groups(model, 1e-3, 0.05))
    gradual.on_epoch_start(model, 1, optimizer)
    assert model.frozen_stages[-1] == "block11" and {g["name"] for g in optimizer.param_groups} == {
        "block12", "block12.no_decay", "head", "head.no_decay"}
    model = fresh_model(VIT)
    policy = build_policy("discriminative:0.5")
    policy.apply(model)
    lrs = {g["name"]: g["lr"] for g in policy.param_groups(model, 1.0, 0.05)}
    assert lrs["head"] == 1.0 and lrs["block12"] == 0.5 and lrs["block1"] == 0.5 ** 12 and lrs["embed"] == 0.5 ** 13


# ---- training, export, predict -------------------------------------------------------------

@pytest.fixture(scope="module")
def transfer_run(tmp_path_factory) -> Path:
    run = tlf.train(dataset=DATA, policy="transfer", lr=1e-2, out=str(tmp_path_factory.mktemp("runs")), **FAST)
    return run.directory


def test_transfer_caches_the_frozen_features_through_onnxruntime(transfer_run):
    summary = json.loads((transfer_run / "summary.json").read_text())
    assert summary["feature_cache"] is True and summary["frozen_engine"] == "onnxruntime"


@pytest.mark.parametrize("policy", ["partial:last2", "init"])
def test_partial_and_init_train_a_vit(policy, tmp_path):
    run = tlf.train(dataset=DATA, policy=policy, lr=1e-3, out=str(tmp_path), ema=0.9, frozen_engine="torch", **FAST)
    assert run.summary["epochs"] == 1 and run.summary["ema"] and run.summary["feature_cache"] is (policy != "init")
    evaluation = tlf.evaluate(run.directory, write=False, workers=0, tta="flip")
    assert evaluation["images"] == 6


def test_export_passes_parity_and_predict_agrees_with_evaluate(transfer_run):
    from tlf.data.run_data import load_splits
    from tlf.engine.metrics import confusion_matrix
    from tlf.rundir import read_run_config
    from tlf.runtime import OnnxClassifier

    report = json.loads(run_cli("export", str(transfer_run), "--parity-images", "6", "--json").stdout)
    assert report["parity"]["ok"] and report["parity"]["top1_agreement"] == 1.0
    evaluation = tlf.evaluate(transfer_run, write=False, workers=0)
    splits = load_splits(read_run_config(transfer_run))
    predictions = OnnxClassifier(transfer_run / "model.onnx").predict([splits.val.load(i) for i in range(6)])
    predicted = np.array([p.indices[0] for p in predictions])
    assert confusion_matrix(splits.val.labels, predicted, len(splits.classes)).tolist() == evaluation["confusion_matrix"]


# ---- weights -------------------------------------------------------------------------------

def test_a_timm_state_dict_and_a_timm_checkpoint_load_with_weights(tmp_path):
    import timm
    from timm.utils import CheckpointSaver

    native = timm.create_model("vit_tiny_patch16_224").eval()
    torch.save(native.state_dict(), tmp_path / "vit.pth")
    saver = CheckpointSaver(native, torch.optim.SGD(native.parameters(), lr=0.1), checkpoint_dir=str(tmp_path))
    saver.save_checkpoint(0, metric=0.0)  # timm's training-script format: {"state_dict": ..., "optimizer": ...}
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = timm.create_model("vit_tiny_patch16_224", dynamic_img_size=True)
        expected.load_state_dict(native.state_dict())
        want = expected.eval().forward_features(x)
    for path in (tmp_path / "vit.pth", tmp_path / "last.pth.tar"):
        model = build_model(VIT, 3, pretrained=True, weights=path, image_size=32).eval()
        assert model.backbone.meta.weights == str(path)
        with torch.no_grad():
            assert torch.allclose(model.backbone(x), want, atol=1e-5)
    out = run_cli("inspect", "-b", VIT, "--weights", str(tmp_path / "vit.pth"), "--image-size", "32").stdout
    assert f"weights: {tmp_path / 'vit.pth'}" in out.replace("\n", "")


def test_weights_of_another_size_name_the_model(tmp_path):
    import timm
    torch.save(timm.create_model("vit_tiny_patch16_224", embed_dim=96, num_heads=3).state_dict(), tmp_path / "w.pth")
    out = run_cli("inspect", "-b", VIT, "--weights", str(tmp_path / "w.pth"), code=1).output
    assert out.count("\n") == 1 and "timm model 'vit_tiny_patch16_224': weights from" in out and "wrong shape" in out


def test_an_image_size_off_the_patch_grid_is_a_one_line_error(tmp_path):
    out = run_cli("train", "--dataset", DATA, "-b", VIT, "--no-pretrained", "--image-size", "40", "--out",
                  str(tmp_path), "--device", "cpu", code=1).output
    out = said(out)
    assert out.count("\n") == 1 and "16 px patches, so it cannot take 40 px images" in out
    assert "--image-size 32 or 48" in out


# ---- Grad-CAM on the token grid ----------------------------------------------------------------

@pytest.mark.parametrize("pooling", [None, "mean"])  # the class token (Grad-CAM before the last block), the patch mean
def test_grad_cam_on_a_vit_puts_the_heat_on_the_deciding_quarter(pooling, tmp_path):
    size = 64
    data = marked_square_folder(tmp_path / "data", size, side=size * 3 // 8, right=True)  # transposed: bottom-left
    run = tlf.train(dataset=f"folder:{data}", policy="partial:last2", lr=1e-3, out=str(tmp_path), pooling=pooling,
                    **{**FAST, "image_size": size, "batch_size": 16, "epochs": 5})
    assert run.summary["best_val_accuracy"] == 1.0
    cam = marked_cams(run.directory, data)
    half = size // 2
    quarters = {name: (cam[:, rows, cols].sum(axis=(1, 2)) / cam.sum(axis=(1, 2))).mean()
                for name, rows, cols in (("top-right", slice(None, half), slice(half, None)),
                                         ("top-left", slice(None, half), slice(None, half)),
                                         ("bottom-left", slice(half, None), slice(None, half)),
                                         ("bottom-right", slice(half, None), slice(half, None)))}
    assert quarters["top-right"] > 2 * max(v for k, v in quarters.items() if k != "top-right"), quarters


# ---- the frozen pass's cost ---------------------------------------------------------------------

def test_a_long_frozen_pass_is_announced(monkeypatch):
    from tlf.engine import frozen_cost
    model = fresh_model(VIT)
    state = torch.get_rng_state()
    assert frozen_cost.announcement(model, 13, 32, 100) is None  # 100 tiny images: far below a minute
    assert torch.equal(torch.get_rng_state(), state)  # the run's random draws are not shifted
    monkeypatch.setattr(frozen_cost, "ANNOUNCE_SECONDS", 0.0)
    line = frozen_cost.announcement(model, 13, 32, 100_000)
    assert line.startswith("frozen pass: about ") and "100,000 images at 32 px" in line and "img/s" in line
