"""Values written in a spec as text: durations, sizes, output globs."""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Mapping
from fractions import Fraction
from types import MappingProxyType

from composer.spec.text import clip, quote

NO_LIMIT = "none"
_NUMBER = r"\d{1,30}(?:\.\d{1,30})?"
_DURATION = re.compile(rf"(?:({_NUMBER})d)?(?:({_NUMBER})h)?(?:({_NUMBER})m)?(?:({_NUMBER})s)?")
_DURATION_UNITS = (86400, 3600, 60, 1)
_SIZE = re.compile(rf"({_NUMBER})\s*([a-z]*)")
_SIZE_UNITS: Mapping[str, int] = MappingProxyType(
    {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
     "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
)  # fmt: skip

# The same forms as JSON Schema patterns (ECMA regex, no flags), for editors.
_N = r"[0-9]{1,30}(\.[0-9]{1,30})?"
DURATION_PATTERN = (
    rf"^\s*(?=[^a-zA-Z]*[0-9])({_N}\s*|({_N}\s*[dD]\s*)?({_N}\s*[hH]\s*)?({_N}\s*[mM]\s*)?"
    rf"({_N}\s*[sS]\s*)?)$"
)
SIZE_PATTERN = rf"^\s*{_N}\s*([bB]|[kKmMgGtT][iI]?[bB])?\s*$"


def parse_duration(value: str | int | float) -> float:
    """Seconds in ``"90s"``, ``"10m"``, ``"1h30m"``, ``"2d"``, ``"45"`` or a number."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"invalid duration {value!r}: expected a string or a number")
    if isinstance(value, str):
        seconds = _duration_text(value)
    else:
        try:
            seconds = float(value)
        except OverflowError:
            raise ValueError("duration is too large") from None
    if not math.isfinite(seconds):
        raise ValueError(f"duration must be a finite number of seconds, got {value!r}")
    if seconds < 0:
        raise ValueError(f"duration must not be negative, got {value!r}")
    return seconds


def _duration_text(value: str) -> float:
    compact = "".join(value.lower().split())
    if re.fullmatch(_NUMBER, compact):
        return float(compact)
    match = _DURATION.fullmatch(compact)
    if not compact or match is None:
        raise ValueError(
            f'invalid duration {quote(value)}: use seconds ("45") or units d, h, m, s'
            ' such as "90s", "10m", "1h30m"'
        )
    return sum(
        float(n) * unit for n, unit in zip(match.groups(), _DURATION_UNITS, strict=True) if n
    )


def parse_size(value: str | int) -> int:
    """Bytes in ``"50MB"``, ``"512KB"``, ``"1GiB"``, ``"1024"`` or an integer."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"invalid size {value!r}: expected a string or an integer")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"size must not be negative, got {clip(str(value))}")
        return value
    match = _SIZE.fullmatch(value.strip().lower())
    if match is None or match.group(2) not in _SIZE_UNITS:
        raise ValueError(
            f'invalid size {quote(value)}: use bytes ("1024") or a number with a unit'
            " B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)"
        )
    amount = Fraction(match.group(1)) * _SIZE_UNITS[match.group(2)]
    if amount.denominator != 1:
        raise ValueError(f"size {quote(value)} is not a whole number of bytes")
    return int(amount)


def output_matches(rel: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``outputs.paths`` collect the output at ``rel`` (relative to the output
    directory): a pattern matches the path itself or a directory it lies in, so
    ``"ckpt"`` (or ``"ckpt/"``) collects every file under ``ckpt/``."""
    parts = rel.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return any(fnmatch.fnmatchcase(c, p.rstrip("/") or p) for p in patterns for c in candidates)
