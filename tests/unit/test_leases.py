"""Address leases of the local target: a shared directory other users can reach."""

from __future__ import annotations

import json
import os
import random
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from composer.errors import PreflightError
from composer.targets.local import LocalTarget

NOBODY = 65534
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def first_block(run_id: str) -> str:
    """The block ``allocate`` tries first for a one-node run (it is seeded by the run id)."""
    rng = random.Random(run_id)
    a, b = rng.randint(16, 250), rng.randint(0, 255 - 1)
    return f"127.{a}.{b}"


@pytest.fixture
def leases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "leases"
    monkeypatch.setenv("COMPOSER_LEASES_DIR", str(path))
    monkeypatch.setenv("COMPOSER_LOCAL_PORT", "22022")
    return path


def test_new_leases_dir_is_shared_with_the_sticky_bit(leases: Path, tmp_path: Path) -> None:
    alloc = LocalTarget().lease("run-new", 1, tmp_path)
    assert stat.S_IMODE(leases.stat().st_mode) == 0o1777
    assert len(alloc.addresses) == 1


def test_existing_leases_dir_keeps_its_mode(leases: Path, tmp_path: Path) -> None:
    leases.mkdir(mode=0o700)
    leases.chmod(0o700)
    LocalTarget().check_host("ssh")
    LocalTarget().lease("run-old", 1, tmp_path)
    assert stat.S_IMODE(leases.stat().st_mode) == 0o700


def test_leases_dir_that_is_a_file_is_refused(leases: Path) -> None:
    leases.write_text("x")
    with pytest.raises(PreflightError, match="not a directory") as caught:
        LocalTarget().check_host("ssh")
    assert "COMPOSER_LEASES_DIR" in (caught.value.hint or "")


def test_unreadable_lease_counts_as_taken(leases: Path, tmp_path: Path) -> None:
    """A lease that cannot be read nor removed (here a directory of that name) is skipped."""
    leases.mkdir()
    blocked = leases / first_block("run-blocked")
    blocked.mkdir()
    (blocked / "keep").write_text("")
    alloc = LocalTarget().lease("run-blocked", 1, tmp_path)
    assert alloc.held[0] != [int(x) for x in blocked.name.split(".")[1:]]
    assert blocked.is_dir() and (blocked / "keep").exists()
    LocalTarget().release_blocks(alloc.held)


def test_symlinked_lease_is_not_followed(leases: Path, tmp_path: Path) -> None:
    leases.mkdir()
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"run_id": "x", "work_dir": "/nonexistent"}))
    (leases / first_block("run-link")).symlink_to(secret)
    alloc = LocalTarget().lease("run-link", 1, tmp_path)
    assert secret.exists()
    assert (leases / first_block("run-link")).is_symlink()
    LocalTarget().release_blocks(alloc.held)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every user can reach (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="composer-leases-test-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root to act as another user")
def test_lease_of_another_user_counts_as_taken(shared_dir: Path) -> None:
    """As ``nobody``: root's unreadable lease (in a shared sticky dir) is neither read nor
    removed; the block counts as taken and another one is leased."""
    leases = shared_dir / "leases"
    leases.mkdir()
    leases.chmod(0o1777)
    theirs = leases / first_block("run-nobody")
    theirs.write_text(json.dumps({"run_id": "root-run", "work_dir": "/root/private"}))
    theirs.chmod(0o600)
    work = shared_dir / "work"
    work.mkdir()
    os.chown(work, NOBODY, NOBODY)
    code = (
        "from pathlib import Path\n"
        "from composer.targets.local import LocalTarget\n"
        f"a = LocalTarget().lease('run-nobody', 1, Path({str(work)!r}))\n"
        "print('127.{}.{}'.format(*a.held[0]))\n"
    )
    env = {"PATH": os.environ["PATH"], "COMPOSER_LEASES_DIR": str(leases),
           "PYTHONPATH": str(PROJECT_ROOT), "HOME": str(work)}
    done = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
         sys.executable, "-c", code],
        capture_output=True, text=True, env=env, cwd=str(work), timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.strip() != theirs.name
    assert theirs.exists() and json.loads(theirs.read_text())["run_id"] == "root-run"


def test_runs_here_reads_through_copies_and_junk(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    import os

    from composer.gc import runs_here

    monkeypatch.setenv("COMPOSER_HOME", str(tmp_path / "home"))
    work = tmp_path / "home" / "work"

    def state(name: str, **data: object) -> None:
        (work / name).mkdir(parents=True)
        (work / name / "state.json").write_text(json.dumps(data))

    common = {"job": "j", "engine": "embedded", "runs_repo": "/r", "started_at": "t"}
    state("a-live", run_id="dup", pid=os.getppid(), **common)
    state("b-dead-copy", run_id="dup", pid=2 ** 22 + 7, keep=True, **common)
    (work / "c-list").mkdir()
    (work / "c-list" / "state.json").write_text("[1, 2]")
    state("d-odd-id", run_id=[1], pid=1, **common)
    state("e-odd-pid", run_id="odd", pid="x", **common)
    assert runs_here() == {"dup": (True, True)}
