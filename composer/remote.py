"""SSH to the nodes: paramiko, host keys pinned, commands fanned out in parallel."""

from __future__ import annotations

import base64
import getpass
import io
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, TypeVar

from composer.errors import SSHError
from composer.lazyimport import lazy

paramiko = lazy("paramiko")

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
    #: Login user (cloud images have their own); None: the user composer runs as.
    user: str | None = None
    #: Where the other nodes reach this one (a cloud node's private address).
    peer_address: str | None = None

    @classmethod
    def from_output(cls, data: dict[str, Any]) -> Node:
        return cls(
            rank=int(data["rank"]), name=str(data["name"]), address=str(data["address"]),
            port=int(data["port"]), host_key=str(data["host_key"]),
            work_dir=str(data["work_dir"]), slots=int(data["slots"]),
            user=str(data["user"]) if data.get("user") else None,
            peer_address=str(data["peer_address"]) if data.get("peer_address") else None,
        )

    @property
    def peer(self) -> str:
        """The address the other nodes (mpirun, the workload) use for this node."""
        return self.peer_address or self.address


def host_id(address: str, port: int) -> str:
    """A host as known_hosts names it: the bare address on port 22, else ``[address]:port``."""
    return address if port == 22 else f"[{address}]:{port}"


def known_hosts(nodes: Iterable[Node], peers: bool = False) -> str:
    """A known_hosts file holding exactly the nodes' pinned host keys; with ``peers``,
    under the addresses the nodes reach each other on as well."""
    lines: list[str] = []
    for n in nodes:
        kind, blob = n.host_key.split()[:2]
        names = [n.address] + ([n.peer] if peers and n.peer != n.address else [])
        lines += [f"{host_id(a, n.port)} {kind} {blob}\n" for a in names]
    return "".join(lines)


def fan_out(fn: Callable[[T], R], items: Iterable[T], workers: int = 64) -> list[R]:
    """``fn`` over ``items`` in parallel threads; results in order, first error raised."""
    items = list(items)
    if not items:
        return []
    pool = ThreadPoolExecutor(max_workers=min(workers, len(items)))
    try:
        return list(pool.map(fn, items))
    finally:
        # On an error or a signal, return at once: a worker still reading from a node
        # ends when the teardown closes its session, and must not hold the run up.
        pool.shutdown(wait=False, cancel_futures=True)


LINE_CAP = 64 * 1024
STOP_GRACE_S = 5.0
LineSink = Callable[[bytes, bytes | None], None]
_LINE_END = re.compile(rb"\r\n|\r|\n")


class LineSplitter:
    """Bytes in, lines out, in time linear in the input and memory bounded by ``cap``.

    ``emit(data, end)`` gets each line without its terminator; ``end`` is the
    terminator (``b"\\n"``, ``b"\\r\\n"``, or ``b"\\r"``: a progress bar's update
    counts as a line), ``b""`` for a last line without one, or None for a piece of a
    line longer than ``cap`` whose rest follows. ``data + end`` over all calls is the
    input, byte for byte.
    """

    def __init__(self, emit: LineSink, cap: int = LINE_CAP) -> None:
        self.emit, self.cap = emit, cap
        self.pieces: list[bytes] = []
        self.size = 0
        self.cr = False  # the held line ended with \r, and a \n may follow in the next chunk

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        start = 0
        if self.cr:
            self.cr = False
            lf = chunk.startswith(b"\n")
            self._flush(b"\r\n" if lf else b"\r")
            start = 1 if lf else 0
        for match in _LINE_END.finditer(chunk, start):
            if match.end() == len(chunk) and match.group() == b"\r":
                self._hold(chunk[start:match.start()])
                self.cr = True
                return
            self._hold(chunk[start:match.start()])
            self._flush(match.group())
            start = match.end()
        self._hold(chunk[start:])

    def close(self) -> None:
        if self.cr:
            self.cr = False
            self._flush(b"\r")
        elif self.size:
            self._flush(b"")

    def _hold(self, data: bytes) -> None:
        if not data:
            return
        self.pieces.append(data)
        self.size += len(data)
        if self.size > self.cap:
            line = b"".join(self.pieces)
            cut = len(line) - len(line) % self.cap
            for at in range(0, cut, self.cap):
                self.emit(line[at:at + self.cap], None)
            rest = line[cut:]
            self.pieces, self.size = ([rest] if rest else []), len(rest)

    def _flush(self, end: bytes) -> None:
        line = b"".join(self.pieces)
        self.pieces, self.size = [], 0
        self.emit(line, end)


def send_signal(channel: paramiko.Channel, name: str) -> None:
    """Ask sshd to signal the command's process group (RFC 4254 6.9; OpenSSH puts
    every session in its own process group)."""
    if channel.closed:
        return
    message = paramiko.Message()
    message.add_byte(paramiko.common.cMSG_CHANNEL_REQUEST)
    message.add_int(channel.remote_chanid)
    message.add_string("signal")
    message.add_boolean(False)
    message.add_string(name)
    try:
        channel.transport._send_user_message(message)  # type: ignore[union-attr]
    except (OSError, EOFError, paramiko.SSHException):
        return


class _Stopping:
    """A command being stopped: TERM at once, KILL after the grace time, then give up."""

    def __init__(self, signal: Callable[[str], None]) -> None:
        self.signal = signal
        self.started = time.monotonic()
        self.killed = False
        self.gave_up = False
        signal("TERM")

    def step(self) -> bool:
        """True once there is no point in waiting any longer."""
        waited = time.monotonic() - self.started
        if not self.killed and waited > STOP_GRACE_S:
            self.killed = True
            self.signal("KILL")
        if waited > 2 * STOP_GRACE_S:
            self.gave_up = True
            return True
        return False


#: After a command's exit status, how long its output may still be arriving.
OUTPUT_GRACE_S = 2.0


class Session:
    """One pinned SSH connection to one node."""

    def __init__(self, node: Node, key_path: Path, user: str | None = None) -> None:
        self.node = node
        self.key_path = key_path
        self.key = paramiko.Ed25519Key.from_private_key_file(str(key_path))
        self.user = user or node.user or getpass.getuser()
        self.client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._lock = threading.Lock()

    def _client(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        kind, blob = self.node.host_key.split()[:2]
        pinned = paramiko.PKey.from_type_string(kind, base64.b64decode(blob))
        client.get_host_keys().add(host_id(self.node.address, self.node.port), kind, pinned)
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
            on_line: LineSink | None = None,
            timeout: float | None = None, stop: threading.Event | None = None,
            kill: Callable[[str], str] | None = None) -> int:
        """Run ``command`` (a shell string); stream merged output; return the exit code.

        ``on_line`` gets the output split into lines (see ``LineSplitter``). When
        ``stop`` is set the command is signalled (TERM, then KILL after
        ``STOP_GRACE_S``) and the code it ends with is returned (-1 after a signal);
        when ``timeout`` passes it gets TERM and TimeoutError is raised. Signals go
        through the channel, which sshd honours for users other than root, and with
        ``kill(signal)``, a shell command run on the node beside it.
        """
        channel = self._require().get_transport().open_session()  # type: ignore[union-attr]
        channel.set_combine_stderr(True)
        channel.exec_command(command)
        channel.shutdown_write()
        deadline = None if timeout is None else time.monotonic() + timeout
        splitter = LineSplitter(on_line) if on_line is not None else None
        stopping: _Stopping | None = None
        exited_at: float | None = None
        while True:
            if channel.recv_ready():
                chunk = channel.recv(65536)
                if out is not None:
                    out.write(chunk)
                    out.flush()
                if splitter is not None:
                    splitter.feed(chunk)
                continue
            if channel.exit_status_ready():
                # sshd may send the exit status before the last of the output: wait for
                # the end of the output too, a while (a daemon the command left may hold
                # it open for ever).
                exited_at = exited_at or time.monotonic()
                if channel.eof_received or time.monotonic() - exited_at > OUTPUT_GRACE_S:
                    if not channel.recv_ready():
                        break
                    continue
            if channel.closed or not channel.get_transport().is_active():
                raise SSHError(self.node.name, "connection to the node was lost")
            if stop is not None and stop.is_set():
                stopping = stopping or _Stopping(lambda sig: self._signal(channel, sig, kill))
                if stopping.step():
                    break
            elif deadline is not None and time.monotonic() > deadline:
                self._signal(channel, "TERM", kill)
                channel.close()
                raise TimeoutError(f"{self.node.name}: command timed out")
            if exited_at is None:
                channel.status_event.wait(0.05)
            else:
                time.sleep(0.01)  # the status is in; the rest of the output may not be
        if splitter is not None:
            splitter.close()
        code = -1 if stopping is not None and stopping.gave_up else channel.recv_exit_status()
        channel.close()
        if code == -1 and stopping is None and \
                not channel.get_transport().is_active():  # type: ignore[union-attr]
            raise SSHError(self.node.name, "connection to the node was lost")
        return code

    def _signal(self, channel: paramiko.Channel, name: str,
                kill: Callable[[str], str] | None) -> None:
        if self.user != "root":  # sshd refuses signals to root's sessions
            send_signal(channel, name)
        if kill is None:
            return
        try:
            self.run(kill(name), out=io.BytesIO(), timeout=10)
        except (SSHError, TimeoutError, OSError, EOFError, paramiko.SSHException):
            return

    def push(self, command: str, data: bytes | BinaryIO, timeout: float = 300.0,
             on_channel: Callable[[paramiko.Channel], None] | None = None,
             on_sent: Callable[[int], None] | None = None, chunk: int = 1 << 16) -> None:
        """Run ``command`` with ``data`` (bytes, or a stream read in ``chunk`` pieces) on
        its stdin, for instance ``tar -x``; ``on_channel`` gets the channel once open (to
        close it from elsewhere), ``on_sent`` each piece's size. SSHError on failure."""
        channel = self._require().get_transport().open_session()  # type: ignore[union-attr]
        if on_channel is not None:
            on_channel(channel)
        channel.set_combine_stderr(True)
        channel.settimeout(timeout)
        channel.exec_command(command)
        source = io.BytesIO(data) if isinstance(data, bytes) else data
        cut: OSError | None = None
        try:
            while piece := source.read(chunk):
                channel.sendall(piece)
                if on_sent is not None:
                    on_sent(len(piece))
            channel.shutdown_write()
        except OSError as exc:  # the command ended early: its status and output say why
            cut = exc
        output = bytearray()
        while received := channel.recv(65536):
            output += received
        code = channel.recv_exit_status()
        channel.close()
        if code != 0 or cut is not None:
            text = output.decode("utf-8", "replace").strip()
            why = f" (input cut short: {cut})" if cut is not None else ""
            raise SSHError(self.node.name,
                           f"{command!r} failed (exit {code}){why}: {text[-2000:]}")

    def check(self, command: str, timeout: float = 120.0) -> str:
        """Run ``command``; return its output; SSHError when it fails."""
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
                 user: str | None = None, settle: bool = False,
                 on_ready: Callable[[int, int], None] | None = None) -> list[Session]:
    """Connect to every node in parallel, retrying until ``overall_timeout``.

    A host key that is not the pinned one is refused at once, unless ``settle``: a
    node whose boot installs the run's key after its sshd started answers with the
    image's own key for a while. Paramiko checks the host key before it authenticates,
    so such a node is sent nothing; it is asked again until ``overall_timeout``.
    ``on_ready(ready, total)`` is told each time one more node answers."""
    deadline = time.monotonic() + overall_timeout
    count = [0]
    count_lock = threading.Lock()

    def answered() -> None:
        if on_ready is not None:
            with count_lock:
                count[0] += 1
                on_ready(count[0], len(nodes))

    if on_ready is not None:
        on_ready(0, len(nodes))

    def attempt(node: Node) -> Session:
        last: Exception | None = None
        tries = 0
        while time.monotonic() < deadline:
            session = Session(node, key_path, user)
            try:
                session.connect(timeout=min(10.0, max(1.0, deadline - time.monotonic())))
                answered()
                return session
            except SSHError as exc:
                if not settle:
                    raise
                last = exc
                tries += 1
                time.sleep(min(2.0, 0.1 * 1.3 ** tries))
                continue
            except (TimeoutError, OSError, paramiko.SSHException, EOFError) as exc:
                last = exc
                tries += 1  # fast at first (a local sshd), then every 2 s (a booting VM)
                time.sleep(min(2.0, 0.1 * 1.3 ** tries))
        if isinstance(last, SSHError):
            said = last.message.removeprefix(f"{node.name}: ")
            raise SSHError(node.name, f"{said} (still, after {overall_timeout:.0f}s)",
                           hint="the node's boot never installed the run's host key (its "
                                "startup script may have failed: see the VM's serial "
                                "console), or it is not the node composer created; it was "
                                "torn down")
        raise SSHError(
            node.name, f"no SSH on {node.address}:{node.port} after {overall_timeout:.0f}s: {last}"
        )

    return fan_out(attempt, nodes)
