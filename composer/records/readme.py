"""A record's ``README.md``: the run as a person reads it, rendered by git hosting.

``render_readme(record)`` turns a record directory (staged, checked out or exported)
into Markdown: the job, status and verdict, the nodes and their facts, stage timings
in pipeline order, outputs with sizes and hashes, the ``[reproduce] metrics`` files'
numbers, and their series' plots. It reads only what the record holds (what the
guard already let in) and writes nothing. ``write_readme(record)`` draws the plots
(with matplotlib) and writes ``README.md``; a run's record gets one before its commit.

Everything a user named (job, outputs, metric keys, errors) goes through
``mdtext``: it cannot break a table or become HTML or a link. The text is the same
for the same record: no clock, no host, no path outside the record.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from composer.jsonfile import read_object
from composer.records import manifest as manifests
from composer.records import plots
from composer.records.mdtext import code, plain, table, word
from composer.records.names import is_run_id
from composer.records.view import ordered_stages

README = "README.md"
MAX_METRICS_BYTES = 8 << 20
MAX_ROWS = 200  # per table; the rest is counted, the record's JSON has it all
MAX_PLOTS = 24


@dataclass
class RecordData:
    """What a README is made from: the record's JSON files, parsed (empty when absent)."""

    result: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    reproduction: dict[str, Any] | None = None
    job: dict[str, Any] = field(default_factory=dict)
    #: metrics file -> its parsed JSON, or a string saying why it is not shown
    metrics: dict[str, Any] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    plots: set[str] = field(default_factory=set)
    files: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, root: Path) -> RecordData:
        root = Path(root)
        data = cls(result=read_object(root / "result.json") or {},
                   facts=read_object(root / "facts.json") or {},
                   manifest=manifests.load(root),
                   reproduction=read_object(root / "reproduction.json"),
                   job=_toml(root / "job.toml"))
        for name in metric_files(data.job):
            data.metrics[name] = _metrics_file(root / "outputs", name)
        logs = root / "logs"
        data.logs = sorted(p.name for p in logs.glob("*.log")) if logs.is_dir() else []
        folder = root / plots.PLOTS_DIR
        data.plots = {f"{plots.PLOTS_DIR}/{p.name}" for p in folder.glob("*.png")} \
            if folder.is_dir() else set()
        data.files = {name for name in ("job.toml", "lock.json", "facts.json",
                                        "environment.json", "manifest.json", "result.json",
                                        "reproduction.json", "infra")
                      if (root / name).exists()}
        return data


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


def metric_files(job: dict[str, Any]) -> list[str]:
    """The ``[reproduce] metrics`` files of a job spec's TOML, as written."""
    section = job.get("reproduce")
    names = section.get("metrics") if isinstance(section, dict) else None
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def _metrics_file(outputs: Path, name: str) -> Any:
    path = outputs / name
    try:
        inside = path.resolve().is_relative_to(outputs.resolve())
        if not inside or not path.is_file() or path.is_symlink():
            return "not in the record's outputs"
        if path.stat().st_size > MAX_METRICS_BYTES:
            return f"over {MAX_METRICS_BYTES >> 20} MiB; not shown"
        return json.loads(path.read_bytes())
    except OSError as exc:
        return f"unreadable: {exc.strerror or exc}"
    except (ValueError, RecursionError):
        return "not JSON"


def all_series(data: RecordData) -> list[plots.Series]:
    """Every series of the metrics files, in file then document order."""
    found: list[plots.Series] = []
    for name, value in data.metrics.items():
        if not isinstance(value, str):
            found += plots.find_series(name, value)
    return found


# -- rendering ---------------------------------------------------------------


def render_readme(record: Path | RecordData) -> str:
    """The README.md of a record: a directory holding it, or its ``RecordData``."""
    data = record if isinstance(record, RecordData) else RecordData.load(Path(record))
    sections: list[Callable[[RecordData], str]] = [
        _summary, _verdict, _attempts, _nodes, _stages, _outputs, _metrics, _files]
    parts = [text for text in (section(data) for section in sections) if text]
    return "\n".join(parts)


def _summary(data: RecordData) -> str:
    r = data.result
    run_id = r.get("run_id")
    job = r.get("job") or (data.job.get("job") or {}).get("name")
    title = f"# Run {word(run_id) if run_id else '(no run id)'}"
    lines = [title + (f": {code(job, in_table=False)}" if job else ""), ""]
    description = (data.job.get("job") or {}).get("description")
    if isinstance(description, str) and description.strip():
        lines += [f"> {code(description.strip(), in_table=False)}", ""]
    rows = [("status", _status(r))]
    if r.get("error"):
        at = f" (at {word(r['stage'])})" if r.get("stage") else ""
        rows.append(("error", code(r["error"]) + at))
    if isinstance(r.get("reproduces"), str):
        rows.append(("reproduces", _run_link(r["reproduces"])))
    if data.reproduction:
        rows.append(("verdict", _verdict_word(data.reproduction)))
    nodes = r.get("nodes")
    if nodes is not None:
        rows.append(("nodes", f"{word(nodes)} ({word(r.get('launcher') or '?')} launcher)"))
    if r.get("engine"):
        rows.append(("engine", word(r["engine"])))
    for key in ("started_at", "finished_at"):
        if r.get(key):
            rows.append((key.replace("_", " "), word(r[key])))
    if isinstance(r.get("duration_s"), int | float):
        rows.append(("duration", _seconds(r["duration_s"])))
    teardown = r.get("teardown")
    if isinstance(teardown, dict) and teardown.get("status"):
        rows.append(("teardown", word(teardown["status"])
                     + (f": {code(teardown['error'])}" if teardown.get("error") else "")))
    if r.get("composer_version"):
        rows.append(("recorded by", f"composer {word(r['composer_version'])}"))
    lines.append(table(("", ""), [(f"**{k}**", v) for k, v in rows]))
    return "\n".join(lines)


def _status(r: dict[str, Any]) -> str:
    status = r.get("status") or "unknown"
    text = f"**{word(status)}**"
    codes = []
    if r.get("workload_exit_code") is not None:
        codes.append(f"workload exit code {word(r['workload_exit_code'])}")
    if r.get("composer_exit_code") is not None:
        codes.append(f"composer exit code {word(r['composer_exit_code'])}")
    if r.get("failed_node"):
        who = code(r["failed_node"])
        if r.get("failed_rank") is not None:
            who = f"rank {word(r['failed_rank'])} on {who}"
        codes.append(f"failed first: {who}")
    return text + (f" ({', '.join(codes)})" if codes else "")


def _run_link(run_id: str) -> str:
    if is_run_id(run_id):
        return f"[{run_id}](../{run_id}/{README})"
    return code(run_id)


def _verdict_word(v: dict[str, Any]) -> str:
    text = f"**{word(v.get('verdict') or 'unknown')}**"
    if v.get("outputs") and v.get("outputs") != v.get("verdict"):
        text += f" (outputs: {word(v['outputs'])})"
    return text


def _verdict(data: RecordData) -> str:
    v = data.reproduction
    if not v:
        return ""
    out = ["## Reproduction", ""]
    reproduces = v.get("reproduces")
    what = _run_link(reproduces) if isinstance(reproduces, str) else "the recorded run"
    out += [f"This run reproduces {what}; the verdict is {_verdict_word(v)}.", ""]
    status = v.get("status")
    if isinstance(status, dict) and status.get("old") != status.get("new"):
        out += [f"Status: {word(status.get('old'))} → {word(status.get('new'))}.", ""]
    drift = [d for d in v.get("drift") or [] if isinstance(d, dict)]
    if drift:
        out += ["Drift (pins that changed since the recorded run):", "",
                _capped(("kind", "name", "recorded", "now"),
                        [(code(d.get("kind")), code(d.get("name")), _val(d.get("old")),
                          _val(d.get("new"))) for d in drift])]
    files = [f for f in v.get("files") or [] if isinstance(f, dict)]
    if files:
        out += ["Outputs that differ:", "",
                _capped(("output", "change", "recorded sha256", "new sha256"),
                        [(code(f.get("path")), word(f.get("kind")), _val(f.get("old_sha256")),
                          _val(f.get("new_sha256"))) for f in files])]
    metrics = [m for m in v.get("metrics") or [] if isinstance(m, dict)]
    if metrics:
        out += ["Metrics compared:", "",
                _capped(("file", "key", "recorded", "new", "abs diff", "within tolerance"),
                        [(code(m.get("file")), code(m.get("key")), _val(m.get("old")),
                          _val(m.get("new")), _val(m.get("abs_diff")),
                          "yes" if m.get("within") else "**no**") for m in metrics],
                        "llrrrl")]
    if not (drift or files or metrics):
        out += ["Outputs and metrics are the same as recorded.", ""]
    return "\n".join(out)


def _nodes(data: RecordData) -> str:
    nodes = [n for n in data.facts.get("nodes") or [] if isinstance(n, dict)]
    if not nodes:
        return ""
    rows = []
    for n in sorted(nodes, key=lambda n: n.get("rank") if isinstance(n.get("rank"), int)
                    else 0):
        gpus = [g for g in n.get("gpus") or [] if isinstance(g, dict)]
        gpu_text = "<br>".join(
            code(" ".join(str(g.get(k) or "") for k in ("name", "memory")).strip()
                 + (f", driver {g['driver']}" if g.get("driver") else ""))
            for g in gpus) or "none"
        memory = n.get("memory_kb")
        rows.append((code(n.get("name") or f"node-{n.get('rank')}"), _val(n.get("hostname")),
                     _val(n.get("address")), _val(n.get("cpus")),
                     f"{memory / (1 << 20):.1f} GiB" if isinstance(memory, int) else "-",
                     gpu_text, _val(n.get("os")), _val(n.get("kernel")), _val(n.get("arch")),
                     _val(n.get("mpi")), _val(n.get("python"))))
    return "\n".join([
        "## Nodes", "",
        _capped(("node", "hostname", "address", "CPUs", "memory", "GPUs", "OS", "kernel",
                 "arch", "MPI", "Python"), rows, "lllrrllllll"),
    ])


def _attempts(data: RecordData) -> str:
    """Every try at the run when there was more than one (a capacity failover, a lost
    node's retry), or a node was lost: a run that recovered looks otherwise clean."""
    attempts = data.result.get("attempts")
    lost = data.result.get("lost_nodes") or []
    if not isinstance(attempts, list) or (len(attempts) < 2 and not lost):
        return ""
    rows = []
    for number, attempt in enumerate(attempts, start=1):
        if not isinstance(attempt, dict):
            continue
        seconds = attempt.get("seconds")
        rows.append((str(number), _val(attempt.get("zone")), _val(attempt.get("type")),
                     _val(attempt.get("outcome")),
                     ", ".join(code(str(n)) for n in attempt.get("lost_nodes") or []) or "",
                     _seconds(seconds) if isinstance(seconds, int | float) else _val(seconds),
                     _val(attempt.get("error"))))
    lines = ["## Attempts", "",
             f"The run was tried {len(rows)} time(s); the stages, outputs and metrics below "
             "are the last attempt's (earlier attempts' node logs are under "
             "`logs/attempt-N/`).", "",
             table(("attempt", "zone", "type", "outcome", "lost nodes", "time", "error"), rows,
                   "rllllrl")]
    return "\n".join(lines)


def _stages(data: RecordData) -> str:
    stages = data.result.get("stages")
    if not isinstance(stages, dict) or not stages:
        return ""
    rows = [(word(name), _seconds(value) if isinstance(value, int | float) else _val(value))
            for name, value in ordered_stages(stages)]
    total = data.result.get("duration_s")
    if isinstance(total, int | float):
        rows.append(("**total**", f"**{_seconds(total)}**"))
    return "\n".join(["## Stages", "", table(("stage", "time"), rows, "lr")])


def _outputs(data: RecordData) -> str:
    files = [f for f in data.manifest.get("files") or [] if isinstance(f, dict)]
    if not files:
        return "## Outputs\n\nNo outputs were collected.\n"
    rows = []
    total = 0
    for f in files:
        size = f.get("size")
        total += size if isinstance(size, int) else 0
        committed = f.get("committed", True)
        note = "" if committed else f"withheld: {code(f.get('withheld') or 'not committed')}"
        for flag, said in (("grew_during_collect", "grew while collected"),
                           ("shrank_during_collect", "shrank while collected")):
            if f.get(flag):
                note = f"{note}; {said}" if note else said
        rows.append((code(f.get("path")), _val(f.get("node")), _size(size),
                     code(f["sha256"]) if f.get("sha256") else "-", note))
    held = sum(1 for f in files if not f.get("committed", True))
    head = f"{len(files)} file{'s' if len(files) != 1 else ''}, {_size(total)}"
    if held:
        head += f"; {held} withheld (listed, not committed)"
    return "\n".join(["## Outputs", "", head + " (`manifest.json` lists every one).", "",
                      _capped(("output", "node", "size", "sha256", "note"), rows, "llrll")])


def _metrics(data: RecordData) -> str:
    if not data.metrics:
        return ""
    out = ["## Metrics", ""]
    series = all_series(data)
    for name, value in data.metrics.items():
        out += [f"### {code(name, in_table=False)}", ""]
        if isinstance(value, str):
            out += [f"Not shown: {plain(value)}.", ""]
            continue
        rows = [(code(key or "(value)"), shown) for key, shown in _metric_rows(value)]
        out += [_capped(("key", "value"), rows, "lr")] if rows else ["No values.", ""]
    if series:
        out += _plot_lines(data, series)
    return "\n".join(out)


def _metric_rows(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """(key, shown value) per leaf; a series is one row that sums it up."""
    if plots.is_series(value):
        return [(prefix, plots.Series("", prefix, tuple(float(v) for v in value)).summary())]
    if isinstance(value, dict) and value:
        rows = []
        for key, item in value.items():
            rows += _metric_rows(item, f"{prefix}.{key}" if prefix else str(key))
        return rows
    if isinstance(value, list) and value:
        rows = []
        for index, item in enumerate(value):
            rows += _metric_rows(item, f"{prefix}[{index}]")
        return rows
    return [(prefix, _val(value))]


def _plot_lines(data: RecordData, series: list[plots.Series]) -> list[str]:
    out = ["### Plots", ""]
    missing = 0
    for s in series[:MAX_PLOTS]:
        name = s.plot_name
        if name in data.plots:
            alt = plain(f"{s.file}: {s.key}").replace("[", "(").replace("]", ")")
            alt = "".join(c for c in alt if c not in "\\`*_<>!()") or "plot"
            out += [f"{code(s.file, in_table=False)} {code(s.key, in_table=False)}:", "",
                    f"![{alt}]({name})", ""]
        else:
            missing += 1
    if len(series) > MAX_PLOTS:
        out += [f"{len(series) - MAX_PLOTS} more series are not plotted "
                f"(at most {MAX_PLOTS} per record).", ""]
    if missing:
        out += [f"{missing} series {'is' if missing == 1 else 'are'} not plotted: plots need "
                f"matplotlib where the run is recorded (`{plots.INSTALL_HINT}`).", ""]
    return out


def _files(data: RecordData) -> str:
    out = ["## In this record", ""]
    notes = {"job.toml": "the job spec as given", "lock.json": "every pin: versions, hashes",
             "infra": "the rendered Terraform root module",
             "facts.json": "what each node is", "environment.json": "the Python environment",
             "manifest.json": "every output, its size and sha256",
             "result.json": "the outcome, stage times, teardown",
             "reproduction.json": "the verdict, in full"}
    for name, note in notes.items():
        if name in data.files:
            link = f"{name}/" if name == "infra" else name
            out.append(f"- [`{link}`]({link}): {note}")
    if data.logs:
        out.append("- logs: " + ", ".join(
            f"[`{n}`](logs/{n})" if _plain_name(n) else code(n, in_table=False)
            for n in data.logs))
    run_id = data.result.get("run_id")
    if isinstance(run_id, str) and is_run_id(run_id):
        out += ["", f"`composer show {run_id}` prints this run; `composer reproduce {run_id}` "
                    "runs it again and compares."]
    return "\n".join(out) + "\n"


# -- values ------------------------------------------------------------------


def _plain_name(name: str) -> bool:
    return all(c.isalnum() or c in "._-" for c in name) and not name.startswith(".")


def _val(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return word(f"{value:.6g}") if math.isfinite(value) else word(str(value))
    if isinstance(value, int):
        return word(value)
    return code(value if isinstance(value, str) else json.dumps(value, sort_keys=True))


def _seconds(value: float) -> str:
    return f"{value:.2f} s"


def _size(size: Any) -> str:
    if not isinstance(size, int):
        return "-"
    if size < 1024:
        return f"{size} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size_f = size / 1024
        if size_f < 1024 or unit == "TiB":
            return f"{size_f:.1f} {unit}"
        size = int(size_f)
    return f"{size} B"


def _capped(header: tuple[str, ...], rows: list[tuple[str, ...]], align: str | None = None) -> str:
    shown = table(header, rows[:MAX_ROWS], align)
    if len(rows) > MAX_ROWS:
        shown += f"\n… and {len(rows) - MAX_ROWS} more (the record's JSON lists every one).\n"
    return shown


# -- writing -----------------------------------------------------------------


def write_plots(root: Path, data: RecordData) -> list[str]:
    """Draw each series of the metrics files into ``plots/`` (nothing without
    matplotlib); the names written, relative to ``root``."""
    series = all_series(data)[:MAX_PLOTS]
    if not series or not plots.available():
        return []
    (root / plots.PLOTS_DIR).mkdir(exist_ok=True)
    written = []
    for s in series:
        (root / s.plot_name).write_bytes(plots.plot_png(s))
        written.append(s.plot_name)
    return written


def write_readme(root: Path) -> Path:
    """Draw the plots and write ``README.md`` into the record at ``root``; its path."""
    root = Path(root)
    data = RecordData.load(root)
    data.plots |= set(write_plots(root, data))
    path = root / README
    path.write_text(render_readme(data), encoding="utf-8")
    return path


def add_readme(root: Path, say: Callable[[str], None] | None = None) -> bool:
    """``write_readme``, for a record about to be committed: a README that cannot be
    made never costs the record; the reason is said (``say``) and the record goes on
    without it. Whether it was written."""
    try:
        write_readme(root)
    except Exception as exc:  # noqa: BLE001 - the record matters more than its README
        (root / README).unlink(missing_ok=True)
        if say is not None:
            say(f"warning: the record's README.md was not written: {type(exc).__name__}: {exc}")
        return False
    return True
