"""The frozen pass through onnxruntime: same features and training as torch, a cached export
keyed by the weights, corrupted files rebuilt, unexportable prefixes falling back to torch."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import tlf
from test_engine import FAST, make_colour_folder
from tlf.cli import cli
from tlf.data.model_input import to_model_input
from tlf.features import onnx_int8, onnx_prefix
from tlf.features.cache import choose_engine
from tlf.engine.trainer import Trainer
from tlf.config import load_config
from tlf.plan import plan_run
from tlf.errors import TlfError

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def colour_data(tmp_path_factory):
    return make_colour_folder(tmp_path_factory.mktemp("colours"))


def to_input(images: torch.Tensor) -> torch.Tensor:
    return to_model_input(images, MEAN, STD, CPU)


def small_prefix(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3)).eval()


def batch(n: int = 4, size: int = 16) -> torch.Tensor:
    images = torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    return images.permute(0, 3, 1, 2)  # NHWC in memory, as the loaders collate


def choose(prefix: nn.Module, setting: str = "auto", amp: torch.dtype | None = None, channels_last: bool = False):
    return choose_engine(setting, prefix, to_input, amp, CPU, batch(), MEAN, STD, "small", channels_last)


def test_engine_matches_torch_and_export_is_cached():
    prefix = small_prefix()
    engine, note = choose(prefix)
    assert engine.name == "onnxruntime" and "exported once" in note, note
    x = batch(6)
    with torch.inference_mode():
        want = prefix(to_input(x))
    torch.testing.assert_close(engine(x), want, rtol=1e-5, atol=1e-5)
    again, note = choose(prefix, channels_last=True)
    assert again.name == "onnxruntime" and "reused the cached export" in note, note
    assert again.path == engine.path
    assert again(x).is_contiguous(memory_format=torch.channels_last)  # as torch's pass, for the trainable rest
    assert engine(x).is_contiguous()


def test_changed_weights_never_use_the_stale_export():
    prefix = small_prefix()
    first, _ = choose(prefix)
    with torch.no_grad():
        prefix[0].weight.mul_(2.0)
    second, note = choose(prefix)
    assert second.path != first.path and "exported once" in note, note
    with torch.inference_mode():
        torch.testing.assert_close(second(batch()), prefix(to_input(batch())), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("damage", [b"not an onnx file", None])
def test_corrupted_cached_export_is_rebuilt(damage):
    prefix = small_prefix()
    engine, _ = choose(prefix)
    data = engine.path.read_bytes()
    engine.path.write_bytes(damage if damage is not None else data[: len(data) // 2])  # garbage, or truncated
    rebuilt, note = choose(prefix)
    assert rebuilt.name == "onnxruntime" and note.startswith("onnxruntime (re-exported"), note
    with torch.inference_mode():
        torch.testing.assert_close(rebuilt(batch()), prefix(to_input(batch())), rtol=1e-5, atol=1e-5)


def test_cached_export_with_other_numbers_is_rebuilt():
    """A cached file that loads but computes something else (here: another prefix's export
    under this one's name) fails the parity gate and is exported again."""
    prefix, other = small_prefix(0), small_prefix(1)
    mine, _ = choose(prefix)
    theirs, _ = choose(other)
    mine.path.write_bytes(theirs.path.read_bytes())
    rebuilt, note = choose(prefix)
    assert "re-exported" in note and "max |feature diff|" in note, note
    with torch.inference_mode():
        torch.testing.assert_close(rebuilt(batch()), prefix(to_input(batch())), rtol=1e-5, atol=1e-5)


class Bessel(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.bessel_j0(x)  # no ONNX symbolic in either exporter


class Noisy(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.rand_like(x)  # exports, but never matches torch


@pytest.mark.parametrize("extra,why", [(Bessel(), "does not export to ONNX"), (Noisy(), "disagrees with torch")])
def test_prefix_that_cannot_run_on_onnxruntime_falls_back_to_torch(extra, why):
    prefix = nn.Sequential(small_prefix(), extra).eval()
    engine, note = choose(prefix, "onnxruntime")
    assert engine.name == "torch" and why in note and "\n" not in note, note
    assert not list(onnx_prefix.cached_path("small", "x").parent.glob("*.onnx")), "a rejected export was kept"


def test_auto_uses_onnxruntime_for_bf16_runs_too_and_torch_when_asked():
    """bf16 autocast was slower than onnxruntime fp32 in every measurement (docs/performance.md)."""
    prefix = small_prefix()
    engine = choose(prefix, "auto", torch.bfloat16)[0]
    assert engine.name == "onnxruntime"
    with torch.inference_mode():
        torch.testing.assert_close(engine(batch()), prefix(to_input(batch())), rtol=1e-5, atol=1e-5)  # fp32 features
    assert choose(small_prefix(), "torch", torch.bfloat16)[0].name == "torch"
    assert choose(small_prefix(), "torch")[0].name == "torch"


def test_onnxruntime_on_a_gpu_run_is_an_error():
    with pytest.raises(TlfError, match="runs the frozen pass on the CPU"):
        choose_engine("onnxruntime", small_prefix(), to_input, None, torch.device("cuda"), batch(), MEAN, STD, "x")


@pytest.mark.parametrize("policy", ["transfer", "partial:conv5"])
def test_training_through_onnxruntime_equals_torch(colour_data, tmp_path, policy):
    """Same cached features within tolerance, same training afterwards, engine in the summary."""
    common = dict(dataset=f"folder:{colour_data}", policy=policy, epochs=2, lr=3e-3, **FAST)
    trainers = {}
    for engine in ("onnxruntime", "torch"):
        trainer = Trainer(plan_run(None, dict(out=str(tmp_path / engine), frozen_engine=engine, **common)), quiet=True)
        summary = trainer.fit()
        assert summary["frozen_engine"] == engine and summary["feature_cache"]
        assert json.loads((trainer.run_dir.path / "summary.json").read_text())["frozen_engine"] == engine
        trainers[engine] = trainer
    ort_run, torch_run = trainers["onnxruntime"], trainers["torch"]
    for a, b in zip(ort_run.cached.train.features + ort_run.cached.val.features,
                    torch_run.cached.train.features + torch_run.cached.val.features):
        scale = max(1.0, float(b.abs().max()))  # the parity gate's tolerance
        torch.testing.assert_close(a, b, rtol=0, atol=onnx_prefix.TOLERANCE * scale)
    if policy != "transfer":
        # a trainable conv5 with BatchNorm over 8 images of 2x2 maps amplifies any 1e-5 change
        # of its input (measured: torch's own features plus 1e-5 noise diverge as much), so
        # only the head-only run can be compared weight for weight
        return
    a, b = ort_run.model.state_dict(), torch_run.model.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)
    assert [r["val_acc"] for r in ort_run.history] == [r["val_acc"] for r in torch_run.history]


def test_cli_flag_and_bad_value(colour_data, tmp_path):
    runner = CliRunner()
    help_text = runner.invoke(cli, ["train", "--help"]).output
    assert "--frozen-engine" in help_text and "onnxruntime-int8" in help_text
    bad = runner.invoke(cli, ["train", "--frozen-engine", "tensorrt"])
    assert bad.exit_code == 2 and "tensorrt" in bad.output
    with pytest.raises(TlfError, match="invalid frozen_engine"):
        load_config(frozen_engine="fast")


def calibration_batch(n: int = 16) -> torch.Tensor:
    images = torch.randint(0, 256, (n, 16, 16, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    return images.permute(0, 3, 1, 2)


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).norm() / want.norm())


def test_int8_engine_is_quantized_once_cached_and_close_to_torch():
    prefix = small_prefix()
    engine, note = choose_engine("onnxruntime-int8", prefix, to_input, None, CPU, batch(), MEAN, STD, "small",
                                 calibration=calibration_batch())
    assert engine.name == "onnxruntime-int8" and "quantized once, calibrated on 16 training images" in note, note
    assert "relative feature error" in note and "int8" in engine.path.name
    with torch.inference_mode():
        want = prefix(to_input(batch(6)))
    error = relative_error(engine(batch(6)), want)
    assert 0 < error <= 0.2, error  # int8, so not fp32's numbers, but close on this tiny conv stack
    again, note = choose_engine("onnxruntime-int8", prefix, to_input, None, CPU, batch(), MEAN, STD, "small",
                                calibration=calibration_batch())
    assert "reused the cached int8 file" in note and again.path == engine.path, note
    other, _ = choose_engine("onnxruntime-int8", prefix, to_input, None, CPU, batch(), MEAN, STD, "small",
                             calibration=calibration_batch(12))
    assert other.path != engine.path  # other calibration images, another file


def test_corrupted_int8_file_is_rebuilt():
    prefix = small_prefix()
    engine, _ = choose_engine("onnxruntime-int8", prefix, to_input, None, CPU, batch(), MEAN, STD, "small",
                              calibration=calibration_batch())
    engine.path.write_bytes(b"not an onnx file")
    rebuilt, note = choose_engine("onnxruntime-int8", prefix, to_input, None, CPU, batch(), MEAN, STD, "small",
                                  calibration=calibration_batch())
    assert rebuilt.name == "onnxruntime-int8" and "quantized again" in note, note
    with torch.inference_mode():
        assert relative_error(rebuilt(batch()), prefix(to_input(batch()))) <= 0.2


def test_int8_that_misses_its_gate_falls_back_to_onnxruntime_fp32(monkeypatch):
    monkeypatch.setattr(onnx_int8, "TOLERANCE", 0.0)
    prefix = small_prefix()
    engine, note = choose_engine("onnxruntime-int8", prefix, to_input, None, CPU, batch(), MEAN, STD, "small",
                                 calibration=calibration_batch())
    assert engine.name == "onnxruntime" and "int8 prefix is too far from torch" in note and "\n" not in note, note
    assert not list(engine.path.parent.glob("*int8*.onnx")), "a rejected int8 file was kept"


def test_int8_on_a_gpu_run_is_an_error():
    with pytest.raises(TlfError, match="onnxruntime-int8 runs the frozen pass on the CPU"):
        choose_engine("onnxruntime-int8", small_prefix(), to_input, None, torch.device("cuda"), batch(), MEAN, STD, "x")


def test_training_through_int8_records_the_engine(colour_data, tmp_path):
    """The run calibrates on its own training images, trains the head on int8 features and says so."""
    settings = dict(dataset=f"folder:{colour_data}", policy="transfer", epochs=2, lr=1e-2, **FAST)
    settings.update(backbone="resnet18", pretrained=False)
    trainer = Trainer(plan_run(None, dict(out=str(tmp_path / "int8"), frozen_engine="onnxruntime-int8", **settings)),
                      quiet=True)
    summary = trainer.fit()
    assert summary["frozen_engine"] == "onnxruntime-int8" and summary["feature_cache"], summary
    reference = Trainer(plan_run(None, dict(out=str(tmp_path / "torch"), frozen_engine="torch", **settings)), quiet=True)
    reference.fit()
    for a, b in zip(trainer.cached.train.features + trainer.cached.val.features,
                    reference.cached.train.features + reference.cached.val.features):
        assert 0 < relative_error(a, b) <= 0.2
