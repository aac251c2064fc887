"""The engine's worker protocol against stand-in workers that misbehave on purpose
(the real worker: tests/integration/test_tfworker.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from composer.engine import MAX_PARALLELISM, Engine, parallelism
from composer.errors import TerraformError

# A stand-in for ``python -m composer.tfworker``: one command prints what it ran and
# the process it ran in; ``--serve FD`` answers each request as FAKE_MODE says.
FAKE = """
import json, os, socket, sys
mode = os.environ.get("FAKE_MODE", "ok")
if sys.argv[1:2] != ["--serve"]:
    print(json.dumps({"ran": sys.argv[1:], "pid": os.getpid(), "served": False}))
    sys.exit(0)
sock = socket.socket(fileno=int(sys.argv[2]))
while True:
    data, fds, _, _ = socket.recv_fds(sock, 65536, 2)
    if not data:
        sys.exit(0)
    request = json.loads(data)
    if mode == "die":
        os.write(fds[1], b"half a line")
        sys.stderr.write("fake worker: giving up\\n")
        sys.exit(3)
    os.write(fds[0], json.dumps({"ran": request["argv"], "pid": os.getpid(),
                                 "served": True}).encode() + b"\\n")
    for fd in fds:
        os.close(fd)
    sock.sendall(b'{"rc": "zero"}\\n' if mode == "garbage" else b'{"rc": 0}\\n')
"""


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("COMPOSER_HOME", str(tmp_path / "home"))
    script = tmp_path / "fake_worker.py"
    script.write_text(FAKE)
    return Engine("embedded", [sys.executable, str(script)], Path(sys.executable))


def ran(engine: Engine, cwd: Path, *args: str) -> dict[str, object]:
    import json

    return dict(json.loads(engine.run(list(args), cwd).stdout))


def test_one_worker_serves_every_command(engine: Engine, tmp_path: Path) -> None:
    engine.start()
    try:
        first = ran(engine, tmp_path, "init")
        second = ran(engine, tmp_path, "apply", "-json")
        assert first["served"] and second["served"]
        assert first["pid"] == second["pid"]
        assert second["ran"] == ["apply", "-json"]
    finally:
        engine.close()
    # Once closed, commands run in processes of their own again.
    assert ran(engine, tmp_path, "destroy")["served"] is False


def test_a_worker_that_dies_mid_command_fails_it_clearly(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_MODE", "die")
    engine.start()
    monkeypatch.delenv("FAKE_MODE")
    # The worker's environment is the one it started with: the fake still dies.
    engine._worker.env = engine.env()  # type: ignore[union-attr]
    with pytest.raises(TerraformError) as info:
        engine.run(["apply"], tmp_path)
    message = info.value.message
    assert "terraform apply failed (exit 3)" in message
    assert "the Terraform worker" in message and "exited with 3" in message
    assert "fake worker: giving up" in message  # the worker's own last words
    assert "later commands run in processes of their own" in message
    # The next command (destroy, say) runs in a fresh process.
    assert ran(engine, tmp_path, "destroy")["served"] is False
    engine.close()


def test_an_answer_that_is_not_an_exit_code_retires_the_worker(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_MODE", "garbage")
    engine.start()
    worker = engine._worker
    assert worker is not None
    worker.env = engine.env()  # as if started without FAKE_MODE
    with pytest.raises(TerraformError) as info:
        engine.run(["init"], tmp_path)
    assert "answered" in info.value.message and "zero" in info.value.message
    assert worker.proc.poll() is not None, "a worker that answers nonsense is stopped"
    assert ran(engine, tmp_path, "destroy")["served"] is False


def test_a_command_with_another_environment_runs_in_its_own_process(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine.start()
    worker = engine._worker
    assert worker is not None
    monkeypatch.setenv("AWS_PROFILE", "changed-since-the-worker-started")
    assert ran(engine, tmp_path, "init")["served"] is False
    assert worker.proc.wait(timeout=10) == 0, "the worker is closed, not left behind"


def test_binary_engines_start_no_worker(tmp_path: Path) -> None:
    engine = Engine("terraform", ["true"], Path(sys.executable))
    engine.start()
    assert engine._worker is None
    engine.close()


def test_parallelism_covers_every_node_and_the_shared_resources() -> None:
    assert parallelism(1) >= 10  # never below Terraform's default
    for nodes in (4, 64, 300, 900):
        assert parallelism(nodes) >= nodes + 10, nodes
    assert parallelism(100_000) == MAX_PARALLELISM
