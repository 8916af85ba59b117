"""tlf plugins of every kind, registered through the ``tlf`` entry point in setup.py.

This module is imported whenever tlf starts (``tlf plugins``, ``tlf train``), so it only
describes the plugins; each factory imports its implementation (numpy, torch,
albumentations) from a sibling module when the plugin is actually used.
"""
from __future__ import annotations

from typing import Any, Callable

from tlf.hookspecs import hookimpl
from tlf.specs import AugmentationSpec, BackboneSpec, CallbackSpec, DatasetSpec, LoggerSpec, PolicySpec


def _stripes(argument: str | None, request: Any) -> Any:
    from .stripes import make_stripes
    return make_stripes(argument, request)


def _smallcnn(argument: str | None, request: Any) -> Any:
    from .smallcnn import make_smallcnn
    return make_smallcnn(request)


def _bn_only(argument: str | None, request: Any) -> Any:
    from .bn_only import BnOnlyPolicy
    return BnOnlyPolicy()


def _grayscale(argument: str | None, request: Any) -> Any:
    from .grayscale import make_grayscale
    return make_grayscale(argument, request)


def _jsonl(argument: str | None, request: Any) -> Any:
    from .jsonl_log import JsonlLogger
    return JsonlLogger(request, argument)


def _target_accuracy(argument: float, request: Any) -> Any:
    from .target_accuracy import TargetAccuracy
    return TargetAccuracy(argument)


@hookimpl
def tlf_register_datasets(register: Callable[..., None]) -> None:
    register(DatasetSpec(
        name="stripes",
        description="Generated images of horizontal vs vertical stripes (offline, for smoke tests)",
        factory=_stripes,
        argument="N",
        num_classes=2,
    ))


@hookimpl
def tlf_register_backbones(register: Callable[..., None]) -> None:
    register(BackboneSpec(
        name="smallcnn",
        description="Small CNN from the course: five conv3x3+ReLU+maxpool blocks, no pretrained weights",
        factory=_smallcnn,
        facts="tlf_plugin_example.smallcnn:facts",  # its input, known before it is built (imported then)
    ))


@hookimpl
def tlf_register_policies(register: Callable[..., None]) -> None:
    register(PolicySpec(
        name="bn-only",
        description="Train only the normalization layers' scale/shift and the head; freeze every other weight",
        factory=_bn_only,
        aliases=("norm-only",),
    ))


@hookimpl
def tlf_register_augmentations(register: Callable[..., None]) -> None:
    register(AugmentationSpec(
        name="grayscale",
        description="Convert training images to 3-channel grayscale with probability P (default 0.2)",
        factory=_grayscale,
        argument="P",
    ))


@hookimpl
def tlf_register_loggers(register: Callable[..., None]) -> None:
    register(LoggerSpec(
        name="jsonl",
        description="Append every step, epoch and the run's start and end to a JSONL file (default: RUN/events.jsonl)",
        factory=_jsonl,
        argument="PATH",
    ))


@hookimpl
def tlf_register_callbacks(register: Callable[..., None]) -> None:
    register(CallbackSpec(
        name="target-accuracy",
        description="Stop the run at the first epoch whose validation accuracy reaches ACC (e.g. 0.9)",
        factory=_target_accuracy,
        argument="ACC",
        argument_required=True,
        parse="tlf_plugin_example.target_accuracy:parse_target",
    ))
