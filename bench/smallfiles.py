"""Many small outputs: composer's collect against ``tar`` streamed over one ssh channel.

One node holds ``files`` files of a few bytes in its output directory. The baseline
is what one would type by hand: ``ssh node tar -cf - -C DIR . | tar -xf - -C DEST``
(OpenSSH's client, the same key and pinned host key), files written to disk, not
hashed. composer's side is ``composer.collect.collect`` over an open session, as in
a run: listed, fetched, each file hashed, written to disk. Both sides are checked:
every file back, intact. Each side starts after ``sync``: creating thousands of
files costs whatever the disk's journal is busy with, and neither side should pay
for the other's writes and removals.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from bench.bare import BareCluster, BareError, connected
from bench.micro import timed
from composer.collect import collect
from composer.remote import Session

SUBDIR = "small"
"""The files sit in one directory under the node's outputs."""


def make_files(directory: Path, files: int) -> dict[str, str]:
    """``files`` files of a few bytes each; their sha256 by path under the outputs."""
    directory.mkdir(parents=True, exist_ok=True)
    expected = {}
    for i in range(files):
        data = f"{i}\n".encode()
        (directory / f"part-{i:06d}.txt").write_bytes(data)
        expected[f"{SUBDIR}/part-{i:06d}.txt"] = hashlib.sha256(data).hexdigest()
    return expected


def smallfiles_pairs(root: Path, files: int, reps: int,
                     port: int) -> list[tuple[float, float]]:
    """(composer collect seconds, ssh+tar seconds) per repetition, order alternating."""
    with connected(root / "smallfiles-node", 1, port) as (cluster, (session,)):
        outputs = cluster.nodes[0].work / "outputs"
        expected = make_files(outputs / SUBDIR, files)
        pairs = []
        for rep in range(reps):
            if rep % 2 == 0:
                c = _collect_once(root, session, expected)
                t = _tar_once(root, cluster, outputs, files)
            else:
                t = _tar_once(root, cluster, outputs, files)
                c = _collect_once(root, session, expected)
            pairs.append((c, t))
        return pairs


def _collect_once(root: Path, session: Session, expected: dict[str, str]) -> float:
    dest = root / "smallfiles-collect"
    os.sync()  # the other side's writes and removals flushed first, untimed
    try:
        seconds, got = timed(lambda: collect([session], ("*",), dest, False, 2**40))
        if {f.path: f.sha256 for f in got} != expected or not all(f.committed for f in got):
            raise RuntimeError("collect did not bring every small file back intact")
        if sum(1 for p in dest.rglob("*") if p.is_file()) != len(expected):
            raise RuntimeError("collect did not write every small file")
        return seconds
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def _ssh_tar(cluster: BareCluster, outputs: Path, dest: Path) -> None:
    """``ssh node tar -cf - -C OUTPUTS . | tar -xf - -C DEST``; BareError when either fails."""
    remote = f"tar -cf - -C {shlex.quote(str(outputs))} ."
    ssh = subprocess.Popen(cluster.ssh_argv(0, remote), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert ssh.stdout is not None
    try:
        untar = subprocess.run(["tar", "-xf", "-", "-C", str(dest)], stdin=ssh.stdout,
                               capture_output=True, timeout=600, check=False)
    finally:
        ssh.stdout.close()
        _, err = ssh.communicate(timeout=60)
    if ssh.returncode != 0 or untar.returncode != 0:
        raise BareError(f"ssh | tar exited {ssh.returncode}/{untar.returncode}: "
                        f"{(err + untar.stderr).decode().strip()}")


def _tar_once(root: Path, cluster: BareCluster, outputs: Path, files: int) -> float:
    dest = root / "smallfiles-tar"
    dest.mkdir(parents=True, exist_ok=True)
    os.sync()
    try:
        seconds, _ = timed(lambda: _ssh_tar(cluster, outputs, dest))
        if sum(1 for p in dest.rglob("*") if p.is_file()) != files:
            raise BareError("ssh | tar did not write every small file")
        return seconds
    finally:
        shutil.rmtree(dest, ignore_errors=True)
