"""The health gate through real runs of the local target: GPUs asked of a machine
without them, a peer whose sshd stopped after wait_for_ssh, and the gate turned off."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from composer import health as health_mod
from tests.faults.util import (
    assert_gone,
    final_json,
    read_record,
    record_files,
    record_json,
    simple_job,
    start_up,
    write_job,
)

if TYPE_CHECKING:
    from tests.conftest import Composer

pytestmark = pytest.mark.integration

# The GPU check counts what nvidia-smi lists on the nodes: here, on this machine.
needs_no_gpu = pytest.mark.skipif(shutil.which("nvidia-smi") is not None,
                                  reason="this machine has nvidia-smi: its GPUs would count")


@needs_no_gpu
def test_gpus_asked_of_a_machine_without_them_fail_at_health(composer: Composer,
                                                             tmp_path: Path) -> None:
    job = write_job(tmp_path / "job", simple_job(
        "gpu-ask", 2, "echo the workload ran", cluster={"gpus_per_node": 1}))
    done = composer.run("up", str(job), "--json")
    assert done.returncode == 4, done.stderr
    out = final_json(done.stdout)
    assert out["stage"] == "health" and out["failed_node"] == "node-0", out
    assert out["workload_exit_code"] is None
    assert out["error"].startswith("health check failed: node-0 has 0 of the 1 GPU "
                                   "cluster.gpus_per_node asks for"), out["error"]
    assert "cluster.gpus_per_node" in done.stderr and "the local target's nodes" in done.stderr
    run_id = out["run_id"]
    result = record_json(composer, run_id, "result.json")
    assert result["status"] == "failed" and result["stage"] == "health"
    assert result["composer_exit_code"] == 4 and result["teardown"]["status"] == "destroyed"
    assert "run" not in result["stages"] and "stage" not in result["stages"]
    health = record_json(composer, run_id, "health.json")
    assert health["status"] == "failed"
    assert health["gpus"]["status"] == "failed" and health["gpus"]["node"] == "node-0"
    assert health["gpus"]["nodes"] == {"node-0": 0, "node-1": 0}
    assert health["mesh"]["status"] == "passed"  # the mesh still ran, and passed
    assert not [f for f in record_files(composer, run_id) if f.startswith("logs/node-")]
    assert_gone(composer, run_id)


@needs_no_gpu
def test_an_mpi_run_short_of_gpus_fails_at_health_without_waiting_for_its_allreduce(
        composer: Composer, tmp_path: Path) -> None:
    # With mpi, the allreduce starts while the nodes are asked what they are; the GPU
    # check fails the gate, the allreduce's verdict is not waited for, nothing is left.
    job = write_job(tmp_path / "job", simple_job(
        "gpu-ask-mpi", 2, ["python", "-c", "print('the workload ran')"],
        cluster={"gpus_per_node": 1}, run={"launcher": "mpi"}))
    done = composer.run("up", str(job), "--json")
    assert done.returncode == 4, done.stderr
    out = final_json(done.stdout)
    assert out["stage"] == "health" and out["failed_node"] == "node-0", out
    run_id = out["run_id"]
    health = record_json(composer, run_id, "health.json")
    assert health["gpus"]["status"] == "failed"
    assert health["mpi"]["status"] == "not-judged", health["mpi"]
    result = record_json(composer, run_id, "result.json")
    assert result["teardown"]["status"] == "destroyed" and "run" not in result["stages"]
    assert_gone(composer, run_id)


def test_a_peer_whose_sshd_stopped_fails_naming_the_pair(composer: Composer,
                                                         tmp_path: Path) -> None:
    job = write_job(tmp_path / "job", simple_job("peer-down", 2, "echo the workload ran"))
    with start_up(composer, job, "up", COMPOSER_PAUSE_AT="health") as up:
        marker = up.paused("health")
        work = marker.parent
        # node-1's listening sshd goes; the session composer holds to node-1 stays.
        listener = int((work / "nodes" / "node-1" / "sshd.pid").read_text())
        os.kill(listener, signal.SIGTERM)
        marker.unlink()
        done = up.finish(timeout=120)
    assert done.returncode == 4, done.stderr
    out = final_json(done.stdout)
    run_id = work.name
    assert out["stage"] == "health" and out["failed_node"] == "node-1", out
    assert "node-0 cannot reach node-1 at 127." in out["error"], out["error"]
    health = record_json(composer, run_id, "health.json")
    mesh = health["mesh"]
    assert mesh["status"] == "failed"
    assert [(f["from"], f["to"]) for f in mesh["failed"]] == [("node-0", "node-1")]
    assert mesh["pairs"] == {"node-0": {"node-1": None}}
    # the local target's nodes are one machine: the head probes every other node
    assert mesh["scope"] == health_mod.SCOPE_HEAD
    assert record_json(composer, run_id, "result.json")["teardown"]["status"] == "destroyed"
    assert_gone(composer, run_id)


def test_health_false_skips_the_gate(composer: Composer, tmp_path: Path) -> None:
    # With the gate off, a GPU count this machine may lack is not checked either.
    job = write_job(tmp_path / "job", simple_job(
        "no-health", 2, "echo the workload ran", cluster={"gpus_per_node": 1},
        run={"health": False}))
    done = composer.run("up", str(job), "--json")
    assert done.returncode == 0, done.stderr
    run_id = final_json(done.stdout)["run_id"]
    result = record_json(composer, run_id, "result.json")
    assert "health" not in result["stages"] and "run" in result["stages"]
    assert "health.json" not in record_files(composer, run_id)
    assert "[health]" not in done.stderr
    assert "the workload ran" in read_record(composer, run_id, "logs/node-1.log")
