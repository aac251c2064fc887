"""Capacity failover on real local runs: apply fails with the providers' own capacity
errors (``capacity_driver``), composer destroys what the attempt made and tries the next
candidate; other errors fail as before; all candidates out of capacity is exit 4."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import ROOT

from .conftest import Tally
from .util import assert_gone, final_json, read_record, record_json, simple_job, write_job

if TYPE_CHECKING:
    from tests.conftest import Composer

pytestmark = pytest.mark.integration


def faulty(c: Composer, *args: str, fails: int, text: str = "aws", zones: str = "",
           ) -> subprocess.CompletedProcess[str]:
    """composer with the capacity-fault engine (and zoned local target) in place."""
    env = c.env(FAULT_CAPACITY_COUNT=str(c.cwd / "applies"), FAULT_CAPACITY_FAILS=str(fails),
                FAULT_CAPACITY_TEXT=text, FAULT_ZONES=zones,
                PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT),
                                                         os.environ.get("PYTHONPATH")])))
    (c.cwd / "applies").unlink(missing_ok=True)
    return subprocess.run([sys.executable, "-m", "tests.faults.capacity_driver", *args],
                          cwd=c.cwd, env=env, capture_output=True, text=True, timeout=300,
                          check=False)


def test_capacity_errors_fail_over_to_the_next_zone(composer: Composer, tmp_path: Path,
                                                    tally: Tally) -> None:
    with tally.check("capacity failover"):
        job = write_job(tmp_path / "job", simple_job("failover", 2, "echo ran $COMPOSER_ATTEMPT",
                                                     outputs={"paths": []}))
        done = faulty(composer, "up", str(job), "--json", fails=2, text="aws,gce",
                      zones="zone-a,zone-b,zone-c")
        assert done.returncode == 0, done.stderr
        run_id = final_json(done.stdout)["run_id"]
        result = record_json(composer, run_id, "result.json")
        attempts = result["attempts"]
        assert [(a["zone"], a["type"], a["outcome"]) for a in attempts] == [
            ("zone-a", "loopback", "capacity"), ("zone-b", "loopback", "capacity"),
            ("zone-c", "loopback", "succeeded")]
        assert "InsufficientInstanceCapacity" in attempts[0]["error"]
        assert "does not have enough resources" in attempts[1]["error"]
        assert all(a["seconds"] > 0 for a in attempts)
        assert result["status"] == "succeeded" and result["teardown"]["status"] == "destroyed"
        lock = record_json(composer, run_id, "lock.json")
        assert lock["target"]["resolved"]["zone"] == "zone-c"
        # what each failed attempt made was destroyed before the next apply
        tf_log = read_record(composer, run_id, "logs/terraform.log")
        commands = [line for line in tf_log.splitlines() if line.startswith("$ terraform apply")]
        assert ["-destroy" in line for line in commands] == [False, True, False, True, False,
                                                             True]
        assert "ran 3" in read_record(composer, run_id, "logs/node-0.log")
        assert "attempt 2 in zone-b" in done.stderr and "attempt 3 in zone-c" in done.stderr
        assert_gone(composer, run_id)

        # reproduce applies where the run was made, not the first candidate
        again = faulty(composer, "reproduce", run_id, "--json", fails=0,
                       zones="zone-a,zone-b,zone-c")
        assert again.returncode == 0, again.stderr
        new = final_json(again.stdout)["run_id"]
        tried = record_json(composer, new, "result.json")["attempts"]
        assert [(a["zone"], a["outcome"]) for a in tried] == [("zone-c", "succeeded")]
        assert_gone(composer, new)


def test_no_capacity_anywhere_is_exit_4_listing_the_attempts(composer: Composer,
                                                             tmp_path: Path,
                                                             tally: Tally) -> None:
    with tally.check("capacity failover"):
        job = write_job(tmp_path / "job", simple_job("no-capacity", 1, "echo never"))
        done = faulty(composer, "up", str(job), "--json", fails=9,
                      text="gce-stockout,aws-unsupported", zones="zone-a,zone-b")
        assert done.returncode == 4, done.stderr
        assert "Traceback" not in done.stderr
        answer = final_json(done.stdout)
        assert answer["status"] == "failed" and answer["stage"] == "apply"
        assert "attempt 1 in zone-a loopback" in done.stderr
        assert "attempt 2 in zone-b loopback" in done.stderr
        assert 'on = ["capacity"]' in done.stderr  # the hint
        result = record_json(composer, answer["run_id"], "result.json")
        assert [(a["zone"], a["outcome"]) for a in result["attempts"]] == [
            ("zone-a", "capacity"), ("zone-b", "capacity")]
        assert "GCE_STOCKOUT" in result["attempts"][0]["error"]
        assert "api error Unsupported" in result["attempts"][1]["error"]
        assert result["teardown"]["status"] == "destroyed"
        assert_gone(composer, answer["run_id"])


def test_other_apply_errors_fail_at_once(composer: Composer, tmp_path: Path,
                                         tally: Tally) -> None:
    with tally.check("capacity failover"):
        job = write_job(tmp_path / "job", simple_job("bad-ami", 1, "echo never"))
        done = faulty(composer, "up", str(job), "--json", fails=1, text="aws-ami",
                      zones="zone-a,zone-b")
        assert done.returncode == 4, done.stderr
        answer = final_json(done.stdout)
        result = record_json(composer, answer["run_id"], "result.json")
        assert [(a["zone"], a["outcome"]) for a in result["attempts"]] == [("zone-a", "failed")]
        assert "InvalidAMIID.NotFound" in result["error"]
        assert int((composer.cwd / "applies").read_text()) == 1
        assert_gone(composer, answer["run_id"])


def test_local_target_has_one_candidate_and_retries_it(composer: Composer, tmp_path: Path,
                                                       tally: Tally) -> None:
    """Without test zones the local target has one candidate: a capacity error there is
    the end, unless [run] retries on capacity start it again."""
    with tally.check("capacity failover"):
        job = write_job(tmp_path / "job", simple_job(
            "retry-capacity", 1, "echo ran", run={"retries": {"max": 1, "on": ["capacity"]}}))
        done = faulty(composer, "up", str(job), "--json", fails=1, text="gce-code")
        assert done.returncode == 0, done.stderr
        run_id = final_json(done.stdout)["run_id"]
        attempts = record_json(composer, run_id, "result.json")["attempts"]
        assert [(a["zone"], a["type"], a["outcome"]) for a in attempts] == [
            (None, None, "capacity"), (None, None, "succeeded")]
        assert_gone(composer, run_id)
