"""Processes on this machine: alive or not, and the ones that are a run's nodes."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def process_alive(pid: int) -> bool:
    """True for a running process; a zombie waiting to be reaped has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    state = next((ln.split()[1] for ln in status.splitlines() if ln.startswith("State:")), "")
    return state != "Z"


def node_processes(run_dir: Path) -> list[int]:
    """sshd processes whose config lies under ``run_dir``: the run's nodes."""
    marker = str(run_dir / "nodes") + "/"
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "sshd" in cmdline and marker in cmdline and process_alive(int(proc.name)):
            found.append(int(proc.name))
    return sorted(found)


def processes_with_env(name: str, value: str) -> list[int]:
    """Processes whose environment holds ``name=value`` (this process excluded)."""
    needle = f"{name}={value}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            entries = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if needle in entries and process_alive(int(proc.name)):
            found.append(int(proc.name))
    return sorted(found)


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
