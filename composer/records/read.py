"""Reading records from their tagged commits: summaries and run lookup."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from composer.errors import RunNotFound
from composer.records.names import TAG_PREFIX, strip_tag

REPO_HINT = ("composer runs lists the recorded runs; the runs repository is --runs-repo, "
             "else COMPOSER_RUNS_REPO, else ./runs in the current directory: point one of "
             "them at the repository that holds the run")


@dataclass(frozen=True)
class RunSummary:
    """One recorded run, as listed by ``composer runs``."""

    run_id: str
    job: str
    status: str
    nodes: int
    duration_s: float | None
    started_at: str
    commit: str
    tag: str
    teardown: str = ""
    cluster_up: bool = False
    #: ``{"estimate", "spend", "currency"}`` from result.json's ``cost``; None when the
    #: record has none (runs recorded before composer estimated costs).
    cost: dict[str, Any] | None = None


def parse_object(blob: bytes | None) -> dict[str, Any] | None:
    if blob is None:
        return None
    try:
        value = json.loads(blob)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _as_str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _as_int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _as_float(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def summary(run_id: str, commit: str, blob: bytes | None) -> RunSummary:
    result = parse_object(blob) or {}
    teardown = result.get("teardown")
    return RunSummary(
        run_id=run_id,
        job=_as_str(result.get("job")),
        status=_as_str(result.get("status")) or "unknown",
        nodes=_as_int(result.get("nodes")),
        duration_s=_as_float(result.get("duration_s")),
        started_at=_as_str(result.get("started_at")),
        commit=commit,
        tag=f"{TAG_PREFIX}{run_id}",
        teardown=_as_str(teardown.get("status")) if isinstance(teardown, dict) else "",
        cost=cost_of(result.get("cost")),
    )


def cost_of(value: object) -> dict[str, Any] | None:
    """The listed part of result.json's ``cost``: estimate, spend (numbers or None) and
    currency."""
    if not isinstance(value, dict) or not value:
        return None
    return {"estimate": _as_float(value.get("estimate")), "spend": _as_float(value.get("spend")),
            "currency": _as_str(value.get("currency")) or "USD"}


def resolve(ref: str, run_ids: list[str], where: str = "") -> str:
    """The run id named by an exact id, a ``run/<id>`` tag or a unique prefix.

    ``where`` names the runs repository searched, for the messages."""
    wanted = strip_tag(ref)
    if wanted in run_ids:
        return wanted
    matches = [run_id for run_id in run_ids if wanted and run_id.startswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    place = f" in {where}" if where else ""
    if matches:
        shown = ", ".join(matches[:10]) + (", ..." if len(matches) > 10 else "")
        raise RunNotFound(
            f"{ref!r} matches {len(matches)} runs{place}: {shown}",
            hint="give more characters of the run id",
        )
    raise RunNotFound(f"no recorded run matches {ref!r}{place}", hint=REPO_HINT)
