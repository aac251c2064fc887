"""The checker's primitives: read one value of a parsed TOML table, add a problem at its
dotted path when it is wrong, and go on, so that every problem is found at once."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from composer.errors import Problem
from composer.spec.fields import MISSING, Field, Section
from composer.spec.text import clip, describe, join, quote, suggest
from composer.spec.values import parse_size

Table = Mapping[str, Any]
LARGEST_FILE_SIZE = 10**12


class Checker:
    """Collects every problem found in a parsed TOML document."""

    def __init__(self, base_dir: Path, check_paths: bool = True,
                 environ: Mapping[str, str] | None = None) -> None:
        self.base_dir = base_dir
        self.problems: list[Problem] = []
        #: False for a recorded spec read elsewhere: its code and inputs need not exist.
        self.check_paths = check_paths
        #: Where a default a spec may leave to the environment comes from (gcp.project
        #: from GOOGLE_CLOUD_PROJECT): this process's, or what a recorded run used.
        self.environ: Mapping[str, str] = os.environ if environ is None else environ

    def add(self, path: str, message: str) -> None:
        """Record a problem; returns None so a check can ``return self.add(...)``."""
        self.problems.append(Problem(path, message))

    def count(self) -> int:
        return len(self.problems)

    def section(self, data: Table, section: Section) -> Table | None:
        name = section.name
        if name not in data:
            if section.required:
                self.add(name, "required section")
            return None
        if not isinstance(data[name], dict):
            self.add(name, f"must be a table, got {describe(data[name])}")
            return None
        return data[name]

    def get(self, table: Table, section: Section, key: str) -> tuple[Any, str]:
        path = f"{section.name}.{key}"
        if key not in table and section.field(key).required:
            self.add(path, "required")
        return table.get(key, MISSING), path

    def unknown(self, table: Table, prefix: str, allowed: tuple[str, ...]) -> None:
        for key in table:
            if key not in allowed:
                self.add(join(prefix, key), "unknown key" + suggest(key, allowed))

    def unknown_keys(self, table: Table, section: Section) -> None:
        self.unknown(table, section.name, section.keys)

    def value(self, table: Table, section: Section, key: str) -> Any:
        """A field checked from its description alone (string, integer, boolean, choice)."""
        item = section.field(key)
        raw, path = self.get(table, section, key)
        return self.described(raw, path, item)

    def described(self, raw: Any, path: str, item: Field) -> Any:
        default = None if item.default is MISSING else item.default
        if item.kind == "integer":
            low, high = item.minimum, item.upper()
            assert low is not None and high is not None
            return self.integer(raw, path, low, high, default)
        if item.kind == "boolean":
            return self.boolean(raw, path, bool(default))
        if item.kind == "choice":
            return self.choice(raw, path, item.options(), default)
        if item.kind == "string":
            return self.string(raw, path, default, nonempty=item.nonempty)
        raise AssertionError(f"{path} is checked by hand")

    def string(
        self, value: Any, path: str, default: str | None = None, nonempty: bool = False
    ) -> str | None:
        if value is MISSING:
            return default
        if not isinstance(value, str):
            return self.add(path, f"must be a string, got {describe(value)}")
        if "\x00" in value:
            return self.add(path, "must not contain NUL characters")
        if nonempty and not value.strip():
            return self.add(path, "must not be empty")
        return value

    def integer(
        self,
        value: Any,
        path: str,
        low: int,
        high: int,
        default: int | None = None,
        where: str = "",
    ) -> int | None:
        if value is MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            return self.add(path, f"must be an integer, got {describe(value)}")
        if value < low:
            return self.add(path, f"must be at least {low}, got {clip(str(value))}")
        if value > high:
            return self.add(path, f"must be at most {high}{where}, got {clip(str(value))}")
        return value

    def choice(
        self,
        value: Any,
        path: str,
        choices: tuple[str, ...],
        default: str | None = None,
    ) -> str | None:
        text = self.string(value, path, default)
        if text is None or text in choices:
            return text
        options = ", ".join(f"'{choice}'" for choice in choices)
        message = f"must be one of {options}, got {quote(text)}"
        return self.add(path, message + suggest(text, choices))

    def boolean(self, value: Any, path: str, default: bool) -> bool:
        if value is MISSING:
            return default
        if not isinstance(value, bool):
            self.add(path, f"must be a boolean (true or false), got {describe(value)}")
            return default
        return value

    def size(self, value: Any, path: str, default: int) -> int:
        if value is MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            expected = 'must be a size such as "50MB" or a number of bytes'
            self.add(path, f"{expected}, got {describe(value)}")
            return default
        try:
            size = parse_size(value)
        except ValueError as exc:
            self.add(path, str(exc))
            return default
        if not 1 <= size <= LARGEST_FILE_SIZE:
            self.add(path, f"must be between 1 byte and 1TB, got {describe(value)}")
        return size

    def strings(
        self, value: Any, path: str, what: str, rule: Callable[[str], str | None]
    ) -> tuple[str, ...]:
        """The items of a non-empty array of distinct, non-empty strings, each of which
        ``rule`` finds no problem with (it returns the problem's message); items with
        problems are left out."""
        if not isinstance(value, list):
            self.add(path, f"must be an array of {what}, got {describe(value)}")
            return ()
        if not value:
            self.add(path, f"must not be empty: give at least one of the {what}")
            return ()
        seen: dict[str, str] = {}
        for i, raw in enumerate(value):
            where = f"{path}[{i}]"
            text = self.string(raw, where, nonempty=True)
            if text is None:
                continue
            problem = rule(text)
            if problem is not None:
                self.add(where, problem)
            elif text in seen:
                self.add(where, f"{quote(text)} is also listed at {seen[text]}")
            else:
                seen[text] = where
        return tuple(seen)

    def local_path(self, raw: str, path: str, directory: bool) -> Path | None:
        kind = "directory" if directory else "file"
        try:
            resolved = (self.base_dir / raw).resolve()
            if not resolved.is_relative_to(self.base_dir):
                where = f"outside the job directory {self.base_dir}"
                return self.add(path, f"resolves to {resolved}, {where}")
            if not self.check_paths:
                return resolved
            if not resolved.exists():
                return self.add(path, f"{kind} not found: {resolved}")
            if not (resolved.is_dir() if directory else resolved.is_file()):
                what = "directory" if directory else "regular file"
                return self.add(path, f"not a {what}: {resolved}")
        except (OSError, RuntimeError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            return self.add(path, f"cannot use {kind} {quote(raw)}: {reason}")
        return resolved
