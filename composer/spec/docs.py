"""The field tables of docs/spec.md, made from the field descriptions.

``python -m composer.spec.docs`` (``make docs``) rewrites each table between its marker
comments, ``<!-- fields: NAME -->`` and ``<!-- /fields -->``, and leaves the prose around
them alone; ``--check`` only says whether the file is up to date (exit 1 when not).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path

from composer.spec.fields import Field
from composer.spec.load import SCHEMA, target_sections
from composer.spec.results import TOLERANCE_FIELDS

DOC = Path(__file__).resolve().parents[2] / "docs" / "spec.md"
_BLOCK = re.compile(r"(<!-- fields: (?P<name>[a-z_.]+) -->\n)(?P<table>.*?)(<!-- /fields -->)",
                    re.S)


def tables() -> dict[str, tuple[Field, ...]]:
    """Every field table by name: a section's name, or ``reproduce.tolerance``."""
    found = {name: s.fields for name, s in {**SCHEMA, **target_sections()}.items() if s.fields}
    found["reproduce.tolerance"] = TOLERANCE_FIELDS
    return found


def table(fields: Sequence[Field]) -> str:
    rows = [(f"`{f.key}`", f.type, f.doc_default(), f.text()) for f in fields]
    return "| key | type | default | constraints |\n|---|---|---|---|\n" + "".join(
        "|" + "|".join(f" {cell} " if cell else " " for cell in row) + "|\n" for row in rows
    )


def rewrite(text: str) -> str:
    known = tables()

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name not in known:
            raise SystemExit(f"docs/spec.md: no field table named {name!r}; "
                             f"known: {', '.join(known)}")
        return match.group(1) + table(known[name]) + match.group(4)

    return _BLOCK.sub(replace, text)


def main(argv: Sequence[str] = ()) -> int:
    check = "--check" in argv
    text = DOC.read_text(encoding="utf-8")
    new = rewrite(text)
    if new == text:
        return 0
    if check:
        print(f"{DOC} is out of date: run make docs", file=sys.stderr)
        return 1
    DOC.write_text(new, encoding="utf-8")
    print(f"rewrote the field tables of {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
