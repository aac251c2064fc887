"""One page per run: what its record holds, for people.

The result, plots, metrics (series drawn inline), nodes, stage timings,
outputs, the environment, the spec and lock, logs, and the rendered ``infra/``
with syntax highlighting. Every value comes from the record through
``composer.site.html.text`` or Pygments, which escape it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from composer.records.view import ordered_stages
from composer.site import highlight, html
from composer.site.html import kv, link, pre, status, table, text
from composer.site.listing import diff_href, run_href
from composer.site.view import Metric, RunView, TextFile

NODE_COLUMNS = ("name", "hostname", "address", "cpus", "memory_kb", "gpus", "arch", "os",
                "kernel", "mpi", "python")
RESULT_KEYS = ("job", "status", "stage", "error", "exit_code", "workload_exit_code",
               "composer_exit_code", "failed_node", "failed_rank", "stopped_nodes", "nodes",
               "launcher", "engine", "started_at", "finished_at", "duration_s",
               "composer_version")


@dataclass(frozen=True)
class Neighbours:
    """Links of a run's page to other pages of the site."""

    previous: str | None = None
    next: str | None = None
    diffs: tuple[tuple[str, str], ...] = ()
    known: frozenset[str] = frozenset()


def _value(value: Any) -> str:
    if value is None:
        return "<span class=\"muted\">-</span>"
    if isinstance(value, float):
        return text(format(value, ".6g"))
    if isinstance(value, str):
        return text(value)
    return f"<code>{text(html_json(value))}</code>"


def html_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _nav(view: RunView, near: Neighbours) -> str:
    items = [link("../index.html", "all runs")]
    if near.previous:
        items.append(link(run_href(near.previous, 1), "previous run of this job"))
    if near.next:
        items.append(link(run_href(near.next, 1), "next run of this job"))
    for a, b in near.diffs:
        other = a if b == view.run_id else b
        items.append(link(diff_href(a, b, 1), f"diff with {other}"))
    return "<nav>" + "".join(items) + "</nav>\n"


def _summary(view: RunView, near: Neighbours) -> str:
    result = view.result
    rows = [(key, status(str(result[key])) if key == "status" else _value(result[key]))
            for key in RESULT_KEYS if result.get(key) not in (None, [], {})]
    teardown = result.get("teardown")
    if isinstance(teardown, dict) and teardown.get("status"):
        rows.append(("teardown", _value(teardown.get("status"))))
    reproduces = result.get("reproduces")
    if isinstance(reproduces, str) and reproduces:
        shown = link(run_href(reproduces, 1), reproduces) if reproduces in near.known \
            else text(reproduces)
        rows.append(("reproduces", shown))
    rows.append(("tag", f"<code>{text(view.summary.tag)}</code>"))
    rows.append(("commit", f"<code>{text(view.summary.commit)}</code>"))
    return kv(rows)


def _sparkline(values: Sequence[float], width: int = 320, height: int = 64) -> str:
    low, high = min(values), max(values)
    span = high - low or 1.0
    step = (width - 4) / (len(values) - 1)
    points = " ".join(f"{2 + i * step:.2f},{height - 2 - (v - low) / span * (height - 4):.2f}"
                      for i, v in enumerate(values))
    return (f"<svg class=\"series\" width=\"{width}\" height=\"{height}\" "
            f"viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"series\">"
            f"<polyline fill=\"none\" stroke=\"#0b57c2\" stroke-width=\"1.5\" "
            f"points=\"{points}\"/></svg>")


def _metric_row(m: Metric) -> list[str]:
    name = [text(m.file), text(m.key or "(the whole file)")]
    if not m.series:
        return [*name, _value(m.value), ""]
    s = m.series
    facts = (f"{len(s)} values: first {s[0]:.6g}, last {s[-1]:.6g}, "
             f"min {min(s):.6g}, max {max(s):.6g}")
    return [*name, text(facts), _sparkline(s)]


def _metrics(view: RunView) -> str:
    if not view.metrics and not view.metric_problems:
        return ""
    parts = ["<h2 id=\"metrics\">Metrics</h2>\n"]
    if view.metrics:
        parts.append(table(("file", "key", "value", "plot"),
                           [_metric_row(m) for m in view.metrics]))
    parts += [f"<p class=\"muted\">{text(p)}</p>\n" for p in view.metric_problems]
    return "".join(parts)


def _plots(images: Sequence[tuple[str, str]]) -> str:
    if not images:
        return ""
    figures = "".join(
        f"<figure><img class=\"plot\" src=\"{text(src)}\" alt=\"{text(name)}\">"
        f"<figcaption class=\"mono\">{text(name)}</figcaption></figure>\n"
        for name, src in images)
    return f"<h2 id=\"plots\">Plots</h2>\n{figures}"


def _cell(node: dict[str, Any], key: str) -> str:
    value = node.get(key)
    if key == "memory_kb" and isinstance(value, int):
        return text(f"{value / 1024 / 1024:.1f} GiB")
    if key == "gpus" and isinstance(value, list):
        return text(", ".join(str(g.get("name", g)) if isinstance(g, dict) else str(g)
                              for g in value) or "none")
    return _value(value)


def _nodes(view: RunView) -> str:
    if not view.nodes:
        return "<h2 id=\"nodes\">Nodes</h2>\n<p class=\"muted\">no facts recorded</p>\n"
    present = {key for node in view.nodes for key in node}
    columns = [c for c in NODE_COLUMNS if c in present]
    rows = [[_cell(node, c) for c in columns] for node in view.nodes]
    head = ["memory" if c == "memory_kb" else c for c in columns]
    return "<h2 id=\"nodes\">Nodes</h2>\n" + table(head, rows)


def _stages(view: RunView) -> str:
    stages = view.result.get("stages")
    if not isinstance(stages, dict) or not stages:
        return ""
    rows = [[text(name), f"<span class=\"num\">{_value(value)}</span>"]
            for name, value in ordered_stages(stages)]
    return "<h2 id=\"stages\">Stages</h2>\n" + table(("stage", "seconds"), rows)


def _output_row(entry: dict[str, Any]) -> list[str]:
    digest = entry.get("sha256")
    kept = "committed" if entry.get("committed") else f"withheld: {entry.get('withheld', '')}"
    return [text(str(entry.get("path", ""))), _value(entry.get("node")),
            _value(entry.get("size")),
            f"<code>{text(digest)}</code>" if isinstance(digest, str) else _value(None),
            text(kept)]


def _outputs(view: RunView) -> str:
    head = "<h2 id=\"outputs\">Outputs</h2>\n"
    if not view.outputs:
        return head + "<p class=\"muted\">no outputs collected</p>\n"
    return head + table(("path", "node", "bytes", "sha256", "record"),
                        [_output_row(e) for e in view.outputs])


def _environment(view: RunView) -> str:
    envs = view.environment.get("environments")
    if not isinstance(envs, dict) or not envs:
        return ""
    nodes = view.environment.get("nodes")
    parts = ["<h2 id=\"environment\">Environment</h2>\n"]
    if view.environment.get("uniform") is False:
        parts.append("<p class=\"differs\">the nodes' environments differ</p>\n")
    for key in sorted(envs):
        env = envs[key] if isinstance(envs[key], dict) else {}
        users = sorted(n for n, k in nodes.items() if k == key) \
            if isinstance(nodes, dict) else []
        packages = env.get("packages") if isinstance(env.get("packages"), dict) else {}
        rows = [("nodes", text(", ".join(users) or "-"))]
        rows += [(name, _value(env.get(name))) for name in ("python", "mpi", "libraries",
                                                            "env", "error") if env.get(name)]
        rows.append(("packages", text(f"{len(packages)} installed")))
        listing = "".join(f"{name}=={version}\n" for name, version in sorted(packages.items()))
        parts.append(kv(rows))
        if listing:
            parts.append(f"<details><summary>packages</summary>{pre(listing)}</details>\n")
    return "".join(parts)


def _file(item: TextFile, opened: bool, plain: bool = False) -> str:
    size = f"{item.size} bytes" + (f", {item.cut} bytes in the middle not shown "
                                   f"(the whole file is in the runs repository)"
                                   if item.cut else "")
    flag = " open" if opened else ""
    body = pre(item.body) if plain else highlight.highlight(item.name, item.body)
    return (f"<details{flag}><summary><code>{text(item.name)}</code> "
            f"<span class=\"muted\">{text(size)}</span></summary>\n{body}</details>\n")


def _spec(view: RunView) -> str:
    parts = ["<h2 id=\"spec\">Spec and lock</h2>\n",
             _file(TextFile("job.toml", view.job_toml, len(view.job_toml.encode())), True)]
    if view.lock:
        pretty = json.dumps(view.lock, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        parts.append(_file(TextFile("lock.json", pretty, len(pretty.encode())), False))
    return "".join(parts)


def _logs(view: RunView) -> str:
    if not view.logs:
        return ""
    failed = view.result.get("failed_node")
    opened = {"logs/composer.log", f"logs/{failed}.log"}
    return "<h2 id=\"logs\">Logs</h2>\n" + "".join(
        _file(log, log.name in opened, plain=True) for log in view.logs)


def _infra(view: RunView) -> str:
    if not view.infra:
        return ""
    root = [f for f in view.infra if f.name.count("/") == 1]
    vendored = [f for f in view.infra if f.name.count("/") > 1]
    parts = ["<h2 id=\"infra\">Infrastructure (<code>infra/</code>)</h2>\n"]
    parts += [_file(f, f.name == "infra/main.tf") for f in root]
    if vendored:
        parts.append("<h3>vendored modules</h3>\n")
        parts += [_file(f, False) for f in vendored]
    return "".join(parts)


def _files(view: RunView) -> str:
    listing = "".join(f"{name}\n" for name in view.files)
    return (f"<h2 id=\"files\">Files</h2>\n<details><summary>{len(view.files)} files in the "
            f"record</summary>{pre(listing)}</details>\n")


def run_page(view: RunView, near: Neighbours, images: Sequence[tuple[str, str]]) -> str:
    """The page of one run; ``images`` pairs each plot's record path with its src."""
    job = view.summary.job or "(no job)"
    body = [
        _nav(view, near),
        f"<h1>{text(view.run_id)}</h1>\n",
        f"<p>{text(job)} {status(view.summary.status)}</p>\n",
        _summary(view, near),
        _plots(images),
        _metrics(view),
        _nodes(view),
        _stages(view),
        _outputs(view),
        _environment(view),
        _spec(view),
        _logs(view),
        _infra(view),
        _files(view),
    ]
    return html.page(f"{view.run_id} ({job})", "".join(body), extra_css=highlight.css())
