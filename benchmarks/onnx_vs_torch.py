"""onnxruntime (CPU) vs PyTorch eager (CPU): latency at batch 1, throughput at batch 32.

    python benchmarks/onnx_vs_torch.py                         # efficientnet_lite0 and resnet18, 224 px
    python benchmarks/onnx_vs_torch.py --threads 2 --int8 --json results.json

Models are built by tlf (random weights: speed does not depend on them), exported with
``tlf.export.export_onnx`` (parity-gated) and, with ``--int8``, quantized to QDQ int8.
Both runtimes get the same number of intra-op threads. Prints a markdown table with wall
time (latency, throughput) and process CPU time per call (robust to a loaded machine).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402


def timings(fn, seconds: float, warmup: int = 3, min_runs: int = 5) -> tuple[list[float], list[float]]:
    """Wall-clock and process-CPU seconds of repeated ``fn()`` calls for about ``seconds``
    after ``warmup`` calls. CPU time (all threads) does not count time spent waiting for a
    core, so it stays meaningful on a loaded machine."""
    for _ in range(warmup):
        fn()
    wall: list[float] = []
    cpu: list[float] = []
    start = time.perf_counter()
    while len(wall) < min_runs or time.perf_counter() - start < seconds:
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def summarize(wall: list[float], cpu: list[float], batch: int) -> dict:
    median = statistics.median(wall)
    return {"batch": batch, "runs": len(wall), "median_ms": 1000 * median,
            "p90_ms": 1000 * float(np.percentile(wall, 90)), "images_per_s": batch / median,
            "cpu_ms": 1000 * statistics.median(cpu)}


def ort_session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def bench_model(backbone: str, size: int, batches: list[int], threads: int, seconds: float, int8: bool,
                workdir: Path) -> list[dict]:
    from tlf.export import export_onnx, quantize_int8
    from tlf.models import build_model

    torch.manual_seed(0)
    model = build_model(backbone, 10, pretrained=False).eval()
    meta = model.backbone.meta
    rng = np.random.default_rng(0)
    samples = rng.integers(0, 256, (16, 3, size, size), dtype=np.uint8)
    path = workdir / f"{backbone}.onnx"
    export = export_onnx(model, path, image_size=size, sample_images=samples,
                         metadata={"classes": [str(i) for i in range(10)], "resize": size, "mean": list(meta.mean),
                                   "std": list(meta.std), "interpolation": meta.interpolation})
    engines = {"pytorch eager": None, f"onnxruntime fp32 ({export.exporter})": ort_session(path, threads)}
    if int8:
        q = quantize_int8(path, workdir / f"{backbone}.int8.onnx", calibration_images=samples,
                          eval_images=samples, eval_labels=np.zeros(len(samples), np.int64))
        engines["onnxruntime int8 (QDQ)"] = ort_session(Path(q.path), threads)
    rows = []
    for batch in batches:
        x = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
        xt = torch.from_numpy(x)
        for engine, sess in engines.items():
            if sess is None:
                def fn():
                    with torch.inference_mode():
                        model(xt)
            else:
                def fn(sess=sess):
                    sess.run(None, {"input": x})
            rows.append({"model": backbone, "size": size, "engine": engine, **summarize(*timings(fn, seconds), batch)})
            print(f"  {backbone} {engine} batch {batch}: {rows[-1]['median_ms']:.1f} ms", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["efficientnet_lite0", "resnet18"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--seconds", type=float, default=5.0, help="Timing budget per measurement.")
    parser.add_argument("--int8", action="store_true", help="Also time the static int8 (QDQ) model.")
    parser.add_argument("--json", type=Path, help="Also write the rows here.")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for backbone in args.models:
            rows += bench_model(backbone, args.size, args.batch_sizes, args.threads, args.seconds, args.int8, Path(tmp))
    env = {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "threads": args.threads,
           "torch": torch.__version__, "onnxruntime": ort.__version__, "python": platform.python_version(),
           "load_average": [load_before, os.getloadavg()[0]]}
    print(f"threads {args.threads}; torch {env['torch']}; onnxruntime {env['onnxruntime']}; "
          f"{env['cpus']} CPUs ({env['cpu']}); 1-min load average {load_before:.1f} before, "
          f"{env['load_average'][1]:.1f} after (above the CPU count: other processes competed)\n")
    print("| model | engine | batch | median ms | p90 ms | images/s | vs PyTorch | CPU ms | vs PyTorch (CPU) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        base = next(r for r in rows if r["model"] == row["model"] and r["batch"] == row["batch"]
                    and r["engine"] == "pytorch eager")
        print(f"| {row['model']} {row['size']}px | {row['engine']} | {row['batch']} | {row['median_ms']:.1f} | "
              f"{row['p90_ms']:.1f} | {row['images_per_s']:.1f} | {base['median_ms'] / row['median_ms']:.2f}x | "
              f"{row['cpu_ms']:.1f} | {base['cpu_ms'] / row['cpu_ms']:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps({"env": env, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
