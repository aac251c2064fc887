"""``composer init``: a new project from one of the examples shipped with composer.

The examples are package data (``resources.examples_dir()``), so an installed composer
can write them anywhere. ``init`` never overwrites: when any file it would write exists,
it writes nothing and names them.
"""

from __future__ import annotations

import re
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

from composer.errors import UsageError
from composer.resources import examples_dir

DEFAULT_EXAMPLE = "starter"
# An example's job.toml may point editors at the checkout's schema (``#:schema
# ../../composer.schema.json``); that path means nothing in a new project.
_SCHEMA_LINE = re.compile(r"^#:schema \.\./.*\n", re.M)
_SKIP = frozenset({"__pycache__", ".terraform", "runs"})


@dataclass(frozen=True)
class Example:
    name: str
    path: Path
    description: str


@dataclass(frozen=True)
class Written:
    """What ``init`` wrote: the directory, the files (relative), the job file if any."""

    directory: Path
    example: str
    files: tuple[str, ...]
    job: Path | None


def examples() -> list[Example]:
    """Every shipped example, by name: a job (``job.toml``) or other files (``ci``)."""
    root = examples_dir()
    found = []
    for path in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in _SKIP):
        found.append(Example(path.name, path, _description(path)))
    return found


def _description(path: Path) -> str:
    job = path / "job.toml"
    if job.is_file():
        try:
            doc = tomllib.loads(job.read_text(encoding="utf-8"))
            return str(doc.get("job", {}).get("description") or "")
        except (tomllib.TOMLDecodeError, OSError):
            return ""
    readme = path / "README.md"
    if readme.is_file():
        lines = [ln.strip() for ln in readme.read_text(encoding="utf-8").splitlines()]
        return next((ln for ln in lines if ln and not ln.startswith("#")), "")
    return ""


def _files(example: Path) -> list[str]:
    found = []
    for path in sorted(example.rglob("*")):
        rel = path.relative_to(example)
        if any(part in _SKIP for part in rel.parts) or path.suffix == ".pyc":
            continue
        if path.is_file():
            found.append(rel.as_posix())
    return found


def find(name: str) -> Example:
    known = examples()
    for example in known:
        if example.name == name:
            return example
    raise UsageError(f"no example named '{name}'",
                     hint=f"choose one of: {', '.join(e.name for e in known)} "
                          "(composer init --list describes them)")


def init(directory: Path, name: str = DEFAULT_EXAMPLE) -> Written:
    """Copy the example ``name`` into ``directory`` (created if missing)."""
    example = find(name)
    files = _files(example.path)
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} exists and is not a directory",
                         hint="give a new or existing directory")
    taken = [rel for rel in files if (directory / rel).exists() or (directory / rel).is_symlink()]
    if taken:
        raise UsageError(
            f"composer init writes nothing over existing files; {directory} already has: "
            f"{', '.join(taken)}",
            hint="choose a new directory, or move those files aside")
    for rel in files:
        source, target = example.path / rel, directory / rel
        data = source.read_bytes()
        if rel == "job.toml":
            data = _SCHEMA_LINE.sub("", data.decode("utf-8")).encode("utf-8")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "xb") as fh:  # never over a file that appeared meanwhile
                fh.write(data)
            shutil.copymode(source, target)
        except OSError as exc:
            raise UsageError(f"cannot write {target}: {exc.strerror or exc}",
                             hint="choose a directory you can write to") from None
    job = directory / "job.toml"
    return Written(directory, example.name, tuple(files), job if "job.toml" in files else None)
