"""Code and inputs onto every node: one tar stream, built once, unpacked on each node."""

from __future__ import annotations

import io
import shlex
import tarfile
from pathlib import Path

from composer.hashing import tree_files
from composer.lock import CODE_EXCLUDE
from composer.remote import Session, fan_out
from composer.spec import Spec


def _add(tar: tarfile.TarFile, source: Path, arcname: str) -> None:
    info = tar.gettarinfo(str(source), arcname)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    with open(source, "rb") as fh:
        tar.addfile(info, fh)


def bundle(spec: Spec) -> bytes:
    """The shipped code directory plus every input at its destination, as a tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        if spec.code.path is not None:
            for file in tree_files(spec.code.path, exclude=CODE_EXCLUDE):
                _add(tar, file, file.relative_to(spec.code.path).as_posix())
        for item in spec.inputs:
            _add(tar, item.source, item.dest)
    return buf.getvalue()


def stage(sessions: list[Session], data: bytes) -> None:
    def one(session: Session) -> None:
        work = session.node.work_dir
        code, outputs = shlex.quote(f"{work}/code"), shlex.quote(f"{work}/outputs")
        session.push(f"mkdir -p {code} {outputs} && tar -x -m -C {code} -f -", data)

    fan_out(one, sessions)


def put_text(session: Session, path: str, text: str, mode: int = 0o644) -> None:
    with session.sftp.open(path, "w") as fh:
        fh.write(text.encode())
    session.sftp.chmod(path, mode)
