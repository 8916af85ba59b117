"""How far int8 frozen features are from fp32 on real images, per quantization variant, and what
that does to a linear head: pretrained EfficientNet-Lite0's frozen prefix (all stages + pooling)
exported by tlf (``tlf.features.onnx_prefix``) and quantized with onnxruntime.

    python benchmarks/int8_features.py --data ../shared/data/flower_photos

Variants: tlf's static QDQ (``write_qdq``: int8 weights per channel and activations, MinMax, as
``--frozen-engine onnxruntime-int8``), the same run without graph optimisation (fake
quantization in fp32: separates quantization error from int8 kernels), the same leaving the first
``--fp32-convs`` convolutions in fp32, and dynamic quantization. Images: the first
``--per-class`` training and ``--val-per-class`` validation images of each class, short side
resized to 256 (bicubic) and centre-cropped to 224; calibration on every second training image.
The probe is a linear layer trained on each variant's training features (300 full-batch Adam
steps, same seed), scored on its validation features.
"""
from __future__ import annotations

import argparse
import glob
import os
import tempfile
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402


def load(files: list[str]) -> np.ndarray:
    out = []
    for f in files:
        im = cv2.cvtColor(cv2.imread(f), cv2.COLOR_BGR2RGB)
        h, w = im.shape[:2]
        s = 256 / min(h, w)
        im = cv2.resize(im, (round(w * s), round(h * s)), interpolation=cv2.INTER_CUBIC)
        h, w = im.shape[:2]
        y, x = (h - 224) // 2, (w - 224) // 2
        out.append(im[y:y + 224, x:x + 224])
    return np.stack(out)


def split(root: str, name: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    classes = sorted(os.listdir(Path(root) / "train"))
    files, labels = [], []
    for c, cls in enumerate(classes):
        found = sorted(glob.glob(f"{root}/{name}/{cls}/*.jpg"))[:k]
        files += found
        labels += [c] * len(found)
    return load(files), np.array(labels)


def probe(train: np.ndarray, ytrain: np.ndarray, val: np.ndarray, yval: np.ndarray) -> tuple[float, np.ndarray]:
    torch.manual_seed(0)
    linear = nn.Linear(train.shape[1], int(ytrain.max()) + 1)
    opt = torch.optim.Adam(linear.parameters(), 1e-2)
    x, y = torch.from_numpy(train), torch.from_numpy(ytrain)
    for _ in range(300):
        opt.zero_grad()
        nn.functional.cross_entropy(linear(x), y).backward()
        opt.step()
    with torch.no_grad():
        predicted = linear(torch.from_numpy(val)).argmax(1).numpy()
    return float((predicted == yval).mean()), predicted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/flower_photos")
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--val-per-class", type=int, default=20)
    parser.add_argument("--fp32-convs", type=int, default=10)
    args = parser.parse_args()
    os.environ.setdefault("TLF_HOME", tempfile.mkdtemp(prefix="tlf-int8-"))
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic, quantize_static, QuantFormat, CalibrationMethod
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from tlf.data.model_input import to_model_input
    from tlf.features.onnx_prefix import onnx_prefix
    from tlf.export.quantize import ImageReader, write_qdq
    from tlf.models import build_model

    model = build_model("efficientnet_lite0", 5, pretrained=True, image_size=224).eval()
    meta = model.backbone.meta
    prefix = nn.Sequential(*model.backbone.stages.children(), model.head.pool).eval()
    train, ytrain = split(args.data, "train", args.per_class)
    val, yval = split(args.data, "val", args.val_per_class)
    sample = torch.from_numpy(train[:8]).permute(0, 3, 1, 2)
    with torch.inference_mode():
        reference = prefix(to_model_input(sample, meta.mean, meta.std, torch.device("cpu"))).float()
    engine, note = onnx_prefix(prefix, sample, reference, meta.mean, meta.std, "int8-bench", torch.get_num_threads())
    assert engine is not None, note
    src, name, calibration = engine.path, engine.input_name, train[::2]
    work = Path(tempfile.mkdtemp(prefix="tlf-int8-variants-"))

    def features(path: Path, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL) -> list[np.ndarray]:
        options = ort.SessionOptions()
        options.graph_optimization_level = level
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return [np.concatenate([session.run(None, {name: a[i:i + 25]})[0].reshape(len(a[i:i + 25]), -1)
                                for i in range(0, len(a), 25)]) for a in (train, val)]

    variants = {"fp32": src, "static QDQ (tlf's)": work / "static.onnx"}
    write_qdq(src, variants["static QDQ (tlf's)"], name, calibration)
    convs = [n.name for n in onnx.load(str(src)).graph.node if n.op_type == "Conv"]
    quant_pre_process(str(src), str(work / "pre.onnx"), skip_symbolic_shape=False)
    variants[f"static QDQ, first {args.fp32_convs} of {len(convs)} convs fp32"] = work / "partial.onnx"
    quantize_static(str(work / "pre.onnx"), str(work / "partial.onnx"), ImageReader(name, calibration),
                    quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    per_channel=True, calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=convs[:args.fp32_convs])
    variants["dynamic"] = work / "dynamic.onnx"
    quantize_dynamic(str(work / "pre.onnx"), str(work / "dynamic.onnx"), weight_type=QuantType.QInt8, per_channel=True)
    base = features(src)
    base_acc, base_pred = probe(base[0], ytrain, base[1], yval)
    print(f"{len(train)} training / {len(val)} validation images; {note}")
    print("| features | relative L2 error (val) | probe accuracy | agreement with fp32 |")
    print("|---|---:|---:|---:|")
    runs = [(label, path, ort.GraphOptimizationLevel.ORT_ENABLE_ALL) for label, path in variants.items()]
    runs.insert(2, ("static QDQ (tlf's), no graph optimisation", variants["static QDQ (tlf's)"],
                    ort.GraphOptimizationLevel.ORT_DISABLE_ALL))
    for label, path, level in runs:
        got = base if label == "fp32" else features(path, level)
        error = float(np.linalg.norm(got[1] - base[1]) / np.linalg.norm(base[1]))
        acc, pred = (base_acc, base_pred) if label == "fp32" else probe(got[0], ytrain, got[1], yval)
        print(f"| {label} | {error:.3f} | {acc:.3f} | {float((pred == base_pred).mean()):.3f} |", flush=True)


if __name__ == "__main__":
    main()
