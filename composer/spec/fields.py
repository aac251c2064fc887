"""Declarative descriptions of every spec field: the one source for the keys each table
accepts (unknown-key problems), the JSON Schema (``composer schema``) and the field tables
of docs/spec.md.

A ``Field`` says what one key holds; a ``Section`` is one top-level table: its fields, and
for a target's own section (``[aws]``) the function that checks it. Checking itself is
hand-written (``composer/spec/check.py`` and the section modules), reading bounds,
choices, patterns and defaults from these descriptions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from composer.spec.check import Checker, Table
    from composer.spec.model import ClusterSpec

MISSING: Any = object()  # a key the table does not have; a field without a default

Choices = tuple[str, ...] | Callable[[], tuple[str, ...]]


@dataclass(frozen=True)
class Field:
    """One key of a table.

    ``type`` and ``description`` are the docs' type and constraints columns (Markdown);
    ``schema`` is the JSON Schema of a value beyond what the other attributes say.
    ``choices`` may be a function (the registered targets, known only at run time).
    """

    key: str
    kind: str  # "string", "integer", "boolean", "choice" or "other" (checked by hand)
    type: str
    description: str | Callable[[], str]
    default: Any = MISSING
    required: bool = False
    shown_default: str | None = None  # the docs' default column, when not the default itself
    choices: Choices = ()
    minimum: int | None = None
    maximum: int | Callable[[], int] | None = None
    pattern: str | None = None  # Python and ECMA regex; the whole value must match
    nonempty: bool = False
    schema: Mapping[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        return self.description() if callable(self.description) else self.description

    def options(self) -> tuple[str, ...]:
        return self.choices() if callable(self.choices) else self.choices

    def upper(self) -> int | None:
        return self.maximum() if callable(self.maximum) else self.maximum

    def doc_default(self) -> str:
        if self.required:
            return "required"
        if self.shown_default is not None:
            return self.shown_default
        if self.default is MISSING or self.default is None:
            return "none"
        return f"`{toml_literal(self.default)}`"

    def json_schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"description": plain(self.text())} if self.text() else {}
        types = {"string": "string", "integer": "integer", "boolean": "boolean",
                 "choice": "string"}
        if self.kind in types:
            out["type"] = types[self.kind]
        if self.options():
            out["enum"] = list(self.options())
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.upper() is not None:
            out["maximum"] = self.upper()
        if self.pattern is not None:
            out["pattern"] = f"^(?:{self.pattern})$"
        elif self.nonempty:
            out["pattern"] = r"\S"
        if self.default is not MISSING and self.default is not None:
            out["default"] = self.default
        out.update(self.schema)
        return out


Description = str | Callable[[], str]


def string(key: str, description: Description, **kw: Any) -> Field:
    return Field(key, "string", kw.pop("type", "string"), description, **kw)


def integer(key: str, description: Description, low: int, high: int | Callable[[], int],
            **kw: Any) -> Field:
    return Field(key, "integer", "integer", description, minimum=low, maximum=high, **kw)


def boolean(key: str, description: Description, default: bool) -> Field:
    return Field(key, "boolean", "boolean", description, default=default)


def choice(key: str, description: Description, choices: Choices, **kw: Any) -> Field:
    return Field(key, "choice", "string", description, choices=choices, **kw)


def other(key: str, type: str, description: Description, schema: Mapping[str, Any],
          **kw: Any) -> Field:
    return Field(key, "other", type, description, schema=schema, **kw)


@dataclass(frozen=True)
class Section:
    """One top-level table. ``open`` tables accept any key, each value as ``values``.

    A target's section (``target`` set) also has ``check`` (read the table, add problems,
    return the target's config, e.g. ``AwsSpec``) and ``expand`` (that config as the
    JSON-able data of ``composer validate --json`` and the record).
    """

    name: str
    title: str
    fields: tuple[Field, ...] = ()
    required: bool = False
    open: bool = False
    values: Mapping[str, Any] = field(default_factory=dict)
    target: str | None = None
    check: Callable[[Checker, Table, ClusterSpec | None], Any] | None = None
    expand: Callable[[Any], dict[str, Any]] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # more JSON Schema for the table

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(f.key for f in self.fields)

    @property
    def required_keys(self) -> tuple[str, ...]:
        return tuple(f.key for f in self.fields if f.required)

    def field(self, key: str) -> Field:
        for item in self.fields:
            if item.key == key:
                return item
        raise KeyError(f"{self.name}.{key}")


def toml_literal(value: Any) -> str:
    """A default as written in TOML (``"ssh"``, ``true``, ``[]``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{}" if not value else str(value)
    return str(value)


def plain(markdown: str) -> str:
    """Description text for the JSON Schema: Markdown without its backticks."""
    return markdown.replace("`", "")
