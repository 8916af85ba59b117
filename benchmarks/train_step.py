"""Training-step speed on the CPU: the part of a run no frozen engine touches.

    python benchmarks/train_step.py                          # the whole Lite0 (init, scratch)
    python benchmarks/train_step.py --from-stage conv5       # conv5 + head on cached conv4 features (partial:conv5)

One AdamW step (forward, backward, update) of the trainable part of ``build_model(BACKBONE)``
at 224 px on random inputs: the whole network, or the stages from ``--from-stage`` on fed
with the features the earlier stages make (what ``partial:STAGE`` trains on the feature
cache). Variants, timed in interleaved rounds after a warm-up in one process, with
``tlf.heap.keep_freed_memory`` as every ``tlf`` command: ``channels_last`` (tlf's default),
``nchw``, and ``compile`` (``torch.compile`` of the channels_last module, its compile time
printed apart).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

VARIANTS = ("channels_last", "nchw", "compile")


def trainable(backbone: str, from_stage: str | None, size: int) -> tuple[nn.Module, tuple[int, ...]]:
    """The module a run trains and the shape of one of its inputs."""
    from tlf.models import build_model

    model = build_model(backbone, 5, pretrained=False, image_size=size)
    if from_stage is None:
        return model, (3, size, size)
    stages = dict(model.backbone.stages.named_children())
    names = list(stages)
    start = names.index(from_stage)
    with torch.no_grad():
        x = torch.zeros(1, 3, size, size)
        for name in names[:start]:
            x = stages[name](x)
    return nn.Sequential(*[stages[n] for n in names[start:]], model.head), tuple(x.shape[1:])


def step_fn(variant: str, args: argparse.Namespace) -> tuple:
    torch.manual_seed(0)
    module, shape = trainable(args.backbone, args.from_stage, args.size)
    module.train()
    x, y = torch.randn(args.batch_size, *shape), torch.randint(0, 5, (args.batch_size,))
    if variant != "nchw":
        module, x = module.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(module.parameters(), 1e-3)
    call = torch.compile(module) if variant == "compile" else module

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(call(x), y).backward()
        optimizer.step()
    return step, shape


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--from-stage", default=None, help="Train this stage on (default: the whole network).")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from tlf.heap import keep_freed_memory
    keep_freed_memory()

    steps = {}
    for variant in args.variants:
        start = time.perf_counter()
        steps[variant], shape = step_fn(variant, args)
        steps[variant]()  # warm-up (and the compile)
        print(f"{variant}: warm-up step {time.perf_counter() - start:.1f}s", flush=True)
    rates: dict[str, list[float]] = {v: [] for v in steps}
    for _ in range(args.rounds):
        for variant, step in steps.items():
            start = time.perf_counter()
            step()
            rates[variant].append(args.batch_size / (time.perf_counter() - start))
    part = f"{args.from_stage} on" if args.from_stage else "whole network"
    print(f"\n{args.backbone} {args.size} px, {part} (input {shape}), batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}\n")
    print("| variant | median img/s | vs channels_last | rounds |")
    print("|---|---:|---:|---|")
    base = statistics.median(rates.get("channels_last") or next(iter(rates.values())))
    for variant, values in rates.items():
        median = statistics.median(values)
        print(f"| {variant} | {median:.1f} | {median / base:.2f}x | {', '.join(f'{v:.1f}' for v in values)} |")


if __name__ == "__main__":
    main()
