"""The frozen pass of foundation backbones (ViT-Ti/16, ViT-S/16, ViT-S/14) beside
EfficientNet-Lite0 on the CPU: torch fp32 and onnxruntime fp32 (tlf's cached, parity-gated
export of the prefix), random weights (speed does not depend on them), 224 px.

    python benchmarks/foundation_pass.py                      # the four models, batch 8, 3 rounds
    python benchmarks/foundation_pass.py --models efficientnet_lite0 timm:vit_base_patch16_224 --rounds 2

The prefix is what a ``transfer`` run caches: every stage plus the head's pooling. Every
(model, engine) pair runs once per round, all pairs interleaved, so load from other processes
hits them alike: read the ratios against Lite0 (same engine) and against torch. GFLOPs are
torch's ``FlopCounterMode`` count of one image through the prefix (a multiply-add = 2 FLOPs).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from frozen_pass import engines  # noqa: E402  (tlf's engines for one backbone's prefix)

MODELS = ["efficientnet_lite0", "timm:vit_tiny_patch16_224", "timm:vit_small_patch16_224",
          "timm:vit_small_patch14_dinov2"]


def gflops(backbone: str, size: int) -> float:
    """GFLOPs of one ``size`` px image through ``backbone``'s frozen prefix (stages + pooling)."""
    from torch.utils.flop_counter import FlopCounterMode

    from tlf.models import build_model
    model = build_model(backbone, 5, pretrained=False, image_size=size).eval()
    prefix = nn.Sequential(*model.backbone.stages.children(), model.head.pool)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        prefix(torch.zeros(1, 3, size, size))
    return counter.get_total_flops() / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch and onnxruntime threads.")
    parser.add_argument("--rounds", type=int, default=3, help="Interleaved timed rounds (after one warm-up).")
    args = parser.parse_args()
    from tlf.heap import keep_freed_memory
    keep_freed_memory()  # as every tlf command does
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TLF_HOME", tempfile.mkdtemp(prefix="tlf-bench-"))
    load_before = os.getloadavg()[0]
    images = torch.randint(0, 256, (args.batch, args.size, args.size, 3), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0)).permute(0, 3, 1, 2)
    runs, flops = {}, {}
    for backbone in args.models:
        flops[backbone] = gflops(backbone, args.size)
        for name, fn in engines(backbone, args.size, [args.threads], ["all"], ["sequential"], ["onnxruntime"],
                                images).items():
            runs[(backbone, "torch" if name.startswith("torch") else "onnxruntime")] = fn
    seconds: dict[tuple[str, str], list[float]] = {key: [] for key in runs}
    for fn in runs.values():
        fn(images)  # warm-up
    for _ in range(args.rounds):
        for key, fn in runs.items():
            t0 = time.perf_counter()
            fn(images)
            seconds[key].append(time.perf_counter() - t0)
    speed = {key: args.batch / statistics.median(s) for key, s in seconds.items()}
    base = args.models[0]
    print(f"| model ({args.size} px) | GFLOPs / image | engine | median img/s | vs {base} | onnxruntime vs torch |")
    print("|---|---:|---|---:|---:|---:|")
    for (backbone, engine), rate in speed.items():
        versus = speed.get((base, engine))
        ort_gain = speed.get((backbone, "onnxruntime"), float("nan")) / speed[(backbone, "torch")]
        print(f"| {backbone} | {flops[backbone]:.2f} | {engine} | {rate:.1f} | "
              f"{rate / versus if versus else float('nan'):.2f}x | {ort_gain:.2f}x |")
    print(f"\ntorch {torch.__version__}, {args.threads} threads, batch {args.batch}, {args.rounds} rounds, "
          f"{os.cpu_count()} CPUs; 1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")


if __name__ == "__main__":
    main()
