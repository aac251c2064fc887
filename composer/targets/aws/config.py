"""The ``[aws]`` section of a job spec, as validated (see ``composer/targets/aws/spec.py``)."""

from __future__ import annotations

from dataclasses import dataclass

MARKETS = ("on-demand", "spot")
PLACEMENTS = ("cluster", "none")
DEFAULT_ROOT_VOLUME_GB = 100


@dataclass(frozen=True)
class AwsSpec:
    """``[aws]``. Values are as written; what they resolve to (the AMI behind an
    ``ssm:`` image, the zone and subnet chosen, the account) is pinned at preflight."""

    region: str
    instance_types: tuple[str, ...]  # ordered, first preferred; at least one
    image: str  # "ami-<hex>" or "ssm:<parameter path>"
    ssh_cidrs: tuple[str, ...]  # who may reach port 22, as written ("0.0.0.0/0" only if written)
    zones: tuple[str, ...] = ()  # ordered candidates; () = every zone offering the first type
    ssh_user: str | None = None  # None: from the image's family at preflight
    market: str = "on-demand"  # MARKETS
    max_spot_price: str | None = None  # USD per instance-hour, decimal text ("1.25")
    placement: str = "none"  # PLACEMENTS; the checker defaults it to "cluster" when nodes > 1
    efa: bool = False
    root_volume_gb: int = DEFAULT_ROOT_VOLUME_GB
    subnet_id: str | None = None  # None: a default subnet of the region's default VPC
    tags: tuple[tuple[str, str], ...] = ()  # extra tags, sorted by key
