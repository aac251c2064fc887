"""The Terraform modules under ``modules/``: their versions and content hashes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from composer.errors import PreflightError
from composer.hashing import tree_sha256
from composer.resources import MODULES_ENV, REINSTALL, locate


@dataclass(frozen=True)
class ModulePin:
    name: str
    version: str
    sha256: str

    def to_dict(self) -> dict[str, str]:
        return {"version": self.version, "sha256": self.sha256}


def module_path(name: str) -> Path:
    found = locate("modules")
    path = found.path / name
    if not (path / "main.tf").is_file():
        raise PreflightError(
            f"Terraform module '{name}' not found in {found.path} ({found.source})",
            hint=f"set {MODULES_ENV} to a modules tree, or {REINSTALL}",
        )
    return path


def pin_module(name: str) -> ModulePin:
    path = module_path(name)
    version_file = path / "VERSION"
    version = version_file.read_text().strip() if version_file.is_file() else "0.0.0"
    return ModulePin(name, version, tree_sha256(path, exclude=EXCLUDED))


def target_modules(target: str) -> tuple[str, ...]:
    """The modules ``target``'s root module vendors."""
    from composer.targets import target_class

    return target_class(target).modules


def pins_for_target(target: str) -> tuple[ModulePin, ...]:
    return tuple(pin_module(name) for name in target_modules(target))


EXCLUDED = frozenset({".terraform", "__pycache__", ".terraform.lock.hcl"})
