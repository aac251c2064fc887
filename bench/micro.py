"""Single-function benchmarks: render, manifest hashing, output collection."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from bench.bare import BareCluster, BareError, connected
from composer.collect import collect
from composer.hashing import file_sha256
from composer.modules import pins_for_target
from composer.remote import Session
from composer.render import render
from composer.spec import load_spec

T = TypeVar("T")

WRITE_CHUNK = 1 << 20
READ_CHUNK = 1 << 20
EXEC_PROBES = 10


def random_file(path: Path, size: int) -> str:
    """``size`` random bytes at ``path``; returns their sha256."""
    digest = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        left = size
        while left > 0:
            chunk = os.urandom(min(WRITE_CHUNK, left))
            digest.update(chunk)
            fh.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    t0 = time.perf_counter()
    value = fn()
    return time.perf_counter() - t0, value


def render_times(job: Path, nodes: int, root: Path, reps: int) -> list[float]:
    """Seconds of ``render`` for ``job`` resized to ``nodes`` (past the target's cap)."""
    spec = load_spec(job)
    spec = replace(spec, cluster=replace(spec.cluster, nodes=nodes))
    pins = pins_for_target(spec.cluster.target)
    times = []
    for rep in range(reps):
        out = root / f"render-{rep}"
        t0 = time.perf_counter()
        render(spec, pins, out)
        times.append(time.perf_counter() - t0)
        shutil.rmtree(out, ignore_errors=True)
    return times


def tight_sha256(path: Path) -> str:
    """One core, hashlib only: ``readinto`` a reused buffer, ``update`` on a view."""
    digest = hashlib.sha256()
    buf = bytearray(READ_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


def hashing_pairs(root: Path, size: int, reps: int) -> list[tuple[float, float]]:
    """(file_sha256 seconds, tight loop seconds) per repetition, over the same file."""
    path = root / "hash.bin"
    try:
        expected = random_file(path, size)
        pairs = []
        for rep in range(reps):
            if rep % 2:
                t_base, base = timed(lambda: tight_sha256(path))
                t_comp, comp = timed(lambda: file_sha256(path))
            else:
                t_comp, comp = timed(lambda: file_sha256(path))
                t_base, base = timed(lambda: tight_sha256(path))
            if not comp == base == expected:
                raise RuntimeError("file_sha256 and hashlib disagree")
            pairs.append((t_comp, t_base))
        return pairs
    finally:
        path.unlink(missing_ok=True)


def collect_pairs(root: Path, size: int, reps: int,
                  port: int) -> tuple[list[tuple[float, float]], list[float]]:
    """(composer collect seconds, scp seconds) per repetition, for one ``size`` file; and
    the seconds of single ``true`` commands over the same session, login shell included."""
    with connected(root / "collect-node", 1, port) as (cluster, (session,)):
        source = cluster.nodes[0].work / "outputs" / "big.bin"
        expected = random_file(source, size)
        pairs = []
        for rep in range(reps):
            first, second = (_collect_once, _scp_once) if rep % 2 == 0 else \
                (_scp_once, _collect_once)
            a = first(root, session, cluster, source, expected)
            b = second(root, session, cluster, source, expected)
            pairs.append((a, b) if first is _collect_once else (b, a))
        execs = [timed(lambda: session.run("true"))[0] for _ in range(EXEC_PROBES)]
        return pairs, execs


def _collect_once(root: Path, session: Session, cluster: BareCluster, source: Path,
                  expected: str) -> float:
    dest = root / "collect-dest"
    try:
        seconds, files = timed(lambda: collect([session], ("big.bin",), dest, False, 2**40))
        if [f.sha256 for f in files] != [expected] or not (dest / "big.bin").is_file():
            raise RuntimeError("collect did not bring the file back intact")
        return seconds
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def _scp_once(root: Path, session: Session, cluster: BareCluster, source: Path,
              expected: str) -> float:
    dest = root / "scp-dest.bin"
    try:
        seconds, done = timed(lambda: subprocess.run(
            cluster.scp_argv(0, str(source), dest), stdin=subprocess.DEVNULL,
            capture_output=True, timeout=600, check=False,
        ))
        if done.returncode != 0:
            raise BareError(f"scp exited {done.returncode}: {done.stderr.decode().strip()}")
        if dest.stat().st_size != source.stat().st_size:
            raise BareError("scp copied a different size")
        return seconds
    finally:
        dest.unlink(missing_ok=True)
