"""``python -m composer``."""

from __future__ import annotations

from composer.cli import leave, main

try:
    main()
except SystemExit as exc:
    leave(exc.code)
