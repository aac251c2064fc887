"""Shared by the GCP preflight, gc and session tests: a spec builder and the Compute
Engine fake served for one test, reached through ``COMPOSER_GCE_ENDPOINT``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from composer.spec import (
    LimitsSpec,
    Spec,
)
from tests.unit import gcp_fakes as fakes
from tests.unit.gce_fake import World, serve
from tests.unit.gce_world import PROJECT, REGION, seed

DEBIAN_FAMILY = "projects/debian-cloud/global/images/family/debian-12"


def gcp_spec(nodes: int = 1, gpus_per_node: int = 0, **gcp: Any) -> Spec:
    """``gcp_fakes.gcp_spec`` in the fake's project, with a type and image it has."""
    fields: dict[str, Any] = {"project": PROJECT, "region": REGION,
                              "machine_types": ("e2-standard-4",), "image": DEBIAN_FAMILY}
    fields.update(gcp)
    return fakes.gcp_spec(nodes, gpus_per_node, max_duration=LimitsSpec().max_duration,
                          **fields)


@dataclass
class Gce:
    """The fake's world and its endpoint, for one test."""

    world: World
    endpoint: str


def isolate_credentials(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """No Application Default Credentials anywhere: no key file, an empty gcloud
    config, and a metadata server on a closed local port (fails at once)."""
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT",
                 "CLOUDSDK_CORE_PROJECT", "COMPOSER_GCE_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(home / "gcloud"))
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")


@pytest.fixture(name="gce")
def gce_fixture(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Gce]:
    """A seeded fake, served; composer's clients pointed at it."""
    isolate_credentials(monkeypatch, tmp_path / "home")
    world = seed()
    with serve(world) as endpoint:
        monkeypatch.setenv("COMPOSER_GCE_ENDPOINT", endpoint)
        yield Gce(world, endpoint)
