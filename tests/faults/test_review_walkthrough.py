"""What a new user met, tried again: a wrong runs repo given to ``down`` of a kept
cluster, ``reproduce --latest`` after a failed run, several nodes failing at once."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from composer.run import destroy

from .conftest import Tally
from .util import assert_gone, final_json, node_sshds, read_record, simple_job, write_job

if TYPE_CHECKING:
    from tests.conftest import Composer

pytestmark = pytest.mark.integration


def test_down_with_a_wrong_runs_repo_destroys_nothing(composer: Composer, tmp_path: Path,
                                                      tally: Tally) -> None:
    with tally.check("runs repo"):
        job = write_job(tmp_path / "job", simple_job("kept", 1, "echo hi"))
        up = composer.run("up", str(job), "--keep", "--json", timeout=240)
        assert up.returncode == 0, up.stderr
        run_id = final_json(up.stdout)["run_id"]
        a_file = tmp_path / "not-a-repo"
        a_file.write_text("x\n")
        other = tmp_path / "other-repo"
        for wrong in (a_file, other):
            done = composer.run("down", run_id, "--json", timeout=120,
                                COMPOSER_RUNS_REPO=str(wrong))
            assert done.returncode == 2, done.stderr
            assert str(wrong) in done.stderr and "Traceback" not in done.stderr
            assert node_sshds(run_id), "down destroyed the cluster before refusing"
        done = composer.run("down", run_id, "--json", timeout=180)
        assert done.returncode == 0, done.stderr
        assert_gone(composer, run_id)


def test_destroy_that_cannot_start_a_process_is_a_failed_teardown(tmp_path: Path) -> None:
    class Engine:
        def destroy(self, *args: object) -> None:
            raise BlockingIOError(11, "Resource temporarily unavailable")

    class Target:
        released = False

        def sweep(self, work: Path) -> list[str]:
            raise RuntimeError("can't start new thread")

        def release(self, held: object) -> None:
            self.released = True

    target = Target()
    outcome = destroy(Engine(), target, tmp_path / "run-1", 10, io.StringIO(), [[1, 2]])
    assert outcome["status"] == "failed"
    assert "composer down run-1" in str(outcome["hint"])
    assert not target.released


def test_latest_picks_the_newest_run_that_succeeded(composer: Composer, tmp_path: Path,
                                                    tally: Tally) -> None:
    with tally.check("walkthrough"):
        flag = tmp_path / "break-it"
        job = write_job(tmp_path / "job", simple_job(
            "flaky", 1, f"test ! -e {flag} && echo ok > $COMPOSER_OUTPUT_DIR/out.txt",
            outputs={"paths": ["out.txt"], "from": "head"}))
        good = composer.run("up", str(job), "--json", timeout=240)
        assert good.returncode == 0, good.stderr
        flag.write_text("")
        bad = composer.run("up", str(job), "--json", timeout=240)
        assert bad.returncode == 1, bad.stderr
        flag.unlink()
        again = composer.run("reproduce", "--latest", "flaky", "--json", timeout=240)
        verdict = json.loads(again.stdout)
        assert verdict["reproduces"] == final_json(good.stdout)["run_id"], verdict
        assert verdict["verdict"] == "identical" and again.returncode == 0, again.stderr


def test_every_failing_node_is_named(composer: Composer, tmp_path: Path, tally: Tally) -> None:
    with tally.check("streams"):
        command = ('if [ "$COMPOSER_NODE_RANK" = 0 ]; then exit 3; fi; '
                   "sleep 0.5; exit 5")
        job = write_job(tmp_path / "job", simple_job("two-fail", 2, command,
                                                     run={"fail_fast": False}))
        done = composer.run("up", str(job), "--json", timeout=240)
        assert done.returncode == 1, done.stderr
        out = final_json(done.stdout)
        assert out["failed_node"] == "node-0" and out["workload_exit_code"] == 3, out
        assert "also failed: node-1 (5)" in out["error"], out
        missing = write_job(tmp_path / "missing", simple_job(
            "not-found", 1, ["no-such-command-here"]))
        done = composer.run("up", str(missing), "--json", timeout=240)
        assert done.returncode == 1, done.stderr
        assert "command not found" in final_json(done.stdout)["error"]


def test_a_timed_out_run_keeps_what_it_wrote(composer: Composer, tmp_path: Path,
                                             tally: Tally) -> None:
    with tally.check("walkthrough"):
        command = ("mkdir -p $COMPOSER_OUTPUT_DIR/ckpt && echo step-1 > "
                   "$COMPOSER_OUTPUT_DIR/ckpt/e1.pt && sleep 60")
        job = write_job(tmp_path / "job", simple_job(
            "slow", 1, command, outputs={"paths": ["ckpt"], "from": "head"},
            limits={"max_duration": "3s"}))
        done = composer.run("up", str(job), "--json", timeout=240)
        assert done.returncode == 1, done.stderr
        out = final_json(done.stdout)
        assert out["status"] == "timeout", out
        manifest = json.loads(read_record(composer, out["run_id"], "manifest.json"))
        assert [f["path"] for f in manifest["files"]] == ["ckpt/e1.pt"], manifest
        assert read_record(composer, out["run_id"], "outputs/ckpt/e1.pt") == "step-1\n"
        result = json.loads(read_record(composer, out["run_id"], "result.json"))
        assert result["status"] == "timeout" and result["stage"] == "run", result


def test_a_pattern_naming_a_directory_collects_what_is_in_it() -> None:
    from composer.spec import output_matches

    assert output_matches("ckpt/e1.pt", ("ckpt",))
    assert output_matches("ckpt/deep/e1.pt", ("ckpt/",))
    assert output_matches("ckpt/e1.pt", ("ck*",))
    assert not output_matches("ckpt2/e1.pt", ("ckpt",))
    assert not output_matches("other/ckpt", ("ckpt",))
    assert output_matches("metrics.json", ("metrics.json",))


def test_version_flag(composer: Composer) -> None:
    done = composer.run("--version", timeout=60)
    assert done.returncode == 0 and done.stdout.strip().startswith("composer "), done
