"""One command per node for its facts and its Python environment (composer/nodeprobe.py),
run by this machine's sh with the real facts script and environment probe."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from composer import nodeprobe
from composer.remote import Node

KEY = "ssh-ed25519 AAAA"


def node(rank: int) -> Node:
    return Node(rank, f"node-{rank}", f"127.0.0.{rank + 2}", 22, KEY, f"/w/{rank}", 1)


@dataclass
class LocalShell:
    """A node's session whose commands run in this machine's sh, counted."""

    node: Node
    commands: list[str] = field(default_factory=list)

    def check(self, command: str, timeout: float) -> str:
        self.commands.append(command)
        done = subprocess.run(["sh", "-c", command], capture_output=True, text=True,
                              timeout=timeout, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout


def workload_env() -> dict[str, str]:
    return {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def test_facts_and_environment_come_back_from_one_command() -> None:
    shells = [LocalShell(node(r)) for r in range(2)]
    probes = nodeprobe.probe_nodes(shells, None, workload_env(), shared_host=False)  # type: ignore[arg-type]
    assert [len(s.commands) for s in shells] == [1, 1]
    for rank, found in enumerate(probes):
        assert found.facts["name"] == f"node-{rank}" and found.facts["cpus"] >= 1
        assert found.environment is not None and found.environment.error is None
        assert found.environment.packages.get("paramiko"), "the probe ran in this venv"
        assert "probed_on" not in found.facts


def test_a_shared_host_is_asked_once_and_recorded_for_each_node() -> None:
    shells = [LocalShell(node(r)) for r in range(3)]
    probes = nodeprobe.probe_nodes(shells, None, workload_env(), shared_host=True)  # type: ignore[arg-type]
    assert [len(s.commands) for s in shells] == [1, 0, 0]
    assert [p.facts["name"] for p in probes] == ["node-0", "node-1", "node-2"]
    assert [p.facts["rank"] for p in probes] == [0, 1, 2]
    assert [p.facts.get("probed_on") for p in probes] == [None, "node-0", "node-0"]
    assert probes[2].facts["address"] == "127.0.0.4" == probes[2].facts["node_addr"]
    assert probes[1].facts["hostname"] == probes[0].facts["hostname"]
    assert probes[1].environment is probes[0].environment


def test_without_an_environment_only_the_facts_are_asked() -> None:
    shell = LocalShell(node(0))
    (found,) = nodeprobe.probe_nodes([shell], None, None, shared_host=True)  # type: ignore[list-item]
    assert found.environment is None and found.facts["cpus"] >= 1
    assert nodeprobe.FACTS_END not in shell.commands[0]


def test_a_probe_that_prints_no_result_is_an_error_entry_not_a_crash() -> None:
    # no python on the PATH: the facts still parse, the environment says why it has none
    shell = LocalShell(node(0))
    (found,) = nodeprobe.probe_nodes([shell], None, {"PATH": "/nonexistent"},  # type: ignore[list-item]
                                     shared_host=False)
    assert found.facts["cpus"] >= 1
    assert found.environment is not None and found.environment.error
    assert "python" in found.environment.error


def test_split_keeps_the_parts_apart() -> None:
    end = nodeprobe.FACTS_END
    assert nodeprobe.split(f"cpus=2\n{end}\n{{}}\n") == ("cpus=2", "{}\n")
    assert nodeprobe.split("cpus=2\n") == ("cpus=2\n", None)
    assert nodeprobe.split(f"{end}\n{{}}") == ("", "{}")
