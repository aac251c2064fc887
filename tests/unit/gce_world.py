"""What the Compute Engine fake (``gce_fake``) holds at the start of a test: one project
with two regions, machine types with and without bundled GPUs, accelerator types,
public images, networks and quotas; helpers add a run's instances, firewall rules and
resource policies. Every resource has the API reference's field names."""

from __future__ import annotations

from typing import Any

from tests.unit.gce_fake import World

PROJECT = "demo-project"
NUMBER = "123456789012"
REGION = "us-central1"
ZONES = {"us-central1": ("us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"),
         "europe-west4": ("europe-west4-a", "europe-west4-b")}
GIB = 1024
#: machine type -> (vCPUs, memory MB, bundled (accelerator type, count) or None, zones)
MACHINE_TYPES: dict[str, tuple[int, int, tuple[str, int] | None, tuple[str, ...]]] = {
    "e2-standard-4": (4, 16 * GIB, None, ZONES["us-central1"] + ZONES["europe-west4"]),
    "n1-standard-8": (8, 30 * GIB, None, ZONES["us-central1"]),
    "n2-standard-16": (16, 64 * GIB, None, ZONES["us-central1"]),
    "g2-standard-24": (24, 96 * GIB, ("nvidia-l4", 2), ("us-central1-a", "us-central1-b")),
    "a2-highgpu-1g": (12, 85 * GIB, ("nvidia-tesla-a100", 1), ("us-central1-c",)),
    "a3-highgpu-8g": (208, 1872 * GIB, ("nvidia-h100-80gb", 8),
                      ("us-central1-a", "us-central1-c")),
}  # fmt: skip
#: accelerator type -> (description, maximum cards per instance, zones)
ACCELERATOR_TYPES: dict[str, tuple[str, int, tuple[str, ...]]] = {
    "nvidia-tesla-t4": ("NVIDIA T4", 4, ("us-central1-a", "us-central1-b", "us-central1-f")),
    "nvidia-l4": ("NVIDIA L4", 8, ("us-central1-a", "us-central1-b")),
    "nvidia-tesla-a100": ("NVIDIA A100 40GB", 16, ("us-central1-c",)),
    "nvidia-h100-80gb": ("NVIDIA H100 80GB", 8, ("us-central1-a", "us-central1-c")),
    "nvidia-tesla-v100": ("NVIDIA V100", 8, ("us-central1-b",)),
}
QUOTAS = {  # metric -> (limit, usage)
    "CPUS": (72.0, 8.0), "PREEMPTIBLE_CPUS": (0.0, 0.0), "N2_CPUS": (24.0, 0.0),
    "A2_CPUS": (48.0, 0.0), "A3_CPUS": (416.0, 0.0),
    "INSTANCES": (24.0, 2.0), "DISKS_TOTAL_GB": (4096.0, 100.0),
    "NVIDIA_T4_GPUS": (4.0, 0.0), "NVIDIA_L4_GPUS": (8.0, 0.0),
    "PREEMPTIBLE_NVIDIA_L4_GPUS": (16.0, 0.0), "NVIDIA_A100_GPUS": (16.0, 0.0),
    "NVIDIA_H100_GPUS": (16.0, 0.0),
}
DEBIAN_12 = "debian-12-bookworm-v20240213"


def seed(project: str = PROJECT) -> World:
    world = World(project=project, number=NUMBER)
    for region, zones in ZONES.items():
        world.regions[region] = {
            "kind": "compute#region", "id": world.new_id(), "name": region,
            "description": region, "status": "UP", "selfLink": world.link(f"regions/{region}"),
            "zones": [world.link(f"zones/{z}") for z in zones],
            "quotas": [{"metric": m, "limit": limit, "usage": usage}
                       for m, (limit, usage) in QUOTAS.items()]}
        for zone in zones:
            world.zones[zone] = {
                "kind": "compute#zone", "id": world.new_id(), "name": zone,
                "description": zone, "status": "UP", "region": world.link(f"regions/{region}"),
                "selfLink": world.link(f"zones/{zone}"), "availableCpuPlatforms": []}
    for name, (cpus, memory, bundled, zones) in MACHINE_TYPES.items():
        for zone in zones:
            machine: dict[str, Any] = {
                "kind": "compute#machineType", "id": world.new_id(), "name": name,
                "description": f"{cpus} vCPUs, {memory // GIB} GB RAM", "guestCpus": cpus,
                "memoryMb": memory, "maximumPersistentDisks": 128,
                "maximumPersistentDisksSizeGb": "263168", "zone": zone,
                "isSharedCpu": False, "architecture": "X86_64",
                "selfLink": world.link(f"zones/{zone}/machineTypes/{name}")}
            if bundled:
                machine["accelerators"] = [{"guestAcceleratorType": bundled[0],
                                            "guestAcceleratorCount": bundled[1]}]
            world.machine_types.setdefault(zone, {})[name] = machine
    for name, (description, most, zones) in ACCELERATOR_TYPES.items():
        for zone in zones:
            world.accelerator_types.setdefault(zone, {})[name] = {
                "kind": "compute#acceleratorType", "id": world.new_id(), "name": name,
                "description": description, "zone": world.link(f"zones/{zone}"),
                "maximumCardsPerInstance": most,
                "selfLink": world.link(f"zones/{zone}/acceleratorTypes/{name}")}
    _images(world)
    _networks(world)
    return world


def image(world: World, project: str, name: str, family: str | None, created: str,
          state: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "kind": "compute#image", "id": world.new_id(), "name": name,
        "creationTimestamp": created, "status": "READY", "architecture": "X86_64",
        "diskSizeGb": "10", "sourceType": "RAW",
        "selfLink": world.link(f"global/images/{name}", project)}
    if family:
        found["family"] = family
    if state:
        found["deprecated"] = {"state": state}
    world.images.setdefault(project, {})[name] = found
    return found


def _images(world: World) -> None:
    image(world, "debian-cloud", "debian-12-bookworm-v20240110", "debian-12",
          "2024-01-10T00:00:00.000-08:00", "DEPRECATED")
    world.images["debian-cloud"]["debian-12-bookworm-v20240110"]["deprecated"]["replacement"] \
        = world.link(f"global/images/{DEBIAN_12}", "debian-cloud")
    image(world, "debian-cloud", DEBIAN_12, "debian-12", "2024-02-13T00:00:00.000-08:00")
    image(world, "debian-cloud", "debian-9-stretch-v20200309", "debian-9",
          "2020-03-09T00:00:00.000-08:00", "OBSOLETE")
    image(world, world.project, "my-image", None, "2025-01-01T00:00:00.000-08:00")


def network(world: World, name: str, auto: bool,
            subnets: dict[str, str]) -> dict[str, Any]:
    """A network and its subnetworks (region -> subnetwork name)."""
    link = world.link(f"global/networks/{name}")
    found = {"kind": "compute#network", "id": world.new_id(), "name": name,
             "selfLink": link, "autoCreateSubnetworks": auto, "subnetworks": [],
             "routingConfig": {"routingMode": "REGIONAL"}, "mtu": 1460}
    for region, subnet in subnets.items():
        sub_link = world.link(f"regions/{region}/subnetworks/{subnet}")
        world.subnetworks.setdefault(region, {})[subnet] = {
            "kind": "compute#subnetwork", "id": world.new_id(), "name": subnet,
            "network": link, "region": world.link(f"regions/{region}"),
            "ipCidrRange": "10.128.0.0/20", "gatewayAddress": "10.128.0.1",
            "selfLink": sub_link}
        found["subnetworks"].append(sub_link)
    world.networks[name] = found
    return found


def _networks(world: World) -> None:
    network(world, "default", True, {"us-central1": "default", "europe-west4": "default"})
    network(world, "lab", False, {"europe-west4": "lab-eu"})  # none in us-central1
    network(world, "hpc", False, {"us-central1": "hpc-central"})


# -- a run's resources ------------------------------------------------------------------


def labels(run_id: str | None, expires: str = "none", job: str = "demo") -> dict[str, str]:
    if run_id is None:
        return {"team": "other"}
    return {"composer-run-id": run_id, "composer-job": job, "composer-expires-at": expires}


def facts(run_id: str, expires: str = "none", job: str = "demo") -> str:
    return f"composer-run-id={run_id} composer-job={job} composer-expires-at={expires}"


def add_instance(world: World, zone: str, name: str, tags: dict[str, str],
                 status: str = "RUNNING", policies: tuple[str, ...] = ()) -> dict[str, Any]:
    found = {"kind": "compute#instance", "id": world.new_id(), "name": name,
             "zone": world.link(f"zones/{zone}"), "status": status, "labels": dict(tags),
             "machineType": world.link(f"zones/{zone}/machineTypes/e2-standard-4"),
             "creationTimestamp": "2030-01-02T03:00:00.000-08:00",
             "resourcePolicies": list(policies),
             "selfLink": world.link(f"zones/{zone}/instances/{name}")}
    world.instances.setdefault(zone, {})[name] = found
    return found


def add_firewall(world: World, name: str, description: str = "") -> dict[str, Any]:
    found = {"kind": "compute#firewall", "id": world.new_id(), "name": name,
             "description": description, "network": world.link("global/networks/default"),
             "priority": 1000, "direction": "INGRESS", "sourceRanges": ["10.0.0.0/8"],
             "allowed": [{"IPProtocol": "tcp", "ports": ["22"]}], "disabled": False,
             "selfLink": world.link(f"global/firewalls/{name}")}
    world.firewalls[name] = found
    return found


def add_policy(world: World, region: str, name: str, description: str = "") -> dict[str, Any]:
    found = {"kind": "compute#resourcePolicy", "id": world.new_id(), "name": name,
             "description": description, "region": world.link(f"regions/{region}"),
             "status": "READY", "groupPlacementPolicy": {"collocation": "COLLOCATED"},
             "selfLink": world.link(f"regions/{region}/resourcePolicies/{name}")}
    world.resource_policies.setdefault(region, {})[name] = found
    return found
