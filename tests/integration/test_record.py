"""The runs repository against real git: commits, tags, refusals, locking, lookup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from composer.errors import RecordError, RunNotFound
from composer.record import (
    FORBIDDEN_CONTENT,
    RunsRepo,
    _git,
    default_repo_path,
    find_forbidden,
)
from tests.conftest import git

ROOT = Path(__file__).resolve().parents[2]
KEY_TEXT = "-----BEGIN OPENSSH " + "PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n"



def commit_count(repo: Path) -> int:
    return int(git(repo, "rev-list", "--count", "HEAD").strip())


def tags(repo: Path) -> list[str]:
    return git(repo, "tag", "-l", "run/*").split()


def stage(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    for name, text in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root


def result_json(run_id: str, started_at: str, **extra: object) -> str:
    fields = {
        "run_id": run_id,
        "job": "train",
        "status": "succeeded",
        "nodes": 2,
        "duration_s": 12.5,
        "started_at": started_at,
    }
    fields.update(extra)
    return json.dumps(fields)


@pytest.fixture
def repo(tmp_path: Path) -> RunsRepo:
    runs = RunsRepo(tmp_path / "runs")
    runs.ensure()
    return runs


def record(
    repo: RunsRepo,
    tmp_path: Path,
    run_id: str,
    started_at: str = "2024-01-01T00:00:00Z",
) -> str:
    staged = stage(
        tmp_path / f"stage-{run_id}",
        {"result.json": result_json(run_id, started_at), "logs/node0.log": "ok\n"},
    )
    return repo.commit_run(run_id, staged, f"Record run {run_id}")


# ensure


def test_ensure_creates_repo_with_initial_commit(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "runs"
    RunsRepo(path).ensure()

    assert (path / ".git").is_dir()
    assert "composer" in (path / "README.md").read_text()
    ignored = [line for line in (path / ".gitignore").read_text().splitlines()
               if line and not line.startswith("#")]
    # Only composer's own artifacts, anchored: never users' names such as id_* or *.key.
    assert all(rule.startswith("/") for rule in ignored), ignored
    for pattern in ("*.key", "id_*", "*.tfstate*", "*.tmp-*/"):
        assert pattern not in ignored
    assert "/*/infra/**/.terraform/" in ignored
    assert commit_count(path) == 1
    assert git(path, "log", "-1", "--format=%s").strip() == "Initialize runs repository"
    assert git(path, "symbolic-ref", "--short", "HEAD").strip() == "main"
    assert git(path, "ls-files").split() == [".gitignore", "README.md"]
    assert git(path, "status", "--porcelain") == ""


def test_ensure_is_idempotent(tmp_path: Path) -> None:
    repo = RunsRepo(tmp_path / "runs")
    repo.ensure()
    head = git(repo.path, "rev-parse", "HEAD")
    repo.ensure()
    RunsRepo(tmp_path / "runs").ensure()
    assert git(repo.path, "rev-parse", "HEAD") == head
    assert commit_count(repo.path) == 1


def test_ensure_uses_an_existing_empty_directory(tmp_path: Path) -> None:
    path = tmp_path / "runs"
    path.mkdir()
    RunsRepo(path).ensure()
    assert commit_count(path) == 1
    assert not [p for p in tmp_path.iterdir() if p.name != "runs"]


def test_ensure_adopts_a_git_repo_without_commits(tmp_path: Path) -> None:
    path = tmp_path / "runs"
    path.mkdir()
    git(path, "init", "-q")
    RunsRepo(path).ensure()
    assert commit_count(path) == 1
    assert (path / "README.md").exists()


def test_ensure_refuses_a_non_empty_directory_that_is_not_a_repo(
    tmp_path: Path,
) -> None:
    path = tmp_path / "runs"
    path.mkdir()
    (path / "notes.txt").write_text("mine\n")
    with pytest.raises(RecordError, match="not a git repository") as err:
        RunsRepo(path).ensure()
    assert err.value.hint
    assert sorted(p.name for p in path.iterdir()) == ["notes.txt"]


def test_ensure_refuses_a_file(tmp_path: Path) -> None:
    path = tmp_path / "runs"
    path.write_text("")
    with pytest.raises(RecordError, match="not a directory"):
        RunsRepo(path).ensure()


def test_ensure_from_many_processes_at_once(tmp_path: Path) -> None:
    path = tmp_path / "runs"
    go = tmp_path / "go"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from composer.record import RunsRepo\n"
        "while not Path(sys.argv[2]).exists(): time.sleep(0.002)\n"
        "RunsRepo(Path(sys.argv[1])).ensure()\n"
    )
    procs = [spawn(script, str(path), str(go)) for _ in range(6)]
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert commit_count(path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["go", "runs"]


# commit_run


def test_commit_run_commits_and_tags(repo: RunsRepo, tmp_path: Path) -> None:
    staged = stage(
        tmp_path / "staged",
        {
            "result.json": result_json("r1", "2024-01-01T00:00:00Z"),
            "lock.json": "{}",
            "logs/node0.log": "hello\n",
        },
    )
    sha = repo.commit_run("r1", staged, "Record run r1: train succeeded")

    assert len(sha) == 40
    assert git(repo.path, "rev-parse", "HEAD").strip() == sha
    assert git(repo.path, "rev-parse", "run/r1^{commit}").strip() == sha
    assert tags(repo.path) == ["run/r1"]
    assert commit_count(repo.path) == 2
    subject = git(repo.path, "log", "-1", "--format=%s", "run/r1").strip()
    assert subject == "Record run r1: train succeeded"
    stat = git(repo.path, "show", "--stat", "--format=", "run/r1")
    for name in ("r1/result.json", "r1/lock.json", "r1/logs/node0.log"):
        assert name in stat
    assert (repo.run_dir("r1") / "logs" / "node0.log").read_text() == "hello\n"
    assert repo.run_dir("r1") == repo.path / "r1"
    assert git(repo.path, "status", "--porcelain") == ""
    assert (staged / "result.json").exists()


def test_commit_run_creates_the_repository(tmp_path: Path) -> None:
    repo = RunsRepo(tmp_path / "fresh")
    record(repo, tmp_path, "r1")
    assert commit_count(repo.path) == 2
    assert tags(repo.path) == ["run/r1"]


def test_commit_run_commits_only_the_run_dir(repo: RunsRepo, tmp_path: Path) -> None:
    (repo.path / "scratch.txt").write_text("not mine\n")
    git(repo.path, "add", "scratch.txt")
    record(repo, tmp_path, "r1")
    assert git(repo.path, "show", "--name-only", "--format=", "HEAD").split() == [
        "r1/logs/node0.log",
        "r1/result.json",
    ]
    assert "A  scratch.txt" in git(repo.path, "status", "--porcelain")


@pytest.mark.parametrize(
    ("files", "offender"),
    [
        ({"terraform.tfstate": "{}"}, "terraform.tfstate"),
        ({"infra/terraform.tfstate.backup": "{}"}, "infra/terraform.tfstate.backup"),
        ({"plan.tfplan": "x"}, "plan.tfplan"),
        ({".terraform/providers/x": "x"}, ".terraform/"),
        ({"terraform.tfstate.d/dev/state": "x"}, "terraform.tfstate.d/"),
        ({"notes/key.txt": KEY_TEXT}, "notes/key.txt"),
        ({"k": "-----BEGIN RSA " + "PRIVATE KEY-----\n"}, "k"),
    ],
)
def test_forbidden_content_is_refused(
    repo: RunsRepo, tmp_path: Path, files: dict[str, str], offender: str
) -> None:
    staged = stage(tmp_path / "staged", {"result.json": "{}", **files})
    with pytest.raises(RecordError, match="forbidden") as err:
        repo.commit_run("r1", staged, "Record run r1")

    assert offender in err.value.message
    assert "result.json" not in err.value.message
    assert not repo.run_dir("r1").exists()
    assert commit_count(repo.path) == 1
    assert tags(repo.path) == []
    assert sorted(p.name for p in repo.path.iterdir()) == [
        ".git",
        ".gitignore",
        "README.md",
    ]


def test_forbidden_lists_every_offender(tmp_path: Path) -> None:
    staged = stage(
        tmp_path / "staged",
        {"a.tfstate": "", "b/id.pem": KEY_TEXT, "ok.txt": "fine", ".terraform/x": ""},
    )
    found = [f.path for f in find_forbidden(staged)]
    assert found == [".terraform/", "a.tfstate", "b/id.pem"]


def test_private_key_marker_across_read_chunks(tmp_path: Path) -> None:
    target = tmp_path / "big.log"
    marker = b"-----BEGIN " + FORBIDDEN_CONTENT
    target.write_bytes(b"x" * ((1 << 20) - 5) + marker + b"\n")
    assert [f.path for f in find_forbidden(tmp_path)] == ["big.log"]


OLD_GITIGNORE = "*.tfstate*\n.terraform/\n*.tfplan\n*.key\nid_*\n*.tmp-*/\n"


def test_ignore_rules_never_drop_or_refuse_run_files(
    repo: RunsRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A runs repo made with the old .gitignore, a repo-local exclude and a user's
    # global excludes: none of them may drop or refuse a file of a record.
    (repo.path / ".gitignore").write_text(OLD_GITIGNORE)
    git(repo.path, "commit", "-qam", "old ignore rules")
    (repo.path / ".git" / "info").mkdir(exist_ok=True)
    (repo.path / ".git" / "info" / "exclude").write_text("*.csv\n")
    excludes = tmp_path / "global-excludes"
    excludes.write_text("*.log\n*.json\n")
    config = tmp_path / "gitconfig"
    config.write_text(f"[core]\n\texcludesFile = {excludes}\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    files = {"result.json": "{}", "ssh/id_ed25519.pub": "ssh-ed25519 AAAA",
             "outputs/model.key": "weights", "outputs/id_to_label.json": "{}",
             "logs/composer.log": "ok\n", "outputs/t.csv": "a,b\n",
             "outputs/[x]*.txt": "glob-looking name\n"}
    staged = stage(tmp_path / "staged", files)
    repo.commit_run("r1", staged, "Record run r1")
    committed = git(repo.path, "ls-tree", "-r", "--name-only", "run/r1", "--", "r1/")
    assert sorted(committed.split("\n")[:-1]) == sorted(f"r1/{name}" for name in files)
    assert git(repo.path, "status", "--porcelain", "--ignored", "--", "r1") == ""


def test_user_git_settings_do_not_change_or_block_a_record(
    repo: RunsRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "pre-commit").write_text("#!/bin/sh\nexit 1\n")
    (hooks / "pre-commit").chmod(0o755)
    config = tmp_path / "gitconfig"
    config.write_text(f"[core]\n\thooksPath = {hooks}\n\tautocrlf = true\n"
                      "[commit]\n\tgpgSign = true\n[tag]\n\tgpgSign = true\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    staged = stage(tmp_path / "staged", {"result.json": "{}", "outputs/crlf.txt": "a\r\nb\r\n"})
    repo.commit_run("r1", staged, "Record run r1")
    blob = subprocess.run(["git", "-C", str(repo.path), "show", "run/r1:r1/outputs/crlf.txt"],
                          capture_output=True, check=True).stdout
    assert blob == b"a\r\nb\r\n"


HOSTILE_OUTPUTS = {
    "outputs/node-0/model.key": "weights, not a key\n",
    "outputs/node-0/id_rsa.pub": "ssh-ed25519 AAAA user@host\n",
    "outputs/node-0/id_to_label.json": '{"0": "cat"}\n',
    "outputs/node-0/sweep.tfstate.json": '{"version": 4}\n',
    "outputs/node-0/notes.md": "# notes\n-----BEGIN RSA " + "PRIVATE KEY-----\nMIIE\n",
    "outputs/node-0/.git/config": "[core]\n",
    "outputs/node-0/.terraform/x": "x",
}


def hostile_manifest() -> str:
    return json.dumps({"schema_version": 1, "files": [
        {"path": name.removeprefix("outputs/"), "node": "node-0", "size": len(text),
         "sha256": "00" * 32, "committed": True}
        for name, text in HOSTILE_OUTPUTS.items()]})


def test_outputs_that_look_like_keys_or_state_are_withheld_not_refused(
    repo: RunsRepo, tmp_path: Path
) -> None:
    staged = stage(tmp_path / "staged", {"result.json": "{}", **HOSTILE_OUTPUTS,
                                         "manifest.json": hostile_manifest()})
    repo.commit_run("r1", staged, "Record run r1")

    committed = git(repo.path, "ls-tree", "-r", "--name-only", "run/r1", "--", "r1/").split()
    assert sorted(committed) == [
        "r1/manifest.json", "r1/outputs/node-0/id_rsa.pub", "r1/outputs/node-0/id_to_label.json",
        "r1/outputs/node-0/model.key", "r1/result.json",
    ]
    listed = json.loads(git(repo.path, "show", "run/r1:r1/manifest.json"))
    entries = {e["path"]: e for e in listed["files"]}
    for name in ("sweep.tfstate.json", "notes.md", ".git/config", ".terraform/x"):
        entry = entries[f"node-0/{name}"]
        assert entry["committed"] is False and entry["withheld"], entry
        assert "sha256" not in entry
    assert "private key" in entries["node-0/notes.md"]["withheld"]
    assert "Terraform" in entries["node-0/sweep.tfstate.json"]["withheld"]
    assert entries["node-0/model.key"]["committed"] is True


def test_logs_quoting_a_private_key_lose_only_the_key(repo: RunsRepo, tmp_path: Path) -> None:
    log = ("before\n-----BEGIN OPENSSH " + "PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\nAAAA\n"
           "-----END OPENSSH " + "PRIVATE KEY-----\nafter\n")
    staged = stage(tmp_path / "staged", {"result.json": "{}", "logs/node-0.log": log})
    repo.commit_run("r1", staged, "Record run r1")
    text = git(repo.path, "show", "run/r1:r1/logs/node-0.log")
    assert "PRIVATE KEY-----" not in text and "b3BlbnNzaC1rZXk=" not in text
    assert text.startswith("before\n") and text.endswith("after\n")
    assert "private key" in text


def test_duplicate_run_id_is_refused(repo: RunsRepo, tmp_path: Path) -> None:
    record(repo, tmp_path, "r1")
    staged = stage(tmp_path / "again", {"result.json": "{}"})
    with pytest.raises(RecordError, match="already exists"):
        repo.commit_run("r1", staged, "Record run r1 again")
    assert commit_count(repo.path) == 2
    assert (repo.run_dir("r1") / "logs" / "node0.log").exists()


def test_tagged_run_id_is_refused_even_without_its_dir(
    repo: RunsRepo, tmp_path: Path
) -> None:
    git(repo.path, "tag", "run/r1")
    staged = stage(tmp_path / "staged", {"result.json": "{}"})
    with pytest.raises(RecordError, match="already tagged"):
        repo.commit_run("r1", staged, "Record run r1")
    assert not repo.run_dir("r1").exists()


@pytest.mark.parametrize(
    "run_id", ["", "../x", "a/b", ".hidden", "x.lock", "a b", "r.tmp-1"]
)
def test_invalid_run_ids_are_refused(
    repo: RunsRepo, tmp_path: Path, run_id: str
) -> None:
    staged = stage(tmp_path / "staged", {"result.json": "{}"})
    with pytest.raises(RecordError, match="invalid run id"):
        repo.commit_run(run_id, staged, "Record")
    assert commit_count(repo.path) == 1


def test_empty_record_and_empty_message_are_refused(
    repo: RunsRepo, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    with pytest.raises(RecordError, match="empty"):
        repo.commit_run("r1", empty, "Record run r1")
    staged = stage(tmp_path / "staged", {"result.json": "{}"})
    with pytest.raises(RecordError, match="message"):
        repo.commit_run("r1", staged, "  ")
    with pytest.raises(RecordError, match="not a directory"):
        repo.commit_run("r1", tmp_path / "missing", "Record run r1")
    assert commit_count(repo.path) == 1


def test_leftover_tmp_dir_is_cleaned_and_not_committed(
    repo: RunsRepo, tmp_path: Path
) -> None:
    leftover = repo.path / "r0.tmp-0123456789ab"
    (leftover / "logs").mkdir(parents=True)
    (leftover / "logs" / "half.log").write_text("partial")
    record(repo, tmp_path, "r1")

    assert not leftover.exists()
    assert "r0" not in git(repo.path, "ls-files")
    assert git(repo.path, "ls-tree", "--name-only", "HEAD").split() == [
        ".gitignore",
        "README.md",
        "r1",
    ]
    assert not list(repo.path.glob("*.tmp-*"))


def test_ensure_cleans_leftover_tmp_dirs(repo: RunsRepo) -> None:
    leftover = repo.path / "r9.tmp-ffffffffffff"
    leftover.mkdir()
    (leftover / "result.json").write_text("{}")
    repo.ensure()
    assert not leftover.exists()
    assert commit_count(repo.path) == 1


def test_only_composers_own_leftovers_are_removed(repo: RunsRepo, tmp_path: Path) -> None:
    mine = ["analysis.tmp-2024", "r1.tmp-0123456789abc", "r1.tmp-0123456789AB",
            "..tmp-0123456789ab", ".x.tmp-0123456789ab"]
    for name in mine:
        (repo.path / name).mkdir()
        (repo.path / name / "notes.md").write_text("mine\n")
    (repo.path / "link.tmp-0123456789ab").symlink_to(tmp_path)
    record(repo, tmp_path, "r2")
    for name in mine:
        assert (repo.path / name / "notes.md").read_text() == "mine\n", name
    assert (repo.path / "link.tmp-0123456789ab").is_symlink()
    assert tmp_path.is_dir()


def test_identity_fallback_without_configured_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    for name in ("GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(name, raising=False)
    repo = RunsRepo(tmp_path / "runs")
    record(repo, tmp_path, "r1")
    ident = git(repo.path, "log", "--format=%an <%ae>|%cn <%ce>", "-1").strip()
    assert ident == "composer <composer@localhost>|composer <composer@localhost>"


def test_configured_identity_is_kept(repo: RunsRepo, tmp_path: Path) -> None:
    git(repo.path, "config", "user.name", "Ada")
    git(repo.path, "config", "user.email", "ada@example.org")
    record(repo, tmp_path, "r1")
    assert git(repo.path, "log", "-1", "--format=%ae").strip() == "ada@example.org"


def test_git_failure_names_the_command(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="git rev-parse --verify nope") as err:
        _git(tmp_path, "rev-parse", "--verify", "nope")
    assert "exit" in err.value.message


# locking and concurrency


def spawn(script: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_lock_is_exclusive_and_times_out(repo: RunsRepo) -> None:
    with repo.lock():
        assert (repo.path / ".git" / "composer.lock").exists()
        started = time.monotonic()
        with (
            pytest.raises(RecordError, match="timed out") as err,
            repo.lock(timeout=0.2),
        ):
            pass
        assert 0.15 < time.monotonic() - started < 5
        assert err.value.hint
    with repo.lock(timeout=0.2):
        pass


def test_lock_without_repository(tmp_path: Path) -> None:
    with (
        pytest.raises(RecordError, match="not a runs repository"),
        RunsRepo(tmp_path / "nope").lock(),
    ):
        pass


def test_concurrent_commits_all_land(tmp_path: Path) -> None:
    path = tmp_path / "runs"
    go = tmp_path / "go"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from composer.record import RunsRepo\n"
        "repo, staged, run_id, go = sys.argv[1:5]\n"
        "while not Path(go).exists(): time.sleep(0.002)\n"
        "runs = RunsRepo(Path(repo))\n"
        "print(runs.commit_run(run_id, Path(staged), 'Record ' + run_id))\n"
    )
    run_ids = [f"run-{i}" for i in range(8)]
    procs = []
    for i, run_id in enumerate(run_ids):
        started = f"2024-01-01T00:00:0{7 - i}Z"
        staged = stage(
            tmp_path / f"stage-{run_id}",
            {"result.json": result_json(run_id, started), "out.txt": f"{i}\n" * 100},
        )
        procs.append(spawn(script, str(path), str(staged), run_id, str(go)))
    go.touch()
    shas = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        shas.append(out.strip())

    assert sorted(tags(path)) == [f"run/{r}" for r in run_ids]
    assert commit_count(path) == 9
    assert len(set(shas)) == 8
    for run_id, sha in zip(run_ids, shas, strict=True):
        assert git(path, "rev-parse", f"run/{run_id}^{{commit}}").strip() == sha
    assert not list(path.glob("*.tmp-*"))
    assert git(path, "status", "--porcelain") == ""
    assert [s.run_id for s in RunsRepo(path).list_runs()] == run_ids[::-1]


# reading


def test_list_runs_sorted_with_unknown_results(repo: RunsRepo, tmp_path: Path) -> None:
    record(repo, tmp_path, "b-run", "2024-03-01T00:00:00Z")
    record(repo, tmp_path, "a-run", "2024-03-01T00:00:00Z")
    first = record(repo, tmp_path, "z-run", "2024-01-01T00:00:00Z")
    broken = stage(tmp_path / "broken", {"result.json": "{not json", "x.log": "x"})
    repo.commit_run("broken", broken, "Record broken")
    bare = stage(tmp_path / "bare", {"x.log": "x"})
    repo.commit_run("bare", bare, "Record bare")
    odd = stage(
        tmp_path / "odd",
        {"result.json": json.dumps({"nodes": "two", "duration_s": None, "status": 3})},
    )
    repo.commit_run("odd", odd, "Record odd")

    runs = repo.list_runs()
    assert [r.run_id for r in runs] == [
        "bare",
        "broken",
        "odd",
        "z-run",
        "a-run",
        "b-run",
    ]
    by_id = {r.run_id: r for r in runs}
    assert by_id["bare"].status == "unknown"
    assert by_id["broken"].status == "unknown"
    assert by_id["odd"].status == "unknown"
    assert by_id["odd"].nodes == 0
    assert by_id["odd"].duration_s is None
    z = by_id["z-run"]
    assert (z.job, z.status, z.nodes, z.duration_s) == ("train", "succeeded", 2, 12.5)
    assert (z.started_at, z.commit, z.tag) == (
        "2024-01-01T00:00:00Z",
        first,
        "run/z-run",
    )


def test_list_runs_reads_the_tagged_commit(repo: RunsRepo, tmp_path: Path) -> None:
    sha = record(repo, tmp_path, "r1")
    (repo.run_dir("r1") / "result.json").write_text(json.dumps({"status": "tampered"}))
    git(repo.path, "commit", "-qam", "edit")
    (summary,) = repo.list_runs()
    assert summary.status == "succeeded"
    assert summary.commit == sha


def test_list_runs_without_a_repository(tmp_path: Path) -> None:
    repo = RunsRepo(tmp_path / "nothing")
    assert repo.list_runs() == []
    with pytest.raises(RunNotFound):
        repo.resolve("x")


def test_resolve(repo: RunsRepo, tmp_path: Path) -> None:
    for run_id in ("20240101-train-aaaa", "20240101-train-abcd", "20240202-eval-ffff"):
        record(repo, tmp_path, run_id)

    assert repo.resolve("20240101-train-aaaa") == "20240101-train-aaaa"
    assert repo.resolve("run/20240202-eval-ffff") == "20240202-eval-ffff"
    assert repo.resolve("2024020") == "20240202-eval-ffff"
    assert repo.resolve("20240101-train-ab") == "20240101-train-abcd"
    assert repo.resolve("run/20240101-train-aa") == "20240101-train-aaaa"

    with pytest.raises(RunNotFound) as ambiguous:
        repo.resolve("20240101")
    assert "20240101-train-aaaa" in ambiguous.value.message
    assert "20240101-train-abcd" in ambiguous.value.message
    assert "2 runs" in ambiguous.value.message

    for missing in ("nope", "", "run/"):
        with pytest.raises(RunNotFound) as none:
            repo.resolve(missing)
        assert none.value.hint is not None
        assert none.value.hint.startswith("composer runs lists the recorded runs")
        assert str(repo.path) in none.value.message


def test_resolve_prefers_exact_over_prefix(repo: RunsRepo, tmp_path: Path) -> None:
    record(repo, tmp_path, "abc")
    record(repo, tmp_path, "abcd")
    assert repo.resolve("abc") == "abc"


def test_show(repo: RunsRepo, tmp_path: Path) -> None:
    staged = stage(
        tmp_path / "staged",
        {
            "result.json": result_json("r1", "2024-01-01T00:00:00Z"),
            "lock.json": json.dumps({"schema": 1, "images": {}}),
            "logs/node 0.log": "x",
            "spec.yaml": "job: train\n",
        },
    )
    sha = repo.commit_run("r1", staged, "Record run r1")
    record(repo, tmp_path, "r2")

    shown = repo.show("run/r1")
    assert shown["run_id"] == "r1"
    assert shown["tag"] == "run/r1"
    assert shown["commit"] == sha
    assert shown["files"] == [
        "lock.json",
        "logs/node 0.log",
        "result.json",
        "spec.yaml",
    ]
    assert shown["result"]["status"] == "succeeded"
    assert shown["lock"] == {"schema": 1, "images": {}}

    bare = repo.show("r2")
    assert bare["lock"] is None
    assert bare["files"] == ["logs/node0.log", "result.json"]


# default_repo_path


def test_default_repo_path_precedence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COMPOSER_RUNS_REPO", raising=False)
    cwd = tmp_path / "work"
    assert default_repo_path(None, None, cwd) == cwd / "runs"
    assert default_repo_path(None, "records", cwd) == cwd / "records"
    assert default_repo_path(None, "/srv/runs", cwd) == Path("/srv/runs")

    monkeypatch.setenv("COMPOSER_RUNS_REPO", "../env-runs")
    assert default_repo_path(None, "records", cwd) == tmp_path / "env-runs"

    assert default_repo_path("flag-runs", "records", cwd) == cwd / "flag-runs"
    assert default_repo_path("/abs/flag", "records", cwd) == Path("/abs/flag")

    monkeypatch.setenv("COMPOSER_RUNS_REPO", "")
    assert default_repo_path(None, "records", cwd) == cwd / "records"


def test_default_repo_path_is_absolute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMPOSER_RUNS_REPO", raising=False)
    result = default_repo_path(None, None, Path("rel/dir"))
    assert result.is_absolute()
    assert result == Path.cwd() / "rel" / "dir" / "runs"
    home = default_repo_path("~/runs", None, Path("/x"))
    assert home == Path.home() / "runs"
