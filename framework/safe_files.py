"""Every file tlf writes or locks goes through here: nothing half-written, no planted link followed.

- :func:`atomic_write` writes through the descriptor of a temp file created exclusively
  (``tempfile.mkstemp``: ``O_EXCL``, an unpredictable name) in the target's own folder, ``fsync``-s
  it and renames it into place. A rename replaces a link planted at the final name instead of
  writing through it, and a descriptor cannot be redirected by a link planted after it was opened.
- Libraries that write only to a name (onnx, onnxruntime's quantizer) get a name in a private
  folder (:func:`scratch_file`: mode 0700 in the system's sticky temp folder); :func:`publish`
  copies the result into place with :func:`atomic_write`.
- Temp names are ``.NAME.PID-HOST.RANDOM.tmp``: :func:`remove_stale_temps` deletes those whose
  process is gone (a kill, a power cut), and leaves the ones of a live process alone (and those of
  another machine sharing the folder, until they are a day old).
- :func:`lock` takes an exclusive lock with ``filelock`` (``flock`` on POSIX, ``msvcrt`` on
  Windows) on a lock file that must not be a link: ``lstat`` refuses one, and filelock itself
  opens with ``O_NOFOLLOW`` and without ``O_TRUNC``.
- :func:`write_error` turns an ``OSError`` anywhere in a failure's chain into one line.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import TlfError

WRITE_ERRORS = {  # errno -> (cause, fix)
    errno.ENOSPC: ("the disk is full", "free space on that disk (or write runs elsewhere with --out), then resume"),
    errno.EDQUOT: ("the disk quota is exceeded", "free space within your quota (or use --out elsewhere), then resume"),
    errno.EFBIG: ("the file is too large for this file system or process limit",
                  "raise the file-size limit (ulimit -f) or write runs to another file system with --out"),
    errno.EPERM: ("permission denied", "make the folder writable, or choose another folder"),
    errno.EACCES: ("permission denied", "make the folder writable, or choose another folder"),
    errno.EROFS: ("the file system is read-only", "choose a folder on a writable file system"),
    errno.ELOOP: ("it is a symbolic link, which tlf does not write through",
                  "remove the link (something planted it there), then run again"),
}
HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]  # folders may be shared by machines
TEMP_NAME = re.compile(r"^\..+\.(?P<pid>\d+)-(?P<host>[0-9a-f]{6})\.[A-Za-z0-9_]{8}\.tmp$")  # .NAME.PID-HOST.RANDOM.tmp
STALE_AFTER_S = 24 * 3600  # a temp file untouched this long is stale whatever its process id says
NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)


def write_error(path: Path, exc: BaseException, fix: str | None = None) -> TlfError | None:
    """A one-line :class:`TlfError` for a failed write of ``path``, when ``exc`` is (or was caused
    by) an ``OSError``; torch.save wraps the OSError in a RuntimeError, so the chain is searched.
    ``fix`` replaces the errno's usual hint."""
    if isinstance(exc, TlfError):
        return exc
    seen = exc
    while seen is not None and not isinstance(seen, OSError):
        seen = seen.__cause__ or seen.__context__
    if seen is None:
        return None
    cause, usual = WRITE_ERRORS.get(seen.errno, (seen.strerror or type(seen).__name__, "check the folder and disk"))
    return TlfError(f"cannot write {path}: {cause} ({errno.errorcode.get(seen.errno, seen.errno)}); "
                    f"the previous version of the file is kept", hint=fix or usual)


def temp_prefix(name: str) -> str:
    """``.NAME.PID-HOST.``: the start of a temp name for ``name`` (mkstemp adds ``RANDOM.tmp``)."""
    return f".{name}.{os.getpid()}-{HOST}."


def create_temp(path: Path) -> tuple[int, Path]:
    """(open descriptor, name) of a new file ``.NAME.PID-HOST.RANDOM.tmp`` beside ``path``, created
    exclusively by ``tempfile.mkstemp``: write through the descriptor, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=path.parent)
    return fd, Path(tmp)


def new_temp(path: Path) -> Path:
    """A new empty file ``.NAME.PID-HOST.RANDOM.tmp`` beside ``path``, created exclusively (mkstemp)."""
    fd, tmp = create_temp(path)
    os.close(fd)
    return tmp


def rename_synced(tmp: Path, path: Path) -> None:
    """``fsync`` the finished temp file ``tmp`` (opened without following a link) and rename it
    to ``path``: for writers that fill a temp file by mapping it (the decode cache)."""
    fd = os.open(tmp, os.O_RDONLY | NO_FOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def temp_folder(path: Path) -> Path:
    """A new folder ``.NAME.PID-HOST.RANDOM.tmp`` beside ``path`` (``tempfile.mkdtemp``: created
    exclusively, mode 0700), after removing those that killed processes left there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent)
    return Path(tempfile.mkdtemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=path.parent))


@contextlib.contextmanager
def scratch_file(path: Path) -> Iterator[Path]:
    """A file name for writers that take only a name (onnx, onnxruntime's quantizer), inside a
    private folder (:func:`temp_folder` in the system's temp folder: mode 0700 under its sticky
    bit, so nobody else can plant a link there or swap the folder); :func:`publish` copies the
    finished file into place. The folder goes afterwards; an ``OSError`` is one line."""
    folder = None
    try:
        with one_line_errors(path):
            folder = temp_folder(Path(tempfile.gettempdir()) / f"tlf-{path.name}")
            yield folder / path.name
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def one_line_errors(path: Path) -> Iterator[None]:
    """An ``OSError`` in the block (anywhere in an exception's chain) as one line about writing ``path``."""
    try:
        yield
    except Exception as exc:
        error = write_error(path, exc)
        if error is not None:
            raise error from None
        raise


def publish(tmp: Path, path: Path) -> None:
    """Copy the finished scratch file ``tmp`` (:func:`scratch_file`) to ``path`` with
    :func:`atomic_write`: through the descriptor of an exclusive temp beside ``path``, renamed
    into place (replacing a link there, never writing through it)."""
    fd = os.open(tmp, os.O_RDONLY | NO_FOLLOW)
    with os.fdopen(fd, "rb") as source:
        atomic_write(path, lambda target: shutil.copyfileobj(source, target), "wb")


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "w") -> None:
    """Write through ``write(file)`` into a new temp file beside ``path``, then rename it into place.

    A failure leaves ``path`` as it was and no temp file; an OS-level write failure is a
    :class:`TlfError` (see :func:`write_error`).
    """
    tmp = None
    try:
        with one_line_errors(path):
            fd, tmp = create_temp(path)
            with os.fdopen(fd, mode) as f:  # the descriptor mkstemp opened: nothing swapped in since
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def refuse_link(path: Path) -> None:
    """Raise a one-line :class:`TlfError` when ``path`` exists and is a link or not a regular file."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISLNK(mode):
        raise TlfError(f"{path} is a symbolic link; tlf does not write or lock through links in its folders",
                       hint="remove the link (something planted it there), then run again")
    if not stat.S_ISREG(mode):
        raise TlfError(f"{path} is not a regular file", hint="remove it, then run again")


def lock(path: Path, timeout: float = 0) -> Any:
    """The exclusive lock on ``path`` (a ``filelock.FileLock``, held until released or the process
    ends; the file, which stays, holds the holder's process id).
    Raises :class:`LockHeld` when another process still holds it after ``timeout`` seconds (-1:
    wait for ever), a :class:`TlfError` for a link."""
    from filelock import FileLock, Timeout

    refuse_link(path)

    def stamp(fd: int) -> None:
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode())

    held = FileLock(path, timeout=timeout, thread_local=False, preserve_lock_file=True, on_acquired=stamp)
    try:
        held.acquire()
    except Timeout:
        raise LockHeld(path, _holder(path)) from None
    except OSError as exc:
        raise write_error(path, exc) from None
    return held


class LockHeld(Exception):
    """Another process holds a lock taken with :func:`lock`."""

    def __init__(self, path: Path, holder: str) -> None:
        self.path, self.holder = path, holder
        super().__init__(f"{path} is held by process {holder}")


def _holder(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | NO_FOLLOW | getattr(os, "O_NONBLOCK", 0))
        try:
            return os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        finally:
            os.close(fd)
    except OSError:
        return "unknown"


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (on this machine). Without POSIX signals: assumed alive."""
    if os.name != "posix":
        return True  # os.kill(pid, 0) would end the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def is_stale_temp(path: Path) -> bool:
    """Whether ``path`` is a temp file (or folder) named by :func:`new_temp` whose writer is gone:
    its process (on this machine) no longer exists, or it was not touched for ``STALE_AFTER_S``."""
    match = TEMP_NAME.match(path.name)
    if match is None or (int(match["pid"]) == os.getpid() and match["host"] == HOST):
        return False
    try:
        age = time.time() - os.lstat(path).st_mtime
    except OSError:
        return False
    return age > STALE_AFTER_S or (match["host"] == HOST and not alive(int(match["pid"])))


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete the stale temp files and folders (:func:`is_stale_temp`) directly in ``folder``;
    the ones of live processes (a concurrent run) stay. Returns what was removed."""
    try:
        entries = [Path(e.path) for e in os.scandir(folder)]
    except OSError:
        return []
    removed = []
    for path in entries:
        if not is_stale_temp(path):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):  # another user's, in a shared temp folder
                path.unlink(missing_ok=True)
        removed.append(path)
    return removed
