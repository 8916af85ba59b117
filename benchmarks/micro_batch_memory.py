"""The micro-batch probe's estimate of a training step's memory against the peak resident
memory of real steps (tlf.engine.micro_batch).

    python benchmarks/micro_batch_memory.py --policy init --batch 64 --micro 8

Prints the probe's fixed and per-image bytes for EfficientNet-Lite0 (random weights) at
224 px, then runs 2 optimizer steps (AdamW) of ``--batch`` images in a fresh process, once as
one batch and once as ``--micro`` images x accumulation, and prints each one's peak resident
memory and the per-image growth it implies.
"""
from __future__ import annotations

import argparse
import subprocess
import sys

SETUP = """
import resource, sys, torch
from tlf.heap import keep_freed_memory
from tlf.models import build_model
from tlf.policies import build_policy
keep_freed_memory()
model = build_model("efficientnet_lite0", 5, pretrained=False, image_size=224)
build_policy(sys.argv[1], False).apply(model)
model.to(memory_format=torch.channels_last)
"""
PROBE = SETUP + """
from tlf.engine.micro_batch import step_bytes
fixed, per_image = step_bytes(model, 224, torch.device("cpu"), True)
print(f"probe: fixed {fixed / 2**20:.0f} MiB, {per_image / 2**20:.1f} MiB an image")
"""
STEPS = SETUP + """
micro, accumulate = int(sys.argv[2]), int(sys.argv[3])
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], 1e-3)
model.train()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for _ in range(2):
    for _ in range(accumulate):
        x = torch.randn(micro, 3, 224, 224).to(memory_format=torch.channels_last)
        loss = torch.nn.functional.cross_entropy(model(x), torch.zeros(micro, dtype=torch.long)) / accumulate
        loss.backward()
    optimizer.step()
    optimizer.zero_grad()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{micro} x {accumulate}: peak RSS {peak / 2**20:.2f} GiB, {(peak - before) / 2**10 / micro:.0f} MiB an image "
      f"over the {before / 2**20:.2f} GiB before training")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="init")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--micro", type=int, default=8)
    args = parser.parse_args()
    subprocess.run([sys.executable, "-c", PROBE, args.policy], check=True)
    for micro in (args.batch, args.micro):
        subprocess.run([sys.executable, "-c", STEPS, args.policy, str(micro), str(args.batch // micro)], check=True)


if __name__ == "__main__":
    main()
