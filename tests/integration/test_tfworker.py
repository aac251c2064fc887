"""The embedded engine's worker with the real Terraform: one process serves a run's
commands; a worker killed mid-command, an interrupted apply and a parent that dies
each end as the engine's contract says."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from composer.engine import Engine, apply_args, init_args, make_engine
from composer.errors import Interrupted, TerraformError
from composer.interrupts import INTERRUPTS
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

# Two resources whose creation takes ``var.seconds`` and whose destruction takes
# ``var.destroy_seconds`` as it was when they were made; no provider to download.
CONFIG = """
variable "seconds" {
  type    = number
  default = 0
}
variable "destroy_seconds" {
  type    = number
  default = 0
}
resource "terraform_data" "node" {
  count = 2
  input = var.destroy_seconds
  provisioner "local-exec" {
    command = "echo $$ >> sleepers.pid; exec sleep ${var.seconds}"
  }
  provisioner "local-exec" {
    when    = destroy
    command = "echo $$ >> sleepers.pid; exec sleep ${self.output}"
  }
}
output "nodes" {
  value = [for n in terraform_data.node : n.id]
}
"""


@pytest.fixture
def tf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("COMPOSER_HOME", str(tmp_path / "home"))
    work = tmp_path / "tf"
    work.mkdir()
    (work / "main.tf").write_text(CONFIG)
    yield work
    # A provisioner's process outlives a Terraform that was killed or interrupted.
    pids = work / "sleepers.pid"
    for pid in pids.read_text().split() if pids.exists() else ():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = make_engine("embedded")
    yield engine
    engine.close()


def slow(work: Path, seconds: int, destroy_seconds: int = 0) -> list[str]:
    (work / "slow.tfvars.json").write_text(
        json.dumps({"seconds": seconds, "destroy_seconds": destroy_seconds}))
    return ["slow.tfvars.json"]


def resources(work: Path) -> int:
    state = json.loads((work / "terraform.tfstate").read_text())
    return sum(len(r.get("instances") or []) for r in state.get("resources") or [])


def wait_for_text(log: io.StringIO, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.getvalue():
        assert time.monotonic() < deadline, f"no {text!r} in:\n{log.getvalue()[-2000:]}"
        time.sleep(0.05)


def pid_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return True
        if "\nState:\tZ" in status:
            return True
        time.sleep(0.05)
    return False


def test_one_worker_serves_init_apply_output_and_destroy(engine: Engine, tf: Path) -> None:
    engine.start()
    worker = engine._worker
    assert worker is not None
    log = io.StringIO()
    engine.init(tf, log)
    applied = engine.apply(tf, [], 10, log)
    assert '"type":"outputs"' in applied.stdout.replace(" ", "")
    assert len(engine.outputs(tf)["nodes"]) == 2
    assert resources(tf) == 2
    engine.destroy(tf, [], 10, log)
    assert resources(tf) == 0
    assert engine._worker is worker and worker.proc.poll() is None, \
        "every command was served by the one worker"
    assert "$ terraform apply -destroy" in log.getvalue()
    assert "Apply complete!" in log.getvalue() or '"type":"change_summary"' in log.getvalue()
    engine.close()
    assert worker.proc.returncode == 0


def test_a_worker_killed_mid_apply_fails_it_and_destroy_runs_in_a_fresh_process(
        engine: Engine, tf: Path) -> None:
    engine.start()
    worker = engine._worker
    assert worker is not None
    log = io.StringIO()
    engine.init(tf, log)

    def kill_when_creating() -> None:
        wait_for_text(log, "Creating...")
        os.kill(worker.pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_when_creating, daemon=True)
    killer.start()
    with pytest.raises(TerraformError) as info:
        engine.apply(tf, slow(tf, 30), 10, log)
    killer.join()
    assert info.value.returncode == -signal.SIGKILL
    assert f"the Terraform worker (pid {worker.pid}) was killed by SIGKILL" in info.value.message
    assert engine._worker is None
    engine.destroy(tf, [], 10, log)  # a fresh process of its own
    assert resources(tf) == 0


def test_an_interrupted_apply_stops_gracefully_then_destroy_runs_in_a_fresh_process(
        engine: Engine, tf: Path) -> None:
    INTERRUPTS.install()
    try:
        engine.start()
        worker = engine._worker
        assert worker is not None
        log = io.StringIO()
        engine.init(tf, log)

        def interrupt_when_creating() -> None:
            wait_for_text(log, "Creating...")
            os.kill(os.getpid(), signal.SIGINT)

        interrupter = threading.Thread(target=interrupt_when_creating, daemon=True)
        interrupter.start()
        started = time.monotonic()
        with pytest.raises(Interrupted):
            engine.apply(tf, slow(tf, 30), 10, log)
        interrupter.join()
        assert time.monotonic() - started < 25, "Terraform did not stop on the SIGINT"
        assert "execution halted" in log.getvalue() or "Interrupt received" in log.getvalue()
        assert engine._worker is None and pid_gone(worker.pid, 10), "the worker is retired"
        with INTERRUPTS.shield():
            engine.destroy(tf, [], 10, log)
        assert resources(tf) == 0
    finally:
        INTERRUPTS.restore()
        INTERRUPTS.signum = None  # as install() leaves it, for the tests after this one


PARENT = """
import io, sys, threading
from pathlib import Path
from composer.engine import make_engine, apply_args
engine = make_engine("embedded")
engine.start()
work = Path(sys.argv[1])
log = open(sys.argv[2], "w")
engine.init(work, log)
if sys.argv[3] == "destroy":
    engine.run(apply_args(["slow.tfvars.json"], 10), work, log)
print(engine._worker.pid, flush=True)
if sys.argv[3] == "apply":
    engine.run(apply_args(["slow.tfvars.json"], 10), work, log, check=False)
elif sys.argv[3] == "destroy":
    engine.run(apply_args(["slow.tfvars.json"], 10, destroy=True), work, log, check=False)
else:
    threading.Event().wait()
"""


@pytest.mark.parametrize("busy", ["idle", "apply", "destroy"])
def test_the_worker_ends_when_its_parent_dies(tf: Path, busy: str) -> None:
    """An apply is interrupted (it would otherwise go on unattended), a destroy goes on
    to its end as it would in a process of its own; then the worker exits."""
    if busy == "destroy":
        slow(tf, 0, destroy_seconds=2)
    else:
        slow(tf, 60)
    log = tf / "parent.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tf), str(log), busy],
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        if busy != "idle":
            seen = "Creating..." if busy == "apply" else "Destroying..."
            deadline = time.monotonic() + 30
            while seen not in log.read_text():
                assert time.monotonic() < deadline and parent.poll() is None, log.read_text()
                time.sleep(0.05)
        parent.kill()
        parent.wait()
        assert pid_gone(pid, 20), f"the worker {pid} outlived its parent ({busy})"
    finally:
        parent.kill()
        parent.wait()
    if busy == "apply":  # interrupted as by one SIGINT: Terraform saved its state
        state = json.loads((tf / "terraform.tfstate").read_text())
        assert "resources" in state
        engine = make_engine("embedded")
        engine.run(init_args(), tf)
        engine.run(apply_args([], 10, destroy=True), tf)
        assert resources(tf) == 0
    if busy == "destroy":  # finished after its parent was gone
        assert resources(tf) == 0


DAEMON = """
resource "terraform_data" "daemon" {
  provisioner "local-exec" {
    command = "sleep 60 </dev/null >/dev/null 2>&1 & echo $! > sleepers.pid"
  }
}
"""


def test_a_daemon_a_provisioner_starts_holds_none_of_the_commands_pipes(
        engine: Engine, tf: Path) -> None:
    """The local target's nodes are daemons that local-exec starts: the command's
    output pipes must reach end of file when Terraform is done, not when they exit."""
    (tf / "main.tf").write_text(DAEMON)
    engine.start()
    engine.init(tf)
    started = time.monotonic()
    engine.apply(tf, [], 10)
    assert time.monotonic() - started < 30
    assert engine._worker is not None, "the same worker serves the next command"
