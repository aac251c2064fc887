"""Shared by the GCP preflight, gc and session tests: a spec builder and the Compute
Engine fake served for one test, reached through ``COMPOSER_GCE_ENDPOINT``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from composer.spec import (
    ClusterSpec,
    CodeSpec,
    JobSection,
    LimitsSpec,
    OutputsSpec,
    RecordSpec,
    RunSpec,
    Spec,
)
from composer.targets.gcp.config import GcpSpec
from tests.unit.gce_fake import World, serve
from tests.unit.gce_world import PROJECT, REGION, seed

DEBIAN_FAMILY = "projects/debian-cloud/global/images/family/debian-12"


def gcp_spec(nodes: int = 1, gpus_per_node: int = 0, **gcp: Any) -> Spec:
    """A Spec with ``target = "gcp"`` and ``target_config = GcpSpec(**gcp)``."""
    fields: dict[str, Any] = {"project": PROJECT, "region": REGION,
                              "machine_types": ("e2-standard-4",), "image": DEBIAN_FAMILY,
                              "ssh_cidrs": ("203.0.113.0/24",)}
    fields.update(gcp)
    for name in ("machine_types", "zones", "ssh_cidrs"):
        fields[name] = tuple(fields.get(name, ()))
    return Spec(
        job=JobSection("gcp-test"),
        cluster=ClusterSpec("gcp", nodes, 1, gpus_per_node),
        run=RunSpec("ssh", ("true",)),
        code=CodeSpec(None),
        inputs=(),
        outputs=OutputsSpec(),
        limits=LimitsSpec(),
        record=RecordSpec(),
        source=Path("job.toml"),
        base_dir=Path("."),
        text="",
        target_config=GcpSpec(**fields),
    )


def with_gcp(spec: Spec, **gcp: Any) -> Spec:
    return replace(spec, target_config=replace(spec.target_config, **gcp))


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
