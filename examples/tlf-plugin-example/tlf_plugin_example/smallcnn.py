"""The ``smallcnn`` backbone: the course's small CNN, grown to five stages.

The course's network takes a (1, 28, 28) image through conv3x3 (stride 1) + ReLU +
2x2 max-pool blocks, (1,28,28) -> (32,14,14) -> (64,7,7), then flattens into a
classifier. Here it takes RGB and has the five stages every tlf backbone has, each one
halving the resolution: (3,32,32) -> (32,16,16) -> (64,8,8) -> (128,4,4) -> (128,2,2)
-> (256,1,1). Pools round up, so odd sizes (28 -> 14 -> 7 -> 4 -> 2 -> 1) work too.
"""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from tlf.errors import TlfError
from tlf.models import Backbone, BackboneMeta, BackboneRequest
from tlf.models.weights import load_into, read_state_dict
from tlf.preprocessing import BackboneFacts

CHANNELS = (32, 64, 128, 128, 256)  # conv1..conv5
# its input, stated by the spec before the model is built and taken by the built model's meta
FACTS = BackboneFacts(image_size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bilinear",
                      crop_pct=1.0)


def facts(argument: None) -> BackboneFacts:
    """The spec's ``facts``: smallcnn's input, without building it."""
    return FACTS


def block(in_channels: int, out_channels: int) -> nn.Sequential:
    """conv3x3 stride 1 + ReLU + 2x2 max-pool (rounding up)."""
    return nn.Sequential(OrderedDict([
        ("conv", nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)),
        ("relu", nn.ReLU(inplace=True)),
        ("pool", nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True)),
    ]))


def make_smallcnn(request: BackboneRequest) -> Backbone:
    """A randomly initialised smallcnn, or one loaded from ``request.weights``."""
    if request.pretrained and request.weights is None:
        raise TlfError("backbone 'smallcnn' has no pretrained weights",
                       hint="train it from scratch (a policy without pretrained weights), or pass a weights file")
    ins = (3, *CHANNELS[:-1])
    stages = OrderedDict((f"conv{i}", nn.Sequential(OrderedDict([(f"block{i}", block(c_in, c_out))])))
                         for i, (c_in, c_out) in enumerate(zip(ins, CHANNELS), start=1))  # alias blockN -> convN
    meta = BackboneMeta.of(FACTS, name="smallcnn", feature_dim=CHANNELS[-1],
                           weights=str(request.weights) if request.weights else None)
    backbone = Backbone(stages, meta)
    if request.weights is not None:
        load_into(backbone, read_state_dict(request.weights), str(request.weights))
    return backbone
