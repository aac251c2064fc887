"""Runs whose Terraform state is in a bucket, reached from their record alone.

``composer down RUN`` on a machine without the run's work dir (a laptop finishing what
a CI job kept): the record holds everything but the per-run var file, so the run is
rebuilt in a scratch dir: the recorded ``infra/``, a var file of the same shape from
the target (fresh keys: destroy needs only values that type-check; the state says
what exists), ``init`` against the recorded backend (``lock.json`` ``state``), then
the same destroy and sweep as ``composer down`` on the run's own machine.

``composer gc --state``: every recorded run with a remote state whose record does not
say its cluster is gone; each state is read (``terraform state pull`` through the same
backend settings, the same credentials) and the runs whose state still holds resources
are listed, with ``--yes`` brought down as above.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from composer.backend import LOCK_KEY, Backend, backend_block, resources_in
from composer.engine import make_engine, parallelism
from composer.errors import ComposerError, RunNotFound, UsageError
from composer.jsonfile import parse_object, read_object, write_json
from composer.paths import composer_home
from composer.record import RunsRepo
from composer.result import now_iso

GONE = ("destroyed", "not-needed")
VAR_FILE = "runtime.tfvars.json"


TRUST_ENV = "COMPOSER_TRUSTED_ENDPOINTS"


def recorded_backend(repo: RunsRepo, run_id: str) -> Backend | None:
    """The remote state of run ``run_id``, as its recorded ``job.toml`` says (checked by
    the spec's rules again, the key being ``<prefix>/<run_id>``), None for the work dir's
    state. A record is anyone's text once a runs repository is shared: ``lock.json`` must
    say the same, and an endpoint the record names gets this machine's credentials only
    when it is listed in ``COMPOSER_TRUSTED_ENDPOINTS``."""
    written = Backend.from_record(
        (parse_object(repo.read_file(run_id, "lock.json")) or {}).get(LOCK_KEY))
    text = repo.read_file(run_id, "job.toml")
    if text is None:
        if written is None:
            return None
        raise UsageError(f"the record of run {run_id} names a state bucket but has no "
                         "job.toml to check it against: refusing to use it",
                         hint="bring the run down where its work dir is")
    from composer.spec import parse_spec

    try:
        spec = parse_spec(text.decode("utf-8", "replace"), Path("job.toml"), check_paths=False)
    except ComposerError as exc:
        raise UsageError(f"the recorded job.toml of run {run_id} does not check: "
                         f"{exc.message}", hint="bring the run down where its work dir is") \
            from None
    backend = Backend.for_run(spec.state, run_id)
    if backend != written:
        raise UsageError(f"the record of run {run_id} names the state "
                         f"{written.url if written else 'of its work dir'}, and its job.toml "
                         f"{backend.url if backend else 'the work dir'}: refusing to use "
                         "either", hint="the record was changed after the run; check the "
                                        "runs repository's history")
    if backend is not None and backend.endpoint:
        trusted = {e.strip().rstrip("/") for e in os.environ.get(TRUST_ENV, "").split(",")
                   if e.strip()}
        if backend.endpoint.rstrip("/") not in trusted:
            raise UsageError(f"run {run_id}'s state is at the endpoint {backend.endpoint}, "
                             "which the record names: composer sends this machine's "
                             "credentials there only when you trust it",
                             hint=f"add it to {TRUST_ENV} (comma-separated), e.g. "
                                  f"{TRUST_ENV}={backend.endpoint}")
    return backend


def _scratch() -> tempfile.TemporaryDirectory[str]:
    home = composer_home()
    home.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix="remote-", dir=home)


def down_from_record(repo: RunsRepo, run_id: str) -> dict[str, Any]:
    """Destroy run ``run_id`` through its recorded backend; record the outcome."""
    backend = recorded_backend(repo, run_id)
    if backend is None:
        raise RunNotFound(f"run {run_id} kept its state in its work dir, which is not here")
    repo.validate()
    with _scratch() as tmp:
        record = repo.export(run_id, Path(tmp) / "record")
        result = read_object(record / "result.json") or {}
        work = Path(tmp) / run_id  # the sweep finds a run's leftovers by its id
        teardown = _destroy(record, work, backend, str(result.get("engine") or "embedded"))
    teardown = {**teardown, "by": "composer down", "at": now_iso(), "state": backend.url}
    job = result.get("job") or "run"
    repo.amend_result(run_id, {"teardown": teardown},
                      f"{job}: teardown {teardown['status']} by composer down through "
                      f"{backend.url} ({run_id})")
    return {"run_id": run_id, "teardown": teardown, "record": str(repo.run_dir(run_id)),
            "process_alive": False, "already_destroyed": False}


def _destroy(record: Path, work: Path, backend: Backend, engine_name: str) -> dict[str, Any]:
    from composer.run import destroy
    from composer.spec import parse_spec
    from composer.targets import get_target
    from composer.targets.base import Allocation

    if not (record / "job.toml").is_file() or not (record / "infra").is_dir():
        raise ComposerError(f"the record of run {work.name} has no job.toml or infra/",
                            hint="composer down needs both to reach the run's state")
    spec = parse_spec((record / "job.toml").read_text(encoding="utf-8"),
                      record / "job.toml", check_paths=False)
    target = get_target(spec.cluster.target)
    pins = ((read_object(record / "lock.json") or {}).get("target") or {}).get("resolved")
    tf = work / "tf"
    _render_as_recorded(spec, record / "infra", tf)
    # Placeholder addresses: a destroy reads what exists from the state, not from these.
    alloc = Allocation(tuple(f"127.255.255.{i % 250 + 1}" for i in range(spec.cluster.nodes)))
    runtime = target.prepare(work.name, spec, work, alloc, dict(pins or {}))
    os.chmod(tf, 0o700)
    write_json(tf / VAR_FILE, runtime)
    os.chmod(tf / VAR_FILE, 0o600)
    engine = make_engine(engine_name)
    log_path = work / "terraform.log"
    with open(log_path, "a", encoding="utf-8") as log:
        try:
            engine.init(tf, log, backend.init_args())
        except ComposerError as exc:
            return {"status": "failed", "error": f"{backend.url}: {exc.message}",
                    "hint": "check the bucket and this machine's credentials, then run "
                            "composer down again"}
        return destroy(engine, target, work, parallelism(spec.cluster.nodes), log, [])


def _render_as_recorded(spec: Any, recorded: Path, tf: Path) -> None:
    """The run's tree, rendered here from its recorded job.toml with this composer's own
    modules, into ``tf``; refused when the record's ``infra/`` says otherwise. The
    recorded tree is never run: whoever can push to a runs repository could put any
    Terraform (and any provisioner command) there."""
    from composer.compare import tree_diff
    from composer.modules import pins_for_target
    from composer.providers import LOCK_FILE
    from composer.render import render

    render(spec, pins_for_target(spec.cluster.target), tf)
    changes = tree_diff(recorded, tf, frozenset({LOCK_FILE}))
    if changes:
        raise UsageError(
            f"the record's infra/ differs from what this composer renders for its job.toml "
            f"({', '.join(sorted(changes)[:5])}): refusing to run a tree composer did not "
            "render", hint="use the composer version that made the run (composer version; "
                           "lock.json's modules), or bring the run down where its work dir is")
    if (recorded / LOCK_FILE).is_file():
        shutil.copy2(recorded / LOCK_FILE, tf / LOCK_FILE)


@dataclass(frozen=True)
class StateLeft:
    """One recorded run whose state in a bucket still holds resources (or could not be
    read: ``resources`` None, ``error`` says why)."""

    run_id: str
    job: str | None
    state: str
    resources: int | None
    teardown: str | None
    action: str
    error: str | None = None


def read_resources(backend: Backend, engine_name: str = "embedded") -> int | None:
    """How many resources the state in the bucket holds (0: none, or no state)."""
    engine = make_engine(engine_name)
    with _scratch() as tmp:
        tf = Path(tmp)
        (tf / "main.tf").write_text(backend_block(backend.kind), encoding="utf-8")
        engine.init(tf, None, backend.init_args())
        return resources_in(engine.state_pull(tf))


def scan_states(repo: RunsRepo, live: set[str]) -> list[StateLeft]:
    """Recorded runs with a remote state not recorded as gone whose state holds
    resources (``live``: runs whose composer process is alive here: skipped)."""
    found = []
    for summary in repo.list_runs():
        run_id = summary.run_id
        shown = repo.show(run_id)
        result = shown.get("result") or {}
        teardown = (result.get("teardown") or {}).get("status") \
            if isinstance(result.get("teardown"), dict) else None
        if Backend.from_record((shown.get("lock") or {}).get(LOCK_KEY)) is None or \
                teardown in GONE:
            continue
        try:
            backend = recorded_backend(repo, run_id)
        except ComposerError as exc:
            found.append(StateLeft(run_id, result.get("job"), "?", None, teardown,
                                   "skip (state not trusted)", exc.message))
            continue
        if backend is None:
            continue
        try:
            count = read_resources(backend, str(result.get("engine") or "embedded"))
            error = None
        except ComposerError as exc:
            count, error = None, exc.message
        if count == 0:
            continue
        action = "skip (running)" if run_id in live else \
            "skip (state unreadable)" if count is None else "down"
        found.append(StateLeft(run_id, result.get("job"), backend.url, count, teardown,
                               action, error))
    return found


def state_garbage(yes: bool, runs_repo: str | None) -> list[dict[str, Any]]:
    """``composer gc --state``: list; with ``yes`` bring each listed run down."""
    from composer.down import down
    from composer.gc import runs_here
    from composer.record import default_repo_path

    repo = RunsRepo(default_repo_path(runs_repo, None, Path.cwd()))
    live = {run for run, (alive, _kept) in runs_here().items() if alive}
    report = []
    for item in scan_states(repo, live):
        entry = asdict(item)
        if yes and item.action == "down":
            try:
                outcome = down(item.run_id, str(repo.path))
                entry["outcome"] = str(outcome["teardown"]["status"])
                if entry["outcome"] not in GONE:
                    entry["error"] = outcome["teardown"].get("error")
            except ComposerError as exc:
                entry["outcome"], entry["error"] = "failed", exc.message
            if entry["outcome"] not in GONE:
                entry["outcome"] = "failed"
        report.append(entry)
    return report
