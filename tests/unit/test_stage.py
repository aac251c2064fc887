"""What is shipped and pinned (one file set), private files on nodes, staging progress."""

from __future__ import annotations

import os
import stat
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest

from composer import stage as staging
from composer.hashing import tree_sha256
from composer.interrupts import INTERRUPTS
from composer.lock import CodeTree, git_pin, pin_code
from composer.spec import Spec, parse_spec

# -- the code file set: bundle, pin and git agree ------------------------------


@pytest.fixture
def git_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in list(os.environ):
        if name.startswith("GIT_"):
            monkeypatch.delenv(name)
    config = tmp_path / "gitconfig"
    config.write_text("[user]\n\tname = Test\n\temail = test@example.com\n"
                      "[init]\n\tdefaultBranch = main\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    return dict(os.environ)


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _job(directory: Path, code: str = ".") -> Spec:
    (directory / code).mkdir(parents=True, exist_ok=True)
    text = ('[job]\nname = "j"\n[cluster]\ntarget = "local"\nnodes = 1\n'
            f'[run]\nlauncher = "ssh"\ncommand = "true"\n[code]\npath = "{code}"\n')
    (directory / "job.toml").write_text(text)
    return parse_spec(text, directory / "job.toml")


def _runs_repo(path: Path) -> None:
    """A runs repository as composer leaves it: a git repo holding records."""
    (path / "run-1").mkdir(parents=True)
    (path / "run-1" / "result.json").write_text("{}\n")
    _git(path, "init", "-q")
    _git(path, "add", "-A")
    _git(path, "commit", "-q", "-m", "run-1")


def _tar_names(spec: Spec, dest: Path, runs_repo: Path | None) -> set[str]:
    staging.bundle(spec, dest, runs_repo)
    with tarfile.open(dest) as tar:
        return set(tar.getnames())


@pytest.fixture
def home_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "composer-home"
    monkeypatch.setenv("COMPOSER_HOME", str(home))
    return home


def test_runs_repo_inside_code_is_neither_shipped_nor_pinned(
        tmp_path: Path, home_elsewhere: Path, git_env: dict[str, str]) -> None:
    job = tmp_path / "job"
    spec = _job(job)
    (job / "train.py").write_text("print(1)\n")
    (job / "pkg" / "__pycache__").mkdir(parents=True)
    (job / "pkg" / "__pycache__" / "m.pyc").write_bytes(b"\0")
    (job / ".composer").mkdir()
    (job / ".composer" / "x").write_text("state\n")
    before = pin_code(spec, job / "runs")
    _runs_repo(job / "runs")
    pin = pin_code(spec, job / "runs")
    assert pin is not None and before is not None
    assert set(pin.files) == {"job.toml", "train.py"}
    assert pin == before, "a runs repo appearing inside the code dir changed the pin"
    assert _tar_names(spec, tmp_path / "b.tar", job / "runs") == set(pin.files)
    # Without being told, the runs repo is ordinary code: that is what went wrong.
    assert "runs/run-1/result.json" in pin_code(spec).files  # type: ignore[union-attr]


def test_git_pin_ignores_the_nested_runs_repo(tmp_path: Path, home_elsewhere: Path,
                                              git_env: dict[str, str]) -> None:
    job = tmp_path / "job"
    spec = _job(job)
    (job / "train.py").write_text("print(1)\n")
    _git(job, "init", "-q")
    _git(job, "add", "-A")
    _git(job, "commit", "-q", "-m", "job")
    clean = pin_code(spec, job / "runs")
    assert clean is not None and clean.git is not None and clean.git["dirty"] is False
    _runs_repo(job / "runs")
    (job / "__pycache__").mkdir()
    (job / "__pycache__" / "t.pyc").write_bytes(b"\0")
    pin = pin_code(spec, job / "runs")
    assert pin == clean
    # Untracked, not ignored: git lists the nested repository as one directory "runs/".
    assert git_pin(job) is not None
    (job / "new.py").write_text("x = 1\n")
    dirty = pin_code(spec, job / "runs")
    assert dirty is not None and dirty.git is not None and dirty.git["dirty"] is True
    assert set(dirty.files) == {"job.toml", "train.py", "new.py"}


def test_composer_home_inside_code_is_skipped(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    job = tmp_path / "job"
    spec = _job(job)
    monkeypatch.setenv("COMPOSER_HOME", str(job / "state"))
    (job / "state" / "work" / "r1").mkdir(parents=True)
    (job / "state" / "work" / "r1" / "bundle.tar").write_bytes(b"x")
    tree = CodeTree.of(job)
    assert tree.skip == ("state",)
    assert [p.name for p in tree.files()] == ["job.toml"]
    assert set(pin_code(spec).files) == {"job.toml"}  # type: ignore[union-attr]


@pytest.mark.parametrize("where", ["outside", "same", "parent"])
def test_runs_repo_not_inside_code_skips_nothing(tmp_path: Path, home_elsewhere: Path,
                                                 where: str) -> None:
    code = tmp_path / "job" / "code"
    code.mkdir(parents=True)
    (code / "a.py").write_text("a\n")
    runs = {"outside": tmp_path / "runs", "same": code, "parent": tmp_path}[where]
    tree = CodeTree.of(code, runs)
    assert tree.skip == ()
    assert [p.name for p in tree.files()] == ["a.py"]


def test_code_tree_exclusions_and_pathspecs(tmp_path: Path, home_elsewhere: Path) -> None:
    tree = CodeTree.of(tmp_path / "job", tmp_path / "job" / "records" / "main")
    assert tree.skip == ("records/main",)
    assert tree.excluded("records/main") and tree.excluded("records/main/x/y.json")
    assert tree.excluded("records/main/") and tree.excluded("a/__pycache__/b.pyc")
    assert not tree.excluded("records/mainline.py") and not tree.excluded("records/x")
    specs = tree.pathspecs()
    assert ":(exclude,literal)records/main" in specs
    assert ":(exclude,glob)**/.venv/**" in specs


def test_pin_hash_is_the_tree_hash_of_the_shipped_files(tmp_path: Path,
                                                        home_elsewhere: Path) -> None:
    job = tmp_path / "job"
    spec = _job(job, "code")
    (job / "code" / "sub").mkdir(parents=True)
    (job / "code" / "sub" / "run.sh").write_text("#!/bin/sh\n")
    (job / "code" / "sub" / "run.sh").chmod(0o755)
    (job / "code" / "data.txt").write_text("d\n")
    pin = pin_code(spec)
    assert pin is not None
    assert pin.content_sha256 == tree_sha256(job / "code")


def test_a_symlinked_file_ships_as_the_content_the_lock_pins(tmp_path: Path,
                                                              home_elsewhere: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("the content\n")
    job = tmp_path / "job"
    spec = _job(job)
    (job / "link.txt").symlink_to(outside)
    pin = pin_code(spec)
    assert pin is not None
    dest = staging.bundle(spec, tmp_path / "bundle.tar")
    with tarfile.open(dest) as tar:
        member = tar.getmember("link.txt")
        assert member.isfile() and not member.issym()
        shipped = tar.extractfile(member)
        assert shipped is not None and shipped.read() == b"the content\n"
    assert pin.content_sha256 == tree_sha256(job)


def test_bundle_file_is_private(tmp_path: Path, home_elsewhere: Path) -> None:
    spec = _job(tmp_path / "job")
    old = os.umask(0)
    try:
        tar = staging.bundle(spec, tmp_path / "bundle.tar")
    finally:
        os.umask(old)
    assert stat.S_IMODE(tar.stat().st_mode) == 0o600


# -- files written on a node: private from the start ---------------------------


class LocalSession:
    """Runs pushed commands locally, as a node's shell would, under umask 000."""

    def __init__(self, path_dir: Path) -> None:
        self.path_dir = path_dir
        self.commands: list[str] = []

    def push(self, command: str, data: bytes, timeout: float = 300.0) -> None:
        self.commands.append(command)
        env = {**os.environ, "PATH": f"{self.path_dir}:{os.environ['PATH']}"}
        subprocess.run(["sh", "-c", command], input=data, env=env, check=True, timeout=30,
                       preexec_fn=lambda: os.umask(0))

    @property
    def sftp(self) -> object:
        raise AssertionError("a private file must not be created over SFTP with default modes")


@pytest.fixture
def watched_cat(tmp_path: Path) -> tuple[Path, Path]:
    """A ``cat`` that first records the mode its stdout was created with: the mode the
    file had while its content was being written."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    seen = tmp_path / "modes"
    real_cat = subprocess.run(["sh", "-c", "command -v cat"], capture_output=True, text=True,
                              check=True).stdout.strip()
    shim = bin_dir / "cat"
    shim.write_text(f"#!/bin/sh\nstat -L -c %a /proc/self/fd/1 >> {seen}\nexec {real_cat}\n")
    shim.chmod(0o755)
    return bin_dir, seen


@pytest.mark.parametrize("mode", [0o600, 0o644, 0o755])
def test_put_text_creates_files_0600_then_sets_the_mode(
        tmp_path: Path, watched_cat: tuple[Path, Path], mode: int) -> None:
    bin_dir, seen = watched_cat
    target = tmp_path / "node work" / "secret's file"
    target.parent.mkdir()
    session = LocalSession(bin_dir)
    staging.put_text(session, str(target), "export MY_TOKEN=abc\n", mode)  # type: ignore[arg-type]
    assert seen.read_text().split() == ["600"]
    assert target.read_text() == "export MY_TOKEN=abc\n"
    assert stat.S_IMODE(target.stat().st_mode) == mode


def test_put_text_replaces_a_readable_file_instead_of_reusing_it(
        tmp_path: Path, watched_cat: tuple[Path, Path]) -> None:
    bin_dir, seen = watched_cat
    target = tmp_path / "secrets"
    target.write_text("old\n")
    target.chmod(0o644)
    staging.put_text(LocalSession(bin_dir), str(target), "new\n", 0o600)  # type: ignore[arg-type]
    assert seen.read_text().split() == ["600"]
    assert target.read_text() == "new\n"


def test_private_write_command_flags() -> None:
    command = staging.private_write_command("/w/a b", 0o600)
    assert command.startswith("umask 077 && ")
    assert "(set -C && cat > '/w/a b')" in command
    assert command.endswith("chmod 600 -- '/w/a b'")


# -- progress and stopping -----------------------------------------------------


def test_progress_is_reported_once_a_second_only_when_slow(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(staging, "PROGRESS_EVERY_S", 0.05)
    lines: list[str] = []
    with staging.Transfer(10_000_000, 2, lines.append) as transfer:
        transfer.add(10_000_000)
    assert lines == [], "a transfer faster than the interval printed progress"
    with staging.Transfer(10_000_000, 2, lines.append) as transfer:
        for _ in range(4):
            transfer.add(5_000_000)
            time.sleep(0.06)
    assert len(lines) >= 3
    assert all(line.startswith("[stage] ") for line in lines)
    assert lines[-1].startswith("[stage] sent 20.0 MB of 20.0 MB to 2 nodes (100%")
    assert any("sending:" in line and "MB of 20.0 MB" in line for line in lines[:-1])


def test_a_signal_stops_the_senders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(staging, "PROGRESS_EVERY_S", 0.02)
    stopped = threading.Event()
    monkeypatch.setattr(INTERRUPTS, "signum", 15)
    with staging.Transfer(1, 1, None) as transfer:
        transfer.on_stop(stopped.set)
        assert stopped.wait(2.0)
    assert transfer.stopped == "composer was interrupted"


def test_a_stalled_transfer_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(staging, "PROGRESS_EVERY_S", 0.02)
    monkeypatch.setattr(staging, "STALL_TIMEOUT_S", 0.05)
    stopped = threading.Event()
    with staging.Transfer(1, 1, None) as transfer:
        transfer.on_stop(stopped.set)
        assert stopped.wait(2.0)
    assert transfer.stopped == "no progress for 0.05s"
