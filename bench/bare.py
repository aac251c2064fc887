"""A cluster of plain OpenSSH sshd nodes on loopback addresses, set up without composer.

Each node is one ``sshd`` with its own ed25519 host key, listening on its own
``127.251.b.n`` address; composer's allocator leases ``127.16-250.*`` blocks, so
these never collide with a composer run. One client key, pinned host keys.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from composer.keys import generate_keypair
from composer.targets.local import port_free

if TYPE_CHECKING:
    from composer.remote import Session

BLOCK_A = 251
MAX_NODES = 250
SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd")
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0


class BareError(RuntimeError):
    """The bare cluster could not be set up or used."""


def find_sshd() -> str:
    for candidate in SSHD_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("sshd")
    if found is None:
        raise BareError("OpenSSH's sshd is not installed")
    return os.path.abspath(found)


def pick_addresses(nodes: int, port: int, rng: random.Random | None = None) -> tuple[str, ...]:
    """``nodes`` loopback addresses in one 127.251.b.0/24 block, all free on ``port``."""
    if not 1 <= nodes <= MAX_NODES:
        raise BareError(f"a bare cluster holds 1 to {MAX_NODES} nodes, not {nodes}")
    rng = rng or random.Random()
    for _ in range(64):
        b = rng.randint(0, 255)
        addresses = tuple(f"127.{BLOCK_A}.{b}.{i + 1}" for i in range(nodes))
        if all(port_free(a, port) for a in addresses):
            return addresses
    raise BareError(f"no free 127.{BLOCK_A}.*.* block on port {port}")


def session_env() -> dict[str, str]:
    """The same session environment composer's local nodes get."""
    from composer.targets.local import session_env as node_session_env

    return node_session_env()


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


@dataclass(frozen=True)
class BareNode:
    rank: int
    address: str
    port: int
    directory: Path
    host_key: str

    @property
    def work(self) -> Path:
        return self.directory / "work"

    @property
    def known_hosts_line(self) -> str:
        kind, blob = self.host_key.split()[:2]
        return f"[{self.address}]:{self.port} {kind} {blob}"


@contextlib.contextmanager
def connected(root: Path, nodes: int, port: int,
              sweep: bool = False) -> Iterator[tuple[BareCluster, list[Session]]]:
    """A started bare cluster of ``nodes`` under ``root`` on ``port``, and a session to
    each node; the sessions closed and the sshds stopped after (what the nodes' sessions
    left swept too with ``sweep``, and always when the block failed)."""
    cluster = BareCluster(root, pick_addresses(nodes, port), port)
    opened: list[Session] = []
    failed = False
    try:
        cluster.create()
        cluster.start()
        opened.extend(cluster.session(bare.rank) for bare in cluster.nodes)
        yield cluster, opened
    except BaseException:
        failed = True
        raise
    finally:
        for session in opened:
            session.close()
        cluster.stop(sweep=sweep or failed)


class BareCluster:
    """``create`` writes keys and configs, ``start`` brings the sshds up, ``stop`` ends them."""

    def __init__(self, root: Path, addresses: Sequence[str], port: int,
                 env: Mapping[str, str] | None = None) -> None:
        self.root = root
        self.addresses = tuple(addresses)
        self.port = port
        self.env = dict(env if env is not None else session_env())
        self.user = getpass.getuser()
        self.sshd = find_sshd()
        self.client_key = root / "keys" / "client"
        self.known_hosts = root / "keys" / "known_hosts"
        self.nodes: list[BareNode] = []
        self.pids: list[int] = []

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        client_pub = generate_keypair(self.client_key, "bench-client")
        for rank, address in enumerate(self.addresses):
            directory = self.root / f"node-{rank}"
            host_key = generate_keypair(directory / "ssh_host_ed25519_key", f"node-{rank}")
            node = BareNode(rank, address, self.port, directory, host_key)
            (node.work / "outputs").mkdir(parents=True)
            (directory / "authorized_keys").write_text(client_pub + "\n")
            (directory / "sshd_config").write_text(self._config(node))
            self.nodes.append(node)
        self.known_hosts.write_text("".join(n.known_hosts_line + "\n" for n in self.nodes))

    def _config(self, node: BareNode) -> str:
        d = node.directory
        env = {
            "COMPOSER_NODE_ADDR": node.address, "COMPOSER_NODE_RANK": str(node.rank),
            "COMPOSER_NODE_DIR": str(d), "COMPOSER_WORK_DIR": str(node.work), **self.env,
        }
        set_env = " ".join(f'"{k}={v}"' for k, v in env.items())
        return "\n".join([
            f"ListenAddress {node.address}:{node.port}",
            f"HostKey {d}/ssh_host_ed25519_key",
            f"PidFile {d}/sshd.pid",
            f"AuthorizedKeysFile {d}/authorized_keys",
            "PubkeyAuthentication yes", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password",
            "UsePAM no", "StrictModes no", "PrintMotd no", "AllowTcpForwarding no",
            "X11Forwarding no", "MaxStartups 256:30:512", "MaxSessions 256", "LogLevel ERROR",
            "Subsystem sftp internal-sftp",
            f"SetEnv {set_env}",
            "",
        ])

    def start(self) -> None:
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        procs = [
            subprocess.Popen(
                [self.sshd, "-f", str(n.directory / "sshd_config"),
                 "-E", str(n.directory / "sshd.log")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
            for n in self.nodes
        ]
        failed = []
        deadline = time.monotonic() + START_TIMEOUT_S
        for node, proc in zip(self.nodes, procs, strict=True):
            _, err = proc.communicate(timeout=START_TIMEOUT_S)
            if proc.returncode != 0:
                failed.append(f"node {node.rank}: {err.decode(errors='replace').strip()}")
                continue
            pid = self._pid(node, deadline)
            if pid is None:
                failed.append(f"node {node.rank}: no pid file")
            else:
                self.pids.append(pid)
        if failed:
            raise BareError("sshd did not start: " + "; ".join(failed))
        for node in self.nodes:
            self._wait_tcp(node, deadline)

    @staticmethod
    def _pid(node: BareNode, deadline: float) -> int | None:
        pidfile = node.directory / "sshd.pid"
        while True:
            with contextlib.suppress(OSError, ValueError):
                return int(pidfile.read_text().strip())
            if time.monotonic() > deadline:
                return None
            time.sleep(0.005)

    def _wait_tcp(self, node: BareNode, deadline: float) -> None:
        while True:
            try:
                with socket.create_connection((node.address, node.port), timeout=1.0):
                    return
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise BareError(f"node {node.rank}: no TCP on {node.address}") from exc
                time.sleep(0.005)

    def ssh_options(self) -> list[str]:
        return [
            "-i", str(self.client_key), "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR",
        ]

    def ssh_argv(self, rank: int, command: str) -> list[str]:
        node = self.nodes[rank]
        return ["ssh", *self.ssh_options(), "-p", str(self.port),
                f"{self.user}@{node.address}", command]

    def scp_argv(self, rank: int, remote: str, local: Path) -> list[str]:
        node = self.nodes[rank]
        return ["scp", "-q", *self.ssh_options(), "-P", str(self.port),
                f"{self.user}@[{node.address}]:{shlex.quote(remote)}", str(local)]

    def ssh_wrapper(self, path: Path) -> Path:
        """An executable ``ssh`` for mpirun: the client key, pinned host keys, the port."""
        opts = [*self.ssh_options(), "-p", str(self.port)]
        path.write_text(f'#!/bin/sh\nexec ssh {shlex.join(opts)} "$@"\n')
        path.chmod(0o755)
        return path

    def session(self, rank: int) -> Session:
        """A connected composer session to node ``rank`` (the client key, its pinned
        host key), as composer's own runs hold one."""
        from composer.remote import Node, Session

        bare = self.nodes[rank]
        node = Node(rank=bare.rank, name=f"node-{bare.rank}", address=bare.address,
                    port=bare.port, host_key=bare.host_key, work_dir=str(bare.work), slots=1)
        session = Session(node, self.client_key)
        session.connect()
        return session

    def hostfile(self, path: Path, slots: int = 1) -> Path:
        path.write_text("".join(f"{n.address} slots={slots}\n" for n in self.nodes))
        return path

    def stop(self, sweep: bool = False) -> None:
        """End every sshd (and, with ``sweep``, whatever the nodes' sessions left)."""
        for node in self.nodes:
            pid = self._pid(node, 0.0)
            if pid is not None and pid not in self.pids:
                self.pids.append(pid)
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for pid in self.pids:
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.005)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.pids = []
        if sweep:
            self._sweep()
        shutil.rmtree(self.root, ignore_errors=True)

    def _sweep(self) -> None:
        """End what the nodes' sessions left: SIGTERM first, so shells run their exit traps."""
        marks = {f"COMPOSER_NODE_DIR={n.directory}".encode() for n in self.nodes}
        pids: list[int] = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                entries = set((proc / "environ").read_bytes().split(b"\0"))
            except OSError:
                continue
            if entries & marks:
                pids.append(int(proc.name))
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = [p for p in pids if _alive(p)]
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while any(_alive(p) for p in pids) and time.monotonic() < deadline:
                time.sleep(0.05)

    def __enter__(self) -> BareCluster:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop(sweep=kind is not None)
