"""Collect reads what it listed, within a time limit, and lists what it cannot read.

- a process the workload left behind keeps appending to outputs while they are
  collected: collect reads each file up to the size it listed, says the file grew,
  and the manifest's size and sha256 describe exactly the bytes recorded;
- collect has an overall time limit: past it the run fails at collect, the cluster
  is destroyed and what was collected is committed;
- symlinks, FIFOs and sockets among the outputs are listed as withheld, never
  followed;
- names holding newlines or terminal escapes are printed escaped.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Composer

from .conftest import Tally
from .util import assert_gone, final_json, record_json, simple_job, tags, work_dirs, write_job

pytestmark = pytest.mark.integration

# `yes` into an output from a process that left the workload's session and dropped
# COMPOSER_NODE_DIR; capped at 4 GiB (ulimit -f counts 512-byte blocks in dash) so a
# collect that reads to EOF ends instead of filling the disk. A slower writer keeps a
# file under max_file_size growing too.
WRITERS = r"""
o="$COMPOSER_OUTPUT_DIR"
setsid env -u COMPOSER_NODE_DIR sh -c 'ulimit -f 8388608; exec yes > "$0"' "$o/z.txt" \
  </dev/null >/dev/null 2>&1 &
echo $! >> "$WRITER_PIDS"
setsid env -u COMPOSER_NODE_DIR sh -c 'while :; do echo y; done > "$0"' "$o/slow.txt" \
  </dev/null >/dev/null 2>&1 &
echo $! >> "$WRITER_PIDS"
sleep 0.5
echo started
"""

ODD = r"""
cd "$COMPOSER_OUTPUT_DIR"
ln -s /etc/passwd link.txt
ln -s / rootdir
mkfifo fifo
python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind("sock")'
mkdir sub && ln -s .. sub/up
echo kept > plain.txt
echo red > "$(printf 'e\033[31mRED\033[0m.txt')"
echo state > "$(printf 'e\033[31mRED\033[0m.tfstate')"
echo state > "$(printf 'new\nline.tfstate')"
ln -s "$(printf '/tmp/x\033[2Jy')" "$(printf 'esc\033]0;title\007.lnk')"
"""


def _kill_writers(pid_file: Path) -> None:
    if not pid_file.exists():
        return
    for line in pid_file.read_text().split():
        pid = int(line)
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if comm in ("yes", "sh"):
            os.kill(pid, signal.SIGKILL)


def _blob(c: Composer, run_id: str, path: str) -> bytes:
    return subprocess.run(["git", "-C", str(c.runs), "show", f"run/{run_id}:{run_id}/{path}"],
                          capture_output=True, check=True).stdout


def _tree(c: Composer, run_id: str) -> list[str]:
    out = subprocess.run(["git", "-C", str(c.runs), "ls-tree", "-rz", "--name-only",
                          f"run/{run_id}", "--", f"{run_id}/"],
                         capture_output=True, check=True).stdout
    return [os.fsdecode(p).removeprefix(f"{run_id}/") for p in out.split(b"\0") if p]


def _entries(c: Composer, run_id: str) -> dict[str, dict[str, Any]]:
    return {e["path"]: e for e in record_json(c, run_id, "manifest.json")["files"]}


@pytest.fixture
def writer_pids(tmp_path: Path) -> Iterator[Path]:
    pid_file = tmp_path / "writer-pids"
    yield pid_file
    _kill_writers(pid_file)


def test_an_output_that_keeps_growing_is_read_up_to_its_listed_size(
        composer: Composer, tmp_path: Path, writer_pids: Path, tally: Tally) -> None:
    with tally.check("records kept"):
        job = write_job(tmp_path / "job", simple_job(
            "grow", 1, WRITERS, run={"env": {"WRITER_PIDS": str(writer_pids)}},
            outputs={"paths": ["*.txt"], "max_file_size": "10MB"},
        ))
        done = composer.run("up", str(job), "--json", timeout=240)
        assert done.returncode == 0, done.stderr
        run_id = final_json(done.stdout)["run_id"]
        result = record_json(composer, run_id, "result.json")
        assert result["stages"]["collect"] < 60, result["stages"]
        entries = _entries(composer, run_id)

        big = entries["node-0/z.txt"]
        assert big["committed"] is False and "over max_file_size" in big["withheld"], big
        size = big["size"]
        assert size > 10_000_000 and size % 2 == 0, big
        assert big["sha256"] == hashlib.sha256(b"y\n" * (size // 2)).hexdigest(), big
        assert big["grew_during_collect"] is True, big
        assert "warning: output node-0/z.txt grew while it was collected" in done.stderr

        slow = entries["node-0/slow.txt"]
        assert slow["committed"] is True, slow
        data = _blob(composer, run_id, "outputs/node-0/slow.txt")
        assert len(data) == slow["size"] > 0, slow
        assert hashlib.sha256(data).hexdigest() == slow["sha256"]
        assert data == b"y\n" * (len(data) // 2)
        assert_gone(composer, run_id)


def test_collect_past_its_time_limit_fails_the_run_and_keeps_what_it_has(
        composer: Composer, tmp_path: Path, tally: Tally) -> None:
    with tally.check("records kept"):
        job = write_job(tmp_path / "job", simple_job(
            "slowcollect", 1,
            'for i in $(seq 1 30); do echo "$i" > "$COMPOSER_OUTPUT_DIR/f$i.txt"; done',
            outputs={"paths": ["*.txt"]},
        ))
        done = composer.run("up", str(job), "--json", timeout=240,
                            COMPOSER_COLLECT_TIMEOUT_S="0.001")
        assert done.returncode == 4, done.stderr
        out = final_json(done.stdout)
        run_id = out["run_id"]
        assert out["status"] == "failed" and out["stage"] == "collect", out
        assert "time limit" in done.stderr and "COMPOSER_COLLECT_TIMEOUT_S" in done.stderr
        assert f"run/{run_id}" in tags(composer)
        result = record_json(composer, run_id, "result.json")
        assert result["status"] == "failed" and result["stage"] == "collect", result
        assert "time limit" in result["error"]
        assert result["workload_exit_code"] == 0, result
        assert result["teardown"]["status"] == "destroyed", result
        entries = _entries(composer, run_id)
        assert len(entries) == 30, entries
        tree = _tree(composer, run_id)
        missed = [e for e in entries.values() if not e["committed"]]
        assert missed, entries
        for entry in missed:
            assert entry["withheld"].startswith("not collected: collect passed its time limit")
            assert "sha256" not in entry
            assert f"outputs/{entry['path']}" not in tree
        for entry in entries.values():
            if entry["committed"]:
                data = _blob(composer, run_id, f"outputs/{entry['path']}")
                assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert_gone(composer, run_id)


def test_a_bad_collect_time_limit_is_refused_before_anything_starts(
        composer: Composer, tmp_path: Path, tally: Tally) -> None:
    with tally.check("records kept"):
        job = write_job(tmp_path / "job", simple_job("badlimit", 1, "true"))
        done = composer.run("up", str(job), timeout=60, COMPOSER_COLLECT_TIMEOUT_S="soon")
        assert done.returncode == 2, done.stderr
        assert "COMPOSER_COLLECT_TIMEOUT_S" in done.stderr
        assert "Traceback" not in done.stderr
        assert not work_dirs(composer)


def test_links_fifos_and_sockets_are_listed_as_withheld_and_names_print_escaped(
        composer: Composer, tmp_path: Path, tally: Tally) -> None:
    with tally.check("records kept"):
        job = write_job(tmp_path / "job", simple_job("odd", 1, ODD, outputs={"paths": ["*"]}))
        done = composer.run("up", str(job), "--json", timeout=240)
        assert done.returncode == 0, done.stderr
        run_id = final_json(done.stdout)["run_id"]
        entries = _entries(composer, run_id)
        expected = {
            "node-0/link.txt": "not a regular file (symlink -> /etc/passwd)",
            "node-0/rootdir": "not a regular file (symlink -> /)",
            "node-0/fifo": "not a regular file (fifo)",
            "node-0/sock": "not a regular file (socket)",
            "node-0/sub/up": "not a regular file (symlink -> ..)",
            "node-0/esc\x1b]0;title\x07.lnk": "not a regular file (symlink -> /tmp/x\x1b[2Jy)",
        }
        for path, reason in expected.items():
            entry = entries[path]
            assert entry == {"path": path, "node": "node-0", "size": 0, "committed": False,
                             "withheld": reason}, entry
        # never followed: nothing from / or /etc/passwd was listed or committed
        assert not [p for p in entries if p.startswith(("node-0/rootdir/", "node-0/sub/up/"))]
        tree = _tree(composer, run_id)
        assert [p for p in tree if p.startswith("outputs/")] == sorted([
            "outputs/node-0/e\x1b[31mRED\x1b[0m.txt", "outputs/node-0/plain.txt"]), tree
        assert entries["node-0/e\x1b[31mRED\x1b[0m.txt"]["committed"] is True
        assert _blob(composer, run_id, "outputs/node-0/e\x1b[31mRED\x1b[0m.txt") == b"red\n"
        assert "Terraform" in entries["node-0/new\nline.tfstate"]["withheld"]

        log = _blob(composer, run_id, "logs/composer.log").decode()
        for text in (done.stderr, log):
            assert "withheld output node-0/link.txt: not a regular file (symlink -> " \
                   "/etc/passwd)" in text
            assert "withheld output node-0/fifo: not a regular file (fifo)" in text
            assert "withheld output node-0/e\\x1b[31mRED\\x1b[0m.tfstate: " in text
            assert "withheld output node-0/new\\nline.tfstate: " in text
            assert ("withheld output node-0/esc\\x1b]0;title\\x07.lnk: not a regular file "
                    "(symlink -> /tmp/x\\x1b[2Jy)") in text
            assert "\x1b" not in text and "\x07" not in text
        assert_gone(composer, run_id)
