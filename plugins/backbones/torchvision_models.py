"""torchvision backbones (VGG, ResNet, ConvNeXt, MobileNetV3, EfficientNet) cut into conv1..conv5.

Cut points, by family (``features_N`` is torchvision's ``features[N]``):

- VGG: the five blocks, each ending in its max-pool (aliases ``block1``..``block5``);
  the classifier (fc6/fc7) is never built.
- ResNet: conv1 = conv1+bn1+relu, conv2 = maxpool+layer1, conv3..conv5 = layer2..layer4.
- ConvNeXt: conv1 = the 4x4 stride-4 stem (so conv1 has stride 4, not 2), conv2 = stage 1,
  conv3..conv5 = downsample + stage 2..4. The final LayerNorm acts on pooled features and
  goes to the head (as in torchvision and timm), initialised from the pretrained weights.
- MobileNetV3-Large / EfficientNet-B0: cut where the stride changes; the final 1x1 conv
  is in conv5. The pretrained classifier (MobileNetV3's 1280-wide hidden layer
  included) is replaced by the new head.
"""
from __future__ import annotations

from torch import nn

from tlf.models import Backbone, BackboneMeta, BackboneRequest, sequential
from tlf.models.weights import Pretrained, download_state_dict, load_weights
from tlf.preprocessing import IMAGENET_MEAN, IMAGENET_STD, BackboneFacts

# features indices per stage, for the families cut inside ``features``
FEATURE_CUTS = {
    "mobilenet_v3_large": ((0, 1), (2, 3), (4, 5, 6), (7, 8, 9, 10, 11, 12), (13, 14, 15, 16)),
    "efficientnet_b0": ((0, 1), (2,), (3,), (4, 5), (6, 7, 8)),
}


def _family(name: str) -> str:
    for family in ("vgg", "resnet", "convnext"):
        if name.startswith(family):
            return family
    return name


# the pretrained classifier, which local weight files may carry for another number of classes
OLD_CLASSIFIER = {"vgg": ("classifier",), "resnet": ("fc",), "convnext": ("classifier.2",),
                  "mobilenet_v3_large": ("classifier",), "efficientnet_b0": ("classifier",)}


def _vgg_features(name: str) -> nn.Module:
    """torchvision's VGG without its classifier (fc6/fc7 hold 120M parameters the new head
    replaces), initialised as torchvision does; state-dict keys ``features.*`` as in VGG."""
    from torchvision.models import vgg

    config = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}[name.removesuffix("_bn")]
    features = vgg.make_layers(vgg.cfgs[config], batch_norm=name.endswith("_bn"))
    for module in features.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    native = nn.Module()
    native.features = features
    return native


def _vgg(native: nn.Module) -> tuple[dict, dict, int, None]:
    blocks, current = [], []
    for index, module in native.features.named_children():
        current.append((f"features.{index}", module))
        if isinstance(module, nn.MaxPool2d):
            blocks.append(current)
            current = []
    stages = {f"conv{k}": sequential(block) for k, block in enumerate(blocks, 1)}
    return stages, {f"block{k}": f"conv{k}" for k in range(1, 6)}, 512, None


def _resnet(native: nn.Module) -> tuple[dict, dict, int, None]:
    stages = {
        "conv1": sequential([("conv1", native.conv1), ("bn1", native.bn1), ("relu", native.relu)]),
        "conv2": sequential([("maxpool", native.maxpool), ("layer1", native.layer1)]),
        "conv3": sequential([("layer2", native.layer2)]),
        "conv4": sequential([("layer3", native.layer3)]),
        "conv5": sequential([("layer4", native.layer4)]),
    }
    return stages, {"stem": "conv1"}, native.fc.in_features, None


def _features(native: nn.Module, cuts: tuple[tuple[int, ...], ...]) -> dict[str, nn.Sequential]:
    return {f"conv{k}": sequential([(f"features.{i}", native.features[i]) for i in indices])
            for k, indices in enumerate(cuts, 1)}


def _convnext(native: nn.Module) -> tuple[dict, dict, int, nn.Module]:
    stages = _features(native, ((0,), (1,), (2, 3), (4, 5), (6, 7)))
    aliases = {"stem": "conv1", **{f"stage{k}": f"conv{k + 1}" for k in range(1, 5)}}
    return stages, aliases, native.classifier[2].in_features, native.classifier[0]


def _cut_features(name: str):
    def split(native: nn.Module) -> tuple[dict, dict, int, None]:
        head = native.classifier[0] if name.startswith("mobilenet") else native.classifier[1]
        return _features(native, FEATURE_CUTS[name]), {"stem": "conv1"}, head.in_features, None
    return split


def facts(name: str) -> BackboneFacts:
    """The input of torchvision model ``name``, from its default weights' ImageClassification preset
    (torchvision's defaults filled in), without building the model."""
    import torchvision

    transform = torchvision.models.get_model_weights(name).DEFAULT.transforms()
    crop, resize = transform.crop_size[0], transform.resize_size[0]
    return BackboneFacts(image_size=crop, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                         interpolation=transform.interpolation.value, crop_pct=round(crop / resize, 4))


def build(name: str, request: BackboneRequest) -> Backbone:
    """torchvision model ``name`` with ``request``'s weights, re-wrapped into stages."""
    import torchvision

    family = _family(name)
    native = _vgg_features(name) if family == "vgg" else torchvision.models.get_model(name, weights=None)
    default = torchvision.models.get_model_weights(name).DEFAULT
    source = load_weights(native, request, lambda: Pretrained(f"torchvision:{default}",
                                                              download_state_dict(default.url, name)),
                          ignore=OLD_CLASSIFIER[family])
    split = {"vgg": _vgg, "resnet": _resnet, "convnext": _convnext}.get(family) or _cut_features(name)
    stages, aliases, feature_dim, pre_logits = split(native)
    meta = BackboneMeta.of(facts(name), name=name, feature_dim=feature_dim, weights=source)
    return Backbone(stages, meta, aliases, pre_logits)
