"""``composer down``: finish a kept or abandoned run from its persisted work dir."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from composer.engine import make_engine
from composer.errors import ComposerError, RunNotFound
from composer.jsonfile import write_json
from composer.paths import work_root
from composer.procs import process_alive
from composer.record import RunsRepo
from composer.result import now_iso, remove_tree
from composer.run import destroy
from composer.state import RunState
from composer.targets import get_target


def find_work_dir(ref: str) -> Path:
    ref = ref.removeprefix("run/")
    root = work_root()
    candidates = sorted(p for p in root.glob(f"{ref}*") if (p / "state.json").exists()) \
        if root.is_dir() else []
    exact = [p for p in candidates if p.name == ref]
    if exact:
        return exact[0]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise RunNotFound(
            f"no work dir for run '{ref}' in {root}",
            hint="the run was already torn down, or COMPOSER_HOME points elsewhere",
        )
    names = ", ".join(p.name for p in candidates)
    raise RunNotFound(f"'{ref}' matches several runs: {names}", hint="give more of the id")


def down(ref: str) -> dict[str, Any]:
    """Destroy the run's nodes; commit its record as ``abandoned`` if it has none yet."""
    work = find_work_dir(ref)
    state = RunState.load(work)
    if not state.committed and process_alive(state.pid) and state.pid != os.getpid():
        raise ComposerError(
            f"run {state.run_id} is still in progress (process {state.pid})",
            hint=f"stop it with kill -TERM {state.pid}; it tears its cluster down itself",
        )
    target = get_target("local")
    teardown: dict[str, Any] = {"status": "destroyed"}
    log_path = work / "record" / "logs" / "terraform.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if state.applied and not state.destroyed and (work / "tf").is_dir():
        with open(log_path, "a", encoding="utf-8") as log:
            teardown = destroy(make_engine(state.engine), target, work, state.parallelism,
                               log, state.blocks)
    else:
        target.sweep(work)
        target.release_blocks(state.blocks)
    state.destroyed = teardown["status"] == "destroyed"
    state.save(work)
    record = None
    if not state.committed:
        record = _commit_abandoned(work, state, teardown)
    if state.destroyed:
        remove_tree(work)
    return {"run_id": state.run_id, "teardown": teardown, "record": record,
            "process_alive": process_alive(state.pid)}


def _commit_abandoned(work: Path, state: RunState, teardown: dict[str, Any]) -> str:
    staged = work / "record"
    result_path = staged / "result.json"
    result: dict[str, Any] = json.loads(result_path.read_text()) if result_path.exists() else {}
    result.update(
        run_id=state.run_id, job=state.job, status="abandoned", stage=state.stage,
        teardown=teardown, finished_at=now_iso(), started_at=state.started_at,
        error=f"the composer process ({state.pid}) stopped during {state.stage}",
    )
    result.setdefault("schema_version", 1)
    write_json(result_path, result)
    repo = RunsRepo(Path(state.runs_repo))
    repo.ensure()
    repo.commit_run(state.run_id, staged, f"{state.job}: abandoned ({state.run_id})")
    return str(repo.run_dir(state.run_id))
