"""SSH to the nodes: paramiko, host keys pinned, commands fanned out in parallel."""

from __future__ import annotations

import base64
import getpass
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import paramiko

from composer.errors import SSHError

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Node:
    """One node of the inventory the target's Terraform module outputs."""

    rank: int
    name: str
    address: str
    port: int
    host_key: str
    work_dir: str
    slots: int

    @classmethod
    def from_output(cls, data: dict[str, Any]) -> Node:
        return cls(
            rank=int(data["rank"]), name=str(data["name"]), address=str(data["address"]),
            port=int(data["port"]), host_key=str(data["host_key"]),
            work_dir=str(data["work_dir"]), slots=int(data["slots"]),
        )

    @property
    def known_hosts_line(self) -> str:
        kind, blob = self.host_key.split()[:2]
        return f"[{self.address}]:{self.port} {kind} {blob}"


def fan_out(fn: Callable[[T], R], items: Iterable[T], workers: int = 64) -> list[R]:
    """``fn`` over ``items`` in parallel threads; results in order, first error raised."""
    items = list(items)
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(fn, items))


class Session:
    """One pinned SSH connection to one node."""

    def __init__(self, node: Node, key_path: Path, user: str | None = None) -> None:
        self.node = node
        self.key_path = key_path
        self.key = paramiko.Ed25519Key.from_private_key_file(str(key_path))
        self.user = user or getpass.getuser()
        self.client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._lock = threading.Lock()

    def _client(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        kind, blob = self.node.host_key.split()[:2]
        pinned = paramiko.PKey.from_type_string(kind, base64.b64decode(blob))
        client.get_host_keys().add(f"[{self.node.address}]:{self.node.port}", kind, pinned)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        return client

    def connect(self, timeout: float = 10.0) -> None:
        client = self._client()
        try:
            client.connect(
                self.node.address, port=self.node.port, username=self.user, pkey=self.key,
                timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
                look_for_keys=False, allow_agent=False,
            )
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise SSHError(
                self.node.name,
                f"host key of {self.node.address} does not match the pinned key; refusing",
                hint="the node is not the one composer created; it was torn down",
            ) from exc
        except (OSError, paramiko.SSHException, EOFError):
            client.close()
            raise
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(15)
        self.client = client

    @property
    def sftp(self) -> paramiko.SFTPClient:
        with self._lock:
            if self._sftp is None:
                self._sftp = self._require().open_sftp()
            return self._sftp

    def _require(self) -> paramiko.SSHClient:
        if self.client is None:
            raise SSHError(self.node.name, "not connected")
        return self.client

    def run(self, command: str, out: IO[bytes] | None = None,
            on_line: Callable[[bytes], None] | None = None,
            timeout: float | None = None) -> int:
        """Run ``command`` (a shell string); stream merged output; return the exit code."""
        channel = self._require().get_transport().open_session()  # type: ignore[union-attr]
        channel.set_combine_stderr(True)
        channel.exec_command(command)
        channel.shutdown_write()
        deadline = None if timeout is None else time.monotonic() + timeout
        pending = b""
        while True:
            if channel.recv_ready():
                chunk = channel.recv(65536)
                if out is not None:
                    out.write(chunk)
                    out.flush()
                if on_line is not None:
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        on_line(line)
                continue
            if channel.exit_status_ready() and not channel.recv_ready():
                break
            if channel.closed or not channel.get_transport().is_active():
                raise SSHError(self.node.name, "connection to the node was lost")
            if deadline is not None and time.monotonic() > deadline:
                channel.close()
                raise TimeoutError(f"{self.node.name}: command timed out")
            channel.status_event.wait(0.05)
        if on_line is not None and pending:
            on_line(pending)
        code = channel.recv_exit_status()
        channel.close()
        if code == -1 and not channel.get_transport().is_active():  # type: ignore[union-attr]
            raise SSHError(self.node.name, "connection to the node was lost")
        return code

    def push(self, command: str, data: bytes, timeout: float = 300.0) -> None:
        """Run ``command`` with ``data`` on its stdin (for instance ``tar -x``)."""
        channel = self._require().get_transport().open_session()  # type: ignore[union-attr]
        channel.set_combine_stderr(True)
        channel.settimeout(timeout)
        channel.exec_command(command)
        channel.sendall(data)
        channel.shutdown_write()
        output = b""
        while chunk := channel.recv(65536):
            output += chunk
        code = channel.recv_exit_status()
        channel.close()
        if code != 0:
            text = output.decode("utf-8", "replace").strip()
            raise SSHError(self.node.name, f"{command!r} failed (exit {code}): {text[-2000:]}")

    def check(self, command: str, timeout: float = 120.0) -> str:
        """Run ``command``; return its output; SSHError when it fails."""
        import io

        buf = io.BytesIO()
        code = self.run(command, out=buf, timeout=timeout)
        text = buf.getvalue().decode("utf-8", "replace")
        if code != 0:
            raise SSHError(self.node.name, f"command failed (exit {code}): {text.strip()[-2000:]}")
        return text

    def close(self) -> None:
        if self._sftp is not None:
            self._sftp.close()
        if self.client is not None:
            self.client.close()


def wait_for_ssh(nodes: list[Node], key_path: Path, overall_timeout: float = 60.0,
                 user: str | None = None) -> list[Session]:
    """Connect to every node in parallel, retrying until ``overall_timeout``."""
    deadline = time.monotonic() + overall_timeout

    def attempt(node: Node) -> Session:
        last: Exception | None = None
        while time.monotonic() < deadline:
            session = Session(node, key_path, user)
            try:
                session.connect(timeout=min(10.0, max(1.0, deadline - time.monotonic())))
                return session
            except SSHError:
                raise
            except (TimeoutError, OSError, paramiko.SSHException, EOFError) as exc:
                last = exc
                time.sleep(0.1)
        raise SSHError(
            node.name, f"no SSH on {node.address}:{node.port} after {overall_timeout:.0f}s: {last}"
        )

    return fan_out(attempt, nodes)
