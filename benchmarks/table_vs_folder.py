"""A class-per-folder tree read as a table gives the same run as the folder itself.

    python benchmarks/table_vs_folder.py --data path/to/flower_photos --out path/to/work

Writes ``OUT/labels.csv`` listing every image of ``DATA/train``, ``DATA/val`` (and
``DATA/test`` when present) with columns ``image`` (relative to DATA), ``label`` (its
class folder) and ``split``, in the order the folder plugin reads them (classes sorted,
then files by path, with tlf's own folder walk). Then runs, each in a fresh process
and TLF_HOME, at the defaults but for the flags given:

    tlf train --dataset table:OUT/labels.csv --data-dir DATA --policy P --seed S
    tlf train --dataset folder:DATA --policy P --seed S

and compares their validation accuracy per epoch (the same split and seed should give the
same figures; with a test split, also summary.json's ``test``). Prints a Markdown table;
exits with status 1 when the runs differ. ``--table-only`` writes the CSV and stops.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tlf_cli import cpu_name, run_files, tlf_train  # noqa: E402  (the helpers beside this script)

SPLITS = ("train", "val", "test")


def write_table(data: Path, table: Path) -> int:
    """``table`` (image, label, split) of ``data``'s split folders, in the folder plugin's
    order; the number of rows."""
    from tlf.data.folder import class_folders
    from tlf.data.walk import walk_images

    rows = []
    for split in SPLITS:
        if not (data / split).is_dir():
            continue
        for name in class_folders(data / split):
            files, _ = walk_images(data / split / name)
            rows += [(f.relative_to(data).as_posix(), name, split) for f in files]
    if not rows:
        raise SystemExit(f"{data}: no images under train/, val/ or test/; give --data a class-per-folder tree")
    table.parent.mkdir(parents=True, exist_ok=True)
    with table.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("image", "label", "split"))
        writer.writerows(rows)
    return len(rows)


def figures(run_dir: Path) -> dict:
    """The run's validation accuracy per epoch, best and last, test figures, epochs and seconds."""
    summary, history = run_files(run_dir)
    return {"val_acc": [r.get("val_acc") for r in history], "best": summary.get("best_val_accuracy"),
            "last": summary.get("last_val_accuracy"), "test": summary.get("test"), "epochs": summary.get("epochs"),
            "seconds": summary.get("seconds")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a class-per-folder tree with train/ and val/")
    parser.add_argument("--out", type=Path, required=True, help="folder for labels.csv and the two runs")
    parser.add_argument("--policy", default="transfer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--table-only", action="store_true", help="write OUT/labels.csv and stop")
    args = parser.parse_args()
    table = args.out / "labels.csv"
    print(f"{table}: {write_table(args.data.resolve(), table)} images", file=sys.stderr)
    if args.table_only:
        return
    same = ["--policy", args.policy, "--seed", str(args.seed)]
    runs = {
        "table": tlf_train(["--dataset", f"table:{table.resolve()}", "--data-dir", str(args.data.resolve()), *same],
                           args.out / "runs", "table")[0],
        "folder": tlf_train(["--dataset", f"folder:{args.data.resolve()}", *same], args.out / "runs", "folder")[0],
    }
    found = {name: figures(run_dir) for name, run_dir in runs.items()}
    print(json.dumps(found), flush=True)
    print("| dataset | best val accuracy | last val accuracy | test | epochs | wall s |")
    print("| --- | ---: | ---: | --- | ---: | ---: |")
    for name, f in found.items():
        print(f"| {name} | {f['best']:.4f} | {f['last']:.4f} | {json.dumps(f['test'])} | {f['epochs']} "
              f"| {f['seconds']:.0f} |")
    keys = ("val_acc", "test")
    equal = all(found["table"][k] == found["folder"][k] for k in keys)
    print(f"\nper-epoch validation accuracy{' and test figures' if found['folder']['test'] else ''}: "
          f"{'equal' if equal else 'DIFFERENT'} ({args.policy}, seed {args.seed}; CPU: {cpu_name()})")
    sys.exit(0 if equal else 1)


if __name__ == "__main__":
    main()
