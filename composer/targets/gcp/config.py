"""The ``[gcp]`` section of a job spec, as validated (see ``composer/targets/gcp/spec.py``)."""

from __future__ import annotations

from dataclasses import dataclass

PROVISIONING = ("standard", "spot")
PLACEMENTS = ("compact", "none")
DEFAULT_BOOT_DISK_GB = 100
DEFAULT_SSH_USER = "composer"
#: Machine series whose GPUs come with the machine type (a2-highgpu-1g has one A100,
#: g2-standard-24 two L4s): no ``guest_accelerator`` and no ``[gcp] accelerator``.
#: Other series (N1) take GPUs only as a separate accelerator.
BUNDLED_GPU_SERIES = ("a2", "a3", "a4", "a4x", "g2", "g4")


def series(machine_type: str) -> str:
    """``"a3"`` of ``"a3-highgpu-8g"``."""
    return machine_type.split("-", 1)[0]


def bundles_gpus(machine_type: str) -> bool:
    return series(machine_type) in BUNDLED_GPU_SERIES


@dataclass(frozen=True)
class GcpSpec:
    """``[gcp]``. Values are as written (``project`` filled from ``GOOGLE_CLOUD_PROJECT``
    when the spec has none); what they resolve to (the image behind a family, the zone and
    machine type chosen, the project number) is pinned at preflight."""

    project: str
    region: str
    machine_types: tuple[str, ...]  # ordered, first preferred; at least one
    # "projects/P/global/images/family/F", "projects/P/global/images/NAME", or a bare
    # image NAME in ``project``
    image: str
    ssh_cidrs: tuple[str, ...]  # who may reach port 22, as written
    zones: tuple[str, ...] = ()  # ordered candidates; () = every zone of the region
    # ``[gcp] accelerator.type`` ("nvidia-tesla-t4"), count = cluster.gpus_per_node; None
    # for CPU-only nodes and for series whose GPUs come with the type (BUNDLED_GPU_SERIES)
    accelerator: str | None = None
    ssh_user: str = DEFAULT_SSH_USER
    provisioning: str = "standard"  # PROVISIONING
    placement: str = "none"  # PLACEMENTS; the checker defaults it to "compact" when nodes > 1
    boot_disk_gb: int = DEFAULT_BOOT_DISK_GB
    network: str | None = None  # None: the project's "default" network
    subnetwork: str | None = None  # None: the network's subnetwork in the region (auto mode)
    labels: tuple[tuple[str, str], ...] = ()  # extra labels, sorted by key
