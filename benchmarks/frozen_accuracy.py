"""Accuracy change of the frozen pass's numerics on real data: the same ``tlf train --policy
transfer`` (same seed, same head training) with fp32 features (onnxruntime, the default engine on
the CPU), int8 features (``--frozen-engine onnxruntime-int8``) and bf16 autocast features.

    python benchmarks/frozen_accuracy.py --data ../shared/data/flower_photos
    python benchmarks/frozen_accuracy.py --data ../shared/data/flower_photos --engines onnxruntime-int8 --epochs 3

For each engine it prints the run's validation accuracy (on that engine's features, as the run
scores itself) and ``tlf evaluate --precision fp32``'s (the trained head on torch's fp32 backbone,
as the exported model computes it).

bf16: on a CPU without AVX-512 BF16 or AMX, torch's bf16 autocast is emulated and about 30x
slower than fp32 (a frozen pass over flowers would take hours), so by default ("bf16") the run
uses an emulation in fp32 arithmetic that rounds to bf16 where autocast stores bf16 (every
convolution's and linear layer's inputs, weights and outputs, and every other layer's output).
The script first checks that emulation against real autocast on ``--bf16-check`` images and
prints both errors; "bf16-autocast" runs real autocast instead (use it on CPUs with AMX).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402


def bf16(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.bfloat16).float() if t.is_floating_point() else t


class Bf16Emulated(nn.Module):
    """``prefix`` (a copy) computing in fp32 but rounding to bf16 where CPU autocast stores bf16."""

    def __init__(self, prefix: nn.Module) -> None:
        super().__init__()
        import copy
        self.prefix = copy.deepcopy(prefix).eval()
        for module in self.prefix.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                with torch.no_grad():
                    for p in module.parameters(recurse=False):
                        p.copy_(bf16(p))
                module.register_forward_pre_hook(lambda m, args: tuple(bf16(a) for a in args))
            if not list(module.children()):
                module.register_forward_hook(lambda m, args, out: bf16(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bf16(self.prefix(x))


def check_emulation(n: int) -> str:
    """Emulated and real bf16 autocast against fp32 on ``n`` random images, pretrained Lite0."""
    from tlf.models import build_model
    model = build_model("efficientnet_lite0", 5, pretrained=True, image_size=224).eval()
    prefix = nn.Sequential(*model.backbone.stages.children(), model.head.pool).eval()
    x = torch.rand(n, 3, 224, 224, generator=torch.Generator().manual_seed(0)) * 4 - 2
    with torch.inference_mode():
        fp32 = prefix(x).float()
        emulated = Bf16Emulated(prefix)(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            real = prefix(x).float()

    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).norm() / b.norm())

    return (f"bf16 check on {n} images: real autocast vs fp32 {rel(real, fp32):.4f}, emulated vs fp32 "
            f"{rel(emulated, fp32):.4f}, emulated vs real {rel(emulated, real):.4f} (relative L2 error)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/flower_photos")
    parser.add_argument("--dataset", default="flowers")
    parser.add_argument("--engines", nargs="+", default=["onnxruntime", "onnxruntime-int8", "bf16"],
                        choices=["onnxruntime", "onnxruntime-int8", "torch", "bf16", "bf16-autocast"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=None, help="Default: the backbone's (224 for Lite0).")
    parser.add_argument("--bf16-check", type=int, default=4, help="Images for the emulation check (0: skip).")
    parser.add_argument("--out", default=None, help="Where the runs go (default: a temporary folder).")
    args = parser.parse_args()
    os.environ.setdefault("TLF_HOME", tempfile.mkdtemp(prefix="tlf-acc-"))
    import tlf
    import tlf.engine.trainer as trainer
    from tlf.features.cache import TorchPrefix

    out = args.out or tempfile.mkdtemp(prefix="tlf-acc-runs-")
    if args.bf16_check and "bf16" in args.engines:
        print(check_emulation(args.bf16_check), flush=True)
    real_choose = trainer.choose_engine
    print("| features | engine | val accuracy (run) | tlf evaluate --precision fp32 | frozen pass + run s |")
    print("|---|---|---:|---:|---:|")
    for engine in args.engines:
        def choose(setting, prefix, to_input, amp, device, *rest, engine=engine, **kw):
            if engine.startswith("bf16"):
                module = prefix if engine == "bf16-autocast" else Bf16Emulated(prefix)
                torch_engine = TorchPrefix(module, to_input, torch.bfloat16 if engine == "bf16-autocast" else None,
                                           device)
                torch_engine.name = engine
                return torch_engine, f"{engine} (benchmark)"
            return real_choose(setting, prefix, to_input, amp, device, *rest, **kw)
        trainer.choose_engine = choose
        t0 = time.perf_counter()
        run = tlf.train(dataset=args.dataset, data_dir=args.data or None, policy="transfer", epochs=args.epochs,
                        **({"image_size": args.image_size} if args.image_size else {}),
                        frozen_engine="torch" if engine.startswith("bf16") else engine, out=out, name=engine,
                        quiet=True)
        seconds = time.perf_counter() - t0
        trainer.choose_engine = real_choose
        summary = run.summary
        evaluated = tlf.evaluate(run.directory, precision="fp32", write=False)
        print(f"| {engine} | {summary['frozen_engine']} | {summary['best_val_accuracy']:.4f} | "
              f"{evaluated['accuracy']:.4f} | {seconds:.0f} |", flush=True)
    print(f"\n{args.epochs} epochs, transfer, defaults otherwise; 1-min load average {os.getloadavg()[0]:.1f}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
