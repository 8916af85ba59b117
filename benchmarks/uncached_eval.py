"""Uncached evaluation on the CPU: torch fp32 (what ``tlf evaluate`` and the validation pass of
``init``/``scratch`` runs do) against exporting the whole model and running it through onnxruntime,
export, session start and parity check included (weights change every epoch, so a validation pass
would pay them every time).

    python benchmarks/uncached_eval.py --images 736            # flowers' validation split
    python benchmarks/uncached_eval.py --models resnet50 --images 256

Random weights, random uint8 images at 224 px in batches of 64, as the eval loader collates them
(NHWC in memory). Prints seconds per stage, the ratio, and the number of images above which the
exported path wins.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["efficientnet_lite0"])
    parser.add_argument("--images", type=int, default=736)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch and onnxruntime threads.")
    args = parser.parse_args()
    from tlf.heap import keep_freed_memory
    keep_freed_memory()  # as every tlf command does: torch's pass without glibc's page faults
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TLF_HOME", tempfile.mkdtemp(prefix="tlf-eval-"))
    from tlf.data.model_input import to_model_input
    from tlf.features.onnx_prefix import OnnxPrefix, Uint8Prefix, export, open_session, parity
    from tlf.models import build_model

    cpu = torch.device("cpu")
    images = torch.randint(0, 256, (args.images, args.size, args.size, 3), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0)).permute(0, 3, 1, 2)
    batches = list(images.split(args.batch_size))
    print("| model | images | torch fp32 s | export s | session + parity s | onnxruntime pass s | "
          "onnxruntime total s | torch / total | break-even images |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.models:
        torch.manual_seed(0)
        model = build_model(name, 5, pretrained=False, image_size=args.size).eval().to(memory_format=torch.channels_last)
        meta = model.backbone.meta

        def torch_pass() -> float:
            t0 = time.perf_counter()
            with torch.inference_mode():
                for b in batches:
                    model(to_model_input(b, meta.mean, meta.std, cpu, channels_last=True))
            return time.perf_counter() - t0

        first = torch_pass()
        path = Path(os.environ["TLF_HOME"]) / f"{name}-whole.onnx"
        t0 = time.perf_counter()
        with torch.no_grad():
            export(Uint8Prefix(model, meta.mean, meta.std).eval(), images[:2].permute(0, 2, 3, 1).contiguous(),
                   path)
        exported = time.perf_counter() - t0
        t0 = time.perf_counter()
        engine = OnnxPrefix(open_session(path, args.threads), path)
        with torch.inference_mode():
            reference = model(to_model_input(images[:8], meta.mean, meta.std, cpu, channels_last=True)).float()
        ok, figures = parity(engine, reference, images[:8])
        checked = time.perf_counter() - t0
        t0 = time.perf_counter()
        for b in batches:
            engine(b)
        ort_pass = time.perf_counter() - t0
        second = torch_pass()
        torch_s = (first + second) / 2
        total = exported + checked + ort_pass
        per_image_gain = (torch_s - ort_pass) / args.images
        breakeven = f"{(exported + checked) / per_image_gain:.0f}" if per_image_gain > 0 else "never"
        print(f"| {name} | {args.images} | {torch_s:.1f} ({first:.1f}, {second:.1f}) | {exported:.1f} | {checked:.1f} | "
              f"{ort_pass:.1f} | {total:.1f} | {torch_s / total:.2f}x | {breakeven} |", flush=True)
        print(f"  parity: {'ok' if ok else 'FAILED'}, {figures}")
    print(f"\ntorch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs, "
          f"1-min load average {os.getloadavg()[0]:.1f} after")


if __name__ == "__main__":
    main()
