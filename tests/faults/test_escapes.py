"""Processes of a node that try to outlive it, and processes that only look like a node."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from composer.procs import processes_with_env as with_env

from .conftest import Tally
from .util import (
    assert_gone,
    final_json,
    process_alive,
    record_json,
    simple_job,
    start_up,
    wait_for,
    write_job,
)

if TYPE_CHECKING:
    from tests.conftest import Composer

pytestmark = pytest.mark.integration


def kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


def test_daemonized_workload_is_stopped(composer: Composer, tmp_path: Path,
                                        tally: Tally) -> None:
    """A workload that leaves its session and sheds COMPOSER_NODE_DIR still goes with the
    node."""
    with tally.check("escapes"):
        token = uuid.uuid4().hex
        command = (f"setsid env -u COMPOSER_NODE_DIR ESCAPEE={token} sleep 300 "
                   "</dev/null >/dev/null 2>&1 & echo started")
        job = write_job(tmp_path / "job", simple_job("daemon", 2, command))
        try:
            done = composer.run("up", str(job), "--json", timeout=240)
            survivors = with_env("ESCAPEE", token)
        finally:
            kill(with_env("ESCAPEE", token))
        assert done.returncode == 0, done.stderr
        assert survivors == [], f"daemonized workload survived teardown: {survivors}"
        run_id = final_json(done.stdout)["run_id"]
        assert record_json(composer, run_id, "result.json")["teardown"]["status"] == "destroyed"
        assert_gone(composer, run_id)


# A workload that forks and exits in a tight loop, so that at any instant its one live
# process may be brand new: a scan of /proc can come back empty in between. It ignores
# SIGTERM, leaves its session, and runs five such chains side by side. argv: LIFE DIR.
# DIR/started is created when it starts; after LIFE seconds every chain process appends
# its pid to DIR/survivors and exits, so a chain that outlived teardown leaves a trace.
CHAIN_C = r"""
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
  char mark[4096]; FILE *f; time_t s = time(0); int life, i;
  if (argc != 3) return 2;
  life = atoi(argv[1]);
  snprintf(mark, sizeof mark, "%s/started", argv[2]);
  if ((f = fopen(mark, "w"))) fclose(f);
  snprintf(mark, sizeof mark, "%s/survivors", argv[2]);
  signal(SIGTERM, SIG_IGN);
  unsetenv("COMPOSER_NODE_DIR");
  if (fork()) return 0;
  setsid();
  for (i = 0; i < 4; i++) if (fork() == 0) break;
  for (;;) {
    pid_t p = fork();
    if (p > 0) _exit(0);
    if (p < 0) continue;
    if (time(0) - s > life) {
      if ((f = fopen(mark, "a"))) { fprintf(f, "%d\n", getpid()); fclose(f); }
      _exit(0);
    }
  }
}
"""
CHAIN_LIFE_S = 20


def running(exe: Path) -> list[int]:
    """Live processes running the executable ``exe``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            ours = proc.name.isdigit() and os.readlink(proc / "exe") == str(exe)
        except OSError:
            continue
        if ours and process_alive(int(proc.name)):
            found.append(int(proc.name))
    return found


def stop_chain(exe: Path) -> None:
    """Kill what is left of a fork chain: whole process groups, until none is seen."""
    quiet, deadline = 0, time.monotonic() + 10
    while quiet < 20 and time.monotonic() < deadline:
        pids = running(exe)
        quiet = 0 if pids else quiet + 1
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.005)


@pytest.mark.parametrize("keeps_marker", [False, True], ids=["env-dropped", "env-kept"])
def test_fork_chain_is_stopped(composer: Composer, tmp_path: Path, tally: Tally,
                               keeps_marker: bool) -> None:
    """A workload that forks and exits in a tight loop (every /proc snapshot may miss
    it) goes with the node, whether or not it keeps COMPOSER_NODE_DIR: teardown is
    destroyed and nothing of the chain runs afterwards."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is needed to build the fork-chain workload")
    with tally.check("escapes"):
        (tmp_path / "chain.c").write_text(CHAIN_C)
        chain = tmp_path / "chain"
        subprocess.run([gcc, "-O2", "-o", str(chain), str(tmp_path / "chain.c")], check=True)
        marks = tmp_path / "marks"
        marks.mkdir()
        prefix = "" if keeps_marker else "env -u COMPOSER_NODE_DIR "
        command = (f"{prefix}{chain} {CHAIN_LIFE_S} {marks} </dev/null >/dev/null 2>&1; "
                   "echo started")
        job = write_job(tmp_path / "job", simple_job("chain", 1, command))
        try:
            with start_up(composer, job, "up", COMPOSER_PAUSE_AT="collect") as up:
                marker = up.paused("collect")
                # One /proc scan can miss a chain whose members live for microseconds:
                # look a few times.
                chain_seen = wait_for(lambda: running(chain), 10, "the fork chain running",
                                      interval=0.01)
                marker.unlink()
                done = up.finish()
            finished = time.time()
            # Every chain process writes to survivors once its life is over: wait past that.
            ends = (marks / "started").stat().st_mtime + CHAIN_LIFE_S + 2
            time.sleep(max(0.0, ends - time.time()))
            survivors = (marks / "survivors").read_text().split() \
                if (marks / "survivors").exists() else []
            still = running(chain)
        finally:
            stop_chain(chain)
        assert chain_seen, "the fork chain was not running before teardown"
        assert finished < ends - 3, "teardown ended after the chain's own end: inconclusive"
        assert survivors == [] and still == [], \
            f"fork chain outlived teardown: wrote {survivors}, running {still}"
        assert done.returncode == 0, done.stderr
        run_id = final_json(done.stdout)["run_id"]
        assert record_json(composer, run_id, "result.json")["teardown"]["status"] == "destroyed"
        assert_gone(composer, run_id)


def test_process_outside_the_node_tree_fails_teardown(composer: Composer, tmp_path: Path,
                                                      tally: Tally) -> None:
    """A process of the node that its stop did not reach (it escaped the node's process
    tree) is killed, and teardown says so: failed, exit 4, naming the process."""
    with tally.check("escapes"):
        job = write_job(tmp_path / "job", simple_job("escaped", 1, "echo hi"))
        escapee: subprocess.Popen[bytes] | None = None
        try:
            with start_up(composer, job, "up", COMPOSER_PAUSE_AT="collect") as up:
                marker = up.paused("collect")
                node_dir = marker.parent / "nodes" / "node-0"
                escapee = subprocess.Popen(
                    ["sleep", "301"], env={**os.environ, "COMPOSER_NODE_DIR": str(node_dir)},
                    start_new_session=True,
                )
                marker.unlink()
                done = up.finish()
            alive_after = process_alive(escapee.pid)
        finally:
            if escapee is not None:
                escapee.kill()
                escapee.wait(timeout=30)
        assert not alive_after, "the escaped process was not killed"
        assert done.returncode == 4, done.stderr
        run_id = final_json(done.stdout)["run_id"]
        teardown = record_json(composer, run_id, "result.json")["teardown"]
        assert teardown["status"] == "failed", teardown
        assert str(escapee.pid) in teardown["error"] and "sleep 301" in teardown["error"], \
            teardown
        said = done.stderr[done.stderr.index("composer: [destroy] failed"):]
        assert f"{escapee.pid} (sleep 301)" in said, done.stderr
        assert "succeeded, but teardown failed (exit 4)" in said, done.stderr
        down = composer.run("down", run_id, "--json", timeout=180)
        assert down.returncode == 0, down.stderr
        assert_gone(composer, run_id)


def test_gc_kills_only_the_runs_sshd(composer: Composer, tmp_path: Path, tally: Tally) -> None:
    """A ``tail -f`` of a node's sshd.log is not a node: gc and down leave it alone."""
    with tally.check("escapes"):
        job = write_job(tmp_path / "job", simple_job("stranded", 2, "echo hi"))
        tail: subprocess.Popen[bytes] | None = None
        try:
            with start_up(composer, job, "up", COMPOSER_PAUSE_AT="run") as up:
                up.paused("run")
                work = composer.home / "work" / str(up.run_id)
                log = work / "nodes" / "node-0" / "sshd.log"
                tail = subprocess.Popen(["tail", "-f", str(log)], stdout=subprocess.DEVNULL,
                                        start_new_session=True)
                wait_for(lambda: process_alive(tail.pid) if tail else None, 10, "tail -f")
                up.proc.kill()
                up.proc.wait(timeout=30)
                done = composer.run("gc", "--yes", "--json", timeout=240)
            tail_alive = process_alive(tail.pid)
        finally:
            if tail is not None:
                tail.kill()
                tail.wait(timeout=30)
        assert done.returncode == 0, done.stderr
        assert tail_alive, "gc killed a tail -f that only named the node's sshd.log"
        assert up.run_id is not None
        assert_gone(composer, up.run_id)
