"""Cost of a run's insight outputs, side by side in one process: the validation pass
(``tlf evaluate``'s logits), the per-image outputs on top of it (predictions.csv, the
error analysis, top_losses.png and confused.png with Grad-CAM, the data summary) and the
HTML page (``tlf report RUN_DIR --html``); prints the times, their ratios to the pass and
the size of report.html.

    python benchmarks/report_time.py RUN_DIR [--device cpu]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from tlf.data.model_input import to_model_input
from tlf.data.loaders import build_eval_loader
from tlf.engine.placement import place
from tlf.engine.metrics import classification_report
from tlf.data.run_data import run_data
from tlf.engine.eval_engine import predict_logits
from tlf.insight.evaluation import InsightOptions, analyse
from tlf.insight.report import write_run_report
from tlf.plan import default_workers
from tlf.models.trained import load_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    run = load_run(args.run_dir)
    config, splits, pipeline = run_data(run)
    placement = place(args.device, "fp32")
    loader = build_eval_loader(splits, pipeline, batch_size=64, workers=default_workers(placement.device.type),
                               seed=config.seed, cache=config.cache)
    model = run.model.to(placement.device, memory_format=torch.channels_last)

    def to_input(batch: torch.Tensor) -> torch.Tensor:
        return to_model_input(batch, run.preprocessing.mean, run.preprocessing.std, placement.device)

    start = time.perf_counter()
    logits, labels = predict_logits(model, loader, to_input, placement)
    t_pass = time.perf_counter() - start
    report = classification_report(logits.numpy(), labels.numpy(), run.classes)
    start = time.perf_counter()
    analyse(report, logits.numpy(), labels.numpy(), loader.dataset.images, splits, InsightOptions(),
            out=Path(tempfile.mkdtemp()), model=model, transform=pipeline.eval_transform, to_input=to_input)
    t_insight = time.perf_counter() - start
    start = time.perf_counter()
    page = write_run_report(run.directory)
    t_page = time.perf_counter() - start
    print(f"{len(labels)} images: validation pass {t_pass:.1f}s; per-image outputs {t_insight:.1f}s "
          f"({t_insight / t_pass:.2f}x the pass); page {t_page:.1f}s ({t_page / t_pass:.2f}x); "
          f"report.html {page.stat().st_size / 2**20:.2f} MiB")


if __name__ == "__main__":
    main()
