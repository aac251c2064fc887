"""Syntax highlighting of a record's text files: Pygments when it is installed (the
``site`` extra), else the text escaped in a plain ``<pre>``.

Pygments writes class names only (no inline styles, which the pages' Content
Security Policy forbids) and escapes the text itself; ``css`` gives the rules
for those classes. The output depends only on the text and Pygments' version.
"""

from __future__ import annotations

from typing import Any

from composer.site.html import pre, visible

#: Larger files are shown plain: highlighting them would make slow, heavy pages.
HIGHLIGHT_LIMIT = 256 * 1024
CSS_SCOPE = ".highlight"


def _pygments() -> Any:
    try:
        import pygments  # noqa: F401 - only asks whether it is installed
    except ImportError:
        return None
    from pygments import formatters, lexers, util

    return formatters, lexers, util


def available() -> bool:
    """Whether files are highlighted (Pygments importable)."""
    return _pygments() is not None


def css() -> str:
    """The style rules for highlighted code ("" without Pygments)."""
    found = _pygments()
    if found is None:
        return ""
    formatters, _lexers, _util = found
    return str(formatters.HtmlFormatter(style="default").get_style_defs(CSS_SCOPE)) + "\n"


def _lexer(found: Any, name: str, body: str) -> Any:
    _formatters, lexers, util = found
    base = name.rsplit("/", 1)[-1]
    if base.endswith((".tf", ".hcl", ".tfvars")):
        return lexers.get_lexer_by_name("terraform")
    try:
        return lexers.get_lexer_for_filename(base, body)
    except util.ClassNotFound:
        return lexers.get_lexer_by_name("text")


def highlight(name: str, body: str) -> str:
    """``body`` (the text of the file ``name``) as HTML, highlighted where possible."""
    found = _pygments()
    if found is None or len(body) > HIGHLIGHT_LIMIT:
        return pre(body)
    formatters, _lexers, _util = found
    from pygments import highlight as run

    shown = visible(body)
    formatter = formatters.HtmlFormatter(cssclass=CSS_SCOPE.lstrip("."))
    return str(run(shown, _lexer(found, name, shown), formatter))
