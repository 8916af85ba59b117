"""How the data stages of a run grow with the number of image files (no model involved).

    nice -n 10 python benchmarks/data_scaling.py ../shared/data/cifar10 --sizes 1000,5000,20000,50000

For each size N, in a fresh subprocess with an empty ``$TLF_HOME``, on a class-per-folder
tree of symbolic links to the first N/10 training images of each CIFAR-10 class (built under
``--work`` by benchmarks/cifar_scaling.py's ``subset``; the validation split is 100 images):

- scan, cold: ``load_folder`` lists the files and decode-checks each (results remembered);
- scan, warm: the same again (one ``stat`` per file against the remembered results);
- fingerprint: ``FileImageSet.fingerprint()`` of the training set (what the decode cache keys on);
- decode cache, cold: ``build_loaders(cache="disk")`` at 32 px, which decodes every image once;
- decode cache, warm: the same again (the cache is found and opened).

Times are CPU seconds of the process (``time.process_time``), which other jobs on a shared
machine do not stretch; peak memory is ``ru_maxrss``. Prints a Markdown table with CPU
microseconds per image.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cifar_scaling import subset  # noqa: E402

STAGES = ("scan_cold", "scan_warm", "fingerprint", "decode_cold", "decode_warm")


def child(tree: Path) -> dict:
    """Runs in the subprocess: every stage once, in order."""
    from tlf.augment import AugmentRequest, build_pipeline
    from tlf.data.folder import load_folder
    from tlf.data.loaders import build_loaders
    from tlf.data.dataset import DatasetRequest

    request = DatasetRequest(cache_dir=Path(os.environ["TLF_HOME"]) / "datasets")
    pipeline = build_pipeline("none", AugmentRequest(image_size=32, num_classes=10))
    out: dict[str, float] = {}

    def clock(name: str, work):
        start = time.process_time()
        result = work()
        out[name] = time.process_time() - start
        return result

    clock("scan_cold", lambda: load_folder(tree, request))
    splits = clock("scan_warm", lambda: load_folder(tree, request))
    clock("fingerprint", splits.train.fingerprint)
    for name in ("decode_cold", "decode_warm"):
        clock(name, lambda: build_loaders(splits, pipeline, batch_size=64, workers=0, seed=0, cache="disk"))
    out["images"] = len(splits.train) + len(splits.val)
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, nargs="?")
    parser.add_argument("--sizes", default="1000,5000,20000,50000")
    parser.add_argument("--work", type=Path, default=Path("/tmp/cifar-scaling"))
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    rows = []
    for size in map(int, args.sizes.split(",")):
        tree = args.work / "trees-data" / str(size)
        subset(args.source.resolve(), tree, size // 10, 10)
        with tempfile.TemporaryDirectory() as home:
            env = {**os.environ, "TLF_HOME": home, "NO_ALBUMENTATIONS_UPDATE": "1"}
            done = subprocess.run([sys.executable, __file__, "--child", str(tree)], env=env, check=True,
                                  stdout=subprocess.PIPE, text=True)
        row = {"train_images": size, **json.loads(done.stdout.splitlines()[-1])}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("| images (train + 100 val) | " + " | ".join(f"{s} µs/img" for s in STAGES) + " | peak RSS MiB |")
    print("| --- " * (len(STAGES) + 2) + "|")
    for r in rows:
        print(f"| {r['images']} | " + " | ".join(f"{1e6 * r[s] / r['images']:.0f}" for s in STAGES)
              + f" | {r['peak_rss_mib']:.0f} |")


if __name__ == "__main__":
    main()
