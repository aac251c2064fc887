"""Eight pipelines at once: eight `composer up --push`, each from its own clone of one bare
runs repository, as eight scheduled CI jobs would. Every run and its tag reach the remote;
no push is forced, none is lost."""

from __future__ import annotations

import subprocess
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import git

from .test_concurrency import succeeded
from .util import final_json, simple_job, start_up, write_job

if TYPE_CHECKING:
    from tests.conftest import Composer

pytestmark = pytest.mark.integration

PIPELINES = 8



def test_eight_up_push_into_one_remote(composer: Composer, tmp_path: Path) -> None:
    remote = tmp_path / "runs.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    clones = []
    for i in range(PIPELINES):
        clones.append(tmp_path / f"pipeline-{i}" / "runs")
        subprocess.run(["git", "clone", "-q", str(remote), str(clones[-1])], check=True,
                       capture_output=True)
    jobs = [write_job(tmp_path / f"pipeline-{i}", simple_job(f"push-{i}", 1, ["echo", "ok"]))
            for i in range(PIPELINES)]
    with ExitStack() as stack:
        ups = [stack.enter_context(start_up(composer, job, f"up-{i}", "--push",
                                            "--runs-repo", str(runs)))
               for i, (job, runs) in enumerate(zip(jobs, clones, strict=True))]
        results = [up.finish(timeout=300) for up in ups]
    failures = [f"pipeline {i} (exit {done.returncode}): {done.stderr[-2000:]}"
                for i, done in enumerate(results) if succeeded(done) is None]
    assert not failures, "\n".join(failures)
    answers = [final_json(done.stdout) for done in results]
    run_ids = sorted(answer["run_id"] for answer in answers)
    assert all(answer["push"]["pushed"] for answer in answers)
    assert sorted(r for answer in answers for r in answer["push"]["runs"]) == run_ids

    tags = sorted(t.removeprefix("run/") for t in git(remote, "tag", "--list", "run/*").split())
    assert tags == run_ids
    tree = git(remote, "ls-tree", "--name-only", "main").split()
    assert sorted(name for name in tree if name not in ("README.md", ".gitignore")) == run_ids
    assert git(remote, "rev-list", "--merges", "main") == ""
    assert git(remote, "rev-list", "--count", "main").strip() == str(PIPELINES + 1)
    for run_id in run_ids:  # each tag names the commit that holds its run, complete
        files = git(remote, "ls-tree", "-r", "--name-only", f"run/{run_id}", "--", run_id)
        assert f"{run_id}/result.json" in files.split()
        assert f"{run_id}/lock.json" in files.split()
