"""A node that dies while the workload runs: composer notices, fails, tears down."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .conftest import Tally
from .util import (
    assert_gone,
    final_json,
    read_record,
    record_files,
    record_json,
    simple_job,
    start_up,
    wait_for,
    write_job,
)

if TYPE_CHECKING:
    from tests.conftest import Composer

pytestmark = pytest.mark.integration

NODES = 3
DETECT_S = 30


def test_node_death_fails_the_run(composer: Composer, tmp_path: Path, tally: Tally) -> None:
    with tally.check("node death"):
        job = write_job(tmp_path / "job", simple_job("node-dies", NODES, "echo up; sleep 60"))
        with start_up(composer, job, "up") as up:
            work = up.work()
            logs = [work / "record" / "logs" / f"node-{rank}.log" for rank in range(NODES)]

            def all_up() -> bool:
                return all(p.exists() and "up" in p.read_text().split() for p in logs)

            wait_for(all_up, 120, "'up' in every node log", alive=up.proc, log=up.err)
            script = work / "tf" / "modules" / "local-cluster" / "scripts" / "node.sh"
            env = {**os.environ, "NODE_DIR": str(work / "nodes" / "node-1"),
                   "NODE_RUN_ID": work.name}
            stopped = subprocess.run(["sh", str(script), "stop"], env=env, capture_output=True,
                                     text=True, timeout=60, check=False)
            assert stopped.returncode == 0, stopped.stderr
            t0 = time.monotonic()
            done = up.finish(timeout=120)
            noticed = time.monotonic() - t0
        run_id = work.name
        assert noticed < DETECT_S, (
            f"composer took {noticed:.1f}s to notice the dead node:\n{done.stderr}"
        )
        assert done.returncode == 4, done.stderr
        assert final_json(done.stdout)["status"] == "failed"
        result = record_json(composer, run_id, "result.json")
        assert result["status"] == "failed"
        assert result["stage"] == "run"
        assert "node-1" in result["error"]
        assert result["teardown"]["status"] == "destroyed"
        files = record_files(composer, run_id)
        for rank in (0, 2):
            assert f"logs/node-{rank}.log" in files
            assert "up" in read_record(composer, run_id, f"logs/node-{rank}.log").split()
        assert_gone(composer, run_id)
