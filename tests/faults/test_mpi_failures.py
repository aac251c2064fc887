"""A failing MPI rank through real runs (2 nodes x 2 slots): the failing rank and its
node are named, the node logs keep each line's rank, mpirun's own lines are marked.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .conftest import Tally
from .util import (
    assert_gone,
    final_json,
    read_record,
    record_json,
    simple_job,
    start_up,
    wait_for,
    write_job,
)

if TYPE_CHECKING:
    from tests.conftest import Composer

pytestmark = pytest.mark.integration

# Rank 3 (on node-1, ranks placed by slot) fails; the others sleep SLEEP_S seconds.
RANKS = """\
import os, sys, time
from mpi4py import MPI

rank = MPI.COMM_WORLD.Get_rank()
print(f"rank {rank} up", flush=True)
if rank == 3:
    print("rank 3 is failing", flush=True)
    sys.exit(4)
time.sleep(float(sys.argv[1]))
print(f"rank {rank} done", flush=True)
"""


def mpi_job(tmp_path: Path, name: str, command: list[str]) -> Path:
    doc = simple_job(name, 2, command, run={"launcher": "mpi"}, code={"path": "."},
                     cluster={"slots_per_node": 2}, limits={"max_duration": "2m"})
    return write_job(tmp_path / name, doc, {"ranks.py": RANKS})


def check_rank_3_named(composer: Composer, done_stdout: str, stderr: str) -> str:
    out = final_json(done_stdout)
    assert out["status"] == "failed", stderr[-3000:]
    assert out["failed_node"] == "node-1", stderr[-3000:]
    assert out["workload_exit_code"] == 4
    assert out["failed_rank"] == 3
    assert "composer: failed: rank 3 on node-1 exited with 4" in stderr
    result = record_json(composer, out["run_id"], "result.json")
    assert result["failed_node"] == "node-1" and result["failed_rank"] == 3
    assert result["workload_exit_code"] == 4 and result["exit_code"] == 4
    return str(out["run_id"])


def test_a_rank_that_exits_non_zero_is_named_with_its_node(composer: Composer, tmp_path: Path,
                                                           tally: Tally) -> None:
    # A plain sys.exit(4): mpi4py finalizes at exit, which waits for the other ranks,
    # so the job ends when they do (2 s here).
    job = mpi_job(tmp_path, "rank-exits", ["python", "ranks.py", "2"])
    with tally.check("streams"):
        done = composer.run("up", str(job), "--json", timeout=240)
        assert done.returncode == 1, done.stderr[-3000:]
        run_id = check_rank_3_named(composer, done.stdout, done.stderr)
        node1 = read_record(composer, run_id, "logs/node-1.log").splitlines()
        assert "[rank 3] rank 3 is failing" in node1, node1
        assert "[rank 2] rank 2 up" in node1 and "[rank 2] rank 2 done" in node1, node1
        node0 = read_record(composer, run_id, "logs/node-0.log").splitlines()
        assert {"[rank 0] rank 0 up", "[rank 1] rank 1 up"} <= set(node0), node0
        # The node logs hold rank lines only; mpirun's own report is in mpirun.log, and
        # on the terminal each of its lines is marked as mpirun's.
        assert all(line.startswith("[rank ") for line in node0 + node1), node0 + node1
        assert "Exit code:" in read_record(composer, run_id, "logs/mpirun.log")
        terminal = done.stderr.splitlines()
        assert any(line.startswith("[mpirun] ") and "Exit code:" in line for line in terminal)
        assert not any(line.startswith("-----") for line in terminal), done.stderr[-3000:]
        assert_gone(composer, run_id)


def test_a_rank_that_aborts_stops_the_job_and_is_named(composer: Composer, tmp_path: Path,
                                                       tally: Tally) -> None:
    # Under `python -m mpi4py`, sys.exit(4) calls MPI_Abort: mpirun stops every rank at
    # once instead of waiting out the others' 60 s.
    job = mpi_job(tmp_path, "rank-aborts", ["python", "-m", "mpi4py", "ranks.py", "60"])
    with tally.check("streams"):
        t0 = time.monotonic()
        done = composer.run("up", str(job), "--json", timeout=240)
        took = time.monotonic() - t0
        assert done.returncode == 1, done.stderr[-3000:]
        run_id = check_rank_3_named(composer, done.stdout, done.stderr)
        assert took < 50, f"the job was not stopped ({took:.0f}s):\n{done.stderr[-3000:]}"
        assert "rank 2 done" not in read_record(composer, run_id, "logs/node-1.log")
        assert_gone(composer, run_id)


# Each rank says it started, then waits (60 s at most) for the test's go-ahead file.
WAITS = """\
import os, sys, time
from mpi4py import MPI

rank = MPI.COMM_WORLD.Get_rank()
print(f"rank {rank} started")
deadline = time.monotonic() + 60
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.1)
print(f"rank {rank} finished")
"""


def test_python_ranks_are_unbuffered_where_output_is_a_pipe(composer: Composer,
                                                            tmp_path: Path,
                                                            tally: Tally) -> None:
    # A rank's stdout is a pipe here (through cat, as it is inside a container), where
    # Python would hold its output until it exits: composer starts ranks with
    # PYTHONUNBUFFERED=1, so "started" shows while the ranks still run.
    go = tmp_path / "go"
    doc = simple_job("unbuffered", 2, f"python ranks.py {go} | cat",
                     run={"launcher": "mpi"}, code={"path": "."},
                     cluster={"slots_per_node": 2}, limits={"max_duration": "2m"})
    job = write_job(tmp_path / "unbuffered", doc, {"ranks.py": WAITS})
    with tally.check("streams"):
        with start_up(composer, job, "up") as up:
            work = up.work()
            log = work / "record" / "logs" / "node-1.log"

            def started() -> bool:
                return log.exists() and "[rank 3] rank 3 started" in log.read_text()

            try:
                wait_for(started, 40, "rank 3's first line while it runs", alive=up.proc,
                         log=up.err)
            finally:
                go.write_text("")
            done = up.finish(timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        run_id = final_json(done.stdout)["run_id"]
        assert "[rank 3] rank 3 finished" in read_record(composer, run_id, "logs/node-1.log")
        assert_gone(composer, run_id)
