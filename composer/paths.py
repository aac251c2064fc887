"""Every filesystem location composer uses, in one place."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def modules_dir() -> Path:
    """The Terraform modules tree (``COMPOSER_MODULES_DIR`` overrides it)."""
    override = os.environ.get("COMPOSER_MODULES_DIR")
    return Path(override).resolve() if override else PROJECT_ROOT / "modules"


def templates_dir() -> Path:
    """The Jinja2 templates of the root module, one folder per target."""
    return PROJECT_ROOT / "templates"


def composer_home() -> Path:
    """Per-user state: run work dirs, the Terraform CLI config, address leases."""
    override = os.environ.get("COMPOSER_HOME")
    return Path(override).resolve() if override else Path.home() / ".composer"


def work_root() -> Path:
    """Where each run's work dir lives (never committed; ``composer down`` reads it)."""
    return composer_home() / "work"


def work_dir(run_id: str) -> Path:
    return work_root() / run_id


def leases_dir() -> Path:
    """Machine-wide address leases of the local target, shared by every user and run."""
    override = os.environ.get("COMPOSER_LEASES_DIR")
    return Path(override) if override else Path("/tmp/composer-leases")
