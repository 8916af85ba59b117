"""``--device`` and ``--precision``: the choice among CUDA, mps and the CPU and the features each
offers, with torch's availability queries mocked (the logic runs on any machine)."""
from __future__ import annotations

import pytest
import torch

from tlf.engine import placement
from tlf.engine.placement import place
from tlf.errors import TlfError


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch):
    """``machine(cuda=..., bf16=..., mps=..., macos14=...)``: what torch reports."""
    def set_up(cuda: bool = False, bf16: bool = True, mps: bool = False, macos14: bool = True) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
        monkeypatch.setattr(torch.backends.mps, "is_macos_or_newer", lambda major, minor: macos14)
    tuned = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    yield set_up
    # place() tunes cuDNN and TF32 for CUDA: leave them as they were
    torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tuned


@pytest.mark.parametrize("cuda, mps, expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_auto_takes_cuda_then_mps_then_the_cpu(machine, cuda: bool, mps: bool, expected: str) -> None:
    machine(cuda=cuda, mps=mps)
    assert place("auto").device.type == expected


def test_cuda_gets_bf16_where_supported_else_fp16_and_pinned_memory(machine) -> None:
    machine(cuda=True, bf16=True)
    chosen = place("auto")
    assert (chosen.precision, chosen.amp_dtype, chosen.pin_memory, chosen.uses_scaler) == ("bf16", torch.bfloat16,
                                                                                          True, False)
    machine(cuda=True, bf16=False)
    chosen = place("cuda")
    assert (chosen.precision, chosen.amp_dtype, chosen.uses_scaler) == ("fp16", torch.float16, True)


def test_mps_trains_in_fp32_without_pinned_memory_and_offers_bf16_from_macos_14(machine) -> None:
    machine(mps=True, macos14=True)
    chosen = place("auto")
    assert (chosen.device.type, chosen.precision, chosen.amp_dtype, chosen.pin_memory) == ("mps", "fp32", None, False)
    assert place("mps", "bf16").amp_dtype == torch.bfloat16
    with pytest.raises(TlfError, match="--precision fp16 is not available on mps") as info:
        place("mps", "fp16")  # the loss scaler runs on CUDA only
    assert info.value.hint == "use --precision fp32 or bf16 on mps"
    machine(mps=True, macos14=False)
    with pytest.raises(TlfError, match="--precision bf16 is not available on mps"):
        place("mps", "bf16")


def test_cpu_trains_in_fp32_and_refuses_fp16(machine) -> None:
    machine()
    chosen = place("auto")
    assert (chosen.device.type, chosen.precision, chosen.pin_memory) == ("cpu", "fp32", False)
    assert place("cpu", "bf16").amp_dtype == torch.bfloat16
    with pytest.raises(TlfError, match="--precision fp16 is not available on cpu"):
        place("cpu", "fp16")


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_asking_for_a_missing_device_is_a_one_line_error(machine, device: str) -> None:
    machine()
    with pytest.raises(TlfError, match=f"--device {device} was asked for but"):
        place(device)


def test_the_loaders_pin_memory_only_on_cuda(machine) -> None:
    machine(cuda=True, mps=True)
    assert [placement.capabilities(kind).pin_memory for kind in ("cuda", "mps", "cpu")] == [True, False, False]
