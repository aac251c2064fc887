"""SIGINT/SIGTERM handling that keeps the teardown guarantee.

While a Terraform child runs, a signal is forwarded to it exactly once as SIGINT
(Terraform then stops gracefully and saves its state; a second SIGINT would make
it abandon the operation) and the run raises ``Interrupted`` when the child has
exited. Outside of Terraform the signal raises ``Interrupted`` at once. While the
cluster is being torn down, signals are only noted: teardown always finishes.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from composer.errors import Interrupted


class Interrupts:
    def __init__(self) -> None:
        self.signum: int | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self._forwarded = False
        self._shielded = 0
        self._say = ""
        self._hard = 0
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        self.signum, self._forwarded, self._child = None, False, None
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()
        self._shielded = 0

    def hold(self, say: str = "tearing down, waiting for that to finish") -> None:
        """From here until ``restore``: signals are only noted (teardown, then the record)."""
        self._shielded += 1
        self._say = say

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        if self._shielded:
            if self._say:
                print(f"composer: {self._say}", file=sys.stderr)
            return
        if self._child is not None and self._child.poll() is None:
            if not self._forwarded:
                self._forwarded = True
                self._child.send_signal(signal.SIGINT)
            return
        if self._hard:
            raise _Hard(signum)
        raise Interrupted(signum)

    def check(self) -> None:
        """Raise ``Interrupted`` if a signal arrived (call at safe points)."""
        if self.signum is not None and not self._shielded:
            raise Interrupted(self.signum)

    @contextmanager
    def child(self, proc: subprocess.Popen[bytes]) -> Iterator[None]:
        """Route signals to ``proc`` (once, as SIGINT) while it runs."""
        self._child, self._forwarded = proc, False
        try:
            yield
        finally:
            self._child = None

    @contextmanager
    def hard(self) -> Iterator[None]:
        """Inside, a signal raises past ``except Exception`` (a library's retry loop, such
        as botocore's, would take ``Interrupted`` for a failed call and try again); it
        leaves as ``Interrupted``."""
        self._hard += 1
        try:
            yield
        except _Hard as stop:
            raise Interrupted(stop.signum) from None
        finally:
            self._hard -= 1

    @contextmanager
    def shield(self, say: str = "tearing down, waiting for that to finish") -> Iterator[None]:
        """Note signals without raising (``say`` is printed when one comes), for teardown
        and record writing; ``check`` raises them once the shield is down."""
        self._shielded += 1
        said, self._say = self._say, say
        try:
            yield
        finally:
            self._shielded -= 1
            self._say = said


class _Hard(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


INTERRUPTS = Interrupts()
