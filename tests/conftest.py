"""Shared fixtures: an isolated composer home and runs repo, and a leak check."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def git(repo: Path, *args: str) -> str:
    """``git -C repo ARGS``'s stdout; a failure fails the test."""
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout


def sshd_processes(marker: str) -> list[str]:
    """Command lines of running sshd processes whose config path contains ``marker``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            status = (proc / "status").read_text()
        except OSError:
            continue
        if "sshd" in cmdline and marker in cmdline and "\nState:\tZ" not in status:
            found.append(cmdline.strip())
    return found


@dataclass
class Composer:
    """Runs the composer CLI in a subprocess with its own home and runs repo."""

    home: Path
    runs: Path
    cwd: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(COMPOSER_HOME=str(self.home), COMPOSER_RUNS_REPO=str(self.runs))
        env.update(extra)
        return env

    def argv(self, *args: str) -> list[str]:
        script = Path(sys.executable).parent / "composer"
        if script.exists():
            return [str(script), *args]
        return [sys.executable, "-m", "composer", *args]

    def run(
        self, *args: str, timeout: float = 300, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args), cwd=self.cwd, env=self.env(**extra), capture_output=True,
            text=True, timeout=timeout, check=False,
        )

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(self.runs), *args], capture_output=True, text=True, check=True
        ).stdout


@pytest.fixture
def composer(tmp_path: Path) -> Iterator[Composer]:
    home = tmp_path / "home"
    c = Composer(home=home, runs=tmp_path / "runs", cwd=tmp_path)
    yield c
    leaked = sshd_processes(str(home))
    for line in leaked:
        pid_file = line.split(" -f ")[1].split()[0].replace("sshd_config", "sshd.pid")
        subprocess.run(["sh", "-c", f"kill -9 $(cat {pid_file})"], check=False)
    assert not leaked, f"nodes left running: {leaked}"
