"""Paths with spaces, quotes and shell syntax: they reach nodes as data, never as code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import Composer

from .conftest import Tally
from .util import assert_gone, final_json, record_json, simple_job, write_job

pytestmark = pytest.mark.integration


def test_path_with_shell_syntax_is_data(composer: Composer, tmp_path: Path,
                                        tally: Tally) -> None:
    """The facts command passes PATH quoted: spaces and parentheses are fine, and a
    ``$(...)`` in it is never run."""
    with tally.check("escapes"):
        touched = tmp_path / "touched"
        odd = f"/nonexistent/a b (c)/$(touch {touched})/`touch {touched}`"
        job = write_job(tmp_path / "job", simple_job("odd-path", 1, "echo hi"))
        done = composer.run("up", str(job), "--json", timeout=240,
                            PATH=f"{odd}:{os.environ['PATH']}")
        assert done.returncode == 0, done.stderr
        assert not touched.exists(), "a $(...) in PATH was executed"
        assert_gone(composer, final_json(done.stdout)["run_id"])


@pytest.mark.parametrize("launcher", [
    "ssh", "mpi",
])
def test_composer_home_with_odd_characters(tmp_path: Path, tally: Tally, launcher: str) -> None:
    """A COMPOSER_HOME holding a space, quotes, ``$``, ``%`` and ``#`` works end to end."""
    with tally.check("escapes"):
        home = tmp_path / "my home's $HOME \"x\" 100% #1"
        c = Composer(home=home, runs=tmp_path / "runs", cwd=tmp_path)
        doc = simple_job(f"odd-home-{launcher}", 2, "echo rank=$COMPOSER_NODE_RANK")
        doc["run"]["launcher"] = launcher
        job = write_job(tmp_path / "job", doc)
        done = c.run("up", str(job), "--json", timeout=240)
        assert done.returncode == 0, done.stderr
        run_id = final_json(done.stdout)["run_id"]
        result = record_json(c, run_id, "result.json")
        assert result["teardown"]["status"] == "destroyed"
        assert_gone(c, run_id)
