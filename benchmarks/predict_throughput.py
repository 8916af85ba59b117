"""``tlf predict``'s path end to end (decode, resize, batch, run) on the CPU, and the runtime's
resize against ``cv2.resize``, each side by side with its baselines in one process.

    python benchmarks/predict_throughput.py ../shared/data/flower_photos/val

- **tlf.runtime now**: ``OnnxClassifier.predict`` (decode pool of one thread per CPU, ``cv2.resize``);
- **serial decode**: the same with ``threads=1``;
- **before**: ``tlf.runtime`` as of ``--baseline-rev`` (serial decode, its numpy port of
  OpenCV's resize), loaded from git history, so today's code carries no copy of it;
- **torch eager**: ``read_rgb`` + tlf's albumentations eval transform + the PyTorch model.

Model: EfficientNet-Lite0 with random weights (speed does not depend on them), exported by
``tlf.export.export_onnx``; batch 1 and 32. Rounds are interleaved so load from other
processes hits every path alike; the ratios are the figures to read. Then
``tlf.runtime.resize`` vs ``cv2.resize`` vs the old port on a 4000x3000 photo (area
downscale to 256) and a 213x160 one (bicubic enlarge to 256).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def runtime_at(rev: str):
    """``tlf.runtime`` as it was at git revision ``rev``, imported as ``tlf._runtime_<rev>``."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:framework/runtime.py"], check=True,
                            capture_output=True, text=True).stdout
    name = f"tlf._runtime_{rev}"
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader=None))
    module.__package__ = "tlf"
    sys.modules[name] = module
    exec(compile(source, f"{rev}:framework/runtime.py", "exec"), module.__dict__)
    return module


def interleaved(fns: dict, rounds: int) -> dict[str, float]:
    """Median seconds per call of each function, timed in interleaved rounds after one warm-up."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", type=Path, help="Folder of images (searched recursively).")
    parser.add_argument("--baseline-rev", default="3d464db", help="git revision of the runtime to compare with.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="Use only the first N images.")
    args = parser.parse_args()
    from tlf.heap import keep_freed_memory
    keep_freed_memory()  # as every tlf command does: torch's pass without glibc's page faults

    from tlf.augment import AugmentRequest, build_pipeline
    from tlf.data.model_input import to_model_input
    from tlf.data.reading import is_image_file, read_rgb
    from tlf.export import export_onnx
    from tlf.models import build_model
    from tlf.runtime import OnnxClassifier, resize

    paths = sorted(str(p) for p in args.images.rglob("*") if p.is_file() and is_image_file(p))[:args.limit]
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", 5, pretrained=False).eval()
    meta = model.backbone.meta
    size = meta.image_size
    pipeline = build_pipeline("none", AugmentRequest(image_size=size, mean=meta.mean, std=meta.std,
                                                     interpolation=meta.interpolation, crop_pct=meta.crop_pct,
                                                     num_classes=5))
    sample = np.stack([pipeline.eval(read_rgb(p)) for p in paths[:8]]).transpose(0, 3, 1, 2).copy()
    old = runtime_at(args.baseline_rev)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lite0.onnx"
        export_onnx(model, path, image_size=size, exporter="torchscript", sample_images=sample,
                    metadata={"classes": [str(i) for i in range(5)], "resize": pipeline.resize_short,
                              "mean": list(meta.mean), "std": list(meta.std), "interpolation": meta.interpolation,
                              "downscale": "area"})
        now, before = OnnxClassifier(path), old.Classifier(path)

        def torch_eager(batch: int) -> None:
            for i in range(0, len(paths), batch):
                x = torch.from_numpy(np.stack([pipeline.eval(read_rgb(p)) for p in paths[i:i + batch]]))
                with torch.inference_mode():
                    model(to_model_input(x.permute(0, 3, 1, 2), meta.mean, meta.std, "cpu"))

        print(f"{len(paths)} images from {args.images}, efficientnet_lite0 {size} px, "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n")
        print("| path | batch | images/s | vs before |")
        print("|---|---:|---:|---:|")
        for batch in (1, 32):
            fns = {"tlf.runtime now (decode pool + cv2.resize)": lambda b=batch: now.predict(paths, batch_size=b),
                   "tlf.runtime now, serial decode": lambda b=batch: now.predict(paths, batch_size=b, threads=1),
                   f"tlf.runtime before ({args.baseline_rev}: serial, numpy resize)":
                       lambda b=batch: before.predict(paths, batch_size=b),
                   "torch eager (albumentations eval transform)": lambda b=batch: torch_eager(b)}
            median = interleaved(fns, args.rounds)
            base = median[next(n for n in fns if n.startswith("tlf.runtime before"))]
            for name, seconds in median.items():
                print(f"| {name} | {batch} | {len(paths) / seconds:.1f} | {base / seconds:.2f}x |", flush=True)

    rng = np.random.default_rng(0)
    cases = [("4000x3000 -> 256 short side, area", rng.integers(0, 256, (3000, 4000, 3), dtype=np.uint8), 256, 341, "area"),
             ("213x160 -> 256 short side, bicubic", rng.integers(0, 256, (160, 213, 3), dtype=np.uint8), 256, 341, "bicubic")]
    flags = {"area": cv2.INTER_AREA, "bicubic": cv2.INTER_CUBIC}
    print("\n| resize | cv2.resize ms | tlf.runtime.resize ms | ratio | before (numpy port) ms | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, image, h, w, method in cases:
        repeat = 5 if image.size > 1e6 else 200
        fns = {"cv2": lambda: [cv2.resize(image, (w, h), interpolation=flags[method]) for _ in range(repeat)],
               "now": lambda: [resize(image, h, w, method) for _ in range(repeat)],
               "before": lambda: [old.resize(image, h, w, method) for _ in range(repeat)]}
        ms = {k: 1000 * v / repeat for k, v in interleaved(fns, max(args.rounds, 5)).items()}
        print(f"| {label} | {ms['cv2']:.3f} | {ms['now']:.3f} | {ms['now'] / ms['cv2']:.2f}x | "
              f"{ms['before']:.3f} | {ms['before'] / ms['cv2']:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
