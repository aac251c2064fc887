"""Start-up: ``composer --help`` and ``composer validate`` beside the bare interpreter.

Each command is started as a user starts it (the ``composer`` script of this
environment) and timed from start to exit; ``python -c pass`` of the same environment
runs in the same rounds, interleaved, so the ratio says what composer adds to the
interpreter on this machine at this moment. One untimed round goes first, with bytecode
writing allowed (as an installed composer has its bytecode), so no timed run compiles.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.overhead import HELLO, composer_argv, user_environment
from bench.report import Metric, median

STARTUP_TARGET_S = 0.25
SAMPLES_PER_REP = 5
TIMEOUT_S = 60.0
COMMANDS = ("python", "help", "validate")


def command_lines(job: Path) -> dict[str, list[str]]:
    return {
        "python": [sys.executable, "-c", "pass"],
        "help": [*composer_argv(), "--help"],
        "validate": [*composer_argv(), "validate", str(job)],
    }


def run_once(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          timeout=TIMEOUT_S, check=False)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip()[-800:]
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {tail}")
    return seconds


def measure(samples: int, say: Callable[[str], None],
            job: Path = HELLO / "job.toml") -> dict[str, Any]:
    """Seconds of each command, ``samples`` times each in interleaved rounds."""
    lines, env, cwd = command_lines(job), user_environment(), job.parent
    for argv in lines.values():  # untimed: bytecode written, files in the page cache
        run_once(argv, env, cwd)
    times: dict[str, list[float]] = {name: [] for name in lines}
    for _ in range(samples):
        for name, argv in lines.items():
            times[name].append(run_once(argv, env, cwd))
    say("[startup] " + ", ".join(f"{name} {median(s) * 1000:.0f} ms" for name, s in
                                 times.items()) + f" (median of {samples})")
    return {"samples": samples, "seconds": times}


def metrics(data: dict[str, Any], error: str | None) -> list[Metric]:
    seconds = data.get("seconds", {})
    bare = seconds.get("python", [])
    found = []
    for name, label in (("help", "composer --help"), ("validate", "composer validate")):
        own = seconds.get(name, [])
        found.append(Metric(f"startup_{name}", f"start-up {label} (seconds)", "s", list(own),
                            STARTUP_TARGET_S, error=error))
        found.append(Metric(f"startup_{name}_ratio", f"start-up {label}/python -c pass", "x",
                            [c / b for c, b in zip(own, bare, strict=True)], error=error))
    return found


def line(data: dict[str, Any]) -> str:
    seconds = data.get("seconds")
    if not seconds:
        return ""
    return (f"start-up, median of {data['samples']}: python -c pass "
            f"{median(seconds['python']) * 1000:.0f} ms, composer --help "
            f"{median(seconds['help']) * 1000:.0f} ms, composer validate "
            f"{median(seconds['validate']) * 1000:.0f} ms")
