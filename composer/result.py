"""What a run produced: result.json, the outcome, progress lines, the record commit."""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from composer import __version__
from composer.errors import ComposerError, ExitCode
from composer.jsonfile import write_json
from composer.record import RunsRepo, screen_outputs
from composer.records.guard import redact_logs
from composer.secrets import Secrets
from composer.spec import Spec
from composer.state import RunState

RESULT_SCHEMA_VERSION = 1


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class RunOptions:
    runs_repo: Path
    engine: str = "embedded"
    keep: bool = False
    out: IO[str] = field(default_factory=lambda: sys.stdout)
    err: IO[str] = field(default_factory=lambda: sys.stderr)


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    status: str
    exit_code: int
    record: str | None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "status": self.status,
                "exit_code": self.exit_code, "record": self.record}


class Reporter:
    """Progress lines for people, also kept as the run's composer.log."""

    def __init__(self, err: IO[str], log_path: Path, secrets: Secrets | None = None) -> None:
        self.err = err
        self.secrets = secrets or Secrets({})
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def say(self, text: str) -> None:
        text = self.secrets.redact(text)
        line = f"composer: {text}"
        self.err.write(line + "\n")
        self.err.flush()
        self.log.write(f"{now_iso()} {text}\n")
        self.log.flush()

    def close(self) -> None:
        self.log.close()


@dataclass
class Result:
    """What result.json says, filled in as the run goes."""

    run_id: str
    job: str
    nodes: int
    launcher: str
    engine: str
    started_at: str
    status: str = "running"
    stage: str | None = None
    exit_code: int | None = None
    failed_node: str | None = None
    error: str | None = None
    stages: dict[str, float] = field(default_factory=dict)
    teardown: dict[str, Any] = field(default_factory=lambda: {"status": "not-needed"})
    finished_at: str | None = None
    duration_s: float | None = None
    reproduces: str | None = None
    drift: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["schema_version"] = RESULT_SCHEMA_VERSION
        data["composer_version"] = __version__
        return data


def status_exit_code(status: str, signum: int | None = None) -> int:
    return {
        "succeeded": ExitCode.OK,
        "failed": ExitCode.WORKLOAD_FAILED,
        "timeout": ExitCode.WORKLOAD_FAILED,
        "interrupted": ExitCode.TERMINATED if signum == 15 else ExitCode.INTERRUPTED,
    }.get(status, ExitCode.INFRA_FAILED)


def commit_record(repo: RunsRepo, result: Result, staged: Path,
                  secrets: Secrets | None = None,
                  say: Callable[[str], None] | None = None) -> str:
    """Write result.json, withhold what may not be committed (each one said through
    ``say``), redact the logs, commit and tag; return the run's record directory."""
    write_json(staged / "result.json", result.to_dict())
    for item in screen_outputs(staged, secrets):
        if say is not None:
            say(item.line())
    redact_logs(staged, secrets)
    repo.ensure()
    message = f"{result.job}: {result.status} ({result.run_id})"
    repo.commit_run(result.run_id, staged, message)
    return str(repo.run_dir(result.run_id))


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def describe(exc: BaseException) -> str:
    if isinstance(exc, ComposerError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def spec_summary(spec: Spec) -> str:
    c = spec.cluster
    return f"{spec.job.name}: {c.nodes} node(s) x {c.slots_per_node} slot(s), {spec.run.launcher}"


def new_state(run_id: str, spec: Spec, opts: RunOptions) -> RunState:
    return RunState(
        run_id=run_id, job=spec.job.name, engine=opts.engine, runs_repo=str(opts.runs_repo),
        pid=os.getpid(), started_at=now_iso(), keep=opts.keep,
        parallelism=max(10, min(256, spec.cluster.nodes)),
    )
