"""The AWS target for real: a 2-node CPU MPI job in an AWS account.

Skipped unless ``COMPOSER_TEST_AWS_REGION`` is set (with credentials for the policy in
docs/targets/aws.md). ``COMPOSER_TEST_AWS_SSH_CIDR`` names the address this machine
reaches AWS from (default: asked of checkip.amazonaws.com). It runs ``composer up`` of
examples/aws-mpi's job in that region, checks the record, then that nothing tagged with
the run id is left. How to run it: docs/targets/aws.md, "The real test".
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, Composer
from tests.faults.util import final_json, read_record, record_json, write_job

REGION = os.environ.get("COMPOSER_TEST_AWS_REGION", "")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not REGION, reason="set COMPOSER_TEST_AWS_REGION (and AWS credentials) "
                                          "to run the AWS end-to-end test"),
]


def _ssh_cidr() -> str:
    given = os.environ.get("COMPOSER_TEST_AWS_SSH_CIDR")
    if given:
        return given
    with urllib.request.urlopen("https://checkip.amazonaws.com", timeout=10) as answer:
        return answer.read().decode().strip() + "/32"


def _job(tmp_path: Path) -> Path:
    doc = {
        "job": {"name": "composer-e2e-aws"},
        "cluster": {"target": "aws", "nodes": 2, "slots_per_node": 1},
        "aws": {
            "region": REGION,
            "instance_types": ["c6i.large", "c5.large", "m6i.large"],
            "image": "ssm:/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/"
                     "hvm/ebs-gp2/ami-id",
            "ssh_cidrs": [_ssh_cidr()],
            "tags": {"purpose": "composer-e2e"},
        },
        "run": {"launcher": "mpi", "command": ["python", "hello.py"]},
        "code": {"path": "."},
        "outputs": {"paths": ["hello-*.json"], "from": "all"},
        "limits": {"max_duration": "15m"},
    }
    hello = (ROOT / "examples" / "hello-mpi" / "hello.py").read_text()
    return write_job(tmp_path / "job", doc, {"hello.py": hello})


def _tagged(run_id: str) -> list[str]:
    import boto3

    session = boto3.Session(region_name=REGION)
    ec2 = session.client("ec2")
    left: list[str] = []
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "tag:composer:run-id", "Values": [run_id]}])
    for page in pages:
        for reservation in page["Reservations"]:
            left += [i["InstanceId"] for i in reservation["Instances"]
                     if i["State"]["Name"] != "terminated"]
    groups = ec2.describe_security_groups(
        Filters=[{"Name": "tag:composer:run-id", "Values": [run_id]}])["SecurityGroups"]
    left += [g["GroupId"] for g in groups]
    placement = ec2.describe_placement_groups(
        Filters=[{"Name": "tag:composer:run-id", "Values": [run_id]}])["PlacementGroups"]
    left += [p["GroupName"] for p in placement if p.get("State") != "deleted"]
    return left


def test_two_node_mpi_job_runs_is_recorded_and_leaves_nothing(composer: Composer,
                                                              tmp_path: Path) -> None:
    done = composer.run("up", str(_job(tmp_path)), "--json", timeout=3600)
    outcome = final_json(done.stdout)
    run_id = outcome["run_id"]
    try:
        assert done.returncode == 0, done.stderr
        assert outcome["status"] == "succeeded"
        lock = record_json(composer, run_id, "lock.json")
        resolved = lock["target"]["resolved"]
        assert resolved["ami_id"].startswith("ami-") and resolved["account_id"]
        assert "registry.terraform.io/hashicorp/aws" in lock["providers"]
        read_record(composer, run_id, "infra/.terraform.lock.hcl")
        manifest = json.loads(read_record(composer, run_id, "manifest.json"))
        names = sorted(f["path"] for f in manifest["files"])
        assert len([n for n in names if n.endswith(".json") and "hello-rank-" in n]) == 2
        assert record_json(composer, run_id, "result.json")["teardown"]["status"] == "destroyed"
    finally:
        assert _tagged(run_id) == [], f"resources of run {run_id} left in {REGION}"
