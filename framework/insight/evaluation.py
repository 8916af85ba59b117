"""The per-image part of ``tlf evaluate``: predictions.csv, error analysis, galleries with
Grad-CAM, the label-error list and a data summary, added to the evaluation report."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..data.dataset import FileImageSet, ImageSet, Splits
from ..data.reading import image_size
from ..plots.confusion import plot_confusion
from .gallery import Tile, plot_gallery, shorten
from .gradcam import grad_cam
from .predictions import Predictions, write_label_errors, write_predictions

CONFUSION_CAP = 30  # classes drawn in the report's confusion matrix; beyond it, those with most mistakes
CONFUSED_PAIRS = 10  # most-confused pairs listed
PAIR_GALLERY = 8  # pairs shown in the confused-pairs gallery
SIZE_SAMPLE = 256  # images per split whose size is read for the data summary


@dataclass(frozen=True)
class InsightOptions:
    top_losses: int = 16  # images in the top-loss list and gallery
    label_errors: float | None = None  # write label_errors.csv: mistakes at least this confident
    jsonl: bool = False  # also write predictions.jsonl


def _sizes(images: ImageSet) -> list[tuple[int, int]]:
    """(width, height) of up to SIZE_SAMPLE evenly spaced images (file headers when on disk)."""
    picks = np.unique(np.linspace(0, len(images) - 1, min(len(images), SIZE_SAMPLE)).astype(int)) if len(images) else []
    if isinstance(images, FileImageSet):
        found = [image_size(images.paths[i]) for i in picks]
        return [s for s in found if s is not None]
    return [(int(a.shape[1]), int(a.shape[0])) for a in (images.load(int(i)) for i in picks)]


def data_summary(splits: Splits) -> dict:
    """Images per class in each split, and the spread of image sizes."""
    summary: dict[str, Any] = {"classes": len(splits.classes), "split": splits.split,
                               "unreadable": len(splits.problems)}
    for name, images in (("train", splits.train), ("val", splits.val)):
        labels = images.labels  # multi-label: images showing each class
        counts = labels.sum(axis=0) if labels.ndim == 2 else np.bincount(labels, minlength=len(splits.classes))
        summary[f"{name}_counts"] = dict(zip(splits.classes, map(int, counts)))
        sizes = np.array(_sizes(images) or [(0, 0)])
        summary[f"{name}_sizes"] = {"sampled": len(sizes), **{
            f"{axis}_{stat}": int(fn(sizes[:, k])) for k, axis in enumerate(("width", "height"))
            for stat, fn in (("min", np.min), ("median", np.median), ("max", np.max))}}
    return summary


def _views(images: ImageSet, indices: list[int], transform: Callable) -> list[np.ndarray]:
    return [transform(images.load(i), None) for i in indices]


def _tiles(preds: Predictions, indices: list[int], views: list[np.ndarray], cams: list[np.ndarray]) -> list[Tile]:
    tiles = []
    for i, view, cam in zip(indices, views, cams):
        r = preds.row(i)
        tiles.append(Tile(view, cam, f"{shorten(r['image'])}\ntrue {shorten(r['true'], 20)} · pred "
                                     f"{shorten(r['predicted'], 20)} {r['probability']:.0%}\nloss {r['loss']:.2f}"))
    return tiles


def _cams(model: Any, views: list[np.ndarray], to_input: Callable) -> list[np.ndarray]:
    if not views:
        return []
    batch = torch.from_numpy(np.stack(views)).permute(0, 3, 1, 2)
    return list(grad_cam(model, to_input(batch))[0])


def _confusion_subset(cm: list[list[int]], classes: list[str]) -> tuple[list[int], str]:
    """The classes the report's confusion matrix shows and a note when it leaves some out."""
    if len(classes) <= CONFUSION_CAP:
        return list(range(len(classes))), ""
    m = np.asarray(cm)
    errors = m.sum(axis=0) + m.sum(axis=1) - 2 * np.diag(m)
    keep = sorted(np.argsort(-errors, kind="stable")[:CONFUSION_CAP].tolist())
    return keep, f"the {CONFUSION_CAP} classes with the most mistakes, of {len(classes)}"


def analyse(report: dict, logits: np.ndarray, labels: np.ndarray, images: ImageSet, splits: Splits,
            options: InsightOptions, out: Path | None = None, model: Any = None, transform: Callable | None = None,
            to_input: Callable | None = None) -> Predictions:
    """Add per-image results to ``report`` (evaluate's dict): per-class accuracy, the most
    confused pairs, the top losses and a data summary. With ``out`` (the run directory) also
    write predictions.csv (+ .jsonl), top_losses.png and confused.png with Grad-CAM of
    ``model`` on ``transform``'s views of ``images``, label_errors.csv and, over
    CONFUSION_CAP classes, confusion_top.png."""
    classes = splits.classes
    preds = Predictions.from_logits(logits, labels, [images.key(i) for i in range(len(images))], classes)
    top = preds.top_losses(options.top_losses)
    report["per_class_accuracy"] = preds.per_class_accuracy()
    report["most_confused"] = preds.most_confused(CONFUSED_PAIRS)
    report["top_losses"] = [preds.row(i) for i in top]
    report["data"] = data_summary(splits)
    if options.label_errors is not None:
        report["label_errors"] = len(preds.likely_label_errors(options.label_errors))
    if out is None:
        return preds
    files = write_predictions(preds, out, options.jsonl)
    if options.label_errors is not None:
        write_label_errors(preds.likely_label_errors(options.label_errors), out / "label_errors.csv")
        files.append("label_errors.csv")
    views = _views(images, top, transform)
    plot_gallery(_tiles(preds, top, views, _cams(model, views, to_input)), out / "top_losses.png",
                 f"the {len(top)} highest losses of {len(preds.labels)} images")
    pairs = report["most_confused"][:PAIR_GALLERY]
    worst = [preds.confident_mistake(p["true"], p["predicted"]) for p in pairs]
    views = _views(images, worst, transform)
    plot_gallery(_tiles(preds, worst, views, _cams(model, views, to_input)), out / "confused.png",
                 "the most confident mistake of each most-confused pair")
    files += ["top_losses.png", "confused.png"]
    keep, note = _confusion_subset(report["confusion_matrix"], classes)
    if note:
        cm = np.asarray(report["confusion_matrix"])[np.ix_(keep, keep)].tolist()
        plot_confusion(cm, [classes[k] for k in keep], out / "confusion_top.png", title=note)
        files.append("confusion_top.png")
        report["confusion_shown"] = note
    report["files"] = files
    return preds
