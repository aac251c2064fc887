"""Outputs back from the nodes, hashed while they stream, with a manifest."""

from __future__ import annotations

import fnmatch
import hashlib
import posixpath
import shlex
import shutil
import stat
import subprocess
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from composer.errors import SSHError
from composer.remote import Session, fan_out

CHUNK = 1 << 20
STREAM_THRESHOLD = 16 << 20


@dataclass(frozen=True)
class OutputFile:
    path: str
    node: str
    size: int
    sha256: str
    committed: bool

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "node": self.node, "size": self.size,
                "sha256": self.sha256, "committed": self.committed}


def remote_files(session: Session, root: str) -> list[tuple[str, int]]:
    """(relative path, size) of every regular file under ``root`` on the node."""
    found: list[tuple[str, int]] = []
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            entries = session.sftp.listdir_attr(posixpath.join(root, rel) if rel else root)
        except FileNotFoundError:
            continue
        for entry in entries:
            child = posixpath.join(rel, entry.filename) if rel else entry.filename
            mode = entry.st_mode or 0
            if stat.S_ISDIR(mode):
                stack.append(child)
            elif stat.S_ISREG(mode):
                found.append((child, entry.st_size or 0))
    return sorted(found)


def matches(rel: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(rel, p) for p in patterns)


def ssh_argv(session: Session, known_hosts: Path) -> list[str]:
    """The OpenSSH client to the node: the run's key, the pinned host key only."""
    node = session.node
    return ["ssh", "-i", str(session.key_path), "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR",
            "-p", str(node.port), f"{session.user}@{node.address}"]


def fetch_stream(session: Session, remote: str, local: Path | None) -> str:
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
            if sink is not None:
                sink.write(chunk)
        _, err = proc.communicate()
    if proc.returncode != 0:
        raise SSHError(session.node.name, f"copying {remote} failed: {err.decode().strip()}")
    return digest.hexdigest()


def fetch(session: Session, remote: str, local: Path | None, size: int = 0) -> str:
    """Copy ``remote`` to ``local`` (or only read it when None); return its sha256."""
    if size >= STREAM_THRESHOLD and shutil.which("ssh"):
        return fetch_stream(session, remote, local)
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
            if sink is not None:
                sink.write(chunk)
    return digest.hexdigest()


def collect(sessions: list[Session], patterns: tuple[str, ...], dest: Path,
            per_node: bool, max_file_size: int) -> list[OutputFile]:
    """Fetch matching outputs into ``dest`` (``node-<rank>/`` each, or flat for the head)."""
    if not patterns:
        return []

    def one(session: Session) -> list[OutputFile]:
        root = posixpath.join(session.node.work_dir, "outputs")
        prefix = f"node-{session.node.rank}/" if per_node else ""
        got: list[OutputFile] = []
        for rel, size in remote_files(session, root):
            if not matches(rel, patterns):
                continue
            keep = size <= max_file_size
            local = dest / prefix / rel if keep else None
            sha = fetch(session, posixpath.join(root, rel), local, size)
            got.append(OutputFile(prefix + rel, session.node.name, size, sha, keep))
        return got

    results = fan_out(one, sessions)
    return sorted((f for files in results for f in files), key=lambda f: f.path)


def manifest(files: list[OutputFile]) -> dict[str, Any]:
    return {"schema_version": 1, "files": [f.to_dict() for f in files]}
