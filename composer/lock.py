"""Spec -> Lock: everything a run depends on, pinned.

``lock.json`` in a record names the composer and Terraform versions, each
vendored module's version and hash, the shipped code (git commit and tree when
it is in git, always a content hash), every input's sha256 and the target's
resolved values, and for a containerized workload the image's digest in the
runtime's local store (with the reference the run uses). ``reproduce`` checks
these pins before it spends anything.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from composer import __version__, containers
from composer.hashing import file_sha256, tree_files, tree_sha256
from composer.modules import ModulePin, pins_for_target
from composer.spec import Spec

LOCK_SCHEMA_VERSION = 1
CODE_EXCLUDE = frozenset(
    {".git", "__pycache__", ".venv", ".pytest_cache", ".ruff_cache", ".mypy_cache"}
)


@dataclass(frozen=True)
class CodePin:
    path: str
    content_sha256: str
    git: dict[str, Any] | None = None
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "content_sha256": self.content_sha256, "git": self.git,
                "files": self.files}


@dataclass(frozen=True)
class Lock:
    composer: str
    engine: str
    terraform: str
    modules: tuple[ModulePin, ...]
    code: CodePin | None
    inputs: dict[str, dict[str, Any]]
    target: dict[str, Any] = field(default_factory=dict)
    infra_sha256: str | None = None
    job_path: str | None = None
    container: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {
            "schema_version": LOCK_SCHEMA_VERSION,
            "composer": {"version": self.composer},
            "terraform": {"engine": self.engine, "version": self.terraform},
            "modules": {m.name: m.to_dict() for m in self.modules},
            "infra": {"sha256": self.infra_sha256},
            "code": self.code.to_dict() if self.code else None,
            "inputs": self.inputs,
            "target": self.target,
            "job": {"path": self.job_path},
        }
        if self.container is not None:
            data["container"] = self.container
        return data


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def git_pin(path: Path) -> dict[str, Any] | None:
    """Commit, tree and dirtiness of ``path`` when it is inside a git work tree."""
    top = _git(path, "rev-parse", "--show-toplevel")
    commit = _git(path, "rev-parse", "HEAD")
    if not top or not commit:
        return None
    rel = path.resolve().relative_to(Path(top.strip()).resolve()).as_posix()
    spec = f"HEAD:{rel}" if rel != "." else "HEAD^{tree}"
    tree = _git(path, "rev-parse", spec)
    status = _git(path, "status", "--porcelain", "--", ".") or ""
    pin: dict[str, Any] = {
        "commit": commit.strip(),
        "tree": tree.strip() if tree else None,
        "path": rel,
        "dirty": bool(status.strip()),
    }
    if pin["dirty"]:
        digest = hashlib.sha256((_git(path, "diff", "HEAD", "--", ".") or "").encode())
        untracked = _git(path, "ls-files", "--others", "--exclude-standard", "-z", "--", ".")
        for name in sorted(filter(None, (untracked or "").split("\0"))):
            digest.update(f"\0{name}\0{file_sha256(path / name)}".encode())
        pin["diff_sha256"] = digest.hexdigest()
    return pin


def pin_code(spec: Spec) -> CodePin | None:
    if spec.code.path is None:
        return None
    root = spec.code.path
    rel = root.relative_to(spec.base_dir).as_posix()
    files = {
        f.relative_to(root).as_posix(): file_sha256(f)
        for f in tree_files(root, exclude=CODE_EXCLUDE)
    }
    return CodePin(rel, tree_sha256(root, exclude=CODE_EXCLUDE), git_pin(root), files)


def pin_inputs(spec: Spec) -> dict[str, dict[str, Any]]:
    return {
        item.dest: {
            "source": item.source.relative_to(spec.base_dir).as_posix(),
            "sha256": file_sha256(item.source),
            "size": item.source.stat().st_size,
        }
        for item in spec.inputs
    }


def pin_container(spec: Spec) -> dict[str, Any] | None:
    """The image pinned by digest (``PreflightError`` when the runtime or image is missing)."""
    box = spec.container
    if not box.enabled or box.image is None:
        return None
    return containers.pin_image(box.runtime, box.image)


def resolve(spec: Spec, engine: str, terraform_version: str,
            container: dict[str, Any] | None = None) -> Lock:
    """Every pin of ``spec``; ``container`` is an image pin already taken (else taken here)."""
    return Lock(
        composer=__version__,
        engine=engine,
        terraform=terraform_version,
        modules=pins_for_target(spec.cluster.target),
        code=pin_code(spec),
        inputs=pin_inputs(spec),
        target={"name": spec.cluster.target, "resolved": {}},
        job_path=str(spec.source),
        container=container if container is not None else pin_container(spec),
    )
