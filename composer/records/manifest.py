"""The outputs manifest of a record: ``manifest.json`` at the record's root.

It lists every collected output (path relative to ``outputs/``, node, size,
sha256, committed) and, for a file that was not committed, why (``withheld``).
Size and sha256 describe the bytes read, up to the size the file had when listed;
``grew_during_collect`` / ``shrank_during_collect`` (true) mark a file that changed
while it was collected.
It lives beside ``outputs/``, not inside it, so a workload's own
``outputs/manifest.json`` is an output like any other. Records made before this
layout keep theirs at ``outputs/manifest.json``; ``load`` reads either.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from composer.jsonfile import write_json

MANIFEST = "manifest.json"
LEGACY_MANIFEST = "outputs/manifest.json"
SCHEMA_VERSION = 1


def empty() -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "files": []}


def is_legacy(root: Path) -> bool:
    """A record of the old layout: its manifest is ``outputs/manifest.json``."""
    return not (root / MANIFEST).is_file() and (root / LEGACY_MANIFEST).is_file()


def _read(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def load(root: Path) -> dict[str, Any]:
    """The manifest of the record (or staged record) at ``root``; empty when it has none."""
    for name in (MANIFEST, LEGACY_MANIFEST):
        if name == LEGACY_MANIFEST and not is_legacy(root):
            break
        found = _read(root / name)
        if found is not None:
            return found
    return empty()


def save(root: Path, data: dict[str, Any]) -> None:
    write_json(root / MANIFEST, data)
