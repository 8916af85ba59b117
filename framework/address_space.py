"""The process's address-space limit (``ulimit -v``, ``RLIMIT_AS``): a clear line instead of
what the libraries do when they run out of it.

torch, OpenCV and onnxruntime map about 4.4 GiB of address space at import (torch's CPU and
CUDA libraries alone about 3 GiB, measured with ``VmSize`` on Linux, torch 2.x), far more than
they touch. Under a smaller limit the import fails with ``ImportError: ... failed to map
segment``, OpenCV's import crashes the interpreter (a segmentation fault at 3.5 GB), and a
little over it oneDNN or the allocator fails in the middle of a step. So a command checks the
limit before it imports them (:func:`check_address_space`), and a failure that a finite limit
explains is said in one line (:func:`address_space_failure`).
"""
from __future__ import annotations

import resource

from .errors import TlfError, first_line

MIN_ADDRESS_SPACE = 11 << 29  # 5.5 GiB: the imports (4.4 GiB) and a default run (`tlf train` passed at 5.7 GiB)
FAILURES = ("failed to map segment", "cannot allocate memory", "can't allocate memory", "could not create a primitive",
            "can't start new thread", "exited unexpectedly", "std::bad_alloc")


def address_space_limit() -> int | None:
    """The soft ``RLIMIT_AS`` in bytes; None when unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else soft


def _fix() -> str:
    return (f"raise it: ulimit -v unlimited, or at least ulimit -v {MIN_ADDRESS_SPACE >> 10} "
            f"({MIN_ADDRESS_SPACE / 2**30:.1f} GiB)")


def check_address_space() -> None:
    """Raise :class:`TlfError` when ``ulimit -v`` is below what tlf's libraries need to load."""
    limit = address_space_limit()
    if limit is not None and limit < MIN_ADDRESS_SPACE:
        raise TlfError(f"the address-space limit (ulimit -v) of {limit / 2**30:.1f} GiB is too small to load "
                       f"torch and OpenCV, which map about 4.4 GiB", hint=_fix())


def address_space_failure(exc: BaseException) -> TlfError | None:
    """The one-line error for ``exc`` when a finite address-space limit explains it (an import
    that could not map a library, an allocation or a thread refused); None otherwise."""
    limit = address_space_limit()
    if limit is None or not isinstance(exc, (ImportError, MemoryError, RuntimeError, OSError)):
        return None
    text = first_line(exc)
    if not isinstance(exc, MemoryError) and not any(words in text.lower() for words in FAILURES):
        return None
    return TlfError(f"out of address space under the limit ulimit -v sets: {text[:200]}", hint=_fix())
