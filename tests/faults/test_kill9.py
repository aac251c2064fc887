"""kill -9 of composer at every stage; `composer down` and `composer gc` clean up after it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .conftest import Tally
from .util import (
    STAGES,
    Up,
    assert_gone,
    final_json,
    node_sshds,
    record_json,
    simple_job,
    start_up,
    tags,
    write_job,
)

if TYPE_CHECKING:
    from tests.conftest import Composer

pytestmark = pytest.mark.integration


def kill_paused(up: Up, stage: str) -> str:
    """Wait for ``up`` to pause at ``stage``, kill -9 it; return its run id."""
    up.paused(stage)
    up.proc.kill()
    up.proc.wait(timeout=30)
    assert up.run_id is not None
    return up.run_id


@pytest.mark.parametrize("stage", STAGES)
def test_kill_9_then_down(composer: Composer, tmp_path: Path, tally: Tally, stage: str) -> None:
    with tally.check("kill -9"):
        job = write_job(tmp_path / "job", simple_job("killed", 2, "echo hi"))
        with start_up(composer, job, "up", COMPOSER_PAUSE_AT=stage) as up:
            run_id = kill_paused(up, stage)
            done = composer.run("down", run_id, "--json", timeout=180)
        assert done.returncode == 0, done.stderr
        out = final_json(done.stdout)
        assert out["run_id"] == run_id
        assert out["teardown"]["status"] == "destroyed"
        assert out["process_alive"] is False
        assert f"run/{run_id}" in tags(composer)
        result = record_json(composer, run_id, "result.json")
        if stage == "destroy":
            # The workload had finished: its outcome stands, down only did the teardown.
            assert result["status"] == "succeeded" and result["exit_code"] == 0, result
        else:
            assert result["status"] == "abandoned"
            assert result["stage"] == stage
        assert result["teardown"]["status"] == "destroyed"
        assert_gone(composer, run_id)


def test_gc_collects_dead_runs_only(composer: Composer, tmp_path: Path, tally: Tally) -> None:
    with tally.check("gc"):
        job = write_job(tmp_path / "job", simple_job("collected", 2, "echo hi"))
        killed: list[str] = []
        for name in ("dead-a", "dead-b"):
            with start_up(composer, job, name, COMPOSER_PAUSE_AT="run") as dead:
                killed.append(kill_paused(dead, "run"))
                assert len(node_sshds(killed[-1])) == 2
        with start_up(composer, job, "alive", COMPOSER_PAUSE_AT="run") as alive:
            marker = alive.paused("run")
            live_id = alive.run_id
            assert live_id is not None

            listed = composer.run("gc", "--json", timeout=120)
            assert listed.returncode == 0, listed.stderr
            report = {item["run_id"]: item for item in json.loads(listed.stdout)["runs"]}
            assert set(report) == {*killed, live_id}
            for run_id in killed:
                assert report[run_id]["action"] == "down"
                assert report[run_id]["process"] == "gone"
                assert report[run_id]["stage"] == "run"
                assert report[run_id]["nodes_running"] == 2
                assert "outcome" not in report[run_id]
            assert report[live_id]["action"] == "skip (running)"
            assert report[live_id]["process"] == "alive"
            assert len(node_sshds(killed[0])) == 2, "gc without --yes must not touch anything"

            swept = composer.run("gc", "--yes", "--json", timeout=240)
            assert swept.returncode == 0, swept.stderr
            outcome = {item["run_id"]: item for item in json.loads(swept.stdout)["runs"]}
            for run_id in killed:
                assert outcome[run_id]["outcome"] == "destroyed"
                assert_gone(composer, run_id)
                result = record_json(composer, run_id, "result.json")
                assert result["status"] == "abandoned" and result["stage"] == "run"
            assert outcome[live_id]["action"] == "skip (running)"
            assert "outcome" not in outcome[live_id]
            assert alive.proc.poll() is None, "gc must leave a running composer alone"
            assert marker.exists()
            assert len(node_sshds(live_id)) == 2, "gc took down the nodes of a live run"

            marker.unlink()
            done = alive.finish()
        assert done.returncode == 0, done.stderr
        assert final_json(done.stdout)["status"] == "succeeded"
        assert record_json(composer, live_id, "result.json")["status"] == "succeeded"
        assert set(tags(composer)) == {f"run/{r}" for r in (*killed, live_id)}
        assert_gone(composer, live_id)
