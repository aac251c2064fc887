"""JSON files composer writes: sorted keys, and replaced atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` through a temp file of this process and a rename,
    so a reader (or another process writing the same file) never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_text(dump_json(data))
    os.replace(tmp, path)


def parse_object(raw: bytes | str | None) -> dict[str, Any] | None:
    """The JSON object in ``raw``; None for nothing, not JSON, nested past the parser's
    depth (RecursionError) or not an object. For files others wrote (records)."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def read_object(path: Path) -> dict[str, Any] | None:
    """``parse_object`` of the file at ``path``; None also when it cannot be read."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    return parse_object(raw)
