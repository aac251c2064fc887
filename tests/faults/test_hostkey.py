"""A node whose host key changed after apply is refused: pinned keys, no trust on first use."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .conftest import Tally
from .util import (
    SSHD,
    assert_gone,
    final_json,
    process_alive,
    record_json,
    simple_job,
    start_up,
    wait_for,
    write_job,
)

if TYPE_CHECKING:
    from tests.conftest import Composer

pytestmark = pytest.mark.integration


def listening(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def swap_host_key(node: Path) -> None:
    """Give the node a new host key and restart its sshd with it."""
    config = node / "sshd_config"
    listen = re.search(r"^ListenAddress (\S+):(\d+)$", config.read_text(), re.M)
    assert listen is not None
    address, port = listen.group(1), int(listen.group(2))
    pid_file = node / "sshd.pid"
    old = read_pid(pid_file)
    assert old is not None and process_alive(old)
    key = node / "ssh_host_ed25519_key"
    key.unlink()
    key.with_name(key.name + ".pub").unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    os.kill(old, signal.SIGTERM)
    wait_for(lambda: not process_alive(old), 30, f"the old sshd ({old}) to exit")
    pid_file.unlink(missing_ok=True)
    subprocess.run([SSHD, "-f", str(config), "-E", str(node / "sshd.log")], check=True)

    def restarted() -> bool:
        pid = read_pid(pid_file)
        return pid is not None and pid != old and process_alive(pid)

    wait_for(restarted, 30, "the new sshd to write its pid file")
    wait_for(lambda: listening(address, port), 30, f"the new sshd on {address}:{port}")


def test_changed_host_key_is_refused(composer: Composer, tmp_path: Path, tally: Tally) -> None:
    with tally.check("host key"):
        job = write_job(tmp_path / "job", simple_job("host-key", 2, "echo hi"))
        with start_up(composer, job, "up", COMPOSER_PAUSE_AT="wait_for_ssh") as up:
            marker = up.paused("wait_for_ssh")
            swap_host_key(marker.parent / "nodes" / "node-1")
            marker.unlink()
            done = up.finish()
        run_id = up.run_id
        assert run_id is not None
        assert done.returncode == 4, done.stderr
        assert "node-1" in done.stderr and "host key" in done.stderr
        assert "Traceback" not in done.stderr
        assert final_json(done.stdout)["status"] == "failed"
        result = record_json(composer, run_id, "result.json")
        assert result["status"] == "failed" and result["stage"] == "wait_for_ssh"
        assert "node-1" in result["error"] and "host key" in result["error"]
        assert result["teardown"]["status"] == "destroyed"
        assert_gone(composer, run_id)
