"""The workload's output streams, its failures and its hangs, through real runs.

Secrets split over lines or chunks stay masked on the terminal and in every log,
``\\r`` progress and over-long lines are handled, a failing node is named and
stops the others, a long run says it is alive, and committed logs are capped.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .conftest import Tally
from .util import (
    assert_gone,
    final_json,
    process_alive,
    read_record,
    record_files,
    record_json,
    simple_job,
    write_job,
)

if TYPE_CHECKING:
    from tests.conftest import Composer

pytestmark = pytest.mark.integration

LINE_CAP = 64 * 1024


def record_bytes(c: Composer, run_id: str, name: str) -> bytes:
    return subprocess.run(["git", "-C", str(c.runs), "show", f"run/{run_id}:{run_id}/{name}"],
                          capture_output=True, check=True).stdout


def run_id_of(stderr: str) -> str:
    return next(line.split()[2] for line in stderr.splitlines()
                if line.startswith("composer: run "))


def _files_holding(root: Path, needles: list[bytes], skip: set[str]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and path.name not in skip:
            data = path.read_bytes()
            found += [f"{path} holds {n[:12]!r}..." for n in needles if n in data]
    return found


def test_multiline_secret_is_masked_on_every_stream(composer: Composer, tmp_path: Path,
                                                    tally: Tally) -> None:
    first = "key-first-" + secrets.token_hex(12)
    second = "key-second-" + secrets.token_hex(12)
    value = f"-----BEGIN TEST KEY-----\n{first}\n{second}\n-----END TEST KEY-----"
    pad = LINE_CAP - len(first) // 2
    # The secret on stdout and stderr, inside a line, and straddling the 64 KiB cut of a
    # line so long that it is written in pieces.
    command = (
        'printf "%s\\n" "$MY_KEY"; printf "%s\\n" "$MY_KEY" >&2; '
        'printf "inline [%s]\\n" "$MY_KEY"; '
        f'printf "%0{pad}d%s tail\\n" 0 "$(printf "%s" "$MY_KEY" | sed -n 2p)"'
    )
    job = write_job(tmp_path / "job", simple_job(
        "multiline-secret", 1, command, run={"secret_env": ["MY_KEY"]},
        record={"max_log_size": "10MB"},
    ))
    with tally.check("streams"):
        done = composer.run("up", str(job), "--keep", timeout=240, MY_KEY=value)
        run_id = run_id_of(done.stderr)
        try:
            assert done.returncode == 0, done.stderr[-3000:]
            needles = [first.encode(), second.encode(), first[:16].encode()]
            shown = [n.decode() for n in needles if n.decode() in done.stdout + done.stderr]
            assert not shown, f"secret lines on the terminal: {shown}"
            assert "[node-0] ***" in done.stdout
            assert "[node-0] inline [***" in done.stdout
            leaks = _files_holding(composer.home / "work" / run_id, needles,
                                   skip={".composer-secrets"})
            assert not leaks, f"secret lines in the work dir: {leaks}"
            log = read_record(composer, run_id, "logs/node-0.log")
            for needle in needles:
                assert needle.decode() not in log, "a secret line in the committed log"
            assert log.count("***") >= 4
            assert " tail\n" in log
        finally:
            down = composer.run("down", run_id, timeout=120)
            assert down.returncode == 0, down.stderr


def test_carriage_return_progress_and_long_lines(composer: Composer, tmp_path: Path,
                                                 tally: Tally) -> None:
    long_line = 200_000
    command = (
        "for i in 1 2 3 4 5; do printf '\\rprogress %d/5' $i; done; printf '\\n'; "
        f"head -c {long_line} /dev/zero | tr '\\0' x; printf ' end\\n'; echo after"
    )
    job = write_job(tmp_path / "job", simple_job("progress", 1, command))
    with tally.check("streams"):
        t0 = time.monotonic()
        done = composer.run("up", str(job), timeout=240)
        assert done.returncode == 0, done.stderr[-3000:]
        assert time.monotonic() - t0 < 60
        lines = done.stdout.split("\n")
        # Each \r ends a line on the terminal (the last update of a bar is shown).
        assert "[node-0] progress 5/5" in lines, lines[:20]
        assert not any("\r" in line for line in lines)
        shown = [line for line in lines if line.startswith("[node-0] xxxx")]
        assert len(shown) == 1 and len(shown[0]) <= LINE_CAP + 100
        assert "cut" in done.stdout and "node-0.log" in done.stdout
        assert "[node-0] after" in lines
        run_id = run_id_of(done.stderr)
        log = record_bytes(composer, run_id, "logs/node-0.log")
        # The node log keeps every byte: the \r updates and the whole long line.
        assert b"\rprogress 1/5\rprogress 2/5" in log
        assert b"x" * long_line + b" end\nafter\n" in log
        assert_gone(composer, run_id)


FAILS_AT_ONCE = (
    'if [ "$COMPOSER_NODE_RANK" = 1 ]; then echo "node one fails"; exit 3; fi; '
    'echo $$ > "$COMPOSER_OUTPUT_DIR/pid.txt"; exec sleep 300'
)


def test_failing_node_stops_the_others(composer: Composer, tmp_path: Path,
                                       tally: Tally) -> None:
    job = write_job(tmp_path / "job", simple_job(
        "fail-fast", 2, FAILS_AT_ONCE, outputs={"paths": ["pid.txt"]},
    ))
    with tally.check("streams"):
        t0 = time.monotonic()
        done = composer.run("up", str(job), "--json", "--keep", timeout=120)
        elapsed = time.monotonic() - t0
        out = final_json(done.stdout)
        run_id = out["run_id"]
        try:
            assert done.returncode == 1, done.stderr[-3000:]
            assert elapsed < 60, f"the run took {elapsed:.0f}s: node-0 was not stopped"
            assert out["exit_code"] == 1
            assert out["status"] == "failed"
            assert out["failed_node"] == "node-1"
            assert out["workload_exit_code"] == 3
            assert out["stage"] == "run"
            assert "node-1" in out["error"] and "3" in out["error"]
            assert "composer: failed: node-1 exited with 3" in done.stderr
            assert "node-0" in done.stderr.split("composer: failed: node-1 exited with 3")[1]
            result = record_json(composer, run_id, "result.json")
            assert result["exit_code"] == 3 and result["workload_exit_code"] == 3
            assert result["composer_exit_code"] == 1
            assert result["failed_node"] == "node-1"
            assert result["stopped_nodes"] == ["node-0"]
            pid = int(read_record(composer, run_id, "outputs/node-0/pid.txt"))
            deadline = time.monotonic() + 10
            while process_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not process_alive(pid), "node-0's workload survived the failure of node-1"
        finally:
            down = composer.run("down", run_id, timeout=120)
            assert down.returncode == 0, down.stderr


def test_fail_fast_off_waits_for_every_node(composer: Composer, tmp_path: Path,
                                            tally: Tally) -> None:
    command = ('if [ "$COMPOSER_NODE_RANK" = 1 ]; then exit 3; fi; sleep 2; '
               'echo finished > "$COMPOSER_OUTPUT_DIR/finished.txt"')
    job = write_job(tmp_path / "job", simple_job(
        "wait-all", 2, command, run={"fail_fast": False}, outputs={"paths": ["*.txt"]},
    ))
    with tally.check("streams"):
        done = composer.run("up", str(job), "--json", timeout=120)
        assert done.returncode == 1, done.stderr[-3000:]
        out = final_json(done.stdout)
        assert out["failed_node"] == "node-1" and out["workload_exit_code"] == 3
        files = record_files(composer, out["run_id"])
        assert "outputs/node-0/finished.txt" in files
        result = record_json(composer, out["run_id"], "result.json")
        assert result["stopped_nodes"] == []
        assert_gone(composer, out["run_id"])


def test_up_json_keys_are_the_same_on_success(composer: Composer, tmp_path: Path,
                                              tally: Tally) -> None:
    job = write_job(tmp_path / "job", simple_job("ok", 1, "true"))
    with tally.check("streams"):
        done = composer.run("up", str(job), "--json", timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        out = final_json(done.stdout)
        assert set(out) >= {"run_id", "status", "exit_code", "record", "workload_exit_code",
                            "failed_node", "error", "stage"}
        assert out["exit_code"] == 0 and out["workload_exit_code"] == 0
        assert out["failed_node"] is None and out["error"] is None
        bad = tmp_path / "bad" / "job.toml"
        bad.parent.mkdir()
        bad.write_text("[job]\nname = 'x'\n")
        done = composer.run("up", str(bad), "--json", timeout=60)
        assert done.returncode == 2
        assert set(final_json(done.stdout)) >= set(out)


def test_a_quiet_run_says_it_is_alive(composer: Composer, tmp_path: Path,
                                      tally: Tally) -> None:
    job = write_job(tmp_path / "job", simple_job("quiet", 2, "echo started; sleep 3.5"))
    with tally.check("streams"):
        done = composer.run("up", str(job), "--json", timeout=120, COMPOSER_HEARTBEAT_S="1")
        assert done.returncode == 0, done.stderr[-3000:]
        final_json(done.stdout)
        beats = [line for line in done.stderr.splitlines()
                 if line.startswith("composer: [run] still running after")]
        assert len(beats) >= 2, done.stderr
        assert "node-0, node-1 active" in beats[0]
        assert "last output" in beats[-1] and "ago" in beats[-1]
        assert "max_duration 24h (the default" in done.stderr
        assert "[limits] max_duration" in done.stderr
        assert_gone(composer, final_json(done.stdout)["run_id"])


def test_max_duration_from_the_spec_is_printed(composer: Composer, tmp_path: Path,
                                               tally: Tally) -> None:
    job = write_job(tmp_path / "job", simple_job("limited", 1, "true",
                                                 limits={"max_duration": "10m"}))
    with tally.check("streams"):
        done = composer.run("up", str(job), timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "max_duration 10m (from [limits] max_duration)" in done.stderr
        assert "the default" not in done.stderr


def test_loud_workload_logs_are_capped(composer: Composer, tmp_path: Path,
                                       tally: Tally) -> None:
    command = ("echo FIRST-LINE; yes 'a loud line of output from the workload' "
               "| head -c 3000000; echo LAST-LINE")
    job = write_job(tmp_path / "job", simple_job("loud", 2, command,
                                                 record={"max_log_size": "10KB"}))
    with tally.check("streams"):
        done = composer.run("up", str(job), "--json", timeout=240)
        assert done.returncode == 0, done.stderr[-3000:]
        run_id = final_json(done.stdout)["run_id"]
        files = record_files(composer, run_id)
        assert "logs/mpirun.log" not in files, files
        result = record_json(composer, run_id, "result.json")
        for rank in range(2):
            name = f"logs/node-{rank}.log"
            log = read_record(composer, run_id, name)
            assert len(log.encode()) <= 10_000 + 200
            assert log.startswith("FIRST-LINE\n") and log.endswith("LAST-LINE\n")
            assert "bytes cut" in log
            assert result["logs_cut"][name]["size"] > 3_000_000
            assert result["logs_cut"][name]["cut"] > 2_900_000
        assert_gone(composer, run_id)

