"""Progress: a live line on a terminal, composer's plain lines anywhere else."""

from __future__ import annotations

import io
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from composer.progress import Live, Plain, elapsed_text, progress_for, wants_live
from composer.result import Reporter


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_plain_lines_when_not_a_terminal_or_in_ci(tmp_path: Path) -> None:
    assert isinstance(progress_for(io.StringIO(), {}), Plain)
    assert not isinstance(progress_for(io.StringIO(), {}), Live)
    assert isinstance(progress_for(FakeTTY(), {"CI": "true"}), Plain)
    assert not wants_live(FakeTTY(), {"CI": "1"})
    assert not wants_live(FakeTTY(), {"TERM": "dumb"})
    assert wants_live(FakeTTY(), {"TERM": "xterm"})

    err = io.StringIO()
    log = Reporter(err, tmp_path / "composer.log", progress=progress_for(err, {}))
    log.progress.stage("apply")
    log.progress.nodes_ready(1, 2)
    log.say("[apply] done in 1.00s")
    log.say("a | b")
    log.close()
    assert err.getvalue() == "composer: [apply] done in 1.00s\ncomposer: a | b\n"
    assert (tmp_path / "composer.log").read_text().count("composer") == 0
    assert "[apply] done in 1.00s" in (tmp_path / "composer.log").read_text()


def test_the_live_line_says_stage_time_and_nodes_ready() -> None:
    clock = Clock()
    live = Live(FakeTTY(), clock=clock)
    try:
        clock.now += 3
        live.stage("wait_for_ssh")
        live.nodes_ready(0, 4)
        clock.now += 75
        live.nodes_ready(3, 4)
        assert live.status() == "wait_for_ssh 1m15s · nodes ready 3/4 · 1m18s in all"
        live.stage("facts")
        assert live.status() == "facts 0s · 1m18s in all"
    finally:
        live.close()
    assert [elapsed_text(s) for s in (0, 59.9, 60, 3599, 3720)] == \
        ["0s", "59s", "1m00s", "59m59s", "1h02m"]


def test_on_a_terminal_lines_go_above_the_live_one(tmp_path: Path) -> None:
    tty = FakeTTY()
    progress = progress_for(tty, {"TERM": "xterm"})
    assert isinstance(progress, Live)
    log = Reporter(tty, tmp_path / "composer.log", progress=progress)
    log.progress.stage("apply")
    log.progress.nodes_ready(1, 2)
    log.say("[apply] done in [bold]1.00s[/bold] :smile:")
    log.progress.stage("run")  # the workload's output has the terminal: no live line
    assert log.progress._live is None
    log.say("still running")
    log.progress.stage("destroy")
    log.close()
    assert progress._live is None
    text = ANSI.sub("", tty.getvalue())
    lines = [line.split("\r")[-1] for line in text.split("\n")]
    assert "composer: [apply] done in [bold]1.00s[/bold] :smile:" in lines, "no markup, no emoji"
    assert "composer: still running" in lines
    assert "apply 0s" in text and "nodes ready 1/2" in text


def test_the_cli_shows_a_completion_script() -> None:
    script = Path(sys.executable).parent / "composer"
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "composer"]
    # typer takes the shell from the parent process: run it under bash (a list, so bash
    # forks instead of exec-ing it), as a user's shell would, whatever runs the tests.
    under_bash = f"{shlex.join([*argv, '--show-completion'])}; exit $?"
    done = subprocess.run(["bash", "-c", under_bash], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "complete " in done.stdout and "_COMPLETE=complete_bash" in done.stdout
    helped = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=60,
                            check=False)
    assert "--install-completion" in helped.stdout
    if script.exists():
        env = {"COMP_WORDS": "composer sh", "COMP_CWORD": "1",
               "_COMPOSER_COMPLETE": "complete_bash", "PATH": "/usr/bin:/bin"}
        words = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env,
                               check=False)
        assert words.stdout.split() == ["show"], words


@pytest.mark.parametrize("stage", ["render", "collect"])
def test_stages_other_than_run_keep_the_live_line(stage: str) -> None:
    live = Live(FakeTTY())
    try:
        live.stage(stage)
        assert live._live is not None
    finally:
        live.close()
