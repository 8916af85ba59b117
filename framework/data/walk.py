"""Walking an image folder: the one rule every directory walk of tlf follows.

- Links are followed only while they stay inside the folder being walked (its real path): a link
  to ``/``, to a parent folder or to another class's folder is not followed, and is reported.
- Each real folder is walked once: a link back to a folder already walked (a loop, or a second
  way into the same images) is not followed, and is reported.
- The walk is iterative (an explicit stack), so any depth works; hidden entries are skipped.
- A folder that cannot be listed is reported; the walk goes on with the rest.

Hand-written because ``os.walk`` (recursive before Python 3.12) knows no boundary: with
``followlinks=True`` it reads the whole disk through a link to ``/``, and it skips unreadable
folders silently unless given an ``onerror`` callback.
"""
from __future__ import annotations

import os
from pathlib import Path

from .dataset import Problem
from .reading import is_image_file


def inside(path: str, folder: str) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (both absolute and normalized: real paths,
    or ``os.path.normpath`` of absolute ones); a string comparison, so a table of 100k images
    is checked in milliseconds."""
    return path == folder or path.startswith(folder if folder.endswith(os.sep) else folder + os.sep)


def walk_images(top: Path) -> tuple[list[Path], list[Problem]]:
    """(image files under ``top``, sorted by relative path; one problem per link not followed or
    folder not readable), following the rule of this module."""
    top = Path(top)
    boundary = os.path.realpath(top)
    seen, stack = {boundary}, [(top, boundary)]  # (folder, its real path)
    found: list[Path] = []
    problems: list[Problem] = []
    while stack:
        folder, real = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: (e.is_symlink(), e.name))  # a folder before links to it
        except OSError as exc:
            problems.append(Problem(str(folder), f"folder not readable ({exc.strerror or exc}); its images were skipped"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            kind, target = _classify(entry, os.path.join(real, entry.name), boundary, seen)
            if kind == "folder":
                seen.add(target)
                stack.append((Path(entry.path), target))
            elif kind == "file":
                found.append(Path(entry.path))
            elif kind is not None:
                problems.append(Problem(entry.path, kind))
    return sorted(found, key=lambda p: p.relative_to(top).as_posix()), problems


def _classify(entry: os.DirEntry, real: str, boundary: str, seen: set[str]) -> tuple[str | None, str]:
    """("folder" | "file" | None: ignored | the reason it is skipped and reported, its real path).
    ``real`` is the entry's real path when it is not a link (its folder's real path + its name)."""
    link = entry.is_symlink()
    if link:
        real = os.path.realpath(entry.path)  # only links pay for a resolution: deep trees stay linear
    try:
        folder = entry.is_dir()
    except OSError:  # a link loop: is_dir follows it
        folder = False
    if not folder and not is_image_file(entry.name):
        return None, real
    if link and not inside(real, boundary):
        return f"link to {real}, outside {boundary}; not followed", real
    if not folder:
        return "file", real  # dangling links and loops included: reading them names the problem
    if real in seen:
        return f"link to {real}, a folder already walked (a loop); not followed", real
    return "folder", real


def subfolders(root: Path) -> tuple[list[str], list[Problem]]:
    """(sorted names of the visible sub-folders of ``root`` that stay inside it, one problem per
    sub-folder link leading outside)."""
    boundary = os.path.realpath(root)
    names, problems = [], []
    for path in sorted(Path(root).iterdir()):
        if path.name.startswith(".") or not path.is_dir():
            continue
        real = os.path.realpath(path)
        if inside(real, boundary) and real != boundary:
            names.append(path.name)
        else:
            problems.append(Problem(str(path), f"link to {real}, outside {boundary}; not followed"))
    return names, problems
