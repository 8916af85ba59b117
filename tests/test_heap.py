"""tlf.heap: freed activation-sized buffers stay in the process, so reusing them costs no page faults."""
import os
import subprocess
import sys

import pytest

import tlf.cli

PROBE = """
import ctypes, os
from tlf.heap import keep_freed_memory
applied = keep_freed_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def resident_mib():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
before = resident_mib()
buffer = libc.malloc(64 << 20)  # a 64 MiB activation, as torch's CPU allocator gets it
ctypes.memset(buffer, 1, 64 << 20)
libc.free(buffer)
print(applied, round(resident_mib() - before))
"""


def _probe(env: dict[str, str]) -> tuple[bool, int]:
    """(applied, MiB still resident after freeing a written 64 MiB buffer)."""
    out = subprocess.run([sys.executable, "-c", PROBE], env={**os.environ, **env}, capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_freed_large_buffer_stays_in_the_process():
    applied, kept = _probe({})
    assert applied and kept >= 60  # kept for the next step, which reuses it without faulting it in
    applied, kept = _probe({"TLF_MALLOC": "default"})
    assert not applied and kept < 8  # the C library's default: unmapped at free, faulted in again next time


def test_the_cli_keeps_freed_memory(monkeypatch):
    calls = []
    monkeypatch.setattr(tlf.cli, "keep_freed_memory", lambda: calls.append(1))
    monkeypatch.setattr(sys, "argv", ["tlf", "--version"])
    with pytest.raises(SystemExit):
        tlf.cli.main()
    assert calls == [1]
