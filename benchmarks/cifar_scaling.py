"""How `tlf train` cost grows with the number of training images (CIFAR-10 JPEG subsets).

    nice -n 10 python benchmarks/cifar_scaling.py ../shared/data/cifar10 --sizes 1000,5000,20000,50000 \\
        --policies transfer --epochs 1 --image-size 32 --work /tmp/cifar-scaling

For each policy and size N it builds a class-per-folder tree of symbolic links (N/10 training
images per class, the first ``--val`` test images as ``test/``), then, in fresh processes with an
empty ``$TLF_HOME``:

1. ``tlf data show folder:TREE --json``: the scan (list, decode check, remembered results);
2. ``tlf train --dataset folder:TREE ...``: set-up (the scan again, now from its record, the
   decode cache, the model), the feature cache when the policy freezes the backbone, the epochs.

Each is timed by ``/usr/bin/time`` (wall, user + system CPU, peak resident memory). Stages of
``tlf train`` come from its run directory (metrics.csv ``epoch_seconds``, the feature-cache line
of its log, summary.json ``seconds``); set-up is the rest. Cache bytes are the files under the
run's ``$TLF_HOME``. Prints a Markdown table, writes ``WORK/scaling.json`` and ``WORK/scaling.png``.

CPU seconds are the figure to compare on a shared machine: other jobs stretch the wall time of
every stage, not the CPU time a stage needs.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

TIME_FORMAT = "%e %U %S %M"  # wall s, user s, system s, peak RSS KiB


def subset(source: Path, tree: Path, per_class: int, val_per_class: int) -> None:
    """``tree/{train,test}/<class>/`` with links to the first images of each class."""
    for split, count in (("train", per_class), ("test", val_per_class)):
        for folder in sorted((source / split).iterdir()):
            target = tree / split / folder.name
            if target.is_dir():
                continue
            target.mkdir(parents=True)
            for path in sorted(folder.iterdir())[:count]:
                (target / path.name).symlink_to(path)


def timed(command: list[str], env: dict[str, str], log: Path) -> dict[str, float]:
    """Run ``command`` under /usr/bin/time; its stderr goes to ``log``."""
    stats = log.with_suffix(".time")
    with open(log, "w") as err:
        done = subprocess.run(["/usr/bin/time", "-f", TIME_FORMAT, "-o", str(stats), *command], env=env,
                              stdout=subprocess.PIPE, stderr=err, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}); see {log}")
    wall, user, system, rss = stats.read_text().split()[-4:]
    return {"wall_s": float(wall), "cpu_s": float(user) + float(system), "peak_rss_mib": int(rss) / 1024,
            "stdout": done.stdout}


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def measure(source: Path, work: Path, policy: str, size: int, args: argparse.Namespace) -> dict:
    tree = work / "trees" / str(size)
    subset(source, tree, size // 10, args.val // 10)
    home = work / "home" / f"{policy.replace(':', '_')}-{size}"
    if home.exists():
        subprocess.run(["rm", "-rf", str(home)], check=True)
    env = {**os.environ, "TLF_HOME": str(home), "NO_ALBUMENTATIONS_UPDATE": "1"}
    tlf = [sys.executable, "-m", "tlf"]
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    name = f"{policy.replace(':', '_')}-{size}"
    scan = timed([*tlf, "data", "show", f"folder:{tree}", "--json"], env, logs / f"{name}-scan.log")
    train = timed([*tlf, "train", "--dataset", f"folder:{tree}", "--policy", policy, "--epochs", str(args.epochs),
                   "--image-size", str(args.image_size), "--out", str(work / "runs"), "--name", name, "--json",
                   *args.extra], env, logs / f"{name}-train.log")
    run = work / "runs" / name
    summary = json.loads((run / "summary.json").read_text())
    with open(run / "metrics.csv") as f:
        epochs = [float(row["epoch_seconds"]) for row in csv.DictReader(f)]
    found = re.search(r"feature cache:.*?\((\d+) MiB, ([\d.]+)s\)", (logs / f"{name}-train.log").read_text(), re.S)
    feature_s, feature_mib = (float(found.group(2)), int(found.group(1))) if found else (0.0, 0)
    return {"policy": policy, "train_images": size, "val_images": args.val,
            "scan_wall_s": scan["wall_s"], "scan_cpu_s": scan["cpu_s"], "scan_peak_rss_mib": scan["peak_rss_mib"],
            "train_wall_s": train["wall_s"], "train_cpu_s": train["cpu_s"], "train_peak_rss_mib": train["peak_rss_mib"],
            "setup_s": round(summary["seconds"] - feature_s - sum(epochs), 2), "feature_cache_s": feature_s,
            "epoch_s": round(sum(epochs) / len(epochs), 2), "feature_cache_mib": feature_mib,
            "decode_cache_mib": round(folder_bytes(home / "decoded") / 2**20, 1),
            "val_accuracy": summary["best_val_accuracy"]}


def table(rows: list[dict]) -> str:
    head = ("| policy | train images | scan s (CPU s) | train wall s | train CPU s | CPU ms / image | set-up s | "
            "feature cache s | epoch s | peak RSS MiB | decode cache MiB | feature cache MiB |")
    lines = [head, "| --- " * (head.count("|") - 1) + "|"]
    for r in rows:
        lines.append(f"| {r['policy']} | {r['train_images']} | {r['scan_wall_s']:.1f} ({r['scan_cpu_s']:.1f}) | "
                     f"{r['train_wall_s']:.1f} | {r['train_cpu_s']:.1f} | "
                     f"{1000 * r['train_cpu_s'] / r['train_images']:.2f} | {r['setup_s']:.1f} | "
                     f"{r['feature_cache_s']:.1f} | {r['epoch_s']:.1f} | {r['train_peak_rss_mib']:.0f} | "
                     f"{r['decode_cache_mib']:.1f} | {r['feature_cache_mib']} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cpu, mem) = plt.subplots(1, 2, figsize=(10, 4))
    for policy in dict.fromkeys(r["policy"] for r in rows):
        mine = [r for r in rows if r["policy"] == policy]
        n = [r["train_images"] for r in mine]
        cpu.plot(n, [1000 * r["train_cpu_s"] / r["train_images"] for r in mine], "o-", label=f"{policy}: tlf train")
        cpu.plot(n, [1000 * r["scan_cpu_s"] / r["train_images"] for r in mine], "s--", label=f"{policy}: scan")
        mem.plot(n, [r["train_peak_rss_mib"] for r in mine], "o-", label=f"{policy}: peak RSS")
        mem.plot(n, [r["decode_cache_mib"] + r["feature_cache_mib"] for r in mine], "s--", label=f"{policy}: caches")
    cpu.set(xscale="log", xlabel="training images", ylabel="CPU ms per training image", title="cost per image")
    mem.set(xscale="log", xlabel="training images", ylabel="MiB", title="memory")
    for ax in (cpu, mem):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="the CIFAR-10 JPEG tree (train/ and test/ of class folders)")
    parser.add_argument("--sizes", default="1000,5000,20000,50000")
    parser.add_argument("--policies", default="transfer,init")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--val", type=int, default=1000, help="validation images (test/), the same for every size")
    parser.add_argument("--work", type=Path, default=Path("/tmp/cifar-scaling"))
    args, extra = parser.parse_known_args()  # the rest: more `tlf train` options, after --
    args.extra = [a for a in extra if a != "--"]
    args.work.mkdir(parents=True, exist_ok=True)
    out = args.work / "scaling.json"
    rows = json.loads(out.read_text()) if out.exists() else []
    for policy in args.policies.split(","):
        for size in map(int, args.sizes.split(",")):
            if any(r["policy"] == policy and r["train_images"] == size for r in rows):
                continue  # measured by an earlier, interrupted invocation
            rows.append(measure(args.source.resolve(), args.work, policy, size, args))
            out.write_text(json.dumps(rows, indent=1))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    print(table(rows))
    plot(rows, args.work / "scaling.png")


if __name__ == "__main__":
    main()
