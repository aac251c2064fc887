"""A node that dies mid-run, with [run] retries on node-lost: composer copies the
checkpoint back from the head, tears the cluster down, makes a new one and starts the
workload again, which resumes and ends with the model an uninterrupted run makes."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import ROOT

from .conftest import Tally
from .util import (
    Finished,
    assert_gone,
    final_json,
    read_record,
    record_files,
    record_json,
    start_up,
    wait_for,
    write_job,
)

if TYPE_CHECKING:
    from tests.conftest import Composer

pytestmark = pytest.mark.integration

EXAMPLE = ROOT / "examples" / "train-local"
EPOCHS = "3"
# The example's training, held for a while after each checkpoint of the first attempt,
# so that a node can be stopped mid-run; the next attempt runs straight through.
HELD = '''import os, sys, time
import train

save = train.save_checkpoint


def held(*args, **kwargs):
    save(*args, **kwargs)
    if os.environ.get("COMPOSER_ATTEMPT") == "1":
        time.sleep(60)


train.save_checkpoint = held
sys.exit(train.main())
'''


def stop_node(work: Path, rank: int) -> None:
    """The node dies: its sshd and everything it started, as test_node_death does."""
    script = work / "tf" / "modules" / "local-cluster" / "scripts" / "node.sh"
    env = {**os.environ, "NODE_DIR": str(work / "nodes" / f"node-{rank}"),
           "NODE_RUN_ID": work.name}
    stopped = subprocess.run(["sh", str(script), "stop"], env=env, capture_output=True,
                             text=True, timeout=60, check=False)
    assert stopped.returncode == 0, stopped.stderr


def uninterrupted(code: Path, out: Path) -> bytes:
    """The model two ranks make without a stop (mpirun here, as the nodes would)."""
    mpirun = [str(Path(sys.executable).parent / "mpirun"), "--oversubscribe", "-np", "2",
              "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", "lo"]
    if os.geteuid() == 0:
        mpirun.append("--allow-run-as-root")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OMPI_", "PMIX_", "PRTE_", "COMPOSER_"))}
    env.update(COMPOSER_OUTPUT_DIR=str(out), SEED="1234")
    done = subprocess.run([*mpirun, sys.executable, "train.py", "--epochs", EPOCHS], cwd=code,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return (out / "model.npz").read_bytes()


def held_job(tmp_path: Path, name: str, outputs: list[str], **run: object) -> Path:
    """The example's training, held after each first-attempt checkpoint, on 2 nodes."""
    code = tmp_path / "job"
    shutil.copytree(EXAMPLE, code, ignore=shutil.ignore_patterns("outputs", "__pycache__",
                                                                 "README.md"))
    (code / "held.py").write_text(HELD)
    (code / "job.toml").unlink()
    return write_job(code, {
        "job": {"name": name},
        "cluster": {"target": "local", "nodes": 2},
        "run": {"launcher": "mpi", "command": ["python", "held.py", "--epochs", EPOCHS],
                "env": {"SEED": "1234"}, "checkpoint": "ckpt/", **run},
        "code": {"path": "."},
        "outputs": {"paths": outputs, "from": "head"},
        "limits": {"max_duration": "5m"},
    })


def up_losing_node_1(composer: Composer, job: Path) -> Finished:
    """``composer up job``, with node-1 stopped once the head has its first checkpoint."""
    with start_up(composer, job, "up") as up:
        work = up.work()
        saved = work / "nodes" / "node-0" / "work" / "code" / "ckpt" / "checkpoint.npz"
        wait_for(saved.exists, 120, "the first checkpoint on the head", alive=up.proc,
                 log=up.err)
        stop_node(work, 1)
        return up.finish(timeout=240)


def test_a_lost_node_is_replaced_and_training_resumes(composer: Composer, tmp_path: Path,
                                                      tally: Tally) -> None:
    with tally.check("node lost"):
        job = held_job(tmp_path, "lost-node", ["model.npz", "metrics.json"],
                       retries={"max": 1, "on": ["node-lost"]})
        code = job.parent
        done = up_losing_node_1(composer, job)
        assert done.returncode == 0, done.stderr
        run_id = final_json(done.stdout)["run_id"]
        result = record_json(composer, run_id, "result.json")
        attempts = result["attempts"]
        assert [a["outcome"] for a in attempts] == ["node-lost", "succeeded"]
        assert attempts[0]["lost_nodes"] == ["node-1"] and result["lost_nodes"] == ["node-1"]
        assert "node-1" in attempts[0]["error"]
        assert result["status"] == "succeeded" and result["teardown"]["status"] == "destroyed"
        assert "checkpoint ckpt copied from node-0" in done.stderr
        assert "checkpoint ckpt staged onto node-0" in done.stderr
        # the second attempt resumed; the first attempt's logs are kept beside it
        assert "resuming after epoch" in read_record(composer, run_id, "logs/node-0.log")
        files = record_files(composer, run_id)
        assert "logs/attempt-1/node-0.log" in files
        assert "epoch   1/" in read_record(composer, run_id, "logs/attempt-1/node-0.log")
        assert "epoch   1/" not in read_record(composer, run_id, "logs/node-0.log")
        # the outputs are the last attempt's: the model an uninterrupted run makes
        model = subprocess.run(
            ["git", "-C", str(composer.runs), "show", f"run/{run_id}:{run_id}/outputs/model.npz"],
            capture_output=True, check=True).stdout
        reference = uninterrupted(code, tmp_path / "reference")
        assert hashlib.sha256(model).hexdigest() == hashlib.sha256(reference).hexdigest()
        assert_gone(composer, run_id)


def test_a_lost_node_without_retries_is_exit_4_naming_it(composer: Composer, tmp_path: Path,
                                                         tally: Tally) -> None:
    """No [run] retries: the mpi job fails when a node dies, and the run says which node
    was lost (exit 4), not that the workload failed on the head that reported it."""
    with tally.check("node lost"):
        done = up_losing_node_1(composer, held_job(tmp_path, "lost-node-once", ["model.npz"]))
        assert done.returncode == 4, done.stderr
        run_id = final_json(done.stdout)["run_id"]
        result = record_json(composer, run_id, "result.json")
        assert result["lost_nodes"] == ["node-1"], result
        assert "lost node node-1" in result["error"]
        assert_gone(composer, run_id)
