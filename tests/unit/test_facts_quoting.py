"""The facts command hands PATH to the node's shell as data, quoted like every argument."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from composer.facts import gather


@dataclass(frozen=True)
class FakeNode:
    rank: int = 0
    name: str = "node-0"
    address: str = "127.0.0.1"


@dataclass
class LocalShell:
    """Runs what a node would run, in this machine's sh."""

    node: FakeNode = field(default_factory=FakeNode)

    def check(self, command: str, timeout: float) -> str:
        done = subprocess.run(["sh", "-c", command], capture_output=True, text=True,
                              timeout=timeout, check=False)
        assert done.returncode == 0, f"{command!r} failed: {done.stderr}"
        return done.stdout


def test_path_with_shell_syntax_reaches_the_shell_as_data(tmp_path: Path) -> None:
    touched = tmp_path / "touched"
    path = f"/opt/a b (c)/$(touch {touched})/`touch {touched}`:{os.environ['PATH']}"
    facts = gather(LocalShell(), path)  # type: ignore[arg-type]
    assert facts["cpus"] and facts["cpus"] >= 1
    assert not touched.exists(), "a command substitution in PATH was run"
