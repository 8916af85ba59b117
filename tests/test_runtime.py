"""tlf.runtime: torch-free, preprocessing from metadata, same answers as PyTorch, clear errors."""
from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from onnx_helpers import CLASSES, chw, eval_pipeline, export_small, shapes
from tlf.errors import TlfError
from tlf.export import normalize
from tlf.preprocessing import short_side_shape as resized_shape
from tlf.runtime import OnnxClassifier, encode_metadata, resize, softmax

SIZE = 32


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(model, path) of a resnet18 exported at 32 px."""
    model, report = export_small(tmp_path_factory.mktemp("rt"), "resnet18", SIZE, exporter="torchscript")
    return model, report.path


def test_import_leaves_torch_out():
    code = ("import sys, tlf.runtime; bad = [m for m in ('torch', 'albumentations', 'onnx') if m in sys.modules];"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("interpolation,flag", [("bilinear", cv2.INTER_LINEAR), ("bicubic", cv2.INTER_CUBIC),
                                                ("nearest", cv2.INTER_NEAREST), ("area", cv2.INTER_AREA)])
def test_resize_is_cv2_resize(interpolation, flag):
    image = np.random.default_rng(0).integers(0, 256, (83, 127, 3), dtype=np.uint8)
    sizes = [(29, 44), (41, 63)] + ([] if interpolation == "area" else [(150, 230)])
    for height, width in sizes:
        want = cv2.resize(image, (width, height), interpolation=flag)
        got = resize(image, height, width, interpolation)
        assert np.array_equal(got, want)


def test_preprocessing_matches_the_eval_transform(exported):
    """Runtime vs tlf's (albumentations/cv2) eval transform on assorted image shapes, measured."""
    model, path = exported
    clf = OnnxClassifier(path)
    pipeline = eval_pipeline(model, SIZE)
    assert pipeline.resize_short == clf.preprocessing.resize
    images, _ = shapes(24, SIZE, seed=2, square=False)
    images.append(np.asarray(Image.fromarray(images[0]).resize((20, 24))))  # smaller than the crop: enlarged
    ours = np.stack([clf.preprocess(img) for img in images])
    theirs = normalize(chw([pipeline.eval(img) for img in images]), clf.preprocessing.mean, clf.preprocessing.std)
    grey_levels = np.abs(ours - theirs) * np.asarray(clf.preprocessing.std).reshape(3, 1, 1) / (1 / 255)
    assert grey_levels.max() <= 1e-3  # the same pixels: both resize with cv2
    p_ours, p_theirs = softmax(clf.logits(ours)), softmax(clf.logits(theirs))
    assert (p_ours.argmax(1) == p_theirs.argmax(1)).mean() == 1.0
    assert np.abs(p_ours - p_theirs).max() < 1e-3


def test_predictions_equal_pytorch(exported):
    model, path = exported
    clf = OnnxClassifier(path)
    images, _ = shapes(9, SIZE, seed=4, square=False)
    pipeline = eval_pipeline(model, SIZE)
    meta = model.backbone.meta
    with torch.inference_mode():
        logits = model(torch.from_numpy(normalize(chw([pipeline.eval(i) for i in images]), meta.mean, meta.std))).numpy()
    want = softmax(logits)
    got = clf.predict(images, top_k=3, batch_size=4)
    assert len(got) == 9
    for pred, p in zip(got, want):
        assert pred.indices == list(np.argsort(-p)[:3])
        assert pred.labels == [CLASSES[i] for i in pred.indices]
        assert np.allclose(pred.probabilities, np.sort(p)[::-1][:3], atol=1e-3)


def test_paths_pil_and_arrays_give_the_same_answer(exported, tmp_path):
    _, path = exported
    clf = OnnxClassifier(path)
    image = shapes(1, 50, seed=7, square=False)[0][0]
    Image.fromarray(image).save(tmp_path / "a.png")
    Image.fromarray(image).convert("RGBA").save(tmp_path / "b.png")
    variants = [image, Image.fromarray(image), tmp_path / "a.png", str(tmp_path / "b.png")]
    results = [clf.predict(v, top_k=2)[0] for v in variants]
    assert all(r == results[0] for r in results)
    gray = clf.predict(Image.fromarray(image).convert("L"))[0]
    assert len(gray.labels) == len(CLASSES)  # top_k is capped at the number of classes
    with pytest.raises(TlfError, match="HxWx3 uint8"):
        clf.predict(np.zeros((3, 32, 32), np.float32))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(TlfError, match="cannot read image"):
        clf.predict(tmp_path / "broken.jpg")


def test_corrupted_file_is_a_clear_error(exported, tmp_path):
    _, path = exported
    data = open(path, "rb").read()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 3])
    with pytest.raises(TlfError, match="not a loadable ONNX model"):
        OnnxClassifier(truncated)
    with pytest.raises(TlfError, match="not found"):
        OnnxClassifier(tmp_path / "nothing.onnx")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter's deprecation notice
def test_model_without_tlf_metadata_is_refused(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    torch.onnx.export(net, (torch.randn(1, 3, 16, 16),), str(tmp_path / "plain.onnx"), dynamo=False)
    with pytest.raises(TlfError, match="not a tlf export.*tlf.classes"):
        OnnxClassifier(tmp_path / "plain.onnx")


def test_wrong_input_rank_is_refused(tmp_path):
    x = onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", 3])
    y = onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", 3])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["input"], ["logits"])], "g", [x], [y])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    meta = {"classes": CLASSES, "resize": 36, "crop": SIZE, "mean": [0.5] * 3, "std": [0.5] * 3,
            "interpolation": "bilinear", "preprocessing_in_graph": False}
    onnx.helper.set_model_props(model, encode_metadata(meta))
    onnx.save(model, tmp_path / "rank2.onnx")
    with pytest.raises(TlfError, match="rank-2 input"):
        OnnxClassifier(tmp_path / "rank2.onnx")


def test_providers(exported):
    _, path = exported
    assert OnnxClassifier(path, threads=1).providers[-1] == "CPUExecutionProvider"
    with pytest.raises(TlfError, match="not available"):
        OnnxClassifier(path, providers=["NoSuchExecutionProvider"])


def test_resized_shape_rounds_like_albumentations():
    assert resized_shape(375, 500, 73) == (73, round(500 * 73 / 375))
    assert resized_shape(10, 1000, 3) == (3, 300)


def test_preprocessing_round_trips_and_reads_files_of_older_runs():
    from tlf.preprocessing import Preprocessing
    p = Preprocessing(image_size=32, resize=36, mean=(0.5,) * 3, std=(0.25,) * 3)
    assert Preprocessing.from_dict(p.to_dict()) == p
    older = {k: v for k, v in p.to_dict().items() if k != "image_size"} | {"size": 32}  # before the rename
    assert Preprocessing.from_dict(older) == p
    assert Preprocessing.from_metadata(p.to_metadata()) == p


def _with_metadata(path, tmp_path, **changes):
    """A copy of the model at ``path`` whose ``tlf.*`` metadata entries ``changes`` replace."""
    proto = onnx.load(str(path))
    props = {p.key: p.value for p in proto.metadata_props}
    props.update(encode_metadata(changes))
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    out = tmp_path / f"changed-{len(list(tmp_path.iterdir()))}.onnx"
    onnx.save(proto, str(out))
    return out


@pytest.mark.parametrize("changes, message", [
    ({"classes": CLASSES[:-1]}, f"gives {len(CLASSES)} scores per image but its metadata names {len(CLASSES) - 1} classes"),
    ({"classes": list(range(len(CLASSES)))}, "metadata 'tlf.classes' must be a list of class names (text), got list"),
    ({"classes": "abcd"}, "metadata 'tlf.classes' must be a list of class names (text), got str"),
    ({"classes": [CLASSES[0]] * len(CLASSES)}, "metadata 'tlf.classes' names a class twice"),
    ({"crop": SIZE + 8, "resize": SIZE + 12}, f"takes (3, {SIZE}, {SIZE}) images but its metadata crops (3, {SIZE + 8}, {SIZE + 8})"),
    ({"resize": 10**6}, "preprocessing asks for a 32 px crop of a 1000000 px short side; tlf handles at most 2048 and 8192"),
])
def test_metadata_that_disagrees_with_the_graph_is_refused_when_opened(exported, tmp_path, changes, message):
    with pytest.raises(TlfError) as error:
        OnnxClassifier(_with_metadata(exported[1], tmp_path, **changes))
    assert message in str(error.value)


def test_any_task_deploys_by_the_output_its_export_names(exported, tmp_path):
    """A third-party task's model reads by ``tlf.output`` (its task's activation); exports made
    before ``tlf.output`` read by their built-in task; an output the runtime cannot read is one error."""
    images = np.random.default_rng(0).integers(0, 256, (6, SIZE, SIZE, 3), dtype=np.uint8)
    thresholds = [0.3, 0.5, 0.7, 0.9][:len(CLASSES)]
    tags = OnnxClassifier(_with_metadata(exported[1], tmp_path, task="photo-tags", output="sigmoid", thresholds=thresholds))
    logits = tags.logits(np.stack([tags.preprocess(image) for image in images]))
    hot = 1.0 / (1.0 + np.exp(-logits)) >= np.array(thresholds)
    assert tags.task == "photo-tags" and tags.multi_label
    assert [set(p.labels) for p in tags.predict(list(images))] == [
        {c for c, on in zip(CLASSES, row) if on} for row in hot]
    older = OnnxClassifier(_with_metadata(exported[1], tmp_path, task="multi-label", output=None, thresholds=thresholds))
    assert older.multi_label and older.output == "sigmoid"
    single = OnnxClassifier(_with_metadata(exported[1], tmp_path, task="photo-rank", output="softmax"))
    assert not single.multi_label and single.predict(images[0], top_k=1)[0].labels[0] == CLASSES[int(logits[0].argmax())]
    for changes in ({"task": "photo-tags", "output": None}, {"output": "tanh"}):
        with pytest.raises(TlfError, match="outputs, which tlf.runtime does not know"):
            OnnxClassifier(_with_metadata(exported[1], tmp_path, **changes))
