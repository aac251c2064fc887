"""How a run's record reaches git: the git processes a commit starts, the refs read from
the repository's files, the identity read with one ``git config``. Real git throughout."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from composer.errors import RecordError
from composer.record import RunsRepo
from composer.records import refs
from composer.records.git import FALLBACK_EMAIL, FALLBACK_NAME, identity
from tests.conftest import git

pytestmark = pytest.mark.integration

# A run's commit: git config (the identity), add, commit, tag. It was nine.
RECORD_GIT_PROCESSES = 4



def staged(root: Path, run_id: str) -> Path:
    (root / "logs").mkdir(parents=True)
    (root / "result.json").write_text(f'{{"run_id": "{run_id}"}}\n')
    (root / "logs" / "node0.log").write_text("ok\n")
    return root


@pytest.fixture
def own_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the runs repository's own git config counts."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for side in ("AUTHOR", "COMMITTER"):
        for part in ("NAME", "EMAIL"):
            monkeypatch.delenv(f"GIT_{side}_{part}", raising=False)
    monkeypatch.delenv("EMAIL", raising=False)


@pytest.fixture
def counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``git`` first on PATH that notes each start in the returned log, then runs git."""
    real = shutil.which("git")
    assert real is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "git-calls.log"
    wrapper = bin_dir / "git"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_a_run_is_committed_with_four_git_processes(tmp_path: Path, counted: Path) -> None:
    repo = RunsRepo(tmp_path / "runs")
    repo.ensure()
    before = len(calls(counted))
    sha = repo.commit_run("r1", staged(tmp_path / "s1", "r1"), "job: succeeded (r1)")
    made = calls(counted)[before:]
    assert len(made) == RECORD_GIT_PROCESSES, made
    assert git(repo.path, "rev-parse", "HEAD").strip() == sha
    assert git(repo.path, "rev-parse", "run/r1").strip() == sha
    assert git(repo.path, "status", "--porcelain") == ""
    assert git(repo.path, "show", "--name-only", "--format=%s", sha).split() == [
        "job:", "succeeded", "(r1)", "r1/logs/node0.log", "r1/result.json"]


def test_refs_in_other_layouts_are_asked_of_git(tmp_path: Path, counted: Path) -> None:
    """A packed tag is found in packed-refs; a repository whose refs composer cannot read
    from files (here: a reftable directory) is asked through git, as before."""
    repo = RunsRepo(tmp_path / "runs")
    repo.ensure()
    git(repo.path, "tag", "run/r1")
    git(repo.path, "pack-refs", "--all")
    assert not (repo.path / ".git" / "refs" / "tags" / "run" / "r1").exists()
    with pytest.raises(RecordError, match="already tagged"):
        repo.commit_run("r1", staged(tmp_path / "s1", "r1"), "again")
    assert refs.ref_value(repo.path / ".git", "refs/tags/run/r1") == \
        git(repo.path, "rev-parse", "HEAD").strip()
    assert refs.ref_value(repo.path / ".git", "refs/tags/run/r2") is None
    (repo.path / ".git" / "reftable").mkdir()
    assert refs.head_commit(repo.path / ".git") == refs.UNKNOWN
    before = len(calls(counted))
    with pytest.raises(RecordError, match="already tagged"):
        repo.commit_run("r1", staged(tmp_path / "s2", "r1"), "again")
    assert any("rev-parse" in line for line in calls(counted)[before:])


def test_head_before_the_first_commit(tmp_path: Path) -> None:
    path = tmp_path / "fresh"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    assert refs.head_commit(path / ".git") is None
    assert refs.head_commit(tmp_path / "nothing" / ".git") == refs.UNKNOWN


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"user.name": ["Ada"], "user.email": ["ada@example.org"]}, ()),
        ({"user.email": ["ada@example.org"]}, ("-c", f"user.name={FALLBACK_NAME}")),
        ({"user.name": ["Ada"], "user.email": [""]},
         ("-c", f"user.name={FALLBACK_NAME}", "-c", f"user.email={FALLBACK_EMAIL}")),
        ({"user.name": ["Ada", " "], "user.email": ["a@b", "c@d"]},
         ("-c", f"user.name={FALLBACK_NAME}")),
        ({}, ("-c", f"user.name={FALLBACK_NAME}", "-c", f"user.email={FALLBACK_EMAIL}")),
    ],
)
def test_identity_reads_both_settings_at_once(
    tmp_path: Path, own_config: None, settings: dict[str, list[str]],
    expected: tuple[str, ...],
) -> None:
    """The same answer as asking ``git config user.email`` and ``user.name`` in turn (the
    last value of each counts; an empty or blank value is none)."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q")
    for key, values in settings.items():
        for value in values:
            git(path, "config", "--add", key, value)
    assert identity(path) == expected
    email = subprocess.run(["git", "-C", str(path), "config", "user.email"],
                           capture_output=True, text=True, check=False).stdout.strip()
    assert bool(email) == ("user.email" not in " ".join(expected))


@pytest.mark.parametrize("junk", ["garbage line", "zzzz refs/tags/run/x",
                                  "{h} refs/tags/run/r1 ", "^not-a-hash"])
def test_a_packed_refs_file_git_would_refuse_is_left_to_git(tmp_path: Path, junk: str) -> None:
    repo = RunsRepo(tmp_path / "runs")
    repo.ensure()
    git(repo.path, "tag", "run/r1")
    git(repo.path, "pack-refs", "--all")
    packed = repo.path / ".git" / "packed-refs"
    head = git(repo.path, "rev-parse", "HEAD").strip()
    assert refs.ref_value(repo.path / ".git", "refs/tags/run/r1") == head
    packed.write_text(packed.read_text() + junk.format(h=head) + "\n")
    assert refs.ref_value(repo.path / ".git", "refs/tags/run/r1") == refs.UNKNOWN
    assert refs.ref_value(repo.path / ".git", "refs/tags/run/r2") == refs.UNKNOWN
