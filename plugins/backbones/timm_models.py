"""timm backbones: any CNN whose ``feature_info`` has reductions 2 (optional), 4, 8, 16, 32
(the pyramid contract), or a ViT-style model (the columnar contract: :mod:`.timm_columnar`).

The model's modules are taken in order (containers holding ``feature_info`` modules
are opened), up to the pooling / classifier; stage convK ends with the last module
whose output has reduction 2^K. Modules after the reduction-32 one (EfficientNet's
``conv_head``/``bn2``, ConvNeXt's ``norm_pre``) go to conv5. Without a reduction-2
module (ConvNeXt), conv1 is everything before the first reduction-4 module. The cut
is checked against ``forward_features`` on a probe input.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tlf.errors import TlfError
from tlf.models import STAGES, Backbone, BackboneMeta, BackboneRequest, sequential
from tlf.models.weights import Pretrained, load_weights
from tlf.preprocessing import BackboneFacts

from .timm_columnar import columnar, is_columnar
from .timm_weights import pretrained

# where forward_features ends: pooling and classifier modules
HEAD_MODULES = {"global_pool", "head", "fc", "classifier", "head_drop", "pre_logits"}


def _units(model: nn.Module, opened: set[str]) -> list[tuple[str, nn.Module]]:
    """Modules in order: ``model``'s children, containers of feature modules opened."""
    units = []
    for name, child in model.named_children():
        if name in HEAD_MODULES:
            break
        units.extend(_open(name, child, opened))
    return units


def _open(name: str, module: nn.Module, opened: set[str]) -> list[tuple[str, nn.Module]]:
    if name not in opened:
        return [(name, module)]
    return [unit for child, sub in module.named_children() for unit in _open(f"{name}.{child}", sub, opened)]


def split(model: nn.Module, name: str) -> dict[str, nn.Sequential]:
    """``model`` (a timm model) cut into stages conv1..conv5; :class:`TlfError` if it cannot be."""
    info = getattr(model, "feature_info", None)
    reductions: dict[int, str] = {}
    for entry in info or []:
        reductions[entry["reduction"]] = entry["module"]  # the last module at each reduction
    if any(r not in reductions for r in (4, 8, 16, 32)) or max(reductions) != 32:
        found = ", ".join(f"{m} (/{r})" for r, m in sorted(reductions.items())) or "none"
        raise TlfError(f"timm model {name!r} follows neither stage contract: it cannot be cut into stages "
                       f"conv1..conv5 at strides 2..32 (feature modules: {found}), and it is no ViT-style model "
                       f"(a patch embedding, then a sequence of blocks)",
                       hint="use a CNN with a five-level feature pyramid (resnet, efficientnet, convnext, ...) or a "
                            "ViT-style model (vit_*, deit_*, *_dinov2, *_clip_*, *_siglip_*)")
    opened = set()  # containers of feature modules ("blocks" for "blocks.4"), opened into their children
    for module_name in reductions.values():
        parts = module_name.split(".")
        opened.update(".".join(parts[:i]) for i in range(1, len(parts)))
    units = _units(model, opened)
    index = {unit_name: i for i, (unit_name, _) in enumerate(units)}
    ends = {}
    for k in range(1, 6):
        module_name = reductions.get(2 ** k)
        if module_name is not None and module_name not in index:
            raise TlfError(f"timm model {name!r}: feature module {module_name!r} is not among its "
                           f"top-level layers", hint="this architecture cannot be split into stages")
        ends[k] = index[module_name] if module_name is not None else None
    if ends[1] is None:
        ends[1] = ends[2] - 1  # stride-4 stem: conv1 = everything before the first /4 module
    ends[5] = len(units) - 1
    bounds = [-1] + [ends[k] for k in range(1, 6)]
    if any(b >= e for b, e in zip(bounds, bounds[1:])):
        raise TlfError(f"timm model {name!r}: its feature modules do not give five non-empty stages",
                       hint="this architecture cannot be split into stages")
    return {stage: sequential(units[bounds[k] + 1: bounds[k + 1] + 1]) for k, stage in enumerate(STAGES)}


def _check(model: nn.Module, stages: dict[str, nn.Sequential], name: str) -> None:
    """The stages must compute exactly ``forward_features`` (module order = execution order)."""
    if any(p.is_meta for p in model.parameters()):
        return  # a skeleton without weights (tlf.plan reads its stage names): nothing to run
    model.eval()
    probe = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model.forward_features(probe)
        got = nn.Sequential(*stages.values())(probe)
    if got.shape != expected.shape or not torch.allclose(got, expected, atol=1e-5, rtol=1e-4):
        raise TlfError(f"timm model {name!r} does not run its layers in module order, so it cannot be "
                       f"cut into stages", hint="pick another timm model, or write a backbone plugin for it")
    model.train()


def _pre_logits(model: nn.Module) -> nn.Module | None:
    """The norm applied to pooled features before the classifier (ConvNeXt-style heads)."""
    norm = getattr(getattr(model, "head", None), "norm", None)
    return norm if isinstance(norm, nn.Module) and not isinstance(norm, nn.Identity) else None


def check_name(name: str) -> None:
    """:class:`TlfError` with the closest names when timm has no model ``name``."""
    import timm

    if not timm.is_model(name):
        from tlf.registry import suggest
        close = suggest(name, timm.list_models())
        did_you_mean = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise TlfError(f"unknown timm model {name!r}{did_you_mean}", hint="timm.list_models() lists them")


def create(name: str) -> nn.Module:
    """timm model ``name`` with random weights (a ViT with ``dynamic_img_size``: its positional
    embedding follows the image size); unknown names raise :class:`TlfError`."""
    import timm

    check_name(name)
    try:
        return timm.create_model(name, pretrained=False, dynamic_img_size=True)
    except TypeError:  # not a ViT: the keyword is unknown to the model's class
        return timm.create_model(name, pretrained=False)


def _cut(model: nn.Module, name: str) -> tuple[dict[str, nn.Sequential], dict[str, Any]]:
    """The stages by the contract ``model`` follows, and the Backbone keyword arguments that go with them."""
    if is_columnar(model):
        return columnar(model, name)
    stages = split(model, name)
    _check(model, stages, name)
    return stages, {"pre_logits": _pre_logits(model)}


def facts(name: str) -> BackboneFacts:
    """The input of timm model ``name`` (``arch`` or ``arch.tag``) from its pretrained config, as
    ``timm.create_model`` resolves it, with timm's defaults where it is silent (``resolve_data_config``),
    without building the model; unknown names raise :class:`TlfError`."""
    from timm.data import resolve_data_config
    from timm.models import resolve_pretrained_cfg, split_model_name_tag

    check_name(name)
    architecture, tag = split_model_name_tag(name)
    cfg: dict[str, Any] = resolve_data_config(pretrained_cfg=resolve_pretrained_cfg(architecture, tag or None).to_dict())
    return BackboneFacts(image_size=int(cfg["input_size"][-1]), mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
                         interpolation=cfg["interpolation"], crop_pct=float(cfg["crop_pct"]))


def wrap(model: nn.Module, name: str, meta_name: str, source: str | None) -> Backbone:
    """A :class:`Backbone` from timm model ``name`` (``model``, already holding its weights)."""
    stages, extra = _cut(model, name)
    aliases = {unit: stage for stage, seq in stages.items() for unit in seq._modules}
    meta = BackboneMeta.of(facts(name), name=meta_name, feature_dim=int(model.num_features), weights=source)
    return Backbone(stages, meta, aliases, **extra)


def classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    classifier = model.pretrained_cfg.get("classifier")
    return (classifier,) if isinstance(classifier, str) else tuple(classifier or ())


def build(name: str, request: BackboneRequest) -> Backbone:
    """``timm:NAME``: weights through timm's own API (Hugging Face hub cache), or a local file."""
    model = create(name)
    cfg = model.pretrained_cfg
    try:
        source = load_weights(model, request, lambda: Pretrained(
            f"timm:{cfg.get('architecture', name)}.{cfg.get('tag') or 'default'}", pretrained(name, cfg).state_dict()),
            ignore=classifier_prefixes(model))
    except TlfError as exc:  # name the model the weights were meant for
        raise TlfError(f"timm model {name!r}: {exc.message}", hint=exc.hint) from None
    return wrap(model, name, f"timm:{name}", source)
