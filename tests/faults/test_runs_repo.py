"""The runs repository: checked before anything is created; down and gc can be pointed
at another one, carry on past a run that fails, and act only on what composer made."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .conftest import Tally
from .test_kill9 import kill_paused
from .util import (
    assert_gone,
    final_json,
    node_sshds,
    record_json,
    simple_job,
    start_up,
    write_job,
)

if TYPE_CHECKING:
    from tests.conftest import Composer

pytestmark = pytest.mark.integration


def _not_a_repo(path: Path) -> None:
    path.mkdir()
    (path / "thesis.tex").write_text("mine\n")


def _a_file(path: Path) -> None:
    path.write_text("mine\n")


def _under_a_file(path: Path) -> None:
    path.parent.write_text("mine\n")


@pytest.mark.parametrize(("make", "relpath", "says"), [
    (_not_a_repo, "runs", "is not empty and is not a git repository"),
    (_a_file, "runs", "exists and is not a directory"),
    (_under_a_file, "file/runs", "is not a directory"),
])
def test_a_bad_runs_repo_is_refused_before_anything_is_created(
    composer: Composer, tmp_path: Path, tally: Tally, make, relpath: str, says: str,  # type: ignore[no-untyped-def]
) -> None:
    with tally.check("runs repo"):
        bad = tmp_path / relpath
        make(bad)
        job = write_job(tmp_path / "job", simple_job("bad-repo", 1, "echo hi"))
        done = composer.run("up", str(job), "--runs-repo", str(bad), "--json", timeout=120)
        assert done.returncode == 2, done.stderr
        assert str(bad) in done.stderr and says in done.stderr, done.stderr
        assert "--runs-repo" in done.stderr
        assert "Traceback" not in done.stderr
        out = final_json(done.stdout)
        assert out["exit_code"] == 2 and out["run_id"] is None
        assert not (composer.home / "work").exists() or not list((composer.home / "work").iterdir())
        assert not node_sshds(str(composer.home))


def test_down_and_gc_take_the_runs_repo_and_carry_on(composer: Composer, tmp_path: Path,
                                                     tally: Tally) -> None:
    with tally.check("runs repo"):
        job = write_job(tmp_path / "job", simple_job("stranded", 1, "echo hi"))
        broken = {name: tmp_path / f"runs-{name}" for name in ("a", "c")}
        killed: dict[str, str] = {}
        for name in ("a", "b", "c"):
            env = {"COMPOSER_RUNS_REPO": str(broken[name])} if name in broken else {}
            with start_up(composer, job, name, COMPOSER_PAUSE_AT="run", **env) as up:
                killed[name] = kill_paused(up, "run")
        for path in broken.values():
            path.write_text("now a file\n")

        # No flag and no COMPOSER_RUNS_REPO: each run's own repository.
        swept = composer.run("gc", "--yes", "--json", timeout=240, COMPOSER_RUNS_REPO="")
        assert swept.returncode == 4, swept.stderr
        data = json.loads(swept.stdout)
        assert data["failed"] == 2, data
        report = {item["run_id"]: item for item in data["runs"]}
        assert report[killed["b"]]["outcome"] == "destroyed"
        assert_gone(composer, killed["b"])
        assert record_json(composer, killed["b"], "result.json")["status"] == "abandoned"
        for name in ("a", "c"):
            item = report[killed[name]]
            assert item["outcome"] == "failed", item
            assert str(broken[name]) in item["error"], item
            assert node_sshds(killed[name]), "a run with nowhere to record it was destroyed"

        down = composer.run("down", killed["a"], "--json", timeout=120)
        assert down.returncode == 0, down.stderr
        assert record_json(composer, killed["a"], "result.json")["status"] == "abandoned"
        assert_gone(composer, killed["a"])

        fixed = tmp_path / "fixed"
        swept = composer.run("gc", "--yes", "--runs-repo", str(fixed), "--json", timeout=240,
                             COMPOSER_RUNS_REPO="")
        assert swept.returncode == 0, swept.stderr
        assert {i["run_id"]: i["outcome"] for i in json.loads(swept.stdout)["runs"]} == {
            killed["c"]: "destroyed"}
        tags = (fixed / ".git" / "refs" / "tags" / "run").iterdir()
        assert [p.name for p in tags] == [killed["c"]]
        assert_gone(composer, killed["c"])


def test_down_never_reaches_outside_the_work_root(composer: Composer, tmp_path: Path,
                                                  tally: Tally) -> None:
    with tally.check("runs repo"):
        outside = tmp_path / "outside" / "x"
        outside.mkdir(parents=True)
        state = {"run_id": "x", "job": "j", "engine": "embedded", "runs_repo": str(composer.runs),
                 "pid": 999999999, "started_at": "2024-01-01T00:00:00+00:00", "applied": False}
        (outside / "state.json").write_text(json.dumps(state))
        (outside / "precious.txt").write_text("mine\n")
        (composer.home / "work").mkdir(parents=True)
        for ref in ("../../outside/x", "../../outside/", "*", "run/../x"):
            done = composer.run("down", ref, timeout=60)
            assert done.returncode == 2, (ref, done.stderr)
            assert "invalid run id" in done.stderr and "Traceback" not in done.stderr
        assert (outside / "precious.txt").read_text() == "mine\n"
        assert not composer.runs.exists()
