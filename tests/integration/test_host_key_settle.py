"""``wait_for_ssh(settle=True)``: a node that answers with another host key is refused
and asked again until its boot installs the pinned key (a GCE VM's sshd serves the
image's keys until the startup script has run); without ``settle``, refused at once.

A real OpenSSH sshd on loopback serves the keys; paramiko is the client.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from composer.errors import SSHError
from composer.keys import generate_keypair
from composer.remote import Node, wait_for_ssh

pytestmark = pytest.mark.integration

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """One sshd, restartable with another host key on the same address and port."""

    def __init__(self, root: Path, client_pub: str) -> None:
        self.root = root
        self.port = free_port()
        (root / "authorized_keys").write_text(client_pub + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, key: Path) -> None:
        config = self.root / "sshd_config"
        config.write_text("\n".join([
            f"ListenAddress 127.0.0.1:{self.port}", f"HostKey {key}",
            f"PidFile {self.root / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
            "PubkeyAuthentication yes", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password",
            "UsePAM no", "StrictModes no", "LogLevel ERROR", "",
        ]))
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)],
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"sshd did not listen on 127.0.0.1:{self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
        self.proc = None


@pytest.fixture()
def keys(tmp_path: Path) -> dict[str, Path]:
    paths = {}
    for name in ("client", "image", "pinned"):
        path = tmp_path / "keys" / name
        generate_keypair(path, name)
        paths[name] = path
    return paths


@pytest.fixture()
def server(tmp_path: Path, keys: dict[str, Path]) -> Iterator[Server]:
    if not os.access(SSHD, os.X_OK) or shutil.which("ssh-keygen") is None:
        pytest.skip("OpenSSH's sshd is not installed")
    pub = keys["client"].with_name("client.pub").read_text().strip()
    running = Server(tmp_path, pub)
    running.start(keys["image"])
    yield running
    running.stop()


def pinned_node(server: Server, keys: dict[str, Path]) -> Node:
    host_key = keys["pinned"].with_name("pinned.pub").read_text().split()
    return Node(rank=0, name="node-0", address="127.0.0.1", port=server.port,
                host_key=" ".join(host_key[:2]), work_dir="/tmp", slots=1,
                user=getpass.getuser())


def test_another_host_key_is_refused_at_once_without_settle(
        server: Server, keys: dict[str, Path]) -> None:
    started = time.monotonic()
    with pytest.raises(SSHError, match="does not match the pinned key"):
        wait_for_ssh([pinned_node(server, keys)], keys["client"], 30.0)
    assert time.monotonic() - started < 15


def test_settle_waits_for_the_pinned_key_then_connects(
        server: Server, keys: dict[str, Path]) -> None:
    def boot_installs_the_key() -> None:
        time.sleep(1.5)
        server.stop()
        server.start(keys["pinned"])

    swap = threading.Thread(target=boot_installs_the_key)
    swap.start()
    try:
        sessions = wait_for_ssh([pinned_node(server, keys)], keys["client"], 60.0, settle=True)
    finally:
        swap.join()
    try:
        assert sessions[0].check("echo ready").strip() == "ready"
    finally:
        for session in sessions:
            session.close()


def test_settle_still_refuses_a_key_that_never_changes(
        server: Server, keys: dict[str, Path]) -> None:
    with pytest.raises(SSHError, match=r"does not match the pinned key.*still, after 3s"):
        wait_for_ssh([pinned_node(server, keys)], keys["client"], 3.0, settle=True)
