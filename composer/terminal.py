"""stdout and stderr that a reader who went away cannot break.

``composer up job.toml | head -3`` closes the pipe after three lines; the next
write would raise ``BrokenPipeError`` in whatever stage the run is in, and the run
would end there, its record not committed. Once the reader is gone, further
writes are dropped (the descriptor is pointed at /dev/null, so nothing at exit
complains either): the run goes on to its teardown and record as if the output
had been read, and composer.log keeps every line.
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import IO


class Terminal(io.TextIOBase):
    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                self.stream.write(text)
            except OSError as exc:
                self._lost(exc)
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except OSError as exc:
                self._lost(exc)

    def _lost(self, exc: OSError) -> None:
        # A closed pipe (EPIPE), a full device (ENOSPC, >/dev/full), anything: the
        # terminal is a courtesy, composer.log keeps every line.
        del exc
        self.gone = True
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)

    def fileno(self) -> int:
        return self.stream.fileno()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")


def guard_std_streams() -> None:
    """Wrap ``sys.stdout`` and ``sys.stderr`` (once). One that was closed when composer
    started (``2>&-``: Python makes it None) writes to /dev/null, and its descriptor is
    taken by /dev/null too, so no file composer opens lands on it."""
    import sys

    for fd, name in ((1, "stdout"), (2, "stderr")):
        stream = getattr(sys, name)
        if stream is None:
            stream = open(_null_on(fd), "w", encoding="utf-8", closefd=False)  # noqa: SIM115
        if not isinstance(stream, Terminal):
            setattr(sys, name, Terminal(stream))


def _null_on(fd: int) -> int:
    devnull = os.open(os.devnull, os.O_WRONLY)
    if devnull != fd:
        os.dup2(devnull, fd)
        os.close(devnull)
    return fd
