"""The validation pass of runs without a feature cache (init, scratch) through onnxruntime:
the same scores as torch, a fresh export each pass that stays out of the cache, auto's
measured choice, and torch again for a model that does not export."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch
from torch import nn

from test_engine import FAST, make_colour_folder
from test_frozen_engine import MEAN, STD, Bessel, batch, choose, small_prefix, to_input
from tlf.engine import eval_engine
from tlf.features import onnx_prefix
from tlf.engine.eval_engine import ValidationEngine
from tlf.engine.placement import place
from tlf.engine.trainer import Trainer
from tlf.plan import plan_run


@pytest.fixture(scope="module")
def colour_data(tmp_path_factory):
    return make_colour_folder(tmp_path_factory.mktemp("colours"))


def small_model(extra: nn.Module | None = None) -> nn.Module:
    layers = [small_prefix(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3)]
    return nn.Sequential(*layers[:1], *([extra] if extra is not None else []), *layers[1:]).eval()


def loader(batches: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(batch(5), torch.tensor([0, 1, 2, 0, 1])) for _ in range(batches)]


def engine(setting: str, lines: list[str], device: str = "cpu", precision: str = "fp32",
           distributed: bool = False) -> ValidationEngine:
    return ValidationEngine(setting, place(device, precision), MEAN, STD, distributed, lines.append)


def leftover_exports() -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob("tlf-validation-*")) + list(
        onnx_prefix.cached_path("x", "y").parent.glob("*.onnx"))


def test_onnxruntime_pass_scores_as_torch_does_and_leaves_no_file():
    model, lines = small_model(), []
    got, labels = engine("onnxruntime", lines).logits(model, loader(), to_input)
    want, want_labels = engine("torch", []).logits(model, loader(), to_input)
    assert torch.equal(labels, want_labels) and got.shape == (15, 3)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert not leftover_exports()


def test_auto_times_one_pass_of_each_and_keeps_the_faster(monkeypatch):
    monkeypatch.setattr(eval_engine, "EXPORT_SECONDS", 0.0)
    calls = []
    real = ValidationEngine._onnxruntime
    monkeypatch.setattr(ValidationEngine, "_onnxruntime", lambda self, *a: calls.append(1) or real(self, *a))
    model, lines = small_model(), []
    validation = engine("auto", lines)
    validation.logits(model, loader(), to_input)
    assert calls == [] and validation.choice is None and "torch so far" in validation.note
    validation.logits(model, loader(), to_input)
    assert len(calls) == 1 and set(validation.seconds) == {"torch", "onnxruntime"}
    faster = min(validation.seconds, key=validation.seconds.get)
    assert validation.choice == faster and validation.note.startswith(f"{faster} (measured on one pass each: torch ")
    assert lines == [f"validation engine: {validation.note}"]
    validation.logits(model, loader(), to_input)
    assert len(calls) == 1 + (faster == "onnxruntime")


def test_auto_keeps_torch_when_its_pass_is_shorter_than_an_export(monkeypatch):
    monkeypatch.setattr(eval_engine, "EXPORT_SECONDS", 3600.0)
    monkeypatch.setattr(ValidationEngine, "_onnxruntime", lambda *a: pytest.fail("exported a model not worth it"))
    validation = engine("auto", [])
    for _ in range(3):
        validation.logits(small_model(), loader(), to_input)
    assert validation.choice == "torch" and "less than an export costs" in validation.note


def test_a_model_that_does_not_export_is_validated_by_torch_from_then_on():
    model, lines = small_model(Bessel()), []
    validation = engine("onnxruntime", lines)
    got, _ = validation.logits(model, loader(), to_input)
    torch.testing.assert_close(got, engine("torch", []).logits(model, loader(), to_input)[0])
    assert validation.choice == "torch" and validation.note.startswith("torch: the model does not export to ONNX (")
    assert lines == [f"validation engine: {validation.note}"] and "\n" not in validation.note
    validation.logits(model, loader(), to_input)
    assert len(lines) == 1 and not leftover_exports()


@pytest.mark.parametrize("setting,device,precision,distributed,note", [
    ("torch", "cpu", "fp32", False, "torch, by --frozen-engine torch"),
    ("auto", "cpu", "bf16", False, "torch, on cpu at bf16"),
    ("onnxruntime", "cpu", "fp32", True, "torch, under torch.distributed"),
])
def test_torch_where_onnxruntime_does_not_apply(setting, device, precision, distributed, note):
    validation = engine(setting, [], device, precision, distributed)
    assert validation.choice == "torch" and validation.note == note


def test_an_init_run_validated_through_onnxruntime_equals_torch(colour_data, tmp_path):
    """Validation does not touch training, so the two runs' weights are the same and their
    validation figures agree within the parity gate's tolerance."""
    common = dict(dataset=f"folder:{colour_data}", policy="init", epochs=2, lr=3e-3, **FAST)
    runs = {}
    for setting in ("onnxruntime", "torch"):
        trainer = Trainer(plan_run(None, dict(out=str(tmp_path / setting), frozen_engine=setting, **common)), quiet=True)
        runs[setting] = (trainer, trainer.fit())
    (ort_run, ort_summary), (torch_run, torch_summary) = runs["onnxruntime"], runs["torch"]
    assert ort_summary["validation_engine"] == "onnxruntime, by --frozen-engine onnxruntime"
    assert torch_summary["validation_engine"] == "torch, by --frozen-engine torch"
    assert not ort_summary["feature_cache"]
    assert set(ort_run.source.validation.seconds) == {"onnxruntime"}
    assert set(torch_run.source.validation.seconds) == {"torch"}
    for a, b in zip(ort_run.history, torch_run.history):
        assert a["val_acc"] == b["val_acc"] and a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-4, abs=1e-5)
    assert not leftover_exports()


def test_prune_keeps_the_newest_exports_within_the_budget(tmp_path):
    files = []
    for i, size in enumerate((300, 300, 300, 300)):
        path = tmp_path / f"prefix-{i}.onnx"
        path.write_bytes(b"x" * size)
        os.utime(path, (1000 + i, 1000 + i))  # prefix-3 newest
        files.append(path)
    (tmp_path / "notes.txt").write_text("not an export")
    deleted = onnx_prefix.prune(tmp_path, keep=files[0], budget=700)
    assert sorted(deleted) == [files[1], files[2]]  # the kept file, then the newest, fill the budget
    assert sorted(tmp_path.iterdir()) == [tmp_path / "notes.txt", files[0], files[3]]


def test_reusing_a_cached_export_marks_it_recently_used():
    first, _ = choose(small_prefix())
    os.utime(first.path, (0, 0))
    again, note = choose(small_prefix())
    assert "reused the cached export" in note and again.path.stat().st_mtime > 0


def test_a_new_export_prunes_the_cache(monkeypatch):
    monkeypatch.setattr(onnx_prefix, "CACHE_BYTES", 1)
    first, _ = choose(small_prefix(0))
    second, _ = choose(small_prefix(1))
    assert not first.path.exists() and second.path.exists()
