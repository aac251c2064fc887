"""Refs of a runs repository read from its files, without starting git.

A runs repository that git keeps in its default ("files") layout holds each ref as a
file under ``.git/refs`` or as a line of ``.git/packed-refs``, written by renaming a
whole new file into place, so reading them is exact. Anything else (a ``.git`` file
pointing elsewhere, the reftable layout, a symbolic ref where a plain one is
expected, a file that does not read as a hash) answers ``UNKNOWN``, and the caller
asks git as before.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

UNKNOWN: Final = "?"
_HASH = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")


def _files_layout(git_dir: Path) -> bool:
    return git_dir.is_dir() and (git_dir / "refs").is_dir() and not (git_dir / "reftable").exists()


def _packed(git_dir: Path, name: str) -> str | None:
    """The packed value of ``name`` (None when not packed); UNKNOWN when unreadable."""
    try:
        text = (git_dir / "packed-refs").read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return None
    except OSError:
        return UNKNOWN
    found: str | None = None
    for line in text.split("\n"):
        if not line or line.startswith("#"):
            continue
        if line.startswith("^"):
            if not _HASH.fullmatch(line[1:]):
                return UNKNOWN
            continue
        value, _, refname = line.partition(" ")
        if not _HASH.fullmatch(value) or not refname.startswith("refs/") \
                or any(c.isspace() for c in refname):
            return UNKNOWN  # a line git would refuse: git decides
        if refname == name and found is None:
            found = value
    return found


def ref_value(git_dir: Path, name: str) -> str | None:
    """The object ``refs/...`` ``name`` points at, None when there is no such ref."""
    if not _files_layout(git_dir) or not name.startswith("refs/") or ".." in name:
        return UNKNOWN
    try:
        text = (git_dir / name).read_text(encoding="utf-8", errors="surrogateescape").strip()
    except (FileNotFoundError, NotADirectoryError):
        return _packed(git_dir, name)
    except OSError:
        return UNKNOWN
    return text if _HASH.fullmatch(text) else UNKNOWN


def head_commit(git_dir: Path) -> str | None:
    """The commit HEAD's branch points at (None before the first commit)."""
    if not _files_layout(git_dir):
        return UNKNOWN
    try:
        head = (git_dir / "HEAD").read_text(encoding="utf-8", errors="surrogateescape").strip()
    except OSError:
        return UNKNOWN
    if not head.startswith("ref: "):
        return UNKNOWN
    return ref_value(git_dir, head.removeprefix("ref: "))
