"""Secrets in composer's environment never reach the runs repository."""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .conftest import Tally
from .util import assert_gone, final_json, read_record, record_json, simple_job, write_job

if TYPE_CHECKING:
    from tests.conftest import Composer

pytestmark = pytest.mark.integration

FORBIDDEN_SUFFIXES = (".tfstate", ".tfplan")
WORKLOAD = """\
[ -n "${MY_TOKEN:-}" ] || { echo "MY_TOKEN is not set"; exit 1; }
env
echo "token=$MY_TOKEN"
creds="${GOOGLE_APPLICATION_CREDENTIALS:-/nonexistent}"
if [ -r "$creds" ]; then cat "$creds"; fi
printf '%s\\n' "$MY_TOKEN" > "$COMPOSER_OUTPUT_DIR/leak.txt"
echo clean > "$COMPOSER_OUTPUT_DIR/clean.txt"
"""


def git_bytes(repo: Path, *args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["git", "-C", str(repo), *args], input=data, capture_output=True,
                          check=True).stdout


def repo_contents(repo: Path) -> tuple[list[str], dict[str, bytes]]:
    """Every path and every object in every commit, and every file of the working tree."""
    listing = git_bytes(repo, "rev-list", "--all", "--objects").decode()
    objects = [line.split(" ", 1) for line in listing.splitlines() if line]
    paths = [entry[1] for entry in objects if len(entry) == 2]
    batch = git_bytes(repo, "cat-file", "--batch",
                      data="".join(f"{entry[0]}\n" for entry in objects).encode())
    blobs: dict[str, bytes] = {}
    pos = 0
    for sha, *_ in objects:
        header_end = batch.index(b"\n", pos)
        header = batch[pos:header_end].split()
        assert header[0].decode() == sha, f"cat-file out of step at {sha}"
        size = int(header[2])
        blobs[f"object {sha}"] = batch[header_end + 1:header_end + 1 + size]
        pos = header_end + 1 + size + 1
    for path in repo.rglob("*"):
        if path.is_file() and ".git" not in path.relative_to(repo).parts:
            blobs[f"file {path.relative_to(repo)}"] = path.read_bytes()
    return paths, blobs


def test_secrets_stay_out_of_the_record(composer: Composer, tmp_path: Path,
                                        tally: Tally) -> None:
    aws = "aws-" + secrets.token_hex(16)
    gcp = "gcp-" + secrets.token_hex(16)
    token = "tok-" + secrets.token_hex(16)
    creds = tmp_path / "gcp-credentials.json"
    creds.write_text(f'{{"type": "service_account", "private_key_id": "{gcp}"}}\n')
    job = write_job(tmp_path / "job", simple_job(
        "secrets", 2, WORKLOAD, run={"secret_env": ["MY_TOKEN"]}, outputs={"paths": ["*.txt"]},
    ))
    done = composer.run("up", str(job), "--json", timeout=240, AWS_SECRET_ACCESS_KEY=aws,
                        GOOGLE_APPLICATION_CREDENTIALS=str(creds), MY_TOKEN=token)
    assert done.returncode == 0, done.stderr
    run_id = final_json(done.stdout)["run_id"]

    paths, blobs = repo_contents(composer.runs)
    assert any(name.startswith("file ") for name in blobs)
    assert any(b"token=***" in data for name, data in blobs.items() if name.startswith("object"))
    values = {"AWS_SECRET_ACCESS_KEY": aws, "GOOGLE_APPLICATION_CREDENTIALS": gcp,
              "MY_TOKEN": token}
    found = {name: sorted(where for where, data in blobs.items() if value.encode() in data)
             for name, value in values.items()}
    found = {name: where for name, where in found.items() if where}
    tally.count("secrets found", len(found))
    assert not found, f"secret values in the runs repo: {found}"
    keys = [where for where, data in blobs.items() if b"PRIVATE KEY-----" in data]
    assert not keys, f"private keys in the runs repo: {keys}"
    forbidden = [p for p in paths if p.endswith(FORBIDDEN_SUFFIXES) or ".terraform" in p.split("/")]
    assert not forbidden, f"Terraform state or plans in the runs repo: {forbidden}"

    manifest = record_json(composer, run_id, "manifest.json")
    entries = {entry["path"]: entry for entry in manifest["files"]}
    for rank in range(2):
        leak = entries[f"node-{rank}/leak.txt"]
        assert leak["committed"] is False
        assert leak.get("withheld")
        assert entries[f"node-{rank}/clean.txt"]["committed"] is True
        log = read_record(composer, run_id, f"logs/node-{rank}.log")
        assert "token=***" in log
        assert "MY_TOKEN=***" in log
    assert_gone(composer, run_id)


def test_missing_secret_is_refused_before_any_work(composer: Composer, tmp_path: Path) -> None:
    name = "FAULTS_ABSENT_" + secrets.token_hex(4).upper()
    assert name not in os.environ
    job = write_job(tmp_path / "job", simple_job("no-secret", 1, "true",
                                                 run={"secret_env": [name]}))
    done = composer.run("up", str(job), "--json", timeout=120)
    assert done.returncode == 2, done.stderr
    assert "run.secret_env" in done.stderr and name in done.stderr
    assert "Traceback" not in done.stderr
    assert final_json(done.stdout)["exit_code"] == 2
    assert not (composer.home / "work").exists()
    assert not composer.runs.exists()
