"""Many small outputs from one node in one tar stream, hashed per file as it arrives.

One SFTP read costs several round trips per file; a node with thousands of small
outputs is collected instead by one ``tar`` over the node's open SSH session,
read in streaming mode. The node is told exactly which files to send (the ones
``collect`` listed, NUL-separated on tar's stdin), and nothing is ever written by
the name a tar member carries: a member counts only when its name is one of those
asked for, and its bytes go to the local path ``collect`` chose for that name. A
member that is not a regular file (the file was swapped for a symlink, a FIFO, a
directory since it was listed) is reported by its kind, never written.

Each file is read up to the size it had when listed, as the SFTP path does; a
member longer than that was growing (``grew``), a shorter one shrank. Whatever
makes the node's tar fail (tar missing or not GNU tar, a file gone or changed
while archived, a stream cut short) leaves ``Batch.complete`` False: the caller
then reads every file of the batch through SFTP instead, so the result never
depends on which path ran.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import tarfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

from composer.lazyimport import lazy

if TYPE_CHECKING:
    from composer.remote import Session

paramiko = lazy("paramiko")

TAR = "tar"
"""The node's tar (GNU tar: ``--null``, ``--hard-dereference``, ``--no-recursion``)."""
MIN_FILES = 32
"""Fewer files than this go through SFTP: one tar costs about as much as ~20 SFTP reads."""
STREAM_BUFFER = 1 << 16
CHUNK = 1 << 20
CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
"""A local file is written anew, never through a symlink already there."""
EXIT_WAIT_S = 10.0
"""How long to wait for tar's exit status once its output has ended."""

_KINDS = {
    tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hard link", tarfile.DIRTYPE: "directory",
    tarfile.FIFOTYPE: "fifo", tarfile.CHRTYPE: "character device",
    tarfile.BLKTYPE: "block device",
}


@dataclass(frozen=True)
class Wanted:
    """One file to bring: its path under the node's output directory (valid UTF-8),
    its size when listed, and where it goes locally."""

    name: str
    size: int
    local: Path


@dataclass(frozen=True)
class Received:
    """A regular file as read: the sha256 and count of its bytes (its listed size, or
    fewer when it shrank) and whether tar found it longer than listed."""

    sha256: str
    size: int
    grew: bool


@dataclass
class Batch:
    """What one tar stream brought: per name, a ``Received`` or the kind of a member
    that is not a regular file (``symlink -> TARGET``, ``fifo``...). ``complete``: tar
    exited 0 after a whole archive; ``expired``: the deadline stopped the stream."""

    got: dict[str, Received | str] = field(default_factory=dict)
    complete: bool = False
    expired: bool = False


class Clock(Protocol):
    """What the read needs of ``collect.Deadline``."""

    def left(self) -> float: ...

    def passed(self) -> bool: ...


def _kind(member: tarfile.TarInfo) -> str:
    kind = _KINDS.get(member.type, "unknown file type")
    if member.type == tarfile.SYMTYPE:
        return f"{kind} -> {member.linkname}"
    return kind


def plain(name: str) -> bool:
    """A relative path that stays below its root: no empty, ``.`` or ``..`` part."""
    return all(part not in ("", ".", "..") for part in name.split("/"))


def _write(member: tarfile.TarInfo, source: IO[bytes], want: Wanted,
           made: set[Path]) -> Received:
    """The member's first ``want.size`` bytes (at most) into ``want.local``, hashed;
    a partial file is removed when the stream fails."""
    parent = want.local.parent
    if parent not in made:
        parent.mkdir(parents=True, exist_ok=True)
        made.add(parent)
    digest = hashlib.sha256()
    left = min(member.size, want.size)
    count = 0
    ok = False
    # os-level calls: Python's buffered open costs more than the write for a small file
    fd = os.open(want.local, CREATE, 0o666)
    try:
        while left > 0:
            chunk = source.read(min(CHUNK, left))
            if not chunk:
                raise tarfile.ReadError(f"the stream ended inside {want.name!r}")
            digest.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view):]
            count += len(chunk)
            left -= len(chunk)
        ok = True
    finally:
        os.close(fd)
        if not ok:
            want.local.unlink(missing_ok=True)
    return Received(digest.hexdigest(), count, member.size > want.size)


def read_members(stream: IO[bytes], wanted: dict[str, Wanted], batch: Batch,
                 passed: Callable[[], bool] = lambda: False) -> bool:
    """Read a tar stream into ``batch``: members named ``./NAME`` for a wanted NAME
    (a plain relative path), each taken once; any other member is skipped. True when
    the archive ended, False when ``passed()`` said stop first; ``tarfile.ReadError``
    (or ``EOFError``/``OSError`` from the stream) when it is cut short or malformed."""
    made: set[Path] = set()
    with tarfile.open(fileobj=stream, mode="r|", bufsize=STREAM_BUFFER, encoding="utf-8",
                      errors="surrogateescape") as archive:
        for member in archive:
            if passed():
                return False
            name = member.name.removeprefix("./") if member.name.startswith("./") else None
            want = wanted.get(name) if name is not None else None
            if want is None or name in batch.got or not plain(want.name):
                continue
            if not member.isreg():
                batch.got[want.name] = _kind(member)
                continue
            source = archive.extractfile(member)
            if source is None:  # pragma: no cover - isreg members always have data
                continue
            batch.got[want.name] = _write(member, source, want, made)
    return True


def command(root: str) -> str:
    """tar on the node: the names on stdin, each archived as itself only (a directory
    is not walked), hard links as full files, diagnostics dropped (the exit status
    says enough: anything but 0 sends the batch through SFTP)."""
    return (f"{TAR} -C {shlex.quote(root)} -cf - --no-recursion --hard-dereference "
            "--null -T - 2>/dev/null")


class _ChannelReader:
    """The channel's output as tarfile reads it: what has arrived, never waiting for a
    full buffer (members that came before a stall are kept)."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self.channel = channel

    def read(self, size: int) -> bytes:
        data: bytes = self.channel.recv(size)
        return data


def _names(items: list[Wanted]) -> bytes:
    return b"".join(b"./" + item.name.encode() + b"\0" for item in items)


def _send(channel: paramiko.Channel, data: bytes) -> None:
    # tar may exit early (missing, not GNU tar): its status says so, not this
    with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
        channel.sendall(data)
        channel.shutdown_write()


def fetch_batch(session: Session, root: str, items: list[Wanted],
                deadline: Clock | None = None) -> Batch:
    """Bring ``items`` from ``root`` on the node in one tar stream (see the module's
    docstring); never raises for what the node's tar does, only says ``complete``."""
    batch = Batch()
    wanted = {item.name: item for item in items}
    transport = session.client.get_transport() if session.client is not None else None
    if transport is None or not transport.is_active():
        return batch
    try:
        channel = transport.open_session()
    except (OSError, EOFError, paramiko.SSHException):
        return batch

    def passed() -> bool:
        if deadline is None:
            return False
        if deadline.passed():
            return True
        channel.settimeout(max(deadline.left(), 0.001))
        return False

    sender = threading.Thread(target=_send, args=(channel, _names(items)), daemon=True)
    try:
        channel.exec_command(command(root))
        sender.start()
        passed()
        ended = read_members(_ChannelReader(channel), wanted, batch, passed)  # type: ignore[arg-type]
        if not ended:
            batch.expired = True
            return batch
        if not channel.status_event.wait(EXIT_WAIT_S):
            return batch
        batch.complete = channel.exit_status == 0 and len(batch.got) == len(wanted)
    except TimeoutError:
        batch.expired = deadline is not None and deadline.passed()
    except (tarfile.TarError, EOFError, OSError, paramiko.SSHException):
        pass  # incomplete: the caller reads the batch through SFTP
    finally:
        channel.close()
        sender.join(timeout=5.0)
    return batch
