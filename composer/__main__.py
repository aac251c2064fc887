"""``python -m composer``."""

from __future__ import annotations

from composer.cli import entry

entry()
