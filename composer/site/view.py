"""A record's files, read into what its page shows: a ``RunView``.

Reads an exported record directory (``RunsRepo.export``); nothing in it is
trusted: a file that is missing, unreadable, not UTF-8 or not the JSON shape
expected is shown as far as it goes, never an error.
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from composer.jsonfile import read_object
from composer.records.manifest import load as load_manifest
from composer.records.read import RunSummary

#: Logs longer than this show their head and tail (each half of it).
LOG_SHOWN = 256 * 1024
#: Metrics files and record text files larger than this are not read.
TEXT_LIMIT = 1024 * 1024
#: Images in the record (outside outputs/, infra/ and logs/) shown as plots.
IMAGE_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg", ".gif", ".webp")
NOT_PLOTS = ("outputs", "infra", "logs")


@dataclass(frozen=True)
class TextFile:
    """A text file of the record, as shown: ``cut`` bytes of the middle left out."""

    name: str
    body: str
    size: int
    cut: int = 0


@dataclass(frozen=True)
class Metric:
    """One value of a ``[reproduce] metrics`` file: a scalar, or a series of numbers."""

    file: str
    key: str
    value: Any
    series: tuple[float, ...] = ()


@dataclass(frozen=True)
class RunView:
    """What one run's page shows, read from its record."""

    summary: RunSummary
    result: dict[str, Any]
    lock: dict[str, Any]
    job_toml: str
    nodes: tuple[dict[str, Any], ...]
    environment: dict[str, Any]
    outputs: tuple[dict[str, Any], ...]
    metrics: tuple[Metric, ...]
    metric_problems: tuple[str, ...]
    logs: tuple[TextFile, ...]
    infra: tuple[TextFile, ...]
    images: tuple[str, ...]
    files: tuple[str, ...] = field(default=())

    @property
    def run_id(self) -> str:
        return self.summary.run_id


def name_of(path: Path, root: Path) -> str:
    """A record path relative to ``root`` as text; undecodable bytes as ``\\xNN``."""
    rel = path.relative_to(root).as_posix()
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _files(root: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        found += [Path(dirpath) / name for name in sorted(filenames)]
    return sorted(found, key=lambda p: name_of(p, root))


def _read_text(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            return handle.read(TEXT_LIMIT).decode("utf-8", "replace")
    except OSError:
        return ""


def read_log(path: Path, root: Path) -> TextFile:
    """A log, its head and tail when it is longer than ``LOG_SHOWN``."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        if size <= LOG_SHOWN:
            return TextFile(name_of(path, root), handle.read().decode("utf-8", "replace"), size)
        half = LOG_SHOWN // 2
        head = handle.read(half)
        handle.seek(size - half)
        tail = handle.read(half)
    body = head.decode("utf-8", "replace") + "\n" + tail.decode("utf-8", "replace")
    return TextFile(name_of(path, root), body, size, cut=size - 2 * half)


def _infra(root: Path) -> tuple[TextFile, ...]:
    base = root / "infra"
    if not base.is_dir():
        return ()
    shown = []
    for path in _files(base):
        size = path.stat().st_size
        shown.append(TextFile(name_of(path, root), _read_text(path), size))
    return tuple(shown)


def _metric_names(job_toml: str) -> list[str]:
    try:
        spec = tomllib.loads(job_toml)
    except tomllib.TOMLDecodeError:
        return []
    listed = spec.get("reproduce", {}).get("metrics") if isinstance(spec, dict) else None
    if not isinstance(listed, list):
        return []
    return [name for name in listed if isinstance(name, str)]


def _is_series(value: Any) -> bool:
    return isinstance(value, list) and len(value) >= 2 and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        for v in value)


def _walk(file: str, value: Any, key: str, out: list[Metric]) -> None:
    if _is_series(value):
        out.append(Metric(file, key, None, tuple(float(v) for v in value)))
    elif isinstance(value, dict):
        for sub in sorted(value, key=str):
            _walk(file, value[sub], f"{key}.{sub}" if key else str(sub), out)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk(file, item, f"{key}[{index}]", out)
    else:
        out.append(Metric(file, key, value))


def _metrics(root: Path, job_toml: str) -> tuple[tuple[Metric, ...], tuple[str, ...]]:
    outputs = (root / "outputs").resolve()
    found: list[Metric] = []
    problems: list[str] = []
    for name in _metric_names(job_toml):
        path = (outputs / name).resolve()
        if not path.is_relative_to(outputs) or not path.is_file():
            problems.append(f"{name}: not in the record's outputs")
            continue
        if path.stat().st_size > TEXT_LIMIT:
            problems.append(f"{name}: larger than {TEXT_LIMIT} bytes, not shown")
            continue
        try:
            data = json.loads(path.read_bytes())
        except (ValueError, RecursionError):
            problems.append(f"{name}: not JSON")
            continue
        _walk(name, data, "", found)
    return tuple(found), tuple(problems)


def _images(root: Path, files: list[Path]) -> tuple[str, ...]:
    images = []
    for path in files:
        rel = path.relative_to(root)
        if rel.parts[0] in NOT_PLOTS or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.is_file() and not path.is_symlink():
            images.append(rel.as_posix())
    return tuple(images)


def _nodes(root: Path) -> tuple[dict[str, Any], ...]:
    nodes = (read_object(root / "facts.json") or {}).get("nodes")
    if not isinstance(nodes, list):
        return ()
    return tuple(node for node in nodes if isinstance(node, dict))


def load_run(root: Path, summary: RunSummary) -> RunView:
    """The page's view of the record exported at ``root``."""
    files = _files(root)
    job_toml = _read_text(root / "job.toml")
    metrics, problems = _metrics(root, job_toml)
    logs = tuple(read_log(path, root) for path in files
                 if path.relative_to(root).parts[0] == "logs")
    manifest = load_manifest(root).get("files")
    outputs = tuple(e for e in manifest if isinstance(e, dict)) \
        if isinstance(manifest, list) else ()
    return RunView(
        summary=summary,
        result=read_object(root / "result.json") or {},
        lock=read_object(root / "lock.json") or {},
        job_toml=job_toml,
        nodes=_nodes(root),
        environment=read_object(root / "environment.json") or {},
        outputs=outputs,
        metrics=metrics,
        metric_problems=problems,
        logs=logs,
        infra=_infra(root),
        images=_images(root, files),
        files=tuple(name_of(path, root) for path in files),
    )
