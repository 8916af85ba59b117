"""Does ``tlf audit`` find planted label flips, leaks and duplicates, and does acting on it pay?

Copies a class-per-folder dataset split into ``train/`` and ``val/`` (flower_photos) to
WORK/corrupt and, with a fixed seed:

- flips the labels of 5% of the training images (the file moves to another class's folder);
- copies 30 training images (not flipped) into validation, resized to 50-80%, re-encoded as
  JPEG (quality 70-90), a third of them also cropped by 4-8% of each side first (leaks);
- adds 20 byte-identical copies of training images within train (exact duplicates).

Then audits the corrupted copy (``tlf.audit``) and reports precision and recall per planted
kind, the flips' recall among the top 2x-as-many suspected label issues, and the validation
accuracy of ``transfer`` on the clean data, on the corrupted data, and on the corrupted data
cleaned by the audit (``--exclude``: every leak, duplicate and conflict copy, and every
flagged label issue), each on its own validation split and on the clean validation split.
The clean copy is audited too (its features come from the store: no second frozen pass), so
the pairs already in the original data are told apart from the planted ones.

    TLF_HOME=/tmp/audit/home python benchmarks/audit_corruption.py --data-dir path/to/flower_photos --work /tmp/audit
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import time
from pathlib import Path

import cv2

FLIP_FRACTION = 0.05
LEAKS = 30
DUPLICATES = 20
SUFFIXES = {".jpg", ".jpeg", ".png"}


def images_of(folder: Path) -> dict[str, list[Path]]:
    return {c.name: sorted(p for p in c.iterdir() if p.suffix.lower() in SUFFIXES)
            for c in sorted(folder.iterdir()) if c.is_dir()}


def copy_clean(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)


def reencode(source: Path, target: Path, rng: random.Random, crop: bool) -> None:
    image = cv2.imread(str(source))
    h, w = image.shape[:2]
    if crop:
        dy, dx = int(h * rng.uniform(0.04, 0.08)), int(w * rng.uniform(0.04, 0.08))
        image = image[dy:h - dy, dx:w - dx]
    scale = rng.uniform(0.5, 0.8)
    image = cv2.resize(image, (max(8, int(image.shape[1] * scale)), max(8, int(image.shape[0] * scale))),
                       interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(target), image, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(70, 90)])


def corrupt(clean: Path, target: Path, seed: int) -> dict:
    """The corrupted copy of ``clean`` in ``target``, and what was planted (paths in ``target``)."""
    copy_clean(clean, target)
    rng = random.Random(seed)
    train = [(c, p) for c, paths in images_of(target / "train").items() for p in paths]
    classes = sorted({c for c, _ in train})
    picks = rng.sample(range(len(train)), round(FLIP_FRACTION * len(train)) + LEAKS + DUPLICATES)
    flips, leaks, dups = (picks[:-LEAKS - DUPLICATES], picks[-LEAKS - DUPLICATES:-DUPLICATES], picks[-DUPLICATES:])
    planted = {"flips": {}, "leaks": {}, "duplicates": {}}
    for n, i in enumerate(leaks):
        c, path = train[i]
        copy = target / "val" / c / f"leak_{n:02d}.jpg"
        reencode(path, copy, rng, crop=n % 3 == 0)
        planted["leaks"][str(copy)] = str(path)
    for n, i in enumerate(dups):
        c, path = train[i]
        copy = path.with_name(f"dup_{n:02d}{path.suffix}")
        shutil.copyfile(path, copy)
        planted["duplicates"][str(copy)] = str(path)
    for i in flips:
        c, path = train[i]
        other = rng.choice([k for k in classes if k != c])
        moved = target / "train" / other / path.name
        path.rename(moved)
        planted["flips"][str(moved)] = c
    return planted


def read_issues(directory: Path) -> list[dict]:
    with open(directory / "issues.csv", newline="") as f:
        return list(csv.DictReader(f))


def pair_rows(rows: list[dict], exact: bool | None, across: bool) -> list[dict]:
    """Copy pairs (duplicate, leak or conflict rows) across splits or within one, exact or near."""
    return [r for r in rows if r["kind"] in ("duplicate", "leak", "conflict") and (r["split"] != r["other_split"]) == across
            and (exact is None or (r["detail"] == "same decoded pixels") == exact)]


def pairs_of(rows: list[dict]) -> set[frozenset]:
    return {frozenset((r["path"], r["other_path"])) for r in rows}


def score_pairs(found: list[dict], planted: dict[str, str], before: set[frozenset], moves: dict[str, str]) -> dict:
    """Recall of the planted pairs; precision over the pairs not already in the clean data
    (``before``, its paths mapped to the corrupted copy's by ``moves``)."""
    truth = {frozenset(p) for p in planted.items()}
    got = pairs_of(found)
    moved = {frozenset(moves.get(p, p) for p in pair) for pair in before}
    new = got - moved
    hits = len(truth & got)
    return {"planted": len(truth), "found": hits, "recall": hits / len(truth), "reported": len(got),
            "already_in_data": len(got & moved), "false": len(new - truth),
            "precision": hits / max(1, len(new)), "false_fraction": len(new - truth) / max(1, len(got)),
            "missed": sorted(a for a, b in planted.items() if frozenset((a, b)) not in got),
            "false_pairs": sorted(sorted(pair) for pair in new - truth)}


def clean_to_corrupt(clean: Path, corrupted: Path, flips: dict[str, str]) -> dict[str, str]:
    """Each image path of the clean copy -> the same image in the corrupted copy (flipped ones moved)."""
    moves = {str(clean / p.relative_to(corrupted)): str(p) for p in corrupted.rglob("*") if p.is_file()}
    for moved, original in flips.items():
        moves[str(clean / "train" / original / Path(moved).name)] = moved
    return moves


def score_labels(rows: list[dict], directory: Path, flips: dict[str, str]) -> dict:
    """The flips among the audit's top 2x-as-many by label-issue score (label_scores.csv ranks every
    image), and precision/recall of the images it flags (issues.csv's label rows)."""
    with open(directory / "label_scores.csv", newline="") as f:
        ranked = list(csv.DictReader(f))
    top = {r["path"] for r in ranked[:2 * len(flips)]}
    flagged = {r["path"]: r for r in rows if r["kind"] == "label"}
    hits = len(set(flips) & set(flagged))
    return {"flipped": len(flips), "in_top_2x": len(set(flips) & top), "recall_top_2x": len(set(flips) & top) / len(flips),
            "flagged": len(flagged), "recall_flagged": hits / len(flips), "precision_flagged": hits / max(1, len(flagged)),
            "flagged_suggesting_the_true_label": sum(flagged[p]["suggested"] == c for p, c in flips.items() if p in flagged)}


def cleaning_list(rows: list[dict], path: Path) -> int:
    """The audit's suggestions as an --exclude file: the validation copy of every leak, the later
    copy of every duplicate within train, every training image with a flagged label."""
    chosen = [r["path"] for r in pair_rows(rows, None, True)]
    chosen += [r["path"] for r in pair_rows(rows, None, False) if r["split"] == "train"]
    chosen += [r["path"] for r in rows if r["kind"] == "label" and r["split"] == "train"]
    chosen = sorted(set(chosen))
    path.write_text("path\n" + "".join(f"{p}\n" for p in chosen))
    return len(chosen)


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.split("load average:")[-1].strip()


def timed_audit(root: Path, out: Path, name: str) -> tuple[Path, float, str]:
    import tlf.audit
    start, before = time.perf_counter(), load()
    result = tlf.audit.audit(dataset=f"folder:{root}", out=str(out), name=name, quiet=True)
    return result.directory, time.perf_counter() - start, f"{before} -> {load()}"


def train_and_score(root: Path, clean_val: Path, out: Path, name: str, exclude: Path | None) -> dict:
    import tlf
    start = time.perf_counter()
    run = tlf.train(dataset=f"folder:{root}", policy="transfer", out=str(out), name=name, quiet=True, seed=0,
                    exclude=str(exclude) if exclude else None)
    seconds = time.perf_counter() - start
    on_clean = tlf.evaluate(run.directory, dataset=f"folder:{clean_val}", write=False)["accuracy"]
    return {"val_accuracy": run.summary["best_val_accuracy"], "clean_val_accuracy": on_clean,
            "frozen_engine": run.summary["frozen_engine"], "train_seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True, help="a dataset with train/ and val/ class folders")
    parser.add_argument("--work", default="/tmp/audit", help="where the copies, audits and runs go")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    work = Path(args.work).resolve()
    clean, corrupted, out = work / "clean", work / "corrupt", work / "runs"
    copy_clean(Path(args.data_dir), clean)
    planted = corrupt(Path(args.data_dir), corrupted, args.seed)
    directory, seconds, during = timed_audit(corrupted, out, "audit-corrupt")
    again, seconds_again, during_again = timed_audit(corrupted, out, "audit-corrupt-again")
    clean_audit, seconds_clean, _ = timed_audit(clean, out, "audit-clean")
    rows, before = read_issues(directory), read_issues(clean_audit)
    moves = clean_to_corrupt(clean, corrupted, planted["flips"])
    results = {
        "exact_duplicates": score_pairs(pair_rows(rows, True, False), planted["duplicates"],
                                        pairs_of(pair_rows(before, True, False)), moves),
        "leaks": score_pairs(pair_rows(rows, None, True), planted["leaks"], pairs_of(pair_rows(before, None, True)),
                             moves),
        "labels": score_labels(rows, directory, planted["flips"]),
        "audit_seconds": {"first": round(seconds, 1), "load": during, "again": round(seconds_again, 1),
                          "load_again": during_again, "clean_copy": round(seconds_clean, 1)},
        "audit_summary": json.loads((directory / "audit.json").read_text())["counts"],
    }
    exclude = work / "exclude.csv"
    results["excluded"] = cleaning_list(rows, exclude)
    results["accuracy"] = {
        "clean": train_and_score(clean, clean, out, "train-clean", None),
        "corrupted": train_and_score(corrupted, clean, out, "train-corrupt", None),
        "cleaned": train_and_score(corrupted, clean, out, "train-cleaned", exclude),
    }
    results["cpu"] = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line), "")
    results["cores"] = os.cpu_count()
    (work / "audit_corruption.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
