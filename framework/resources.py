"""What this process may use of the machine: its CPUs (the affinity mask, not the machine's count)."""
from __future__ import annotations

import os


def usable_cpus() -> int:
    """The CPU cores this process may run on (``sched_getaffinity`` where the OS has it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
