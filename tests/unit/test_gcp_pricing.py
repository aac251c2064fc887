"""GCP prices for the estimate: google-cloud-billing's client against the local fake of
the Cloud Billing Catalog API (``COMPOSER_BILLING_ENDPOINT``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from composer.errors import PreflightError
from composer.targets.gcp import pricing
from tests.unit import billing_fake as fake
from tests.unit.gce_specs import gcp_spec, isolate_credentials

pytest.importorskip("google.cloud.billing_v1")

REGION = fake.REGION


@pytest.fixture
def catalog(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[fake.Catalog]:
    isolate_credentials(monkeypatch, tmp_path / "home")
    served = fake.Catalog()
    with fake.serve(served) as endpoint:
        monkeypatch.setenv(pricing.ENDPOINT_ENV, endpoint)
        yield served


def pins(machine_type: str, vcpus: int, memory_gib: float, gpus: int = 0,
         model: str | None = None) -> dict[str, Any]:
    return {"machine_type": machine_type, "region": REGION, "zone": f"{REGION}-a",
            "types": {machine_type: {"vcpus": vcpus, "memory_mb": int(memory_gib * 1024),
                                     "gpus": gpus, "gpu_model": model,
                                     "bundled": machine_type.startswith("g2")}}}


def test_an_e2_machine_is_its_cores_and_ram(catalog: fake.Catalog) -> None:
    found = pricing.price(gcp_spec(), pins("e2-standard-4", 4, 16))
    assert found.error is None, found.error
    assert found.hourly == pytest.approx(4 * 0.02 + 16 * 0.003)
    assert found.as_of == "2026-01-05T08:00:00Z"
    assert [p["description"] for p in found.parts] == [
        "E2 Instance Core running in Americas", "E2 Instance Ram running in Americas"]
    assert "standard e2-standard-4" in found.source and REGION in found.source
    assert any("/v1/services/6F81-5844-456A/skus" in line and "currencyCode=USD" in line
               for line in catalog.log)


def test_spot_takes_the_preemptible_skus(catalog: fake.Catalog) -> None:
    spec = gcp_spec(provisioning="spot", machine_types=("g2-standard-24",))
    found = pricing.price(spec, pins("g2-standard-24", 24, 96, 2, "nvidia-l4"))
    assert found.hourly is None  # the fake has no spot G2 core SKU: said, not guessed
    assert found.error is not None
    assert "no Preemptible SKU for G2 core in us-central1" in found.error
    spot = pricing.price(gcp_spec(provisioning="spot"), pins("e2-standard-4", 4, 16))
    assert spot.hourly == pytest.approx(4 * 0.007 + 16 * 0.001)


def test_a_bundled_gpu_type_adds_its_gpus(catalog: fake.Catalog) -> None:
    found = pricing.price(gcp_spec(machine_types=("g2-standard-24",)),
                          pins("g2-standard-24", 24, 96, 2, "nvidia-l4"))
    assert found.hourly == pytest.approx(24 * 0.025 + 96 * 0.0029 + 2 * 0.56)
    assert found.parts[-1]["part"] == "gpu" and found.parts[-1]["quantity"] == 2


def test_an_n1_with_attached_t4s(catalog: fake.Catalog) -> None:
    found = pricing.price(gcp_spec(machine_types=("n1-standard-8",)),
                          pins("n1-standard-8", 8, 30, 4, "nvidia-tesla-t4"))
    assert found.hourly == pytest.approx(8 * 0.03 + 30 * 0.004 + 4 * 0.35)


def test_a_gpu_model_is_matched_by_its_words_not_a_prefix(catalog: fake.Catalog) -> None:
    # the catalog has "Nvidia Tesla A100 80GB GPU" only: nvidia-tesla-a100 (40GB) is not it
    found = pricing.price(gcp_spec(), pins("e2-standard-4", 4, 16, 1, "nvidia-tesla-a100"))
    assert found.hourly is None and "nvidia-tesla-a100 GPU" in str(found.error)
    big = pricing.price(gcp_spec(), pins("e2-standard-4", 4, 16, 1, "nvidia-a100-80gb"))
    assert big.parts[-1]["description"].startswith("Nvidia Tesla A100 80GB GPU")


def test_every_page_is_read(catalog: fake.Catalog) -> None:
    catalog.page_limit = 3
    found = pricing.price(gcp_spec(machine_types=("n1-standard-8",)),
                          pins("n1-standard-8", 8, 30))
    assert found.hourly == pytest.approx(8 * 0.03 + 30 * 0.004)
    pages = [line for line in catalog.log if "/skus" in line]
    assert len(pages) == -(-len(catalog.skus[fake.COMPUTE]) // 3)


def test_an_api_error_is_said_with_its_message(catalog: fake.Catalog) -> None:
    catalog.failing = (403, "Cloud Billing API has not been used in project 123 before or "
                            "it is disabled")
    found = pricing.price(gcp_spec(), pins("e2-standard-4", 4, 16))
    assert found.hourly is None
    assert found.error is not None
    assert found.error.startswith("Cloud Billing Catalog API skus.list failed: 403")
    assert "it is disabled" in found.error


def test_without_credentials_the_price_is_unreadable(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_credentials(monkeypatch, tmp_path / "home")
    monkeypatch.delenv(pricing.ENDPOINT_ENV, raising=False)
    found = pricing.price(gcp_spec(), pins("e2-standard-4", 4, 16))
    assert found.hourly is None and "no Google Cloud credentials" in str(found.error)


def test_an_endpoint_without_a_scheme_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pricing.ENDPOINT_ENV, "127.0.0.1:9")
    with pytest.raises(PreflightError, match="COMPOSER_BILLING_ENDPOINT"):
        pricing.endpoint()


@pytest.mark.parametrize(("description", "kind", "model", "matches"), [
    ("E2 Instance Core running in Americas", "core", "e2", True),
    ("Spot Preemptible E2 Instance Ram running in Salt Lake City", "ram", "e2", True),
    ("N1 Predefined Instance Core running in Americas", "core", "n1", True),
    ("N2D AMD Instance Core running in Americas", "core", "n2d", True),
    ("N2D AMD Instance Core running in Americas", "core", "n2", False),
    ("Compute optimized Core running in Montreal", "core", "c2", True),
    ("E2 Custom Instance Core running in Americas", "core", "e2", False),
    ("E2 Instance Core running in Americas", "ram", "e2", False),
    ("Nvidia L4 GPU attached to Spot Preemptible VMs running in Hong Kong", "gpu",
     "nvidia-l4", True),
    ("Nvidia Tesla T4 GPU running in Americas", "gpu", "nvidia-tesla-t4", True),
    ("Nvidia Tesla A100 80GB GPU running in Americas", "gpu", "nvidia-tesla-a100", False),
    ("Nvidia H100 80GB GPU running in Americas", "gpu", "nvidia-h100-80gb", True),
])
def test_sku_descriptions(description: str, kind: str, model: str, matches: bool) -> None:
    assert pricing._describes(description, kind, model) is matches


def test_pins_without_the_machine_types_facts_are_no_price() -> None:
    found = pricing.price(gcp_spec(), {"machine_type": "e2-standard-4", "region": REGION},
                          skus=fake.compute_catalog())
    assert found.hourly is None
    assert found.error == "preflight found no vCPUs and memory for e2-standard-4"
