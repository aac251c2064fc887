"""``composer diff A B``: what changed between two recorded runs.

Six sections, in order: the job spec, the lock's pins, the rendered
infrastructure, the nodes' facts, the workload's environment (packages added,
removed or changed, the interpreter, MPI, CUDA and framework versions, numerics
variables) and the results (status, output files and the numbers in JSON
outputs). Every value returned is JSON-serializable.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from composer import environment
from composer.compare import (
    compare_manifests,
    compare_metrics,
    flatten_leaves,
    tree_diff,
    unified,
    with_text_diffs,
)
from composer.jsonfile import read_object
from composer.record import RunsRepo, load_manifest
from composer.records.manifest import is_legacy as manifest_is_legacy

SECTIONS = ("spec", "lock", "infra", "facts", "environment", "results")
VOLATILE_FACTS = frozenset({"rank", "address", "node_addr"})
RESULT_FIELDS = ("status", "exit_code")
MANIFEST = "manifest.json"


def _read_text(root: Path, name: str) -> str:
    path = root / name
    if not path.is_file():
        return ""
    return path.read_text(encoding="utf-8", errors="replace")


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_bytes())
    except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth
        return None


def _read_object(root: Path, name: str) -> dict[str, Any]:
    return read_object(root / name) or {}


def spec_section(a: Path, b: Path) -> dict[str, Any]:
    text = unified(_read_text(a, "job.toml"), _read_text(b, "job.toml"), "job.toml")
    return {"name": "spec", "same": not text, "diff": text}


def lock_section(a: Path, b: Path) -> dict[str, Any]:
    old = flatten_leaves(_read_object(a, "lock.json"))
    new = flatten_leaves(_read_object(b, "lock.json"))
    changes = [
        {"pin": pin, "old": old.get(pin), "new": new.get(pin)}
        for pin in sorted(old.keys() | new.keys())
        if pin not in old or pin not in new or old[pin] != new[pin]
    ]
    return {"name": "lock", "same": not changes, "changes": changes}


def infra_section(a: Path, b: Path) -> dict[str, Any]:
    files = tree_diff(a / "infra", b / "infra")
    return {"name": "infra", "same": not files, "files": files}


def _nodes_by_rank(root: Path) -> dict[int, dict[str, Any]]:
    nodes = _read_object(root, "facts.json").get("nodes") or []
    by_rank: dict[int, dict[str, Any]] = {}
    for index, node in enumerate(nodes):
        if isinstance(node, dict):
            rank = node.get("rank")
            by_rank[rank if isinstance(rank, int) else index] = node
    return by_rank


def _node_changes(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    fields = sorted((old.keys() | new.keys()) - VOLATILE_FACTS)
    return [
        {"field": f, "old": old.get(f), "new": new.get(f)}
        for f in fields
        if f not in old or f not in new or old[f] != new[f]
    ]


def facts_section(a: Path, b: Path) -> dict[str, Any]:
    old, new = _nodes_by_rank(a), _nodes_by_rank(b)
    nodes: list[dict[str, Any]] = []
    for rank in sorted(old.keys() | new.keys()):
        if rank not in new or rank not in old:
            only_in = "a" if rank in old else "b"
            nodes.append({"rank": rank, "only_in": only_in, "changes": []})
            continue
        changes = _node_changes(old[rank], new[rank])
        if changes:
            nodes.append({"rank": rank, "only_in": None, "changes": changes})
    count = [len(old), len(new)]
    same = count[0] == count[1] and not nodes
    return {"name": "facts", "same": same, "nodes": nodes, "node_count": count}


def environment_section(a: Path, b: Path) -> dict[str, Any]:
    """Package and other environment changes; ``recorded`` says which side has
    ``environment.json`` (records made before it have none)."""
    old, new = environment.load(a), environment.load(b)
    recorded = [old is not None, new is not None]
    changes = [] if old is None or new is None else environment.compare(old, new)
    same = not changes and recorded[0] == recorded[1]
    return {"name": "environment", "same": same, "recorded": recorded,
            "changes": [c.to_dict() for c in changes]}


def _output_json(root: Path) -> dict[str, Path]:
    outputs = root / "outputs"
    if not outputs.is_dir():
        return {}
    found = {p.relative_to(outputs).as_posix(): p for p in outputs.rglob("*.json")}
    if manifest_is_legacy(root):
        found.pop(MANIFEST, None)
    return {rel: path for rel, path in found.items() if path.is_file()}


def _no_tolerance(_key: str) -> tuple[float, float]:
    return 0.0, 0.0


def _metric_changes(a: Path, b: Path) -> list[dict[str, Any]]:
    old, new = _output_json(a), _output_json(b)
    deltas: list[dict[str, Any]] = []
    for rel in sorted(old.keys() & new.keys()):
        if old[rel].read_bytes() == new[rel].read_bytes():
            continue
        found = compare_metrics(
            rel, _read_json(old[rel]), _read_json(new[rel]), _no_tolerance
        )
        deltas.extend(asdict(d) for d in found)
    return deltas


def results_section(a: Path, b: Path) -> dict[str, Any]:
    old, new = _read_object(a, "result.json"), _read_object(b, "result.json")
    status = [
        {"field": f, "old": old.get(f), "new": new.get(f)}
        for f in RESULT_FIELDS
        if old.get(f) != new.get(f)
    ]
    changes = compare_manifests(load_manifest(a), load_manifest(b))
    files = [asdict(c) for c in with_text_diffs(changes, a / "outputs", b / "outputs")]
    metrics = _metric_changes(a, b)
    same = not (status or files or metrics)
    return {
        "name": "results", "same": same, "status": status, "files": files, "metrics": metrics,
    }


def diff_runs(repo: RunsRepo, ref_a: str, ref_b: str) -> dict[str, Any]:
    """Compare two recorded runs section by section (spec, lock, infra, facts,
    environment, results)."""
    run_a, run_b = repo.resolve(ref_a), repo.resolve(ref_b)
    with tempfile.TemporaryDirectory(prefix="composer-diff-") as tmp:
        a = repo.export(run_a, Path(tmp) / "a")
        b = repo.export(run_b, Path(tmp) / "b")
        return diff_exported(run_a, a, run_b, b)


def diff_exported(run_a: str, a: Path, run_b: str, b: Path) -> dict[str, Any]:
    """``diff_runs`` of two records already exported to ``a`` and ``b``."""
    sections = [
        spec_section(a, b),
        lock_section(a, b),
        infra_section(a, b),
        facts_section(a, b),
        environment_section(a, b),
        results_section(a, b),
    ]
    return {"a": run_a, "b": run_b, "sections": sections}


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return _num(value)
    return json.dumps(value, sort_keys=True)


def _num(value: float | None) -> str:
    if value is None:
        return "(none)"
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return format(value, ".12g")


def _block(text: str) -> list[str]:
    return text.rstrip("\n").splitlines()


def _format_lock(section: dict[str, Any]) -> list[str]:
    return [f"{c['pin']}: {_show(c['old'])} -> {_show(c['new'])}" for c in section["changes"]]


def _format_infra(section: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for path, text in section["files"].items():
        if text.startswith("---"):
            lines.extend(_block(text))
        else:
            lines.append(f"{path}: {text}")
    return lines


def _format_facts(section: dict[str, Any]) -> list[str]:
    old, new = section["node_count"]
    lines = [f"nodes: {old} -> {new}"] if old != new else []
    for node in section["nodes"]:
        name = f"node-{node['rank']}"
        if node["only_in"]:
            lines.append(f"{name}: only in {node['only_in']}")
        for c in node["changes"]:
            lines.append(f"{name} {c['field']}: {_show(c['old'])} -> {_show(c['new'])}")
    return lines


def _format_environment(section: dict[str, Any]) -> list[str]:
    lines = [f"environment.json: not recorded in {side}"
             for side, there in zip("ab", section["recorded"], strict=True) if not there]
    for c in section["changes"]:
        change = environment.Change(c["field"], c["old"], c["new"], tuple(c["nodes"]))
        lines.append(change.describe())
    return lines


def _format_file(change: dict[str, Any]) -> str:
    path, kind = change["path"], change["kind"]
    if kind == "added":
        return f"file {path}: added ({change['new_size']} bytes)"
    if kind == "removed":
        return f"file {path}: removed ({change['old_size']} bytes)"
    return f"file {path}: changed ({change['old_size']} -> {change['new_size']} bytes)"


def _format_metric(delta: dict[str, Any]) -> str:
    name = f"{delta['file']} {delta['key']}" if delta["key"] else delta["file"]
    text = f"{name}: {_num(delta['old'])} -> {_num(delta['new'])}"
    if delta["abs_diff"] is not None:
        text += f" (abs {_num(delta['abs_diff'])}, rel {_num(delta['rel_diff'])})"
    return text


def _format_results(section: dict[str, Any]) -> list[str]:
    lines = [f"{c['field']}: {_show(c['old'])} -> {_show(c['new'])}" for c in section["status"]]
    for change in section["files"]:
        lines.append(_format_file(change))
        if change.get("diff"):
            lines.extend(_block(change["diff"]))
    lines.extend(_format_metric(d) for d in section["metrics"])
    return lines


def _format_section(section: dict[str, Any]) -> list[str]:
    name = section["name"]
    if section["same"]:
        return ["same"]
    if name == "spec":
        return _block(section["diff"])
    formatter = {
        "lock": _format_lock,
        "infra": _format_infra,
        "facts": _format_facts,
        "environment": _format_environment,
        "results": _format_results,
    }[name]
    return formatter(section)


def format_diff(d: dict[str, Any]) -> str:
    """The diff for people: one ``== name ==`` header per section, then its details."""
    lines = [f"a: {d['a']}", f"b: {d['b']}"]
    for section in d["sections"]:
        lines.append("")
        lines.append(f"== {section['name']} ==")
        lines.extend(_format_section(section))
    return "\n".join(lines) + "\n"
