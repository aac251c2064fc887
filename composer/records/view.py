"""What ``composer show`` prints of a record, and the order stages are listed in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from composer.errors import UsageError
from composer.records.guard import terminal_text

# The pipeline's stages in the order they run; ``show`` and the README list them so.
STAGE_ORDER = ("render", "init", "apply", "wait_for_ssh", "facts", "health", "stage", "run",
               "collect", "destroy")
SHOWN_KEYS = ("job", "status", "exit_code", "composer_exit_code", "failed_node", "stage",
              "nodes", "launcher", "duration_s", "started_at", "reproduces", "verdict",
              "error")
GAP = 2  # spaces between the longest label and its value


def ordered_stages(stages: dict[str, Any]) -> list[tuple[str, Any]]:
    """The stages in pipeline order; stages composer does not know last, by name."""
    def rank(name: str) -> tuple[int, str]:
        return (STAGE_ORDER.index(name) if name in STAGE_ORDER else len(STAGE_ORDER), name)

    return sorted(stages.items(), key=lambda item: rank(item[0]))


def stage_times(stages: dict[str, Any]) -> list[str]:
    """``name 1.23s`` per stage, in pipeline order."""
    return [f"{name} {value:.2f}s" if isinstance(value, int | float) else f"{name} {value}"
            for name, value in ordered_stages(stages)]


def format_show(data: dict[str, Any], readme: str | None = None) -> str:
    """``composer show``'s text: one ``label  value`` line each, the labels in one
    column at least two spaces wide of the longest, then the record's files."""
    result = data.get("result") or {}
    lines = [("run", f"{data['run_id']}  (tag {data['tag']}, commit {data['commit'][:12]})")]
    for key in SHOWN_KEYS:
        if result.get(key) is not None:
            lines.append((key, str(result[key])))
    stages = result.get("stages")
    if isinstance(stages, dict) and stages:
        lines.append(("stages", ", ".join(stage_times(stages))))
    attempts = result.get("attempts")
    if isinstance(attempts, list) and (len(attempts) > 1 or result.get("lost_nodes")):
        outcomes = [str(a.get("outcome")) for a in attempts if isinstance(a, dict)]
        lost = ", ".join(str(n) for n in result.get("lost_nodes") or [])
        lines.append(("attempts", f"{len(outcomes)} ({', '.join(outcomes)})"
                                  + (f"; lost {lost}" if lost else "")))
    cost = result.get("cost")
    if isinstance(cost, dict):
        spend, estimate = cost.get("spend"), cost.get("estimate")
        money, what = (spend, "spent") if spend is not None else (estimate, "estimated")
        if money is not None:
            lines.append(("cost", f"{money} {cost.get('currency') or 'USD'} ({what})"))
    if isinstance(result.get("teardown"), dict):
        lines.append(("teardown", str(result["teardown"].get("status"))))
    if readme is not None:
        lines.append(("readme", readme))
    width = max(len(label) for label, _ in lines) + GAP
    out = [f"{label:<{width}}{terminal_text(value)}" for label, value in lines]
    out.append("files")
    out += [f"  {terminal_text(name)}" for name in data["files"]]
    return "\n".join(out) + "\n"


def readme_path(repo: Path, data: dict[str, Any], required: bool = False) -> Path | None:
    """Where the run's committed ``README.md`` is in the runs repository's work tree;
    None when the record has none there (``required``: a UsageError saying why)."""
    run_id = data["run_id"]
    path = Path(repo) / run_id / "README.md"
    if "README.md" not in data.get("files", ()):
        if required:
            raise UsageError(f"the record of run {run_id} has no README.md (it was recorded "
                             "by a composer older than records with a README)",
                             hint=f"composer show {run_id} prints what it holds")
        return None
    if not path.is_file():
        if required:
            raise UsageError(f"{path} is committed (tag run/{run_id}) but not in the runs "
                             "repository's work tree",
                             hint=f"git -C {repo} show run/{run_id}:{run_id}/README.md "
                                  "prints it")
        return None
    return path
