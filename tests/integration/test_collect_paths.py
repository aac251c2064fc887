"""collect's two ways for small files, against real sshd nodes: one tar stream per node
when a node has many, SFTP otherwise. Both must bring the same manifest and the same
bytes; whatever goes wrong with the node's tar (missing, a stream cut short, a file
swapped for a symlink, a stall past the time limit) is handled as SFTP would.
"""

from __future__ import annotations

import hashlib
import os
import random
import shlex
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.bare import BareCluster, connected
from composer import collect_tar
from composer.collect import READ_AHEAD, Deadline, OutputFile, collect, list_outputs
from composer.remote import Session

pytestmark = pytest.mark.integration

NAMES = ("new\nline.txt", "-rf", "--help", "ünï cødé ☃.txt", "d/-x", "d/e/deep.txt",
         "a" * 150, "q'uo\"te $(id).txt", "back\\slash", "manifest.json", "id_to_label.json",
         "result.json", ".hidden")
PLAIN = 40


@dataclass
class Nodes:
    cluster: BareCluster
    sessions: list[Session]

    def outputs(self, rank: int) -> Path:
        return self.cluster.nodes[rank].work / "outputs"


def _fill(outputs: Path, rank: int) -> None:
    for i in range(PLAIN):
        (outputs / "many" / f"part-{i:03d}.txt").parent.mkdir(parents=True, exist_ok=True)
        (outputs / "many" / f"part-{i:03d}.txt").write_text(f"{rank}:{i}\n")
    for name in NAMES:
        path = outputs / "many" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{rank}:{name}\n")
    (outputs / "many" / "big.bin").write_bytes(os.urandom(3000))  # over max_file_size
    (outputs / "many" / "empty").write_bytes(b"")
    os.symlink("/etc/passwd", outputs / "many" / "link.txt")
    os.mkfifo(outputs / "many" / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(outputs / "many" / "sock"))
    finally:
        sock.close()
    (outputs / os.fsdecode(b"many/\xff.bin")).write_bytes(b"x")


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nodes]:
    root = tmp_path_factory.mktemp("collect-nodes")
    port = 24000 + random.randint(0, 999)
    with connected(root / "cluster", 2, port, sweep=True) as (cluster, sessions):
        for bare in cluster.nodes:
            _fill(bare.work / "outputs", bare.rank)
        yield Nodes(cluster, sessions)


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[collect_tar.Batch]:
    """Every tar batch collect ran, as it came back."""
    seen: list[collect_tar.Batch] = []
    real = collect_tar.fetch_batch

    def spy(*args: Any, **kwargs: Any) -> collect_tar.Batch:
        batch = real(*args, **kwargs)
        seen.append(batch)
        return batch

    monkeypatch.setattr(collect_tar, "fetch_batch", spy)
    return seen


def _collect(sessions: list[Session], dest: Path, patterns: tuple[str, ...] = ("many/*",),
             deadline: Deadline | None = None) -> list[dict[str, Any]]:
    files = collect(sessions, patterns, dest, True, 1000, deadline=deadline)
    return [f.to_dict() for f in files]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def _sftp_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collect_tar, "MIN_FILES", 1 << 30)


def _wrapper(path: Path, body: str) -> str:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return shlex.quote(str(path))


def test_tar_and_sftp_bring_the_same_outputs(nodes: Nodes, tmp_path: Path,
                                             batches: list[collect_tar.Batch],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    staged = tmp_path / "tar"
    by_tar = _collect(nodes.sessions, staged / "outputs")
    assert len(batches) == 2 and all(b.complete for b in batches), batches
    _sftp_only(monkeypatch)
    by_sftp = _collect(nodes.sessions, tmp_path / "sftp" / "outputs")
    assert len(batches) == 2
    assert by_tar == by_sftp
    tree = _tree(staged / "outputs")
    assert tree == _tree(tmp_path / "sftp" / "outputs")
    assert [p.name for p in staged.iterdir()] == ["outputs"]  # nothing beside the outputs
    for rank in (0, 1):
        for name in (*NAMES, "empty", *(f"part-{i:03d}.txt" for i in range(PLAIN))):
            data = (nodes.outputs(rank) / "many" / name).read_bytes()
            assert tree[f"node-{rank}/many/{name}"] == data
            entry = next(e for e in by_tar if e["path"] == f"node-{rank}/many/{name}")
            assert entry == {"path": f"node-{rank}/many/{name}", "node": f"node-{rank}",
                             "size": len(data), "committed": True,
                             "sha256": hashlib.sha256(data).hexdigest()}
    withheld = {e["path"]: e["withheld"] for e in by_tar if not e["committed"]}
    assert withheld["node-0/many/link.txt"] == "not a regular file (symlink -> /etc/passwd)"
    assert withheld["node-0/many/fifo"] == "not a regular file (fifo)"
    assert withheld["node-0/many/sock"] == "not a regular file (socket)"
    assert withheld["node-1/many/big.bin"].startswith("over max_file_size")
    assert "not valid UTF-8" in withheld["node-1/many/\\xff.bin"]


def test_a_node_without_tar_is_read_through_sftp(nodes: Nodes, tmp_path: Path,
                                                 batches: list[collect_tar.Batch],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collect_tar, "TAR", "composer-no-such-tar")
    got = _collect(nodes.sessions[:1], tmp_path / "a")
    assert len(batches) == 1 and not batches[0].complete
    _sftp_only(monkeypatch)
    assert got == _collect(nodes.sessions[:1], tmp_path / "b")
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")


def test_a_tar_stream_cut_short_is_read_again_through_sftp(
        nodes: Nodes, tmp_path: Path, batches: list[collect_tar.Batch],
        monkeypatch: pytest.MonkeyPatch) -> None:
    least = collect_tar.MIN_FILES
    for cut in (5000, 1024):  # inside a member; at a member's end, tar "succeeding"
        tar = _wrapper(tmp_path / f"cut-{cut}", f'tar "$@" | head -c {cut}')
        monkeypatch.setattr(collect_tar, "TAR", tar)
        monkeypatch.setattr(collect_tar, "MIN_FILES", least)
        ran = len(batches)
        got = _collect(nodes.sessions[:1], tmp_path / f"cut-{cut}-out")
        assert len(batches) == ran + 1
        assert not batches[-1].complete and batches[-1].got, batches[-1]
        _sftp_only(monkeypatch)
        assert got == _collect(nodes.sessions[:1], tmp_path / f"sftp-{cut}-out")
        assert len(batches) == ran + 1
        assert _tree(tmp_path / f"cut-{cut}-out") == _tree(tmp_path / f"sftp-{cut}-out")


def _swap_set(nodes: Nodes, name: str) -> Path:
    """A directory of node 0's outputs with just enough small files for a tar batch."""
    swap = nodes.outputs(0) / name
    swap.mkdir()
    for i in range(collect_tar.MIN_FILES):
        (swap / f"f{i}.txt").write_text(f"{i}\n")
    return swap


def test_a_file_swapped_for_a_symlink_after_listing_is_withheld(
        nodes: Nodes, tmp_path: Path, batches: list[collect_tar.Batch],
        monkeypatch: pytest.MonkeyPatch) -> None:
    swap = _swap_set(nodes, "swap")
    victim = swap / "f7.txt"
    tar = _wrapper(tmp_path / "swap-tar",
                   f'ln -sf /etc/passwd {shlex.quote(str(victim))} && exec tar "$@"')
    monkeypatch.setattr(collect_tar, "TAR", tar)
    got = {e["path"]: e for e in _collect(nodes.sessions[:1], tmp_path / "out", ("swap/*",))}
    assert batches[-1].complete
    assert got["node-0/swap/f7.txt"] == {
        "path": "node-0/swap/f7.txt", "node": "node-0", "size": 0, "committed": False,
        "withheld": "not a regular file (symlink -> /etc/passwd)"}
    assert not (tmp_path / "out" / "node-0" / "swap" / "f7.txt").exists()
    assert got["node-0/swap/f8.txt"]["committed"] is True
    assert len(got) == collect_tar.MIN_FILES


def test_a_symlink_tar_saw_stays_withheld_when_the_batch_is_read_again(
        nodes: Nodes, tmp_path: Path, batches: list[collect_tar.Batch],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A file swapped for a symlink while tar runs, and tar failing: the batch is read
    # again through SFTP, which would follow the symlink; what tar saw stays withheld.
    swap = _swap_set(nodes, "swap2")
    victim = swap / "f5.txt"
    tar = _wrapper(tmp_path / "swap-fail-tar",
                   f'ln -sfn /etc/passwd {shlex.quote(str(victim))}; tar "$@"; exit 1')
    monkeypatch.setattr(collect_tar, "TAR", tar)
    got = {e["path"]: e for e in _collect(nodes.sessions[:1], tmp_path / "out", ("swap2/*",))}
    assert not batches[-1].complete
    assert got["node-0/swap2/f5.txt"]["committed"] is False
    assert got["node-0/swap2/f5.txt"]["withheld"] == \
        "not a regular file (symlink -> /etc/passwd)"
    passwd = Path("/etc/passwd").read_bytes()
    assert all(passwd not in data for data in _tree(tmp_path / "out").values())
    assert got["node-0/swap2/f6.txt"]["committed"] is True


@pytest.mark.parametrize("size", [10, 20 << 20])  # through SFTP; through the ssh stream
def test_a_file_that_vanishes_after_listing_is_named_not_fatal(
        nodes: Nodes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    gone = nodes.outputs(0) / "gone"
    gone.mkdir(exist_ok=True)
    (gone / "kept.txt").write_text("kept\n")
    (gone / "vanishing.bin").write_bytes(b"v" * size)
    listed = list_outputs

    def list_then_remove(*args: Any, **kwargs: Any) -> Any:
        found = listed(*args, **kwargs)
        (gone / "vanishing.bin").unlink(missing_ok=True)
        return found

    monkeypatch.setattr("composer.collect.list_outputs", list_then_remove)
    got = {e["path"]: e for e in
           (f.to_dict() for f in collect(nodes.sessions[:1], ("gone/*",), tmp_path / "out",
                                         True, 64 << 20))}
    assert got["node-0/gone/vanishing.bin"]["committed"] is False
    assert got["node-0/gone/vanishing.bin"]["withheld"].startswith("vanished during collect")
    assert got["node-0/gone/kept.txt"]["committed"] is True


def test_a_stalled_tar_stream_stops_at_the_time_limit(
        nodes: Nodes, tmp_path: Path, batches: list[collect_tar.Batch],
        monkeypatch: pytest.MonkeyPatch) -> None:
    tar = _wrapper(tmp_path / "stall-tar", 'tar "$@" | { head -c 20480; sleep 8; }')
    monkeypatch.setattr(collect_tar, "TAR", tar)
    deadline = Deadline(3.0)
    t0 = time.monotonic()
    files = collect(nodes.sessions[:1], ("many/*",), tmp_path / "out", True, 1000,
                    deadline=deadline)
    assert time.monotonic() - t0 < 7.0
    assert deadline.expired and batches[-1].expired
    late = [f for f in files if f.withheld and f.withheld.startswith("not collected")]
    kept = [f for f in files if f.committed]
    assert late and kept, files
    for f in kept:
        data = (tmp_path / "out" / f.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f.sha256 and len(data) == f.size
    for f in late:
        assert f.sha256 is None and not (tmp_path / "out" / f.path).exists()
    assert isinstance(files[0], OutputFile)


def test_a_large_output_is_written_by_ssh_and_hashed_as_it_grows(nodes: Nodes,
                                                                  tmp_path: Path) -> None:
    data = os.urandom(17 << 20)  # over STREAM_THRESHOLD: OpenSSH's client copies it
    big = nodes.outputs(1) / "large" / "big.bin"
    big.parent.mkdir()
    big.write_bytes(data)
    over = collect(nodes.sessions[1:], ("large/*",), tmp_path / "over", False, 1 << 20)
    files = collect(nodes.sessions[1:], ("large/*",), tmp_path / "out", False, 1 << 30)
    sha = hashlib.sha256(data).hexdigest()
    assert [f.to_dict() for f in files] == [{"path": "large/big.bin", "node": "node-1",
                                             "size": len(data), "committed": True,
                                             "sha256": sha}]
    assert (tmp_path / "out" / "large" / "big.bin").read_bytes() == data
    # over max_file_size: hashed through a pipe, never written
    assert [(f.sha256, f.committed) for f in over] == [(sha, False)]
    assert not (tmp_path / "over").exists()


def test_a_directory_longer_than_the_read_ahead_is_listed_once_and_whole(
        nodes: Nodes, tmp_path: Path) -> None:
    wide = nodes.outputs(1) / "wide"
    wide.mkdir()
    count = 2500  # ~100 names a reply from OpenSSH's sftp-server: over READ_AHEAD replies
    assert count > 100 * READ_AHEAD
    for i in range(count):
        (wide / f"w{i:05d}").write_bytes(b"")
    listed = list_outputs(nodes.sessions[1], str(nodes.outputs(1) / "wide"))
    assert [f.shown for f in listed] == [f"w{i:05d}" for i in range(count)]
    assert all(f.size == 0 and f.kind is None for f in listed)
