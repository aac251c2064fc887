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
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from composer.remote import Node, Session
from composer.secrets import Secrets

PRELUDE = (
    'if [ -f "$COMPOSER_WORK_DIR/.composer-secrets" ]; then '
    '. "$COMPOSER_WORK_DIR/.composer-secrets"; fi && '
    'cd "$COMPOSER_WORK_DIR/code" && '
    'export COMPOSER_OUTPUT_DIR="$COMPOSER_WORK_DIR/outputs" && exec "$@"'
)
DAEMON_FAILED = b"A daemon failed to report back"
TAG = re.compile(rb"^\[(\d+),(\d+)\]<(stdout|stderr)>: ?(.*)$")


@dataclass(frozen=True)
class JobResult:
    exit_code: int
    node_exit_codes: tuple[int, ...]
    failed_node: str | None = None


def workload_argv(command: Sequence[str] | str, name: str = "composer-run") -> list[str]:
    """The workload wrapped in the node prelude, as an argv."""
    inner = ["sh", "-c", command] if isinstance(command, str) else list(command)
    return ["sh", "-c", PRELUDE, name, *inner]


def env_prefix(env: Mapping[str, str]) -> str:
    return "env " + " ".join(shlex.quote(f"{k}={v}") for k, v in sorted(env.items()))


def ssh_command(env: Mapping[str, str], command: Sequence[str] | str) -> str:
    """The shell line the ssh launcher runs on one node."""
    return f"{env_prefix(env)} {shlex.join(workload_argv(command))}"


def hostfile(nodes: Sequence[Node]) -> str:
    return "".join(f"{n.address} slots={n.slots}\n" for n in nodes)


def ssh_wrapper(key: str, known_hosts: str, port: int) -> str:
    """The ssh mpirun uses to reach the other nodes: the run's key, pinned host keys."""
    opts = [
        "-i", key, "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
        "-o", "LogLevel=ERROR", "-p", str(port),
    ]
    return f'#!/bin/sh\nexec ssh {shlex.join(opts)} "$@"\n'


def mpirun_argv(
    mpirun: str, hostfile_path: str, agent: str, total: int, forward: Sequence[str],
    extra: Sequence[str], command: Sequence[str] | str, as_root: bool,
) -> list[str]:
    argv = [mpirun, "--hostfile", hostfile_path, "-np", str(total), "--map-by", "slot",
            "--bind-to", "none", "--output", "tag", "--stdin", "none",
            "--prtemca", "plm_ssh_agent", agent]
    if os.path.isabs(mpirun):
        argv += ["--prefix", str(Path(mpirun).parent.parent)]
    if as_root:
        argv.append("--allow-run-as-root")
    for name in sorted(forward):
        argv += ["-x", name]
    return [*argv, *extra, *workload_argv(command, "composer-rank")]


class Streams:
    """Workload output: to the terminal (prefixed) and to one log per node."""

    def __init__(self, log_dir: Path, names: Sequence[str], echo: IO[str] | None,
                 secrets: Secrets | None = None) -> None:
        self.secrets = secrets or Secrets({})
        log_dir.mkdir(parents=True, exist_ok=True)
        # Held open for the whole launch; close() releases them.
        self.files = {name: open(log_dir / f"{name}.log", "ab") for name in names}  # noqa: SIM115
        self.echo = echo
        self._lock = threading.Lock()

    def line(self, name: str, text: bytes, echo_prefix: str | None = None) -> None:
        text = self.secrets.redact_bytes(text)
        with self._lock:
            self.files[name].write(text + b"\n")
            self.files[name].flush()
            if self.echo is not None:
                prefix = echo_prefix if echo_prefix is not None else f"[{name}] "
                self.echo.write(prefix + text.decode("utf-8", "replace") + "\n")
                self.echo.flush()

    def close(self) -> None:
        for fh in self.files.values():
            fh.close()


def run_ssh(sessions: Sequence[Session], envs: Sequence[Mapping[str, str]],
            command: Sequence[str] | str, streams: Streams, timeout: float | None) -> JobResult:
    """The command on every node at once; the first failing node decides the exit code."""

    def one(i: int) -> int:
        name = sessions[i].node.name
        return sessions[i].run(
            ssh_command(envs[i], command), on_line=lambda ln: streams.line(name, ln),
            timeout=timeout,
        )

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
        pool.shutdown(wait=False, cancel_futures=True)
    failed = next((i for i, c in enumerate(codes) if c != 0), None)
    if failed is None:
        return JobResult(0, codes)
    return JobResult(codes[failed], codes, sessions[failed].node.name)


def run_mpi(head: Session, argv: Sequence[str], env: Mapping[str, str], slots: int,
            names: Sequence[str], streams: Streams, timeout: float | None) -> JobResult:
    """mpirun on the head node; tagged output split into per-node logs.

    When Open MPI could not start its daemons and no rank ever ran, the launch
    (not the workload) failed: it is tried once more, and the log says so.
    """
    seen = {"ranks": False, "daemon_failed": False}

    def on_line(raw: bytes) -> None:
        match = TAG.match(raw)
        if match is None:
            seen["daemon_failed"] |= DAEMON_FAILED in raw
            streams.line("mpirun", raw, echo_prefix="")
            return
        seen["ranks"] = True
        rank = int(match.group(2))
        node = names[min(rank // max(slots, 1), len(names) - 1)]
        streams.line(node, match.group(4), echo_prefix=f"[rank {rank}] ")

    command = f"{env_prefix(env)} {shlex.join(workload_argv(list(argv), 'composer-mpirun'))}"
    code = head.run(command, on_line=on_line, timeout=timeout)
    if code != 0 and seen["daemon_failed"] and not seen["ranks"]:
        streams.line("mpirun", b"composer: mpirun could not start its daemons; launching again",
                     echo_prefix="")
        code = head.run(command, on_line=on_line, timeout=timeout)
    return JobResult(code, (code,), None if code == 0 else head.node.name)


def mpirun_path() -> str:
    """Absolute path of the mpirun next to this interpreter, else the one on PATH."""
    local = Path(sys.executable).parent / "mpirun"
    if local.exists():
        return str(local)
    found = shutil.which("mpirun")
    return os.path.abspath(found) if found else "mpirun"
