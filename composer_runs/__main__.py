"""``python -m composer_runs``: the same as the ``composer-runs`` command."""

from __future__ import annotations

from composer_runs import main

main()
