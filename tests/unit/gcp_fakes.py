"""Shared by the GCP tests: the one place they build a ``Spec`` without a job.toml."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

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

PROJECT = "composer-test"
DEFAULT = LimitsSpec().max_duration
REGION = "us-central1"


def gcp_spec(nodes: int = 1, gpus_per_node: int = 0, launcher: str = "ssh",
             max_duration: float | None = DEFAULT, **gcp: Any) -> Spec:
    """A Spec with ``target = "gcp"`` and ``target_config = GcpSpec(**gcp)``;
    ``max_duration`` in seconds (None: no limit; by default the spec's default)."""
    fields: dict[str, Any] = {
        "project": PROJECT, "region": REGION, "machine_types": ("n2-standard-2",),
        "image": "projects/debian-cloud/global/images/family/debian-12",
        "ssh_cidrs": ("203.0.113.0/24",),
    }
    fields.update(gcp)
    for name in ("machine_types", "ssh_cidrs", "zones"):
        fields[name] = tuple(fields.get(name, ()))
    fields["labels"] = tuple(sorted(dict(fields.get("labels", ())).items()))
    return Spec(
        job=JobSection("gcp-test"),
        cluster=ClusterSpec("gcp", nodes, 1, gpus_per_node),
        run=RunSpec(launcher, ("true",)),
        code=CodeSpec(None),
        inputs=(),
        outputs=OutputsSpec(),
        limits=LimitsSpec(max_duration=max_duration, defaulted=max_duration == DEFAULT),
        record=RecordSpec(),
        source=Path("job.toml"),
        base_dir=Path("."),
        text="",
        target_config=GcpSpec(**fields),
    )


def with_gcp(spec: Spec, **gcp: Any) -> Spec:
    return replace(spec, target_config=replace(spec.target_config, **gcp))
