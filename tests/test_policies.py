"""Freeze policies on every built-in backbone family: frozen means frozen, trainable trains."""
from __future__ import annotations

import pytest
import torch
from helpers_models import model as fresh_model

from tlf.errors import TlfError
from tlf.models import STAGES, is_norm
from tlf.policies import Gradual, Partial, Transfer, build_policy, sync_scheduler

# the smallest member of each family (random init: no downloads)
FAMILIES = ["vgg11_bn", "resnet18", "convnext_tiny", "mobilenet_v3_large", "efficientnet_b0",
            "efficientnet_lite0", "timm:resnet18"]
POLICIES = ["scratch", "transfer", "partial:conv3", "init", "gradual:1", "discriminative:0.5"]


def policy(text: str):
    return build_policy(text)


def one_step(model, policy_obj, epoch: int = 0) -> torch.optim.Optimizer:
    """One AdamW step on a real cross-entropy loss (model in train mode)."""
    optimizer = torch.optim.AdamW(policy_obj.param_groups(model, lr=1e-2, weight_decay=0.05))
    policy_obj.on_epoch_start(model, epoch, optimizer)
    model.train()
    torch.manual_seed(0)
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([0, 2])
    loss = torch.nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return optimizer


def snapshot(model) -> dict[str, torch.Tensor]:
    state = {name: p.detach().clone() for name, p in model.named_parameters()}
    state.update({name: b.clone() for name, b in model.named_buffers()})
    return state


def stage_of(name: str) -> str:
    parts = name.split(".")
    return parts[2] if parts[:2] == ["backbone", "stages"] else "head"


@pytest.mark.parametrize("text", POLICIES)
@pytest.mark.parametrize("backbone", FAMILIES)
def test_frozen_is_bit_identical_and_trainable_changes(backbone: str, text: str) -> None:
    model = fresh_model(backbone)
    chosen = policy(text)
    chosen.apply(model)
    before = snapshot(model)
    optimizer = one_step(model, chosen, epoch=1)  # gradual:1 has thawed conv5 at epoch 1
    frozen = set(model.frozen_stages)
    expected = {"transfer": set(STAGES), "partial:conv3": {"conv1", "conv2"}, "gradual:1": set(STAGES[:4])}.get(text, set())
    assert frozen == expected
    in_optimizer = {id(p) for g in optimizer.param_groups for p in g["params"]}
    params = dict(model.named_parameters())
    for name, value in model.state_dict().items():
        stage = stage_of(name)
        if stage in frozen:
            assert torch.equal(value, before[name]), f"{name} of frozen {stage} changed"
            if name in params:
                assert not params[name].requires_grad and id(params[name]) not in in_optimizer
        elif name in params:
            grad = params[name].grad
            assert id(params[name]) in in_optimizer and grad is not None
            if grad.any():  # (timm zero-initialises the last norm of residual blocks: zero gradients behind it)
                assert not torch.equal(value, before[name]), f"trainable {name} did not change"
        elif name.endswith("num_batches_tracked"):
            assert value == before[name] + 1, f"BN statistics {name} of a trained stage were not updated"


def test_frozen_stages_stay_in_eval_mode_through_train() -> None:
    model = fresh_model("resnet18")
    policy("partial:conv4").apply(model)
    model.train()
    for name, stage in model.backbone.stages.named_children():
        assert all(m.training == (name in ("conv4", "conv5")) for m in stage.modules())
    assert model.head.training
    model.eval()
    assert not any(m.training for m in model.modules())


def test_train_bn_keeps_norm_affine_trainable_but_statistics_frozen() -> None:
    model = fresh_model("resnet18")
    chosen = Transfer(train_bn=True)
    chosen.apply(model)
    norms = [m for m in model.backbone.modules() if is_norm(m)]
    convs = [m for m in model.backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(p.requires_grad for m in norms for p in m.parameters())
    assert not any(p.requires_grad for m in convs for p in m.parameters())
    stats = [m.running_mean.clone() for m in norms]
    weights = [m.weight.detach().clone() for m in norms]
    one_step(model, chosen)
    assert all(torch.equal(m.running_mean, s) for m, s in zip(norms, stats))
    assert all(not torch.equal(m.weight, w) for m, w in zip(norms, weights))


def test_param_groups_cover_trainable_params_once_without_decay_on_norm_and_bias() -> None:
    model = fresh_model("convnext_tiny")
    chosen = Partial("conv4")
    chosen.apply(model)
    groups = chosen.param_groups(model, lr=1e-3, weight_decay=0.05)
    assert [g["name"] for g in groups] == ["conv4", "conv4.no_decay", "conv5", "conv5.no_decay",
                                           "head", "head.no_decay"]
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters() if p.requires_grad}
    for group in groups:
        if group["name"].endswith(".no_decay"):
            assert group["weight_decay"] == 0 and all(p.ndim <= 1 for p in group["params"])
        else:
            assert group["weight_decay"] == 0.05 and all(p.ndim > 1 for p in group["params"])
    # the ConvNeXt LayerNorm on pooled features belongs to the head
    assert isinstance(model.head.norm, torch.nn.LayerNorm)


def test_discriminative_learning_rates_decay_per_stage() -> None:
    model = fresh_model("resnet18")
    chosen = policy("discriminative:0.1")
    chosen.apply(model)
    lrs = {g["name"]: g["lr"] for g in chosen.param_groups(model, lr=1.0, weight_decay=0.0)}
    assert lrs["head"] == 1.0
    for k in range(1, 6):
        assert lrs[f"conv{k}"] == pytest.approx(0.1 ** (6 - k))
    assert not model.frozen_stages
    assert chosen.defaults["lr"] > 0 and chosen.defaults["epochs"] > 0


def test_gradual_unfreezes_one_stage_every_n_epochs_and_adds_groups() -> None:
    model = fresh_model("resnet18")
    chosen = policy("gradual:2")
    assert isinstance(chosen, Gradual)
    chosen.apply(model)
    assert model.frozen_stages == STAGES
    optimizer = torch.optim.AdamW(chosen.param_groups(model, lr=1e-3, weight_decay=0.05))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10)
    assert [g["name"] for g in optimizer.param_groups] == ["head", "head.no_decay"]
    assert not chosen.on_epoch_start(model, 0, optimizer)
    assert not chosen.on_epoch_start(model, 1, optimizer)
    optimizer.step()
    scheduler.step()
    assert chosen.on_epoch_start(model, 2, optimizer)
    assert model.frozen_stages == STAGES[:4]
    names = [g["name"] for g in optimizer.param_groups]
    assert names == ["head", "head.no_decay", "conv5", "conv5.no_decay"]
    head, conv5 = optimizer.param_groups[0], optimizer.param_groups[2]
    assert conv5["lr"] == pytest.approx(head["lr"]) and conv5["lr"] < 1e-3  # joins where the schedule is
    assert {id(p) for p in model.backbone.stages.conv5.parameters()} <= {id(p) for p in conv5["params"]} | {
        id(p) for p in optimizer.param_groups[3]["params"]}
    sync_scheduler(scheduler, optimizer)
    scheduler.step()
    assert len({round(g["lr"], 12) for g in optimizer.param_groups}) == 1
    assert not chosen.on_epoch_start(model, 3, optimizer)
    for epoch in range(4, 11):
        chosen.on_epoch_start(model, epoch, optimizer)
    assert model.frozen_stages == ()
    assert len(optimizer.param_groups) == 12


def test_lambda_scheduler_learns_about_new_groups() -> None:
    model = fresh_model("resnet18")
    chosen = Gradual(1)
    chosen.apply(model)
    optimizer = torch.optim.SGD(chosen.param_groups(model, lr=1.0, weight_decay=0.0))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 ** step)
    optimizer.step()
    scheduler.step()
    chosen.on_epoch_start(model, 1, optimizer)
    sync_scheduler(scheduler, optimizer)
    optimizer.step()
    scheduler.step()
    assert [g["lr"] for g in optimizer.param_groups] == [0.25] * len(optimizer.param_groups)


@pytest.mark.parametrize("text, expected", [("partial:layer4", STAGES[:4]), ("partial:layer2", STAGES[:2]),
                                            ("partial:4", STAGES[:3]), ("finetune:stem", ())])
def test_native_names_are_aliases(text: str, expected: tuple[str, ...]) -> None:
    model = fresh_model("resnet18")
    policy(text).apply(model)
    assert model.frozen_stages == expected


def test_wrong_stage_name_lists_valid_stages() -> None:
    model = fresh_model("vgg11")
    with pytest.raises(TlfError) as info:
        policy("partial:layer4").apply(model)
    message = str(info.value)
    assert "'layer4'" in message and all(s in message for s in STAGES) and "block4" in message


@pytest.mark.parametrize("text", ["gradual:0", "gradual:two", "discriminative:2", "discriminative:x",
                                  "transfer:conv3"])
def test_bad_policy_arguments(text: str) -> None:
    with pytest.raises(TlfError):
        policy(text)


def test_policy_names_and_defaults() -> None:
    assert policy("linear").name == "transfer" and policy("freeze").name == "transfer"
    assert policy("full").name == "init" and policy("finetune").name == "partial:conv5"
    assert policy("gradual").name == "gradual:2" and policy("discriminative").name == "discriminative:0.5"
    assert not policy("scratch").pretrained and policy("transfer").pretrained
    assert policy("scratch").defaults["epochs"] > policy("transfer").defaults["epochs"]


def test_warmup_then_cosine_schedules_new_groups_like_the_old_ones() -> None:
    model = fresh_model("resnet18")
    chosen = Gradual(2)
    chosen.apply(model)
    optimizer = torch.optim.AdamW(chosen.param_groups(model, lr=1e-3, weight_decay=0.05))
    sched = torch.optim.lr_scheduler
    scheduler = sched.SequentialLR(optimizer, [sched.LinearLR(optimizer, 0.1, total_iters=2),
                                               sched.CosineAnnealingLR(optimizer, T_max=6)], milestones=[2])
    for epoch in range(10):
        if chosen.on_epoch_start(model, epoch, optimizer):
            sync_scheduler(scheduler, optimizer)
        lrs = {round(g["lr"], 12) for g in optimizer.param_groups}
        assert len(lrs) == 1, (epoch, lrs)
        optimizer.step()
        scheduler.step()
    assert len(optimizer.param_groups) == 10

