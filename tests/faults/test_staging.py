"""Shipping code and secrets to the nodes: what is shipped, how fast, who can read it."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from composer.secrets import SECRETS_FILE
from tests.conftest import Composer

from .conftest import Tally
from .util import assert_gone, final_json, record_json, simple_job, start_up, write_job

pytestmark = pytest.mark.integration

# -- A5: the runs repo inside the shipped code directory -----------------------

SHIPPED_CHECK = """\
set -e
test ! -e runs || { echo "the runs repo was shipped"; exit 9; }
test ! -e .composer || { echo "composer's home was shipped"; exit 9; }
cat work.txt
"""


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"})


@pytest.mark.parametrize("layout", ["plain", "git-untracked", "git-ignored"])
def test_default_runs_repo_inside_the_code_dir(composer: Composer, tmp_path: Path,
                                               tally: Tally, layout: str) -> None:
    """``[code] path = "."`` with the default ``./runs`` next to job.toml (cwd = job dir):
    the runs repo is never shipped nor pinned, so a second run and reproduce both work."""
    with tally.check("walkthrough"):
        job_dir = tmp_path / "job"
        job = write_job(job_dir, simple_job("inside", 1, SHIPPED_CHECK, code={"path": "."}),
                        {"work.txt": "hello\n", ".composer/state.txt": "mine\n"})
        if layout != "plain":
            _git(job_dir, "init", "-q", "-b", "main")
            if layout == "git-ignored":
                (job_dir / ".gitignore").write_text("runs/\n.composer/\n")
            _git(job_dir, "add", "-A")
            _git(job_dir, "commit", "-q", "-m", "job")
        c = Composer(home=composer.home, runs=job_dir / "runs", cwd=job_dir)
        ids = []
        for _ in range(2):
            done = c.run("up", "job.toml", "--json", timeout=180, COMPOSER_RUNS_REPO="")
            assert done.returncode == 0, done.stdout + done.stderr[-3000:]
            ids.append(final_json(done.stdout)["run_id"])
        assert (job_dir / "runs" / ids[1]).is_dir()
        lock = record_json(c, ids[1], "lock.json")
        shipped = set(lock["code"]["files"])
        assert shipped == {"job.toml", "work.txt"} | ({".gitignore"} if layout == "git-ignored"
                                                     else set())
        first = record_json(c, ids[0], "lock.json")["code"]
        assert first == lock["code"], "the second run's code pin differs from the first's"
        if layout == "git-ignored":
            assert lock["code"]["git"]["dirty"] is False
        again = c.run("reproduce", "--latest", "inside", "--json", timeout=180,
                      COMPOSER_RUNS_REPO="")
        out = json.loads(again.stdout.strip().splitlines()[-1]) if again.stdout.strip() else {}
        code_drift = [d for d in out.get("drift", []) if d["kind"] == "code"]
        assert not code_drift, f"code drift reported: {code_drift}"
        assert again.returncode == 0, again.stdout + again.stderr[-3000:]
        assert out["verdict"] == "identical", out
        assert job.exists()
        for run_id in (*ids, out["run_id"]):
            assert_gone(c, run_id)


# -- D19: a large code dir reaches every node intact ---------------------------

SHA_CHECK = "sha256sum --quiet -c SHA256SUMS && echo bytes-ok"


def test_large_code_dir_reaches_every_node_byte_exact(composer: Composer, tmp_path: Path,
                                                      tally: Tally) -> None:
    with tally.check("walkthrough"):
        job_dir = tmp_path / "job"
        code = job_dir / "code"
        code.mkdir(parents=True)
        sums = []
        for i in range(10):
            data = os.urandom(5 << 20)
            (code / f"part-{i}.bin").write_bytes(data)
            sums.append(f"{hashlib.sha256(data).hexdigest()}  part-{i}.bin\n")
        (code / "SHA256SUMS").write_text("".join(sums))
        job = write_job(job_dir, simple_job("big", 2, SHA_CHECK, code={"path": "code"}))
        done = composer.run("up", str(job), "--json", timeout=240)
        assert done.returncode == 0, done.stdout + done.stderr[-3000:]
        run_id = final_json(done.stdout)["run_id"]
        result = record_json(composer, run_id, "result.json")
        for rank in range(2):
            log = composer.git("show", f"run/{run_id}:{run_id}/logs/node-{rank}.log")
            assert "bytes-ok" in log, log
        # Linear staging moves 100 MB over loopback in well under the 15 s the
        # in-memory paramiko push took for half of it.
        assert result["stages"]["stage"] < 10, result["stages"]
        assert_gone(composer, run_id)


# -- B10: the secrets file is private from its creation ------------------------

SECRET_WORKLOAD = """\
stat -c 'mode=%a' "$COMPOSER_WORK_DIR/.composer-secrets"
"""


def test_secrets_file_is_private_on_every_node(composer: Composer, tmp_path: Path,
                                               tally: Tally) -> None:
    with tally.check("other users"):
        job = write_job(tmp_path / "job", simple_job(
            "secret-mode", 2, SECRET_WORKLOAD, run={"secret_env": ["MY_TOKEN"]}))
        with start_up(composer, job, "up", COMPOSER_PAUSE_AT="run",
                      MY_TOKEN="tok-0123456789") as up:
            marker = up.paused("run")
            found = sorted(up.work().rglob(SECRETS_FILE))
            assert len(found) == 2, found
            for path in found:
                mode = stat.S_IMODE(path.stat().st_mode)
                assert mode == 0o600, f"{path} has mode {mode:o}"
            marker.unlink()
            done = up.finish(timeout=180)
        assert done.returncode == 0, done.stderr[-3000:]
        for rank in range(2):
            log = composer.git("show", f"run/{up.run_id}:{up.run_id}/logs/node-{rank}.log")
            assert "mode=600" in log, log
