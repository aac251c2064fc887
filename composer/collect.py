"""Outputs back from the nodes, hashed while they stream, with a manifest.

Names are listed as bytes: a file whose name is not UTF-8 cannot be fetched by
name through SFTP, so it is listed (name escaped) as withheld and every other
output is still collected. Files over ``max_file_size`` are listed with a reason.
``collect_outputs`` also says what a user needs to hear: a pattern that matched
nothing, files that ``from = "head"`` left on the other nodes, what was withheld.
"""

from __future__ import annotations

import fnmatch
import hashlib
import posixpath
import shlex
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paramiko
from paramiko.sftp import CMD_CLOSE, CMD_HANDLE, CMD_NAME, CMD_OPENDIR, CMD_READDIR

from composer import sshopts
from composer.errors import SSHError
from composer.records import guard
from composer.records import manifest as manifests
from composer.remote import Session, fan_out

if TYPE_CHECKING:
    from composer.secrets import Secrets
    from composer.spec import OutputsSpec

CHUNK = 1 << 20
STREAM_THRESHOLD = 16 << 20
UNDECODABLE = "name is not valid UTF-8 (shown escaped)"
WORKDIR_HINT = ("a workload writes its outputs to $COMPOSER_OUTPUT_DIR; its working "
                "directory ($COMPOSER_WORK_DIR/code) is not collected")


@dataclass(frozen=True)
class OutputFile:
    path: str
    node: str
    size: int
    sha256: str | None
    committed: bool
    withheld: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "node": self.node, "size": self.size,
                                "committed": self.committed}
        if self.sha256 is not None:
            data["sha256"] = self.sha256
        if self.withheld is not None:
            data["withheld"] = self.withheld
        return data


@dataclass(frozen=True)
class RemoteFile:
    """A regular file under a node's output directory; ``name`` is None when its
    relative path is not valid UTF-8 (``shown`` is then the escaped form)."""

    name: str | None
    shown: str
    size: int


def _listdir(sftp: paramiko.SFTPClient, path: bytes) -> list[tuple[bytes, paramiko.SFTPAttributes]]:
    """``sftp.listdir_attr`` that keeps names as bytes.

    paramiko decodes names as UTF-8 strictly, so one undecodable name loses the
    whole listing; this reads the same READDIR replies without decoding.
    """
    kind, msg = sftp._request(CMD_OPENDIR, path)  # noqa: SLF001 - see docstring
    if kind != CMD_HANDLE:
        raise SSHError("sftp", f"opendir {path!r}: expected a handle")
    handle = msg.get_binary()
    found: list[tuple[bytes, paramiko.SFTPAttributes]] = []
    try:
        while True:
            try:
                kind, msg = sftp._request(CMD_READDIR, handle)  # noqa: SLF001
            except EOFError:
                break
            if kind != CMD_NAME:
                raise SSHError("sftp", f"readdir {path!r}: expected names")
            for _ in range(msg.get_int()):
                name = msg.get_string()
                msg.get_string()  # the long name, unused
                attr = paramiko.SFTPAttributes._from_msg(msg)  # noqa: SLF001
                if name not in (b".", b".."):
                    found.append((name, attr))
    finally:
        sftp._request(CMD_CLOSE, handle)  # noqa: SLF001
    return found


def list_outputs(session: Session, root: str) -> list[RemoteFile]:
    """Every regular file under ``root`` on the node, sorted by its shown path."""
    found: list[RemoteFile] = []
    stack = [b""]
    base = root.encode()
    while stack:
        rel = stack.pop()
        try:
            entries = _listdir(session.sftp, posixpath.join(base, rel) if rel else base)
        except FileNotFoundError:
            continue
        for raw, attr in entries:
            child = posixpath.join(rel, raw) if rel else raw
            mode = attr.st_mode or 0
            if stat.S_ISDIR(mode):
                stack.append(child)
            elif stat.S_ISREG(mode):
                try:
                    name: str | None = child.decode("utf-8")
                except UnicodeDecodeError:
                    name = None
                shown = child.decode("utf-8", "backslashreplace")
                found.append(RemoteFile(name, shown, attr.st_size or 0))
    return sorted(found, key=lambda f: f.shown)


def remote_files(session: Session, root: str) -> list[tuple[str, int]]:
    """(relative path, size) of every regular file with a UTF-8 name under ``root``."""
    return [(f.name, f.size) for f in list_outputs(session, root) if f.name is not None]


def matches(rel: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(rel, p) for p in patterns)


def ssh_argv(session: Session, known_hosts: Path) -> list[str]:
    """The OpenSSH client to the node: the run's key, the pinned host key only."""
    node = session.node
    return ["ssh", *sshopts.options(session.key_path, known_hosts, node.port),
            f"{session.user}@{node.address}"]


Feed = Callable[[bytes], None]


def fetch_stream(session: Session, remote: str, local: Path | None,
                 feed: Feed | None = None) -> str:
    """Large files: OpenSSH's client streams them (its ciphers run in C), hashed as read."""
    digest = hashlib.sha256()
    with tempfile.TemporaryDirectory(prefix="composer-kh-") as tmp, ExitStack() as stack:
        known = Path(tmp) / "known_hosts"
        known.write_text(session.node.known_hosts_line + "\n")
        proc = subprocess.Popen([*ssh_argv(session, known), f"cat -- {shlex.quote(remote)}"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL)
        sink = None
        if local is not None:
            local.parent.mkdir(parents=True, exist_ok=True)
            sink = stack.enter_context(open(local, "wb"))
        assert proc.stdout is not None
        while chunk := proc.stdout.read(CHUNK):
            digest.update(chunk)
            if feed is not None:
                feed(chunk)
            if sink is not None:
                sink.write(chunk)
        _, err = proc.communicate()
    if proc.returncode != 0:
        raise SSHError(session.node.name, f"copying {remote} failed: {err.decode().strip()}")
    return digest.hexdigest()


def fetch(session: Session, remote: str, local: Path | None, size: int = 0,
          feed: Feed | None = None) -> str:
    """Copy ``remote`` to ``local`` (or only read it when None); return its sha256."""
    if size >= STREAM_THRESHOLD and shutil.which("ssh"):
        return fetch_stream(session, remote, local, feed)
    digest = hashlib.sha256()
    with ExitStack() as stack:
        sink = None
        if local is not None:
            local.parent.mkdir(parents=True, exist_ok=True)
            sink = stack.enter_context(open(local, "wb"))
        src = stack.enter_context(session.sftp.open(remote, "rb"))
        src.prefetch()
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            if feed is not None:
                feed(chunk)
            if sink is not None:
                sink.write(chunk)
    return digest.hexdigest()


def _oversize(session: Session, remote: str, path: str, size: int, limit: int,
              secrets: Secrets | None) -> OutputFile:
    """A file over the limit: hashed (so reproduce can compare it) unless it holds a
    private key or a secret, which leaves no hash behind."""
    scan = guard.Scan(secrets)
    sha: str | None = fetch(session, remote, None, size, scan.feed)
    reason = f"over max_file_size ({size} > {limit} bytes)"
    if scan.reason is not None:
        sha, reason = None, f"{reason}; {scan.reason}"
    return OutputFile(path, session.node.name, size, sha, False, reason)


def collect(sessions: list[Session], patterns: tuple[str, ...], dest: Path,
            per_node: bool, max_file_size: int,
            secrets: Secrets | None = None) -> list[OutputFile]:
    """Fetch matching outputs into ``dest`` (``node-<rank>/`` each, or flat for the head)."""
    if not patterns:
        return []

    def one(session: Session) -> list[OutputFile]:
        root = posixpath.join(session.node.work_dir, "outputs")
        prefix = f"node-{session.node.rank}/" if per_node else ""
        got: list[OutputFile] = []
        for item in list_outputs(session, root):
            if not matches(item.shown, patterns):
                continue
            path = prefix + item.shown
            if item.name is None:
                got.append(OutputFile(path, session.node.name, item.size, None, False,
                                      UNDECODABLE))
                continue
            remote = posixpath.join(root, item.name)
            if item.size > max_file_size:
                got.append(_oversize(session, remote, path, item.size, max_file_size, secrets))
                continue
            sha = fetch(session, remote, dest / prefix / item.name, item.size)
            got.append(OutputFile(path, session.node.name, item.size, sha, True))
        return got

    results = fan_out(one, sessions)
    return sorted((f for files in results for f in files), key=lambda f: f.path)


def manifest(files: list[OutputFile]) -> dict[str, Any]:
    return {"schema_version": manifests.SCHEMA_VERSION, "files": [f.to_dict() for f in files]}


@dataclass(frozen=True)
class Collected:
    """What the collect stage brought back, and the lines the user should read."""

    files: list[OutputFile]
    withheld: list[guard.Withheld] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def notes(self) -> list[str]:
        return [*self.warnings, *(w.line() for w in self.withheld)]


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
                    secrets: Secrets | None = None) -> Collected:
    """The collect stage: fetch, write ``manifest.json`` at the record's root, withhold
    what may not be committed, and gather the warnings."""
    per_node = spec.from_ == "all"
    chosen = sessions if per_node else sessions[:1]
    files = collect(chosen, spec.paths, staged / "outputs", per_node, spec.max_file_size,
                    secrets)
    manifests.save(staged, manifest(files))
    guard.screen_outputs(staged, secrets)
    withheld = [guard.Withheld(str(e.get("path")), str(e["withheld"]))
                for e in manifests.load(staged).get("files", [])
                if isinstance(e, dict) and e.get("withheld")]
    warnings = _unmatched(files, spec.paths, per_node) if spec.paths else []
    if spec.paths and not per_node and len(sessions) > 1:
        left = _left_on_others(sessions[1:], spec.paths)
        if left:
            warnings.append(left)
    return Collected(files, withheld, warnings)
