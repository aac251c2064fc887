"""The budget gate through ``composer up`` on cloud specs: AWS against a moto server (which
has no Price List API, so the price cannot be read), GCP against the Compute Engine and
Cloud Billing Catalog fakes. A refused run is exit 2 with nothing rendered, created or
recorded; a run the gate lets through records the price in ``lock.json``, the estimate
and the spend in ``result.json``, and ``composer runs`` lists it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Composer
from tests.faults.util import final_json, read_record
from tests.integration.test_aws_moto_server import (
    aws_job,
    endpoint,  # noqa: F401 - fixture
    instances,
)
from tests.integration.test_gcp_fake_api import gcp_job, nothing_made, stand_in_provider
from tests.unit import billing_fake
from tests.unit.aws_fakes import aws_env  # noqa: F401 - fixture
from tests.unit.gce_specs import Gce, gce_fixture  # noqa: F401 - fixture

pytestmark = pytest.mark.integration
boto3 = pytest.importorskip("boto3")
pytest.importorskip("google.cloud.billing_v1")


def with_limits(job: Path, limits: str) -> Path:
    text = job.read_text()
    assert 'max_duration = "10m"' in text
    job.write_text(text.replace('max_duration = "10m"', f'max_duration = "10m"\n{limits}'))
    return job


def nothing_started(composer: Composer) -> bool:
    """No record, no work dir: nothing was rendered."""
    work = composer.home / "work"
    records = (composer.runs / ".git").exists() and composer.git("tag", "--list") != ""
    return not records and (not work.exists() or not any(work.iterdir()))


@pytest.fixture
def catalog(gce: Gce, monkeypatch: pytest.MonkeyPatch) -> Iterator[billing_fake.Catalog]:  # noqa: F811
    served = billing_fake.Catalog()
    with billing_fake.serve(served) as url:
        monkeypatch.setenv("COMPOSER_BILLING_ENDPOINT", url)
        yield served


def test_aws_with_max_cost_and_no_readable_price_is_refused(
        endpoint: str, composer: Composer, tmp_path: Path) -> None:  # noqa: F811
    job = with_limits(aws_job(tmp_path), "max_cost = 50")
    done = composer.run("up", str(job), "--json")
    assert done.returncode == 2, done.stderr
    error = final_json(done.stdout)
    assert error["error"].startswith("limits.max_cost: the run's cost cannot be estimated")
    assert "AWS pricing GetProducts failed" in error["error"]
    assert "docs/targets/aws.md" in error["hint"]
    assert nothing_started(composer)
    assert instances(boto3.Session(region_name="us-east-1").client("ec2")) == []


def test_gcp_over_max_cost_is_refused_before_anything_exists(
        gce: Gce, catalog: billing_fake.Catalog, composer: Composer,  # noqa: F811
        tmp_path: Path) -> None:
    # 2 × e2-standard-4 (4 × 0.02 + 16 × 0.003 = 0.128 USD/h) × 10 minutes = 0.04267 USD
    job = with_limits(gcp_job(tmp_path), "max_cost = 0.04")
    done = composer.run("up", str(job), "--json")
    assert done.returncode == 2, done.stderr
    error = final_json(done.stdout)["error"]
    assert error.startswith("estimated cost 0.04267 USD (2 node(s) × 0.128 USD/h × 10m, "
                            "Cloud Billing Catalog API (standard e2-standard-4, us-central1))")
    assert error.endswith("is more than limits.max_cost = 0.04 USD")
    assert nothing_started(composer) and nothing_made(gce)
    assert not any("insert" in line or "POST" in line for line in gce.world.log)


def test_gcp_within_max_cost_records_price_estimate_and_spend(
        gce: Gce, catalog: billing_fake.Catalog, composer: Composer,  # noqa: F811
        tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    stand_in_provider(mirror)
    job = with_limits(gcp_job(tmp_path), "max_cost = 0.05")
    done = composer.run("up", str(job), "--json", COMPOSER_PROVIDER_MIRROR=str(mirror))
    assert done.returncode == 4, done.stderr  # the stand-in provider fails apply
    assert "composer: cost estimate: 2 node(s) × 0.128 USD/h × 10m = 0.04267 USD" in \
        done.stderr
    run_id = final_json(done.stdout)["run_id"]
    lock = json.loads(read_record(composer, run_id, "lock.json"))
    assert lock["cost"]["hourly_per_node"] == pytest.approx(0.128)
    assert lock["cost"]["as_of"] == "2026-01-05T08:00:00Z"
    assert {p["description"] for p in lock["cost"]["parts"]} == {
        "E2 Instance Core running in Americas", "E2 Instance Ram running in Americas"}
    result = json.loads(read_record(composer, run_id, "result.json"))
    assert result["cost"]["estimate"] == pytest.approx(0.042667, abs=1e-6)
    assert result["cost"]["max_cost"] == 0.05
    assert (result["cost"]["spend"], result["cost"]["node_hours"]) == (0.0, 0.0)
    assert result["cost"]["spend_note"] == "apply did not finish: no node time counted"
    listed = json.loads(composer.run("runs", "--json").stdout)["runs"]
    assert listed[0]["cost"] == {"estimate": pytest.approx(0.042667, abs=1e-6),
                                 "spend": 0.0, "currency": "USD"}
    table = composer.run("runs").stdout.splitlines()
    assert table[0].split()[5] == "COST" and " 0 USD " in table[1]
