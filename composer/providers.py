"""Terraform providers as a run pins them: the dependency lock file ``init`` writes.

``init`` records each provider's exact version and package hashes in
``.terraform.lock.hcl``. composer keeps that file in the record's ``infra/`` (so a
re-run installs the same packages or fails) and its contents in ``lock.json``
under ``providers``; ``reproduce`` compares them with what ``init`` selects today.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

LOCK_FILE = ".terraform.lock.hcl"

_BLOCK = re.compile(r'provider\s+"([^"]+)"\s*\{(.*?)\n\}', re.S)
_VERSION = re.compile(r'^\s*version\s*=\s*"([^"]*)"', re.M)
_HASHES = re.compile(r"hashes\s*=\s*\[(.*?)\]", re.S)
_QUOTED = re.compile(r'"([^"]+)"')


def parse_lock_file(text: str) -> dict[str, dict[str, Any]]:
    """``{source address: {"version": ..., "hashes": [sorted]}}`` from a lock file's text."""
    providers: dict[str, dict[str, Any]] = {}
    for source, body in _BLOCK.findall(text):
        version = _VERSION.search(body)
        hashes = _HASHES.search(body)
        providers[source] = {
            "version": version.group(1) if version else None,
            "hashes": sorted(_QUOTED.findall(hashes.group(1))) if hashes else [],
        }
    return providers


def read_providers(tf_dir: Path) -> dict[str, dict[str, Any]]:
    """The providers ``init`` locked in ``tf_dir`` (none: no lock file, as for ``local``)."""
    path = tf_dir / LOCK_FILE
    if not path.is_file():
        return {}
    return parse_lock_file(path.read_text(encoding="utf-8"))


def keep_lock_file(tf_dir: Path, infra: Path) -> dict[str, dict[str, Any]]:
    """Copy ``init``'s lock file into the record's ``infra/``; return its providers."""
    providers = read_providers(tf_dir)
    if providers:
        shutil.copyfile(tf_dir / LOCK_FILE, infra / LOCK_FILE)
    return providers


def provider_changes(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(source, old, new)`` for each provider whose version or hashes differ."""
    changes = []
    for source in sorted(set(old) | set(new)):
        a, b = old.get(source), new.get(source)
        if a == b:
            continue
        changes.append((source, _shown(a), _shown(b)))
    return changes


def _shown(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "(none)"
    hashes = entry.get("hashes") or []
    first = hashes[0][:15] + "..." if hashes else "no hashes"
    return f"{entry.get('version')} ({first}, {len(hashes)} hashes)"


def providers_today(infra: Path, init: Callable[[Path], object]) -> dict[str, dict[str, Any]]:
    """What ``init`` selects now for the tree in ``infra``, ignoring its lock file: a real
    ``init`` (registry, mirror or plugin cache as configured) of a scratch copy."""
    with tempfile.TemporaryDirectory(prefix="composer-providers-") as tmp:
        scratch = Path(tmp) / "tf"
        shutil.copytree(infra, scratch, ignore=shutil.ignore_patterns(LOCK_FILE, ".terraform"))
        init(scratch)
        return read_providers(scratch)
