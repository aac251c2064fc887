"""Live progress on a terminal: the stage, its time, nodes ready during wait_for_ssh.

``progress_for(stream)`` decides: a live line (rich, which typer brings) when the
stream is a terminal, ``CI`` is not set and ``TERM`` is not ``dumb``; otherwise
``Plain``, which shows nothing live, so the progress lines composer prints are
exactly what they always were. The live line sits below composer's own lines
(which are printed above it, unchanged) and is erased when the run ends. While the
workload runs (stage ``run``), its output has the terminal: the live line is
stopped, and starts again at the next stage.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import IO, Any

PAUSED_STAGES = frozenset({"run"})
REFRESH_PER_SECOND = 4


def elapsed_text(seconds: float) -> str:
    """``7s``, ``3m05s``, ``1h02m``."""
    whole = max(0, int(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


class Plain:
    """No live display: composer's lines are written as they are."""

    live = False

    def stage(self, name: str) -> None:
        del name

    def nodes_ready(self, ready: int, total: int) -> None:
        del ready, total

    def print(self, line: str) -> None:  # pragma: no cover - never called when not live
        raise RuntimeError("Plain progress prints nothing")

    def close(self) -> None:
        pass


class Live(Plain):
    """A live status line under composer's lines, on a terminal."""

    live = True

    def __init__(self, stream: IO[str], clock: Callable[[], float] = time.monotonic) -> None:
        from rich.console import Console
        from rich.spinner import Spinner

        self.console = Console(file=stream, force_terminal=True, highlight=False,
                               soft_wrap=True, emoji=False, markup=False)
        self.clock = clock
        self.started = clock()
        self.current: str | None = None
        self.stage_started = self.started
        self.ready: tuple[int, int] | None = None
        self.spinner = Spinner("dots")
        self._live: Any = None
        self._lock = threading.RLock()

    def status(self) -> str:
        """What the live line says: ``apply 12s · nodes ready 1/2 · 40s in all``."""
        now = self.clock()
        parts = []
        if self.current is not None:
            parts.append(f"{self.current} {elapsed_text(now - self.stage_started)}")
        if self.ready is not None:
            parts.append(f"nodes ready {self.ready[0]}/{self.ready[1]}")
        parts.append(f"{elapsed_text(now - self.started)} in all")
        return " · ".join(parts)

    def _renderable(self) -> Any:
        from rich.text import Text

        self.spinner.update(text=Text(self.status()))
        return self.spinner

    def stage(self, name: str) -> None:
        with self._lock:
            self.current, self.stage_started, self.ready = name, self.clock(), None
            if name in PAUSED_STAGES:
                self._stop()
            else:
                self._start()

    def nodes_ready(self, ready: int, total: int) -> None:
        with self._lock:
            self.ready = (ready, total)
            if self._live is not None:
                self._live.refresh()

    def print(self, line: str) -> None:
        """One of composer's lines, above the live one, as it is (no markup, no wrap)."""
        from rich.text import Text

        with self._lock:
            self.console.print(Text(line), crop=False, overflow="ignore")

    def _start(self) -> None:
        if self._live is not None:
            return
        from rich.live import Live as RichLive

        self._live = RichLive(get_renderable=self._renderable, console=self.console,
                              transient=True, refresh_per_second=REFRESH_PER_SECOND,
                              redirect_stdout=False, redirect_stderr=True)
        self._live.start()

    def _stop(self) -> None:
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()

    def close(self) -> None:
        with self._lock:
            self._stop()


def wants_live(stream: IO[str], environ: Mapping[str, str] = os.environ) -> bool:
    """A live line only on a terminal, never in CI or on a dumb terminal."""
    if environ.get("CI") or environ.get("TERM") == "dumb":
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def progress_for(stream: IO[str], environ: Mapping[str, str] = os.environ) -> Plain:
    return Live(stream) if wants_live(stream, environ) else Plain()
