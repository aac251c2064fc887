"""What a retry after a lost node needs of the nodes: which ones are gone, and the
workload's checkpoint carried from the old head to the new one.

A node is lost when a fresh SSH connection to it fails or cannot run ``true`` within
``PROBE_S``: a spot reclaim, a host that died, locally an sshd that was killed. The
checkpoint (``[run] checkpoint``, a directory under the workload's working directory
``$COMPOSER_WORK_DIR/code``) is fetched from the head as a tar stream while the head
still answers, kept in the run's work dir (not in the record), and unpacked onto the
next attempt's head after the code is staged.
"""

from __future__ import annotations

import shlex
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from composer.remote import Node, Session

PROBE_S = 10.0
FETCH_S = 600.0


def code_dir(node: Node) -> str:
    """The workload's working directory on ``node`` (launch.PRELUDE's ``cd``)."""
    return f"{node.work_dir}/code"


def answers(node: Node, key: Path, timeout: float = PROBE_S) -> bool:
    session = Session(node, key)
    try:
        session.connect(timeout=timeout)
        return session.run("true", timeout=timeout) == 0
    except Exception:  # noqa: BLE001 - any failure to reach it: the node is gone
        return False
    finally:
        session.close()


def lost_nodes(nodes: list[Node], key: Path, timeout: float = PROBE_S) -> list[str]:
    """The names of ``nodes`` that no longer answer over SSH, in rank order."""
    if not nodes:
        return []
    with ThreadPoolExecutor(max_workers=min(32, len(nodes))) as pool:
        alive = list(pool.map(lambda n: answers(n, key, timeout), nodes))
    return [n.name for n, ok in zip(nodes, alive, strict=True) if not ok]


def fetch_checkpoint(head: Node, key: Path, relative: str, dest: Path) -> str:
    """Copy ``relative`` (a directory under the head's working directory) into
    ``dest`` (replacing what an earlier attempt left there); return what happened, in
    words. A head that cannot be reached, or holds no such directory, keeps ``dest``
    as it was (an earlier attempt's checkpoint, or none)."""
    tar = dest.with_name(dest.name + ".tar")
    command = (f"cd {shlex.quote(code_dir(head))} 2>/dev/null && test -d {shlex.quote(relative)}"
               f" && tar -cf - -- {shlex.quote(relative)} 2>/dev/null")
    session = Session(head, key)
    try:
        session.connect(timeout=PROBE_S)
        with open(tar, "wb") as out:
            code = session.run(command, out=out, timeout=FETCH_S)
    except Exception as exc:  # noqa: BLE001 - a head that is gone keeps the older copy
        tar.unlink(missing_ok=True)
        return f"checkpoint {relative} not copied: {head.name} cannot be reached ({exc})"
    finally:
        session.close()
    if code != 0:
        tar.unlink(missing_ok=True)
        return f"checkpoint {relative} not copied: {head.name} holds no such directory"
    fresh = dest.with_name(dest.name + ".new")
    _remove(fresh)
    fresh.mkdir(parents=True)
    try:
        with tarfile.open(tar) as archive:
            archive.extractall(fresh, filter="data")
    except (tarfile.TarError, OSError) as exc:
        _remove(fresh)
        return f"checkpoint {relative} not copied: the archive from {head.name} is bad ({exc})"
    finally:
        tar.unlink(missing_ok=True)
    _remove(dest)
    fresh.rename(dest)
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    return f"checkpoint {relative} copied from {head.name} ({size} bytes)"


def put_checkpoint(session: Session, source: Path, relative: str) -> None:
    """Unpack a fetched checkpoint (``source``, as ``fetch_checkpoint`` left it) into
    the working directory of ``session``'s node."""
    tar = source.with_name(source.name + ".put.tar")
    with tarfile.open(tar, "w") as archive:
        archive.add(source / relative, arcname=relative)
    where = shlex.quote(code_dir(session.node))
    try:
        with open(tar, "rb") as data:
            session.push(f"mkdir -p {where} && tar -x -C {where} -f -", data)
    finally:
        tar.unlink(missing_ok=True)


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
