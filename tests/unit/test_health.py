"""The health gate's parts: the mesh probe (run by this machine's sh and python3 against
real sockets), the GPU count, the allreduce's failures as mpirun reports them."""

from __future__ import annotations

import shlex
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from composer import health
from composer.launch import mpirun_argv
from composer.remote import LineSink, LineSplitter, Node

KEY = "ssh-ed25519 AAAA"


def node(rank: int, port: int, peer: str = "127.0.0.1") -> Node:
    return Node(rank, f"node-{rank}", "192.0.2.1", port, KEY, f"/w/{rank}", 1,
                peer_address=peer)


@dataclass
class LocalShell:
    """A node's session whose commands run in this machine's sh."""

    node: Node

    def check(self, command: str, timeout: float) -> str:
        done = subprocess.run(["sh", "-c", command], capture_output=True, text=True,
                              timeout=timeout, check=False)
        if done.returncode != 0:
            from composer.errors import SSHError

            raise SSHError(self.node.name, f"command failed (exit {done.returncode}): "
                                           f"{done.stdout}{done.stderr}".strip())
        return done.stdout


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something listens on (as a node's sshd would)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once it is closed


def test_mesh_names_the_pair_that_fails_and_times_the_rest(listening: int) -> None:
    nodes = [node(0, listening), node(1, closed_port()), node(2, listening)]
    entry = health.mesh_check([LocalShell(n) for n in nodes], None)  # type: ignore[misc]
    assert entry["status"] == "failed" and entry["pairs_checked"] == 6
    down = nodes[1].port
    assert [(f["from"], f["to"]) for f in entry["failed"]] == [("node-0", "node-1"),
                                                               ("node-2", "node-1")]
    assert entry["errors"] == [
        f"node-0 cannot reach node-1 at 127.0.0.1:{down} (Connection refused)",
        f"node-2 cannot reach node-1 at 127.0.0.1:{down} (Connection refused)"]
    assert entry["node"] == "node-1"
    assert entry["pairs"]["node-1"]["node-0"] > 0 and entry["pairs"]["node-0"]["node-2"] > 0
    assert entry["pairs"]["node-0"]["node-1"] is None


class Counting(LocalShell):
    """A LocalShell that counts the commands it was asked to run."""

    asked: int = 0

    def check(self, command: str, timeout: float) -> str:
        self.asked += 1
        return super().check(command, timeout)


def test_a_shared_host_mesh_is_probed_from_the_head_only(listening: int) -> None:
    nodes = [node(0, listening), node(1, closed_port()), node(2, listening)]
    shells = [Counting(n) for n in nodes]
    entry = health.mesh_check(shells, None, shared_host=True)  # type: ignore[arg-type]
    assert [s.asked for s in shells] == [1, 0, 0]
    assert entry["scope"] == health.SCOPE_HEAD and entry["pairs_checked"] == 2
    assert set(entry["pairs"]) == {"node-0"} and entry["pairs"]["node-0"]["node-2"] > 0
    # a peer the head cannot reach still fails the gate, naming it
    assert entry["status"] == "failed" and entry["node"] == "node-1"
    assert [(f["from"], f["to"]) for f in entry["failed"]] == [("node-0", "node-1")]
    full = health.mesh_check([LocalShell(n) for n in nodes], None)  # type: ignore[misc]
    assert full["scope"] == health.SCOPE_ALL and full["pairs_checked"] == 6


def test_mesh_probes_the_peer_address_not_the_login_address(listening: int) -> None:
    # The login address (192.0.2.1, TEST-NET) is never tried: a probe of it would time out.
    nodes = [node(0, listening), node(1, listening)]
    entry = health.mesh_check([LocalShell(n) for n in nodes], None)  # type: ignore[misc]
    assert entry["status"] == "passed" and "errors" not in entry and entry["seconds"] < 5


def test_a_node_that_cannot_run_the_probe_is_named(listening: int) -> None:
    nodes = [node(0, listening), node(1, listening)]
    entry = health.mesh_check([LocalShell(n) for n in nodes],  # type: ignore[misc]
                              "/nonexistent")
    assert entry["status"] == "failed" and entry["node"] == "node-0"
    assert entry["errors"][0].startswith("node-0 could not probe its peers: node-0: command "
                                         "failed (exit 127)")


def test_one_node_has_no_pairs() -> None:
    entry = health.mesh_check([LocalShell(node(0, 1))], None)  # type: ignore[misc]
    assert entry["status"] == "passed" and entry["pairs_checked"] == 0


def test_mesh_command_passes_peers_as_quoted_words() -> None:
    nodes = [node(0, 22, "10.0.0.1"), node(1, 22, "fd00::2"), node(2, 2222, "10.0.0.3")]
    words = shlex.split(health.mesh_command(nodes, nodes[0], "/opt/a b:/usr/bin"))
    assert words[0] == "PATH=/opt/a b:/usr/bin" and words[1:4] == ["python3", "-S", "-c"]
    assert words[-3:] == ["5", "node-1=fd00::2:22", "node-2=10.0.0.3:2222"]


def facts(*counts: int) -> list[dict[str, Any]]:
    return [{"name": f"node-{i}", "gpus": [{"name": "L4"}] * n} for i, n in enumerate(counts)]


def test_gpus_short_on_a_node_name_it_first() -> None:
    entry = health.gpu_check(facts(2, 1, 0, 1, 0, 2), 2)
    assert entry["status"] == "failed" and entry["node"] == "node-1"
    assert entry["nodes"] == {f"node-{i}": n for i, n in enumerate((2, 1, 0, 1, 0, 2))}
    assert entry["errors"] == ["node-1 has 1 of the 2 GPUs cluster.gpus_per_node asks for "
                               "(also short: node-2, node-3, node-4)"]
    many = health.gpu_check(facts(*[0] * 6), 1)
    assert many["errors"] == ["node-0 has 0 of the 1 GPU cluster.gpus_per_node asks for "
                              "(also short: node-1, node-2, node-3 and 2 more)"]


def test_gpus_at_least_as_many_as_asked_pass() -> None:
    assert health.gpu_check(facts(8, 4), 4)["status"] == "passed"
    assert health.gpu_check(facts(0, 0), 0)["status"] == "passed"


def test_mpirun_without_the_prelude_runs_the_command_as_it_is() -> None:
    argv = mpirun_argv("mpirun", "/w/hostfile", "/w/ssh", 4, ["PATH"], ["--mca", "btl", "tcp"],
                       ["python3", "-c", "print(1)"], as_root=False, prelude=False)
    assert argv[-5:] == ["btl", "tcp", "python3", "-c", "print(1)"]
    wrapped = mpirun_argv("mpirun", "/w/hostfile", "/w/ssh", 4, ["PATH"], [],
                          ["python3"], as_root=False)
    assert wrapped[wrapped.index("-x") + 2:][:2] == ["sh", "-c"]


# -- the allreduce's failures, as Open MPI 5 reports them --------------------------

DASHES = b"-" * 74
NON_ZERO = b"\n".join([
    DASHES,
    b"prterun detected that one or more processes exited with non-zero status,",
    b"thus causing the job to be terminated. The first process to do so was:",
    b"",
    b"   Process name: [prterun-vm-9710@1,3]",
    b"   Exit code:    1",
    DASHES,
])


class ReplayHead:
    """A head node whose mpirun printed ``outputs[i]`` and exited ``codes[i]``, in turn."""

    def __init__(self, outputs: list[bytes], codes: list[int]) -> None:
        self.node = node(0, 22)
        self.outputs, self.codes = outputs, codes
        self.commands: list[str] = []

    def run(self, command: str, on_line: LineSink, timeout: float | None) -> int:
        self.commands.append(command)
        splitter = LineSplitter(on_line)
        splitter.feed(self.outputs.pop(0))
        splitter.close()
        return self.codes.pop(0)


def mpi(head: ReplayHead) -> health.MpiCheck:
    return health.MpiCheck(head, lambda cmd: (["mpirun", *cmd], {"PATH": "/v/bin"}),  # type: ignore[arg-type]
                           2, ("node-0", "node-1"))


def test_a_rank_that_fails_is_named_with_its_node_and_last_line() -> None:
    output = (b"[1,3]<stderr>: Traceback (most recent call last):\n"
              b"[1,3]<stderr>: ModuleNotFoundError: No module named 'mpi4py'\n"
              b"[1,0]<stdout>: unrelated\n" + NON_ZERO + b"\n")
    entry = health.mpi_check(mpi(ReplayHead([output], [1])))
    assert entry["status"] == "failed" and entry["node"] == "node-1" and entry["ranks"] == 4
    assert entry["errors"] == ["the allreduce failed: rank 3 on node-1 exited with 1 "
                               "(ModuleNotFoundError: No module named 'mpi4py')"]
    assert "No module named 'mpi4py'" in entry["output"]


def test_daemons_that_failed_to_start_are_launched_once_more() -> None:
    good = b'[1,0]<stdout>: composer-mpi {"ranks": 4, "sum": 10, "allreduce_us": 12.5}\n'
    head = ReplayHead([b"A daemon failed to report back\n", good], [1, 0])
    entry = health.mpi_check(mpi(head))
    assert entry["status"] == "passed" and entry["launched_again"] is True
    assert entry["sum"] == 10 and entry["allreduce_us"] == 12.5
    assert len(head.commands) == 2 and head.commands[0].startswith("env PATH=/v/bin mpirun")


def test_mpirun_that_names_no_rank_blames_the_head() -> None:
    entry = health.mpi_check(mpi(ReplayHead([b"mpirun: cannot open hostfile\n"], [213])))
    assert entry["node"] == "node-0"
    assert entry["errors"] == ["the allreduce failed: mpirun on node-0 exited with 213 "
                               "(mpirun: cannot open hostfile)"]


def test_check_writes_the_report_before_it_fails() -> None:
    written: list[dict[str, Any]] = []
    said: list[str] = []
    with pytest.raises(health.HealthError) as failed:
        health.check([LocalShell(node(0, 1))], facts(0), 1, None,  # type: ignore[list-item]
                     lambda: health.mpi_check(mpi(ReplayHead([], []))), written.append,
                     said.append)
    assert failed.value.node == "node-0" and failed.value.exit_code == 4
    assert failed.value.message == ("health check failed: node-0 has 0 of the 1 GPU "
                                    "cluster.gpus_per_node asks for")
    assert "health = false" in (failed.value.hint or "")
    (report,) = written
    assert report["status"] == "failed" and report["schema_version"] == 1
    assert report["mpi"] == {"status": "not-judged", "why": "the GPUs or the mesh failed; "
                             "the allreduce started beside them was not waited for"}
    assert said and "nvidia-smi" in said[0]


def test_an_allreduce_started_early_is_not_waited_for_when_the_gpus_fail() -> None:
    written: list[dict[str, Any]] = []

    def still_running() -> dict[str, Any]:
        raise AssertionError("the gate waited for an allreduce it had no use for")

    with pytest.raises(health.HealthError) as failed:
        health.check([LocalShell(node(0, 1))], facts(0), 1, None,  # type: ignore[list-item]
                     still_running, written.append, lambda _: None)
    assert failed.value.node == "node-0"
    assert written[0]["mpi"]["status"] == "not-judged"


def test_an_allreduce_started_early_is_judged_once_the_rest_passed() -> None:
    good = b'[1,0]<stdout>: composer-mpi {"ranks": 4, "sum": 10, "allreduce_us": 12.5}\n'
    head = ReplayHead([good], [0])
    early = health.mpi_check(mpi(head))  # as run.py's background thread computes it
    written: list[dict[str, Any]] = []
    report = health.check([LocalShell(node(0, 1))], facts(0), 0, None,  # type: ignore[list-item]
                          lambda: early, written.append, lambda _: None)
    assert report.checks["mpi"]["status"] == "passed" and written[0]["status"] == "passed"
    bad = health.mpi_check(mpi(ReplayHead([b"mpirun: cannot open hostfile\n"], [213])))
    with pytest.raises(health.HealthError) as failed:
        health.check([LocalShell(node(0, 1))], facts(0), 0, None,  # type: ignore[list-item]
                     lambda: bad, written.append, lambda _: None)
    assert failed.value.node == "node-0" and written[-1]["mpi"]["status"] == "failed"
