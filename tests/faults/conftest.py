"""Fault-injection suite: a session tally of outcomes, printed as one summary line."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .util import processes_under

# (category, label): "ok/total label" for checks, "count label" for counters.
CHECKS = (
    ("interrupts", "interrupts clean"),
    ("kill -9", "kill -9 recovered"),
    ("gc", "gc collected"),
    ("node death", "node deaths detected"),
    ("apply halfway", "half applies destroyed"),
    ("concurrent", "concurrent"),
    ("bad specs", "bad specs rejected"),
    ("quoting", "launchers quoted exactly"),
    ("host key", "host key swaps refused"),
    ("records kept", "records kept despite hostile outputs"),
    ("runs repo", "runs repo problems caught"),
    ("other users", "other-user attacks refused"),
    ("escapes", "escaped processes stopped"),
    ("streams", "hostile streams handled"),
    ("walkthrough", "new-user stumbles answered"),
    ("capacity failover", "capacity failovers"),
    ("node lost", "lost nodes recovered"),
)
COUNTERS = (("secrets found", "secrets found"),)


class Tally:
    """Outcomes per category, filled in by the tests that ran."""

    def __init__(self) -> None:
        self.checks: dict[str, list[int]] = {}
        self.counters: dict[str, int] = {}

    def __call__(self, category: str, ok: bool, count: int = 1) -> None:
        passed, total = self.checks.setdefault(category, [0, 0])
        self.checks[category] = [passed + (count if ok else 0), total + count]

    def count(self, name: str, value: int) -> None:
        self.counters[name] = self.counters.get(name, 0) + value

    @contextmanager
    def check(self, category: str) -> Iterator[None]:
        """Count the block as ok when it raises nothing."""
        try:
            yield
        except BaseException:
            self(category, False)
            raise
        self(category, True)

    def summary(self) -> str | None:
        parts = [
            f"{self.checks[name][0]}/{self.checks[name][1]} {label}"
            for name, label in CHECKS if name in self.checks
        ]
        parts += [f"{self.counters[name]} {label}" for name, label in COUNTERS
                  if name in self.counters]
        known = {name for name, _ in CHECKS}
        parts += [f"{ok}/{total} {name}" for name, (ok, total) in self.checks.items()
                  if name not in known]
        return f"faults: {', '.join(parts)}" if parts else None


TALLY = pytest.StashKey[Tally]()


@pytest.fixture(scope="session")
def tally(pytestconfig: pytest.Config) -> Tally:
    if TALLY not in pytestconfig.stash:
        pytestconfig.stash[TALLY] = Tally()
    return pytestconfig.stash[TALLY]


@pytest.fixture(autouse=True)
def reap_leftovers(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test (its own assertions done), kill whatever its runs left running."""
    if "composer" not in request.fixturenames:
        yield
        return
    home: Path = request.getfixturevalue("composer").home
    yield
    for pid in processes_under(home / "work"):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    tally = config.stash.get(TALLY, None)
    line = tally.summary() if tally is not None else None
    if line:
        terminalreporter.write_line(line)
