"""Content hashes of files and directory trees."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def tree_files(root: Path, exclude: frozenset[str] = frozenset()) -> list[Path]:
    """Regular files under ``root`` in a stable order, skipping excluded names anywhere."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in exclude)
        for name in sorted(filenames):
            if name not in exclude:
                found.append(Path(dirpath) / name)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def is_executable(path: Path) -> bool:
    """Whether any execute bit is set: the same answer whoever asks."""
    return bool(path.stat().st_mode & 0o111)


def tree_sha256(root: Path, exclude: frozenset[str] = frozenset()) -> str:
    """One hash over every file's relative path, executable bit and content."""
    digest = hashlib.sha256()
    for path in tree_files(root, exclude):
        rel = path.relative_to(root).as_posix()
        mode = "x" if is_executable(path) else "-"
        digest.update(f"{rel}\0{mode}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()
