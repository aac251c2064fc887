"""Build hook: the wheel carries the run-time data trees, found through the package.

``modules/`` (Terraform modules), ``templates/`` (the root module's Jinja2 templates) and
``examples/`` (what ``composer init --example`` copies) stay at the top of the source tree,
where people and tests read them. ``build_py`` copies each of them into the built package
as ``composer/_share/<name>/``; ``composer/resources.py`` looks there first (an installed
wheel) and falls back to the source tree (a checkout or an editable install, where nothing
is copied). The sdist carries the trees through MANIFEST.in, so a wheel built from it has
them too. Everything else is declared in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHARED = ("modules", "templates", "examples")
SKIP = shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "__pycache__", "*.pyc",
                              "*.tfstate", "*.tfstate.*", "*.tfplan")


class BuildWithShare(build_py):
    """``build_py`` plus the data trees under ``composer/_share`` (not for editable
    installs: those read the source tree itself)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        share = Path(self.build_lib) / "composer" / "_share"
        for name in SHARED:
            source = ROOT / name
            if not source.is_dir():
                raise SystemExit(f"setup.py: {source} is missing; the wheel needs it")
            shutil.rmtree(share / name, ignore_errors=True)
            shutil.copytree(source, share / name, ignore=SKIP)


setup(cmdclass={"build_py": BuildWithShare})
