"""Where composer's run-time data comes from: Terraform modules, templates, examples.

In an installed wheel they are package data, ``composer/_share/<name>/`` (setup.py copies
the top-level trees there at build time), found through ``importlib.resources``. In a
checkout or an editable install nothing is copied, and they are read from the source tree
(``<checkout>/<name>/``). ``COMPOSER_MODULES_DIR`` overrides where the modules come from.

An installation that lacks them is broken: ``check_installation`` says so (exit 2) before
a run starts, so no run id and no failed record come of it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from composer.errors import PreflightError

SHARE = "_share"
KINDS = ("modules", "templates", "examples")
MODULES_ENV = "COMPOSER_MODULES_DIR"
SOURCE_TREE = Path(__file__).resolve().parent.parent

FROM_ENV = MODULES_ENV
FROM_PACKAGE = "package"
FROM_SOURCE = "source tree"
MISSING = "missing"

REINSTALL = ("reinstall composer-runs (pipx reinstall composer-runs, or pip install "
             "--force-reinstall composer-runs), or run it from its source tree")


@dataclass(frozen=True)
class Location:
    """One data tree: its path and what chose it (``package``, ``source tree``,
    ``COMPOSER_MODULES_DIR``, or ``missing`` when no candidate exists)."""

    kind: str
    path: Path
    source: str

    @property
    def found(self) -> bool:
        return self.source != MISSING

    def to_dict(self) -> dict[str, str]:
        return {"path": str(self.path), "source": self.source}


def _packaged(kind: str) -> Path | None:
    """``composer/_share/<kind>`` of the imported package, when it is a real directory."""
    try:
        share = resources.files("composer").joinpath(SHARE, kind)
    except (ModuleNotFoundError, OSError):  # pragma: no cover - composer is imported here
        return None
    return share if isinstance(share, Path) and share.is_dir() else None


def locate(kind: str) -> Location:
    """Where the ``kind`` tree (modules, templates, examples) comes from."""
    if kind not in KINDS:
        raise ValueError(f"unknown data tree {kind!r}")
    if kind == "modules":
        override = os.environ.get(MODULES_ENV)
        if override:
            path = Path(override).expanduser().resolve()
            return Location(kind, path, FROM_ENV if path.is_dir() else MISSING)
    packaged = _packaged(kind)
    if packaged is not None:
        return Location(kind, packaged, FROM_PACKAGE)
    tree = SOURCE_TREE / kind
    if tree.is_dir():
        return Location(kind, tree, FROM_SOURCE)
    return Location(kind, resources.files("composer").joinpath(SHARE, kind), MISSING)


def modules_dir() -> Path:
    return locate("modules").path


def templates_dir() -> Path:
    return locate("templates").path


def examples_dir() -> Path:
    return locate("examples").path


def where() -> dict[str, Location]:
    """Every data tree's location, for ``composer version``."""
    return {kind: locate(kind) for kind in KINDS}


def check_installation(target: str, modules: tuple[str, ...]) -> None:
    """Raise PreflightError (exit 2) unless ``target``'s templates and ``modules`` exist."""
    templates = locate("templates")
    if not (templates.path / target).is_dir():
        raise PreflightError(
            f"composer's installation is broken: no templates for target '{target}' in "
            f"{templates.path} ({templates.source})", hint=REINSTALL)
    found = locate("modules")
    for name in modules:
        if not (found.path / name / "main.tf").is_file():
            if found.source == FROM_ENV:
                raise PreflightError(
                    f"Terraform module '{name}' not found in {found.path} "
                    f"({MODULES_ENV})",
                    hint=f"point {MODULES_ENV} at a copy of composer's modules/ tree, "
                         "or unset it to use the installed modules")
            raise PreflightError(
                f"composer's installation is broken: Terraform module '{name}' not found "
                f"in {found.path} ({found.source})", hint=REINSTALL)
