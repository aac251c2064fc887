"""The run list (``index.html``): every run, newest first, filtered by job and status.

The filters are a few lines of plain script that hide rows; without script every
run is listed and the filter controls stay hidden. ``?job=NAME&status=STATUS``
in the address preselects them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from composer.records.read import RunSummary
from composer.site import html
from composer.site.html import link, status, text

ALL = "*"


def run_href(run_id: str, depth: int = 0) -> str:
    """The page of a run, relative to a page ``depth`` directories below the root."""
    return "../" * depth + f"runs/{run_id}.html"


def diff_href(run_a: str, run_b: str, depth: int = 0) -> str:
    return "../" * depth + f"diffs/{run_a}..{run_b}.html"


def _options(label: str, ident: str, values: Sequence[str]) -> str:
    options = [f"<option value=\"{ALL}\">all</option>"]
    options += [f"<option value=\"{text(v)}\">{text(v or '(none)')}</option>" for v in values]
    return (f"<label>{text(label)} <select id=\"{ident}\">" + "".join(options)
            + "</select></label>")


def _row(s: RunSummary, previous: Mapping[str, str]) -> str:
    duration = f"{s.duration_s:.1f}s" if s.duration_s is not None else "-"
    before = previous.get(s.run_id)
    compare = link(diff_href(before, s.run_id), "diff with previous") if before else ""
    cells = [
        link(run_href(s.run_id), s.run_id),
        text(s.job or "(none)"),
        status(s.status),
        f"<span class=\"num\">{s.nodes}</span>",
        text(duration),
        text(s.started_at or "-"),
        compare,
    ]
    return (f"<tr data-job=\"{text(s.job)}\" data-status=\"{text(s.status)}\">"
            + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>\n")


def index_page(runs: Sequence[RunSummary], previous: Mapping[str, str],
               extra_diffs: Sequence[tuple[str, str]]) -> str:
    """The run list; ``previous`` maps a run to the run before it of the same job."""
    jobs = sorted({s.job for s in runs})
    statuses = sorted({s.status for s in runs})
    rows = "".join(_row(s, previous) for s in reversed(runs))
    head = "".join(f"<th>{text(h)}</th>" for h in
                   ("run", "job", "status", "nodes", "duration", "started", "compare"))
    body = [
        "<h1>Runs</h1>\n",
        f"<p class=\"muted\">{len(runs)} recorded runs</p>\n",
        "<form id=\"filters\" class=\"filters\" hidden>",
        _options("job", "f-job", jobs), _options("status", "f-status", statuses),
        f"<span class=\"muted\"><span id=\"shown\">{len(runs)}</span> shown</span></form>\n",
        f"<table id=\"runs\">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}</tbody>\n"
        "</table>\n",
    ]
    if extra_diffs:
        items = "".join(f"<li>{link(diff_href(a, b), f'{a} .. {b}')}</li>\n"
                        for a, b in extra_diffs)
        body.append(f"<h2>Comparisons</h2>\n<ul>\n{items}</ul>\n")
    return html.page("Runs", "".join(body), script=html.LIST_SCRIPT)
