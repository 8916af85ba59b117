"""CPU training and inference speed by memory format and precision, per backbone.

    python benchmarks/cpu_precision.py --backbones efficientnet_lite0,resnet50,vgg16 --batch-size 16

For each backbone (tlf's classifier, random weights, 5 classes, 224 px) and each of
NCHW / channels_last x fp32 / bf16 autocast, the median images/s over ``--reps`` timed
calls of: a forward pass in inference mode (what the feature cache and evaluation run)
and a training step (forward, backward, AdamW). Combinations are interleaved rep by rep,
so load from other processes hits them alike. Prints a markdown table and whether this
CPU has native bf16 (AMX or AVX512-BF16); without it, bf16 is emulated and slow.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch import nn

VARIANTS = [("NCHW", "fp32"), ("NCHW", "bf16"), ("channels_last", "fp32"), ("channels_last", "bf16")]


def _step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer, bf16: bool, train: bool):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        if not train:
            with torch.inference_mode():
                return model(x)
        loss = nn.functional.cross_entropy(model(x).float(), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def measure(backbone: str, batch: int, size: int, reps: int) -> dict[str, dict[str, float]]:
    """``{"forward"|"train": {"NCHW fp32": img/s, ...}}`` for ``backbone``."""
    from tlf.models import build_model
    torch.manual_seed(0)
    model = build_model(backbone, 5, pretrained=False, image_size=size)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 5, (batch,))
    times: dict[tuple[str, str, str], list[float]] = {}
    for rep in range(reps + 1):  # the first round warms up oneDNN's kernels
        for mode in ("forward", "train"):
            model.train(mode == "train")
            for layout, precision in VARIANTS:
                fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
                model.to(memory_format=fmt)
                xx = x.contiguous(memory_format=fmt)
                start = time.perf_counter()
                _step(model, xx, y, opt, precision == "bf16", mode == "train")
                if rep:
                    times.setdefault((mode, layout, precision), []).append(time.perf_counter() - start)
    result: dict[str, dict[str, float]] = {}
    for (mode, layout, precision), seconds in times.items():
        result.setdefault(mode, {})[f"{layout} {precision}"] = round(batch / statistics.median(seconds), 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", default="efficientnet_lite0,resnet50,vgg16,convnext_tiny,mobilenet_v3_large")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args()
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # private torch.cpu helpers
    native = any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    results = {name: measure(name, args.batch_size, args.image_size, args.reps) for name in args.backbones.split(",")}
    if args.json:
        print(json.dumps({"native_bf16": native, "threads": torch.get_num_threads(), "results": results}, indent=2))
        return
    print(f"native bf16: {native}; {torch.get_num_threads()} threads; batch {args.batch_size}, "
          f"{args.image_size} px; images/s (x NCHW fp32)\n")
    columns = [f"{layout} {precision}" for layout, precision in VARIANTS]
    print("| backbone | pass | " + " | ".join(columns) + " |")
    print("| --- | --- |" + " ---: |" * len(columns))
    for name, modes in results.items():
        for mode, rates in modes.items():
            base = rates["NCHW fp32"]
            cells = [f"{rates[c]:.1f} ({rates[c] / base:.2f}x)" for c in columns]
            print(f"| {name} | {mode} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
