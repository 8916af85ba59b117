"""Downloads into the cache, checksum verification and safe archive extraction.

- A download goes to ``<file>.part`` and is renamed into place only once complete and verified,
  so an interrupted download never looks finished; the next attempt continues it where the server
  supports HTTP range requests, and starts over otherwise.
- A known SHA-256 (or MD5) is checked; a mismatch deletes the file and says so. Without a known
  checksum, the SHA-256 of the first download is recorded next to the file (``<file>.sha256``)
  and later uses of the cached file are checked against it (trust on first use).
- Extraction refuses absolute paths, ``..`` components and special files, and accepts a tar link
  only when it resolves, through the members before it, to a regular file inside the target.
  Archives extract into a temporary folder renamed into place, so a folder that exists is complete.
- One process downloads and extracts an archive at a time (a lock beside it); another one waits,
  saying so, then uses the result. Temp folders of killed processes are removed by the next one.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator

from ..errors import TlfError
from ..messages import notice
from ..safe_files import NO_FOLLOW, WRITE_ERRORS, LockHeld, atomic_write, lock, temp_folder, write_error

CHUNK = 1 << 20
TIMEOUT_S = 60


@dataclass(frozen=True)
class Archive:
    """A file to download: where from, what to call it, and its checksum when known."""

    url: str
    filename: str
    sha256: str | None = None
    md5: str | None = None

    def __post_init__(self) -> None:
        if "/" in self.filename or self.filename in ("", ".", ".."):
            raise ValueError(f"invalid archive file name {self.filename!r}")


def file_hash(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def offline_hint(archive: Archive, dest: Path, extracted: Path | None = None) -> str:
    """Where a user without network access puts the files by hand."""
    where = f"download {archive.url} elsewhere and put it at {dest}"
    if extracted is not None:
        where += f", or put the extracted folder at {extracted}"
    return where + ", or pass --data-dir PATH to use an existing copy"


def _verify(path: Path, archive: Archive, record: Path, *, fresh: bool) -> None:
    """Check ``path`` against the archive's checksums; without a known SHA-256, compare with (or
    write, when ``fresh``) the one recorded in ``record``."""
    actual = file_hash(path)
    expected, source = archive.sha256, "the checksum tlf knows for it"
    if expected is None and record.exists() and not fresh:
        expected, source = record.read_text().split()[0], f"the checksum recorded at first download in {record}"
    if expected is not None and actual != expected.lower():
        path.unlink(missing_ok=True)
        raise TlfError(
            f"checksum mismatch for {path.name} from {archive.url}: expected sha256 {expected}, "
            f"got {actual} ({source}); the file was deleted",
            hint="download it again; if this repeats, the file changed upstream or the download is being tampered with")
    if archive.md5 is not None:
        actual_md5 = file_hash(path, "md5")
        if actual_md5 != archive.md5.lower():
            path.unlink(missing_ok=True)
            raise TlfError(
                f"checksum mismatch for {path.name} from {archive.url}: expected md5 {archive.md5}, "
                f"got {actual_md5}; the file was deleted", hint="download it again")
    if archive.sha256 is None and (fresh or not record.exists()):
        atomic_write(record, lambda f: f.write(f"{actual}  {archive.filename}\n"))


def _fetch(url: str, part: Path, label: str) -> None:
    """Download ``url`` into ``part``, continuing an earlier partial download when the server
    honours a ``Range`` request (HTTP 206); otherwise starting over."""
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                               TransferSpeedColumn)

    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "tlf"}
    if have and url.startswith(("http://", "https://")):
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or "Range" not in headers:
            raise
        part.unlink()  # range not satisfiable: the partial file is not a prefix of this one
        return _fetch(url, part, label)
    with response:
        resumed = getattr(response, "status", 200) == 206
        have = have if resumed else 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        columns = (TextColumn("{task.description}", markup=False), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   TimeRemainingColumn())
        flags = os.O_WRONLY | os.O_CREAT | NO_FOLLOW | (os.O_APPEND if resumed else os.O_TRUNC)
        with os.fdopen(os.open(part, flags, 0o644), "wb") as out, \
                Progress(*columns, console=Console(stderr=True), transient=False) as progress:
            task = progress.add_task(f"download {label}" + (" (resumed)" if resumed else ""), total=total,
                                     completed=have)
            received = have
            for chunk in iter(lambda: response.read(CHUNK), b""):
                out.write(chunk)
                received += len(chunk)
                progress.update(task, advance=len(chunk))
        if total is not None and received != total:
            raise OSError(f"connection closed after {received} of {total} bytes")


def download(archive: Archive, folder: Path, *, allow_network: bool = True,
             extracted: Path | None = None) -> Path:
    """``folder/archive.filename``, downloaded (and verified) unless already there.

    ``extracted`` names the folder the archive extracts to, for the offline hint.
    """
    dest = folder / archive.filename
    record = dest.with_name(dest.name + ".sha256")
    if dest.exists():
        _verify(dest, archive, record, fresh=False)
        return dest
    if not allow_network:
        raise TlfError(f"{archive.filename} is not in the cache and downloads are off",
                       hint=offline_hint(archive, dest, extracted))
    folder.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        _fetch(archive.url, part, archive.filename)
    except (urllib.error.URLError, OSError, ValueError) as exc:  # the .part file stays, to resume
        if part.exists() and part.stat().st_size == 0:
            part.unlink()
        reason = exc if isinstance(exc, urllib.error.HTTPError) else getattr(exc, "reason", None) or exc
        raise TlfError(f"could not download {archive.url}: {reason}",
                       hint=offline_hint(archive, dest, extracted)) from None
    _verify(part, archive, record, fresh=True)
    os.replace(part, dest)
    return dest


def _check_member(name: str, archive: Path) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or name.startswith(("/", "\\")) or (path.parts and ":" in path.parts[0]):
        raise TlfError(f"refusing to extract {archive.name}: member {name!r} has an absolute path",
                       hint="the archive is unsafe or corrupt; download it again from its official address")
    if ".." in path.parts:
        raise TlfError(f"refusing to extract {archive.name}: member {name!r} points outside the target (..)",
                       hint="the archive is unsafe or corrupt; download it again from its official address")
    return path


def _refuse(archive: Path, why: str) -> TlfError:
    return TlfError(f"refusing to extract {archive.name}: {why}",
                    hint="the archive is unsafe or corrupt; download it again from its official address")


class _TarPlan:
    """The members of a tar archive that are safe to write, checked against one another.

    Paths are resolved lexically by walking the members already accepted, never the file system
    (whose ``realpath`` gives up past ``PATH_MAX``, CVE-2025-4517). A link is accepted only when it
    resolves, through links accepted before it, to a regular file accepted before it; so no link
    ever points at a folder, no path goes through a link, and what is on disk resolves exactly as
    checked here.
    """

    MAX_LINK_DEPTH = 40

    def __init__(self, archive: Path) -> None:
        self.archive = archive
        self.folders: set[PurePosixPath] = {PurePosixPath()}
        self.files: dict[PurePosixPath, PurePosixPath] = {}  # path -> the regular file it is (itself or a link's)

    def _parent_is_folder(self, path: PurePosixPath, name: str) -> None:
        for parent in reversed(path.parents):
            if parent in self.files:
                raise _refuse(self.archive, f"member {name!r} goes through {parent.as_posix()!r}, "
                                            "which is not a folder")

    def _resolve(self, target: PurePosixPath, link: tarfile.TarInfo) -> PurePosixPath:
        """The regular file ``target`` (a normalized path inside the target) is, through links."""
        for _ in range(self.MAX_LINK_DEPTH):
            if target not in self.files:
                break
            real = self.files[target]
            if real == target:
                return target
            target = real
        raise _refuse(self.archive, f"link {link.name!r} -> {link.linkname!r} is not a regular file "
                                    "inside the archive extracted before it")

    def _lexical(self, start: PurePosixPath, text: str, link: tarfile.TarInfo) -> PurePosixPath:
        if text.startswith("/") or PurePosixPath(text).is_absolute():
            raise _refuse(self.archive, f"link {link.name!r} -> {link.linkname!r} points outside the target "
                                        "(absolute)")
        parts = list(start.parts)
        for part in text.replace("\\", "/").split("/"):
            if part in ("", "."):
                continue
            if PurePosixPath(*parts) in self.files:
                raise _refuse(self.archive, f"link {link.name!r} -> {link.linkname!r} goes through "
                                            f"{'/'.join(parts)!r}, which is not a folder")
            if part != "..":
                parts.append(part)
            elif parts:
                parts.pop()
            else:
                raise _refuse(self.archive, f"link {link.name!r} -> {link.linkname!r} points outside the target")
        return PurePosixPath(*parts)

    def accept(self, member: tarfile.TarInfo) -> PurePosixPath | None:
        """The member's normalized path, or None for the archive's root; raises when unsafe."""
        path = PurePosixPath(*(p for p in _check_member(member.name, self.archive).parts if p != "."))
        if path == PurePosixPath():
            if member.isdir():
                return None
            raise _refuse(self.archive, f"member {member.name!r} has no name")
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise _refuse(self.archive, f"member {member.name!r} is a special file")
        self._parent_is_folder(path, member.name)
        if member.isdir():
            if path in self.files:
                raise _refuse(self.archive, f"member {member.name!r} is both a file and a folder")
            self.folders.add(path)
            return path
        if path in self.folders:
            raise _refuse(self.archive, f"member {member.name!r} is both a file and a folder")
        if member.issym():
            real = self._resolve(self._lexical(path.parent, member.linkname, member), member)
        elif member.islnk():
            real = self._resolve(self._lexical(PurePosixPath(), member.linkname, member), member)
        else:
            real = path
        if real == path and not member.isfile():
            raise _refuse(self.archive, f"link {member.name!r} -> {member.linkname!r} points at itself")
        self.folders.update(path.parents)
        self.files[path] = real
        return path


def _write_tar_member(tar: tarfile.TarFile, member: tarfile.TarInfo, path: PurePosixPath, real: PurePosixPath,
                      target: Path) -> None:
    dest = target.joinpath(*path.parts)
    if member.isdir():
        dest.mkdir(parents=True, exist_ok=True)
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink() or dest.exists():
        dest.unlink()  # a later member of the same name replaces the earlier one, as tar does
    if member.issym():
        os.symlink(os.path.relpath(real.as_posix(), path.parent.as_posix() or "."), dest)
    elif member.islnk():
        os.link(target.joinpath(*real.parts), dest, follow_symlinks=False)
    else:
        source = tar.extractfile(member)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                     0o755 if member.mode & 0o100 else 0o644)
        with os.fdopen(fd, "wb") as out:
            if source is not None:
                shutil.copyfileobj(source, out, CHUNK)


def _extract_tar(archive: Path, target: Path) -> None:
    """Check every member first (nothing is written from an unsafe archive), then write them.

    Hand-written rather than ``tarfile``'s ``data`` filter: the filter shipped in Python 3.11.7 is
    the one CVE-2025-4517 escapes, and its fix depends on the interpreter a user happens to have.
    """
    with tarfile.open(archive) as tar:
        plan = _TarPlan(archive)
        accepted = [(member, path) for member in tar.getmembers() if (path := plan.accept(member)) is not None]
        for member, path in accepted:
            _write_tar_member(tar, member, path, plan.files.get(path, path), target)


def _extract_zip(archive: Path, target: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            _check_member(info.filename, archive)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise TlfError(f"refusing to extract {archive.name}: member {info.filename!r} is a link",
                               hint="the archive is unsafe; download it again")
        zf.extractall(target, members=infos)


def extract(archive: Path, target: Path) -> Path:
    """Extract a zip or tar(.gz/.bz2/.xz) archive into ``target`` (created; must not exist).

    Extraction happens in a temporary sibling folder that is renamed to ``target`` at the end.
    """
    tmp = temp_folder(target)
    try:
        _unpack(archive, tmp, target)
        os.replace(tmp, target)
    except OSError as exc:
        raise write_error(target, exc, HOME_FIX) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already when renamed
    return target


def _unpack(archive: Path, folder: Path, target: Path) -> None:
    """Extract ``archive`` into the existing ``folder``; a corrupt archive or a failed write is one
    line naming ``target``."""
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, folder)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, folder)
        else:
            raise TlfError(f"{archive} is neither a zip nor a tar archive",
                           hint="delete it and download it again")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRORS:
            raise write_error(target, exc, HOME_FIX) from None
        raise TlfError(f"cannot extract {archive}: {exc}",
                       hint="the archive is corrupt or incomplete: delete it and download it again") from None


def fetch_and_extract(archive: Archive, folder: Path, extracted_name: str, *, allow_network: bool = True) -> Path:
    """``folder/extracted_name``: downloaded, verified and extracted into the cache unless there.

    When the archive has a top-level folder named ``extracted_name`` (``flower_photos.tgz`` holds
    ``flower_photos/``), that folder becomes ``folder/extracted_name``; else the whole archive does.
    A second process asking for it meanwhile waits for the first (:func:`_one_at_a_time`).
    """
    final = folder / extracted_name
    if final.is_dir():
        return final
    with _one_at_a_time(folder, archive):
        if final.is_dir():  # made by the process this one waited for
            return final
        path = download(archive, folder, allow_network=allow_network, extracted=final)
        staging = temp_folder(final)  # the one staging folder: the archive's top folder or itself becomes final
        try:
            _unpack(path, staging, final)
            inner = staging / extracted_name
            os.replace(inner if inner.is_dir() else staging, final)
        except OSError as exc:
            raise write_error(final, exc, HOME_FIX) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return final


HOME_FIX = "free space there, or set TLF_HOME to a writable folder with room (or pass --data-dir PATH)"


@contextlib.contextmanager
def _one_at_a_time(folder: Path, archive: Archive) -> Iterator[None]:
    """Hold the lock of ``archive`` in ``folder`` for the block; while another process holds it,
    say so and wait. A folder that cannot be written is one line."""
    path = folder / f".{archive.filename}.lock"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(path, exc, HOME_FIX) from None
    try:
        held = lock(path)
    except LockHeld as busy:
        notice(f"another tlf process (pid {busy.holder}) is downloading {archive.filename}; waiting for it")
        held = lock(path, timeout=-1)
    try:
        yield
    finally:
        held.release()
