"""Code and inputs onto every node: one tar, built once to a file, streamed to each node.

The tar is written to the run's work dir, then sent to all nodes in parallel and
unpacked there by ``tar -x`` reading its stdin. Both ways of sending read the
file in chunks, so the time grows linearly with its size:

- over the paramiko session already open: no process to start (OpenSSH's client
  takes about 0.25 s to start and log in on loopback), but every byte goes
  through Python, so all nodes together share one core;
- through OpenSSH's client (the same pinned options as ``collect``), one process
  per node: its ciphers run in C, on as many cores as there are.

On loopback paramiko was as fast or faster up to about 128 MB in all (2 cores),
so OpenSSH takes over from ``SSH_FROM_BYTES`` (bundle size times nodes). A
transfer taking more than a second reports its progress once a second.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from composer.collect import ssh_argv
from composer.errors import SSHError
from composer.interrupts import INTERRUPTS
from composer.lock import code_tree
from composer.remote import Session, fan_out, known_hosts
from composer.spec import Spec

CHUNK = 1 << 20
PARAMIKO_CHUNK = 1 << 16
SSH_FROM_BYTES = 64 << 20
PROGRESS_EVERY_S = 1.0
STALL_TIMEOUT_S = 300.0
"""A node that takes nothing for this long fails the stage (as the paramiko push did)."""

Say = Callable[[str], None]


def _add(tar: tarfile.TarFile, source: Path, arcname: str) -> None:
    """``source`` as a regular file: a symbolic link is shipped as what it points to,
    the content the lock pinned (a node may not have the link's target)."""
    with open(source, "rb") as fh:
        info = tar.gettarinfo(arcname=arcname, fileobj=fh)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        tar.addfile(info, fh)


def bundle(spec: Spec, dest: Path, runs_repo: Path | None = None) -> Path:
    """The shipped code directory (``lock.code_tree``: what the lock pins) plus every
    input at its destination, written as a tar to ``dest`` (a new file, mode 0600)."""
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh, \
            tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tree = code_tree(spec, runs_repo)
        if tree is not None:
            for file in tree.files():
                _add(tar, file, file.relative_to(tree.root).as_posix())
        for item in spec.inputs:
            _add(tar, item.source, item.dest)
    return dest


def unpack_command(work_dir: str) -> str:
    code, outputs = shlex.quote(f"{work_dir}/code"), shlex.quote(f"{work_dir}/outputs")
    return f"mkdir -p {code} {outputs} && tar -x -m -C {code} -f -"


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


class Transfer:
    """Bytes sent to every node, reported at most once a second once a second has
    passed; nodes that stall or a signal to composer stop their senders."""

    def __init__(self, size: int, nodes: int, say: Say | None) -> None:
        self.size, self.nodes, self.say = size, nodes, say
        self.sent = 0
        self.started = self.last_sent = time.monotonic()
        self.reported = False
        self.stopped: str | None = None
        self.stops: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True)

    def __enter__(self) -> Transfer:
        self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._ticker.join()
        if self.reported and exc[0] is None:
            self._report("sent")

    def add(self, n: int) -> None:
        with self._lock:
            self.sent += n
            self.last_sent = time.monotonic()

    def on_stop(self, stop: Callable[[], None]) -> None:
        with self._lock:
            self.stops.append(stop)

    def _report(self, verb: str) -> None:
        total = self.size * self.nodes
        pct = 100 * self.sent / total if total else 100.0
        where = f"{self.nodes} nodes" if self.nodes > 1 else "1 node"
        if self.say is not None:
            self.say(f"[stage] {verb} {_mb(self.sent)} of {_mb(total)} to {where} ({pct:.0f}%, "
                     f"{time.monotonic() - self.started:.0f}s)")

    def _tick(self) -> None:
        while not self._done.wait(PROGRESS_EVERY_S):
            self.reported = True
            self._report("sending:")
            if time.monotonic() - self.last_sent > STALL_TIMEOUT_S:
                self.stopped = f"no progress for {STALL_TIMEOUT_S:g}s"
            elif INTERRUPTS.signum is not None:
                self.stopped = "composer was interrupted"
            if self.stopped is not None:
                with self._lock:
                    stops = list(self.stops)
                for stop in stops:
                    stop()


def _send_ssh(session: Session, command: str, tar: Path, known: Path,
              transfer: Transfer) -> None:
    """``command`` on the node through OpenSSH, ``tar`` on its stdin."""
    with ExitStack() as stack:
        output = stack.enter_context(tempfile.TemporaryFile())
        proc = subprocess.Popen([*ssh_argv(session, known), command], stdin=subprocess.PIPE,
                                stdout=output, stderr=subprocess.STDOUT)
        transfer.on_stop(proc.kill)
        assert proc.stdin is not None
        try:
            with open(tar, "rb") as src, proc.stdin as sink:
                while chunk := src.read(CHUNK):
                    sink.write(chunk)
                    transfer.add(len(chunk))
        except BrokenPipeError:
            pass  # the command ended early; its exit status and output say why
        finally:
            code = proc.wait()
        output.seek(0)
        text = output.read().decode("utf-8", "replace").strip()
    if code != 0:
        why = f" (stopped: {transfer.stopped})" if transfer.stopped else ""
        raise SSHError(session.node.name,
                       f"{command!r} failed (exit {code}){why}: {text[-2000:]}")


def _send_paramiko(session: Session, command: str, tar: Path, transfer: Transfer) -> None:
    """``command`` over the open paramiko session, ``tar`` on its stdin in chunks."""
    with open(tar, "rb") as src:
        session.push(command, src, STALL_TIMEOUT_S,
                     on_channel=lambda channel: transfer.on_stop(channel.close),
                     on_sent=transfer.add, chunk=PARAMIKO_CHUNK)


def stage(sessions: list[Session], tar: Path, work: Path, say: Say | None = None) -> None:
    """Unpack ``tar`` into ``<node work dir>/code`` on every node at once; ``work`` (a
    local directory) holds the pinned host keys OpenSSH's client checks."""
    size = tar.stat().st_size
    use_ssh = size * len(sessions) >= SSH_FROM_BYTES and shutil.which("ssh") is not None
    with ExitStack() as stack:
        known: Path | None = None
        if use_ssh:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="stage-kh-", dir=work))
            known = Path(tmp) / "known_hosts"
            known.write_text(known_hosts(s.node for s in sessions))
        transfer = stack.enter_context(Transfer(size, len(sessions), say))

        def one(session: Session) -> None:
            command = unpack_command(session.node.work_dir)
            if known is not None:
                _send_ssh(session, command, tar, known, transfer)
            else:
                _send_paramiko(session, command, tar, transfer)

        fan_out(one, sessions)


def private_write_command(path: str, mode: int = 0o600) -> str:
    """A shell command writing its stdin to a new ``path`` created 0600 (umask 077;
    noclobber makes the shell create it with O_EXCL after removing any old one),
    then given ``mode``: the file is never readable by others while written."""
    q = shlex.quote(path)
    return f"umask 077 && rm -f -- {q} && (set -C && cat > {q}) && chmod {mode:o} -- {q}"


def put_text(session: Session, path: str, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` on the node: created 0600, then set to ``mode``."""
    session.push(private_write_command(path, mode), text.encode())
