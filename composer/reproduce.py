"""``composer reproduce``: recreate a recorded run and say whether it matched.

Before anything is created, every pin of the record is checked against what is
available now, and the recorded job is rendered again with the current
composer and compared byte for byte with the committed ``infra/``. Any
difference is drift: reported by name with old and new values, and the run is
refused unless ``--allow-drift``. The re-run applies the recorded ``infra/``
tree, not a fresh render, and its record points back with ``reproduces``.
"""

from __future__ import annotations

import json
import os
import tempfile
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from composer import __version__, containers, environment
from composer.compare import (
    compare_manifests,
    compare_metrics,
    tree_diff,
    unified,
    with_text_diffs,
)
from composer.engine import Engine, make_engine
from composer.errors import ComposerError, ExitCode, UsageError
from composer.jsonfile import dump_json, write_json
from composer.lock import Lock, resolve
from composer.paths import composer_home
from composer.providers import LOCK_FILE, provider_changes, providers_today
from composer.record import RunsRepo, load_manifest
from composer.records.guard import terminal_text
from composer.records.read import REPO_HINT
from composer.render import render
from composer.result import Result
from composer.run import Replay, Run, RunOptions
from composer.spec import Spec, parse_spec
from composer.targets import get_target

VERDICT_EXIT = {
    "identical": ExitCode.OK,
    "within-tolerance": ExitCode.OK,
    "drift": ExitCode.DRIFT,
    "differs": ExitCode.DIFFERS,
}


@dataclass(frozen=True)
class Drift:
    kind: str
    name: str
    old: Any
    new: Any
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "old": self.old, "new": self.new,
                "detail": self.detail}

    def describe(self) -> str:
        """Lines for a terminal: what the nodes or files named is escaped (a package's
        name, a version, a file name may hold control characters)."""
        line = f"{self.kind}: {self.name}: {_shown(self.old)} -> {_shown(self.new)}"
        lines = [line, *self.detail.split("\n")] if self.detail else [line]
        return "\n".join(terminal_text(text) for text in lines)


class DriftError(ComposerError):
    """The record cannot be reproduced as it stands: something it pins has changed."""

    exit_code = ExitCode.DRIFT

    def __init__(self, run_id: str, drifts: list[Drift]) -> None:
        self.run_id = run_id
        self.drifts = drifts
        kinds = ", ".join(sorted({d.kind for d in drifts}))
        body = "\n".join(f"  {d.describe()}" for d in drifts)
        super().__init__(
            f"run {run_id} cannot be reproduced as recorded; drift in {kinds}:\n{body}",
            hint="restore what changed, or pass --allow-drift to run anyway and record the drift",
        )


@dataclass
class Recorded:
    """What the original record says, read from its commit."""

    run_id: str
    root: Path
    text: str
    lock: dict[str, Any]
    manifest: dict[str, Any]
    result: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, repo: RunsRepo, run_id: str, dest: Path) -> Recorded:
        root = repo.export(run_id, dest)

        def read(name: str, default: Any) -> Any:
            path = root / name
            return json.loads(path.read_text()) if path.exists() else default

        if not (root / "job.toml").exists() or not (root / "infra").is_dir():
            raise UsageError(f"run {run_id} has no job.toml or infra/ in its record")
        return cls(run_id, root, (root / "job.toml").read_text(encoding="utf-8"),
                   read("lock.json", {}), load_manifest(root),
                   read("result.json", {}))


def job_path(recorded: Recorded, override: Path | None) -> Path:
    if override is not None:
        return override.resolve()
    path = (recorded.lock.get("job") or {}).get("path")
    if not path or not Path(path).exists():
        raise UsageError(
            f"the job file of run {recorded.run_id} is not at {path or '(unrecorded)'}",
            hint="point at the job's current location with --job PATH",
        )
    return Path(path)


def _pins(lock: dict[str, Any]) -> dict[str, Any]:
    code = lock.get("code") or {}
    pins: dict[str, Any] = {
        "composer.version": (lock.get("composer") or {}).get("version"),
        "terraform.engine": (lock.get("terraform") or {}).get("engine"),
        "terraform.version": (lock.get("terraform") or {}).get("version"),
        "code.content_sha256": code.get("content_sha256"),
    }
    for name, mod in (lock.get("modules") or {}).items():
        pins[f"modules.{name}.version"] = mod.get("version")
        pins[f"modules.{name}.sha256"] = mod.get("sha256")
    for dest, item in (lock.get("inputs") or {}).items():
        pins[f"inputs.{dest}.sha256"] = item.get("sha256")
    box = lock.get("container")
    if box:
        pins.update(containers.drift_pins(box))
    return pins


KIND_OF = {"composer": "composer", "terraform": "terraform", "code": "code",
           "modules": "module", "inputs": "input", "container": "image"}


def pin_drift(old_lock: dict[str, Any], new_lock: dict[str, Any]) -> list[Drift]:
    old, new = _pins(old_lock), _pins(new_lock)
    drifts: list[Drift] = []
    for name in sorted(set(old) | set(new)):
        if old.get(name) == new.get(name):
            continue
        detail = _code_files(old_lock, new_lock) if name == "code.content_sha256" else ""
        drifts.append(Drift(KIND_OF[name.split(".")[0]], name, old.get(name), new.get(name),
                            detail))
    return drifts


def _code_files(old_lock: dict[str, Any], new_lock: dict[str, Any]) -> str:
    old = (old_lock.get("code") or {}).get("files") or {}
    new = (new_lock.get("code") or {}).get("files") or {}
    lines = []
    for name in sorted(set(old) | set(new)):
        if name not in new:
            lines.append(f"    removed {name} (was {old[name][:12]})")
        elif name not in old:
            lines.append(f"    added {name} ({new[name][:12]})")
        elif old[name] != new[name]:
            lines.append(f"    changed {name}: {old[name][:12]} -> {new[name][:12]}")
    return "\n".join(lines)


def recorded_spec(recorded: Recorded, job: Path) -> Spec:
    """The recorded job.toml, checked in the environment the run was checked in as far
    as its target pinned it (a GCP spec's project from ``GOOGLE_CLOUD_PROJECT``)."""
    from composer.targets import TARGETS

    target = recorded.lock.get("target") or {}
    known = TARGETS.get(str(target.get("name")))
    pinned = known().recorded_environment(target.get("resolved") or {}) if known else {}
    return parse_spec(recorded.text, job, environ={**os.environ, **pinned})


def check_drift(recorded: Recorded, job: Path, engine: Engine,
                runs_repo: Path | None = None) -> tuple[Spec, Lock, list[Drift]]:
    """The recorded spec (resolved against ``job``'s directory), today's lock, and drift."""
    drifts: list[Drift] = []
    current = job.read_text(encoding="utf-8") if job.exists() else ""
    if current != recorded.text:
        drifts.append(Drift("spec", str(job), "recorded job.toml", "current job.toml",
                            unified(recorded.text, current, "job.toml")))
    spec = recorded_spec(recorded, job)
    lock = resolve(spec, engine.name, engine.version, runs_repo=runs_repo)
    drifts += pin_drift(recorded.lock, json.loads(dump_json(lock.to_dict())))
    with tempfile.TemporaryDirectory(prefix="composer-rerender-") as tmp:
        fresh = render(spec, lock.modules, Path(tmp) / "infra")
        changes = tree_diff(recorded.root / "infra", fresh.path, frozenset({LOCK_FILE}))
    if changes:
        detail = "\n".join(
            text if text.startswith("---") else f"{path}: {text}" for path, text in changes.items()
        )
        drifts.append(Drift("infra", "infra/", (recorded.lock.get("infra") or {}).get("sha256"),
                            fresh.sha256, detail))
    drifts += provider_drift(recorded, engine)
    drifts += environment_drift(recorded, spec, lock)
    return spec, lock, drifts


def environment_drift(recorded: Recorded, spec: Spec, lock: Lock) -> list[Drift]:
    """The workload's environment today against the record's, before anything starts:
    in the pinned image for a container run, here for the local target (its nodes run
    this machine's interpreter with the target's session_env). Other targets' nodes do
    not exist yet: ``after_facts`` checks them once the re-run has asked them."""
    old = environment.load(recorded.root)
    if old is None or not environment_checked_before(spec):
        return []
    env = environment.workload_env(get_target(spec.cluster.target).session_env(), spec)
    if lock.container is not None:
        box = lock.container
        options = containers.probe(box["runtime"], box["ref"],
                                   composer_home() / "container-probe.json")
        today = environment.probe_image(box["runtime"], box["ref"], env, options)
    else:
        today = environment.probe_local(env)
    new = environment.EnvironmentRecord(old.source, {name: today for name in old.nodes},
                                        old.image)
    return env_drifts(old, new)


def environment_checked_before(spec: Spec) -> bool:
    """Whether the environment can be asked before the re-run starts a node."""
    return spec.container.enabled or spec.cluster.target == "local"


def env_drifts(old: environment.EnvironmentRecord,
               new: environment.EnvironmentRecord) -> list[Drift]:
    """Drift of class ``environment``: packages by name (added, removed, old -> new
    version), the interpreter, MPI, CUDA and framework versions, numerics variables."""
    return [Drift("environment", c.field, c.old, c.new,
                  f"on {', '.join(c.nodes)} only" if c.nodes else "")
            for c in environment.drift_changes(old, new)]


def late_environment_check(
    recorded: Recorded, spec: Spec, drifts: list[Drift], allow_drift: bool,
) -> Callable[[environment.EnvironmentRecord, Result], None] | None:
    """For targets whose nodes exist only once the re-run made them: compare right
    after the facts stage, before the workload starts; refused (exit 3, the cluster
    torn down as always) unless ``allow_drift``. Found drift joins ``drifts``."""
    old = environment.load(recorded.root)
    if old is None or environment_checked_before(spec):
        return None

    def check(new: environment.EnvironmentRecord, result: Result) -> None:
        found = env_drifts(old, new)
        drifts.extend(found)
        result.drift.extend(d.to_dict() for d in found)
        if found and not allow_drift:
            raise DriftError(recorded.run_id, found)

    return check


def provider_drift(recorded: Recorded, engine: Engine) -> list[Drift]:
    """Providers the record locked against what ``init`` selects for its tree today.
    A record without providers (the local target) costs nothing here."""
    old = recorded.lock.get("providers") or {}
    if not old:
        return []
    # -backend=false: a tree with a [state] backend block needs no bucket to list providers
    new = providers_today(recorded.root / "infra",
                          lambda tf: engine.init(tf, backend=["-backend=false"]))
    return [Drift("provider", f"providers.{source}", was, now)
            for source, was, now in provider_changes(old, new)]


def verdict(recorded: Recorded, spec: Spec, staged: Path, result: Result,
            drifts: list[Drift]) -> dict[str, Any]:
    """Compare the new run's outputs and metrics with the recorded ones."""
    files = with_text_diffs(compare_manifests(recorded.manifest, load_manifest(staged)),
                            recorded.root / "outputs", staged / "outputs")
    metrics = []
    for name in spec.reproduce.metrics:
        old_path, new_path = recorded.root / "outputs" / name, staged / "outputs" / name
        old = json.loads(old_path.read_text()) if old_path.exists() else None
        new = json.loads(new_path.read_text()) if new_path.exists() else None
        metrics += compare_metrics(name, old, new, spec.reproduce.tolerance_for)
    metric_files = set(spec.reproduce.metrics)
    status_same = result.status == recorded.result.get("status", "succeeded")
    if not files and status_same:
        outputs = "identical"
    elif (status_same and all(f.kind == "changed" and f.path in metric_files for f in files)
          and all(m.within for m in metrics)):
        outputs = "within-tolerance"
    else:
        outputs = "differs"
    # Drift decides the verdict (exit 3); what the outputs gave is still said.
    name = "drift" if drifts else outputs
    return {
        "schema_version": 1, "verdict": name, "outputs": outputs,
        "reproduces": recorded.run_id,
        "run_id": result.run_id, "composer_version": __version__,
        "status": {"old": recorded.result.get("status"), "new": result.status},
        "drift": [d.to_dict() for d in drifts],
        "files": [f.__dict__ for f in files],
        "metrics": [m.__dict__ for m in metrics],
    }


def latest_of(repo: RunsRepo, job: str) -> str:
    """The newest original run of ``job`` that succeeded: reproductions (``reproduces``
    set) and runs that failed, timed out or were interrupted are skipped."""
    runs = [r for r in repo.list_runs() if r.job == job]
    originals = [r for r in runs
                 if not (repo.show(r.run_id).get("result") or {}).get("reproduces")]
    for run in reversed(originals):
        if run.status == "succeeded":
            return run.run_id
    if originals:
        newest = originals[-1]
        raise UsageError(f"no run of job '{job}' succeeded; the newest is {newest.run_id} "
                         f"({newest.status})",
                         hint=f"name it to reproduce it anyway: composer reproduce "
                         f"{newest.run_id}")
    if runs:
        raise UsageError(f"every recorded run of job '{job}' is a reproduction",
                         hint="name the run to reproduce by its id")
    raise UsageError(f"no recorded run of job '{job}' in {repo.describe()}",
                     hint=REPO_HINT)


def record_repo_of(job: Path | None) -> str | None:
    """The ``[record] repo`` of the job file ``--job`` names, as written (relative to
    that file's directory), or None: with no --runs-repo or COMPOSER_RUNS_REPO,
    ``reproduce`` looks for the run there. A job file that cannot be read gives None
    here; the drift check reports it."""
    if job is None:
        return None
    try:
        data = tomllib.loads(job.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    record = data.get("record")
    repo = record.get("repo") if isinstance(record, dict) else None
    return repo if isinstance(repo, str) and repo.strip() else None


def reproduce(ref: str | None, opts: RunOptions, job: Path | None = None,
              allow_drift: bool = False, latest: str | None = None,
              engine: str | None = None, repo_source: str = "") -> dict[str, Any]:
    """Check drift, re-run from the record, and return the verdict (with exit_code).

    The run is read from ``opts.runs_repo`` (``repo_source`` says which setting chose
    it) and the reproduction is recorded there too, next to the run it reproduces."""
    repo = RunsRepo(opts.runs_repo, repo_source)
    run_id = latest_of(repo, latest) if latest else repo.resolve(ref or "")
    with tempfile.TemporaryDirectory(prefix="composer-reproduce-") as tmp:
        recorded = Recorded.load(repo, run_id, Path(tmp) / "record")
        name = engine or (recorded.lock.get("terraform") or {}).get("engine") or "embedded"
        tf = make_engine(name)
        spec, _, drifts = check_drift(recorded, job_path(recorded, job), tf, opts.runs_repo)
        if drifts and not allow_drift:
            raise DriftError(run_id, drifts)
        found: dict[str, Any] = {}

        def finalize(result: Result, staged: Path) -> None:
            found.update(verdict(recorded, spec, staged, result, drifts))
            write_json(staged / "reproduction.json", found)

        pins = (recorded.lock.get("target") or {}).get("resolved") or {}
        replay = Replay(run_id, recorded.root / "infra", tuple(d.to_dict() for d in drifts),
                        finalize, pins,
                        late_environment_check(recorded, spec, drifts, allow_drift))
        outcome = Run(spec, replace(opts, engine=name), replay).execute()
    found.setdefault("verdict", "differs")
    code = VERDICT_EXIT[found["verdict"]]
    if outcome.exit_code in (ExitCode.INFRA_FAILED, ExitCode.INTERRUPTED, ExitCode.TERMINATED):
        code = ExitCode(outcome.exit_code)
    original = found.get("status")
    found.update(run_id=outcome.run_id, record=outcome.record, exit_code=int(code),
                 status=outcome.status,
                 original_status=original.get("old") if isinstance(original, dict) else None)
    return found


def _shown(value: Any) -> str:
    """A value in a verdict line: ``-`` where a side has none."""
    return "-" if value is None else str(value)


def format_verdict(v: dict[str, Any]) -> str:
    lines = [f"{v['verdict']}: run {v.get('run_id')} reproduces {v['reproduces']}"]
    if v["verdict"] == "drift" and v.get("outputs"):
        lines.append(f"  outputs: {v['outputs']} (run anyway with --allow-drift)")
    old_status = v.get("original_status")
    if old_status and old_status != v.get("status"):
        lines.append(f"  status: {old_status} -> {v.get('status')}")
    for d in v.get("drift", []):
        lines.append(terminal_text(f"  drift {d['kind']}: {d['name']}: {_shown(d['old'])} -> "
                                   f"{_shown(d['new'])}"))
    for f in v.get("files", []):
        lines.append(f"  {f['kind']} {f['path']}: {_shown(f['old_sha256'])} -> "
                     f"{_shown(f['new_sha256'])}")
        if f.get("diff"):
            lines.extend(f"    {line}" for line in f["diff"].rstrip("\n").splitlines())
    for m in v.get("metrics", []):
        state = "within tolerance" if m["within"] else "outside tolerance"
        delta = "" if m["abs_diff"] is None else f"|diff| {m['abs_diff']:.6g}, "
        lines.append(f"  metric {m['file']}:{m['key']}: {m['old']} -> {m['new']} ({delta}{state})")
    return "\n".join(lines)
