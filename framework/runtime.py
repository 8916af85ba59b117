"""Torch-free inference on a tlf ONNX export: onnxruntime, numpy, Pillow and OpenCV only.

Everything needed to preprocess an image travels in the file's metadata (see
:data:`METADATA_KEYS`), so a deployment needs the ``.onnx`` file and this module::

    from tlf.runtime import OnnxClassifier

    clf = OnnxClassifier("model.onnx")
    for p in clf.predict(["cat.jpg", "dog.png"], top_k=3):
        print(p.labels, p.probabilities)

Preprocessing reproduces tlf's evaluation transform (albumentations ``SmallestMaxSize``
with ``area_for_downscale`` then ``CenterCrop``, resampled by OpenCV): the short side is
resized to ``tlf.resize`` (same rounding of the long side; ``tlf.downscale``, i.e. area
averaging, when shrinking, ``tlf.interpolation`` when enlarging), the centre ``tlf.crop``
square is kept, and the model input is ``(x / 255 - mean) / std`` in NCHW float32 (raw
uint8 NCHW when ``tlf.preprocessing_in_graph`` is true). Resampling is ``cv2.resize``
(``INTER_AREA`` / ``INTER_LINEAR`` / ``INTER_CUBIC`` / ``INTER_NEAREST``), the library and call
training uses through albumentations; PIL's resize filters differ by several grey levels on
average (see docs/deploy.md), so the model would see other pixels than in training.
"""
from __future__ import annotations

import json
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar, Union

import cv2  # opencv-python-headless: the resize training uses (through albumentations)
import numpy as np
import onnxruntime as ort
from PIL import Image

from .data.reading import check_dimensions, read_rgb, to_rgb  # the decoder training uses (numpy and Pillow only)
from .errors import TlfError, first_line
from .preprocessing import RUNTIME_INTERPOLATIONS, Preprocessing, short_side_shape
from .resources import usable_cpus
from .task_outputs import checked_thresholds, label_sets, output_of, probabilities, softmax

PREFIX = "tlf."
# metadata keys written by ``tlf export``; values are JSON-encoded
METADATA_KEYS = (
    "classes", "input_size", "resize", "crop", "mean", "std", "interpolation", "downscale",
    "preprocessing_in_graph", "backbone", "policy", "dataset", "version", "val_accuracy", "precision",
    "tta",  # "flip": the graph averages each image's and its mirror image's probabilities
    "task",  # the task plugin the model was trained for (single-label, multi-label, a third party's)
    "output",  # how its logits read (tlf.task_outputs.OUTPUTS): softmax (top classes) or sigmoid (label sets)
    "thresholds",  # sigmoid outputs: one probability threshold per class, in class order (tuned on validation)
)
# keys the runtime cannot work without
REQUIRED_KEYS = ("classes", "resize", "crop", "mean", "std", "interpolation", "preprocessing_in_graph")
# preferred execution providers, best first; CPU is always the last resort
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")

ImageLike = Union[str, Path, Image.Image, np.ndarray]
T = TypeVar("T")
R = TypeVar("R")


def ordered_map(fn: Callable[[T], R], items: Iterable[T], threads: int, window: int) -> Iterator[R]:
    """``fn`` over ``items`` on ``threads`` threads, results in input order, at most ``window``
    ahead of the consumer. (``ThreadPoolExecutor.map`` submits every item at once and would
    hold every decoded image of a large folder; Pillow's decoder and OpenCV's resize release
    the GIL, so threads run them in parallel.)"""
    if threads <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="tlf-decode") as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def encode_metadata(meta: dict[str, Any]) -> dict[str, str]:
    """``{"classes": [...]}`` -> ``{"tlf.classes": '[...]'}`` (JSON values)."""
    unknown = sorted(set(meta) - set(METADATA_KEYS))
    if unknown:
        raise ValueError(f"unknown tlf metadata keys: {unknown}")
    return {PREFIX + key: json.dumps(value) for key, value in meta.items()}


def decode_metadata(props: dict[str, str]) -> dict[str, Any]:
    """The ``tlf.*`` entries of an ONNX ``metadata_props`` map, decoded, without the prefix."""
    out = {}
    for key, value in props.items():
        if key.startswith(PREFIX):
            try:
                out[key[len(PREFIX):]] = json.loads(value)
            except json.JSONDecodeError as exc:
                raise TlfError(f"metadata entry {key!r} is not valid JSON: {exc}",
                               hint="re-export the model with 'tlf export'") from None
    return out


REEXPORT = "the model's metadata does not describe its graph; re-export it with 'tlf export RUN_DIR'"


def _checked_classes(classes: Any, output_shape: Sequence[Any], path: Path) -> list[str]:
    """The metadata's class names: a non-empty list of distinct strings, as many as the graph's
    scores per image when the graph states that number."""
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise TlfError(f"{path}: metadata 'tlf.classes' must be a list of class names (text), "
                       f"got {type(classes).__name__}", hint=REEXPORT)
    if len(set(classes)) != len(classes):
        raise TlfError(f"{path}: metadata 'tlf.classes' names a class twice", hint=REEXPORT)
    scores = output_shape[-1] if len(output_shape) == 2 else None
    if isinstance(scores, int) and scores != len(classes):
        raise TlfError(f"{path} gives {scores} scores per image but its metadata names {len(classes)} classes",
                       hint=REEXPORT)
    return list(classes)


def _check_input_shape(shape: Sequence[Any], crop: int, path: Path) -> None:
    """The graph takes N x 3 x crop x crop images (where it states the sizes)."""
    expected = (3, crop, crop)
    stated = [(got, want) for got, want in zip(shape[1:], expected) if isinstance(got, int)]
    if any(got != want for got, want in stated):
        raise TlfError(f"{path} takes {tuple(shape[1:])} images but its metadata crops {expected}", hint=REEXPORT)


CV2_FLAGS = {"nearest": "INTER_NEAREST", "bilinear": "INTER_LINEAR", "bicubic": "INTER_CUBIC", "area": "INTER_AREA"}


def resize(image: np.ndarray, height: int, width: int, interpolation: str) -> np.ndarray:
    """Resize an HxWxC uint8 image with ``cv2.resize``: the call albumentations makes in
    training, so deployed pixels equal training's."""
    if interpolation not in RUNTIME_INTERPOLATIONS:
        raise TlfError(f"unsupported interpolation {interpolation!r}",
                       hint=f"use one of {', '.join(RUNTIME_INTERPOLATIONS)}")
    if image.shape[:2] == (height, width):
        return image
    if interpolation == "area" and (height > image.shape[0] or width > image.shape[1]):
        raise TlfError("'area' interpolation only shrinks images", hint="use it as the downscale interpolation")
    return cv2.resize(image, (width, height), interpolation=getattr(cv2, CV2_FLAGS[interpolation]))


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The centre ``size`` x ``size`` square (albumentations' offsets); ``size`` must fit."""
    height, width = image.shape[:2]
    top, left = (height - size) // 2, (width - size) // 2
    return image[top:top + size, left:left + size]


@dataclass(frozen=True)
class Prediction:
    """Top-k classes of one image, most likely first; for a multi-label model (``multi_label``)
    the set of classes whose probability reaches its threshold, most likely first (may be empty)."""

    labels: list[str]
    probabilities: list[float]
    indices: list[int]
    multi_label: bool = False

    @property
    def label(self) -> str | None:
        return self.labels[0] if self.labels else None

    @property
    def probability(self) -> float | None:
        return self.probabilities[0] if self.probabilities else None

    def to_dict(self) -> dict[str, Any]:
        return {"labels": self.labels, "probabilities": self.probabilities, "indices": self.indices,
                **({"multi_label": True} if self.multi_label else {})}


def _choose_providers(providers: Sequence[str] | None) -> list[str]:
    available = ort.get_available_providers()
    if providers is None:
        return [p for p in PREFERRED_PROVIDERS if p in available] or list(available)
    missing = [p for p in providers if p not in available]
    if missing:
        raise TlfError(f"execution provider(s) {', '.join(missing)} not available in this onnxruntime",
                       hint=f"available: {', '.join(available)}")
    return list(providers)


def _check_size(width: int, height: int) -> None:
    """The limits files get (:func:`tlf.data.reading.check_dimensions`), for in-memory images too."""
    why = check_dimensions(width, height)
    if why:
        raise TlfError(f"cannot classify this image: {why}", hint="crop or resize it first")


def _is_checkpoint(path: Path) -> bool:
    """A file saved by ``torch.save``: a ``.pt``/``.pth`` name or a zip archive (torch's format)."""
    with open(path, "rb") as file:
        return path.suffix in (".pt", ".pth") or file.read(4) == b"PK\x03\x04"


class OnnxClassifier:
    """An image classifier exported by ``tlf export``, run with onnxruntime.

    ``providers``: onnxruntime execution providers in order of preference (default:
    TensorRT, CUDA, then CPU, whichever this onnxruntime build has); ``threads``:
    intra-op threads (default: onnxruntime's choice).
    """

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None, threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise TlfError(f"model file {self.path} not found")
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=options,
                                                providers=_choose_providers(providers))
        except TlfError:
            raise
        except Exception as exc:  # onnxruntime raises its own types (InvalidProtobuf, Fail, ...)
            if _is_checkpoint(self.path):
                raise TlfError(f"{self.path} is a PyTorch checkpoint; tlf.runtime runs ONNX models",
                               hint=f"export the run first: tlf export {self.path.parent}, then use its "
                                    f"model.onnx") from None
            raise TlfError(f"{self.path} is not a loadable ONNX model (corrupted or truncated?): {first_line(exc)}",
                           hint="re-export it with 'tlf export RUN_DIR'") from None
        self.metadata = decode_metadata(self.session.get_modelmeta().custom_metadata_map)
        missing = [PREFIX + k for k in REQUIRED_KEYS if k not in self.metadata]
        if missing:
            raise TlfError(f"{self.path} is not a tlf export: its metadata lacks {', '.join(missing)}",
                           hint="export models with 'tlf export RUN_DIR'; tlf.runtime reads preprocessing from that metadata")
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise TlfError(f"{self.path} has {len(inputs)} inputs; a tlf classifier has exactly one")
        self.input = inputs[0]
        self.output_name = outputs[0].name
        if len(self.input.shape) != 4:
            raise TlfError(f"{self.path} takes a rank-{len(self.input.shape)} input {self.input.shape}; "
                           "a tlf classifier takes N x 3 x H x W images")
        meta = self.metadata
        self.classes: list[str] = _checked_classes(meta["classes"], outputs[0].shape, self.path)
        self.preprocessing = Preprocessing.from_metadata(meta, source=str(self.path))
        self.preprocessing.check_runtime(str(self.path))
        self.crop = self.preprocessing.image_size
        _check_input_shape(self.input.shape, self.crop, self.path)
        self.in_graph = bool(meta["preprocessing_in_graph"])
        self.dtype = np.uint8 if self.in_graph else np.float32
        self.task = str(meta.get("task") or "single-label")  # exports made before tasks existed: single-label
        self.output = output_of(meta, str(self.path))
        self.multi_label = self.output == "sigmoid"  # its predictions are label sets
        self.thresholds = (checked_thresholds(meta.get("thresholds"), len(self.classes), str(self.path))
                           if self.multi_label else None)

    @property
    def providers(self) -> list[str]:
        """Execution providers the session actually uses."""
        return self.session.get_providers()

    def to_array(self, image: ImageLike) -> np.ndarray:
        """A path, PIL image or HxWx3 uint8 RGB array as HxWx3 uint8 RGB."""
        if isinstance(image, (str, Path)):
            return read_rgb(image)  # refuses non-regular files and oversized headers before decoding
        if isinstance(image, Image.Image):
            _check_size(*image.size)
            return to_rgb(image)
        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise TlfError(f"expected an HxWx3 uint8 RGB array, got shape {image.shape} dtype {image.dtype}",
                               hint="convert with PIL: np.asarray(Image.open(p).convert('RGB'))")
            _check_size(image.shape[1], image.shape[0])
            return image
        raise TlfError(f"cannot classify an object of type {type(image).__name__}",
                       hint="pass file paths, PIL images or HxWx3 uint8 arrays")

    def eval_view(self, image: ImageLike) -> np.ndarray:
        """The crop x crop x 3 uint8 view the model sees: short side resized, centre cropped."""
        array = self.to_array(image)
        p = self.preprocessing
        height, width = short_side_shape(*array.shape[:2], p.resize)
        shrink = p.resize < min(array.shape[:2])
        array = resize(array, height, width, p.downscale if shrink else p.interpolation)
        return center_crop(array, self.crop)

    def preprocess(self, image: ImageLike) -> np.ndarray:
        """One image -> the model's 3 x crop x crop input (float32 normalized, or uint8)."""
        chw = np.ascontiguousarray(self.eval_view(image).transpose(2, 0, 1))
        return chw if self.in_graph else self.preprocessing.normalize(chw)

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on a preprocessed N x 3 x crop x crop batch."""
        if batch.ndim != 4 or batch.shape[1:] != (3, self.crop, self.crop):
            raise TlfError(f"expected a batch of shape N x 3 x {self.crop} x {self.crop}, got {batch.shape}")
        logits = self.session.run([self.output_name], {self.input.name: batch.astype(self.dtype, copy=False)})[0]
        if logits.ndim != 2 or logits.shape[1] != len(self.classes):
            raise TlfError(f"{self.path} gives {logits.shape[1:] or 'scalar'} scores per image for the "
                           f"{len(self.classes)} class names of its metadata", hint=REEXPORT)
        return logits

    def predict(self, images: ImageLike | Iterable[ImageLike], top_k: int = 5, batch_size: int = 32,
                threads: int | None = None, threshold: float | None = None) -> list[Prediction]:
        """Top-``top_k`` labels and probabilities for each image (multi-label: the set above the
        thresholds, ``threshold`` replacing every class's), in input order; images are
        decoded and preprocessed on ``threads`` threads (default: one per CPU)."""
        if isinstance(images, (str, Path, Image.Image)) or (isinstance(images, np.ndarray) and images.ndim == 3):
            images = [images]
        results: list[Prediction] = []
        pending: list[np.ndarray] = []
        for array in ordered_map(self.preprocess, images, threads or usable_cpus(), 2 * batch_size):
            pending.append(array)
            if len(pending) == batch_size:
                results += self.classify(np.stack(pending), top_k, threshold)
                pending = []
        if pending:
            results += self.classify(np.stack(pending), top_k, threshold)
        return results

    def classify(self, batch: np.ndarray, top_k: int = 5, threshold: float | None = None) -> list[Prediction]:
        """Top-``top_k`` predictions for a batch already passed through :meth:`preprocess`; for a
        multi-label model the label sets (:meth:`label_sets`), whatever ``top_k``."""
        if self.multi_label:
            return self.label_sets(self.logits(batch), threshold)
        k = max(1, min(int(top_k), len(self.classes)))
        probs = softmax(self.logits(batch))
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return [Prediction([self.classes[i] for i in row], [float(p[i]) for i in row], [int(i) for i in row])
                for row, p in zip(order, probs)]

    def label_sets(self, logits: np.ndarray, threshold: float | None = None) -> list[Prediction]:
        """Per image, the classes whose sigmoid probability reaches its threshold (the model's
        ``tlf.thresholds``, or ``threshold`` for every class), most likely first."""
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise TlfError(f"threshold {threshold} is not a probability", hint="pass a number between 0 and 1")
        probs = probabilities(self.output, logits)
        chosen = label_sets(probs, self.thresholds if threshold is None else threshold)
        out = []
        for p, keep in zip(probs, chosen):
            picked = [int(i) for i in np.argsort(-p, kind="stable") if keep[i]]
            out.append(Prediction([self.classes[i] for i in picked], [float(p[i]) for i in picked], picked, True))
        return out

    def __repr__(self) -> str:
        return (f"OnnxClassifier({str(self.path)!r}, classes={len(self.classes)}, input={self.crop}px, "
                f"providers={self.providers})")

