"""The frozen feature pass on the CPU, per engine: torch fp32 (tlf's pass before
``--frozen-engine``), torch bf16 autocast, onnxruntime fp32 through tlf's own cached,
parity-gated export (``tlf.features.onnx_prefix``), at several batch sizes, thread counts, graph
optimisation levels and execution modes, and that export quantized to int8 (static QDQ as
``--frozen-engine onnxruntime-int8`` makes it, and dynamic).

    python benchmarks/frozen_pass.py                                      # the three targets, 224 px
    python benchmarks/frozen_pass.py --models efficientnet_lite0 --batch-sizes 8 32 64 \\
        --ort-threads 1 2 --ort-levels basic all --ort-modes sequential parallel --engines onnxruntime

The prefix is what a ``transfer`` run caches: every stage plus the head's pooling, random
weights (speed does not depend on them), fed uint8 NHWC-in-memory batches as the loaders
collate them. Engines are timed in interleaved rounds (one call each per round), so load from
other processes hits them alike; the ratios against torch fp32 are the figures to read. The
``rel. error`` column is max |features - torch fp32 features| / max |torch fp32 features|.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

LEVELS = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
          "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
MODES = {"sequential": ort.ExecutionMode.ORT_SEQUENTIAL, "parallel": ort.ExecutionMode.ORT_PARALLEL}


def engines(backbone: str, size: int, threads: list[int], levels: list[str], modes: list[str], kinds: list[str],
            sample: torch.Tensor) -> dict:
    """name -> callable(uint8 batch) for one backbone's frozen prefix."""
    from tlf.data.model_input import to_model_input
    from tlf.features.cache import TorchPrefix
    from tlf.features.onnx_prefix import OnnxPrefix, onnx_prefix
    from tlf.models import build_model

    torch.manual_seed(0)
    model = build_model(backbone, 5, pretrained=False, image_size=size).eval()
    meta = model.backbone.meta
    prefix = nn.Sequential(*model.backbone.stages.children(), model.head.pool).eval()
    cpu = torch.device("cpu")

    def to_input(images: torch.Tensor) -> torch.Tensor:
        return to_model_input(images, meta.mean, meta.std, cpu)

    with torch.inference_mode():
        reference = prefix(to_input(sample)).float()
    t0 = time.perf_counter()
    exported, note = onnx_prefix(prefix, sample, reference, meta.mean, meta.std, f"bench-{backbone}", max(threads))
    print(f"  {backbone}: {note} ({time.perf_counter() - t0:.1f}s)", file=sys.stderr)
    out = {"torch fp32": TorchPrefix(prefix, to_input, None, cpu)}
    if "bf16" in kinds:
        out["torch bf16 autocast"] = TorchPrefix(prefix, to_input, torch.bfloat16, cpu)
    if exported is not None and "int8" in kinds:  # the prefix quantized as --frozen-engine onnxruntime-int8 does
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from tlf.features.onnx_prefix import open_session
        from tlf.export.quantize import write_qdq
        calibration = torch.randint(0, 256, (32, size, size, 3), dtype=torch.uint8,
                                    generator=torch.Generator().manual_seed(2)).numpy()
        static = exported.path.with_name(exported.path.stem + "-static-int8.onnx")
        write_qdq(exported.path, static, exported.input_name, calibration)
        out["onnxruntime int8 static QDQ"] = OnnxPrefix(open_session(static, max(threads)), static)
        dynamic = exported.path.with_name(exported.path.stem + "-dynamic-int8.onnx")
        quantize_dynamic(str(exported.path), str(dynamic), weight_type=QuantType.QInt8, per_channel=True)
        out["onnxruntime int8 dynamic"] = OnnxPrefix(open_session(dynamic, max(threads)), dynamic)
    if exported is not None and "onnxruntime" in kinds:
        for level in levels:
            for n in threads:
                for mode in modes:
                    options = ort.SessionOptions()
                    options.log_severity_level = 3
                    options.intra_op_num_threads = n
                    options.inter_op_num_threads = n if mode == "parallel" else 1
                    options.execution_mode = MODES[mode]
                    options.graph_optimization_level = LEVELS[level]
                    session = ort.InferenceSession(str(exported.path), sess_options=options,
                                                   providers=["CPUExecutionProvider"])
                    out[f"onnxruntime fp32, {n} thread(s), {level}, {mode}"] = OnnxPrefix(session, exported.path)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["efficientnet_lite0", "resnet50", "convnext_tiny"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads.")
    parser.add_argument("--ort-threads", nargs="+", type=int, default=None, help="default: --threads")
    parser.add_argument("--ort-levels", nargs="+", choices=sorted(LEVELS), default=["all"])
    parser.add_argument("--ort-modes", nargs="+", choices=sorted(MODES), default=["sequential"],
                        help="onnxruntime execution mode (parallel: inter-op threads = intra-op threads).")
    parser.add_argument("--rounds", type=int, default=5, help="Interleaved timed rounds (after one warm-up).")
    parser.add_argument("--engines", nargs="+", choices=["bf16", "onnxruntime", "int8"], default=["bf16", "onnxruntime"],
                        help="Engines timed beside torch fp32 (int8: onnxruntime static QDQ, calibrated on random "
                             "images, and dynamic quantization of the same export).")
    args = parser.parse_args()
    from tlf.heap import keep_freed_memory
    keep_freed_memory()  # as every tlf command does: torch's pass without glibc's page faults
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TLF_HOME", tempfile.mkdtemp(prefix="tlf-bench-"))
    load_before = os.getloadavg()[0]
    print("| model | batch | engine | median img/s | vs torch fp32 | rel. error |")
    print("|---|---:|---|---:|---:|---:|")
    for backbone in args.models:
        for batch in args.batch_sizes:
            images = torch.randint(0, 256, (batch, args.size, args.size, 3), dtype=torch.uint8,
                                   generator=torch.Generator().manual_seed(0)).permute(0, 3, 1, 2)
            runs = engines(backbone, args.size, args.ort_threads or [args.threads], args.ort_levels, args.ort_modes, args.engines,
                           images[:8])
            base = runs["torch fp32"](images).float()
            error = {name: float((fn(images).float() - base).abs().max() / base.abs().max()) for name, fn in runs.items()}
            seconds: dict[str, list[float]] = {name: [] for name in runs}
            for _ in range(args.rounds):
                for name, fn in runs.items():
                    t0 = time.perf_counter()
                    fn(images)
                    seconds[name].append(time.perf_counter() - t0)
            median = {name: statistics.median(s) for name, s in seconds.items()}
            for name in runs:
                print(f"| {backbone} {args.size}px | {batch} | {name} | {batch / median[name]:.1f} | "
                      f"{median['torch fp32'] / median[name]:.2f}x | {error[name]:.1e} |", flush=True)
    print(f"\ntorch {torch.__version__} ({args.threads} threads), onnxruntime {ort.__version__}, {os.cpu_count()} CPUs; "
          f"1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
          "(above the CPU count: other processes shared the cores)")


if __name__ == "__main__":
    main()
