"""CPU data-pipeline throughput: a naive torchvision pipeline against tlf's loaders.

Measures, in one run on one machine, training batches of SIZE px (random resized crop +
flip, normalized) per second:

- naive: ImageFolder + PIL decode + torchvision transforms + DataLoader (float32 batches);
- tlf, decode cache off (decode every image every epoch, uint8 batches);
- tlf, warm decode cache (uint8 batches), also with the normalization that tlf does on
  the device (here the CPU) counted in;

plus the cold cache build (time, cached bytes, peak memory of the building process, in a
fresh subprocess) and reopening the warm cache.

    python benchmarks/data_pipeline.py [DATA] [--size 224] [--workers 2] [--epochs 3]

DATA is a class-per-folder tree with ``train/`` and ``val/`` (default:
``../shared/data/flower_photos`` relative to the repository).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

REPO = Path(__file__).resolve().parent.parent
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def status_kib(field: str) -> int:
    """A field of /proc/self/status in KiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class PeakMemory:
    """Samples RssAnon/RssFile every few ms in a thread; keeps the maxima (bytes)."""

    def __init__(self) -> None:
        self.anon = self.file = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.anon = max(self.anon, status_kib("RssAnon") * 1024)
            self.file = max(self.file, status_kib("RssFile") * 1024)
            time.sleep(0.005)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def splits_of(data: Path):
    """tlf Splits of a train/ + val/ class-per-folder tree (same file lists as ImageFolder)."""
    from torchvision.datasets import ImageFolder

    from tlf.data import FileImageSet, Splits
    train, val = ImageFolder(str(data / "train")), ImageFolder(str(data / "val"))
    as_set = lambda d: FileImageSet([p for p, _ in d.samples], [c for _, c in d.samples])  # noqa: E731
    return Splits(data.name, train.classes, as_set(train), as_set(val), root=data)


def pipeline_for(size: int, classes: int):
    from tlf.augment import AugmentRequest, build_pipeline
    return build_pipeline("basic", AugmentRequest(image_size=size, mean=MEAN, std=STD, num_classes=classes))


def one_epoch(loader, epoch: int, prepare=None) -> tuple[int, float]:
    """(images, seconds) of one pass over ``loader``."""
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
    images, start = 0, time.perf_counter()
    for x, _ in loader:
        if prepare is not None:
            x = prepare(x)
        images += x.shape[0]
    return images, time.perf_counter() - start


def naive_loader(data: Path, size: int, workers: int, batch_size: int):
    import torch
    from torchvision import datasets, transforms
    tf = transforms.Compose([transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
                             transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    return torch.utils.data.DataLoader(datasets.ImageFolder(str(data / "train"), tf), batch_size=batch_size,
                                       shuffle=True, num_workers=workers, drop_last=True,
                                       persistent_workers=workers > 0)


def tlf_loader(data: Path, size: int, workers: int, batch_size: int, cache: str):
    from tlf.data.loaders import build_loaders
    splits = splits_of(data)
    start = time.perf_counter()
    train, _ = build_loaders(splits, pipeline_for(size, len(splits.classes)), batch_size=batch_size,
                             workers=workers, seed=0, cache=cache)
    return train, time.perf_counter() - start


def cold(data: Path, size: int) -> dict:
    """Build the decode caches of train and val from nothing (run in a fresh process)."""
    from tlf.data import cache as decode_cache
    splits = splits_of(data)
    pipeline = pipeline_for(size, len(splits.classes))
    base_anon, base_file = status_kib("RssAnon") * 1024, status_kib("RssFile") * 1024
    start = time.perf_counter()
    with PeakMemory() as peak:
        results = [decode_cache.build(s, pipeline) for s in (splits.train, splits.val)]
    seconds = time.perf_counter() - start
    n = sum(len(s) for s in (splits.train, splits.val))
    return {"images": n, "seconds": seconds, "images_per_s": n / seconds,
            "cached_bytes": sum(r.images.nbytes for r in results),
            "peak_anon_growth": peak.anon - base_anon, "peak_file_growth": peak.file - base_file,
            "decoded": sum(r.decoded for r in results), "threads": os.cpu_count()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=REPO.parent / "shared" / "data" / "flower_photos")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--cold-only", action="store_true", help=argparse.SUPPRESS)  # the subprocess
    args = parser.parse_args()
    data = args.data.resolve()
    if args.cold_only:
        print(json.dumps(cold(data, args.size)))
        return

    os.environ["TLF_HOME"] = home = tempfile.mkdtemp(prefix="tlf-bench-")  # a cold cache to start with
    try:
        measure(args, data, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def measure(args: argparse.Namespace, data: Path, home: str) -> None:
    """Cold build in a subprocess, then the four loaders epoch by epoch in turn."""
    import torch
    print(f"data {data}, {args.size} px, {args.workers} workers, batch {args.batch_size}, {args.epochs} epochs, "
          f"{os.cpu_count()} CPUs, torch {torch.__version__}")
    results: dict = {"config": {k: str(v) for k, v in vars(args).items()}}
    child = subprocess.run([sys.executable, __file__, str(data), "--size", str(args.size), "--cold-only"],
                           capture_output=True, text=True, check=True, env={**os.environ, "TLF_HOME": home})
    results["cold"] = c = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"cold cache build: {c['images']} images in {c['seconds']:.2f} s ({c['images_per_s']:.0f} img/s), "
          f"{c['cached_bytes'] / 2**20:.1f} MiB cached; peak memory growth: {c['peak_anon_growth'] / 2**20:.1f} MiB "
          f"anonymous + {c['peak_file_growth'] / 2**20:.1f} MiB file-backed (the mapped cache)")

    from tlf.data.model_input import to_model_input
    normalize = lambda x: to_model_input(x, MEAN, STD, "cpu")  # noqa: E731  (tlf does this on the device)
    stream, _ = tlf_loader(data, args.size, args.workers, args.batch_size, "off")
    warm, reopen = tlf_loader(data, args.size, args.workers, args.batch_size, "disk")
    results["warm_reopen_s"] = reopen
    runs = {"naive": (naive_loader(data, args.size, args.workers, args.batch_size), None),
            "tlf_stream": (stream, None), "tlf_warm": (warm, None), "tlf_warm_normalized": (warm, normalize)}
    totals = {name: [0, 0.0] for name in runs}
    for epoch in range(args.epochs + 1):  # interleaved, so that load from elsewhere hits all alike
        for name, (loader, prepare) in runs.items():
            images, seconds = one_epoch(loader, epoch, prepare)
            if epoch > 0:  # the first pass starts the workers
                totals[name][0] += images
                totals[name][1] += seconds
    labels = {"naive": "naive torchvision (float batches)", "tlf_stream": "tlf, no cache (uint8 batches)",
              "tlf_warm": "tlf, warm cache (uint8 batches)", "tlf_warm_normalized": "tlf, warm cache + normalize"}
    for name, (images, seconds) in totals.items():
        results[name] = images / seconds
        ratio = results[name] / results["naive"]
        results[f"{name}_vs_naive"] = ratio
        print(f"{labels[name]:36s} {results[name]:7.0f} img/s  {ratio:5.2f}x naive")
    print(f"warm cache reopened in {reopen:.2f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
