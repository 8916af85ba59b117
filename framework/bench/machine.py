"""The facts of the machine a benchmark ran on: device, versions, CPU."""
from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from ..resources import usable_cpus


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo, else what :mod:`platform` says)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_facts(device: torch.device) -> dict:
    """Device (its name unless the CPU), torch/CUDA/driver versions, CPU model, cores and load, as recorded with the figures."""
    facts = {"device": device.type, "device_name": None, "torch": torch.__version__, "cpu": cpu_model(),
             "cores": usable_cpus(), "load_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None}
    if device.type == "cuda":
        facts["device_name"] = torch.cuda.get_device_name(device)
        facts["cuda"] = torch.version.cuda
        facts["driver"] = _nvidia_driver()
    elif device.type == "mps":
        facts["device_name"] = f"Apple {platform.machine()} (mps)"
    return facts


def _nvidia_driver() -> str | None:
    """The NVIDIA driver's version, as the kernel module reports it (None when not readable)."""
    version = Path("/proc/driver/nvidia/version")
    if not version.is_file():
        return None
    words = version.read_text(errors="replace").split()
    return next((w for w in words if w[:1].isdigit() and w.count(".") >= 1), None)
