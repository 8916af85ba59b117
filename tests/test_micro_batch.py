"""A micro-batch that fits the available memory, with accumulation up to the requested batch
(tlf.engine.micro_batch)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import tlf
from tlf.engine import micro_batch
from tlf.engine.micro_batch import ACTIVATION_FACTOR, SLACK, TARGET_ENV, fitting_micro_batch, step_bytes, step_room
from tlf.errors import TlfError
from tlf.rundir import load_checkpoint
from test_engine import FAST, colour_data  # noqa: F401  (the same tiny colour data)

MIB = 2**20


def test_the_largest_divisor_of_the_batch_that_fits_is_chosen():
    per_image, fixed = 50 * MIB, 100 * MIB
    assert fitting_micro_batch(64, per_image, fixed, 6_000 * MIB) == 64  # 64 x 50 + 100 = 3300 MiB fits in 6000
    room = fixed + 20 * per_image  # 20 images fit: 16 is the largest divisor of 64 up to 20
    assert fitting_micro_batch(64, per_image, fixed, room) == 16
    assert fitting_micro_batch(24, per_image, fixed, room) == 12
    assert fitting_micro_batch(64, per_image, fixed, 1) == 1  # nothing fits: one image at a time
    assert fitting_micro_batch(64, 0, fixed, 1) == 1
    assert fitting_micro_batch(7, 0, 0, 1) == 7  # a frozen model holds nothing per image


def test_the_probe_counts_activations_per_image_and_leaves_the_model_as_it_was():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 16 * 16, 2))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fixed, per_image = step_bytes(model, 16, torch.device("cpu"), channels_last=False)
    assert fixed == 3 * sum(p.numel() * 4 for p in model.parameters())
    # among the input, conv, BN and ReLU outputs (3 + 4 + 4 + 4 maps of 16 x 16 fp32), at least 11 maps are saved
    saved = per_image / ACTIVATION_FACTOR
    assert (3 + 4 + 4) * 16 * 16 * 4 - 1 <= saved <= (3 + 4 * 4) * 16 * 16 * 4, per_image
    assert all(m.training for m in model.modules())
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)


def test_on_the_cpu_the_memory_target_bounds_the_step_whatever_is_available(monkeypatch):
    """Plenty available (1 TiB): the step's room is the memory target less what the process holds,
    and the choice says so; a target that is not a size is a one-line error."""
    import psutil
    monkeypatch.setattr(micro_batch, "available_bytes", lambda device: 2**40)
    monkeypatch.delenv(TARGET_ENV, raising=False)
    room, words = step_room(torch.device("cpu"))
    held = psutil.Process().memory_info().rss
    assert abs(room - (micro_batch.DEFAULT_TARGET - held - SLACK)) < 256 * MIB, (room, held)
    assert "a memory target of 2,861 MiB ($TLF_MEMORY_TARGET)" in words
    monkeypatch.setenv(TARGET_ENV, "64G")
    assert step_room(torch.device("cpu"))[0] > 60 * 2**30
    for wrong in ("lots", "inf", "-1G", "0"):
        monkeypatch.setenv(TARGET_ENV, wrong)
        with pytest.raises(TlfError, match=f"TLF_MEMORY_TARGET='{wrong}' is not a size"):
            step_room(torch.device("cpu"))


def test_the_address_space_limit_bounds_the_step(monkeypatch):
    import psutil
    monkeypatch.setattr(micro_batch, "available_bytes", lambda device: 2**40)
    monkeypatch.setenv(TARGET_ENV, "1T")
    mapped = psutil.Process().memory_info().vms
    monkeypatch.setattr(micro_batch, "address_space_limit", lambda: mapped + SLACK + 100 * MIB)
    room, words = step_room(torch.device("cpu"))
    assert 0 < room <= 100 * MIB and "an address-space limit of" in words and "(ulimit -v)" in words


@pytest.mark.parametrize("short_of", ["available memory", "the memory target"])
def test_a_run_short_of_memory_accumulates_micro_batches(short_of, colour_data, tmp_path, monkeypatch, capsys):  # noqa: F811
    """Available memory forced to 1 byte, or a memory target of 1 byte with plenty available:
    batch 8 trains as 8 micro-batches of 1 (the same weights as asking for --batch-size 1
    --accumulate 8), recorded in the plan and said at the start."""
    common = dict(dataset=f"folder:{colour_data}", policy="transfer", epochs=1, lr=3e-3, **{**FAST, "batch_size": 8})
    asked = tlf.train(out=str(tmp_path / "asked"), quiet=True, **{**common, "batch_size": 1, "accumulate": 8})
    if short_of == "available memory":
        monkeypatch.setattr(micro_batch, "available_bytes", lambda device: 1)
    else:
        monkeypatch.setattr(micro_batch, "available_bytes", lambda device: 2**40)
        monkeypatch.setenv(TARGET_ENV, "1")
    capsys.readouterr()
    fitted = tlf.train(out=str(tmp_path / "fitted"), **common)
    assert (fitted.summary["batch_size"], fitted.summary["accumulate"]) == (1, 8), fitted.summary
    choice = next(c for c in fitted.summary["defaults_chosen"] if c["setting"] == "batch_size")
    assert choice["value"] == 1 and choice["policy_default"] == 8 and "1 images x 8 accumulated" in choice["why"]
    assert "batch_size 1 (a step of 8 images needs about" in capsys.readouterr().err
    a, b = load_checkpoint(asked.directory)["model"], load_checkpoint(fitted.directory)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
