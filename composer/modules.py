"""The Terraform modules under ``modules/``: their versions and content hashes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from composer.errors import PreflightError
from composer.hashing import tree_sha256
from composer.paths import modules_dir


@dataclass(frozen=True)
class ModulePin:
    name: str
    version: str
    sha256: str

    def to_dict(self) -> dict[str, str]:
        return {"version": self.version, "sha256": self.sha256}


def module_path(name: str) -> Path:
    path = modules_dir() / name
    if not (path / "main.tf").is_file():
        raise PreflightError(
            f"Terraform module '{name}' not found in {modules_dir()}",
            hint="run composer from its source tree, or set COMPOSER_MODULES_DIR",
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
