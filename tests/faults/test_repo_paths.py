"""Which runs repository, and which run: a relative ``[record] repo`` belongs to the job
file's directory, lookups name the repository they searched, a prefix of several runs
never picks the cluster ``down`` or ``ssh`` acts on, and ``gc`` and ``show`` say what
a new user needs to read."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from composer.record import RunsRepo, default_repo_path
from tests.conftest import Composer, sshd_processes

from .conftest import Tally
from .util import STAGES, final_json, simple_job, write_job

pytestmark = pytest.mark.integration


def no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr, done.stderr[-3000:]


def tags_in(repo: Path) -> list[str]:
    out = subprocess.run(["git", "-C", str(repo), "tag", "--list", "run/*"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


# -- 1. [record] repo is relative to the job file, flags and env to the cwd ----


def test_record_repo_is_relative_to_the_job_file(tmp_path: Path, tally: Tally) -> None:
    with tally.check("walkthrough"):
        elsewhere = tmp_path / "x"
        elsewhere.mkdir()
        c = Composer(home=tmp_path / "home", runs=tmp_path / "unused", cwd=elsewhere)
        job = write_job(tmp_path / "job", simple_job("relrepo", 1, ["true"],
                                                     record={"repo": "myruns"}))
        # COMPOSER_RUNS_REPO empty counts as unset: [record] repo decides.
        done = c.run("up", str(job), "--json", COMPOSER_RUNS_REPO="")
        assert done.returncode == 0, done.stderr[-3000:]
        run_id = final_json(done.stdout)["run_id"]
        assert not (elsewhere / "myruns").exists()
        assert tags_in(tmp_path / "job" / "myruns") == [f"run/{run_id}"]
        assert not sshd_processes(str(c.home))

        # --runs-repo stays relative to the current directory.
        shown = c.run("show", run_id, "--runs-repo", "../job/myruns", COMPOSER_RUNS_REPO="")
        assert shown.returncode == 0, shown.stderr
        # reproduce finds the run through the [record] repo of --job (its directory),
        # and records the reproduction next to it.
        again = c.run("reproduce", run_id, "--job", "../job/job.toml", "--json",
                      COMPOSER_RUNS_REPO="")
        assert again.returncode == 0, again.stderr[-3000:]
        verdict = final_json(again.stdout)
        assert verdict["verdict"] == "identical"
        assert f"run/{verdict['run_id']}" in tags_in(tmp_path / "job" / "myruns")
        assert not (elsewhere / "myruns").exists() and not (elsewhere / "runs").exists()
        assert not sshd_processes(str(c.home))


def test_repo_path_bases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         tally: Tally) -> None:
    with tally.check("walkthrough"):
        monkeypatch.delenv("COMPOSER_RUNS_REPO", raising=False)
        cwd, job = tmp_path / "cwd", tmp_path / "jobs" / "a" / "job.toml"
        assert default_repo_path(None, "myruns", cwd, job) == job.parent / "myruns"
        assert default_repo_path(None, "../shared", cwd, job) == tmp_path / "jobs" / "shared"
        assert default_repo_path(None, "/srv/runs", cwd, job) == Path("/srv/runs")
        assert default_repo_path(None, None, cwd, job) == cwd / "runs"
        assert default_repo_path("flag", "myruns", cwd, job) == cwd / "flag"
        monkeypatch.setenv("COMPOSER_RUNS_REPO", "env-runs")
        assert default_repo_path(None, "myruns", cwd, job) == cwd / "env-runs"


# -- 2. lookups name the repository they searched ------------------------------


def test_lookups_name_the_runs_repo(tmp_path: Path, tally: Tally) -> None:
    with tally.check("walkthrough"):
        repo = tmp_path / "records"
        RunsRepo(repo).ensure()
        c = Composer(home=tmp_path / "home", runs=repo, cwd=tmp_path)
        for args in (["show", "nosuch"], ["reproduce", "nosuch"], ["diff", "nosuch", "x"]):
            done = c.run(*args)
            assert done.returncode == 2, (args, done.stderr)
            assert f"in {repo} (from COMPOSER_RUNS_REPO)" in done.stderr, (args, done.stderr)
            no_traceback(done)

        missing = tmp_path / "missing"
        for extra in ([], ["--json"]):
            done = c.run("runs", *extra, COMPOSER_RUNS_REPO=str(missing))
            assert done.returncode == 0, done.stderr
            assert f"no recorded runs in {missing} (from COMPOSER_RUNS_REPO)" in done.stderr
            assert "--runs-repo" in done.stderr
            if extra:
                assert final_json(done.stdout) == {"runs": []}
            else:
                assert done.stdout == ""
        assert not missing.exists()

        plain = tmp_path / "a-file"
        plain.write_text("not a repository\n")
        by_env = c.run("runs", COMPOSER_RUNS_REPO=str(plain))
        assert by_env.returncode == 2, by_env.stderr
        assert str(plain) in by_env.stderr and "COMPOSER_RUNS_REPO" in by_env.stderr
        no_traceback(by_env)
        by_flag = c.run("show", "x", "--runs-repo", "a-file", COMPOSER_RUNS_REPO="")
        assert by_flag.returncode == 2, by_flag.stderr
        assert f"{plain} (from --runs-repo)" in by_flag.stderr
        no_traceback(by_flag)
        stray = tmp_path / "stray"
        stray.mkdir()
        (stray / "notes.txt").write_text("mine\n")
        not_git = c.run("runs", "--json", COMPOSER_RUNS_REPO=str(stray))
        assert not_git.returncode == 2 and "is not a git repository" in not_git.stderr
        assert final_json(not_git.stdout)["exit_code"] == 2


# -- 3-5. a kept cluster next to a finished run ----------------------------------


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Composer, str, str]]:
    """A finished run and a kept one, recorded in one repository: (composer, done, kept)."""
    tmp = tmp_path_factory.mktemp("prefix")
    c = Composer(home=tmp / "home", runs=tmp / "runs", cwd=tmp)
    job = write_job(tmp / "job", simple_job("prefixed", 1, ["true"]))
    first = c.run("up", str(job), "--json")
    assert first.returncode == 0, first.stderr[-3000:]
    kept = c.run("up", str(job), "--keep", "--json")
    assert kept.returncode == 0, kept.stderr[-3000:]
    kept_id = final_json(kept.stdout)["run_id"]
    try:
        yield c, final_json(first.stdout)["run_id"], kept_id
    finally:
        if (c.home / "work" / kept_id).exists():
            c.run("down", kept_id, timeout=120)
    assert not sshd_processes(str(c.home))


def test_show_aligns_labels_and_orders_stages(two_runs: tuple[Composer, str, str],
                                              tally: Tally) -> None:
    with tally.check("walkthrough"):
        c, done_id, _ = two_runs
        shown = c.run("show", done_id)
        assert shown.returncode == 0, shown.stderr
        head = shown.stdout.split("\nfiles\n")[0].splitlines()
        labels = {}
        for line in head:
            match = re.fullmatch(r"([a-z_]+) +(\S.*)", line)
            assert match, f"label and value run together: {line!r}"
            labels[match[1]] = match[2]
        assert labels["exit_code"] == "0"
        assert labels["duration_s"][0].isdigit() and labels["started_at"].startswith("20")
        stages = [item.split()[0] for item in labels["stages"].split(", ")]
        assert set(stages) >= {"render", "apply", "run", "destroy"}
        assert stages == sorted(stages, key=STAGES.index), stages


def test_gc_hint_repeats_the_flags(two_runs: tuple[Composer, str, str], tally: Tally) -> None:
    with tally.check("walkthrough"):
        c, _, kept_id = two_runs
        assert (c.home / "work" / kept_id).is_dir(), "the kept run is gone"
        listed = c.run("gc", "--include-kept")
        assert listed.returncode == 0, listed.stderr
        assert kept_id in listed.stdout and " down" in listed.stdout
        assert "composer gc --yes --include-kept" in listed.stdout, listed.stdout
        plain = c.run("gc")
        assert "skip (kept)" in plain.stdout and "--yes" not in plain.stdout, plain.stdout


def test_down_and_ssh_refuse_an_ambiguous_prefix(two_runs: tuple[Composer, str, str],
                                                 tally: Tally) -> None:
    with tally.check("walkthrough"):
        c, done_id, kept_id = two_runs
        prefix = os.path.commonprefix([done_id, kept_id])
        assert prefix and prefix not in (done_id, kept_id)
        assert sshd_processes(kept_id), "the kept cluster is not up"

        for args in (["ssh", prefix, "--", "true"], ["down", prefix], ["down", prefix, "--json"]):
            done = c.run(*args, timeout=120)
            assert done.returncode == 2, (args, done.stdout, done.stderr)
            assert "matches 2 runs" in done.stderr
            assert done_id in done.stderr and kept_id in done.stderr
            no_traceback(done)
        assert sshd_processes(kept_id) and (c.home / "work" / kept_id).is_dir()

        # Also when the runs repository is only known from the kept run's work dir.
        away = Composer(home=c.home, runs=c.runs, cwd=c.home)
        assert not (away.cwd / "runs").exists()
        elsewhere = away.run("down", prefix, COMPOSER_RUNS_REPO="")
        assert elsewhere.returncode == 2 and "matches 2 runs" in elsewhere.stderr
        assert sshd_processes(kept_id)

        # An exact id, or run/<id>, always works.
        hi = c.run("ssh", kept_id, "--", "echo", "hi", timeout=60)
        assert hi.returncode == 0 and hi.stdout == "hi\n", hi.stderr
        gone = c.run("down", f"run/{kept_id}", "--json", timeout=120)
        assert gone.returncode == 0, gone.stderr
        assert final_json(gone.stdout)["teardown"]["status"] == "destroyed"
        assert not sshd_processes(kept_id)
