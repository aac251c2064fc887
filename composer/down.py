"""``composer down``: finish a kept or abandoned run from its persisted work dir.

The runs repository is ``--runs-repo``, else ``COMPOSER_RUNS_REPO``, else the one
the run recorded in its state. After the cluster is destroyed the record is brought
up to date: a run with no commit yet is committed (its own final result kept when it
reached one, ``abandoned`` otherwise); a committed run whose record says its cluster
was kept gets a second commit with the destroy outcome, and its tag moves there.
A run already destroyed is a no-op success. A run whose state is in a bucket
(``[state]``) needs no work dir: it is brought down from its record
(``composer.remote_runs``).
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

from composer.engine import make_engine
from composer.errors import ComposerError, RunNotFound
from composer.jsonfile import write_json
from composer.paths import work_root
from composer.procs import process_alive
from composer.record import RunsRepo, RunsRepoError, check_run_id, default_repo_path, strip_tag
from composer.records import guard
from composer.records.readme import add_readme
from composer.result import cap_logs, now_iso, remove_tree
from composer.run import destroy
from composer.secrets import Secrets, unlike_the_run
from composer.state import RunState
from composer.targets import get_target

GONE = ("destroyed", "not-needed")
"""Teardown outcomes that leave nothing running."""


def find_work_dir(ref: str, runs_repo: str | None = None) -> Path:
    """The work dir of the run ``ref`` names: an exact id or ``run/<id>``, or a prefix
    that is unique among every run composer knows of (the work dirs, and the runs
    repository's tags where it can be read: ``runs_repo``, else COMPOSER_RUNS_REPO,
    else ./runs, and the repositories the matching work dirs record into). A prefix
    of several runs is AmbiguousRunId (exit 2), never a guess: down and ssh act on a
    cluster. RunNotFound when the run has no work dir."""
    from composer.records.names import ambiguous

    run_id = strip_tag(ref)
    check_run_id(run_id)
    root = work_root()
    works = _work_dirs(root)
    if run_id in works:
        return works[run_id]
    candidates = [work for name, work in works.items() if name.startswith(run_id)]
    recorded = _recorded_matches(run_id, runs_repo, candidates) if candidates else set()
    matches = sorted({work.name for work in candidates} | recorded)
    if len(matches) > 1 and run_id not in matches:
        raise ambiguous(ref, matches, "")
    if len(matches) == 1 and matches[0] in works:
        return works[matches[0]]
    raise RunNotFound(
        f"no work dir for run '{run_id}' in {root}",
        hint="the run was already torn down, or COMPOSER_HOME points elsewhere",
    )


def _work_dirs(root: Path) -> dict[str, Path]:
    """Run id -> work dir, for each real directory under ``root`` with a state.json."""
    try:
        entries = list(root.iterdir()) if root.is_dir() else []
    except OSError:
        return {}
    return {p.name: p for p in entries
            if not p.is_symlink() and p.is_dir() and (p / "state.json").exists()}


def _recorded_matches(prefix: str, runs_repo: str | None, works: list[Path]) -> set[str]:
    """Recorded run ids starting with ``prefix``, from every runs repository that can
    be read: the one named (or the default), and those the work dirs record into."""
    paths = {default_repo_path(runs_repo, None, Path.cwd())}
    for work in works:
        try:
            paths.add(Path(RunState.load(work).runs_repo))
        except (OSError, ValueError, TypeError, KeyError):
            continue
    found: set[str] = set()
    for path in paths:
        try:
            found.update(r for r in RunsRepo(path).run_ids() if r.startswith(prefix))
        except (ComposerError, OSError):
            continue
    return found


def live_clusters() -> set[str]:
    """Run ids whose work dir says the cluster was applied and not destroyed."""
    root = work_root()
    found: set[str] = set()
    try:
        works = list(root.iterdir()) if root.is_dir() else []
    except OSError:
        return found
    for work in works:
        try:
            state = RunState.load(work)
        except (OSError, ValueError, TypeError):
            continue
        if state.applied and not state.destroyed:
            found.add(state.run_id)
    return found


def down(ref: str, runs_repo: str | None = None) -> dict[str, Any]:
    """Destroy the run's nodes and bring its record up to date."""
    try:
        work = find_work_dir(ref, runs_repo)
    except RunNotFound as missing:
        return _already_down(ref, runs_repo, missing)
    state = RunState.load(work)
    repo = RunsRepo(default_repo_path(runs_repo, state.runs_repo, Path.cwd()))
    if not state.committed and process_alive(state.pid) and state.pid != os.getpid():
        raise ComposerError(
            f"run {state.run_id} is still in progress (process {state.pid})",
            hint=f"stop it with kill -TERM {state.pid}; it tears its cluster down itself",
        )
    # Everything down records needs a usable repository: checked before anything is
    # destroyed, so a wrong one costs nothing and down can simply be run again.
    repo.validate()
    recorded = _recorded_teardown(repo, state)
    if state.destroyed and state.committed and recorded in GONE:
        remove_tree(work)
        return _outcome(state, {"status": recorded}, None, already=True)
    teardown = _destroy(work, state)
    record = None
    if not state.committed:
        record = _commit_pending(work, state, teardown, repo)
        state.committed = True
        state.save(work)
    elif recorded != teardown["status"]:
        record = _amend_teardown(repo, state, teardown)
    if state.destroyed:
        remove_tree(work)
    return _outcome(state, teardown, record)


def _outcome(state: RunState, teardown: dict[str, Any], record: str | None,
             already: bool = False) -> dict[str, Any]:
    return {"run_id": state.run_id, "teardown": teardown, "record": record,
            "process_alive": process_alive(state.pid), "already_destroyed": already}


def _already_down(ref: str, runs_repo: str | None, missing: RunNotFound) -> dict[str, Any]:
    """No work dir: fine when the record says the cluster is gone, else the error."""
    repo = RunsRepo(default_repo_path(runs_repo, None, Path.cwd()))
    try:
        run_id = repo.resolve(ref)
        result = repo.show(run_id).get("result") or {}
    except ComposerError:
        raise missing from None
    teardown = result.get("teardown") if isinstance(result.get("teardown"), dict) else {}
    status = str((teardown or {}).get("status", ""))
    if status not in GONE:
        from composer.remote_runs import down_from_record, recorded_backend

        if recorded_backend(repo, run_id) is not None:  # [state] in a bucket: reach it
            return down_from_record(repo, run_id)
        raise RunNotFound(
            f"run {run_id} is recorded with teardown '{status or 'unknown'}' but has no work "
            f"dir in {work_root()}",
            hint="composer needs the run's work dir to reach its cluster; check "
            "COMPOSER_HOME",
        )
    return {"run_id": run_id, "teardown": {"status": status}, "record": None,
            "process_alive": False, "already_destroyed": True}


def _recorded_teardown(repo: RunsRepo, state: RunState) -> str | None:
    """The teardown status a committed run's record holds (None before its commit).
    The record must be in ``repo``, where its teardown is to be recorded: RunsRepoError
    (exit 2) otherwise, before anything is destroyed."""
    if not state.committed:
        return None
    try:
        found = repo.read_file(state.run_id, "result.json")
    except ComposerError:
        found = None
    if found is None:
        raise RunsRepoError(
            f"run {state.run_id} is not recorded in the runs repository {repo.path}",
            hint=f"it was recorded in {state.runs_repo}; point --runs-repo or "
            "COMPOSER_RUNS_REPO there (nothing was destroyed)",
        )
    try:
        result = json.loads(found)
    except ValueError:
        return None
    teardown = result.get("teardown") if isinstance(result, dict) else None
    return str(teardown.get("status")) if isinstance(teardown, dict) else None


def _destroy(work: Path, state: RunState) -> dict[str, Any]:
    target = get_target(state.target)
    teardown: dict[str, Any] = {"status": "destroyed"}
    log_path = work / "record" / "logs" / "terraform.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if state.applied and not state.destroyed and (work / "tf").is_dir():
        with open(log_path, "a", encoding="utf-8") as log:
            teardown = destroy(make_engine(state.engine), target, work, state.parallelism,
                               log, state.held)
    else:
        target.sweep(work)
        target.release(state.held)
    state.destroyed = teardown["status"] == "destroyed"
    state.save(work)
    return {**teardown, "by": "composer down", "at": now_iso()}


def _amend_teardown(repo: RunsRepo, state: RunState, teardown: dict[str, Any]) -> str:
    repo.amend_result(state.run_id, {"teardown": teardown},
                      f"{state.job}: teardown {teardown['status']} by composer down "
                      f"({state.run_id})")
    return str(repo.run_dir(state.run_id))


def _commit_pending(work: Path, state: RunState, teardown: dict[str, Any],
                    repo: RunsRepo) -> str:
    """Commit a run that has no commit yet: its own final result when it reached one
    (a failed commit: only the commit is retried), ``abandoned`` otherwise."""
    staged = work / "record"
    result_path = staged / "result.json"
    try:
        result: dict[str, Any] = json.loads(result_path.read_text())
    except (OSError, ValueError):
        result = {}
    if not isinstance(result, dict):
        result = {}
    final = result.get("status") not in (None, "running", "abandoned")
    if final:
        kept = (result.get("teardown") or {}).get("status") not in GONE
        if kept:
            result["teardown"] = teardown
    else:
        result.update(
            run_id=state.run_id, job=state.job, status="abandoned", stage=state.stage,
            teardown=teardown, finished_at=now_iso(), started_at=state.started_at,
            error=f"the composer process ({state.pid}) stopped during {state.stage}",
        )
    result.setdefault("schema_version", 1)
    withheld = _screen(staged)
    if withheld:
        result["withheld_by_down"] = withheld
    cut = cap_logs(staged / "logs", state.max_log_size)
    if cut:
        result["logs_cut"] = {**result.get("logs_cut", {}), **cut}
    write_json(result_path, result)
    add_readme(staged)
    repo.ensure()
    status = result["status"]
    repo.commit_run(state.run_id, staged, f"{state.job}: {status} ({state.run_id})")
    return str(repo.run_dir(state.run_id))


def _run_secrets(staged: Path) -> tuple[Secrets | None, list[str]]:
    """The run's ``secret_env`` values from this environment (as ``up`` had them), and
    the names this environment lacks."""
    try:
        data = tomllib.loads((staged / "job.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, []
    names = (data.get("run") or {}).get("secret_env") or []
    names = [n for n in names if isinstance(n, str)] if isinstance(names, list) else []
    missing = [f"{n} not set" for n in names if n not in os.environ]
    if missing:
        return None, missing
    values = {n: os.environ[n] for n in names}
    wrong = unlike_the_run(staged.parent, values)
    if wrong:
        return None, [f"{n} not the value the run had" for n in wrong]
    return Secrets(values), []


def _screen(staged: Path) -> str | None:
    """Screen a stranded run's outputs and logs before its commit, as ``up`` would: with
    the run's secret values when this environment has them; without them, no output
    can be told safe, so every output is withheld. Returns why, when it withheld all."""
    secrets, missing = _run_secrets(staged)
    if missing:
        guard.redact_logs(staged, None)
        reason = (f"not screened for secrets: {', '.join(missing)} when composer down "
                  "committed the record")
        if guard.screen_outputs(staged, None, withhold_all=reason):
            return reason
        return None
    guard.redact_logs(staged, secrets)
    guard.screen_outputs(staged, secrets)
    return None
