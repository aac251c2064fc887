"""A unified diff (as ``composer diff`` gives it) laid out side by side.

Context lines appear on both sides, removed lines on the left beside the added
lines that replace them on the right; each hunk starts with its ``@@`` header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import zip_longest

from composer.site.html import text

_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")


@dataclass(frozen=True)
class Row:
    """One row: ``kind`` is ``hunk``, ``same`` or ``change``; a side may be empty."""

    kind: str
    left_no: int | None = None
    left: str | None = None
    right_no: int | None = None
    right: str | None = None


class _Rows:
    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.left: list[tuple[int, str]] = []
        self.right: list[tuple[int, str]] = []
        self.old = self.new = 0

    def flush(self) -> None:
        for old, new in zip_longest(self.left, self.right):
            self.rows.append(Row("change", *(old or (None, None)), *(new or (None, None))))
        self.left, self.right = [], []

    def line(self, line: str) -> None:
        mark, body = line[:1], line[1:]
        if mark == "-":
            self.left.append((self.old, body))
            self.old += 1
        elif mark == "+":
            self.right.append((self.new, body))
            self.new += 1
        elif mark == "\\":
            self.flush()
            self.rows.append(Row("hunk", None, line, None, line))
        else:
            self.flush()
            self.rows.append(Row("same", self.old, body, self.new, body))
            self.old += 1
            self.new += 1


def rows(diff: str) -> list[Row]:
    """The rows of a unified diff; the ``---``/``+++`` header lines are left out."""
    out = _Rows()
    started = False
    lines = diff.removesuffix("\n").split("\n") if diff else []
    for line in lines:
        hunk = _HUNK.match(line)
        if hunk:
            out.flush()
            started = True
            out.old, out.new = int(hunk.group(1)), int(hunk.group(2))
            out.rows.append(Row("hunk", None, line, None, ""))
        elif started:
            out.line(line)
    out.flush()
    return out.rows


def _side(number: int | None, body: str | None, cls: str) -> str:
    if body is None:
        return "<td class=\"ln\"></td><td></td>"
    shown = "" if number is None else str(number)
    attr = f" class=\"{cls}\"" if cls else ""
    return f"<td class=\"ln\">{shown}</td><td{attr}>{text(body)}</td>"


def table(diff: str, left: str, right: str) -> str:
    """The side-by-side table of ``diff`` with column titles ``left`` and ``right``."""
    body = []
    for row in rows(diff):
        if row.kind == "hunk":
            body.append(f"<tr class=\"hunk\"><td colspan=\"4\">{text(row.left or '')}"
                        "</td></tr>\n")
            continue
        changed = row.kind == "change"
        body.append("<tr>" + _side(row.left_no, row.left, "del" if changed else "")
                    + _side(row.right_no, row.right, "add" if changed else "") + "</tr>\n")
    return ("<table class=\"sbs\">\n<colgroup><col class=\"ln\"><col><col class=\"ln\"><col>"
            f"</colgroup>\n<thead><tr><th colspan=\"2\">{text(left)}</th>"
            f"<th colspan=\"2\">{text(right)}</th></tr></thead>\n<tbody>\n{''.join(body)}"
            "</tbody>\n</table>\n")
