"""composer push: records reach the remote whoever pushed first, never by force, never lost.

Each "pipeline" here is a clone of one bare remote holding records committed the way
``up`` commits them (RunsRepo.commit_run), without running clusters: pushing is what is
under test. tests/faults/test_push_concurrency.py runs eight real ``up --push`` at once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from composer import push as push_module
from composer.cli import app
from composer.errors import ExitCode
from composer.push import PushError, push
from composer.records.repo import RunsRepo
from composer.result import new_run_id
from tests.conftest import git

pytestmark = pytest.mark.integration



def bare(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
    return path


def clone(remote: Path, path: Path) -> RunsRepo:
    subprocess.run(["git", "clone", "-q", str(remote), str(path)], check=True,
                   capture_output=True)
    return RunsRepo(path)


def record(repo: RunsRepo, tmp: Path, status: str = "succeeded") -> str:
    """Commit one run's record into ``repo`` as ``up`` does; return its run id."""
    run_id = new_run_id()
    staged = tmp / f"staged-{run_id}"
    staged.mkdir()
    (staged / "result.json").write_text(json.dumps({"run_id": run_id, "job": "j",
                                                    "status": status}))
    repo.ensure()
    repo.commit_run(run_id, staged, f"j: {status} ({run_id})")
    return run_id


def remote_runs(remote: Path) -> tuple[list[str], list[str]]:
    """(run tags, top-level run directories) of the remote's main branch."""
    tags = sorted(t.removeprefix("run/") for t in git(remote, "tag", "--list", "run/*").split())
    tree = git(remote, "ls-tree", "--name-only", "main").split()
    return tags, sorted(name for name in tree if name[:1].isdigit())


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_push_to_an_empty_remote(tmp_path: Path) -> None:
    remote = bare(tmp_path / "runs.git")
    repo = clone(remote, tmp_path / "a")
    run_id = record(repo, tmp_path)
    code, out = cli("push", "--runs-repo", str(repo.path), "--json")
    assert code == 0, out
    answer = json.loads(out)
    assert answer["pushed"] and answer["runs"] == [run_id] and answer["attempts"] == 1
    assert remote_runs(remote) == ([run_id], [run_id])
    assert git(remote, "rev-parse", f"run/{run_id}").strip() == answer["commit"]
    code, out = cli("push", "--runs-repo", str(repo.path), "--json")
    assert code == 0 and json.loads(out)["runs"] == []  # nothing new: nothing pushed


def test_a_remote_that_moved_gets_the_run_on_top(tmp_path: Path) -> None:
    remote = bare(tmp_path / "runs.git")
    a, b = clone(remote, tmp_path / "a"), clone(remote, tmp_path / "b")
    first, second = record(a, tmp_path), record(b, tmp_path)  # two unrelated histories
    old_commit = git(b.path, "rev-parse", f"run/{second}").strip()
    author = git(b.path, "log", "-1", "--format=%an <%ae> %ad", old_commit)
    push(a)
    result = push(b)
    assert result.runs == (second,)
    assert remote_runs(remote) == (sorted([first, second]), sorted([first, second]))
    log = git(remote, "log", "--format=%P%x09%s", "main").splitlines()
    assert len(log) == 3
    assert [len(line.split("\t")[0].split()) for line in log] == [1, 1, 0]  # linear
    assert log[-1].endswith("Initialize runs repository")  # b's own first commit dropped
    new_commit = git(remote, "rev-parse", f"run/{second}").strip()
    assert new_commit != old_commit
    assert git(remote, "log", "-1", "--format=%an <%ae> %ad", new_commit) == author
    # The replayed record is the same tree as the one committed.
    assert git(remote, "rev-parse", f"{new_commit}:{second}") == \
        git(b.path, "rev-parse", f"{old_commit}:{second}")
    # Here, the branch and the tag follow the remote; the other run came along.
    assert git(b.path, "rev-parse", "HEAD").strip() == git(remote, "rev-parse", "main").strip()
    assert git(b.path, "rev-parse", f"run/{second}").strip() == new_commit
    assert (b.path / first / "result.json").is_file()
    assert git(b.path, "status", "--porcelain") == ""
    assert sorted(r.run_id for r in b.list_runs()) == sorted([first, second])


def test_a_rejected_push_is_fetched_replayed_and_retried(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    remote = bare(tmp_path / "runs.git")
    seed = clone(remote, tmp_path / "seed")
    record(seed, tmp_path)
    push(seed)
    mine, other = clone(remote, tmp_path / "mine"), clone(remote, tmp_path / "other")
    my_run, their_run = record(mine, tmp_path), record(other, tmp_path)
    fetch = push_module._fetch
    calls: list[str] = []

    def fetch_then_lose_the_race(repo: RunsRepo, name: str) -> None:
        fetch(repo, name)
        if repo.path == mine.path and not calls:
            calls.append("other pushed")
            push(other)  # lands between this fetch and this push

    monkeypatch.setattr(push_module, "_fetch", fetch_then_lose_the_race)
    said: list[str] = []
    pauses: list[float] = []
    result = push(mine, say=said.append, sleep=pauses.append)
    assert result.attempts == 2 and result.runs == (my_run,)
    assert len(pauses) == 1 and 0 <= pauses[0] <= push_module.BACKOFF_CAP_S
    assert "fetching and replaying again" in said[0]
    tags, dirs = remote_runs(remote)
    assert my_run in tags and their_run in tags and my_run in dirs and their_run in dirs


def test_bounded_retries_then_the_record_stays_here(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    remote = bare(tmp_path / "runs.git")
    mine = clone(remote, tmp_path / "mine")
    my_run = record(mine, tmp_path)
    before = git(mine.path, "rev-parse", "HEAD", f"run/{my_run}")
    rivals = iter(range(100))
    fetch = push_module._fetch

    def always_late(repo: RunsRepo, name: str) -> None:
        fetch(repo, name)
        if repo.path != mine.path:
            return
        rival = clone(remote, tmp_path / f"rival-{next(rivals)}")
        record(rival, tmp_path)
        push(rival)

    monkeypatch.setattr(push_module, "_fetch", always_late)
    with pytest.raises(PushError) as caught:
        push(mine, attempts=3, sleep=lambda _: None)
    assert caught.value.exit_code == ExitCode.PUSH_FAILED == 6
    assert "rejected 3 times" in caught.value.message
    assert "composer push --runs-repo" in (caught.value.hint or "")
    assert git(mine.path, "rev-parse", "HEAD", f"run/{my_run}") == before
    assert my_run not in remote_runs(remote)[0]


def test_an_unreachable_remote_keeps_the_record(tmp_path: Path) -> None:
    remote = bare(tmp_path / "runs.git")
    repo = clone(remote, tmp_path / "a")
    run_id = record(repo, tmp_path)
    git(repo.path, "remote", "set-url", "origin", str(tmp_path / "gone.git"))
    before = git(repo.path, "rev-parse", "HEAD", f"run/{run_id}")
    code, out = cli("push", "--runs-repo", str(repo.path), "--json")
    assert code == 6, out
    answer = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    assert answer["pushed"] is False and answer["exit_code"] == 6
    assert "nothing was lost" in answer["hint"]
    assert git(repo.path, "rev-parse", "HEAD", f"run/{run_id}") == before


def test_a_record_changed_on_both_sides_is_never_overwritten(tmp_path: Path) -> None:
    remote = bare(tmp_path / "runs.git")
    a = clone(remote, tmp_path / "a")
    run_id = record(a, tmp_path)
    push(a)
    b = clone(remote, tmp_path / "b")
    a.amend_result(run_id, {"note": "from a"}, "a: note")
    push(a)  # a fast-forward: fine
    b.amend_result(run_id, {"note": "from b"}, "b: note")
    remote_head = git(remote, "rev-parse", "main")
    with pytest.raises(PushError, match=f"run {run_id} was changed both here"):
        push(b)
    assert git(remote, "rev-parse", "main") == remote_head
    assert json.loads(git(b.path, "show", f"run/{run_id}:{run_id}/result.json"))["note"] == \
        "from b"


def test_no_remote_is_exit_2_before_a_run(tmp_path: Path) -> None:
    repo = RunsRepo(tmp_path / "runs")
    record(repo, tmp_path)
    code, out = cli("push", "--runs-repo", str(repo.path))
    assert code == 2 and "has no remote 'origin'" in out
    job = tmp_path / "job.toml"
    job.write_text('[job]\nname = "j"\n[cluster]\ntarget = "local"\nnodes = 1\n'
                   '[run]\nlauncher = "ssh"\ncommand = ["true"]\n')
    home = tmp_path / "home"
    done = subprocess.run([sys.executable, "-m", "composer", "up", str(job), "--push",
                           "--runs-repo", str(repo.path), "--json"],
                          env={"COMPOSER_HOME": str(home), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert json.loads(done.stdout)["run_id"] is None
    assert not (home / "work").exists()
    code, out = cli("push", "--runs-repo", str(tmp_path / "none"))
    assert code == 2 and "no runs repository" in out


def test_eight_pipelines_push_at_once(tmp_path: Path) -> None:
    remote = bare(tmp_path / "runs.git")
    clones = [clone(remote, tmp_path / f"c{i}") for i in range(8)]
    run_ids = [record(repo, tmp_path) for repo in clones]
    procs = [subprocess.Popen([sys.executable, "-m", "composer", "push", "--runs-repo",
                               str(repo.path), "--json"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for repo in clones]
    outs = [proc.communicate(timeout=300) for proc in procs]
    failures = [f"{i}: {err}" for i, (proc, (_, err)) in enumerate(zip(procs, outs, strict=True))
                if proc.returncode != 0]
    assert not failures, "\n".join(failures)
    assert remote_runs(remote) == (sorted(run_ids), sorted(run_ids))
    merges = git(remote, "rev-list", "--merges", "main").split()
    assert not merges
    assert git(remote, "rev-list", "--count", "main").strip() == "9"
    for repo, run_id in zip(clones, run_ids, strict=True):
        tagged = git(remote, "rev-parse", f"run/{run_id}").strip()
        assert git(repo.path, "rev-parse", f"run/{run_id}").strip() == tagged


def test_a_remote_whose_branch_has_another_name_is_refused_not_split(tmp_path: Path) -> None:
    """A runs repository composer made (branch main) pushed to a shared remote whose
    history is on master would start a second, unrelated history that clones never
    show: refused, naming both, and nothing is pushed."""
    remote = bare(tmp_path / "runs.git")
    other = clone(remote, tmp_path / "other")
    record(other, tmp_path)
    git(other.path, "push", "-q", "origin", "HEAD:refs/heads/master")
    git(remote, "update-ref", "-d", "refs/heads/main")
    mine = RunsRepo(tmp_path / "mine")
    record(mine, tmp_path)
    git(mine.path, "remote", "add", "origin", str(remote))
    code, out = cli("push", "--runs-repo", str(mine.path), "--json")
    assert code == int(ExitCode.PUSH_FAILED), out
    said = json.loads(out.splitlines()[0])  # the one object; the error's lines follow
    assert "has no branch 'main', but has master" in said["error"]
    assert git(remote, "for-each-ref", "--format=%(refname)", "refs/heads").split() == \
        ["refs/heads/master"]
