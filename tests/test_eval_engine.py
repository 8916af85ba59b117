"""tlf evaluate's engine: the whole model through onnxruntime on the CPU, parity-gated, cached."""
from __future__ import annotations

import pytest

from onnx_helpers import make_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("eval-engine"), "resnet18", 32)


def _evaluate(run_dir, **kw):
    """``tlf.evaluate`` with one settings object, changed by keywords as the API allows."""
    import tlf
    return tlf.evaluate(run_dir, tlf.EvaluationSettings(workers=0, device="cpu", write=False, batch_size=5), **kw)


def test_onnxruntime_scores_as_torch_does_and_its_export_is_reused(run_dir):
    torch_report = _evaluate(run_dir, engine="torch")
    first = _evaluate(run_dir)  # auto: onnxruntime on the CPU at fp32
    second = _evaluate(run_dir, engine="onnxruntime")
    assert torch_report["engine"] == "torch, by --engine torch"
    assert first["engine"].startswith("onnxruntime (exported once") and "parity" in first["engine"]
    assert second["engine"].startswith("onnxruntime (reused the cached export")
    for report in (first, second):
        assert report["confusion_matrix"] == torch_report["confusion_matrix"]
        assert report["accuracy"] == torch_report["accuracy"]
        assert report["images"] == torch_report["images"] > 5  # more than one batch of 5


def test_a_model_that_does_not_export_is_evaluated_by_torch_with_the_reason(run_dir, monkeypatch):
    from tlf.features import onnx_prefix

    def unsupported(*args, **kwargs):
        raise RuntimeError("Exporting the operator 'aten::fancy' to ONNX is not supported")

    monkeypatch.setattr(onnx_prefix, "export", unsupported)
    report = _evaluate(run_dir)
    assert report["engine"].startswith("torch: the model does not export to ONNX (Exporting the operator")
    assert report["accuracy"] == _evaluate(run_dir, engine="torch")["accuracy"]


def test_onnxruntime_at_bf16_is_a_one_line_error_naming_the_fix(run_dir):
    import tlf
    with pytest.raises(tlf.TlfError, match="--engine onnxruntime runs on the CPU at fp32, but this evaluation is on "
                                           "cpu at bf16") as info:
        _evaluate(run_dir, engine="onnxruntime", precision="bf16")
    assert "--precision fp32" in info.value.hint
    assert _evaluate(run_dir, precision="bf16")["engine"] == "torch, on cpu at bf16"


def test_an_unknown_engine_is_a_tlf_error_naming_the_choices(run_dir):
    import tlf
    with pytest.raises(tlf.TlfError, match="invalid engine 'tensorrt'"):
        _evaluate(run_dir, engine="tensorrt")


def test_the_command_offers_the_engines_the_module_has():
    from tlf.commands.evaluate import ENGINES
    from tlf.engine.eval_engine import ENGINES as MODULE_ENGINES
    assert ENGINES == MODULE_ENGINES
