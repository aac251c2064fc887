"""Spec -> Lock: everything a run depends on, pinned.

``lock.json`` in a record names the composer and Terraform versions, each
vendored module's version and hash, the shipped code (git commit and tree when
it is in git, always a content hash), every input's sha256 and the target's
resolved values, and for a containerized workload the image's digest in the
runtime's local store (with the reference the run uses). ``reproduce`` checks
these pins before it spends anything.

The nodes' Python environment is pinned too, but only once the nodes exist: the
facts stage adds ``environment`` (``ENVIRONMENT_KEY``; the sha256 of the sorted
package set, see ``composer.environment``) to the lock written here.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from composer import __version__, containers
from composer.hashing import file_sha256, files_sha256, tree_files, tree_sha256
from composer.modules import ModulePin, pins_for_target
from composer.paths import composer_home
from composer.spec import Spec

LOCK_SCHEMA_VERSION = 1
CODE_EXCLUDE = frozenset(
    {".git", "__pycache__", ".venv", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".composer"}
)
"""Names never shipped nor pinned, at any depth of the code directory."""
ENVIRONMENT_KEY = "environment"
"""The lock's key for the nodes' package-set hash, added after the facts stage."""


@dataclass(frozen=True)
class CodeTree:
    """What of a ``[code]`` directory is shipped to the nodes and pinned in the lock.

    One decision for the bundle, the content hash, the per-file hashes and git's
    dirty/untracked state: every name in ``CODE_EXCLUDE`` at any depth, and the
    directories composer itself writes (``skip``, relative to ``root``): the runs
    repository and composer's home when they lie inside the code directory.
    """

    root: Path
    skip: tuple[str, ...] = ()

    @classmethod
    def of(cls, root: Path, runs_repo: Path | None = None) -> CodeTree:
        owned = [composer_home()] + ([runs_repo] if runs_repo is not None else [])
        real_root = Path(os.path.realpath(root))
        skip = []
        for path in owned:
            real = Path(os.path.realpath(path))
            if real != real_root and real.is_relative_to(real_root):
                skip.append(real.relative_to(real_root).as_posix())
        return cls(root, tuple(sorted(set(skip))))

    def files(self) -> list[Path]:
        """Every shipped file, in a stable order."""
        return tree_files(self.root, CODE_EXCLUDE, frozenset(self.skip))

    def excluded(self, rel: str) -> bool:
        """Whether ``rel`` (a POSIX path relative to ``root``) is left out."""
        rel = rel.strip("/")
        if any(part in CODE_EXCLUDE for part in rel.split("/")):
            return True
        return any(rel == s or rel.startswith(s + "/") for s in self.skip)

    def pathspecs(self) -> list[str]:
        """The same exclusions as git pathspecs, relative to ``root``."""
        specs = [f":(exclude,literal){s}" for s in self.skip]
        for name in sorted(CODE_EXCLUDE):
            specs += [f":(exclude,glob)**/{name}", f":(exclude,glob)**/{name}/**"]
        return specs


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


def git_pin(path: Path, shipped: CodeTree | None = None) -> dict[str, Any] | None:
    """Commit, tree and dirtiness of ``path`` when it is inside a git work tree.

    Dirtiness and the untracked files hashed count only what ``shipped`` ships.
    """
    shipped = shipped or CodeTree(path)
    scope = ["--", ".", *shipped.pathspecs()]
    top = _git(path, "rev-parse", "--show-toplevel")
    commit = _git(path, "rev-parse", "HEAD") if top else None
    if not top or not commit:
        return None
    rel = path.resolve().relative_to(Path(top.strip()).resolve()).as_posix()
    spec = f"HEAD:{rel}" if rel != "." else "HEAD^{tree}"
    tree = _git(path, "rev-parse", spec)
    status = _git(path, "status", "--porcelain", *scope) or ""
    pin: dict[str, Any] = {
        "commit": commit.strip(),
        "tree": tree.strip() if tree else None,
        "path": rel,
        "dirty": bool(status.strip()),
    }
    if pin["dirty"]:
        digest = hashlib.sha256((_git(path, "diff", "HEAD", *scope) or "").encode())
        untracked = _git(path, "ls-files", "--others", "--exclude-standard", "-z", *scope)
        for name in sorted(filter(None, (untracked or "").split("\0"))):
            if shipped.excluded(name):
                continue
            # A nested repository is listed as one directory ("name/").
            sha = (tree_sha256(path / name, CODE_EXCLUDE) if name.endswith("/")
                   else file_sha256(path / name))
            digest.update(f"\0{name}\0{sha}".encode())
        pin["diff_sha256"] = digest.hexdigest()
    return pin


def code_tree(spec: Spec, runs_repo: Path | None = None) -> CodeTree | None:
    """The spec's shipped code directory, less what composer writes (None: no code)."""
    return None if spec.code.path is None else CodeTree.of(spec.code.path, runs_repo)


def pin_code(spec: Spec, runs_repo: Path | None = None) -> CodePin | None:
    tree = code_tree(spec, runs_repo)
    if tree is None:
        return None
    root = tree.root
    rel = root.relative_to(spec.base_dir).as_posix()
    files = {f.relative_to(root).as_posix(): file_sha256(f) for f in tree.files()}
    return CodePin(rel, files_sha256(root, files), git_pin(root, tree), files)


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
            container: dict[str, Any] | None = None, *,
            runs_repo: Path | None = None, target_pins: dict[str, Any] | None = None) -> Lock:
    """Every pin of ``spec``; ``container`` is an image pin already taken (else taken here).

    ``runs_repo`` is the run's runs repository: when it lies inside the code
    directory it is neither shipped nor pinned (see ``CodeTree``).
    """
    return Lock(
        composer=__version__,
        engine=engine,
        terraform=terraform_version,
        modules=pins_for_target(spec.cluster.target),
        code=pin_code(spec, runs_repo),
        inputs=pin_inputs(spec),
        target={"name": spec.cluster.target, "resolved": dict(target_pins or {})},
        job_path=str(spec.source),
        container=container if container is not None else pin_container(spec),
    )
