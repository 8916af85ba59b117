"""CPU time in the kernel with glibc's default allocator against tlf.heap.keep_freed_memory.

    python benchmarks/heap.py --threads 2 --repeats 2

Runs the same work in fresh processes, alternating the two settings: 3 training steps and 3
forward passes of EfficientNet-Lite0 (random weights) at 224 px, batch 32, after one warm-up
step. Prints user and system CPU seconds, minor page faults, peak resident memory and wall
time of each process.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

WORK = """
import resource, sys, time, torch, timm
from tlf.heap import keep_freed_memory
print("keep_freed_memory" if keep_freed_memory() else "default", end=" ")
torch.set_num_threads(int(sys.argv[1]))
model = timm.create_model("tf_efficientnet_lite0", num_classes=5)
x, y = torch.randn(32, 3, 224, 224), torch.randint(0, 5, (32,))
optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
def step():
    loss = torch.nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
step()
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for _ in range(3):
    step()
model.eval()
with torch.no_grad():
    for _ in range(3):
        model(x)
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(f"user {r1.ru_utime - r0.ru_utime:.1f} s, system {r1.ru_stime - r0.ru_stime:.1f} s, "
      f"page faults {r1.ru_minflt - r0.ru_minflt}, peak RSS {r1.ru_maxrss // 1024} MiB, "
      f"wall {time.perf_counter() - t0:.1f} s")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    for _ in range(args.repeats):
        for setting in ("default", "keep"):
            env = {**os.environ, "TLF_MALLOC": setting}
            subprocess.run([sys.executable, "-c", WORK, str(args.threads)], env=env, check=True)


if __name__ == "__main__":
    main()
