"""``composer gc``: find and remove what runs whose process died left behind.

A run qualifies when its composer process is gone but its work dir says the
cluster was never destroyed, or nodes tagged with its run id (sshd processes
whose config lies in its work dir) still run. A run whose process is alive is
never touched; a kept cluster only with ``--include-kept``.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import asdict, dataclass
from typing import Any

from composer.down import GONE, down
from composer.errors import ComposerError
from composer.paths import work_root
from composer.procs import node_processes, process_alive
from composer.state import RunState


@dataclass(frozen=True)
class Leftover:
    run_id: str
    job: str | None
    stage: str | None
    pid: int | None
    process: str
    nodes_running: int
    kept: bool
    action: str


def scan(include_kept: bool = False) -> list[Leftover]:
    root = work_root()
    found: list[Leftover] = []
    if not root.is_dir():
        return found
    for run_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        nodes = len(node_processes(run_dir))
        try:
            state: RunState | None = RunState.load(run_dir)
        except (OSError, ValueError, TypeError, AttributeError):
            state = None
        if state is None:
            if nodes:
                found.append(Leftover(run_dir.name, None, None, None, "unknown", nodes, False,
                                      "kill"))
            continue
        alive = process_alive(state.pid) and state.pid != os.getpid()
        pending = (state.applied and not state.destroyed) or not state.committed or nodes
        if not pending:
            continue
        if alive:
            action = "skip (running)"
        elif state.keep and state.committed and not include_kept:
            action = "skip (kept)"
        else:
            action = "down"
        found.append(Leftover(state.run_id, state.job, state.stage, state.pid,
                              "alive" if alive else "gone", nodes, state.keep, action))
    return found


def runs_here() -> dict[str, tuple[bool, bool]]:
    """The runs this machine has a work dir of: run id -> (process alive, kept)."""
    root = work_root()
    found: dict[str, tuple[bool, bool]] = {}
    if not root.is_dir():
        return found
    for run_dir in root.iterdir():
        try:
            state = RunState.load(run_dir)
            alive = process_alive(state.pid) and state.pid != os.getpid()
        except (OSError, ValueError, TypeError, AttributeError):
            continue  # unreadable: says nothing of a run
        if not isinstance(state.run_id, str):
            continue
        was_alive, was_kept = found.get(state.run_id, (False, False))
        # Two dirs with one id (a copied work dir): alive if either is, kept if either is.
        found[state.run_id] = (alive or was_alive, bool(state.keep) or was_kept)
    return found


def collect_garbage(yes: bool, include_kept: bool = False,
                    runs_repo: str | None = None) -> list[dict[str, Any]]:
    """List leftovers; with ``yes`` also remove them, carrying on past a run that fails
    (its entry gets ``outcome: "failed"`` and ``error``). Returns one dict per run."""
    report = []
    for item in scan(include_kept):
        entry = asdict(item)
        if yes and item.action in ("down", "kill"):
            try:
                entry["outcome"] = _remove(item, runs_repo)
            except (ComposerError, OSError) as exc:
                entry["outcome"] = "failed"
                entry["error"] = exc.message if isinstance(exc, ComposerError) else str(exc)
        report.append(entry)
    return report


def _remove(item: Leftover, runs_repo: str | None) -> str:
    if item.action == "kill":
        for pid in node_processes(work_root() / item.run_id):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return "killed"
    outcome = down(item.run_id, runs_repo)
    status = str(outcome["teardown"]["status"])
    if status not in GONE:
        error = outcome["teardown"].get("error") or f"teardown {status}"
        raise ComposerError(f"run {item.run_id}: {error}")
    return status
