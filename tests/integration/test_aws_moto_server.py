"""``composer gc`` for AWS against a real ``moto_server`` process, reached the way a
user would point composer at one: ``AWS_ENDPOINT_URL`` in the environment."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from composer.state import RunState
from composer.targets.aws import gc
from composer.targets.aws.preflight import preflight
from tests.conftest import Composer
from tests.faults.util import final_json, read_record, write_job
from tests.unit.aws_fakes import REGION, aws_env, aws_spec  # noqa: F401 - fixture

pytestmark = pytest.mark.integration
boto3 = pytest.importorskip("boto3")

MOTO_SERVER = Path(sys.executable).parent / "moto_server"
AMI = "ami-760aaa0f"
DEAD_PID = 2 ** 22 + 7  # above Linux's largest pid: no such process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def endpoint(aws_env: None, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
             tmp_path: Path) -> Iterator[str]:
    if not MOTO_SERVER.exists():
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "moto.log").open("w")
    server = subprocess.Popen([str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log, stderr=subprocess.STDOUT,
                              env={"PATH": "/usr/bin:/bin",
                                   "MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION": "true"})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, \
                    (tmp_path / "moto.log").read_text()
                time.sleep(0.2)
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def launch(ec2: Any, run_id: str | None) -> str:
    tag_list = [{"Key": gc.RUN_TAG, "Value": run_id}, {"Key": gc.EXPIRES_TAG, "Value": "none"}]
    spec = [{"ResourceType": "instance", "Tags": tag_list}] if run_id else []
    answer = ec2.run_instances(ImageId=AMI, InstanceType="t3.micro", MinCount=1, MaxCount=1,
                               TagSpecifications=spec)
    return str(answer["Instances"][0]["InstanceId"])


def test_gc_through_aws_endpoint_url(endpoint: str) -> None:
    session = boto3.Session(region_name=REGION)  # the endpoint comes from the environment
    ec2 = session.client("ec2")
    assert ec2.meta.endpoint_url == endpoint
    dead, live, untagged = launch(ec2, "dead1"), launch(ec2, "live1"), launch(ec2, None)
    group = ec2.create_security_group(
        GroupName="composer-dead1", Description="composer",
        TagSpecifications=[{"ResourceType": "security-group",
                            "Tags": [{"Key": gc.RUN_TAG, "Value": "dead1"}]}])["GroupId"]

    warnings: list[str] = []
    found = gc.scan(session, REGION, {"live1"}, datetime.now(UTC), warnings)
    assert [(i["kind"], i["id"]) for i in found] == [("instance", dead), ("security-group", group)]
    # moto implements no placement groups: gc says so and goes on.
    assert len(warnings) == 1 and warnings[0].startswith("placement groups in us-east-1")

    removed = gc.remove(session, found, timeout=60)
    assert all(item["removed"] for item in removed), removed
    states = {i["InstanceId"]: i["State"]["Name"]
              for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
    assert states == {dead: "terminated", live: "running", untagged: "running"}
    assert group not in {g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    assert gc.leftovers_of(session, REGION, "dead1") == []


def test_preflight_through_aws_endpoint_url(endpoint: str) -> None:
    pins = preflight(aws_spec(nodes=2))  # session made from the environment
    assert (pins["account_id"], pins["ami_id"], pins["login_user"]) == \
        ("123456789012", AMI, "ec2-user")
    # moto's service-quotas knows no ec2 quota: a warning, not a failure.
    assert pins["warnings"][0].startswith("could not read the vCPU quota L-1216C47A")


def launch_expiring(ec2: Any, run_id: str, expires: str) -> str:
    tag_list = [{"Key": gc.RUN_TAG, "Value": run_id}, {"Key": gc.EXPIRES_TAG, "Value": expires}]
    answer = ec2.run_instances(ImageId=AMI, InstanceType="t3.micro", MinCount=1, MaxCount=1,
                               TagSpecifications=[{"ResourceType": "instance", "Tags": tag_list}])
    return str(answer["Instances"][0]["InstanceId"])


def run_here(composer: Composer, run_id: str, keep: bool, pid: int) -> None:
    """A work dir of this machine's, as composer up leaves it."""
    RunState(run_id=run_id, job="j", engine="embedded", runs_repo=str(composer.runs), pid=pid,
             started_at="2026-01-01T00:00:00Z", stage="run", applied=True, committed=True,
             keep=keep, target="aws").save(_work(composer, run_id))


def _work(composer: Composer, run_id: str) -> Path:
    path = composer.home / "work" / run_id
    path.mkdir(parents=True)
    return path


def test_composer_gc_target_aws_removes_only_what_is_over(endpoint: str,
                                                          composer: Composer) -> None:
    ec2 = boto3.Session(region_name=REGION).client("ec2")
    ids = {
        "died-here": launch(ec2, "run-died"),          # this machine's run, process gone
        "kept": launch(ec2, "run-kept"),               # composer up --keep, process gone
        "running": launch(ec2, "run-live"),            # composer still running here
        "elsewhere": launch_expiring(ec2, "run-ci", "2999-01-01T00:00:00Z"),  # CI's, live
        "expired": launch_expiring(ec2, "run-old", "2001-01-01T00:00:00Z"),   # anyone's
    }
    untagged = launch(ec2, None)
    run_here(composer, "run-died", keep=False, pid=DEAD_PID)
    run_here(composer, "run-kept", keep=True, pid=DEAD_PID)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        run_here(composer, "run-live", keep=False, pid=sleeper.pid)
        listed = composer.run("gc", "--target", "aws", "--region", REGION, "--json")
        assert listed.returncode == 0, listed.stderr
        actions = {r["run_id"]: r["action"] for r in final_json(listed.stdout)["resources"]}
        assert actions == {
            "run-died": "remove", "run-old": "remove",
            "run-kept": "skip (kept; --include-kept removes it)",
            "run-ci": "skip (not started here, not expired; --include-others removes it)",
        }, actions

        text = composer.run("gc", "--target", "aws", "--region", REGION)
        assert f"instance {ids['died-here']}  run=run-died" in text.stdout
        assert f"composer gc --target aws --region {REGION} --yes" in text.stdout

        removed = composer.run("gc", "--target", "aws", "--region", REGION, "--yes", "--json")
        assert removed.returncode == 0, removed.stderr
        outcomes = {r["run_id"]: r.get("outcome")
                    for r in final_json(removed.stdout)["resources"]}
        assert outcomes == {"run-died": "removed", "run-old": "removed", "run-kept": None,
                            "run-ci": None}
        states = {i["InstanceId"]: i["State"]["Name"]
                  for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
        assert states == {ids["died-here"]: "terminated", ids["expired"]: "terminated",
                          ids["kept"]: "running", ids["running"]: "running",
                          ids["elsewhere"]: "running", untagged: "running"}

        both = composer.run("gc", "--target", "aws", "--region", REGION, "--yes",
                            "--include-kept", "--include-others", "--json")
        assert both.returncode == 0, both.stderr
        assert sorted(r["run_id"] for r in final_json(both.stdout)["resources"]
                      if r.get("outcome") == "removed") == ["run-ci", "run-kept"]
        assert {i["InstanceId"] for r in ec2.describe_instances(Filters=[
            {"Name": "instance-state-name", "Values": ["running"]}])["Reservations"]
            for i in r["Instances"]} == {ids["running"], untagged}
    finally:
        sleeper.kill()
        sleeper.wait()


def test_composer_gc_target_aws_region_comes_from_the_flag_or_aws_region(
        endpoint: str, composer: Composer) -> None:
    assert composer.run("gc", "--target", "aws", "--json", AWS_REGION=REGION).returncode == 0
    typo = composer.run("gc", "--target", "aws", "--region", "us-eats-1", "--json")
    assert typo.returncode == 2
    assert final_json(typo.stdout)["error"] == \
        "--region: unknown region 'us-eats-1'; did you mean 'us-east-1'?"


def test_composer_gc_target_aws_needs_a_region(composer: Composer,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    done = composer.run("gc", "--target", "aws", "--json")
    assert done.returncode == 2
    answer = final_json(done.stdout)
    assert "--region" in answer["error"] and "AWS_REGION" in answer["hint"]


@pytest.mark.parametrize(("args", "named"), [
    (["--target", "aws", "--region", REGION, "--runs-repo", "/tmp/x"], "--runs-repo"),
    (["--region", REGION], "--region"),
    (["--include-others"], "--include-others"),
])
def test_gc_flags_that_do_not_apply_are_refused(composer: Composer, args: list[str],
                                                named: str) -> None:
    done = composer.run("gc", *args, "--json")
    assert done.returncode == 2, done.stdout
    assert final_json(done.stdout)["error"].startswith(named)


# -- composer up of an aws job, as far as this machine can take it ---------------------

PROVIDER = "registry.terraform.io/hashicorp/aws"


def aws_job(tmp_path: Path, gpus_per_node: int = 0) -> Path:
    doc = {
        "job": {"name": "aws-offline"},
        "cluster": {"target": "aws", "nodes": 2, "gpus_per_node": gpus_per_node},
        "aws": {"region": REGION, "instance_types": ["t3.micro"], "image": AMI,
                "ssh_cidrs": ["203.0.113.0/24"]},
        "run": {"launcher": "ssh", "command": "true"},
        "limits": {"max_duration": "10m"},
    }
    return write_job(tmp_path / "job", doc)


def stand_in_provider(mirror: Path) -> None:
    """A package where the AWS provider would be: init installs and hashes it; it never
    runs as a provider, so apply fails at its start, before anything is created."""
    plugin = mirror / PROVIDER / "6.62.0" / "linux_amd64" / "terraform-provider-aws_v6.62.0"
    plugin.parent.mkdir(parents=True)
    plugin.write_text("#!/bin/sh\necho 'not a provider' >&2\nexit 1\n")
    plugin.chmod(0o755)


def no_records(composer: Composer) -> bool:
    return not (composer.runs / ".git").exists() or composer.git("tag", "--list") == ""


def instances(ec2: Any) -> list[str]:
    return [i["InstanceId"] for r in ec2.describe_instances()["Reservations"]
            for i in r["Instances"]]


def test_up_without_credentials_names_them_and_creates_nothing(
        aws_env: None, composer: Composer, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # never asked
    done = composer.run("up", str(aws_job(tmp_path)), "--json")
    assert done.returncode == 2, done.stderr
    error = final_json(done.stdout)["error"] + done.stderr
    assert "AWS_PROFILE" in error and "AWS_ACCESS_KEY_ID" in error
    assert not (composer.home / "work").exists() or not any((composer.home / "work").iterdir())
    assert no_records(composer)


def test_up_refuses_a_gpu_count_the_type_lacks_before_anything_exists(
        endpoint: str, composer: Composer, tmp_path: Path) -> None:
    ec2 = boto3.Session(region_name=REGION).client("ec2")
    done = composer.run("up", str(aws_job(tmp_path, gpus_per_node=4)), "--json")
    assert done.returncode == 2, done.stderr
    assert "aws.instance_types[0]: t3.micro has 0 GPUs; gpus_per_node = 4" in \
        final_json(done.stdout)["error"]
    assert instances(ec2) == []
    assert no_records(composer)


def test_up_pins_preflight_and_provider_then_fails_at_apply_and_keeps_the_record(
        endpoint: str, composer: Composer, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    stand_in_provider(mirror)
    ec2 = boto3.Session(region_name=REGION).client("ec2")
    done = composer.run("up", str(aws_job(tmp_path)), "--json",
                        COMPOSER_PROVIDER_MIRROR=str(mirror))
    outcome = final_json(done.stdout)
    assert done.returncode == 4, done.stderr
    assert (outcome["status"], outcome["stage"]) == ("failed", "apply"), outcome
    run_id = outcome["run_id"]

    lock = json.loads(read_record(composer, run_id, "lock.json"))
    resolved = lock["target"]["resolved"]
    assert (resolved["account_id"], resolved["ami_id"], resolved["login_user"],
            resolved["instance_type"]) == ("123456789012", AMI, "ec2-user", "t3.micro")
    assert resolved["zone"].startswith(REGION) and resolved["subnet"].startswith("subnet-")
    assert lock["providers"][PROVIDER]["version"] == "6.62.0"
    kept = read_record(composer, run_id, "infra/.terraform.lock.hcl")
    assert PROVIDER in kept and lock["providers"][PROVIDER]["hashes"][0] in kept
    result = json.loads(read_record(composer, run_id, "result.json"))
    assert result["teardown"]["status"] == "destroyed"
    assert "quota" in read_record(composer, run_id, "logs/composer.log")  # the warning
    # Nothing was created, and nothing of the run's is left here.
    assert instances(ec2) == []
    assert not (composer.home / "work" / run_id).exists()
    for name in ("runtime.tfvars.json", "terraform.tfstate"):
        assert name not in composer.git("ls-tree", "-r", "--name-only", f"run/{run_id}")


def test_up_refuses_a_local_image_the_nodes_could_not_pull(
        endpoint: str, composer: Composer, tmp_path: Path, train_image: str) -> None:
    job = aws_job(tmp_path)
    text = job.read_text() + f'\n[container]\nruntime = "podman"\nimage = "{train_image}"\n'
    job.write_text(text)
    ec2 = boto3.Session(region_name=REGION).client("ec2")
    done = composer.run("up", str(job), "--json")
    assert done.returncode == 2, done.stderr
    assert final_json(done.stdout)["error"].startswith(
        f"container.image: {train_image} is a local name")
    assert instances(ec2) == []
    assert no_records(composer)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_preflight_answers_and_leaves_nothing(
        aws_env: None, composer: Composer, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch, signum: int, code: int) -> None:
    with socket.socket() as silent:  # accepts, never answers: preflight waits on it
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        silent.settimeout(60)
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
        proc = subprocess.Popen(composer.argv("up", str(aws_job(tmp_path)), "--json"),
                                env=composer.env(), cwd=composer.cwd, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        conn, _ = silent.accept()  # composer is in preflight, asking
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
        conn.close()
    assert proc.returncode == code, err
    answer = final_json(out)
    assert (answer["error"], answer["exit_code"], answer["run_id"]) == \
        (f"interrupted by {signal.Signals(signum).name}", code, None)
    assert not (composer.home / "work").exists() or not any((composer.home / "work").iterdir())
    assert no_records(composer)
