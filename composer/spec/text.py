"""How problems name values and paths: quoting, clipping, "did you mean"."""

from __future__ import annotations

import difflib
import json
import re
from datetime import date, datetime, time
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def suggest(word: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word[:100], choices, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def join(prefix: str, key: str) -> str:
    """``prefix.key``, quoting a key that is not a bare TOML key."""
    name = key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)
    return f"{prefix}.{name}" if prefix else name


def quote(text: str) -> str:
    return json.dumps(clip(text), ensure_ascii=False)


def clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(value: Any) -> str:
    """A value as a problem names it: ``integer 5``, ``string "x"``, ``array``."""
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"integer {clip(str(value))}"
    if isinstance(value, float):
        return f"float {value!r}"
    if isinstance(value, str):
        return f"string {quote(value)}"
    if isinstance(value, (datetime, date, time)):
        return f"{type(value).__name__} {value.isoformat()}"
    return {dict: "table", list: "array"}.get(type(value), type(value).__name__)
