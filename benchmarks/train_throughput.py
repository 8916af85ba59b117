"""Training throughput: the model-only ceiling, tlf end to end per policy, and the naive
torchvision pipeline, measured in one process on one machine.

    python benchmarks/train_throughput.py --data ../shared/data/flower_photos \
        --backbone efficientnet_lite0 --image-size 224 --epochs 2 --policies init,transfer

Prints a table and writes JSON (``--json-out``). Images/s of an epoch = training images
of that epoch / its wall time (validation excluded); the best epoch after the first
counts for the per-epoch figures (the first one warms caches and cudnn). Wall time is the
whole run's: for tlf ``summary.json``'s ``seconds`` (set-up, decode and feature caches,
training, validation), for the naive loop its training epochs. With the feature cache
(``transfer``), tlf's images/s is that of the head-only epochs, so "% of ceiling" is above
100%: compare wall times there.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]


def model_only(backbone: str, num_classes: int, size: int, batch: int, steps: int, device: torch.device,
               amp: torch.dtype | None, policy: str) -> float:
    """Images/s of forward+backward+step on random tensors already on the device (the ceiling)."""
    from tlf.models import build_model
    from tlf.policies import build_policy
    pol = build_policy(policy)
    model = build_model(backbone, num_classes, pretrained=False, image_size=size)
    pol.apply(model)
    model.to(device, memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    x = torch.randn(batch, 3, size, size, device=device).to(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (batch,), device=device)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            loss = loss_fn(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * batch / (time.perf_counter() - start)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def naive(data: Path, backbone: str, size: int, batch: int, epochs: int, workers: int, device: torch.device,
          amp: torch.dtype | None, policy: str) -> dict:
    """ImageFolder + PIL + torchvision transforms + DataLoader + a plain loop, same model."""
    from torchvision import datasets, transforms
    from tlf.models import BackboneRequest, build_model
    from tlf.policies import build_policy
    from tlf.registry import get_registry
    meta = get_registry().create("backbones", backbone, BackboneRequest(pretrained=False)).meta
    tf = transforms.Compose([transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
                             transforms.ToTensor(), transforms.Normalize(meta.mean, meta.std)])
    ds = datasets.ImageFolder(data / "train", tf)
    model = build_model(backbone, len(ds.classes), pretrained=False, image_size=size)
    build_policy(policy).apply(model)
    model.to(device).train()
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                                         pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    rates, start_all = [], time.perf_counter()
    for _ in range(epochs):
        start, seen = time.perf_counter(), 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                loss = loss_fn(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(y)
        sync(device)
        rates.append(seen / (time.perf_counter() - start))
    return {"images_per_second": max(rates[1:] or rates), "wall_seconds": time.perf_counter() - start_all}


def random_weights(backbone: str, directory: Path) -> Path:
    """A weights file of ``backbone``'s native torchvision/timm model, randomly initialised:
    throughput does not depend on the weights, and offline the pretrained ones of
    torchvision and timm cannot be downloaded."""
    if backbone.startswith("timm:"):
        import timm
        native = timm.create_model(backbone.removeprefix("timm:"))
    else:
        import torchvision
        native = torchvision.models.get_model(backbone)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{backbone.replace(':', '_')}-random.pth"
    torch.save(native.state_dict(), path)
    return path


def tlf_run(data: Path, backbone: str, size: int, batch: int, epochs: int, workers: int, device: str, policy: str,
            out: Path, augment: str | None, weights: Path | None) -> dict:
    import tlf
    run = tlf.train(dataset=f"folder:{data}", backbone=backbone, policy=policy, image_size=size, batch_size=batch,
                    epochs=epochs, workers=workers, device=device, augment=augment, out=str(out), quiet=True,
                    weights=str(weights) if weights else None)
    rows = [json.loads(line) for line in (run.directory / "metrics.jsonl").read_text().splitlines()]
    rates = [r["images_per_second"] for r in rows]
    return {"images_per_second": max(rates[1:] or rates), "wall_seconds": run.summary["seconds"],
            "best_val_accuracy": run.summary["best_val_accuracy"], "feature_cache": run.summary["feature_cache"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/flower_photos")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--policies", default="init,transfer")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1))
    parser.add_argument("--steps", type=int, default=20, help="steps of the model-only measurement")
    parser.add_argument("--augment", help="tlf's augmentation (default: the policy's; the naive loop always "
                                            "uses random resized crop + flip)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/tlf-bench"))
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--random-weights", action="store_true",
                        help="tlf trains from random weights (for backbones whose pretrained weights cannot be "
                             "downloaded here; accuracy is then meaningless, throughput is not)")
    args = parser.parse_args()
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = torch.bfloat16 if device.type == "cuda" else None
    results = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else f"cpu x{os.cpu_count()}",
               "backbone": args.backbone, "image_size": args.image_size, "batch_size": args.batch_size,
               "epochs": args.epochs, "workers": args.workers, "policies": {}}
    weights = random_weights(args.backbone, args.out) if args.random_weights else None
    for policy in args.policies.split(","):
        row = {"model_only": model_only(args.backbone, 5, args.image_size, args.batch_size, args.steps, device, amp, policy)}
        row["tlf"] = tlf_run(args.data, args.backbone, args.image_size, args.batch_size, args.epochs, args.workers,
                             device.type, policy, args.out, args.augment, weights)
        if not args.skip_naive:
            row["naive"] = naive(args.data, args.backbone, args.image_size, args.batch_size, args.epochs, args.workers,
                                 device, amp, policy)
        results["policies"][policy] = row
        tlf_rate = row["tlf"]["images_per_second"]
        line = (f"{policy:>14}: model-only {row['model_only']:8.1f} img/s | tlf {tlf_rate:8.1f} img/s "
                f"({tlf_rate / row['model_only']:.0%} of ceiling, {row['tlf']['wall_seconds']:.1f}s)")
        if "naive" in row:
            line += (f" | naive {row['naive']['images_per_second']:8.1f} img/s ({row['naive']['wall_seconds']:.1f}s)"
                     f" | tlf/naive x{tlf_rate / row['naive']['images_per_second']:.1f}"
                     f" wall x{row['naive']['wall_seconds'] / row['tlf']['wall_seconds']:.1f}")
        print(line, flush=True)
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2))
    json.dump(results, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
