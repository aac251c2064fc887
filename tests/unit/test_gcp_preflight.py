"""GCP preflight against the Compute Engine fake (``gce_fake``), through the
google-cloud-compute clients composer makes (``COMPOSER_GCE_ENDPOINT``)."""

from __future__ import annotations

from typing import Any

import pytest

from composer.errors import ExitCode, PreflightError
from composer.targets.gcp.preflight import GcpPreflightError, preflight
from tests.unit import gce_world as w
from tests.unit.gce_fake import BASE
from tests.unit.gce_specs import Gce, gce_fixture, gcp_spec  # noqa: F401 - fixture

pytest.importorskip("google.cloud.compute_v1")

PROJECT_LINK = f"{BASE}projects/{w.PROJECT}"
DEBIAN_12 = f"{BASE}projects/debian-cloud/global/images/{w.DEBIAN_12}"


def problems(spec: Any) -> list[str]:
    with pytest.raises(GcpPreflightError) as caught:
        preflight(spec)
    assert caught.value.exit_code == ExitCode.INVALID_INPUT
    return [str(p) for p in caught.value.problems]


def refused(spec: Any) -> PreflightError:
    with pytest.raises(PreflightError) as caught:
        preflight(spec)
    assert caught.value.exit_code == ExitCode.INVALID_INPUT
    return caught.value


def test_a_cpu_spec_pins_project_zone_type_image_and_network(gce: Gce) -> None:
    pins = preflight(gcp_spec(nodes=2))
    assert pins == {
        "project": w.PROJECT, "project_number": w.NUMBER, "region": "us-central1",
        "zone": "us-central1-a", "machine_type": "e2-standard-4",
        "image": "projects/debian-cloud/global/images/family/debian-12",
        "image_self_link": DEBIAN_12, "login_user": "composer", "accelerator": None,
        "network": f"{PROJECT_LINK}/global/networks/default",
        "subnetwork": f"{PROJECT_LINK}/regions/us-central1/subnetworks/default",
        "types": {"e2-standard-4": {"vcpus": 4, "memory_mb": 16384, "gpus": 0,
                                    "gpu_model": None, "bundled": False}},
        "quotas": {"CPUS": {"limit": 72.0, "usage": 8.0, "need": 8},
                   "INSTANCES": {"limit": 24.0, "usage": 2.0, "need": 2}},
        "candidates": pins["candidates"],
        "warnings": [],
    }  # fmt: skip
    # every zone of the region where the type fits, in order, the chosen one first
    zones = [c["zone"] for c in pins["candidates"]]
    assert zones[0] == "us-central1-a" and zones == sorted(zones) and len(zones) > 1
    assert {(c["machine_type"], c["accelerator"]) for c in pins["candidates"]} == \
        {("e2-standard-4", None)}
    # Read-only: nothing but GETs reached the API.
    assert all(line.startswith("GET ") for line in gce.world.log), gce.world.log


def test_an_l4_spec_takes_the_gpus_of_its_machine_type(gce: Gce) -> None:
    spec = gcp_spec(nodes=2, gpus_per_node=2, machine_types=["g2-standard-24"],
                    zones=["us-central1-c", "us-central1-b"], provisioning="spot",
                    placement="compact")
    pins = preflight(spec)
    assert (pins["zone"], pins["machine_type"], pins["accelerator"]) == \
        ("us-central1-b", "g2-standard-24", None)  # g2 is not offered in -c
    assert pins["types"]["g2-standard-24"] == {"vcpus": 24, "memory_mb": 98304, "gpus": 2,
                                               "gpu_model": "nvidia-l4", "bundled": True}
    # Spot: the project has preemptible L4s; it has no preemptible CPUs (limit 0).
    assert pins["quotas"]["PREEMPTIBLE_NVIDIA_L4_GPUS"] == {"limit": 16.0, "usage": 0.0,
                                                             "need": 4}
    assert pins["quotas"]["CPUS"]["need"] == 48


def test_an_n1_spec_attaches_its_accelerator(gce: Gce) -> None:
    spec = gcp_spec(gpus_per_node=4, machine_types=["n1-standard-8"],
                    accelerator="nvidia-tesla-t4", zones=["us-central1-c", "us-central1-f"])
    pins = preflight(spec)
    assert (pins["zone"], pins["machine_type"]) == ("us-central1-f", "n1-standard-8")
    assert pins["accelerator"] == {"type": "nvidia-tesla-t4", "count": 4}
    assert pins["types"]["n1-standard-8"]["gpus"] == 4
    assert pins["quotas"]["NVIDIA_T4_GPUS"] == {"limit": 4.0, "usage": 0.0, "need": 4}


def test_failover_takes_the_first_type_then_zone_that_fits(gce: Gce) -> None:
    # a3 has 8 H100s (gpus_per_node 8); a2-highgpu-1g has one A100: it does not fit.
    spec = gcp_spec(gpus_per_node=8, machine_types=["a2-highgpu-1g", "a3-highgpu-8g"],
                    zones=["us-central1-b", "us-central1-c"])
    pins = preflight(spec)
    assert (pins["zone"], pins["machine_type"]) == ("us-central1-c", "a3-highgpu-8g")
    assert pins["quotas"]["NVIDIA_H100_GPUS"]["need"] == 8
    assert set(pins["types"]) == {"a2-highgpu-1g", "a3-highgpu-8g"}
    assert pins["warnings"] == [
        "gcp.machine_types: using a3-highgpu-8g in us-central1-c; passed over "
        "us-central1-b a2-highgpu-1g: no such machine type in this zone; "
        "us-central1-c a2-highgpu-1g: comes with 1 GPU(s) (nvidia-tesla-a100); "
        "cluster.gpus_per_node = 8; us-central1-b a3-highgpu-8g: no such machine type in "
        "this zone"]


def test_a_first_choice_that_exists_nowhere_is_said_not_skipped_silently(gce: Gce) -> None:
    spec = gcp_spec(machine_types=["n2-standard-3", "e2-standard-4"])
    pins = preflight(spec)
    assert pins["machine_type"] == "e2-standard-4"
    assert "gcp.machine_types[0]: n2-standard-3 exists in none of the candidate zones " \
           "(a misspelt name?)" in pins["warnings"]


def test_nothing_fits_lists_every_pair_tried_and_why(gce: Gce) -> None:
    spec = gcp_spec(gpus_per_node=4, machine_types=["g2-standard-24", "n1-standard-8"],
                    accelerator="nvidia-tesla-v100", zones=["us-central1-a", "us-central1-c"])
    found = problems(spec)
    assert found == ["gcp.machine_types: no candidate zone and machine type fit the run:\n"
                     "    us-central1-a g2-standard-24: comes with 2 GPU(s) (nvidia-l4); "
                     "cluster.gpus_per_node = 4\n"
                     "    us-central1-c g2-standard-24: no such machine type in this zone\n"
                     "    us-central1-a n1-standard-8: gcp.accelerator nvidia-tesla-v100 is "
                     "not offered in this zone\n"
                     "    us-central1-c n1-standard-8: gcp.accelerator nvidia-tesla-v100 is "
                     "not offered in this zone"]


def test_too_many_cards_per_vm(gce: Gce) -> None:
    spec = gcp_spec(gpus_per_node=8, machine_types=["n1-standard-8"],
                    accelerator="nvidia-tesla-t4", zones=["us-central1-a"])
    assert "at most 4 nvidia-tesla-t4 per VM; cluster.gpus_per_node = 8" in problems(spec)[0]


def test_only_n1_takes_attached_gpus(gce: Gce) -> None:
    spec = gcp_spec(gpus_per_node=1, machine_types=["e2-standard-4"],
                    accelerator="nvidia-tesla-t4", zones=["us-central1-a"])
    assert "takes no attached GPUs" in problems(spec)[0]


def test_a_zone_outside_the_region_is_named(gce: Gce) -> None:
    found = problems(gcp_spec(zones=["us-central1-a", "europe-west4-a"]))
    assert found == ["gcp.zones[1]: 'europe-west4-a' is not a zone of us-central1"]


def test_a_zone_that_is_down_is_passed_over(gce: Gce) -> None:
    gce.world.zones["us-central1-a"]["status"] = "DOWN"
    pins = preflight(gcp_spec(zones=["us-central1-a", "us-central1-b"]))
    assert pins["zone"] == "us-central1-b"
    assert pins["warnings"] == ["gcp.zones[0]: us-central1-a is DOWN: not considered"]


def test_quota_shortage_names_the_metric_numbers_and_field(gce: Gce) -> None:
    spec = gcp_spec(nodes=4, machine_types=["n2-standard-16"])
    with pytest.raises(GcpPreflightError) as caught:
        preflight(spec)
    assert [str(p) for p in caught.value.problems] == [
        "cluster.nodes: 4 × n2-standard-16 need 64 vCPUs; quota N2_CPUS in us-central1: "
        "0 of 24 in use"]
    assert "request more N2_CPUS" in (caught.value.hint or "")


def test_gpu_quota_shortage(gce: Gce) -> None:
    spec = gcp_spec(nodes=3, gpus_per_node=8, machine_types=["a3-highgpu-8g"])
    found = problems(spec)
    assert "cluster.gpus_per_node: 3 × a3-highgpu-8g need 24 GPUs; quota NVIDIA_H100_GPUS " \
           "in us-central1: 0 of 16 in use" in found


def test_an_unlisted_quota_is_a_warning(gce: Gce) -> None:
    for region in gce.world.regions.values():
        region["quotas"] = [q for q in region["quotas"] if q["metric"] != "INSTANCES"]
    pins = preflight(gcp_spec())
    assert pins["warnings"] == ["no INSTANCES quota listed in us-central1: make sure it "
                                "covers 1 instances"]
    for region in gce.world.regions.values():
        region["quotas"] = []
    assert preflight(gcp_spec())["warnings"] == [
        "the quotas of us-central1 could not be read: make sure they cover the run"]


def test_default_network_missing(gce: Gce) -> None:
    del gce.world.networks["default"]
    with pytest.raises(GcpPreflightError) as caught:
        preflight(gcp_spec())
    assert [str(p) for p in caught.value.problems] == [
        "gcp.network: not set, and project demo-project has no 'default' network"]
    assert "gcloud compute networks create default" in (caught.value.hint or "")


def test_networks_and_subnetworks(gce: Gce) -> None:
    assert problems(gcp_spec(network="lab")) == [
        "gcp.subnetwork: not set, and custom-mode network lab has no subnetwork in "
        "us-central1"]
    pins = preflight(gcp_spec(network="hpc"))
    assert pins["subnetwork"] == f"{PROJECT_LINK}/regions/us-central1/subnetworks/hpc-central"
    assert problems(gcp_spec(network="hpc", subnetwork="default")) == [
        "gcp.subnetwork: 'default' belongs to network default, not hpc"]
    assert problems(gcp_spec(network="nope"))[0].startswith(
        "gcp.network: network 'nope' not found")


def test_images(gce: Gce) -> None:
    assert preflight(gcp_spec(image="my-image"))["image_self_link"] == \
        f"{PROJECT_LINK}/global/images/my-image"
    old = "projects/debian-cloud/global/images/debian-12-bookworm-v20240110"
    assert preflight(gcp_spec(image=old))["warnings"] == [
        f"gcp.image: image debian-12-bookworm-v20240110 is DEPRECATED (replaced by "
        f"{w.DEBIAN_12})"]
    assert problems(gcp_spec(image="projects/debian-cloud/global/images/"
                                   "debian-9-stretch-v20200309")) == [
        "gcp.image: image debian-9-stretch-v20200309 is OBSOLETE"]
    missing = problems(gcp_spec(image="projects/debian-cloud/global/images/family/nope"))
    assert missing[0].startswith("gcp.image: image family 'nope' not found in project "
                                 "debian-cloud (404 The resource")
    # The exact image a lock pinned (a self link) resolves to itself.
    assert preflight(gcp_spec(image=DEBIAN_12))["image_self_link"] == DEBIAN_12


def test_compact_placement_with_a_series_that_has_none(gce: Gce) -> None:
    found = problems(gcp_spec(nodes=2, placement="compact"))
    assert found == ["gcp.placement: compact placement does not support E2 machine types "
                     "(e2-standard-4)"]
    with pytest.raises(GcpPreflightError) as caught:
        preflight(gcp_spec(nodes=2, placement="compact"))
    assert 'gcp.placement = "none"' in (caught.value.hint or "")


def test_several_problems_come_together(gce: Gce) -> None:
    del gce.world.networks["default"]
    found = problems(gcp_spec(image="projects/debian-cloud/global/images/family/nope",
                              machine_types=["x9-huge"]))
    assert [p.split(":")[0] for p in found] == ["gcp.machine_types", "gcp.image",
                                                "gcp.network"]


def test_unknown_region_suggests_one(gce: Gce) -> None:
    error = refused(gcp_spec(region="us-centrall1"))
    assert error.message == "gcp.region: unknown region 'us-centrall1'; did you mean " \
                            "'us-central1'?"


def test_a_project_the_credentials_cannot_see(gce: Gce) -> None:
    error = refused(gcp_spec(project="someone-elses"))
    assert error.message.startswith("gcp.project: project 'someone-elses' cannot be used "
                                    "with these credentials (404 The resource")
    gce.world.forbidden.add("locked")
    error = refused(gcp_spec(project="locked"))
    assert "gcp.project: project 'locked'" in error.message and "403" in error.message


def test_an_api_failure_is_a_message_not_a_traceback(gce: Gce) -> None:
    gce.world.failing["/machineTypes/"] = (403, "accessNotConfigured",
                                           "Compute Engine API has not been used in project")
    error = refused(gcp_spec())
    assert error.message == "Compute Engine machineTypes.get failed: 403 Compute Engine " \
                            "API has not been used in project"


def test_a_boot_disk_smaller_than_the_image_is_refused_before_anything_exists(
        gce: Gce) -> None:
    for found in gce.world.images["debian-cloud"].values():
        found["diskSizeGb"] = "200"
    assert problems(gcp_spec(boot_disk_gb=100)) == [
        f"gcp.boot_disk_gb: 100 GB is smaller than image {w.DEBIAN_12} (200 GB)"]
    assert preflight(gcp_spec(boot_disk_gb=200))["image_self_link"]


def test_an_image_answer_without_a_self_link_pins_nothing(gce: Gce) -> None:
    for found in gce.world.images["debian-cloud"].values():
        found.pop("selfLink")
    said = problems(gcp_spec())
    assert len(said) == 1 and said[0].startswith("gcp.image: Compute Engine answered for")
