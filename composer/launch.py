"""Launchers: run the workload on the nodes, over ssh on each node or with mpirun.

Every node's sessions carry ``COMPOSER_WORK_DIR`` (set by the target), so the
same prelude puts each process, a rank included, in its own node's code
directory with its own node's output directory, whichever node it lands on.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from composer import sshopts
from composer.remote import Node, Session
from composer.secrets import Secrets
from composer.settings import positive_seconds

PRELUDE = (
    'if [ -f "$COMPOSER_WORK_DIR/.composer-secrets" ]; then '
    '. "$COMPOSER_WORK_DIR/.composer-secrets"; fi && '
    'cd "$COMPOSER_WORK_DIR/code" && '
    'export COMPOSER_OUTPUT_DIR="$COMPOSER_WORK_DIR/outputs" && exec "$@"'
)
DAEMON_FAILED = b"A daemon failed to report back"
PID_FILE = ".composer-launch.pid"
TAG = re.compile(rb"^\[(\d+),(\d+)\]<(stdout|stderr)>: ?(.*)$")


@dataclass(frozen=True)
class JobResult:
    """``failed_node`` failed first; ``stopped`` were stopped because it did (fail_fast).
    With mpi, ``failed_rank`` is the rank that failed first, when mpirun said which."""

    exit_code: int
    node_exit_codes: tuple[int, ...]
    failed_node: str | None = None
    stopped: tuple[str, ...] = ()
    also_failed: tuple[str, ...] = ()
    failed_rank: int | None = None


# How a workload that composer stopped ends: SIGTERM or SIGKILL (by the shell's 128+N, or
# a channel closed with no status); any other code is the workload's own failure.
STOPPED_CODES = frozenset({128 + 15, 128 + 9, -1})


def workload_argv(command: Sequence[str] | str, name: str = "composer-run") -> list[str]:
    """The workload wrapped in the node prelude, as an argv."""
    inner = ["sh", "-c", command] if isinstance(command, str) else list(command)
    return ["sh", "-c", PRELUDE, name, *inner]


def env_prefix(env: Mapping[str, str]) -> str:
    return "env " + " ".join(shlex.quote(f"{k}={v}") for k, v in sorted(env.items()))


def ssh_command(env: Mapping[str, str], command: Sequence[str] | str) -> str:
    """The shell line the ssh launcher runs on one node. sshd starts it as the leader
    of its own process group; its pid goes to ``PID_FILE`` so ``kill_command`` can
    stop the whole group (the workload and what it started)."""
    record = f'{{ echo $$ > "$COMPOSER_WORK_DIR/{PID_FILE}"; }} 2>/dev/null; '
    return f"{record}exec {env_prefix(env)} {shlex.join(workload_argv(command))}"


def kill_command(signal: str) -> str:
    """A shell line that sends ``signal`` to the process group ``ssh_command`` started."""
    return (f'p=$(cat "$COMPOSER_WORK_DIR/{PID_FILE}") && '
            f'{{ kill -{signal} -- -"$p" 2>/dev/null || kill -{signal} -"$p"; }}')


def hostfile(nodes: Sequence[Node]) -> str:
    return "".join(f"{n.peer} slots={n.slots}\n" for n in nodes)


def ssh_wrapper(key: str, known_hosts: str, port: int) -> str:
    """The ssh mpirun uses to reach the other nodes: the run's key, pinned host keys."""
    opts = sshopts.options(key, known_hosts, port)
    return f'#!/bin/sh\nexec ssh {shlex.join(opts)} "$@"\n'


def mpirun_argv(
    mpirun: str, hostfile_path: str, agent: str, total: int, forward: Sequence[str],
    extra: Sequence[str], command: Sequence[str] | str, as_root: bool, prelude: bool = True,
) -> list[str]:
    """mpirun's command line; each rank runs ``command`` in the node prelude (its code
    directory, its secrets), or as it is without ``prelude`` (an argv)."""
    argv = [mpirun, "--hostfile", hostfile_path, "-np", str(total), "--map-by", "slot",
            "--bind-to", "none", "--output", "tag", "--stdin", "none",
            "--prtemca", "plm_ssh_agent", agent]
    if os.path.isabs(mpirun):
        argv += ["--prefix", str(Path(mpirun).parent.parent)]
    if as_root:
        argv.append("--allow-run-as-root")
    for name in sorted(forward):
        argv += ["-x", name]
    ranks = workload_argv(command, "composer-rank") if prelude else list(command)
    return [*argv, *extra, *ranks]


PROGRESS_S = 1.0
HEARTBEAT_ENV = "COMPOSER_HEARTBEAT_S"
HEARTBEAT_S = 60.0


@dataclass
class _Stream:
    """One log's state: its file (opened on first use) and the line being written."""

    file: IO[bytes]
    carry: bytes = b""  # the end of a cut line held back: it may start a secret
    in_line: bool = False  # the log's last write left a line open (a cut piece, a \r update)
    length: int = 0  # bytes of the current line written so far (a cut line)
    shown: int = 0  # of which the terminal showed this many
    progress_at: float = -PROGRESS_S  # when a \r update was last shown


class Streams:
    """Workload output: to the terminal (prefixed) and to one log per node.

    Every line is redacted before it is written anywhere. The node log keeps every
    byte the workload wrote (line ends included, ``\\r`` too). The terminal shows a
    ``\\r``-terminated progress update at most once per ``PROGRESS_S`` per stream and
    at most the first ``LINE_CAP`` bytes of a line, then says where the rest is. A log
    is created when its stream first writes, except those named up front.
    """

    def __init__(self, log_dir: Path, names: Sequence[str], echo: IO[str] | None,
                 secrets: Secrets | None = None) -> None:
        self.secrets = secrets or Secrets({})
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.streams: dict[str, _Stream] = {}
        for name in names:
            self._stream(name)
        self.echo = echo
        self.active: dict[str, None] = {}
        self.last_output: float | None = None
        self._lock = threading.Lock()

    def _stream(self, name: str) -> _Stream:
        stream = self.streams.get(name)
        if stream is None:
            # Held open for the whole launch; close() releases them.
            stream = _Stream(open(self.log_dir / f"{name}.log", "ab"))  # noqa: SIM115
            self.streams[name] = stream
        return stream

    def started(self, name: str) -> None:
        with self._lock:
            self.active[name] = None

    def ended(self, name: str) -> None:
        with self._lock:
            self.active.pop(name, None)

    def line(self, name: str, data: bytes, end: bytes | None = b"\n",
             echo_prefix: str | None = None, log_prefix: bytes = b"") -> None:
        """One line (``end`` its terminator, see ``LineSplitter``) of stream ``name``.
        ``log_prefix`` starts each line in the log (not each ``\r`` update of one)."""
        with self._lock:
            stream = self._stream(name)
            data = stream.carry + data
            stream.carry = b""
            if end is None:
                hold = self.secrets.unsafe_tail(data)
                if hold:
                    data, stream.carry = data[:-hold], data[-hold:]
            text = self.secrets.redact_bytes(data)
            if not stream.in_line:
                stream.file.write(log_prefix)
            stream.in_line = end is None or end == b"\r"
            stream.file.write(text + (end or b""))
            stream.file.flush()
            self.last_output = time.monotonic()
            if self.echo is not None:
                prefix = echo_prefix if echo_prefix is not None else f"[{name}] "
                self._show(name, stream, prefix, text, end)

    def _show(self, name: str, stream: _Stream, prefix: str, text: bytes,
              end: bytes | None) -> None:
        assert self.echo is not None
        first = stream.length == 0
        stream.length += len(text)
        if first and end is None:
            # The start of a line too long to show: cut it a secret's length early too,
            # so no part of one can stand at the cut, whatever the rest of it holds.
            if self.secrets:
                text = text[: max(0, len(text) - self.secrets.longest)]
            stream.shown = len(text)
            self._echo(prefix, text)
            return
        if end is None:
            return
        if not first:
            self._echo(prefix, b"" if stream.shown else text,
                       f"(line cut at {stream.shown} of {stream.length} bytes on the terminal;"
                       f" all of it is in logs/{name}.log)")
            stream.length = stream.shown = 0
            return
        stream.length = 0
        if end == b"\r":
            now = time.monotonic()
            if not text or now - stream.progress_at < PROGRESS_S:
                return
            stream.progress_at = now
        self._echo(prefix, text)

    def _echo(self, prefix: str, text: bytes, note: str = "") -> None:
        assert self.echo is not None
        shown = text.decode("utf-8", "replace").replace("\r", "")
        if note:
            shown = f"{shown} {note}" if shown else note
        self.echo.write(prefix + shown + "\n")
        self.echo.flush()

    def close(self) -> None:
        with self._lock:
            for stream in self.streams.values():
                # A cut line whose end never came: what was held back, redacted.
                stream.file.write(self.secrets.redact_bytes(stream.carry))
                stream.carry = b""
                stream.file.close()

    def snapshot(self) -> tuple[list[str], float | None]:
        """Who is running now, and when the last output came."""
        with self._lock:
            return list(self.active), self.last_output


def heartbeat_interval(environ: Mapping[str, str]) -> float:
    """Seconds between 'still running' lines: ``COMPOSER_HEARTBEAT_S``, else 60."""
    value = positive_seconds(environ, HEARTBEAT_ENV, "a line every minute")
    return HEARTBEAT_S if value is None else value


def human_duration(seconds: float) -> str:
    """``45s``, ``2m``, ``1m40s``, ``3h``, ``1h05m``, ``24h``, ``2d``, ``3d6h``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m" + (f"{s % 60}s" if s % 60 else "")
    if s < 2 * 86400:
        return f"{s // 3600}h" + (f"{s % 3600 // 60:02d}m" if s % 3600 // 60 else "")
    return f"{s // 86400}d" + (f"{s % 86400 // 3600}h" if s % 86400 // 3600 else "")


class Heartbeat:
    """While the workload runs, a line every ``interval`` seconds: elapsed time, who is
    still running, and how long ago the last output came."""

    def __init__(self, say: Callable[[str], None], streams: Streams, interval: float) -> None:
        self.say, self.streams, self.interval = say, streams, interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)
        self._started = time.monotonic()

    def __enter__(self) -> Heartbeat:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def message(self, now: float) -> str:
        active, last = self.streams.snapshot()
        who = (", ".join(active) if len(active) <= 8 else f"{len(active)} nodes") + " active"
        heard = "no output yet" if last is None else \
            f"last output {human_duration(now - last)} ago"
        return f"[run] still running after {human_duration(now - self._started)} ({who}; {heard})"

    def _loop(self) -> None:
        while not self._done.wait(self.interval):
            self.say(self.message(time.monotonic()))


def run_ssh(sessions: Sequence[Session], envs: Sequence[Mapping[str, str]],
            command: Sequence[str] | str, streams: Streams, timeout: float | None,
            fail_fast: bool = True) -> JobResult:
    """The command on every node at once. The first node to fail (in time) decides the
    exit code; with ``fail_fast`` the other nodes' workloads are stopped then."""
    stop = threading.Event()
    lock = threading.Lock()
    failed: list[int] = []
    stopped: list[int] = []

    def one(i: int) -> int:
        name = sessions[i].node.name
        streams.started(name)
        try:
            code = sessions[i].run(
                ssh_command(envs[i], command), timeout=timeout, stop=stop, kill=kill_command,
                on_line=lambda data, end: streams.line(name, data, end),
            )
        except BaseException:
            stop.set()
            raise
        finally:
            streams.ended(name)
        with lock:
            if code in STOPPED_CODES and stop.is_set() and failed:
                stopped.append(i)
            elif code != 0:
                failed.append(i)
                if fail_fast:
                    stop.set()
        return code

    pool = ThreadPoolExecutor(max_workers=len(sessions))
    try:
        futures = [pool.submit(one, i) for i in range(len(sessions))]
        wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            error = future.exception() if future.done() else None
            if error is not None:
                raise error
        codes = tuple(f.result() for f in futures)
    finally:
        stop.set()  # an error or a signal: no workload is left running
        pool.shutdown(wait=False, cancel_futures=True)
    if not failed:
        return JobResult(0, codes)
    names = [s.node.name for s in sessions]
    return JobResult(codes[failed[0]], codes, names[failed[0]],
                     tuple(names[i] for i in sorted(stopped)),
                     tuple(f"{names[i]} ({codes[i]})" for i in failed[1:]))


# How Open MPI 5's mpirun (PRRTE) names the process that failed, once its report's
# lines are joined with single blanks: a non-zero exit ("Process name:
# [prterun-HOST-PID@1,RANK]  Exit code: N", the first one to fail), an MPI_Abort
# ("process rank R with PID P on node H calling "abort""), a signal ("process rank R
# with PID P on node H exited on signal S").
_EXITED = re.compile(rb"Process name: \[[^\]\s]*?,(\d+)\] Exit code: (-?\d+)")
_NOTICED = re.compile(rb"process rank (\d+) with PID \d+ on node \S+ "
                      rb"(?:calling \"?abort|exited on signal \d+)")
MPIRUN_REPORT_CAP = 256 * 1024


def mpi_failure(report: bytes) -> tuple[int, int | None] | None:
    """The rank that failed first and its exit code (None when mpirun gave none, as
    after MPI_Abort or a signal), read from what mpirun itself printed; None when it
    named no rank."""
    text = b" ".join(report.split())
    found = [(m.start(), int(m.group(1)), int(m.group(2))) for m in _EXITED.finditer(text)]
    found += [(m.start(), int(m.group(1)), None) for m in _NOTICED.finditer(text)]
    if not found:
        return None
    _, rank, code = min(found, key=lambda f: f[0])
    return rank, code


def run_mpi(head: Session, argv: Sequence[str], env: Mapping[str, str], slots: int,
            names: Sequence[str], streams: Streams, timeout: float | None) -> JobResult:
    """mpirun on the head node; tagged output split into per-node logs, each line
    with its rank (``[rank R] ``), and mpirun's own lines into ``mpirun.log``.

    When Open MPI could not start its daemons and no rank ever ran, the launch
    (not the workload) failed: it is tried once more, and the log says so. mpirun
    stops every rank when one calls MPI_Abort or ends without finalizing MPI; a rank
    that exits non-zero after finalizing (mpi4py finalizes at exit) ends the job
    once the others finish. The rank that failed, and so its node, is read from
    mpirun's report; without one, the head node's mpirun is what failed.
    """
    seen = {"ranks": False, "daemon_failed": False}
    report = bytearray()  # mpirun's own lines, for the rank that failed
    # Where an untagged piece goes: the rest of a cut line, or the next \r update of a
    # rank's progress bar (Open MPI tags only what follows a \n).
    follow: dict[str, tuple[str, str] | None] = {"cut": None, "cr": None}
    total = max(slots, 1) * len(names)

    def node_of(rank: int) -> str:
        return names[min(rank // max(slots, 1), len(names) - 1)]

    def on_line(raw: bytes, end: bytes | None) -> None:
        dest = follow["cut"]
        match = TAG.match(raw) if dest is None else None
        if match is not None:
            seen["ranks"] = True
            rank = int(match.group(2))
            dest = (node_of(rank), f"[rank {rank}] ")
            raw = match.group(4)
        elif dest is None:
            dest = follow["cr"]
        if dest is None:
            seen["daemon_failed"] |= DAEMON_FAILED in raw
            dest = ("mpirun", "[mpirun] ")
        if dest[0] == "mpirun" and len(report) < MPIRUN_REPORT_CAP:
            report.extend(raw + b"\n")
        follow["cut"] = dest if end is None else None
        follow["cr"] = dest if end == b"\r" and dest[0] != "mpirun" else None
        streams.line(dest[0], raw, end, echo_prefix=dest[1],
                     log_prefix=b"" if dest[0] == "mpirun" else dest[1].encode())

    command = f"{env_prefix(env)} {shlex.join(workload_argv(list(argv), 'composer-mpirun'))}"
    streams.started("mpirun")
    try:
        code = head.run(command, on_line=on_line, timeout=timeout)
        if code != 0 and seen["daemon_failed"] and not seen["ranks"]:
            streams.line("mpirun", b"composer: mpirun could not start its daemons; "
                         b"launching again", echo_prefix="")
            report.clear()
            code = head.run(command, on_line=on_line, timeout=timeout)
    finally:
        streams.ended("mpirun")
    if code == 0:
        return JobResult(0, (0,))
    failed = mpi_failure(bytes(report))
    if failed is None or failed[0] >= total:
        return JobResult(code, (code,), head.node.name)
    rank, rank_code = failed
    return JobResult(code if rank_code is None else rank_code, (code,), node_of(rank),
                     failed_rank=rank)


def mpirun_path() -> str:
    """Absolute path of the mpirun next to this interpreter, else the one on PATH."""
    local = Path(sys.executable).parent / "mpirun"
    if local.exists():
        return str(local)
    found = shutil.which("mpirun")
    return os.path.abspath(found) if found else "mpirun"
