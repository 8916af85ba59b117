"""Test-time augmentation: flip and ten-crop averaging, in evaluate and baked into ONNX."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from onnx_helpers import make_run
from tlf.models.tta import CropFlipAverage, FlipAverage


class Pooled(nn.Module):
    """Global average pool then linear: the same output for an image and its mirror image."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 4)

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3)))


def test_flip_on_a_flip_symmetric_model_equals_no_tta():
    torch.manual_seed(0)
    model, x = Pooled(), torch.randn(5, 3, 8, 8)
    torch.testing.assert_close(FlipAverage(model)(x).softmax(1), model(x).softmax(1))


def test_flip_averages_the_two_views_probabilities():
    torch.manual_seed(0)
    model, x = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(4)), torch.randn(2, 3, 6, 6)
    model(x)
    want = (model(x).softmax(1) + model(x.flip(3)).softmax(1)) / 2
    torch.testing.assert_close(FlipAverage(model)(x).softmax(1), want)
    assert not torch.allclose(want, model(x).softmax(1))


def test_ten_crops_are_the_centre_and_corners_and_their_mirrors():
    seen = []

    class Record(nn.Module):
        def forward(self, v):
            seen.append(v.clone())
            return torch.zeros(v.shape[0], 2)

    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6)
    out = CropFlipAverage(Record(), 4)(x)
    torch.testing.assert_close(out.softmax(1), torch.full((2, 2), 0.5))
    want = [x[..., 1:5, 1:5], x[..., :4, :4], x[..., :4, 2:], x[..., 2:, :4], x[..., 2:, 2:]]
    want += [w.flip(3) for w in want]
    assert len(seen) == 10
    for w in want:
        assert any(torch.equal(w, s) for s in seen)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("tta"), "resnet18", 32)


@pytest.mark.parametrize("tta", ["flip", "flip+crops"])
def test_evaluate_with_tta(run_dir, tta):
    import tlf
    plain = tlf.evaluate(run_dir, workers=0, device="cpu", write=False)
    report = tlf.evaluate(run_dir, workers=0, device="cpu", write=False, tta=tta)
    assert report["tta"] == tta and plain["tta"] == "none"
    assert report["images"] == plain["images"]


def test_an_unknown_tta_is_a_tlf_error_naming_the_choices(run_dir):
    import tlf
    with pytest.raises(tlf.TlfError, match="invalid tta 'mirror'"):
        tlf.evaluate(run_dir, workers=0, device="cpu", write=False, tta="mirror")


def test_export_bakes_flip_into_the_graph(run_dir, tmp_path):
    from tlf.data.model_input import to_model_input
    from tlf.export.run import export_run
    from tlf.models.trained import load_run
    from tlf.runtime import OnnxClassifier

    report = export_run(run_dir, tmp_path / "flip.onnx", tta="flip", parity_images=4)
    assert report.parity.ok
    onnx_model = OnnxClassifier(report.path)
    assert onnx_model.metadata["tta"] == "flip"
    run = load_run(run_dir)
    images = np.random.default_rng(0).integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    x = to_model_input(torch.from_numpy(images), run.preprocessing.mean, run.preprocessing.std, torch.device("cpu"))
    with torch.inference_mode():
        want = FlipAverage(run.model)(x).softmax(1).numpy()
        plain = run.model(x).softmax(1).numpy()
    got = onnx_model.session.run(None, {onnx_model.session.get_inputs()[0].name: x.numpy()})[0]
    got = np.exp(got) / np.exp(got).sum(1, keepdims=True)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert not np.allclose(got, plain, atol=1e-5)
