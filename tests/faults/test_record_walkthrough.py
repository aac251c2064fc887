"""What a new user meets around records: kept clusters brought down and recorded as
such, and a word when the outputs patterns collect nothing or leave files behind."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .conftest import Tally
from .util import assert_gone, final_json, read_record, simple_job, write_job

if TYPE_CHECKING:
    from tests.conftest import Composer

pytestmark = pytest.mark.integration


def runs_json(c: Composer) -> dict[str, dict]:  # type: ignore[type-arg]
    done = c.run("runs", "--json", timeout=60)
    assert done.returncode == 0, done.stderr
    return {item["run_id"]: item for item in json.loads(done.stdout)["runs"]}


def test_down_of_a_kept_cluster_is_recorded_and_idempotent(composer: Composer, tmp_path: Path,
                                                           tally: Tally) -> None:
    with tally.check("walkthrough"):
        job = write_job(tmp_path / "job", simple_job("kept", 1, "echo hi"))
        up = composer.run("up", str(job), "--keep", "--json", timeout=180)
        assert up.returncode == 0, up.stderr
        run_id = final_json(up.stdout)["run_id"]
        first = composer.git("rev-parse", f"run/{run_id}^{{commit}}").strip()
        assert runs_json(composer)[run_id]["cluster_up"] is True
        table = composer.run("runs", timeout=60).stdout
        row = next(line for line in table.splitlines() if line.startswith(run_id))
        assert row.split()[-1] == "up"

        down = composer.run("down", run_id, timeout=120)
        assert down.returncode == 0, down.stderr
        shown = composer.run("show", run_id, "--json", timeout=60)
        result = json.loads(shown.stdout)["result"]
        assert result["status"] == "succeeded"
        assert result["teardown"]["status"] == "destroyed"
        assert result["teardown"]["by"] == "composer down"
        text = composer.run("show", run_id, timeout=60).stdout
        assert re.search(r"^teardown +destroyed$", text, re.M), text
        second = composer.git("rev-parse", f"run/{run_id}^{{commit}}").strip()
        assert second != first
        assert composer.git("rev-parse", f"{second}^").strip() == first
        assert runs_json(composer)[run_id]["cluster_up"] is False
        assert_gone(composer, run_id)

        again = composer.run("down", run_id, timeout=60)
        assert again.returncode == 0, again.stderr
        assert "already destroyed" in again.stdout
        assert composer.git("rev-parse", f"run/{run_id}^{{commit}}").strip() == second


def test_outputs_that_collect_nothing_or_stay_behind_are_said(composer: Composer,
                                                              tmp_path: Path,
                                                              tally: Tally) -> None:
    with tally.check("walkthrough"):
        command = ('echo r > "$COMPOSER_OUTPUT_DIR/rank-$COMPOSER_NODE_RANK.txt"; '
                   "echo 1,2 > table.csv")
        job = write_job(tmp_path / "job", simple_job(
            "quiet", 2, command, outputs={"paths": ["*.txt", "*.csv"], "from": "head"}))
        done = composer.run("up", str(job), "--json", timeout=180)
        assert done.returncode == 0, done.stderr
        run_id = final_json(done.stdout)["run_id"]
        log = read_record(composer, run_id, "logs/composer.log")
        for text in (done.stderr, log):
            assert "outputs.paths '*.csv' matched no file" in text, text
            assert "$COMPOSER_OUTPUT_DIR" in text
            assert "'*.txt' matched no file" not in text
            assert "1 matching file on node-1 not collected" in text, text
        assert_gone(composer, run_id)
