"""Targets: where a cluster comes from. One module per target."""

from __future__ import annotations

from composer.errors import PreflightError
from composer.targets.local import LocalTarget

TARGETS = {"local": LocalTarget}


def get_target(name: str) -> LocalTarget:
    try:
        return TARGETS[name]()
    except KeyError:
        raise PreflightError(
            f"target '{name}' is not available yet", hint="use target = \"local\""
        ) from None
