"""Outputs back from the nodes, hashed while they stream, with a manifest.

Names are listed as bytes: a file whose name is not UTF-8 cannot be fetched by
name through SFTP, so it is listed (name escaped) as withheld and every other
output is still collected. Files over ``max_file_size`` are listed with a reason;
so is anything that is not a regular file (a symlink is never followed, a
symlinked directory never walked).

Each file is read up to the size it had when listed, never further: a process the
workload left behind may still be appending to it, and the manifest's size and
sha256 describe exactly the bytes read (``grew_during_collect`` says the file was
longer by then). The whole collect has a time limit (``Deadline``); past it, what
is left is listed as not collected and the run fails at collect.

``collect_outputs`` also says what a user needs to hear: a pattern that matched
nothing, files that ``from = "head"`` left on the other nodes, files that changed
while collected, what was withheld. Names are printed escaped
(``guard.terminal_text``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import posixpath
import shlex
import shutil
import stat
import struct
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from composer import collect_tar, sshopts
from composer.collect_tar import Received, Wanted
from composer.errors import ComposerError, SSHError
from composer.launch import human_duration
from composer.lazyimport import lazy
from composer.records import guard
from composer.records import manifest as manifests
from composer.remote import Session, fan_out, known_hosts
from composer.settings import positive_seconds
from composer.spec import output_matches as matches

if TYPE_CHECKING:
    from composer.secrets import Secrets
    from composer.spec import OutputsSpec

paramiko = lazy("paramiko")
sftp_protocol = lazy("paramiko.sftp")

CHUNK = 4 << 20
"""Bytes read (and hashed) at a time."""
PIPE_SIZE = 1 << 20
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
FOLLOW_NAP_S = 0.002
"""How long the hash waits for ssh to write more of a file it follows."""
STREAM_THRESHOLD = 16 << 20
UNDECODABLE = "name is not valid UTF-8 (shown escaped)"
NOT_REGULAR = "not a regular file"
TIMEOUT_ENV = "COMPOSER_COLLECT_TIMEOUT_S"
MIN_TIME_S = 600.0
"""The default time limit of a collect: 10 minutes, plus ``SLOW_RATE``..."""
SLOW_RATE = float(1 << 20)
"""...one second per MiB listed for collecting (a slow link's rate)."""
HASH_LIMIT = 16 << 30
"""A file over ``max_file_size`` is read only to hash it; past this size it is listed
unread (a sparse 1 TB file must not hold the cluster up for hours)."""
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
WORKDIR_HINT = ("a workload writes its outputs to $COMPOSER_OUTPUT_DIR; its working "
                "directory ($COMPOSER_WORK_DIR/code) is not collected")


@dataclass(frozen=True)
class OutputFile:
    """One manifest entry. ``size`` and ``sha256`` describe the bytes read: the
    size listed, or fewer when the file shrank meanwhile (``shrank``); ``grew``
    when the file was longer than listed once read."""

    path: str
    node: str
    size: int
    sha256: str | None
    committed: bool
    withheld: str | None = None
    grew: bool = False
    shrank: bool = False

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "node": self.node, "size": self.size,
                                "committed": self.committed}
        if self.sha256 is not None:
            data["sha256"] = self.sha256
        if self.withheld is not None:
            data["withheld"] = self.withheld
        if self.grew:
            data["grew_during_collect"] = True
        if self.shrank:
            data["shrank_during_collect"] = True
        return data


@dataclass(frozen=True)
class RemoteFile:
    """An entry under a node's output directory; ``name`` is None when its
    relative path is not valid UTF-8 (``shown`` is then the escaped form).
    ``kind`` is None for a regular file, else what it is: ``symlink -> TARGET``,
    ``fifo``, ``socket``, ``character device``, ``block device``."""

    name: str | None
    shown: str
    size: int
    kind: str | None = None


class ExpiredError(Exception):
    """The collect's time limit passed while it listed or read a file."""


class VanishedError(Exception):
    """A file listed on the node was gone when it was read (the workload, or something it
    left running, removed it meanwhile)."""


VANISHED = "vanished during collect (listed, then gone when read)"


class Deadline:
    """The time limit of one collect: ``limit`` seconds when given, else
    ``MIN_TIME_S`` plus one second per ``SLOW_RATE`` bytes ``allow``-ed."""

    def __init__(self, limit: float | None = None) -> None:
        self.fixed = limit is not None
        self.limit = limit if limit is not None else MIN_TIME_S
        self.start = time.monotonic()
        self.expired = False

    def allow(self, nbytes: int) -> None:
        if not self.fixed:
            self.limit += nbytes / SLOW_RATE

    def left(self) -> float:
        return self.start + self.limit - time.monotonic()

    def passed(self) -> bool:
        if self.left() <= 0:
            self.expired = True
        return self.expired

    def check(self) -> None:
        if self.passed():
            raise ExpiredError

    def text(self) -> str:
        return f"{self.limit:g}s" if self.limit < 1 else human_duration(self.limit)


def collect_timeout(environ: Mapping[str, str]) -> float | None:
    """The collect time limit in seconds from ``COMPOSER_COLLECT_TIMEOUT_S``; None
    (the default, derived from the bytes to collect) when unset."""
    return positive_seconds(environ, TIMEOUT_ENV, "the default (10 minutes plus one second "
                            "per MiB to collect)")


class CollectTimeoutError(ComposerError):
    """Collect passed its time limit; what it read is in the record."""


_SIZE, _UIDGID, _PERMISSIONS, _AMTIME = 1, 2, 4, 8
_EXTENDED = 1 << 31
READ_AHEAD = 16
"""READDIR requests kept in flight on one directory: its replies (~100 names each
from OpenSSH's sftp-server) come back to back instead of one round trip each."""


def _names(data: bytes, count: int) -> list[tuple[bytes, int, int]]:
    """``(name, mode, size)`` of each entry of a READDIR reply's body (SFTP v3: name,
    long name, attributes), read with ``struct``: paramiko's parser costs ~40 us an
    entry, which thousands of outputs feel."""
    found = []
    pos = 0
    for _ in range(count):
        (n,) = _U32.unpack_from(data, pos)
        name = data[pos + 4:pos + 4 + n]
        pos += 4 + n
        (n,) = _U32.unpack_from(data, pos)
        pos += 4 + n  # the long name, unused
        (flags,) = _U32.unpack_from(data, pos)
        pos += 4
        size = mode = 0
        if flags & _SIZE:
            (size,) = _U64.unpack_from(data, pos)
            pos += 8
        if flags & _UIDGID:
            pos += 8
        if flags & _PERMISSIONS:
            (mode,) = _U32.unpack_from(data, pos)
            pos += 4
        if flags & _AMTIME:
            pos += 8
        if flags & _EXTENDED:
            (pairs,) = _U32.unpack_from(data, pos)
            pos += 4
            for _ in range(2 * pairs):
                (n,) = _U32.unpack_from(data, pos)
                pos += 4 + n
        if name not in (b".", b".."):
            found.append((name, mode, size))
    return found


def _listdir(sftp: paramiko.SFTPClient, path: bytes) -> list[tuple[bytes, int, int]]:
    """``(name, mode, size)`` of each entry of a directory, names kept as bytes, modes
    as lstat gives them.

    paramiko decodes names as UTF-8 strictly, so one undecodable name loses the
    whole listing; this reads the same READDIR replies without decoding, with
    ``READ_AHEAD`` requests in flight.
    """
    kind, msg = sftp._request(sftp_protocol.CMD_OPENDIR, path)  # noqa: SLF001 - see docstring
    if kind != sftp_protocol.CMD_HANDLE:
        raise SSHError("sftp", f"opendir {path!r}: expected a handle")
    handle = msg.get_binary()
    found: list[tuple[bytes, int, int]] = []
    pending: deque[int] = deque()
    ended = False
    try:
        while not ended or pending:
            while not ended and len(pending) < READ_AHEAD:
                pending.append(sftp._async_request(type(None), sftp_protocol.CMD_READDIR, handle))  # noqa: SLF001
            try:
                kind, msg = sftp._read_response(pending.popleft())  # noqa: SLF001
            except EOFError:
                ended = True
                continue
            if ended:
                continue  # a reply to a request sent before the end was seen
            if kind != sftp_protocol.CMD_NAME:
                raise SSHError("sftp", f"readdir {path!r}: expected names")
            count = msg.get_int()
            found += _names(msg.get_remainder(), count)
    finally:
        while pending:  # replies still owed after an error: read, so none is left behind
            with contextlib.suppress(EOFError, OSError, paramiko.SSHException):
                sftp._read_response(pending.popleft())  # noqa: SLF001
        sftp._request(sftp_protocol.CMD_CLOSE, handle)  # noqa: SLF001
    return found


def _readlink(sftp: paramiko.SFTPClient, path: bytes) -> bytes | None:
    """A symlink's target as bytes (paramiko's ``readlink`` decodes it strictly)."""
    try:
        kind, msg = sftp._request(sftp_protocol.CMD_READLINK, path)  # noqa: SLF001 - see docstring
    except OSError:
        return None
    if kind != sftp_protocol.CMD_NAME or msg.get_int() != 1:
        return None
    target: bytes = msg.get_string()
    return target


_KINDS = ((stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"),
          (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"))


def _kind(sftp: paramiko.SFTPClient, path: bytes, mode: int) -> str:
    """What a non-regular entry is, for its withheld reason; a symlink is not followed."""
    if stat.S_ISLNK(mode):
        target = _readlink(sftp, path)
        if target is None:
            return "symlink"
        return f"symlink -> {target.decode('utf-8', 'backslashreplace')}"
    return next((name for test, name in _KINDS if test(mode)), "unknown file type")


def list_outputs(session: Session, root: str,
                 deadline: Deadline | None = None) -> list[RemoteFile]:
    """Every entry under ``root`` on the node but directories, sorted by its shown
    path. Entries are read without following symlinks (SFTP's READDIR gives lstat
    attributes), so a symlinked directory is listed, not walked. Past ``deadline``
    the listing stops with what it has (``deadline.expired`` then says so)."""
    found: list[RemoteFile] = []
    stack = [b""]
    base = root.encode()
    while stack:
        rel = stack.pop()
        where = posixpath.join(base, rel) if rel else base
        try:
            entries = _listdir(session.sftp, where)
        except FileNotFoundError:
            continue
        for raw, mode, size in entries:
            child = posixpath.join(rel, raw) if rel else raw
            if stat.S_ISDIR(mode):
                stack.append(child)
                continue
            try:
                name: str | None = child.decode("utf-8")
            except UnicodeDecodeError:
                name = None
            shown = child.decode("utf-8", "backslashreplace")
            if stat.S_ISREG(mode):
                found.append(RemoteFile(name, shown, size))
            else:
                kind = _kind(session.sftp, posixpath.join(where, raw), mode)
                found.append(RemoteFile(name, shown, 0, kind))
        if deadline is not None and deadline.passed():
            break
    return sorted(found, key=lambda f: f.shown)


def ssh_argv(session: Session, known_hosts: Path) -> list[str]:
    """The OpenSSH client to the node: the run's key, the pinned host key only."""
    node = session.node
    return ["ssh", *sshopts.options(session.key_path, known_hosts, node.port),
            f"{session.user}@{node.address}"]


Feed = Callable[[bytes], None]


@dataclass(frozen=True)
class Fetched:
    """What one read brought: the sha256 and count of the bytes read (the size
    asked for, or fewer when the file shrank) and whether the file was longer by
    the end."""

    sha256: str
    size: int
    grew: bool


class _Reader:
    """The sink of one read: hash, feed, and the local file (removed on failure)."""

    def __init__(self, local: Path | None, feed: Feed | None) -> None:
        self.digest = hashlib.sha256()
        self.count = 0
        self.feed = feed
        self.local = local
        self.sink = None
        if local is not None:
            local.parent.mkdir(parents=True, exist_ok=True)
            self.sink = open(local, "wb")  # noqa: SIM115 - closed in close()

    def saw(self, chunk: bytes | memoryview) -> None:
        """Hash, count and feed ``chunk``, which is already in the local file."""
        self.digest.update(chunk)
        self.count += len(chunk)
        if self.feed is not None:
            self.feed(bytes(chunk))

    def write(self, chunk: bytes | memoryview) -> None:
        self.saw(chunk)
        if self.sink is not None:
            self.sink.write(chunk)

    def close(self, ok: bool) -> None:
        if self.sink is not None:
            self.sink.close()
            if not ok and self.local is not None:
                self.local.unlink(missing_ok=True)


def _widen(pipe: IO[bytes]) -> None:
    """A 1 MiB pipe instead of 64 KiB: fewer wake-ups of the reader and of ssh."""
    # not Linux, or over the system's limit: the default pipe still works
    with contextlib.suppress(OSError):
        fcntl.fcntl(pipe.fileno(), F_SETPIPE_SZ, PIPE_SIZE)


def _follow(proc: subprocess.Popen[bytes], out: _Reader, size: int,
            expire: Callable[[], None], deadline: Deadline | None) -> None:
    """Hash the local file while ssh writes it (its stdout): the copy never waits on
    the hash, and every byte hashed is a byte on disk. Stops at ``size`` bytes, at
    the deadline, or when ssh exits and the file is read to its end."""
    assert out.local is not None
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    # a read at the end returns nothing and leaves the offset there: the next one
    # goes on from the same place once ssh has written more
    with open(out.local, "rb", buffering=0) as written:
        while True:
            n = written.readinto(buf) or 0
            if n:
                out.saw(view[:n])
                if out.count > size:
                    expire()  # more than asked for: stop the copy, refused below
                    return
            elif proc.poll() is not None:
                if not (n := written.readinto(buf) or 0):
                    return
                out.saw(view[:n])
                continue
            if deadline is not None and deadline.passed():
                expire()
                return
            if not n:
                time.sleep(FOLLOW_NAP_S)


def _drain(proc: subprocess.Popen[bytes], out: _Reader, size: int,
           expire: Callable[[], None], deadline: Deadline | None) -> bool:
    """Read ssh's stdout into ``out`` up to ``size``; True when the node sent more."""
    assert proc.stdout is not None
    _widen(proc.stdout)
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while out.count < size:
        n = proc.stdout.readinto(view[:min(CHUNK, size - out.count)])
        if not n:
            return False
        out.write(view[:n])
        if deadline is not None and deadline.passed():
            expire()
            return False
    return bool(proc.stdout.read(1))


def fetch_stream(session: Session, remote: str, size: int, out: _Reader,
                 deadline: Deadline | None = None) -> None:
    """Large files: OpenSSH's client streams them (its ciphers run in C), hashed as
    read: ``head -c SIZE``, so a file still being written is read up to ``size``.
    With a local file, ssh writes it directly and it is hashed from the page cache
    as it grows (``_follow``); without one, the bytes come through a pipe."""
    with tempfile.TemporaryDirectory(prefix="composer-kh-") as tmp:
        known = Path(tmp) / "known_hosts"
        known.write_text(known_hosts([session.node]))
        argv = [*ssh_argv(session, known), f"head -c {int(size)} -- {shlex.quote(remote)}"]
        if out.sink is not None:
            out.sink.flush()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                stdout=out.sink if out.sink is not None else subprocess.PIPE,
                                bufsize=0)
        timed_out = threading.Event()

        def expire() -> None:
            timed_out.set()
            proc.kill()

        timer = None
        if deadline is not None:
            # the read loops check the deadline too; this one also ends a stalled read
            timer = threading.Timer(max(deadline.left(), 0.0), expire)
            timer.daemon = True
            timer.start()
        try:
            if out.sink is not None:
                _follow(proc, out, size, expire, deadline)
                extra = out.count > size
                if extra:
                    timed_out.clear()  # killed for sending too much, not for time
            else:
                extra = _drain(proc, out, size, expire, deadline)
                if extra:
                    proc.kill()
            _, err = proc.communicate()
        finally:
            if timer is not None:
                timer.cancel()
    if timed_out.is_set():
        if deadline is not None:
            deadline.expired = True
        raise ExpiredError
    if extra:
        raise SSHError(session.node.name,
                       f"copying {remote}: the node sent more than the {size} bytes asked for")
    if proc.returncode != 0:
        if not _exists(session, remote):
            raise VanishedError(remote)
        raise SSHError(session.node.name, f"copying {remote} failed: {err.decode().strip()}")


def _exists(session: Session, remote: str) -> bool:
    """Whether ``remote`` is still there (lstat: a symlink counts); True when unsure."""
    try:
        session.sftp.lstat(remote)
    except FileNotFoundError:
        return False
    except (OSError, EOFError, paramiko.SSHException):
        return True
    return True


def fetch_sftp(session: Session, remote: str, size: int, out: _Reader,
               deadline: Deadline | None = None) -> None:
    """Read ``remote`` up to ``size`` bytes through SFTP; a stalled read gives up at
    the deadline (the channel's timeout)."""
    channel = session.sftp.get_channel()

    def check() -> None:
        if deadline is not None:
            deadline.check()
            if channel is not None:
                channel.settimeout(max(deadline.left(), 0.001))

    try:
        check()
        try:
            opened = session.sftp.open(remote, "rb")
        except FileNotFoundError as exc:
            raise VanishedError(remote) from exc
        with opened as src:
            if size:
                src.prefetch(size)
            while out.count < size:
                check()
                chunk = src.read(min(CHUNK, size - out.count))
                if not chunk:
                    break
                out.write(chunk)
    except TimeoutError as exc:
        if deadline is not None:
            deadline.expired = True
        raise ExpiredError from exc
    finally:
        if channel is not None:
            # after a timeout the session is not used for reading again: closing the
            # handle must not wait forever either
            channel.settimeout(5.0 if deadline is not None and deadline.expired else None)


def _size_now(session: Session, remote: str) -> int | None:
    try:
        return session.sftp.lstat(remote).st_size
    except (OSError, EOFError, paramiko.SSHException):
        return None


def fetch(session: Session, remote: str, local: Path | None, size: int = 0,
          feed: Feed | None = None, deadline: Deadline | None = None) -> Fetched:
    """Copy the first ``size`` bytes of ``remote`` (its size when listed) to ``local``
    (or only read them when None). Raises ``ExpiredError`` past the deadline; a partial
    ``local`` is removed on any failure."""
    out = _Reader(local, feed)
    ok = False
    try:
        if size >= STREAM_THRESHOLD and shutil.which("ssh"):
            fetch_stream(session, remote, size, out, deadline)
        else:
            fetch_sftp(session, remote, size, out, deadline)
        ok = True
    finally:
        out.close(ok)
    now = _size_now(session, remote) if out.count == size else None
    return Fetched(out.digest.hexdigest(), out.count, now is not None and now > size)


def _oversize(session: Session, remote: str, path: str, size: int, limit: int,
              secrets: Secrets | None, deadline: Deadline | None = None) -> OutputFile:
    """A file over the limit: hashed (so reproduce can compare it) unless it holds a
    private key or a secret, which leaves no hash behind."""
    reason = f"over max_file_size ({size} > {limit} bytes)"
    if size > HASH_LIMIT:
        return OutputFile(path, session.node.name, size, None, False,
                          f"{reason}; not hashed (over {HASH_LIMIT >> 30} GiB)")
    scan = guard.Scan(secrets)
    got = fetch(session, remote, None, size, scan.feed, deadline)
    sha: str | None = got.sha256
    if scan.reason is not None:
        sha, reason = None, f"{reason}; {scan.reason}"
    return OutputFile(path, session.node.name, got.size, sha, False, reason,
                      grew=got.grew, shrank=got.size < size)


def _tar_batch(session: Session, root: str, items: list[RemoteFile], local: Path,
               max_file_size: int, deadline: Deadline) -> dict[str, Received | str]:
    """The small regular files of one node through one tar stream when there are
    many (``collect_tar``): per name what came, or what was not a regular file; a name
    left out is read through SFTP."""
    small = [Wanted(item.name, item.size, local / item.name) for item in items
             if item.name is not None and item.kind is None
             and item.size <= max_file_size and item.size < STREAM_THRESHOLD]
    if len(small) < collect_tar.MIN_FILES or deadline.passed():
        return {}
    batch = collect_tar.fetch_batch(session, root, small, deadline)
    if batch.expired:
        deadline.expired = True
        return batch.got
    if batch.complete:
        return batch.got
    # Read again through SFTP, except what tar found not to be a regular file: that
    # stays withheld (a file swapped for a symlink while tar ran is never followed).
    return {name: kind for name, kind in batch.got.items() if isinstance(kind, str)}


def _not_collected(deadline: Deadline) -> str:
    return f"not collected: collect passed its time limit ({deadline.text()})"


def collect(sessions: list[Session], patterns: tuple[str, ...], dest: Path,
            per_node: bool, max_file_size: int,
            secrets: Secrets | None = None,
            deadline: Deadline | None = None) -> list[OutputFile]:
    """Fetch matching outputs into ``dest`` (``node-<rank>/`` each, or flat for the head).

    Every node is listed first; the default deadline then allows for the bytes
    listed. Past the deadline, the files not yet read are listed as not collected
    (``deadline.expired`` says so)."""
    if not patterns:
        return []
    deadline = deadline if deadline is not None else Deadline()

    def listing(session: Session) -> list[RemoteFile]:
        root = posixpath.join(session.node.work_dir, "outputs")
        return [f for f in list_outputs(session, root, deadline) if matches(f.shown, patterns)]

    listed = fan_out(listing, sessions)
    deadline.allow(sum(min(f.size, HASH_LIMIT) for items in listed for f in items
                       if f.kind is None))

    def one(job: tuple[Session, list[RemoteFile]]) -> list[OutputFile]:
        session, items = job
        node = session.node.name
        root = posixpath.join(session.node.work_dir, "outputs")
        prefix = f"node-{session.node.rank}/" if per_node else ""
        got: list[OutputFile] = []
        batched = _tar_batch(session, root, items, dest / prefix, max_file_size, deadline)
        for item in items:
            path = prefix + item.shown
            if item.name is None:
                got.append(OutputFile(path, node, item.size, None, False, UNDECODABLE))
                continue
            kind = item.kind
            done = batched.get(item.name)
            if isinstance(done, str):
                kind = done  # a regular file when listed, something else when archived
            if kind is not None:
                reason = f"{NOT_REGULAR} ({kind})"
                got.append(OutputFile(path, node, 0, None, False,
                                      secrets.redact(reason) if secrets else reason))
                continue
            if done is not None:
                got.append(OutputFile(path, node, done.size, done.sha256, True,
                                      grew=done.grew, shrank=done.size < item.size))
                continue
            if deadline.passed():
                got.append(OutputFile(path, node, item.size, None, False,
                                      _not_collected(deadline)))
                continue
            remote = posixpath.join(root, item.name)
            try:
                if item.size > max_file_size:
                    got.append(_oversize(session, remote, path, item.size, max_file_size,
                                         secrets, deadline))
                    continue
                fetched = fetch(session, remote, dest / prefix / item.name, item.size,
                                deadline=deadline)
            except ExpiredError:
                got.append(OutputFile(path, node, item.size, None, False,
                                      _not_collected(deadline)))
                continue
            except VanishedError:
                got.append(OutputFile(path, node, item.size, None, False, VANISHED))
                continue
            got.append(OutputFile(path, node, fetched.size, fetched.sha256, True,
                                  grew=fetched.grew, shrank=fetched.size < item.size))
        return got

    results = fan_out(one, list(zip(sessions, listed, strict=True)))
    return sorted((f for files in results for f in files), key=lambda f: f.path)


def manifest(files: list[OutputFile]) -> dict[str, Any]:
    return {"schema_version": manifests.SCHEMA_VERSION, "files": [f.to_dict() for f in files]}


@dataclass(frozen=True)
class Collected:
    """What the collect stage brought back, and the lines the user should read."""

    files: list[OutputFile]
    withheld: list[guard.Withheld] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: CollectTimeoutError | None = None
    """Set when collect passed its time limit: the run fails at collect."""

    def notes(self) -> list[str]:
        return [*self.warnings, *(w.line() for w in self.withheld)]


def _changed(files: list[OutputFile]) -> list[str]:
    lines = []
    for f in files:
        what = "recorded" if f.committed else "hashed"
        if f.grew:
            lines.append(f"warning: output {guard.terminal_text(f.path)} grew while it was "
                         f"collected (a process the workload left running still writing "
                         f"it?): its first {f.size} bytes, its size when listed, are "
                         f"{what} (grew_during_collect in {manifests.MANIFEST})")
        elif f.shrank:
            lines.append(f"warning: output {guard.terminal_text(f.path)} shrank while it was "
                         f"collected: the {f.size} bytes left are {what} "
                         f"(shrank_during_collect in {manifests.MANIFEST})")
    return lines


def _timeout(deadline: Deadline, files: list[OutputFile]) -> CollectTimeoutError:
    missed = sum(1 for f in files if f.withheld == _not_collected(deadline))
    where = (f"from {TIMEOUT_ENV}" if deadline.fixed else
             f"the default: 10 minutes plus one second per MiB listed; {TIMEOUT_ENV}"
             "=SECONDS sets another")
    return CollectTimeoutError(
        f"collect passed its time limit of {deadline.text()} ({where}): {missed} output"
        f"{'s' if missed != 1 else ''} not collected, listed in {manifests.MANIFEST} as "
        "withheld; the outputs collected before are committed")


def _unmatched(files: list[OutputFile], patterns: tuple[str, ...], per_node: bool) -> list[str]:
    rels = [f.path.split("/", 1)[1] if per_node else f.path for f in files]
    where = "any node" if per_node else "the head node"
    return [f"warning: outputs.paths {pattern!r} matched no file in $COMPOSER_OUTPUT_DIR on "
            f"{where}; {WORKDIR_HINT}"
            for pattern in patterns if not any(matches(rel, (pattern,)) for rel in rels)]


def _left_on_others(others: list[Session], patterns: tuple[str, ...]) -> str | None:
    """With ``from = "head"``: how many matching files the other nodes hold."""

    def count(session: Session) -> tuple[str, int]:
        root = posixpath.join(session.node.work_dir, "outputs")
        try:
            listing = list_outputs(session, root)
        except (OSError, EOFError, paramiko.SSHException, SSHError):
            return session.node.name, 0
        return session.node.name, sum(1 for f in listing if matches(f.shown, patterns))

    counts = [(name, n) for name, n in fan_out(count, others) if n]
    if not counts:
        return None
    total = sum(n for _, n in counts)
    nodes = ", ".join(name for name, _ in counts)
    return (f"warning: outputs.from = \"head\" collects the head node only: {total} matching "
            f"file{'s' if total != 1 else ''} on {nodes} not collected "
            "(from = \"all\" collects every node's)")


def collect_outputs(sessions: list[Session], spec: OutputsSpec, staged: Path,
                    secrets: Secrets | None = None,
                    time_limit: float | None = None) -> Collected:
    """The collect stage: fetch, write ``manifest.json`` at the record's root, withhold
    what may not be committed, and gather the warnings. ``time_limit`` (seconds)
    replaces the default deadline; past the deadline ``error`` is set."""
    per_node = spec.from_ == "all"
    chosen = sessions if per_node else sessions[:1]
    deadline = Deadline(time_limit)
    try:
        files = collect(chosen, spec.paths, staged / "outputs", per_node, spec.max_file_size,
                        secrets, deadline)
    except BaseException:
        # Nothing unhashed goes into the record: what was read is dropped, and the
        # record's own (empty) manifest is written, so a manifest.json among the
        # workload's outputs is never taken for the record's.
        shutil.rmtree(staged / "outputs", ignore_errors=True)
        manifests.save(staged, manifest([]))
        raise
    manifests.save(staged, manifest(files))
    guard.screen_outputs(staged, secrets)
    # files left unread at the deadline are counted by the error, not named one by one
    withheld = [guard.Withheld(str(e.get("path")), str(e["withheld"]))
                for e in manifests.load(staged).get("files", [])
                if isinstance(e, dict) and e.get("withheld")
                and e["withheld"] != _not_collected(deadline)]
    warnings = _changed(files)
    if deadline.expired:
        return Collected(files, withheld, warnings, _timeout(deadline, files))
    warnings += _unmatched(files, spec.paths, per_node) if spec.paths else []
    if spec.paths and not per_node and len(sessions) > 1:
        left = _left_on_others(sessions[1:], spec.paths)
        if left:
            warnings.append(left)
    return Collected(files, withheld, warnings)
