"""Hostile outputs never cost a record: what may not be committed is withheld and said.

One run (one node) writes outputs named and filled like keys and state, a file
whose name is not UTF-8, one whose name holds a secret, one over max_file_size and
its own ``manifest.json``; its log quotes a private key; the user has global git
excludes matching composer's logs and a runs repo made with the old .gitignore
(which ignored ``id_*`` and ``*.key``) holding a directory of the user's own.
With its 40 small shards the node has enough outputs to be collected through one
tar stream (``collect_tar``): every rule below holds on that path.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from composer import collect_tar
from composer.record import RunsRepo
from tests.conftest import Composer, sshd_processes

from .conftest import Tally
from .test_secrets import repo_contents
from .util import (
    assert_gone,
    final_json,
    read_record,
    record_files,
    record_json,
    simple_job,
    start_up,
    tags,
    write_job,
)

pytestmark = pytest.mark.integration

OLD_GITIGNORE = "*.tfstate*\n.terraform/\n*.tfplan\n*.key\nid_*\n*.tmp-*/\n"
NOTES = "# notes\n-----BEGIN RSA {m} KEY-----\nMIIEabc\n-----END RSA {m} KEY-----\n"
WORKLOAD = r"""
o="$COMPOSER_OUTPUT_DIR"
m=PRIVATE
echo weights > "$o/model.key"
echo "ssh-ed25519 AAAA user@host" > "$o/id_rsa.pub"
echo '{"0": "cat"}' > "$o/id_to_label.json"
echo '{"version": 4}' > "$o/sweep.tfstate.json"
k="KEY-----"
printf '# notes\n-----BEGIN RSA %s %s\nMIIEabc\n-----END RSA %s %s\n' $m $k $m $k > "$o/notes.md"
echo '{"mine": true}' > "$o/manifest.json"
head -c 3000 /dev/zero > "$o/big.bin"
printf x > "$o/$(printf '\377').bin"
echo named > "$o/run-$MY_TOKEN.txt"
for i in $(seq 1 40); do echo "shard $i" > "$o/shard-$i.txt"; done
printf -- '-----BEGIN OPENSSH %s %s\nb3BlbnNzaC1rZXktdjE=\n-----END OPENSSH %s %s\n' $m $k $m $k
echo workload done
"""


@dataclass
class Hostile:
    c: Composer
    run_id: str
    token: str
    stderr: str
    manifest: dict[str, Any]

    def entry(self, path: str) -> dict[str, Any]:
        found = [e for e in self.manifest["files"] if e["path"] == f"node-0/{path}"]
        assert len(found) == 1, f"{path} not listed once in {self.manifest}"
        return found[0]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    tmp = tmp_path_factory.mktemp("hostile")
    c = Composer(home=tmp / "home", runs=tmp / "runs", cwd=tmp)
    repo = RunsRepo(c.runs)
    repo.ensure()
    (c.runs / ".gitignore").write_text(OLD_GITIGNORE)
    (c.runs / "analysis.tmp-2024").mkdir()
    (c.runs / "analysis.tmp-2024" / "notes.md").write_text("mine\n")
    c.git("commit", "-qam", "ignore rules of an older composer")
    excludes = tmp / "global-excludes"
    excludes.write_text("*.log\n*.json\n")
    gitconfig = tmp / "gitconfig"
    gitconfig.write_text(f"[core]\n\texcludesFile = {excludes}\n")
    token = "tok" + secrets.token_hex(8)
    job = write_job(tmp / "job", simple_job(
        "hostile", 1, WORKLOAD, run={"secret_env": ["MY_TOKEN"]},
        outputs={"paths": ["*"], "max_file_size": "1KB"},
    ))
    done = c.run("up", str(job), "--json", timeout=240, MY_TOKEN=token,
                 GIT_CONFIG_GLOBAL=str(gitconfig))
    try:
        assert done.returncode == 0, done.stderr
        run_id = final_json(done.stdout)["run_id"]
        assert run_id, done.stdout
        yield Hostile(c, run_id, token, done.stderr, record_json(c, run_id, "manifest.json"))
    finally:
        leaked = sshd_processes(str(c.home))
        for line in leaked:
            pid_file = line.split(" -f ")[1].split()[0].replace("sshd_config", "sshd.pid")
            subprocess.run(["sh", "-c", f"kill -9 $(cat {pid_file})"], check=False)
        assert not leaked, f"nodes left running: {leaked}"


def test_key_and_state_lookalikes_are_withheld_not_refused(hostile: Hostile,
                                                           tally: Tally) -> None:
    with tally.check("records kept"):
        c, run_id = hostile.c, hostile.run_id
        assert f"run/{run_id}" in tags(c)
        files = record_files(c, run_id)
        for name in ("model.key", "id_rsa.pub", "id_to_label.json"):
            assert f"outputs/node-0/{name}" in files
            assert hostile.entry(name)["committed"] is True
        assert read_record(c, run_id, "outputs/node-0/model.key") == "weights\n"
        for name, why in (("sweep.tfstate.json", "Terraform"), ("notes.md", "private key")):
            assert f"outputs/node-0/{name}" not in files
            entry = hostile.entry(name)
            assert entry["committed"] is False and why in entry["withheld"], entry
            assert f"withheld output node-0/{name}: " in hostile.stderr
        assert "withheld output node-0/notes.md" in read_record(c, run_id, "logs/composer.log")
        assert_gone(c, run_id)


def test_user_excludes_and_an_old_gitignore_drop_nothing(hostile: Hostile,
                                                         tally: Tally) -> None:
    with tally.check("runs repo"):
        files = record_files(hostile.c, hostile.run_id)
        for name in ("logs/composer.log", "logs/node-0.log", "result.json", "manifest.json",
                     "outputs/node-0/id_rsa.pub"):
            assert name in files, f"{name} missing from the record: {files}"
        assert hostile.c.git("status", "--porcelain", "--", hostile.run_id) == ""


def test_a_users_tmp_directory_in_the_runs_repo_survives(hostile: Hostile,
                                                         tally: Tally) -> None:
    with tally.check("runs repo"):
        assert (hostile.c.runs / "analysis.tmp-2024" / "notes.md").read_text() == "mine\n"


def test_a_non_utf8_output_name_loses_nothing_else(hostile: Hostile, tally: Tally) -> None:
    with tally.check("records kept"):
        entry = hostile.entry("\\xff.bin")
        assert entry["committed"] is False and "UTF-8" in entry["withheld"]
        assert "sha256" not in entry
        assert "withheld output node-0/\\xff.bin" in hostile.stderr
        files = record_files(hostile.c, hostile.run_id)
        assert "outputs/node-0/id_to_label.json" in files


def test_many_small_outputs_are_all_committed_intact(hostile: Hostile, tally: Tally) -> None:
    with tally.check("records kept"):
        assert len(hostile.manifest["files"]) >= collect_tar.MIN_FILES  # the tar path ran
        for i in range(1, 41):
            data = f"shard {i}\n"
            assert read_record(hostile.c, hostile.run_id, f"outputs/node-0/shard-{i}.txt") == data
            entry = hostile.entry(f"shard-{i}.txt")
            assert entry["committed"] is True
            assert entry["sha256"] == hashlib.sha256(data.encode()).hexdigest()


def test_a_workloads_own_manifest_is_an_output(hostile: Hostile, tally: Tally) -> None:
    with tally.check("records kept"):
        mine = read_record(hostile.c, hostile.run_id, "outputs/node-0/manifest.json")
        assert mine == '{"mine": true}\n'
        entry = hostile.entry("manifest.json")
        assert entry["committed"] is True
        assert entry["sha256"] == hashlib.sha256(mine.encode()).hexdigest()


def test_an_output_over_max_file_size_is_said_and_listed(hostile: Hostile,
                                                         tally: Tally) -> None:
    with tally.check("records kept"):
        entry = hostile.entry("big.bin")
        assert entry["committed"] is False
        assert entry["withheld"] == "over max_file_size (3000 > 1000 bytes)"
        assert entry["size"] == 3000
        assert entry["sha256"] == hashlib.sha256(b"\0" * 3000).hexdigest()
        assert "withheld output node-0/big.bin: over max_file_size" in hostile.stderr
        assert "raise [outputs] max_file_size to commit it" in hostile.stderr
        assert "outputs/node-0/big.bin" not in record_files(hostile.c, hostile.run_id)


def test_a_secret_in_an_output_name_is_withheld(hostile: Hostile, tally: Tally) -> None:
    with tally.check("records kept"):
        entry = hostile.entry("run-***.txt")
        assert entry["committed"] is False and "secret" in entry["withheld"]
        files = record_files(hostile.c, hostile.run_id)
        assert not [f for f in files if "run-" in f], files
        paths, blobs = repo_contents(hostile.c.runs)
        assert not [p for p in paths if hostile.token in p]
        assert not [w for w, data in blobs.items() if hostile.token.encode() in data]


def test_withheld_entries_carry_no_hash(hostile: Hostile, tally: Tally) -> None:
    with tally.check("records kept"):
        notes = NOTES.format(m="PRIVATE").encode()
        for name in ("notes.md", "sweep.tfstate.json", "run-***.txt"):
            assert "sha256" not in hostile.entry(name), hostile.entry(name)
        text = json.dumps(hostile.manifest)
        for content in (notes, b"named\n", b'{"version": 4}\n'):
            assert hashlib.sha256(content).hexdigest() not in text


def test_a_log_quoting_a_private_key_is_kept_without_the_key(hostile: Hostile,
                                                             tally: Tally) -> None:
    with tally.check("records kept"):
        log = read_record(hostile.c, hostile.run_id, "logs/node-0.log")
        assert "workload done" in log
        assert "KEY-----" not in log and "b3BlbnNzaC1rZXktdjE=" not in log
        assert "private key" in log


def test_down_after_a_failed_commit_keeps_the_result(composer: Composer, tmp_path: Path,
                                                     tally: Tally) -> None:
    with tally.check("records kept"):
        job = write_job(tmp_path / "job", simple_job("recommit", 1, "echo fine"))
        with start_up(composer, job, "up", COMPOSER_PAUSE_AT="destroy") as up:
            marker = up.paused("destroy")
            run_id = up.run_id
            assert run_id is not None
            # The runs repository becomes unusable while the run tears down.
            composer.runs.mkdir()
            (composer.runs / "not-a-repo.txt").write_text("x\n")
            marker.unlink()
            done = up.finish()
        assert done.returncode != 0
        assert f"composer down {run_id}" in done.stderr, done.stderr
        assert composer.home.joinpath("work", run_id, "record", "result.json").exists()
        (composer.runs / "not-a-repo.txt").unlink()

        down = composer.run("down", run_id, "--json", timeout=120)
        assert down.returncode == 0, down.stderr
        assert final_json(down.stdout)["record"]
        result = record_json(composer, run_id, "result.json")
        assert result["status"] == "succeeded", result
        assert result["exit_code"] == 0 and result["error"] is None
        assert result["teardown"]["status"] == "destroyed"
        assert_gone(composer, run_id)
        subprocess.run(["git", "-C", str(composer.runs), "fsck", "--no-progress"], check=True)
