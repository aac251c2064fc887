"""Comparison primitives shared by ``composer diff`` and ``composer reproduce``.

Numbers in JSON values are flattened to dotted paths (``a.b``, ``l[0]``) so that
two metric files can be compared key by key under a tolerance; manifests are
compared file by file; text is compared as unified diffs.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

NO_NEWLINE = "\\ No newline at end of file"
BINARY_DIFFERS = "(binary files differ)"
ONLY_IN_OLD = "(only in old)"
ONLY_IN_NEW = "(only in new)"
TEXT_DIFF_LIMIT = 64 * 1024


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _walk(data: Any, prefix: str, out: dict[str, Any], keep_empty: bool) -> None:
    if isinstance(data, dict):
        if not data and keep_empty:
            out[prefix] = {}
        for key, value in data.items():
            _walk(value, _join(prefix, str(key)), out, keep_empty)
    elif isinstance(data, list | tuple):
        if not data and keep_empty:
            out[prefix] = []
        for index, value in enumerate(data):
            _walk(value, f"{prefix}[{index}]", out, keep_empty)
    else:
        out[prefix] = data


def flatten_leaves(data: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf of a JSON value keyed by its path; empty objects and lists are leaves."""
    out: dict[str, Any] = {}
    _walk(data, prefix, out, keep_empty=True)
    return out


def flatten_numbers(data: Any, prefix: str = "") -> dict[str, float]:
    """Every int or float (never a bool) in a JSON value, keyed by its path.

    Object keys are joined with ``.`` and list items get ``[i]``:
    ``{"a": {"b": 1}, "l": [2, 3]}`` gives ``{"a.b": 1.0, "l[0]": 2.0, "l[1]": 3.0}``;
    a number at the top level has the key ``""``.
    """
    leaves: dict[str, Any] = {}
    _walk(data, prefix, leaves, keep_empty=False)
    return {
        key: float(value)
        for key, value in leaves.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


@dataclass(frozen=True)
class FileChange:
    """One output file that differs between two manifests.

    ``diff`` is a unified diff when both sides are committed, small UTF-8 text.
    """

    path: str
    kind: str
    old_sha256: str | None
    new_sha256: str | None
    old_size: int | None
    new_size: int | None
    diff: str | None = None


def _files_by_path(manifest: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    files = (manifest or {}).get("files") or []
    return {f["path"]: f for f in files if isinstance(f, dict) and "path" in f}


def compare_manifests(old: dict[str, Any], new: dict[str, Any]) -> list[FileChange]:
    """Files changed, added or removed between two manifests, sorted by path."""
    a, b = _files_by_path(old), _files_by_path(new)
    changes: list[FileChange] = []
    for path in sorted(a.keys() | b.keys()):
        before, after = a.get(path), b.get(path)
        if before is not None and after is not None:
            same = (before.get("sha256"), before.get("size")) == (
                after.get("sha256"),
                after.get("size"),
            )
            if same:
                continue
            kind = "changed"
        else:
            kind = "added" if before is None else "removed"
        changes.append(
            FileChange(
                path=path,
                kind=kind,
                old_sha256=before.get("sha256") if before else None,
                new_sha256=after.get("sha256") if after else None,
                old_size=before.get("size") if before else None,
                new_size=after.get("size") if after else None,
            )
        )
    return changes


@dataclass(frozen=True)
class MetricDelta:
    """One numeric key that differs between two JSON files, or exists in only one.

    ``abs_diff`` is ``|new - old|`` and ``rel_diff`` is that over
    ``max(|old|, |new|)``; both are None when a side is missing or not finite.
    """

    file: str
    key: str
    old: float | None
    new: float | None
    abs_diff: float | None
    rel_diff: float | None
    abs_tol: float
    rel_tol: float
    within: bool


def _same(old: float, new: float) -> bool:
    return old == new or (math.isnan(old) and math.isnan(new))


def within(old: float, new: float, abs_tol: float, rel_tol: float) -> bool:
    """Whether ``|new - old| <= max(abs_tol, rel_tol * max(|old|, |new|))``.

    Equal values (two NaNs included) are always within; otherwise a NaN or an
    infinity on either side never is.
    """
    if _same(old, new):
        return True
    if not (math.isfinite(old) and math.isfinite(new)):
        return False
    return abs(new - old) <= max(abs_tol, rel_tol * max(abs(old), abs(new)))


def _diffs(old: float, new: float) -> tuple[float | None, float | None]:
    if not (math.isfinite(old) and math.isfinite(new)):
        return None, None
    diff = abs(new - old)
    scale = max(abs(old), abs(new))
    return diff, (diff / scale if scale else 0.0)


def compare_metrics(
    file: str,
    old: Any,
    new: Any,
    tolerance: Callable[[str], tuple[float, float]],
) -> list[MetricDelta]:
    """A delta for every numeric key that differs or is on one side only, sorted by key.

    ``tolerance(key)`` gives ``(abs_tol, rel_tol)``; a key missing on one side is
    never within tolerance.
    """
    a, b = flatten_numbers(old), flatten_numbers(new)
    deltas: list[MetricDelta] = []
    for key in sorted(a.keys() | b.keys()):
        before, after = a.get(key), b.get(key)
        abs_tol, rel_tol = tolerance(key)
        if before is None or after is None:
            deltas.append(
                MetricDelta(file, key, before, after, None, None, abs_tol, rel_tol, False)
            )
            continue
        if _same(before, after):
            continue
        abs_diff, rel_diff = _diffs(before, after)
        ok = within(before, after, abs_tol, rel_tol)
        deltas.append(
            MetricDelta(file, key, before, after, abs_diff, rel_diff, abs_tol, rel_tol, ok)
        )
    return deltas


def unified(old: str, new: str, name: str) -> str:
    """A unified diff with ``a/<name>`` and ``b/<name>`` headers; "" when equal."""
    if old == new:
        return ""
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile=f"a/{name}",
        tofile=f"b/{name}",
    )
    out: list[str] = []
    for line in lines:
        out.append(line if line.endswith("\n") else f"{line}\n{NO_NEWLINE}\n")
    return "".join(out)


def _files(root: Path, ignore: frozenset[str] = frozenset()) -> dict[str, Path]:
    found: dict[str, Path] = {}
    if not root.is_dir():
        return found
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_file() and name not in ignore:
                found[path.relative_to(root).as_posix()] = path
    return found


def _text(data: bytes) -> str | None:
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _file_diff(old: Path, new: Path, name: str) -> str:
    a, b = old.read_bytes(), new.read_bytes()
    if a == b:
        return ""
    ta, tb = _text(a), _text(b)
    if ta is None or tb is None:
        return BINARY_DIFFERS
    return unified(ta, tb, name)


def tree_diff(old_root: Path, new_root: Path,
              ignore: frozenset[str] = frozenset()) -> dict[str, str]:
    """Relative path -> how the file differs between two trees, sorted; same files omitted.

    Text files get a unified diff, binary ones ``(binary files differ)``, and files
    on one side only ``(only in old)`` or ``(only in new)``. A missing root is empty.
    Files named in ``ignore`` are left out on both sides.
    """
    a, b = _files(Path(old_root), ignore), _files(Path(new_root), ignore)
    out: dict[str, str] = {}
    for rel in sorted(a.keys() | b.keys()):
        if rel not in b:
            out[rel] = ONLY_IN_OLD
        elif rel not in a:
            out[rel] = ONLY_IN_NEW
        else:
            text = _file_diff(a[rel], b[rel], rel)
            if text:
                out[rel] = text
    return out


def _inside(root: Path, rel: str) -> Path | None:
    """``root/rel`` when it is a regular file inside ``root`` (no link, no ``..``)."""
    path = root / rel
    try:
        if path.is_symlink() or not path.is_file():
            return None
        if not path.resolve().is_relative_to(root.resolve()):
            return None
    except OSError:
        return None
    return path


def output_text_diff(old_root: Path, new_root: Path, rel: str,
                     limit: int = TEXT_DIFF_LIMIT) -> str | None:
    """A unified diff of ``rel`` between two output trees, or None.

    Only for files committed on both sides, each at most ``limit`` bytes and
    valid UTF-8 without NUL bytes; None as well when they are equal.
    """
    old, new = _inside(old_root, rel), _inside(new_root, rel)
    if old is None or new is None:
        return None
    if old.stat().st_size > limit or new.stat().st_size > limit:
        return None
    a, b = _text(old.read_bytes()), _text(new.read_bytes())
    if a is None or b is None:
        return None
    return unified(a, b, rel) or None


def with_text_diffs(changes: list[FileChange], old_root: Path,
                    new_root: Path) -> list[FileChange]:
    """``changes`` with a unified diff on each changed file that is small text."""
    return [
        replace(c, diff=output_text_diff(old_root, new_root, c.path))
        if c.kind == "changed" else c
        for c in changes
    ]
