"""``[outputs]``, ``[limits]``, ``[record]`` and ``[reproduce]``: what comes back, how long a
run may take, where it is recorded and how a re-run is compared."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from composer.spec.check import LARGEST_FILE_SIZE, Checker, Table
from composer.spec.fields import MISSING, Field, Section, choice, other, string
from composer.spec.model import (
    DEFAULT_MAX_FILE_SIZE,
    DEFAULT_MAX_LOG_SIZE,
    LimitsSpec,
    OutputsSpec,
    RecordSpec,
    ReproduceSpec,
    Tolerance,
)
from composer.spec.text import describe, join, quote, suggest
from composer.spec.values import (
    DURATION_PATTERN,
    NO_LIMIT,
    SIZE_PATTERN,
    output_matches,
    parse_duration,
)

OUTPUT_SOURCES = ("all", "head")
LONGEST_DURATION = 7 * 86400.0
_NODE_PREFIX = re.compile(r"node-[0-9]+/")
_WILDCARDS = frozenset("*?[]")
_RELATIVE = r"^(?!/)(?!(.*/)?\.\.(/|$)).*\S"
_SIZE = {"anyOf": [{"type": "integer", "minimum": 1, "maximum": LARGEST_FILE_SIZE},
                   {"type": "string", "pattern": SIZE_PATTERN}]}

OUTPUTS = Section("outputs", "The files collected from the nodes into the record.", fields=(
    other("paths", "array of strings", "glob patterns; relative, no `..`, not empty",
          {"type": "array", "items": {"type": "string", "pattern": _RELATIVE}}, default=[]),
    choice("from", '`"all"` (every node) or `"head"` (the first node only)', OUTPUT_SOURCES,
           default="all"),
    other("max_file_size", "size", "1 byte to 1TB", _SIZE, default=DEFAULT_MAX_FILE_SIZE,
          shown_default='`"50MB"`'),
))
LIMITS = Section("limits", "How long the workload may run, and what it may cost.", fields=(
    other("max_duration", 'duration, or `"none"`', "more than 0, at most 7 days",
          {"anyOf": [{"const": NO_LIMIT},
                     {"type": "number", "exclusiveMinimum": 0, "maximum": LONGEST_DURATION},
                     {"type": "string", "pattern": DURATION_PATTERN}]},
          shown_default='`"24h"`'),
    other("max_cost", "number", "more than 0; the most the run may cost, in USD (the "
          "currency of the providers' public price lists): a cloud run whose estimate "
          "(nodes × hourly price × `max_duration`) is higher, or whose price cannot be "
          "read, is refused before anything is created; see below",
          {"type": "number", "exclusiveMinimum": 0}, shown_default="none (no budget gate)"),
))
RECORD = Section("record", "Where the run is recorded.", fields=(
    string("repo", "not empty; the runs repository to record into; a relative path starts "
           "at the job file's directory", nonempty=True, default=None),
    other("max_log_size", "size", "the most each file under `logs/` may hold in the record",
          _SIZE, default=DEFAULT_MAX_LOG_SIZE, shown_default='`"2MB"`'),
))
#: The two bounds of one ``[reproduce.tolerance]`` entry.
TOLERANCE_FIELDS = (
    Field("abs", "other", "number", "absolute tolerance; finite, at least 0", default=0,
          schema={"type": "number", "minimum": 0}),
    Field("rel", "other", "number", "relative tolerance; finite, at least 0", default=0,
          schema={"type": "number", "minimum": 0}),
)
TOLERANCE_KEYS = tuple(f.key for f in TOLERANCE_FIELDS)
REPRODUCE = Section("reproduce", "What composer reproduce compares, and how closely.", fields=(
    other("metrics", "array of strings", "JSON output files to compare; see below",
          {"type": "array", "uniqueItems": True,
           "items": {"type": "string", "pattern": r"^(?!/)(?!(.*/)?\.\.(/|$))[^*?\[\]]*\S"}},
          default=[]),
    other("tolerance", "table", "metric key → `{ abs = ..., rel = ... }`",
          {"type": "object", "propertyNames": {"minLength": 1}, "additionalProperties": {
              "type": "object", "minProperties": 1, "additionalProperties": False,
              "properties": {f.key: f.json_schema() for f in TOLERANCE_FIELDS}}},
          default={}),
))


def check_outputs(c: Checker, table: Table | None) -> OutputsSpec:
    if table is None:
        return OutputsSpec()
    paths = _globs(c, *c.get(table, OUTPUTS, "paths"))
    source = c.value(table, OUTPUTS, "from")
    size = c.size(*c.get(table, OUTPUTS, "max_file_size"), DEFAULT_MAX_FILE_SIZE)
    c.unknown_keys(table, OUTPUTS)
    return OutputsSpec(paths, source or "all", size)


def _globs(c: Checker, value: Any, path: str) -> tuple[str, ...]:
    if value is MISSING:
        return ()
    if not isinstance(value, list):
        c.add(path, f"must be an array of strings, got {describe(value)}")
        return ()
    globs = []
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        text = c.string(item, where, nonempty=True)
        if text is not None and text.startswith("/"):
            c.add(where, f"must be a relative glob, got {quote(text)}")
        elif text is not None and ".." in text.split("/"):
            c.add(where, f"must be a relative glob without '..': {quote(text)}")
        elif text is not None:
            globs.append(text)
    return tuple(globs)


def check_limits(c: Checker, table: Table | None) -> LimitsSpec:
    if table is None:
        return LimitsSpec()
    value, path = c.get(table, LIMITS, "max_duration")
    max_cost = _max_cost(c, *c.get(table, LIMITS, "max_cost"))
    c.unknown_keys(table, LIMITS)
    if value is MISSING:
        return LimitsSpec(max_cost=max_cost)
    if value == NO_LIMIT:
        return LimitsSpec(None, defaulted=False, max_cost=max_cost)
    seconds = None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        expected = 'must be a duration such as "10m", a number of seconds, or "none" for no limit'
        c.add(path, f"{expected}, got {describe(value)}")
    else:
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            c.add(path, str(exc))
    if seconds is not None and not 0 < seconds <= LONGEST_DURATION:
        c.add(path, f"must be more than 0 and at most 7d, got {describe(value)}")
    return LimitsSpec(seconds, defaulted=False, max_cost=max_cost)


def _max_cost(c: Checker, value: Any, path: str) -> float | None:
    """``[limits] max_cost``: a finite number of USD, more than 0."""
    if value is MISSING:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        hint = " (write it without quotes, e.g. max_cost = 25)" if isinstance(value, str) else ""
        return c.add(path, f"must be a number of USD, got {describe(value)}{hint}")
    if not math.isfinite(value):
        return c.add(path, f"must be a finite number of USD, got {describe(value)} (TOML "
                           "reads numbers past about 1e308 as infinite)")
    if value <= 0:
        return c.add(path, f"must be a number of USD more than 0, got {describe(value)}")
    return float(value)


def check_record(c: Checker, table: Table | None) -> RecordSpec:
    if table is None:
        return RecordSpec()
    repo = c.value(table, RECORD, "repo")
    log_size = c.size(*c.get(table, RECORD, "max_log_size"), DEFAULT_MAX_LOG_SIZE)
    c.unknown_keys(table, RECORD)
    return RecordSpec(repo, log_size)


def check_reproduce(
    c: Checker, table: Table | None, collected: OutputsSpec | None
) -> ReproduceSpec:
    """``collected`` is None when [outputs] has problems of its own."""
    if table is None:
        return ReproduceSpec()
    metrics = _metrics(c, *c.get(table, REPRODUCE, "metrics"), collected)
    tolerance = _tolerances(c, *c.get(table, REPRODUCE, "tolerance"))
    c.unknown_keys(table, REPRODUCE)
    return ReproduceSpec(metrics, tolerance)


def _metrics(
    c: Checker, value: Any, path: str, collected: OutputsSpec | None
) -> tuple[str, ...]:
    if value is MISSING:
        return ()
    if not isinstance(value, list):
        c.add(path, f"must be an array of strings, got {describe(value)}")
        return ()
    listed: dict[str, str] = {}
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        name = _output_file(c, item, where)
        if name is None:
            continue
        if name in listed:
            c.add(where, f"{quote(name)} is also listed at {listed[name]}")
            continue
        listed[name] = where
        if collected is not None and not _collectable(name, collected):
            c.add(where, f"{quote(name)} is not among the collected outputs (outputs.paths)")
        elif collected is not None and collected.from_ == "all" and not _NODE_PREFIX.match(name):
            c.add(where, f'{quote(name)} is never in a record with outputs.from = '
                         f'"all": each node\'s files are under node-<rank>/, e.g. '
                         f'{quote("node-0/" + name)} (or collect from = "head")')
    return tuple(listed)


def _output_file(c: Checker, value: Any, path: str) -> str | None:
    text = c.string(value, path, nonempty=True)
    if text is None:
        return None
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if text.startswith("/"):
        return c.add(path, f"must be a relative path, got {quote(text)}")
    if ".." in parts:
        return c.add(path, f"must not contain '..': {quote(text)}")
    if _WILDCARDS.intersection(text):
        return c.add(path, f"must name one file, without * ? [ ]: {quote(text)}")
    if not parts:
        return c.add(path, f"must name a file, got {quote(text)}")
    return "/".join(parts)


def _collectable(name: str, outputs: OutputsSpec) -> bool:
    """Whether ``outputs.paths`` collect ``name``, a path as listed in the manifest."""
    node = _NODE_PREFIX.match(name) if outputs.from_ == "all" else None
    rel = name[node.end() :] if node else name
    return output_matches(rel, outputs.paths)


def _tolerances(c: Checker, value: Any, path: str) -> tuple[Tolerance, ...]:
    if value is MISSING:
        return ()
    if not isinstance(value, dict):
        expected = "must be a table of metric = { abs = ..., rel = ... }"
        c.add(path, f"{expected}, got {describe(value)}")
        return ()
    items = []
    for key, bounds in value.items():
        where = join(path, key)
        name = c.string(key, where, nonempty=True)
        checked = _bounds(c, bounds, where, key)
        if name is not None and checked is not None:
            items.append(Tolerance(name, *checked))
    return tuple(sorted(items, key=lambda item: item.key))


def _bounds(c: Checker, value: Any, path: str, key: str) -> tuple[float, float] | None:
    if not isinstance(value, dict):
        expected = "must be a table such as { abs = 1e-6, rel = 0.01 }"
        return c.add(path, f"{expected}, got {describe(value)}")
    if not value:
        return c.add(path, "empty table; give abs, rel or both")
    count = c.count()
    absolute = _tolerance_value(c, value.get("abs", MISSING), join(path, "abs"))
    relative = _tolerance_value(c, value.get("rel", MISSING), join(path, "rel"))
    for inner, item in value.items():
        if inner in TOLERANCE_KEYS:
            continue
        message = "unknown key" + suggest(inner, TOLERANCE_KEYS)
        if isinstance(item, dict):
            dotted = json.dumps(f"{key}.{inner}", ensure_ascii=False)
            message += f"; to name metric {dotted}, quote it: {dotted} = {{ abs = ... }}"
        c.add(join(path, inner), message)
    if c.count() != count or absolute is None or relative is None:
        return None
    return absolute, relative


def _tolerance_value(c: Checker, value: Any, path: str) -> float | None:
    if value is MISSING:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return c.add(path, f"must be a number, got {describe(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        return c.add(path, f"must be a finite number, got {describe(value)}")
    if number < 0:
        return c.add(path, f"must be at least 0, got {describe(value)}")
    return number + 0.0
