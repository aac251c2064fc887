"""Content hashes of files and directory trees."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def tree_files(root: Path, exclude: frozenset[str] = frozenset(),
               skip: frozenset[str] = frozenset()) -> list[Path]:
    """Regular files under ``root`` in a stable order, skipping excluded names anywhere
    and the paths in ``skip`` (POSIX, relative to ``root``) with all they hold."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if here == "." else here + "/"
        dirnames[:] = sorted(d for d in dirnames
                             if d not in exclude and prefix + d not in skip)
        for name in sorted(filenames):
            if name not in exclude and prefix + name not in skip:
                found.append(Path(dirpath) / name)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def is_executable(path: Path) -> bool:
    """Whether any execute bit is set: the same answer whoever asks."""
    return bool(path.stat().st_mode & 0o111)


def tree_sha256(root: Path, exclude: frozenset[str] = frozenset()) -> str:
    """One hash over every file's relative path, executable bit and content."""
    files = tree_files(root, exclude)
    return files_sha256(root, {p.relative_to(root).as_posix(): file_sha256(p) for p in files})


def files_sha256(root: Path, digests: Mapping[str, str]) -> str:
    """``tree_sha256`` of exactly the files named in ``digests`` (relative path -> sha256)."""
    digest = hashlib.sha256()
    for rel in sorted(digests):
        mode = "x" if is_executable(root / rel) else "-"
        digest.update(f"{rel}\0{mode}\0{digests[rel]}\n".encode())
    return digest.hexdigest()
