"""Other users of the machine: they cannot read a run's files, nor bend its address leases."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .conftest import Tally
from .util import assert_gone, final_json, simple_job, start_up, write_job

if TYPE_CHECKING:
    from tests.conftest import Composer

pytestmark = pytest.mark.integration

NOBODY = 65534


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_work_node_and_staging_dirs_are_private(composer: Composer, tmp_path: Path,
                                                tally: Tally) -> None:
    """Under the usual umask 022 every directory of a run is 0700 while it runs."""
    with tally.check("other users"):
        job = write_job(tmp_path / "job", simple_job("private", 1, "echo hi"))
        old = os.umask(0o022)
        try:
            up = start_up(composer, job, "up", COMPOSER_PAUSE_AT="run")
        finally:
            os.umask(old)
        with up:
            marker = up.paused("run")
            work = marker.parent
            node = work / "nodes" / "node-0"
            dirs = [composer.home / "work", work, work / "record", work / "keys",
                    work / "nodes", node, node / "work", work / "tf"]
            modes = {str(d.relative_to(composer.home)): oct(mode(d)) for d in dirs}
            var_file = mode(work / "tf" / "runtime.tfvars.json")
            marker.unlink()
            done = up.finish()
        assert done.returncode == 0, done.stderr
        assert modes == {name: oct(0o700) for name in modes}, modes
        assert var_file == 0o600, oct(var_file)  # a cloud run's private host keys are in it
        assert_gone(composer, final_json(done.stdout)["run_id"])


def test_leases_dir_symlink_is_refused(composer: Composer, tmp_path: Path,
                                       tally: Tally) -> None:
    """A link planted where the leases directory goes is never followed nor chmodded."""
    with tally.check("other users"):
        target = tmp_path / "private"
        target.mkdir(mode=0o700)
        target.chmod(0o700)
        link = tmp_path / "leases"
        link.symlink_to(target)
        job = write_job(tmp_path / "job", simple_job("symlinked", 1, "echo hi"))
        done = composer.run("up", str(job), "--json", COMPOSER_LEASES_DIR=str(link))
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert str(link) in done.stderr and "symbolic link" in done.stderr, done.stderr
        assert "COMPOSER_LEASES_DIR" in done.stderr
        assert mode(target) == 0o700, f"the link's target became {oct(mode(target))}"
        assert list(target.iterdir()) == []
        assert not (composer.home / "work").exists() or not list((composer.home / "work")
                                                                 .iterdir())


def test_leases_dir_of_another_user_is_refused(composer: Composer, tmp_path: Path,
                                               tally: Tally) -> None:
    with tally.check("other users"):
        theirs = tmp_path / "leases"
        theirs.mkdir()
        theirs.chmod(0o1777)
        os.chown(theirs, NOBODY, NOBODY)
        job = write_job(tmp_path / "job", simple_job("theirs", 1, "echo hi"))
        done = composer.run("up", str(job), "--json", COMPOSER_LEASES_DIR=str(theirs))
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert str(theirs) in done.stderr and "COMPOSER_LEASES_DIR" in done.stderr, done.stderr
        assert list(theirs.iterdir()) == [], "composer wrote a lease into another user's dir"
        assert mode(theirs) == 0o1777
