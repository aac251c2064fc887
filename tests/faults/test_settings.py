"""Bad environment settings: one clear line naming the setting, exit 2, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .conftest import Tally
from .util import simple_job, write_job

if TYPE_CHECKING:
    from tests.conftest import Composer


def assert_named(done_stderr: str, returncode: int, setting: str) -> None:
    assert returncode == 2, done_stderr
    assert "Traceback" not in done_stderr, done_stderr
    assert setting in done_stderr, done_stderr
    assert "hint:" in done_stderr, done_stderr


@pytest.mark.parametrize("command", ["up", "gc", "down"])
def test_composer_home_that_is_a_file(composer: Composer, tmp_path: Path, tally: Tally,
                                      command: str) -> None:
    with tally.check("walkthrough"):
        home = tmp_path / "home-file"
        home.write_text("not a directory\n")
        job = write_job(tmp_path / "job", simple_job("home-file", 1, "echo hi"))
        args = {"up": ["up", str(job)], "gc": ["gc", "--yes"], "down": ["down", "abc"]}[command]
        done = composer.run(*args, COMPOSER_HOME=str(home))
        assert_named(done.stderr, done.returncode, "COMPOSER_HOME")
        assert str(home) in done.stderr
        assert home.read_text() == "not a directory\n"


def test_composer_home_below_a_file(composer: Composer, tmp_path: Path, tally: Tally) -> None:
    with tally.check("walkthrough"):
        blocker = tmp_path / "blocker"
        blocker.write_text("")
        job = write_job(tmp_path / "job", simple_job("home-below-file", 1, "echo hi"))
        done = composer.run("up", str(job), COMPOSER_HOME=str(blocker / "home"))
        assert_named(done.stderr, done.returncode, "COMPOSER_HOME")


@pytest.mark.parametrize("port", ["abc", "0", "70000", "-5", "22.5"])
def test_bad_local_port(composer: Composer, tmp_path: Path, tally: Tally, port: str) -> None:
    with tally.check("walkthrough"):
        job = write_job(tmp_path / "job", simple_job("bad-port", 1, "echo hi"))
        done = composer.run("up", str(job), "--json", COMPOSER_LOCAL_PORT=port)
        assert_named(done.stderr, done.returncode, "COMPOSER_LOCAL_PORT")
        assert port in done.stderr
        assert not (composer.home / "work").exists() or \
            not list((composer.home / "work").iterdir())
