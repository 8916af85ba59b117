"""Shared by the export/runtime/predict tests: tiny models, structured images, one export."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

CLASSES = ["circle", "square", "stripes"]


def shapes_image(rng: np.random.Generator, label: int, height: int, width: int) -> np.ndarray:
    """An HxWx3 uint8 picture: a coloured circle, square or stripes on a noisy background."""
    img = rng.integers(0, 60, (height, width, 3)).astype(np.uint8) + rng.integers(0, 120, 3).astype(np.uint8)
    yy, xx = np.mgrid[:height, :width]
    cy, cx, r = height / 2 + rng.normal(0, 3), width / 2 + rng.normal(0, 3), min(height, width) / 3
    if label == 0:
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2
    elif label == 1:
        mask = (abs(yy - cy) < r) & (abs(xx - cx) < r)
    else:
        mask = (xx // max(2, width // 8)) % 2 == 0
    img[mask] = rng.integers(150, 256, 3)
    return img


def shapes(n: int, size: int, seed: int = 0, square: bool = True) -> tuple[list[np.ndarray], np.ndarray]:
    """``n`` labelled images (square ``size`` crops, or assorted shapes around it)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(CLASSES)
    images = [shapes_image(rng, int(y), size if square else int(rng.integers(size, 3 * size)),
                           size if square else int(rng.integers(size, 3 * size))) for y in labels]
    return images, labels


def chw(images: list[np.ndarray]) -> np.ndarray:
    return np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2))


def eval_pipeline(model, size: int):
    """tlf's own evaluation transform (tlf.augment) for ``model`` at ``size`` px."""
    from tlf.augment import AugmentRequest, build_pipeline
    meta = model.backbone.meta
    return build_pipeline("none", AugmentRequest(image_size=size, mean=meta.mean, std=meta.std, interpolation=meta.interpolation,
                                                 crop_pct=meta.crop_pct, num_classes=len(CLASSES)))


def metadata_for(model, size: int) -> dict:
    meta = model.backbone.meta
    return {"classes": CLASSES, "resize": eval_pipeline(model, size).resize_short, "mean": list(meta.mean), "std": list(meta.std),
            "interpolation": meta.interpolation, "downscale": "area", "backbone": meta.name, "policy": "transfer",
            "dataset": "shapes", "val_accuracy": 0.5}


def build(backbone: str, seed: int = 0):
    import torch

    from tlf.models import build_model
    torch.manual_seed(seed)
    return build_model(backbone, len(CLASSES), pretrained=False).eval()


def export_small(tmp: Path, backbone: str = "resnet18", size: int = 32, **kwargs):
    """(model, report) of a fresh ``backbone`` exported at ``size`` px."""
    from tlf.export import export_onnx
    model = build(backbone)
    images, _ = shapes(12, size, seed=1)
    report = export_onnx(model, tmp / f"{backbone}.onnx", image_size=size, metadata=metadata_for(model, size),
                         sample_images=chw(images), **kwargs)
    return model, report


def make_run(tmp: Path, backbone: str = "resnet18", size: int = 32, dataset: str = "synthetic:train=6,val=4") -> Path:
    """A run directory as ``tlf train`` leaves it (config.yaml, best.pt, summary.json), untrained weights."""
    import json

    import torch
    import yaml

    from tlf.config import RunConfig
    from tlf.data.run_data import load_splits
    from tlf.models import build_model

    config = RunConfig(dataset=dataset, backbone=backbone, policy="scratch", image_size=size, epochs=1, lr=0.01)
    splits = load_splits(config)
    classes = splits.classes
    torch.manual_seed(0)
    model = build_model(backbone, len(classes), pretrained=False, image_size=size).eval()
    fit_head(model, splits, size)
    run = tmp / f"run-{backbone}"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    (run / "classes.json").write_text(json.dumps(classes))
    (run / "summary.json").write_text(json.dumps({"policy": "scratch", "best_val_accuracy": 0.25}))
    torch.save({"model": model.state_dict(), "classes": classes, "epoch": 1, "config": config.to_dict(),
                "best_acc": 0.25}, run / "best.pt")
    return run


def fit_head(model, splits, size: int) -> None:
    """Nearest-class-mean head on the (random) backbone's features, so predictions are decisive."""
    import torch

    from tlf.export import normalize
    linear = [m for m in model.head.modules() if isinstance(m, torch.nn.Linear)][-1]
    pipeline = eval_pipeline(model, size)
    images = chw([pipeline.eval(splits.train.load(i)) for i in range(len(splits.train))])
    features = []
    hook = linear.register_forward_hook(lambda mod, args, out: features.append(args[0]))
    meta = model.backbone.meta
    with torch.inference_mode():
        model(torch.from_numpy(normalize(images, meta.mean, meta.std)))
    hook.remove()
    f = torch.nn.functional.normalize(features[0], dim=1)
    labels = torch.from_numpy(splits.train.labels)
    means = torch.stack([f[labels == c].mean(0) for c in range(len(splits.classes))])
    with torch.no_grad():
        linear.weight.copy_(20 * means / features[0].norm(dim=1).mean())
        linear.bias.copy_(-10 * (means ** 2).sum(1))
