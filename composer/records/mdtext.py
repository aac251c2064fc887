"""Markdown that user text cannot break: names in code spans, tables that stay tables.

Job names, output paths, metric keys and error messages are user text. Each is put
in a code span, which Markdown renders literally: no HTML, no emphasis, no link or
autolink can come out of it. Control characters (a newline would end a table row)
are escaped as Python writes them (``\\n``, ``\\x1b``); a ``|`` in a table cell is
escaped so it cannot start a new column; the span's fence is longer than any run of
backticks inside it, so a backtick cannot close it early.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from composer.records.guard import FORBIDDEN_CONTENT, terminal_text

_TICKS = re.compile(r"`+")
# The marker that would make the record's own guard refuse a README quoting a hostile
# output name; its dashes become non-breaking hyphens where it appears in a name.
_MARKER = FORBIDDEN_CONTENT.decode()
_MARKER_SHOWN = _MARKER.replace("-", "\u2011")


def plain(text: object) -> str:
    """``text`` as one line of visible characters: control characters escaped."""
    return terminal_text(str(text)).replace(_MARKER, _MARKER_SHOWN)


def code(text: object, in_table: bool = True) -> str:
    """``text`` as an inline code span, safe in a table cell (``in_table``) or in prose."""
    shown = plain(text)
    if in_table:
        shown = shown.replace("|", "\\|")
    if not shown:
        return ""
    longest = max((len(m) for m in _TICKS.findall(shown)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if shown.startswith("`") or shown.endswith("`") or shown.isspace() else ""
    return f"{fence}{pad}{shown}{pad}{fence}"


_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+-]*")


def word(text: object) -> str:
    """A value composer wrote (a status, a number, a time) as it is when it is one
    plain word, else as a code span: a hand-edited record is user text too."""
    shown = str(text)
    # (``www.`` would start an extended autolink on GitHub)
    safe = _WORD.fullmatch(shown) and "www." not in shown.lower()
    return shown if safe else code(shown)


def table(header: Sequence[str], rows: Iterable[Sequence[str]],
          align: Sequence[str] | None = None) -> str:
    """A GitHub table. Cells are Markdown already (``code`` for user text); a cell
    holding a newline or an unescaped ``|`` is a bug in the caller, refused here."""
    marks = {"l": "---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(marks[a] for a in (align or "l" * len(header))) + "|"]
    for row in rows:
        for cell in row:
            if "\n" in cell or "\r" in cell or re.search(r"(?<!\\)\|", cell):
                raise ValueError(f"unsafe table cell: {cell!r}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"
