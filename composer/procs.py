"""Processes on this machine: alive or not, and the ones that are a run's nodes."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
from itertools import pairwise
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
    """The run's node sshd processes, and nothing else.

    A process counts when its executable is the sshd the run started (as recorded in
    its Terraform variables) or another ``sshd`` binary (one a wrapper ran), and its
    arguments hold exactly ``-f
    <run_dir>/nodes/node-<N>/sshd_config``. A command line that merely names those
    files (``tail -f .../node-0/sshd.log``) is not a node."""
    sshd = _recorded_sshd(run_dir)
    nodes = str(run_dir / "nodes")
    config = re.compile(re.escape(nodes) + r"/node-\d+/sshd_config")
    title = re.compile(r"(?:^| )-f " + config.pattern + r"(?: |$)")
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            exe = os.readlink(proc / "exe").removesuffix(" (deleted)")
            raw = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if not _is_sshd(exe, sshd):
            continue
        argv = [os.fsdecode(a) for a in raw.rstrip(b"\0").split(b"\0")]
        if len(argv) > 1:
            ours = any(a == "-f" and config.fullmatch(b) for a, b in pairwise(argv))
        else:
            # sshd rewrites its command line into one title:
            # "sshd: /usr/sbin/sshd -D -f CONFIG -E LOG [listener] ..."
            ours = bool(argv) and title.search(argv[0]) is not None
        if ours and process_alive(int(proc.name)):
            found.append(int(proc.name))
    return sorted(found)


def _recorded_sshd(run_dir: Path) -> str | None:
    """The sshd binary the run's nodes were started with, resolved; None when unknown."""
    try:
        data = json.loads((run_dir / "tf" / "runtime.tfvars.json").read_text())
    except (OSError, ValueError):
        return None
    path = data.get("sshd_path") if isinstance(data, dict) else None
    return os.path.realpath(path) if isinstance(path, str) and path else None


def _is_sshd(exe: str, sshd: str | None) -> bool:
    """The run's sshd binary, or an sshd that a wrapper named by COMPOSER_SSHD ran."""
    return exe == sshd or os.path.basename(exe) == "sshd"


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
