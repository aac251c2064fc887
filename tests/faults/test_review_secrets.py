"""Secrets and keys against an outside review: a log cap cutting a key in half, a
stranded run finished by ``composer down``, a secret too short to mask."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from composer.records.guard import KEY_REDACTED, redact_keys

from .conftest import Tally
from .util import assert_gone, final_json, read_record, simple_job, start_up, write_job

if TYPE_CHECKING:
    from tests.conftest import Composer

pytestmark = pytest.mark.integration


def _key(tmp_path: Path) -> list[str]:
    path = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(path)],
                   check=True, capture_output=True)
    return path.read_text().splitlines()


def test_orphan_key_end_takes_the_lines_above_it(tmp_path: Path) -> None:
    lines = _key(tmp_path)
    cut = "\n".join(["before", *lines[5:]]) + "\nafter\n"
    out = redact_keys(cut.encode()).decode()
    assert not any(line in out for line in lines[5:-1]), out
    assert out.splitlines() == ["before", KEY_REDACTED.decode(), "after"]


def _run_printing_a_key(composer: Composer, tmp_path: Path, command: str,
                        **sections: dict[str, str]) -> tuple[str, list[str]]:
    """A one-node run whose workload prints a fresh private key (``k`` in its code dir)
    with ``command``: its committed node log, and the key lines found in it."""
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    lines = _key(job_dir)
    doc = simple_job("key-in-log", 1, ["sh", "-c", command], code={"path": "."}, **sections)
    done = composer.run("up", str(write_job(job_dir, doc)), "--json", timeout=240)
    assert done.returncode == 0, done.stderr
    log = read_record(composer, final_json(done.stdout)["run_id"], "logs/node-0.log")
    return log, [line for line in lines[1:-1] if len(line) > 20 and line in log]


def test_a_capped_log_keeps_no_line_of_a_key(composer: Composer, tmp_path: Path,
                                             tally: Tally) -> None:
    with tally.check("records kept"):
        log, leaked = _run_printing_a_key(composer, tmp_path, "seq 1 2000; cat k",
                                          record={"max_log_size": "2KB"})
        assert not leaked, f"{len(leaked)} key lines committed"
        assert "cut" in log


WRITES_SECRET = ("echo $MY_TOKEN > $COMPOSER_OUTPUT_DIR/a.txt; "
                 "echo fine > $COMPOSER_OUTPUT_DIR/b.txt")


@pytest.mark.parametrize("given", ["same", None, "", "1", "rotated-0123456789"],
                         ids=["secret-same", "secret-missing", "secret-empty", "secret-short",
                              "secret-other"])
def test_down_never_commits_an_unscreened_secret(composer: Composer, tmp_path: Path,
                                                 tally: Tally, given: str | None) -> None:
    with tally.check("records kept"):
        token = "tok-down-0123456789"
        job = write_job(tmp_path / "job", simple_job(
            "down-secret", 1, WRITES_SECRET, run={"secret_env": ["MY_TOKEN"]},
            outputs={"paths": ["*.txt"], "from": "head"}))
        with start_up(composer, job, "up", COMPOSER_PAUSE_AT="destroy",
                      MY_TOKEN=token) as up:
            up.paused("destroy")
            up.proc.kill()
            up.proc.wait(timeout=30)
            run_id = up.run_id
            assert run_id is not None
            # As a kill in the middle of collect leaves it: a fetched file in the staged
            # record that collect has not screened or listed yet.
            outputs = up.work() / "record" / "outputs"
            assert (outputs / "b.txt").read_text() == "fine\n"
            (outputs / "late.txt").write_text(f"token={token}\n")
        exported = given == "same"
        env = {} if given is None else {"MY_TOKEN": token if exported else given}
        done = composer.run("down", run_id, "--json", timeout=180, **env)
        assert done.returncode == 0, done.stderr
        found = subprocess.run(["git", "-C", str(composer.runs), "grep", "-I", "-e", token,
                                f"run/{run_id}", "--"], capture_output=True, text=True)
        assert found.returncode == 1 and not found.stdout, f"a secret was committed: {found}"
        manifest = read_record(composer, run_id, "manifest.json")
        assert token not in manifest
        files = composer.git("ls-tree", "-r", "--name-only", f"run/{run_id}")
        assert f"{run_id}/outputs/a.txt" not in files
        assert f"{run_id}/outputs/late.txt" not in files
        if exported:
            assert f"{run_id}/outputs/b.txt" in files
        else:
            assert f"{run_id}/outputs/b.txt" not in files
            assert "not screened for secrets: MY_TOKEN" in manifest
            job = read_record(composer, run_id, "job.toml")
            assert "***" not in job and "***" not in read_record(composer, run_id, "lock.json")


def test_a_secret_too_short_to_mask_is_refused(composer: Composer, tmp_path: Path,
                                               tally: Tally) -> None:
    with tally.check("records kept"):
        job = write_job(tmp_path / "job", simple_job(
            "short-secret", 1, "echo hi", run={"secret_env": ["PIN"]}))
        done = composer.run("up", str(job), "--json", timeout=120, PIN='"')
        assert done.returncode == 2, done.stderr
        assert "run.secret_env" in done.stderr and "PIN" in done.stderr
        assert not (composer.runs / ".git").exists() or "run/" not in composer.git("tag")


def _prefixed(lines: list[str], prefix: str) -> str:
    return "".join(f"{prefix}{line}\n" for line in lines)


def test_keys_behind_prefixes_and_between_other_lines(tmp_path: Path) -> None:
    lines = _key(tmp_path)
    body = [line for line in lines[1:-1] if len(line) > 20]
    cases = {
        "rank prefix": _prefixed(lines, "[rank 0] "),
        "log prefix": _prefixed(lines, "INFO: "),
        "timestamps": "".join(f"2026-11-27T08:{i:02d} {line}\n" for i, line in enumerate(lines)),
        "interleaved ranks": "".join(f"[rank 0] {line}\n[rank 1] step {i}\n"
                                     for i, line in enumerate(lines)),
        "no begin, a line before the end": "".join(f"{line}\n" for line in lines[3:-1])
        + "a word\n" + lines[-1] + "\n",
    }
    for name, text in cases.items():
        out = redact_keys(text.encode()).decode()
        leaked = [line for line in body if line in out]
        assert not leaked, f"{name}: {len(leaked)} key lines kept"
        assert KEY_REDACTED.decode() in out, name
    interleaved = redact_keys(cases["interleaved ranks"].encode()).decode()
    assert "[rank 1] step 3" in interleaved


def test_an_mpi_rank_printing_a_key_commits_none_of_it(composer: Composer, tmp_path: Path,
                                                       tally: Tally) -> None:
    with tally.check("records kept"):
        log, leaked = _run_printing_a_key(composer, tmp_path, "echo hello; cat k; echo bye",
                                          run={"launcher": "mpi"})
        assert "[rank 0] hello" in log and "[rank 0] bye" in log, log
        assert not leaked, f"{len(leaked)} key lines committed"


def test_a_huge_sparse_output_is_listed_not_read(composer: Composer, tmp_path: Path,
                                                 tally: Tally) -> None:
    with tally.check("records kept"):
        job = write_job(tmp_path / "job", simple_job(
            "sparse", 1, "truncate -s 1T $COMPOSER_OUTPUT_DIR/big.bin",
            outputs={"paths": ["big.bin"], "from": "head", "max_file_size": "1MB"}))
        done = composer.run("up", str(job), "--json", timeout=240)
        assert done.returncode == 0, done.stderr
        run_id = final_json(done.stdout)["run_id"]
        entry = json.loads(read_record(composer, run_id, "manifest.json"))["files"][0]
        assert entry["size"] == 1 << 40 and "sha256" not in entry, entry
        assert "not hashed" in entry["withheld"], entry


def test_one_signal_stops_a_long_collect(composer: Composer, tmp_path: Path,
                                         tally: Tally) -> None:
    with tally.check("interrupts"):
        job = write_job(tmp_path / "job", simple_job(
            "long-collect", 1, "truncate -s 12G $COMPOSER_OUTPUT_DIR/big.bin",
            outputs={"paths": ["big.bin"], "from": "head", "max_file_size": "1MB"}))
        with start_up(composer, job, "up", COMPOSER_PAUSE_AT="collect") as up:
            marker = up.paused("collect")
            marker.unlink()
            time.sleep(2)
            up.proc.send_signal(signal.SIGINT)
            done = up.finish(timeout=60)
        assert done.returncode == 130, done.stderr
        run_id = final_json(done.stdout)["run_id"]
        assert json.loads(read_record(composer, run_id, "result.json"))["status"] == "interrupted"
        assert_gone(composer, run_id)
