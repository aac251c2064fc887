"""What a run produced: result.json, the outcome, progress lines, the record commit."""

from __future__ import annotations

import io
import os
import secrets
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from composer import __version__
from composer.engine import parallelism
from composer.errors import ComposerError, ExitCode
from composer.jsonfile import write_json
from composer.progress import Plain
from composer.record import RunsRepo, screen_outputs
from composer.records.guard import redact_logs
from composer.records.readme import add_readme
from composer.secrets import Secrets
from composer.spec import Spec
from composer.state import RunState

RESULT_SCHEMA_VERSION = 1
MARKER_ROOM = 160  # bytes of a capped log left for the line that says what was cut


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
    """What ``up`` answers. ``exit_code`` is composer's own exit status (the README's
    table); ``workload_exit_code`` is what the workload exited with on ``failed_node``
    (0 when it succeeded, None when it never finished)."""

    run_id: str
    status: str
    exit_code: int
    record: str | None
    error: str | None = None
    workload_exit_code: int | None = None
    failed_node: str | None = None
    stage: str | None = None
    failed_rank: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "status": self.status, "exit_code": self.exit_code,
                "record": self.record, "error": self.error,
                "workload_exit_code": self.workload_exit_code,
                "failed_node": self.failed_node, "failed_rank": self.failed_rank,
                "stage": self.stage}


# The keys of ``up --json`` when there is no run to describe (a bad spec, an error
# before the run started), so that every answer has the same keys.
NO_OUTCOME: dict[str, Any] = {"run_id": None, "record": None, "workload_exit_code": None,
                              "failed_node": None, "failed_rank": None, "stage": None}


class Reporter:
    """Progress lines for people, also kept as the run's composer.log."""

    def __init__(self, err: IO[str], log_path: Path, secrets: Secrets | None = None,
                 progress: Plain | None = None) -> None:
        self.err = err
        self.secrets = secrets or Secrets({})
        #: the live line on a terminal (``composer.progress``); Plain shows none
        self.progress = progress or Plain()
        self._lock = threading.Lock()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(log_path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def say(self, text: str) -> None:
        """One message (several lines at most), redacted, on stderr and in the log.
        Called from the heartbeat thread too."""
        text = self.secrets.redact(text)
        with self._lock:
            if self.progress.live:
                self.progress.print(f"composer: {text}")
            else:
                self.err.write(f"composer: {text}\n")
                self.err.flush()
            self.log.write(f"{now_iso()} {text}\n")
            self.log.flush()

    def close(self) -> None:
        self.progress.close()
        self.log.close()


class RedactedLog(io.TextIOBase):
    """A text log (terraform.log) that masks secret values: text is held until its line
    ends, so that a value written in two calls is still masked."""

    def __init__(self, path: Path, secrets: Secrets) -> None:
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.secrets = secrets
        self.pending = ""

    def write(self, text: str) -> int:
        head, newline, tail = (self.pending + text).rpartition("\n")
        if newline:
            self.file.write(self.secrets.redact(head + newline))
        self.pending = tail
        return len(text)

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        if self.closed:
            return
        if self.pending:
            self.file.write(self.secrets.redact(self.pending))
            self.pending = ""
        super().close()
        self.file.close()


def cap_log(path: Path, limit: int) -> dict[str, int] | None:
    """Keep the head and the tail of a log over ``limit`` bytes, cut at line ends where
    it can, with a line saying how much was cut in between; None when under the limit.
    The file is rewritten in place (a writer that appends keeps appending)."""
    size = path.stat().st_size
    if size <= limit:
        return None
    half = max(0, (limit - MARKER_ROOM) // 2)
    with open(path, "rb") as fh:
        head = fh.read(half)
        fh.seek(size - half)
        tail = fh.read()
    if (end := head.rfind(b"\n")) != -1:
        head = head[:end + 1]
    if (start := tail.find(b"\n")) != -1 and start + 1 < len(tail):
        tail = tail[start + 1:]
    cut = size - len(head) - len(tail)
    marker = (b"" if not head or head.endswith(b"\n") else b"\n") + (
        f"[composer: {cut} bytes cut here; the log was {size} bytes,"
        f" record.max_log_size is {limit}]\n"
    ).encode()
    with open(path, "r+b") as fh:
        fh.write(head + marker + tail)
        fh.truncate()
    return {"size": size, "cut": cut}


def cap_logs(logs: Path, limit: int) -> dict[str, dict[str, int]]:
    """``cap_log`` on every log of a staged record; what was cut, by record path."""
    cut = {}
    for path in sorted(logs.glob("*.log")) if logs.is_dir() else []:
        done = cap_log(path, limit)
        if done is not None:
            cut[f"logs/{path.name}"] = done
    return cut


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
    exit_code: int | None = None  # the workload's (kept under this name for old readers)
    workload_exit_code: int | None = None
    composer_exit_code: int | None = None
    failed_node: str | None = None
    failed_rank: int | None = None  # with mpi: the MPI rank that failed first, when known
    stopped_nodes: list[str] = field(default_factory=list)
    error: str | None = None
    logs_cut: dict[str, dict[str, int]] = field(default_factory=dict)
    stages: dict[str, float] = field(default_factory=dict)
    teardown: dict[str, Any] = field(default_factory=lambda: {"status": "not-needed"})
    finished_at: str | None = None
    duration_s: float | None = None
    reproduces: str | None = None
    drift: list[dict[str, Any]] = field(default_factory=list)
    #: Every try at the run: where (zone, type), how it ended, how long (attempts.py).
    attempts: list[dict[str, Any]] = field(default_factory=list)
    #: Nodes that stopped answering during the run (retried when [run] retries allow).
    lost_nodes: list[str] = field(default_factory=list)
    #: The estimate and the spend (composer/cost.py ``Cost.settle``).
    cost: dict[str, Any] = field(default_factory=dict)

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
    add_readme(staged, say)
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
        parallelism=parallelism(spec.cluster.nodes),
        max_log_size=spec.record.max_log_size, target=spec.cluster.target,
    )
