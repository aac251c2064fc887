"""Settings read from the environment, checked before anything is created."""

from __future__ import annotations

import math
from collections.abc import Mapping

from composer.errors import UsageError


def positive_seconds(environ: Mapping[str, str], name: str, unset_hint: str) -> float | None:
    """``name`` as a number of seconds above 0; None when unset or empty; a UsageError
    (exit 2) naming the setting otherwise. ``unset_hint`` says what unsetting it gives."""
    raw = environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise UsageError(f"{name}={raw!r}: must be a number of seconds above 0",
                         hint=f"unset {name} for {unset_hint}")
    return value
