"""Which processes are a run's nodes: the sshd with the run's exact config, nothing else."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from composer.procs import node_processes


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait(timeout=10)


def test_only_an_sshd_with_the_exact_config_is_a_node(tmp_path: Path,
                                                      spawned: list[subprocess.Popen[bytes]]
                                                      ) -> None:
    run = tmp_path / "work" / "run-1"
    node = run / "nodes" / "node-0"
    node.mkdir(parents=True)
    (node / "sshd.log").write_text("")
    config = node / "sshd_config"
    # A stand-in whose executable is named sshd and that keeps its arguments.
    fake = tmp_path / "bin" / "sshd"
    fake.parent.mkdir()
    shutil.copy("/bin/sh", fake)

    def start(*argv: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(list(argv))
        spawned.append(proc)
        return proc

    node_sshd = start(str(fake), "-c", "sleep 30; :", "-f", str(config))
    start("tail", "-f", str(node / "sshd.log"))
    start("sh", "-c", "sleep 30; :", "sshd", "-f", str(config))
    start(str(fake), "-c", "sleep 30; :", "-f", str(config) + ".bak")
    start(str(fake), "-c", "sleep 30; :", "-f", str(run / "nodes" / "node-0x" / "sshd_config"))
    time.sleep(0.3)
    assert node_processes(run) == [node_sshd.pid]
