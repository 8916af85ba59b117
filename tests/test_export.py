"""ONNX export: checker, parity gate, dynamic batch, metadata, fp16, uint8 input, int8."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from click.testing import CliRunner

from onnx_helpers import CLASSES, build, chw, export_small, make_run, metadata_for, shapes
from tlf.cli import cli
from tlf import __version__
from tlf.errors import TlfError
from tlf.export import TOLERANCE, export_onnx, normalize, quantize_int8
from tlf.export import onnx_export
from tlf.runtime import OnnxClassifier, decode_metadata

# backbone -> input size: small enough for a fast CPU suite
MODELS = {"efficientnet_lite0": 64, "resnet18": 64, "vgg11": 32}


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """backbone -> (model, report), each exported once with exporter="auto"."""
    tmp = tmp_path_factory.mktemp("exports")
    return {name: export_small(tmp, name, size) for name, size in MODELS.items()}


def torch_logits(model: nn.Module, images_uint8: np.ndarray) -> np.ndarray:
    meta = model.backbone.meta
    with torch.inference_mode():
        return model(torch.from_numpy(normalize(images_uint8, meta.mean, meta.std))).numpy()


@pytest.mark.parametrize("backbone", sorted(MODELS))
def test_export_passes_checker_and_parity_at_batch_1_and_7(exports, backbone):
    model, report = exports[backbone]
    assert report.exporter == "dynamo" and report.attempts[-1].ok
    onnx.checker.check_model(onnx.load(report.path), full_check=True)
    assert report.parity.ok and report.parity.inputs == "validation"
    assert report.parity.max_abs_diff <= TOLERANCE["fp32"] * report.parity.logit_scale
    assert report.parity.top1_agreement == 1.0
    size = MODELS[backbone]
    sess = ort.InferenceSession(report.path, providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape[0] == "batch"  # dynamic batch axis
    for batch in (1, 7):
        images = chw(shapes(batch, size, seed=batch + 10)[0])
        meta = model.backbone.meta
        got = sess.run(None, {"input": normalize(images, meta.mean, meta.std)})[0]
        want = torch_logits(model, images)
        assert got.shape == (batch, len(CLASSES))
        assert np.abs(got - want).max() <= TOLERANCE["fp32"] * max(1.0, np.abs(want).max())
        assert (got.argmax(1) == want.argmax(1)).all()


def test_metadata_round_trip(exports):
    model, report = exports["resnet18"]
    expected = {**metadata_for(model, 64), "crop": 64, "input_size": [3, 64, 64], "preprocessing_in_graph": False,
                "version": __version__, "precision": "fp32"}
    props = {p.key: p.value for p in onnx.load(report.path).metadata_props}
    assert all(json.loads(props[f"tlf.{k}"]) == v for k, v in expected.items())
    assert decode_metadata(props) == expected == report.metadata
    assert OnnxClassifier(report.path).metadata == expected


def test_fp16_export_halves_the_file_within_fp16_tolerance(tmp_path, exports):
    _, report = export_small(tmp_path, "resnet18", 32, fp16=True, exporter="torchscript")
    assert report.precision == "fp16" and report.parity.ok
    assert report.parity.tolerance == pytest.approx(TOLERANCE["fp16"] * report.parity.logit_scale)
    fp32_size = exports["resnet18"][1].size_bytes  # same weights; the input size does not change the file
    assert 0.45 < report.size_bytes / fp32_size < 0.55
    sess = ort.InferenceSession(report.path, providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].type == "tensor(float)"  # io stays float32
    assert OnnxClassifier(report.path).metadata["precision"] == "fp16"
    with pytest.raises(TlfError, match="starts from fp32"):
        quantize_int8(report.path, tmp_path / "q.onnx", calibration_images=chw(shapes(2, 32)[0]),
                      eval_images=chw(shapes(2, 32)[0]), eval_labels=[0, 1])


def test_preprocessing_in_graph_takes_uint8(tmp_path):
    model, report = export_small(tmp_path, "resnet18", 32, include_preprocessing=True, exporter="torchscript")
    sess = ort.InferenceSession(report.path, providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].type == "tensor(uint8)"
    images = chw(shapes(5, 32, seed=3)[0])
    got = sess.run(None, {"input": images})[0]
    assert np.abs(got - torch_logits(model, images)).max() < 1e-4
    clf = OnnxClassifier(report.path)
    assert clf.in_graph and clf.preprocess(shapes(1, 40)[0][0]).dtype == np.uint8


def test_int8_quantization_reports_size_and_accuracy(tmp_path, exports):
    _, report = exports["resnet18"]
    calibration = chw(shapes(16, 64, seed=5)[0])
    images, labels = shapes(30, 64, seed=6)
    q = quantize_int8(report.path, tmp_path / "m.int8.onnx", calibration_images=calibration,
                      eval_images=chw(images), eval_labels=labels)
    assert q.size_ratio < 0.35 and q.calibration_images == 16 and q.eval_images == 30
    assert q.accuracy_change == pytest.approx(q.int8_accuracy - q.fp32_accuracy)
    assert 0 <= q.fp32_accuracy <= 1 and 0 <= q.int8_accuracy <= 1 and 0 <= q.top1_agreement <= 1
    proto = onnx.load(q.path)
    assert any(n.op_type == "QuantizeLinear" for n in proto.graph.node)  # QDQ format
    clf = OnnxClassifier(q.path)
    assert clf.metadata["precision"] == "int8" and clf.classes == CLASSES
    assert len(clf.predict(images[:3], top_k=2)) == 3


class Drifting(nn.Module):
    """Eager output changes with every call: the traced graph freezes one value, so it disagrees."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.conv(x).mean((2, 3)) + float(self.calls)


def test_parity_gate_failure_shows_the_figures(tmp_path):
    meta = {"classes": CLASSES, "resize": 36, "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bilinear"}
    with pytest.raises(TlfError) as err:
        export_onnx(Drifting(), tmp_path / "bad.onnx", image_size=32, metadata=meta, exporter="torchscript",
                    sample_images=chw(shapes(4, 32)[0]))
    message = str(err.value)
    assert "parity gate" in message and "disagrees with PyTorch: max |logit diff|" in message and "torchscript" in message
    assert not list(tmp_path.iterdir())  # nothing written


def test_auto_falls_back_to_torchscript_and_says_why(tmp_path, monkeypatch):
    real = onnx_export._export

    def broken_dynamo(net, example, path, exporter, opset):
        if exporter == "dynamo":
            raise RuntimeError("simulated dynamo bug")
        real(net, example, path, exporter, opset)

    monkeypatch.setattr(onnx_export, "_export", broken_dynamo)
    _, report = export_small(tmp_path, "resnet18", 32)
    assert report.exporter == "torchscript" and report.parity.ok
    assert [(a.exporter, a.ok) for a in report.attempts] == [("dynamo", False), ("torchscript", True)]
    assert "simulated dynamo bug" in report.attempts[0].reason


def test_random_inputs_are_reported_and_opset_is_honoured(tmp_path):
    model = build("resnet18")
    report = export_onnx(model, tmp_path / "m.onnx", image_size=32, metadata=metadata_for(model, 32),
                         exporter="torchscript", opset=17)
    assert report.opset == 17 and report.parity.inputs == "random" and report.notes
    with pytest.raises(TlfError, match="unknown exporter"):
        export_onnx(model, tmp_path / "m.onnx", image_size=32, metadata=metadata_for(model, 32), exporter="jit")


@pytest.fixture(scope="module")
def run_export(tmp_path_factory):
    """(run directory, JSON report) of ``tlf export RUN --quantize int8``."""
    run = make_run(tmp_path_factory.mktemp("run"), "resnet18", 32)
    result = CliRunner().invoke(cli, ["export", str(run), "--quantize", "int8", "--exporter", "torchscript",
                                      "--parity-images", "10", "--calibration-images", "12", "--json"])
    assert result.exit_code == 0, result.output
    return run, json.loads(result.stdout)


def test_cli_exports_a_run_with_int8(run_export, tmp_path):
    run, report = run_export
    assert report["path"] == str(run / "model.onnx") and report["exporter"] == "torchscript"
    assert report["parity"]["ok"] and report["parity"]["images"] == 10 and report["parity"]["inputs"] == "validation"
    q = report["quantization"]
    assert q["path"] == str(run / "model.int8.onnx") and q["calibration_images"] == 12 and q["eval_images"] == 24
    assert q["size_ratio"] < 0.35 and q["accuracy_change"] == pytest.approx(q["int8_accuracy"] - q["fp32_accuracy"])
    meta = OnnxClassifier(run / "model.onnx").metadata
    assert meta["dataset"] == "synthetic:train=6,val=4" and meta["backbone"] == "resnet18" and meta["policy"] == "scratch"
    assert meta["val_accuracy"] == 0.25 and meta["crop"] == 32 and meta["downscale"] == "area"
    text = CliRunner().invoke(cli, ["export", str(run), "-o", str(tmp_path / "x.onnx"), "--exporter", "torchscript",
                                    "--include-preprocessing", "--parity-images", "4"])
    assert text.exit_code == 0 and "uint8 RGB" in text.stdout and "parity: max |logit diff|" in text.stdout


def test_runtime_predictions_equal_tlf_evaluate(run_export):
    """The deployed model (tlf.runtime, its own preprocessing) scores the validation set as tlf evaluate does."""
    import tlf
    from tlf.engine.metrics import confusion_matrix
    from tlf.data.run_data import load_splits
    from tlf.rundir import read_run_config

    run, report = run_export
    evaluation = tlf.evaluate(run, write=False, workers=0)
    splits = load_splits(read_run_config(run))  # the run's plan, typed
    predictions = OnnxClassifier(run / "model.onnx").predict([splits.val.load(i) for i in range(len(splits.val))])
    predicted = np.array([p.indices[0] for p in predictions])
    assert len(set(predicted)) > 2  # the check means something: several classes predicted
    assert confusion_matrix(splits.val.labels, predicted, len(splits.classes)).tolist() == evaluation["confusion_matrix"]
    assert report["quantization"]["fp32_accuracy"] == pytest.approx(evaluation["accuracy"])


def test_cli_export_errors_are_one_line(tmp_path):
    run = make_run(tmp_path, "resnet18", 32)
    result = CliRunner().invoke(cli, ["export", str(run), "--fp16", "--quantize", "int8"])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and "alternatives" in result.stderr
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(cli, ["export", str(tmp_path / "empty")])
    assert result.exit_code == 1 and "not a tlf run directory" in result.stderr


def test_export_never_writes_through_a_link_planted_at_a_temp_name(tmp_path):
    """The old temp name (``.NAME.PID.tmp``) was predictable: a link planted there made export
    overwrite a file outside the output folder."""
    import os
    outside = tmp_path / "outside.txt"
    outside.write_text("x" * 900)
    out = tmp_path / "out"
    out.mkdir()
    (out / f".resnet18.onnx.{os.getpid()}.tmp").symlink_to(outside)
    _, report = export_small(out, "resnet18", 32, exporter="torchscript")
    assert outside.read_text() == "x" * 900 and report.parity.ok


def test_an_interrupted_int8_write_leaves_nothing_at_the_final_name(tmp_path, exports, monkeypatch):
    """A kill while the int8 file was written left a truncated model.int8.onnx; it is now written
    to a temp name renamed into place, and the temp file goes too."""
    from tlf.export import quantize
    _, report = exports["resnet18"]

    import sys
    real = onnx.helper.set_model_props

    def killed_midway(*args, **kwargs):
        if sys._getframe(1).f_globals["__name__"] == quantize.__name__:  # tlf's own call, after quantize_static
            raise KeyboardInterrupt  # stands in for the signal
        return real(*args, **kwargs)

    monkeypatch.setattr(quantize.onnx.helper, "set_model_props", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        quantize_int8(report.path, tmp_path / "m.int8.onnx", calibration_images=chw(shapes(4, 64, seed=5)[0]),
                      eval_images=chw(shapes(4, 64, seed=6)[0]), eval_labels=[0, 1, 2, 0])
    assert list(tmp_path.iterdir()) == []


def test_onnx_writers_never_write_through_a_link_planted_at_the_name_they_are_given(tmp_path, exports, monkeypatch):
    """An attacker who can write in the output folder (mode 0777 here) plants a link to a file
    outside it at the very name torch.onnx.export, onnx.save or onnxruntime's quantizer is about to
    write, after tlf created it (the race an exclusive temp name does not stop). The libraries get
    names in a private folder (mode 0700) and tlf copies their files into place through its own
    descriptor, so nothing outside changes and every output is a whole file, not a link."""
    import os
    from pathlib import Path
    from tlf.export import quantize
    from tlf.features import onnx_prefix

    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"x" * 900)
    out = tmp_path / "shared"
    out.mkdir()
    out.chmod(0o777)
    planted = []

    def planting(real, position: int):
        def write(*args, **kwargs):
            target = Path(args[position])
            if os.stat(target.parent).st_mode & 0o022:  # a folder others can write in
                target.unlink(missing_ok=True)
                target.symlink_to(outside)
                planted.append(target.name)
            return real(*args, **kwargs)
        return write

    monkeypatch.setattr(torch.onnx, "export", planting(torch.onnx.export, 2))
    monkeypatch.setattr(onnx, "save", planting(onnx.save, 1))
    monkeypatch.setattr(quantize, "quantize_static", planting(quantize.quantize_static, 1))
    monkeypatch.setattr(quantize, "quant_pre_process", planting(quantize.quant_pre_process, 1))
    _, report = export_small(out, "resnet18", 32, exporter="torchscript")
    quantize_int8(report.path, out / "m.int8.onnx", calibration_images=chw(shapes(4, 32, seed=5)[0]),
                  eval_images=chw(shapes(4, 32, seed=6)[0]), eval_labels=[0, 1, 2, 0])
    onnx_prefix.export(nn.Sequential(nn.Conv2d(3, 4, 3)), torch.zeros(2, 3, 16, 16), out / "prefix.onnx")
    assert outside.read_bytes() == b"x" * 900 and planted == []
    assert sorted(p.name for p in out.iterdir()) == ["m.int8.onnx", "prefix.onnx", "resnet18.onnx"]
    for name in ("m.int8.onnx", "prefix.onnx", "resnet18.onnx"):
        assert not (out / name).is_symlink()
        onnx.checker.check_model(onnx.load(str(out / name)))
