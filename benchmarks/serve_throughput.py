"""``tlf serve`` under concurrent clients: micro-batching against one inference per request, and
``tlf predict``'s throughput on the same images, side by side in one run.

    python benchmarks/serve_throughput.py path/to/flower_photos/val --limit 64

Model: EfficientNet-Lite0 with random weights (speed does not depend on them), exported by
``tlf.export.export_onnx`` at ``--image-size`` px (224 by default). Servers, each a ``tlf serve`` process on 127.0.0.1 with
the same model and stack:

- **micro-batching**: the defaults (``--max-batch 8 --max-wait-ms 5``);
- **one inference per request**: ``--max-batch 1 --max-wait-ms 0`` (each image its own
  onnxruntime call, the naive server).

For 1, 8 and 32 concurrent clients (threads, one image per request, keep-alive connections),
each for ``--seconds`` split into ``--rounds`` turns that alternate between the two servers
(both up at once; the one not measured is idle): images/s and p50/p99 latency. The clients run on the same machine as
the server, so on a small CPU they take some of its time: compare rows, not absolute figures.
First, onnxruntime alone: ms per image at batch 1 to 32 (whether batching can pay on this
machine at all). ``tlf predict`` is ``OnnxClassifier.predict`` (batch 32, decode pool) over the same files in
this process (median of 3).
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import httpx  # noqa: E402
import numpy as np  # noqa: E402

SERVERS = {"micro-batching": [], "one inference per request": ["--max-batch", "1", "--max-wait-ms", "0"]}


def export_lite0(out: Path, paths: list[str], size: int) -> Path:
    """A random-weight EfficientNet-Lite0 as a tlf export (metadata and parity gate included)."""
    import torch

    from tlf.augment import AugmentRequest, build_pipeline
    from tlf.data.reading import read_rgb
    from tlf.export import export_onnx
    from tlf.models import build_model

    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", 5, pretrained=False, image_size=size).eval()
    meta = model.backbone.meta
    pipeline = build_pipeline("none", AugmentRequest(image_size=size, mean=meta.mean, std=meta.std,
                                                     interpolation=meta.interpolation, crop_pct=meta.crop_pct, num_classes=5))
    sample = np.stack([pipeline.eval(read_rgb(p)) for p in paths[:8]]).transpose(0, 3, 1, 2).copy()
    export_onnx(model, out, image_size=size, exporter="torchscript", sample_images=sample,
                metadata={"classes": [str(i) for i in range(5)], "resize": pipeline.resize_short, "mean": list(meta.mean),
                          "std": list(meta.std), "interpolation": meta.interpolation, "downscale": "area"})
    return out


def start(model: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "tlf", "serve", str(model), "--port", str(port), "--no-access-log",
                                "--max-queue", "4096", "--max-concurrency", "256", *extra], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)


def load(url: str, bodies: list[bytes], clients: int, seconds: float) -> tuple[int, float, list[float]]:
    """(images answered, seconds, latencies) of ``clients`` threads posting one image at a time."""
    latencies: list[float] = []
    lock, stop = threading.Lock(), time.perf_counter() + seconds

    def client(offset: int) -> None:
        with httpx.Client(timeout=60) as session:
            i = offset
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                answer = session.post(f"{url}/v1/predict", files=[("file", ("x.jpg", bodies[i % len(bodies)], "image/jpeg"))])
                answer.raise_for_status()
                with lock:
                    latencies.append(time.perf_counter() - t0)
                i += clients

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(latencies), time.perf_counter() - t0, latencies


def interleaved(urls: dict[str, str], bodies: list[bytes], clients: int, seconds: float, rounds: int) -> dict:
    """name -> (images/s, p50 ms, p99 ms), the servers measured in turn, ``rounds`` times each,
    so load from other processes hits them alike."""
    done = {name: [0, 0.0, []] for name in urls}
    for _ in range(rounds):
        for name, url in urls.items():
            count, elapsed, latencies = load(url, bodies, clients, seconds / rounds)
            done[name][0] += count
            done[name][1] += elapsed
            done[name][2] += latencies
    return {name: (count / elapsed, *(np.percentile(latencies, [50, 99]) * 1000))
            for name, (count, elapsed, latencies) in done.items()}


def batch_costs(classifier, paths: list[str], sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32), rounds: int = 5) -> dict[int, float]:
    """Median ms per image of onnxruntime alone at each batch size (32 images, interleaved rounds):
    whether batching can pay on this machine at all."""
    x = np.stack([classifier.preprocess(p) for p in (paths * 32)[:32]])
    times: dict[int, list[float]] = {b: [] for b in sizes}
    classifier.logits(x[:8])
    for _ in range(rounds):
        for b in sizes:
            t0 = time.perf_counter()
            for i in range(0, 32, b):
                classifier.logits(x[i:i + b])
            times[b].append((time.perf_counter() - t0) / 32 * 1000)
    return {b: statistics.median(t) for b, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", type=Path, help="Folder of images (searched recursively).")
    parser.add_argument("--limit", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=9.0, help="Per server and number of clients.")
    parser.add_argument("--rounds", type=int, default=3, help="Interleaved rounds the seconds are split into.")
    parser.add_argument("--clients", type=int, nargs="*", default=[1, 8, 32], help="Concurrent clients (none: model alone).")
    parser.add_argument("--image-size", type=int, default=224, help="The model's input size (px).")
    args = parser.parse_args()
    from tlf.data.reading import is_image_file
    from tlf.runtime import OnnxClassifier

    paths = sorted(str(p) for p in args.images.rglob("*") if p.is_file() and is_image_file(p))[:args.limit]
    bodies = [Path(p).read_bytes() for p in paths]
    with tempfile.TemporaryDirectory() as tmp:
        model = export_lite0(Path(tmp) / "lite0.onnx", paths, args.image_size)
        classifier = OnnxClassifier(model)
        classifier.predict(paths[:8])
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            classifier.predict(paths, batch_size=32)
            times.append(time.perf_counter() - t0)
        predict_rate = len(paths) / statistics.median(times)
        print(f"{len(paths)} images from {args.images}, efficientnet_lite0 {args.image_size} px, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f}; tlf predict (batch 32): {predict_rate:.1f} images/s\n")
        costs = batch_costs(classifier, paths)
        print("| onnxruntime alone, batch | " + " | ".join(map(str, costs)) + " |")
        print("|---|" + "---:|" * len(costs))
        print("| ms per image | " + " | ".join(f"{ms:.2f}" for ms in costs.values()) + " |\n")
        if not args.clients:
            return
        print("| server | clients | images/s | vs tlf predict | p50 ms | p99 ms |")
        print("|---|---:|---:|---:|---:|---:|")
        servers = {name: start(model, extra) for name, extra in SERVERS.items()}
        try:
            for clients in args.clients:
                results = interleaved({name: url for name, (_, url) in servers.items()}, bodies, clients,
                                      args.seconds, args.rounds)
                for name, (rate, p50, p99) in results.items():
                    print(f"| {name} | {clients} | {rate:.1f} | {rate / predict_rate:.2f}x | {p50:.0f} | {p99:.0f} |", flush=True)
        finally:
            for process, _ in servers.values():
                process.terminate()
                process.wait()


if __name__ == "__main__":
    main()
