"""``composer diff`` of two runs as a page: the runs side by side, then each of the
diff's sections (spec, lock, infra, facts, environment, results), text diffs in
two columns. The data is ``composer.diff``'s, as ``composer diff --json`` gives it.
"""

from __future__ import annotations

import json
from typing import Any

from composer.records.read import RunSummary
from composer.site import html, sidebyside
from composer.site.html import kv, link, pre, status, table, text
from composer.site.listing import run_href


def _value(value: Any) -> str:
    if value is None:
        return "<span class=\"muted\">(none)</span>"
    if isinstance(value, str):
        return text(value)
    return f"<code>{text(json.dumps(value, sort_keys=True, ensure_ascii=False))}</code>"


def _run_box(label: str, s: RunSummary) -> str:
    duration = f"{s.duration_s:.1f}s" if s.duration_s is not None else "-"
    rows = [("run", link(run_href(s.run_id, 1), s.run_id)), ("job", text(s.job or "-")),
            ("status", status(s.status)), ("nodes", text(s.nodes)),
            ("started", text(s.started_at or "-")), ("duration", text(duration))]
    return f"<div><h3>{text(label)}</h3>\n{kv(rows)}</div>\n"


def _text_diff(name: str, diff: str, a: str, b: str) -> str:
    if diff.startswith("---"):
        return sidebyside.table(diff, f"{a}: {name}", f"{b}: {name}")
    return f"<p>{text(name)}: {text(diff)}</p>\n"


def _lock(section: dict[str, Any], a: str, b: str) -> str:
    rows = [[text(c["pin"]), _value(c["old"]), _value(c["new"])] for c in section["changes"]]
    return table(("pin", a, b), rows)


def _infra(section: dict[str, Any], a: str, b: str) -> str:
    return "".join(f"<h3><code>infra/{text(path)}</code></h3>\n"
                   + _text_diff(f"infra/{path}", diff, a, b)
                   for path, diff in section["files"].items())


def _facts(section: dict[str, Any], a: str, b: str) -> str:
    old, new = section["node_count"]
    parts = [f"<p>nodes: {old} in {text(a)}, {new} in {text(b)}</p>\n"] if old != new else []
    rows = []
    for node in section["nodes"]:
        name = f"node-{node['rank']}"
        if node["only_in"]:
            side = a if node["only_in"] == "a" else b
            rows.append([text(name), text("(only in this run)"), text(side), ""])
        rows += [[text(name), text(c["field"]), _value(c["old"]), _value(c["new"])]
                 for c in node["changes"]]
    if rows:
        parts.append(table(("node", "fact", a, b), rows))
    return "".join(parts)


def _environment(section: dict[str, Any], a: str, b: str) -> str:
    parts = [f"<p>environment.json: not recorded in {text(run)}</p>\n"
             for run, there in zip((a, b), section["recorded"], strict=True) if not there]
    rows = [[text(c["field"]), _value(c["old"]), _value(c["new"]),
             text(", ".join(c["nodes"]) or "all")] for c in section["changes"]]
    if rows:
        parts.append(table(("field", a, b, "nodes"), rows))
    return "".join(parts)


def _results(section: dict[str, Any], a: str, b: str) -> str:
    parts = []
    if section["status"]:
        parts.append(table(("field", a, b), [[text(c["field"]), _value(c["old"]),
                                              _value(c["new"])] for c in section["status"]]))
    if section["files"]:
        rows = [[text(f["path"]), text(f["kind"]), _value(f["old_size"]), _value(f["new_size"]),
                 _value(f["old_sha256"]), _value(f["new_sha256"])] for f in section["files"]]
        parts.append("<h3>output files</h3>\n" + table(
            ("path", "change", f"{a} bytes", f"{b} bytes", f"{a} sha256", f"{b} sha256"), rows))
        parts += [f"<h3><code>{text(f['path'])}</code></h3>\n"
                  + _text_diff(f"outputs/{f['path']}", f["diff"], a, b)
                  for f in section["files"] if f.get("diff")]
    if section["metrics"]:
        rows = [[text(m["file"]), text(m["key"] or "(the whole file)"), _value(m["old"]),
                 _value(m["new"]), _value(m["abs_diff"]), _value(m["rel_diff"])]
                for m in section["metrics"]]
        parts.append("<h3>metrics</h3>\n" + table(
            ("file", "key", a, b, "abs diff", "rel diff"), rows))
    return "".join(parts)


def _section(section: dict[str, Any], a: str, b: str) -> str:
    name = section["name"]
    head = (f"<h2 id=\"{text(name)}\">{text(name)} "
            f"<span class=\"{'same' if section['same'] else 'differs'}\">"
            f"{'same' if section['same'] else 'differs'}</span></h2>\n")
    if section["same"]:
        return head
    if name == "spec":
        return head + _text_diff("job.toml", section["diff"], a, b)
    render = {"lock": _lock, "infra": _infra, "facts": _facts, "environment": _environment,
              "results": _results}.get(name)
    if render is None:
        return head + pre(json.dumps(section, indent=2, sort_keys=True))
    return head + render(section, a, b)


def diff_page(data: dict[str, Any], run_a: RunSummary, run_b: RunSummary) -> str:
    """The page of ``composer diff`` data between ``run_a`` and ``run_b``."""
    a, b = data["a"], data["b"]
    nav = ("<nav>" + link("../index.html", "all runs") + link(run_href(a, 1), a)
           + link(run_href(b, 1), b) + "</nav>\n")
    summary = table(("section", "between the runs"), [
        [f"<a href=\"#{text(s['name'])}\">{text(s['name'])}</a>",
         f"<span class=\"{'same' if s['same'] else 'differs'}\">"
         f"{'same' if s['same'] else 'differs'}</span>"] for s in data["sections"]])
    body = [nav, f"<h1>{text(a)} .. {text(b)}</h1>\n",
            "<div class=\"cols\">\n", _run_box("a", run_a), _run_box("b", run_b), "</div>\n",
            summary]
    body += [_section(s, a, b) for s in data["sections"]]
    return html.page(f"diff {a} .. {b}", "".join(body))
