"""The ``composer`` and ``composer-runs`` commands start here, outside the ``composer`` package.

PyPI's ``composer`` is MosaicML's training library (installed by ``pip install mosaicml``
or ``pip install composer``); it also installs an importable package named ``composer``,
and one environment cannot hold both. This module checks that the ``composer`` package
Python would import is this project's before importing anything from it, and otherwise
exits 2 naming both packages instead of failing with an ImportError traceback.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

DISTRIBUTION = "composer-runs"
MARKER = f'DISTRIBUTION = "{DISTRIBUTION}"'
INVALID_INPUT = 2  # composer.errors.ExitCode.INVALID_INPUT, which may not be importable


def foreign_composer() -> str | None:
    """Why the importable ``composer`` is not composer-runs' (None when it is).

    The package's ``__init__.py`` is read, not run: a foreign package is never executed."""
    try:
        spec = importlib.util.find_spec("composer")
    except (ImportError, ValueError) as exc:
        return f"it cannot be found ({exc})"
    if spec is None:
        return "there is none"
    origin = spec.origin
    if origin is None or not origin.endswith("__init__.py"):
        where = origin or ", ".join(spec.submodule_search_locations or []) or "?"
        return f"{where} is not a regular package"
    try:
        text = Path(origin).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"cannot read {origin} ({exc.strerror})"
    if MARKER not in text:
        return f"{Path(origin).parent} is another project's"
    return None


def clash(reason: str) -> int:
    print(f"composer: error: the Python package 'composer' here is not composer-runs' "
          f"({reason}); MosaicML's training library (PyPI 'mosaicml', also published as "
          "'composer') installs a package named 'composer' too, and the two cannot share "
          "one environment", file=sys.stderr)
    print("composer: hint: install composer-runs on its own: 'pipx install composer-runs' "
          "(or a venv of its own), then run it as 'composer-runs'; check with "
          "'python -c \"import composer; print(composer.__file__)\"'", file=sys.stderr)
    return INVALID_INPUT


def main() -> None:
    reason = foreign_composer()
    if reason is not None:
        raise SystemExit(clash(reason))
    try:
        from composer.cli import entry
    except ImportError as exc:
        # Ours on top, parts of another 'composer' mixed in (both installed in one
        # site-packages): the package cannot load.
        raise SystemExit(clash(f"it does not load: {exc}")) from None
    entry()
