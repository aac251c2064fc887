"""A reader that goes away (``composer up job.toml | head -3``, ``| less`` then ``q``)
must not end the run: the record is committed in every case."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import time
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


@pytest.mark.parametrize("redirect", ["2>&-", ">/dev/full", ">&- 2>&-"])
def test_up_with_a_closed_or_full_terminal_still_commits_its_record(
        composer: Composer, tmp_path: Path, tally: Tally, redirect: str) -> None:
    with tally.check("streams"):
        job = write_job(tmp_path / "job", simple_job("closed", 1, "seq 1 100; echo done >&2"))
        line = f"{shlex.join(composer.argv('up', str(job), '--json'))} {redirect}"
        done = subprocess.run(["sh", "-c", line], env=composer.env(), cwd=composer.cwd,
                              capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, (done.stdout, done.stderr)
        listed = subprocess.run(composer.argv("runs", "--json"), env=composer.env(),
                                capture_output=True, text=True, timeout=60, check=True)
        [run] = json.loads(listed.stdout)["runs"]
        assert run["status"] == "succeeded", run
        assert "done" in read_record(composer, run["run_id"], "logs/node-0.log")
        assert_gone(composer, run["run_id"])


def test_signals_while_the_terminal_is_slow_still_end_in_a_record(
        composer: Composer, tmp_path: Path, tally: Tally) -> None:
    """A Ctrl-C held down while stderr's reader is slow: messages block on the full pipe
    as the run fails and tears down, and each further signal arrives inside them."""
    with tally.check("interrupts"):
        noisy = "for i in $(seq 1 30000); do echo line $i; echo err $i >&2; done; sleep 30"
        job = write_job(tmp_path / "job", simple_job("slow-terminal", 1, noisy))
        reader = subprocess.Popen(
            ["sh", "-c", f"sleep 6; cat > {shlex.quote(str(tmp_path / 'out.txt'))}"],
            stdin=subprocess.PIPE)
        assert reader.stdin is not None
        proc = subprocess.Popen(composer.argv("up", str(job), "--json"), env=composer.env(),
                                cwd=composer.cwd, stdout=subprocess.PIPE, stderr=reader.stdin,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        reader.stdin.close()
        time.sleep(2.5)
        for _ in range(12):
            proc.send_signal(signal.SIGINT)
            time.sleep(0.25)
        out, _ = proc.communicate(timeout=240)
        reader.wait(timeout=60)
        answer = json.loads(out.decode().strip().splitlines()[-1])
        assert proc.returncode == 130, answer
        assert answer["run_id"] and answer["record"], answer
        result = json.loads(read_record(composer, answer["run_id"], "result.json"))
        assert result["status"] == "interrupted"
        assert_gone(composer, answer["run_id"])
