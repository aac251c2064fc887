"""Session.run against a scripted SSH channel: the order in which sshd's messages arrive
must not lose output."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any

from composer import remote
from composer.keys import generate_keypair
from composer.remote import Node, Session

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyBlobxxxxxxxxxxxxxxxxxxxxxxxxxxx node-0"


class ScriptedChannel:
    """Exit status first, then (``late`` seconds later) the last output, then EOF: the
    order sshd may use when the command's output is still buffered as it exits."""

    def __init__(self, late: float, tail: bytes, eof: bool = True) -> None:
        self.start = time.monotonic()
        self.late, self.tail, self.eof = late, tail, eof
        self.sent = False
        self.closed = False
        self.status_event = threading.Event()
        self.status_event.set()

    @property
    def eof_received(self) -> bool:
        return self.eof and self.sent

    def _due(self) -> bool:
        return time.monotonic() - self.start >= self.late

    def recv_ready(self) -> bool:
        return not self.sent and self._due()

    def recv(self, size: int) -> bytes:
        self.sent = True
        return self.tail

    def exit_status_ready(self) -> bool:
        return True

    def recv_exit_status(self) -> int:
        return 0

    def set_combine_stderr(self, on: bool) -> None: ...
    def exec_command(self, command: str) -> None: ...
    def shutdown_write(self) -> None: ...
    def close(self) -> None: ...

    def get_transport(self) -> Any:
        return self._transport

    _transport: Any = None


class Transport:
    def __init__(self, channel: ScriptedChannel) -> None:
        self.channel = channel
        channel._transport = self

    def open_session(self) -> ScriptedChannel:
        return self.channel

    def is_active(self) -> bool:
        return True


class Client:
    def __init__(self, channel: ScriptedChannel) -> None:
        self.transport = Transport(channel)

    def get_transport(self) -> Transport:
        return self.transport


def session(tmp_path: Path, channel: ScriptedChannel) -> Session:
    generate_keypair(tmp_path / "client", "test")
    node = Node(rank=0, name="node-0", address="127.0.0.1", port=22, host_key=KEY,
                work_dir="/w", slots=1)
    s = Session(node, tmp_path / "client")
    s.client = Client(channel)  # type: ignore[assignment]
    return s


def test_output_after_the_exit_status_is_kept(tmp_path: Path) -> None:
    out = io.BytesIO()
    code = session(tmp_path, ScriptedChannel(0.3, b"last line\n")).run("cmd", out=out)
    assert (code, out.getvalue()) == (0, b"last line\n")


def test_a_stream_left_open_by_a_daemon_ends_after_the_grace(tmp_path: Path,
                                                              monkeypatch: Any) -> None:
    monkeypatch.setattr(remote, "OUTPUT_GRACE_S", 0.5)
    out = io.BytesIO()
    started = time.monotonic()
    code = session(tmp_path, ScriptedChannel(0.1, b"x\n", eof=False)).run("cmd", out=out)
    waited = time.monotonic() - started
    assert (code, out.getvalue()) == (0, b"x\n")
    assert 0.5 <= waited < 5
