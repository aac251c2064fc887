"""The GCP target for real: a 2-node CPU MPI job in a Google Cloud project.

Skipped unless ``COMPOSER_TEST_GCP_PROJECT`` is set (with Application Default
Credentials holding the roles in docs/targets/gcp.md). ``COMPOSER_TEST_GCP_REGION``
picks the region (default us-central1), ``COMPOSER_TEST_GCP_SSH_CIDR`` the address this
machine reaches Google Cloud from (default: asked of checkip.amazonaws.com). It runs
``composer up`` of examples/gcp-mpi's job, checks the record, then that nothing carrying
the run id is left in the project. How to run it: docs/targets/gcp.md, "The real test".
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, Composer
from tests.faults.util import final_json, read_record, record_json, write_job

PROJECT = os.environ.get("COMPOSER_TEST_GCP_PROJECT", "")
REGION = os.environ.get("COMPOSER_TEST_GCP_REGION", "us-central1")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not PROJECT, reason="set COMPOSER_TEST_GCP_PROJECT (and Application "
                                           "Default Credentials) to run the GCP end-to-end "
                                           "test"),
]


def _ssh_cidr() -> str:
    given = os.environ.get("COMPOSER_TEST_GCP_SSH_CIDR")
    if given:
        return given
    with urllib.request.urlopen("https://checkip.amazonaws.com", timeout=10) as answer:
        return answer.read().decode().strip() + "/32"


def _job(tmp_path: Path) -> Path:
    doc = {
        "job": {"name": "composer-e2e-gcp"},
        "cluster": {"target": "gcp", "nodes": 2, "slots_per_node": 1},
        "gcp": {
            "project": PROJECT,
            "region": REGION,
            "machine_types": ["e2-standard-2", "n2-standard-2", "n1-standard-2"],
            "image": "projects/ubuntu-os-cloud/global/images/family/ubuntu-2204-lts",
            "ssh_cidrs": [_ssh_cidr()],
            "placement": "none",
            "labels": {"purpose": "composer-e2e"},
        },
        "run": {"launcher": "mpi", "command": ["python", "hello.py"]},
        "code": {"path": "."},
        "outputs": {"paths": ["hello-*.json"], "from": "all"},
        "limits": {"max_duration": "15m"},
    }
    hello = (ROOT / "examples" / "hello-mpi" / "hello.py").read_text()
    return write_job(tmp_path / "job", doc, {"hello.py": hello})


def _left(run_id: str) -> list[str]:
    """Whatever in the project still carries ``run_id``: instances by label, firewall
    rules and resource policies by name (they take no labels)."""
    from google.cloud import compute_v1

    left: list[str] = []
    instances = compute_v1.InstancesClient().aggregated_list(request={
        "project": PROJECT, "filter": f"labels.composer-run-id={run_id}"})
    for _zone, scoped in instances:
        left += [f"instance {i.name}" for i in scoped.instances]
    prefix = f"composer-{run_id}-"
    for rule in compute_v1.FirewallsClient().list(project=PROJECT):
        if rule.name.startswith(prefix):
            left.append(f"firewall {rule.name}")
    policies = compute_v1.ResourcePoliciesClient().list(project=PROJECT, region=REGION)
    left += [f"resource-policy {p.name}" for p in policies if p.name.startswith(prefix)]
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
        assert resolved["image_self_link"].startswith("https://www.googleapis.com/compute/")
        assert resolved["project_number"]
        assert "registry.terraform.io/hashicorp/google" in lock["providers"]
        read_record(composer, run_id, "infra/.terraform.lock.hcl")
        manifest = json.loads(read_record(composer, run_id, "manifest.json"))
        names = sorted(f["path"] for f in manifest["files"])
        assert len([n for n in names if n.endswith(".json") and "hello-rank-" in n]) == 2
        assert record_json(composer, run_id, "result.json")["teardown"]["status"] == "destroyed"
    finally:
        assert _left(run_id) == [], f"resources of run {run_id} left in project {PROJECT}"
