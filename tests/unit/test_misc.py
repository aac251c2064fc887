"""Node facts, output matching and manifests, tree hashes, exit codes, spec errors, git pins."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from composer.collect import OutputFile, manifest, matches
from composer.errors import ExitCode, Interrupted, Problem, SpecError
from composer.facts import parse_facts
from composer.hashing import file_sha256, tree_files, tree_sha256
from composer.lock import git_pin
from composer.result import status_exit_code
from composer.spec import parse_spec

FACTS = """\
hostname=node-a
cpus=16
memory_kb=131893000
kernel=Linux 6.8.0-45-generic
arch=x86_64
os=Ubuntu 22.04.4 LTS
mpi=mpirun (Open MPI) 5.0.3
python=Python 3.11.9
node_addr=127.0.0.2
"""


def test_parse_facts_without_gpus() -> None:
    assert parse_facts(FACTS) == {
        "gpus": [],
        "hostname": "node-a",
        "cpus": 16,
        "memory_kb": 131893000,
        "kernel": "Linux 6.8.0-45-generic",
        "arch": "x86_64",
        "os": "Ubuntu 22.04.4 LTS",
        "mpi": "mpirun (Open MPI) 5.0.3",
        "python": "Python 3.11.9",
        "node_addr": "127.0.0.2",
    }


def test_parse_facts_with_gpus() -> None:
    text = FACTS + (
        "gpu=NVIDIA H100 80GB HBM3, 550.54.15, 81559 MiB\n"
        "gpu=NVIDIA H100 80GB HBM3, 550.54.15, 81559 MiB\n"
        "gpu=Tesla T4,535.1\n"
    )
    facts = parse_facts(text)
    assert facts["gpus"] == [
        {"name": "NVIDIA H100 80GB HBM3", "driver": "550.54.15", "memory": "81559 MiB"},
        {"name": "NVIDIA H100 80GB HBM3", "driver": "550.54.15", "memory": "81559 MiB"},
        {"name": "Tesla T4", "driver": "535.1", "memory": ""},
    ]
    assert facts["cpus"] == 16
    assert facts["hostname"] == "node-a"


def test_parse_facts_blank_and_odd_values() -> None:
    facts = parse_facts(
        "cpus=\nmemory_kb=unknown\nmpi=\nnode_addr=\n"
        "no separator here\n\nos=Name=With=Equals\nkernel=  Linux 6.1  \n"
    )
    assert facts == {
        "gpus": [],
        "cpus": None,
        "memory_kb": None,
        "mpi": None,
        "node_addr": None,
        "os": "Name=With=Equals",
        "kernel": "Linux 6.1",
    }


def test_parse_facts_empty() -> None:
    assert parse_facts("") == {"gpus": []}


@pytest.mark.parametrize(
    ("rel", "patterns", "expected"),
    [
        ("model.npz", ("model.npz",), True),
        ("model.npz", ("metrics.json",), False),
        ("hello-3.json", ("hello-*.json",), True),
        ("hello.json", ("hello-*.json",), False),
        ("Model.npz", ("model.npz",), False),
        ("model.NPZ", ("*.npz",), False),
        ("ckpt-7.pt", ("ckpt-?.pt",), True),
        ("ckpt-17.pt", ("ckpt-?.pt",), False),
        ("run-4.log", ("run-[0-9].log",), True),
        ("run-a.log", ("run-[0-9].log",), False),
        ("logs/a.txt", ("logs/*.txt",), True),
        ("a.txt", ("logs/*.txt",), False),
        ("b.csv", ("*.json", "*.csv"), True),
        ("b.csv", (), False),
    ],
)
def test_matches(rel: str, patterns: tuple[str, ...], expected: bool) -> None:
    assert matches(rel, patterns) is expected


def test_manifest() -> None:
    files = [
        OutputFile("node-0/a.json", "node-0", 3, "ab" * 32, True),
        OutputFile("node-1/big.bin", "node-1", 10**9, "cd" * 32, False),
    ]
    assert manifest(files) == {
        "schema_version": 1,
        "files": [
            {
                "path": "node-0/a.json",
                "node": "node-0",
                "size": 3,
                "sha256": "ab" * 32,
                "committed": True,
            },
            {
                "path": "node-1/big.bin",
                "node": "node-1",
                "size": 10**9,
                "sha256": "cd" * 32,
                "committed": False,
            },
        ],
    }
    assert manifest([]) == {"schema_version": 1, "files": []}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n")
    (root / "sub" / "b.txt").write_text("beta\n")
    (root / "sub" / "deeper" / "c.bin").write_bytes(bytes(range(256)))
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    for path in root.rglob("*"):
        if path.is_file():
            path.chmod(0o644)
    return root


def test_file_sha256(tree: Path) -> None:
    assert file_sha256(tree / "a.txt") == hashlib.sha256(b"alpha\n").hexdigest()


def test_tree_files_order_and_exclusion(tree: Path) -> None:
    (tree / "__pycache__").mkdir()
    (tree / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (tree / "sub" / "__pycache__").write_text("a file with an excluded name\n")
    rels = [p.relative_to(tree).as_posix() for p in tree_files(tree, frozenset({"__pycache__"}))]
    assert rels == ["a.txt", "run.sh", "sub/b.txt", "sub/deeper/c.bin"]


@pytest.mark.parametrize(
    "change",
    [
        "content",
        "same-size-content",
        "rename",
        "move-to-other-dir",
        "exec-bit",
        "new-file",
        "remove-file",
        "empty-file",
    ],
)
def test_tree_sha256_changes(tree: Path, change: str) -> None:
    before = tree_sha256(tree)
    if change == "content":
        (tree / "a.txt").write_text("alpha!\n")
    elif change == "same-size-content":
        (tree / "a.txt").write_text("alphA\n")
    elif change == "rename":
        (tree / "a.txt").rename(tree / "a2.txt")
    elif change == "move-to-other-dir":
        (tree / "a.txt").rename(tree / "sub" / "a.txt")
    elif change == "exec-bit":
        (tree / "run.sh").chmod(0o755)
    elif change == "new-file":
        (tree / "sub" / "deeper" / "new").write_text("")
    elif change == "remove-file":
        (tree / "sub" / "b.txt").unlink()
    elif change == "empty-file":
        (tree / "a.txt").write_text("")
    assert tree_sha256(tree) != before


def test_tree_sha256_exec_bit_round_trip(tree: Path) -> None:
    before = tree_sha256(tree)
    (tree / "run.sh").chmod(0o755)
    executable = tree_sha256(tree)
    (tree / "run.sh").chmod(0o644)
    assert executable != before
    assert tree_sha256(tree) == before


def test_tree_sha256_ignores_what_is_not_content(tree: Path, tmp_path: Path) -> None:
    before = tree_sha256(tree)
    text = (tree / "a.txt").read_text()
    (tree / "a.txt").write_text(text)
    os.utime(tree / "sub" / "b.txt", (1_000_000, 1_000_000))
    (tree / "sub" / "b.txt").chmod(0o600)
    (tree / "empty-dir" / "nested").mkdir(parents=True)
    assert tree_sha256(tree) == before
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(tree, copy)
    assert tree_sha256(copy) == before
    (tree / "a.txt").rename(tree / "tmp")
    (tree / "tmp").rename(tree / "a.txt")
    assert tree_sha256(tree) == before


def test_tree_sha256_exclusion(tree: Path) -> None:
    excluded = frozenset({".terraform"})
    before = tree_sha256(tree, excluded)
    (tree / ".terraform" / "modules").mkdir(parents=True)
    (tree / ".terraform" / "modules" / "modules.json").write_text("{}")
    assert tree_sha256(tree, excluded) == before
    assert tree_sha256(tree) != before


def test_tree_sha256_of_empty_dir(tmp_path: Path) -> None:
    assert tree_sha256(tmp_path) == hashlib.sha256().hexdigest()


@pytest.mark.parametrize(
    ("status", "signum", "code"),
    [
        ("succeeded", None, 0),
        ("failed", None, 1),
        ("timeout", None, 1),
        ("interrupted", None, 130),
        ("interrupted", signal.SIGINT, 130),
        ("interrupted", signal.SIGTERM, 143),
        ("interrupted", 15, 143),
        ("infra-failed", None, 4),
        ("running", None, 4),
        ("", None, 4),
        ("succeeded", 15, 0),
    ],
)
def test_status_exit_code(status: str, signum: int | None, code: int) -> None:
    assert status_exit_code(status, signum) == code


def test_interrupted_exit_codes() -> None:
    assert Interrupted(signal.SIGTERM).exit_code == ExitCode.TERMINATED == 143
    assert Interrupted(signal.SIGINT).exit_code == ExitCode.INTERRUPTED == 130
    assert str(Interrupted(signal.SIGINT)) == "interrupted by SIGINT"


def test_spec_error_lists_each_problem_on_its_own_line() -> None:
    problems = [
        Problem("cluster.nodes", "must be at most 256 for target 'local', got 300"),
        Problem("run.command", "required"),
        Problem("", "TOML syntax error: bad"),
    ]
    error = SpecError("/jobs/job.toml", problems)
    assert error.message.splitlines() == [
        "/jobs/job.toml: 3 problems",
        "  cluster.nodes: must be at most 256 for target 'local', got 300",
        "  run.command: required",
        "  TOML syntax error: bad",
    ]
    assert str(error) == error.message
    assert error.problems == problems
    assert error.exit_code == ExitCode.INVALID_INPUT
    assert error.hint is not None


def test_spec_error_with_one_problem() -> None:
    error = SpecError("job.toml", [Problem("job.name", "required")])
    assert error.message == "job.toml: 1 problem\n  job.name: required"


def test_spec_error_from_parse_spec(tmp_path: Path) -> None:
    text = '[job]\nname = "Bad Name"\n[cluster]\ntarget = "local"\nnodes = 0\n'
    with pytest.raises(SpecError) as info:
        parse_spec(text, tmp_path / "job.toml")
    lines = info.value.message.splitlines()
    assert lines[0] == f"{tmp_path / 'job.toml'}: 3 problems"
    assert len(lines) == 1 + len(info.value.problems) == 4
    for line, problem in zip(lines[1:], info.value.problems, strict=True):
        assert line == f"  {problem}"
    assert {p.path for p in info.value.problems} == {"job.name", "cluster.nodes", "run"}


@pytest.fixture
def git_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in list(os.environ):
        if name.startswith("GIT_"):
            monkeypatch.delenv(name)
    config = tmp_path / "gitconfig"
    config.write_text(
        "[user]\n\tname = Test\n\temail = test@example.com\n"
        "[commit]\n\tgpgsign = false\n[init]\n\tdefaultBranch = main\n"
    )
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    return dict(os.environ)


def _git(cwd: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, git_env: dict[str, str]) -> Path:
    root = tmp_path / "repo"
    (root / "code").mkdir(parents=True)
    (root / "code" / "train.py").write_text("print('train')\n")
    (root / "README.md").write_text("readme\n")
    _git(root, git_env, "init", "-q")
    _git(root, git_env, "add", "-A")
    _git(root, git_env, "commit", "-q", "-m", "initial")
    return root


def test_git_pin_clean_repo_root(repo: Path, git_env: dict[str, str]) -> None:
    pin = git_pin(repo)
    assert pin == {
        "commit": _git(repo, git_env, "rev-parse", "HEAD"),
        "tree": _git(repo, git_env, "rev-parse", "HEAD^{tree}"),
        "path": ".",
        "dirty": False,
    }
    assert re.fullmatch(r"[0-9a-f]{40}", pin["commit"])


def test_git_pin_clean_subdir(repo: Path, git_env: dict[str, str]) -> None:
    pin = git_pin(repo / "code")
    assert pin is not None
    assert pin["path"] == "code"
    assert pin["tree"] == _git(repo, git_env, "rev-parse", "HEAD:code")
    assert pin["dirty"] is False
    assert "diff_sha256" not in pin


def test_git_pin_dirty_after_edit(repo: Path) -> None:
    clean = git_pin(repo / "code")
    (repo / "code" / "train.py").write_text("print('changed')\n")
    dirty = git_pin(repo / "code")
    assert clean is not None and dirty is not None
    assert dirty["dirty"] is True
    assert re.fullmatch(r"[0-9a-f]{64}", dirty["diff_sha256"])
    assert dirty["commit"] == clean["commit"]
    assert dirty["tree"] == clean["tree"]
    assert git_pin(repo / "code") == dirty
    (repo / "code" / "train.py").write_text("print('changed again')\n")
    again = git_pin(repo / "code")
    assert again is not None
    assert again["diff_sha256"] != dirty["diff_sha256"]
    (repo / "code" / "train.py").write_text("print('train')\n")
    assert git_pin(repo / "code") == clean


def test_git_pin_untracked_file_is_dirty(repo: Path) -> None:
    (repo / "code" / "new.py").write_text("x = 1\n")
    pin = git_pin(repo / "code")
    assert pin is not None
    assert pin["dirty"] is True
    assert "diff_sha256" in pin


def test_git_pin_ignores_changes_outside_the_path(repo: Path) -> None:
    (repo / "README.md").write_text("edited\n")
    code = git_pin(repo / "code")
    top = git_pin(repo)
    assert code is not None and top is not None
    assert code["dirty"] is False
    assert top["dirty"] is True


def test_git_pin_outside_git(tmp_path: Path, git_env: dict[str, str]) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert git_pin(plain) is None


def test_git_pin_repo_without_commits(tmp_path: Path, git_env: dict[str, str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    _git(empty, git_env, "init", "-q")
    (empty / "a.txt").write_text("a\n")
    assert git_pin(empty) is None


def test_parse_facts_from_a_real_h200_node() -> None:
    """The facts script's GPU line as nvidia-smi printed it on an H200 machine
    (driver 580.159.04), run through the same script composer runs on a node."""
    facts = parse_facts(FACTS + "gpu=NVIDIA H200, 580.159.04, 143771 MiB\n")
    assert facts["gpus"] == [
        {"name": "NVIDIA H200", "driver": "580.159.04", "memory": "143771 MiB"},
    ]
