"""Staging against real sshd nodes: linear in the bundle's size, intact, failures named."""

from __future__ import annotations

import hashlib
import io
import os
import random
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.bare import connected
from composer import stage as staging
from composer.errors import SSHError
from composer.remote import Session, fan_out

pytestmark = pytest.mark.integration

MB = 1 << 20


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Session]]:
    root = tmp_path_factory.mktemp("stage-nodes")
    port = 23000 + random.randint(0, 999)
    with connected(root / "cluster", 2, port, sweep=True) as (_, opened):
        yield opened


def _tar(path: Path, size: int) -> str:
    """A tar holding one ``size``-byte random file ``blob.bin``; its sha256."""
    data = os.urandom(size)
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("blob.bin")
        info.size = size
        tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(data).hexdigest()


def _remote_sha(session: Session) -> str:
    return session.check(f"sha256sum {session.node.work_dir}/code/blob.bin").split()[0]


@pytest.fixture(params=["paramiko", "openssh"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(staging, "SSH_FROM_BYTES", 1 << 40 if request.param == "paramiko" else 0)
    return str(request.param)


def test_staging_time_grows_linearly(sessions: list[Session], tmp_path: Path, way: str) -> None:
    """40 MB takes about four times as long as 10 MB (the in-memory push took ~65x)."""
    seconds = {}
    for size in (10 * MB, 40 * MB):
        tar = tmp_path / f"{size}.tar"
        expected = _tar(tar, size)
        best = float("inf")
        for _ in range(2):
            t0 = time.perf_counter()
            staging.stage(sessions, tar, tmp_path)
            best = min(best, time.perf_counter() - t0)
        assert fan_out(_remote_sha, sessions) == [expected] * len(sessions)
        seconds[size] = best
        tar.unlink()
    ratio = seconds[40 * MB] / seconds[10 * MB]
    assert ratio < 8, f"{way}: 10 MB in {seconds[10 * MB]:.2f}s, 40 MB in {seconds[40 * MB]:.2f}s"


def test_a_failing_unpack_names_the_node(sessions: list[Session], tmp_path: Path,
                                         way: str) -> None:
    tar = tmp_path / "b.tar"
    _tar(tar, MB)
    blocked = sessions[1].node.work_dir + "/code"
    sessions[1].check(f"rm -rf {blocked} && touch {blocked}")
    try:
        with pytest.raises(SSHError) as info:
            staging.stage(sessions, tar, tmp_path)
        assert info.value.host == "node-1"
        assert "failed (exit" in str(info.value) and "code" in str(info.value)
    finally:
        sessions[1].check(f"rm -f {blocked}")
