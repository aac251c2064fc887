"""Helpers of the fault-injection suite: jobs, composer processes, records, nodes."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from tests.conftest import sshd_processes

if TYPE_CHECKING:
    from tests.conftest import Composer

T = TypeVar("T")

STAGES = ("render", "init", "apply", "wait_for_ssh", "facts", "health", "stage", "run", "collect",
          "destroy")
APPLIED = frozenset(STAGES[STAGES.index("apply"):])
SSHD = "/usr/sbin/sshd"

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


# -- polling ------------------------------------------------------------------


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str,
             alive: subprocess.Popen[Any] | None = None, interval: float = 0.05,
             log: Path | None = None) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``
    seconds, or as soon as the process ``alive`` has exited (showing ``log``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if alive is not None and alive.poll() is not None:
            tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
            raise AssertionError(
                f"composer exited ({alive.returncode}) while waiting for {what}:\n{tail}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def process_alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


# -- job specs ----------------------------------------------------------------


def toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else toml_str(key)


def toml_str(text: str) -> str:
    out = []
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items())
        return "{" + inner + "}" if inner else "{}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def dump_toml(doc: Mapping[str, Any]) -> str:
    """A TOML document: plain keys first, then one ``[table]`` per dict."""
    lines = [f"{toml_key(k)} = {toml_value(v)}" for k, v in doc.items()
             if not isinstance(v, dict)]
    for name, table in doc.items():
        if isinstance(table, dict):
            lines.append(f"[{toml_key(name)}]")
            lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def write_job(directory: Path, doc: Mapping[str, Any],
              files: Mapping[str, str | bytes] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in (files or {}).items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    job = directory / "job.toml"
    job.write_text(dump_toml(doc), encoding="utf-8")
    return job


def simple_job(name: str, nodes: int, command: list[str] | str, **sections: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "job": {"name": name},
        "cluster": {"target": "local", "nodes": nodes},
        "run": {"launcher": "ssh", "command": command},
    }
    for key, value in sections.items():
        doc.setdefault(key, {}).update(value)
    return doc


def executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


# -- records ------------------------------------------------------------------


def final_json(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert len(lines) == 1, f"stdout must hold exactly one JSON line, got: {stdout!r}"
    data: dict[str, Any] = json.loads(lines[0])
    return data


def read_record(c: Composer, run_id: str, name: str) -> str:
    return c.git("show", f"run/{run_id}:{run_id}/{name}")


def record_json(c: Composer, run_id: str, name: str) -> Any:
    return json.loads(read_record(c, run_id, name))


def record_files(c: Composer, run_id: str) -> list[str]:
    out = c.git("ls-tree", "-r", "--name-only", f"run/{run_id}", "--", f"{run_id}/")
    return [line.removeprefix(f"{run_id}/") for line in out.splitlines()]


def tags(c: Composer) -> list[str]:
    return c.git("tag", "--list", "run/*").split()


# -- nodes and leftovers ------------------------------------------------------


def node_sshds(marker: str) -> list[str]:
    """Command lines of live sshd processes whose arguments contain ``marker``."""
    return sshd_processes(marker)


def processes_under(path: Path) -> dict[int, str]:
    """Live processes (not this one) whose command line names something under ``path``."""
    marker = str(path)
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline and process_alive(int(proc.name)):
            found[int(proc.name)] = cmdline.strip()
    return found


def leases_of(run_id: str) -> list[str]:
    """Address leases of the local target still held by ``run_id``."""
    directory = Path(os.environ.get("COMPOSER_LEASES_DIR", "/tmp/composer-leases"))
    held = []
    for path in directory.glob("127.*"):
        try:
            owner = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if owner.get("run_id") == run_id:
            held.append(path.name)
    return held


def work_dirs(c: Composer) -> list[Path]:
    root = c.home / "work"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def assert_gone(c: Composer, run_id: str) -> None:
    """No node, no process, no work dir (state, lock, keys), no address lease of the run
    is left."""
    assert not node_sshds(run_id), f"nodes of {run_id} still running: {node_sshds(run_id)}"
    work = c.home / "work" / run_id
    left = processes_under(work)
    assert not left, f"processes of {run_id} still running after composer exited: {left}"
    assert not work.exists(), f"work dir left behind: {sorted(p.name for p in work.iterdir())}"
    assert not leases_of(run_id), f"address leases of {run_id} left: {leases_of(run_id)}"


# -- composer up in the background --------------------------------------------


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Up:
    """``composer up`` running in the background, its output going to files.

    As a context manager it makes sure the process is gone at the end: on an
    error it is stopped with SIGTERM (so it tears its nodes down), then killed
    and its run brought down."""

    c: Composer
    proc: subprocess.Popen[str]
    out: Path
    err: Path
    run_id: str | None = None
    done: Finished | None = field(default=None)

    def __enter__(self) -> Up:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            for marker in self.c.home.glob("work/*/paused-*"):
                marker.unlink(missing_ok=True)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        if kind is not None:
            for work in work_dirs(self.c):
                state = json.loads((work / "state.json").read_text()) \
                    if (work / "state.json").exists() else {}
                if state.get("pid") == self.proc.pid:
                    self.c.run("down", work.name, timeout=120)

    def work(self, timeout: float = 60) -> Path:
        """This run's work dir, once its state names this process."""

        def mine() -> Path | None:
            for work in work_dirs(self.c):
                try:
                    state = json.loads((work / "state.json").read_text())
                except (OSError, ValueError):
                    continue
                if state.get("pid") == self.proc.pid:
                    return work
            return None

        work = wait_for(mine, timeout, "the run's work dir", alive=self.proc, log=self.err)
        self.run_id = work.name
        return work

    def paused(self, stage: str, timeout: float = 90) -> Path:
        """The pause marker of ``stage`` once this process has written it."""

        def marker() -> Path | None:
            for path in self.c.home.glob(f"work/*/paused-{stage}"):
                try:
                    if path.read_text().strip() == str(self.proc.pid):
                        return path
                except OSError:
                    continue
            return None

        path = wait_for(marker, timeout, f"the pause at {stage}", alive=self.proc, log=self.err)
        self.run_id = path.parent.name
        return path

    def finish(self, timeout: float = 180) -> Finished:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"composer still running after {timeout:.0f}s") from None
        self.done = Finished(self.proc.returncode, self.out.read_text(), self.err.read_text())
        return self.done


def start_up(c: Composer, job: Path, name: str, *args: str, **env: str) -> Up:
    logs = c.cwd / "procs"
    logs.mkdir(exist_ok=True)
    out, err = logs / f"{name}.out", logs / f"{name}.err"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        proc = subprocess.Popen(
            c.argv("up", str(job), "--json", *args), cwd=c.cwd, env=c.env(**env),
            stdout=stdout, stderr=stderr, text=True,
        )
    return Up(c, proc, out, err)
