"""A reader that goes away (``composer up job.toml | head -3``, ``| less`` then ``q``)
must not end the run: the record is committed in every case."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .conftest import Tally
from .util import assert_gone, read_record, simple_job, write_job

if TYPE_CHECKING:
    from tests.conftest import Composer

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("streams", ["2>&1", "2>/dev/null"])
def test_up_piped_into_head_still_commits_its_record(composer: Composer, tmp_path: Path,
                                                     tally: Tally, streams: str) -> None:
    with tally.check("streams"):
        job = write_job(tmp_path / "job", simple_job(
            "piped", 1, "for i in $(seq 1 300); do echo line $i; done; echo done > "
                        '"$COMPOSER_OUTPUT_DIR/out.txt"',
            outputs={"paths": ["out.txt"]}))
        line = f"{shlex.join(composer.argv('up', str(job)))} {streams} | head -n 2"
        done = subprocess.run(["sh", "-c", line], env=composer.env(), cwd=composer.cwd,
                              capture_output=True, text=True, timeout=300, check=False)
        assert len(done.stdout.splitlines()) == 2, done.stdout
        listed = subprocess.run(composer.argv("runs", "--json"), env=composer.env(),
                                capture_output=True, text=True, timeout=60, check=True)
        [run] = json.loads(listed.stdout)["runs"]
        assert run["status"] == "succeeded", run
        assert read_record(composer, run["run_id"], "outputs/node-0/out.txt") == "done\n"
        assert "line 300" in read_record(composer, run["run_id"], "logs/node-0.log")
        assert_gone(composer, run["run_id"])
