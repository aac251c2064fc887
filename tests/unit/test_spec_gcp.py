"""The ``[gcp]`` section: every rule, every problem at once with its dotted path, defaults,
the project taken from ``GOOGLE_CLOUD_PROJECT``, the expanded form, how GPUs, machine
types and ``cluster.gpus_per_node`` must agree, and the JSON Schema beside the checker."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from composer.errors import SpecError
from composer.spec import LimitsSpec, expanded, parse_spec
from composer.spec.schema import json_schema
from composer.targets import TARGETS
from composer.targets.gcp.config import GcpSpec
from composer.targets.gcp.spec import GCP, PROJECT_ENV

from .test_spec import make_job_dir, toml_dumps

DELETE = object()
IMAGE = "projects/ubuntu-os-cloud/global/images/family/ubuntu-2204-lts"


def gcp_doc(nodes: int = 2, gpus: int = 0, **gcp: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "project": "my-project",
        "region": "us-central1",
        "machine_types": ["n2-standard-4"],
        "image": IMAGE,
        "ssh_cidrs": ["203.0.113.7/32"],
    }
    for key, value in gcp.items():
        if value is DELETE:
            section.pop(key, None)
        else:
            section[key] = value
    return {
        "job": {"name": "gcp-job"},
        "cluster": {"target": "gcp", "nodes": nodes, "gpus_per_node": gpus},
        "run": {"launcher": "mpi", "command": ["python", "train.py"]},
        "gcp": section,
    }


@pytest.fixture(autouse=True)
def no_project_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test says whether GOOGLE_CLOUD_PROJECT is set; the caller's does not count."""
    monkeypatch.delenv(PROJECT_ENV, raising=False)


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    return make_job_dir(tmp_path / "job")


def parse(job_dir: Path, doc: dict[str, Any]) -> Any:
    return parse_spec(toml_dumps(doc), job_dir / "job.toml")


def problems(job_dir: Path, doc: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse(job_dir, doc)
    return [str(p) for p in info.value.problems]


def only_problem(job_dir: Path, doc: dict[str, Any]) -> str:
    found = problems(job_dir, doc)
    assert len(found) == 1, found
    return found[0]


def test_minimal_gcp_spec_gets_every_default(job_dir: Path) -> None:
    spec = parse(job_dir, gcp_doc(nodes=1))
    assert spec.target_config == GcpSpec(
        project="my-project", region="us-central1", machine_types=("n2-standard-4",),
        image=IMAGE, ssh_cidrs=("203.0.113.7/32",), zones=(), accelerator=None,
        ssh_user="composer", provisioning="standard", placement="none", boot_disk_gb=100,
        network=None, subnetwork=None, labels=(),
    )
    assert spec.limits == LimitsSpec(24 * 3600.0, defaulted=True)
    assert expanded(spec)["gcp"] == {
        "accelerator": None, "boot_disk_gb": 100, "image": IMAGE, "labels": {},
        "machine_types": ["n2-standard-4"], "network": None, "placement": "none",
        "project": "my-project", "provisioning": "standard", "region": "us-central1",
        "ssh_cidrs": ["203.0.113.7/32"], "ssh_user": "composer", "subnetwork": None,
        "zones": [],
    }


def test_full_gcp_spec(job_dir: Path) -> None:
    doc = gcp_doc(
        nodes=16, gpus=4,
        project="example.com:team-project", region="europe-west4",
        zones=["europe-west4-b", "europe-west4-a"],
        machine_types=["n1-standard-32", "n1-highmem-32", "custom-32-131072"],
        accelerator={"type": "nvidia-tesla-v100"},
        image="https://www.googleapis.com/compute/v1/projects/my-project/global/images/train-v3",
        ssh_user="trainer", provisioning="spot", placement="none", boot_disk_gb=65536,
        network="projects/host-project/global/networks/ml",
        subnetwork="projects/host-project/regions/europe-west4/subnetworks/ml-eu",
        ssh_cidrs=["0.0.0.0/0", "2001:db8::/32", "10.0.0.0/8"],
        labels={"team": "ml", "cost-center": "42", "empty": "", "a_b": "c-d_e"},
    )
    doc["limits"] = {"max_duration": "none"}
    spec = parse(job_dir, doc)
    config = spec.target_config
    assert config.project == "example.com:team-project"
    assert config.zones == ("europe-west4-b", "europe-west4-a")
    assert config.machine_types == ("n1-standard-32", "n1-highmem-32", "custom-32-131072")
    assert config.accelerator == "nvidia-tesla-v100"
    assert (config.provisioning, config.placement, config.boot_disk_gb) == ("spot", "none",
                                                                             65536)
    assert config.labels == (("a_b", "c-d_e"), ("cost-center", "42"), ("empty", ""),
                             ("team", "ml"))
    data = expanded(spec)
    assert json.loads(json.dumps(data)) == data
    assert list(data["gcp"]) == sorted(data["gcp"])
    assert data["gcp"]["accelerator"] == {"type": "nvidia-tesla-v100"}
    assert data["gcp"]["labels"] == {"a_b": "c-d_e", "cost-center": "42", "empty": "",
                                     "team": "ml"}


# -- the project -------------------------------------------------------------------------


def test_project_comes_from_the_environment(job_dir: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROJECT_ENV, "env-project")
    spec = parse(job_dir, gcp_doc(project=DELETE))
    assert spec.target_config.project == "env-project"
    assert expanded(spec)["gcp"]["project"] == "env-project"


def test_written_project_wins_over_the_environment(job_dir: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROJECT_ENV, "env-project")
    assert parse(job_dir, gcp_doc()).target_config.project == "my-project"


@pytest.mark.parametrize("env", [None, "", "   "])
def test_project_missing_everywhere_names_both_places(
    job_dir: Path, monkeypatch: pytest.MonkeyPatch, env: str | None
) -> None:
    if env is not None:
        monkeypatch.setenv(PROJECT_ENV, env)
    assert only_problem(job_dir, gcp_doc(project=DELETE)) == (
        'gcp.project: required: write project = "my-project" in [gcp], or set '
        "GOOGLE_CLOUD_PROJECT in the environment")


def test_project_from_the_environment_is_checked_too(job_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROJECT_ENV, "My Project")
    assert only_problem(job_dir, gcp_doc(project=DELETE)).startswith(
        'gcp.project: not written, and GOOGLE_CLOUD_PROJECT ("My Project") is not a project '
        "id")


def test_project_is_not_required_by_the_schema() -> None:
    assert "project" not in GCP.required_keys
    assert GCP.required_keys == ("region", "machine_types", "image", "ssh_cidrs")


# -- placement ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nodes", "placement", "expected"),
    [(1, DELETE, "none"), (2, DELETE, "compact"), (1000, DELETE, "compact"),
     (8, "none", "none"), (8, "compact", "compact"), (1, "none", "none")],
)
def test_placement_default_follows_nodes(
    job_dir: Path, nodes: int, placement: Any, expected: str
) -> None:
    spec = parse(job_dir, gcp_doc(nodes=nodes, placement=placement))
    assert spec.target_config.placement == expected


def test_compact_placement_with_one_node_is_a_problem(job_dir: Path) -> None:
    assert only_problem(job_dir, gcp_doc(nodes=1, placement="compact")) == (
        "gcp.placement: compact places several nodes close together, and cluster.nodes is "
        '1: set gcp.placement = "none" or remove it')


# -- accepted forms ----------------------------------------------------------------------


@pytest.mark.parametrize("image", [
    IMAGE,
    "projects/ubuntu-os-accelerator-images/global/images/family/"
    "ubuntu-accelerator-2204-amd64-with-nvidia-550",
    "projects/debian-cloud/global/images/debian-12-bookworm-v20240515",
    "my-image",
    "https://www.googleapis.com/compute/v1/projects/debian-cloud/global/images/family/debian-12",
    "https://compute.googleapis.com/compute/v1/projects/p-12345/global/images/img-1",
    "projects/example.com:team-proj/global/images/family/base",
])
def test_images_accepted(job_dir: Path, image: str) -> None:
    assert parse(job_dir, gcp_doc(image=image)).target_config.image == image


@pytest.mark.parametrize("machine_type", [
    "e2-standard-4", "n1-standard-8", "n2-custom-8-32768", "n2-custom-8-32768-ext",
    "custom-4-16384", "c3-highcpu-176", "n2d-highmem-96", "t2a-standard-1", "e2-micro",
    "m3-ultramem-128", "c4a-standard-72-lssd",
])
def test_cpu_machine_types_accepted(job_dir: Path, machine_type: str) -> None:
    spec = parse(job_dir, gcp_doc(machine_types=[machine_type]))
    assert spec.target_config.machine_types == (machine_type,)


@pytest.mark.parametrize("region", ["us-central1", "europe-west4", "northamerica-northeast2",
                                    "europe-west10", "me-central2", "africa-south1"])
def test_regions_accepted(job_dir: Path, region: str) -> None:
    assert parse(job_dir, gcp_doc(region=region)).target_config.region == region


@pytest.mark.parametrize(("network", "subnetwork"), [
    ("default", None),
    ("ml-net", "ml-subnet"),
    ("projects/host-proj/global/networks/shared", "projects/host-proj/regions/us-central1/"
                                                  "subnetworks/ml"),
    ("https://www.googleapis.com/compute/v1/projects/my-project/global/networks/default",
     "https://www.googleapis.com/compute/v1/projects/my-project/regions/us-central1/"
     "subnetworks/default"),
    (None, "ml-subnet"),
])
def test_networks_accepted(job_dir: Path, network: str | None, subnetwork: str | None) -> None:
    spec = parse(job_dir, gcp_doc(network=network or DELETE, subnetwork=subnetwork or DELETE))
    assert (spec.target_config.network, spec.target_config.subnetwork) == (network, subnetwork)


# -- GPUs: with the machine type, attached to N1, or none -----------------------------------


@pytest.mark.parametrize(("types", "gpus"), [
    (["g2-standard-24"], 2), (["a3-highgpu-8g"], 8), (["a2-highgpu-1g", "a2-highgpu-2g"], 1),
    (["a4-highgpu-8g"], 8), (["g4-standard-48"], 1),
])
def test_gpus_that_come_with_the_type_need_no_accelerator(
    job_dir: Path, types: list[str], gpus: int
) -> None:
    spec = parse(job_dir, gcp_doc(gpus=gpus, machine_types=types))
    assert spec.target_config.accelerator is None
    assert expanded(spec)["gcp"]["accelerator"] is None


def test_n1_takes_an_accelerator(job_dir: Path) -> None:
    spec = parse(job_dir, gcp_doc(gpus=4, machine_types=["n1-standard-16", "custom-8-32768"],
                                  accelerator={"type": "nvidia-tesla-t4"}))
    assert spec.target_config.accelerator == "nvidia-tesla-t4"


GPU_CASES = [
    # (gpus_per_node, machine_types, accelerator, the problems)
    (1, ["n1-standard-8"], DELETE,
     ['gcp.accelerator: required: cluster.gpus_per_node is 1, and "n1-standard-8" takes GPUs '
      'only as an accelerator; add accelerator = { type = "nvidia-tesla-t4" } (or another '
      "type)"]),
    (2, ["g2-standard-24"], {"type": "nvidia-l4"},
     ['gcp.accelerator: remove it: the GPUs of "g2-standard-24" come with the machine type '
      "(series g2)"]),
    (8, ["a3-highgpu-8g"], {"type": "nvidia-h100-80gb"},
     ['gcp.accelerator: remove it: the GPUs of "a3-highgpu-8g" come with the machine type '
      "(series a3)"]),
    (0, ["n1-standard-8"], {"type": "nvidia-tesla-t4"},
     ["gcp.accelerator: attaches cluster.gpus_per_node GPUs to each node, and "
      "cluster.gpus_per_node is 0: set it, or remove gcp.accelerator"]),
    (1, ["g2-standard-8", "n1-standard-8"], DELETE,
     ['gcp.machine_types[1]: "g2-standard-8" comes with GPUs and "n1-standard-8" does not: '
      "list machine types of one kind (all with GPUs that come with the type, or none)"]),
    (0, ["e2-standard-4", "n2-standard-4", "a2-highgpu-1g"], DELETE,
     ['gcp.machine_types[2]: "a2-highgpu-1g" comes with GPUs and "e2-standard-4" does not: '
      "list machine types of one kind"]),
    (1, ["e2-standard-4"], DELETE,
     ['gcp.machine_types[0]: "e2-standard-4" takes no GPUs: they attach only to N1 machine '
      'types ("n1-standard-8", with gcp.accelerator), or come with the type ("g2-standard-8", '
      '"a2-highgpu-1g")']),
    (1, ["n1-standard-8", "n2-standard-8"], {"type": "nvidia-tesla-t4"},
     ['gcp.machine_types[1]: "n2-standard-8" takes no GPUs: they attach only to N1']),
    (0, ["g2-standard-8"], DELETE,
     ['gcp.machine_types[0]: "g2-standard-8" comes with GPUs (series g2), and '
      "cluster.gpus_per_node is 0: set cluster.gpus_per_node to its GPU count, or choose a "
      "machine type without GPUs"]),
]


@pytest.mark.parametrize(("gpus", "types", "accelerator", "expected"), GPU_CASES)
def test_gpu_rules(job_dir: Path, gpus: int, types: list[str], accelerator: Any,
                   expected: list[str]) -> None:
    found = problems(job_dir, gcp_doc(gpus=gpus, machine_types=types, accelerator=accelerator))
    assert len(found) == len(expected), found
    for said, want in zip(found, expected, strict=True):
        assert said.startswith(want), (said, want)


# -- every rule's problem ----------------------------------------------------------------

GCP_CASES = [
    ("project", "", "gcp.project: must not be empty"),
    ("project", 42, "gcp.project: must be a string, got integer 42"),
    ("project", "123456789012", "gcp.project: must be a project id: 6-30 characters of a-z, "
                                "0-9 and '-', starting with a letter, not ending with '-', got "
                                '"123456789012"; that is a project number'),
    ("project", "My-Project", 'gcp.project: must be a project id: 6-30 characters of a-z, 0-9 '
                              "and '-', starting with a letter, not ending with '-', got "
                              '"My-Project"; did you mean "my-project"?'),
    ("project", "My Project", "gcp.project: must be a project id"),
    ("project", "short", "gcp.project: must be a project id"),
    ("project", "p" * 31, "gcp.project: must be a project id"),
    ("project", "ends-with-", "gcp.project: must be a project id"),
    ("region", DELETE, "gcp.region: required"),
    ("region", "us-east-1", 'gcp.region: must be a Compute Engine region name such as '
                            '"us-central1", got "us-east-1"; did you mean "us-east1"?'),
    ("region", "us-central1-a", 'gcp.region: must be a Compute Engine region name such as '
                                '"us-central1", got "us-central1-a"; that is a zone, of region '
                                '"us-central1"'),
    ("region", "US-CENTRAL1", 'gcp.region: must be a Compute Engine region name such as '
                              '"us-central1", got "US-CENTRAL1"; did you mean "us-central1"?'),
    ("region", "central", 'gcp.region: must be a Compute Engine region name such as '
                          '"us-central1", got "central"'),
    ("region", "", "gcp.region: must not be empty"),
    ("zones", "us-central1-a", "gcp.zones: must be an array of zone names, got string"),
    ("zones", [], "gcp.zones: must not be empty"),
    ("zones", ["europe-west4-a"], 'gcp.zones[0]: zone "europe-west4-a" is not in gcp.region '
                                  '"us-central1"; the region\'s zones are us-central1-a, '
                                  "us-central1-b, ..."),
    ("zones", ["us-central1a"], 'gcp.zones[0]: must be a zone name such as "us-central1-a" '
                                '(the region, "-" and a letter), got "us-central1a"; did you '
                                'mean "us-central1-a"?'),
    ("zones", ["us-central1"], 'gcp.zones[0]: must be a zone name such as "us-central1-a"'),
    ("zones", ["us-central1-a", "us-central1-a"],
     'gcp.zones[1]: "us-central1-a" is also listed at gcp.zones[0]'),
    ("zones", [1], "gcp.zones[0]: must be a string, got integer 1"),
    ("machine_types", DELETE, "gcp.machine_types: required"),
    ("machine_types", "n2-standard-4",
     'gcp.machine_types: must be an array of machine types, got string "n2-standard-4"'),
    ("machine_types", [], "gcp.machine_types: must not be empty"),
    ("machine_types", ["g5.xlarge"], 'gcp.machine_types[0]: must be a Compute Engine machine '
                                     'type such as "g2-standard-24" or "n2-custom-8-32768" '
                                     '(series-kind-size), got "g5.xlarge"; that is an AWS '
                                     "instance type"),
    ("machine_types", ["N2-Standard-4"], 'gcp.machine_types[0]: must be a Compute Engine '
                                         'machine type such as "g2-standard-24" or '
                                         '"n2-custom-8-32768" (series-kind-size), got '
                                         '"N2-Standard-4"; did you mean "n2-standard-4"?'),
    ("machine_types", ["standard"], "gcp.machine_types[0]: must be a Compute Engine machine"),
    ("machine_types", ["n2-standard-4", "n2-standard-4"],
     'gcp.machine_types[1]: "n2-standard-4" is also listed at gcp.machine_types[0]'),
    ("machine_types", [""], "gcp.machine_types[0]: must not be empty"),
    ("image", DELETE, "gcp.image: required"),
    ("image", "ubuntu-os-cloud/ubuntu-2204-lts",
     'gcp.image: must be "projects/PROJECT/global/images/family/FAMILY", "projects/PROJECT/'
     'global/images/IMAGE" or an image name in gcp.project, such as "projects/ubuntu-os-cloud/'
     'global/images/family/ubuntu-2204-lts", got "ubuntu-os-cloud/ubuntu-2204-lts"; did you '
     'mean "projects/ubuntu-os-cloud/global/images/family/ubuntu-2204-lts" (a family) or '
     '"projects/ubuntu-os-cloud/global/images/ubuntu-2204-lts" (one image)?'),
    ("image", "family/ubuntu-2204-lts", 'gcp.image: must be "projects/PROJECT/global/images/'
                                        'family/FAMILY"'),
    ("image", "Ubuntu-2204", 'gcp.image: must be "projects/PROJECT/global/images/family/'
                             'FAMILY"'),
    ("image", "Ubuntu 22.04", "gcp.image: must be"),
    ("image", "projects/ubuntu-os-cloud/images/family/ubuntu-2204-lts", "gcp.image: must be"),
    ("image", "https://example.com/compute/v1/projects/p-1234/global/images/x",
     "gcp.image: must be"),
    ("image", ["x"], "gcp.image: must be a string, got array"),
    ("ssh_user", "root", "gcp.ssh_user: must not be \"root\": Compute Engine's guest agent "
                         "makes no root logins from ssh-keys"),
    ("ssh_user", "Ubuntu", "gcp.ssh_user: must be a Unix user name"),
    ("ssh_user", "1user", "gcp.ssh_user: must be a Unix user name"),
    ("ssh_user", "a" * 33, "gcp.ssh_user: must be a Unix user name"),
    ("ssh_user", "", "gcp.ssh_user: must not be empty"),
    ("provisioning", "preemptible",
     "gcp.provisioning: must be one of 'standard', 'spot', got \"preemptible\""),
    ("provisioning", "spto", "gcp.provisioning: must be one of 'standard', 'spot', got "
                             "\"spto\"; did you mean 'spot'?"),
    ("placement", "cluster", "gcp.placement: must be one of 'compact', 'none', got "
                             '"cluster"'),
    ("placement", True, "gcp.placement: must be a string, got boolean true"),
    ("boot_disk_gb", 9, "gcp.boot_disk_gb: must be at least 10, got 9"),
    ("boot_disk_gb", 65537, "gcp.boot_disk_gb: must be at most 65536, got 65537"),
    ("boot_disk_gb", "100", 'gcp.boot_disk_gb: must be an integer, got string "100"'),
    ("network", "Default", 'gcp.network: must be a network name ("default") or '
                           '"projects/PROJECT/global/networks/NETWORK", got "Default"'),
    ("network", "projects/my-project/networks/x", "gcp.network: must be a network name"),
    ("network", "global/networks/default", "gcp.network: must be a network name"),
    ("subnetwork", "projects/my-project/regions/europe-west4/subnetworks/ml",
     'gcp.subnetwork: is in region "europe-west4", not gcp.region "us-central1": name a '
     "subnetwork of us-central1"),
    ("subnetwork", "projects/my-project/subnetworks/ml", "gcp.subnetwork: must be a subnetwork "
                                                         'name or "projects/PROJECT/regions/'),
    ("ssh_cidrs", DELETE, "gcp.ssh_cidrs: required"),
    ("ssh_cidrs", [], "gcp.ssh_cidrs: must not be empty"),
    ("ssh_cidrs", ["203.0.113.7"], "gcp.ssh_cidrs[0]: must be a CIDR block with its prefix "
                                   'length, such as "203.0.113.7/32", got "203.0.113.7"'),
    ("ssh_cidrs", ["10.1.2.3/8"],
     'gcp.ssh_cidrs[0]: "10.1.2.3/8" has host bits set; did you mean "10.0.0.0/8"?'),
    ("ssh_cidrs", ["0::/0"], 'gcp.ssh_cidrs[0]: write "0::/0" as "::/0"'),
    ("ssh_cidrs", ["::ffff:203.0.113.0/120"], 'gcp.ssh_cidrs[0]: "::ffff:203.0.113.0/120" is '
                                              "IPv4 written as IPv6"),
    ("labels", ["team=ml"], 'gcp.labels: must be a table of "key" = "value", got array'),
    ("labels", {"Team": "ml"}, 'gcp.labels.Team: label keys are lowercase: use lowercase; did '
                               'you mean "team"?'),
    ("labels", {"team": "ML"}, 'gcp.labels.team: label values are lowercase: use lowercase; '
                               'did you mean "ml"?'),
    ("labels", {"cost.center": "x"}, 'gcp.labels."cost.center": label keys are a-z, 0-9, \'_\' '
                                     "and '-', starting with a letter, got \"cost.center\"; "
                                     'did you mean "cost-center"?'),
    ("labels", {"1team": "x"}, "gcp.labels.1team: label keys are a-z, 0-9, '_' and '-', "
                               'starting with a letter, got "1team"'),
    ("labels", {"team": "m l"}, "gcp.labels.team: label values are a-z, 0-9, '_' and '-', got "
                                '"m l"; did you mean "m-l"?'),
    ("labels", {"k" * 64: "x"}, "gcp.labels." + "k" * 64 + ": label key is 64 characters; "
                                "Compute Engine allows at most 63"),
    ("labels", {"team": "v" * 64}, "gcp.labels.team: label value is 64 characters; Compute "
                                   "Engine allows at most 63"),
    ("labels", {"composer-run-id": "x"}, 'gcp.labels.composer-run-id: label keys starting with '
                                         '"composer-" are reserved for composer'),
    ("labels", {"goog-managed": "x"}, 'gcp.labels.goog-managed: label keys starting with "goog" '
                                      "are reserved for Google Cloud"),
    ("labels", {"n": 5}, "gcp.labels.n: must be a string; quote it (got integer 5)"),
    ("labels", {"n": {"a": "b"}}, "gcp.labels.n: must be a string, got table"),
    ("labels", {"": "x"}, 'gcp.labels."": must not be empty'),
    ("labels", {f"l{i}": "x" for i in range(62)}, "gcp.labels: has 62 labels; at most 61"),
    ("machine_type", ["n2-standard-4"], "gcp.machine_type: unknown key; did you mean "
                                        "'machine_types'?"),
    ("regoin", "us-central1", "gcp.regoin: unknown key; did you mean 'region'?"),
    ("zone", ["us-central1-a"], "gcp.zone: unknown key; did you mean 'zones'?"),
    ("labes", {}, "gcp.labes: unknown key; did you mean 'labels'?"),
]


@pytest.mark.parametrize(("key", "value", "expected"), GCP_CASES)
def test_gcp_field_problem(job_dir: Path, key: str, value: Any, expected: str) -> None:
    said = only_problem(job_dir, gcp_doc(**{key: value}))
    assert said.startswith(expected), said


ACCELERATOR_CASES = [
    ("nvidia-tesla-t4", 'gcp.accelerator: must be a table such as { type = "nvidia-tesla-t4" }, '
                        'got string "nvidia-tesla-t4"; write accelerator = '
                        '{ type = "nvidia-tesla-t4" } (the count is cluster.gpus_per_node)'),
    (["nvidia-tesla-t4"],
     'gcp.accelerator: must be a table such as { type = "nvidia-tesla-t4" }, got array'),
    ({}, 'gcp.accelerator.type: required: the accelerator type, such as "nvidia-tesla-t4"'),
    ({"type": "NVIDIA-TESLA-T4"},
     'gcp.accelerator.type: must be lowercase: did you mean "nvidia-tesla-t4"?'),
    # L4 and A100 are offered in the zones, but only with their own (G2, A2) types: an N1
    # machine type cannot take them, which apply would say only after init.
    ({"type": "nvidia-l4"},
     'gcp.accelerator.type: "nvidia-l4" GPUs come only with G2 machine types, which need no '
     "accelerator: remove gcp.accelerator and choose such a type in gcp.machine_types"),
    ({"type": "nvidia-tesla-a100"},
     'gcp.accelerator.type: "nvidia-tesla-a100" GPUs come only with A2 machine types'),
    ({"type": "nvidia-rtx-9000"},
     'gcp.accelerator.type: must be a GPU N1 machine types take: "nvidia-tesla-t4", '),
    ({"type": 4}, "gcp.accelerator.type: must be a string, got integer 4"),
]


@pytest.mark.parametrize(("value", "expected"), ACCELERATOR_CASES)
def test_accelerator_problem(job_dir: Path, value: Any, expected: str) -> None:
    doc = gcp_doc(gpus=1, machine_types=["n1-standard-8"], accelerator=value)
    said = only_problem(job_dir, doc)
    assert said.startswith(expected), said


def test_accelerator_keys_name_the_count_and_suggest(job_dir: Path) -> None:
    found = problems(job_dir, gcp_doc(gpus=2, machine_types=["n1-standard-8"],
                                      accelerator={"type": "nvidia-tesla-t4", "count": 2,
                                                   "typ": "x"}))
    assert found == ["gcp.accelerator.count: unknown key: the count is cluster.gpus_per_node",
                     "gcp.accelerator.typ: unknown key; did you mean 'type'?"]


def test_many_gcp_problems_are_reported_together(job_dir: Path) -> None:
    doc = gcp_doc(
        nodes=1, gpus=1, project="1234567", region="us-central1", zones=["us-west1-a"],
        machine_types=["n1-standard-8", "n1.standard"], image="ubuntu/22.04",
        ssh_user="root", provisioning="cheap", placement="compact", boot_disk_gb=0,
        network="Net", subnetwork="projects/my-project/regions/us-east1/subnetworks/s",
        ssh_cidrs=["1.2.3.4", "::/0"], labels={"Team": "x"}, machine_type="e2-small",
    )
    doc["cluster"]["slots_per_node"] = 0
    found = problems(job_dir, doc)
    assert [p.split(":")[0] for p in found] == [
        "cluster.slots_per_node", "gcp.project", "gcp.zones[0]", "gcp.machine_types[1]",
        "gcp.image", "gcp.ssh_user", "gcp.provisioning", "gcp.placement", "gcp.boot_disk_gb",
        "gcp.network", "gcp.subnetwork", "gcp.ssh_cidrs[0]", "gcp.labels.Team",
        "gcp.machine_type",
    ]
    assert found[-1] == "gcp.machine_type: unknown key; did you mean 'machine_types'?"
    with pytest.raises(SpecError) as info:
        parse(job_dir, doc)
    assert "14 problems" in str(info.value)


def test_gpu_and_placement_rules_apply_once_the_cluster_is_known(job_dir: Path) -> None:
    doc = gcp_doc(nodes=1, gpus=1, placement="compact")
    paths = [p.split(":")[0] for p in problems(job_dir, doc)]
    assert paths == ["gcp.machine_types[0]", "gcp.placement"]
    doc["cluster"]["nodes"] = 0  # the cluster is wrong: nothing to check them against
    paths = [p.split(":")[0] for p in problems(job_dir, doc)]
    assert paths == ["cluster.nodes"]


# -- the section and the target ----------------------------------------------------------


def test_gcp_target_needs_its_section(job_dir: Path) -> None:
    doc = gcp_doc()
    del doc["gcp"]
    assert problems(job_dir, doc) == [
        "cluster.target: target 'gcp' needs a [gcp] section; add one "
        "(required keys: region, machine_types, image, ssh_cidrs)"
    ]


def test_empty_gcp_section_names_every_required_key(job_dir: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    doc = gcp_doc()
    doc["gcp"] = {}
    monkeypatch.setenv(PROJECT_ENV, "env-project")
    assert problems(job_dir, doc) == [
        "gcp.region: required", "gcp.machine_types: required", "gcp.image: required",
        "gcp.ssh_cidrs: required",
    ]


def test_gcp_section_for_another_target_names_the_fix(job_dir: Path) -> None:
    doc = gcp_doc()
    doc["cluster"]["target"] = "aws"
    assert problems(job_dir, doc) == [
        "cluster.target: target 'aws' needs an [aws] section; add one "
        "(required keys: region, instance_types, image, ssh_cidrs)",
        "gcp: is the section of target 'gcp', but cluster.target is 'aws': "
        'set cluster.target = "gcp" or remove [gcp]',
    ]


def test_gcp_section_must_be_a_table(job_dir: Path) -> None:
    doc = gcp_doc()
    doc["gcp"] = "us-central1"
    assert problems(job_dir, doc) == ['gcp: must be a table, got string "us-central1"']


def test_misspelled_section_suggests_gcp(job_dir: Path) -> None:
    doc = gcp_doc()
    doc["gpc"] = doc.pop("gcp")
    assert problems(job_dir, doc) == [
        "cluster.target: target 'gcp' needs a [gcp] section; add one "
        "(required keys: region, machine_types, image, ssh_cidrs)",
        "gpc: unknown key; did you mean 'gcp'?",
    ]


def test_registry_gives_the_section_and_the_node_limit() -> None:
    gcp = TARGETS["gcp"]
    assert gcp.section is GCP and GCP.target == "gcp"
    assert gcp.max_nodes == 1000 and gcp.modules == ("gcp-cluster",)
    assert list(TARGETS) == ["local", "aws", "gcp"]


def test_too_many_nodes_for_gcp(job_dir: Path) -> None:
    assert only_problem(job_dir, gcp_doc(nodes=1001)) == (
        "cluster.nodes: must be at most 1000 for target 'gcp', got 1001")


# -- fuzz --------------------------------------------------------------------------------

gcp_values = st.recursive(
    st.one_of(st.booleans(), st.integers(-10, 10**5), st.floats(), st.text(max_size=20),
              st.sampled_from(["us-central1", "us-central1-a", "europe-west4-b",
                               "n1-standard-8", "g2-standard-24", "a3-highgpu-8g", IMAGE,
                               "nvidia-l4", "spot", "compact", "root", "10.0.0.0/8", "::/0",
                               "composer-x", "goog", "Team", "projects/p-1234/regions/"
                               "us-east1/subnetworks/s"])),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.sampled_from(["type", "count", "team", "T"])
                                               | st.text(max_size=8), children, max_size=3)),
    max_leaves=8,
)


@settings(max_examples=250, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from([*GCP.keys, "machine_type", "x"]),
                               gcp_values | st.just(DELETE), max_size=5),
       target=st.sampled_from(["gcp", "aws", "local", "mars"]),
       gpus=st.sampled_from([0, 1, 8]), nodes=st.sampled_from([1, 2]),
       env=st.sampled_from([None, "env-project", "Bad Project"]))
def test_random_gcp_sections_give_spec_or_spec_error(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
    changes: dict[str, Any], target: str, gpus: int, nodes: int, env: str | None,
) -> None:
    if env is None:
        monkeypatch.delenv(PROJECT_ENV, raising=False)
    else:
        monkeypatch.setenv(PROJECT_ENV, env)
    job_dir = make_job_dir(tmp_path_factory.mktemp("gcp"))
    doc = copy.deepcopy(gcp_doc(nodes=nodes, gpus=gpus, **changes))
    doc["cluster"]["target"] = target
    try:
        spec = parse(job_dir, doc)
    except SpecError as error:
        assert error.problems and all(p.path for p in error.problems)
        return
    assert target == "gcp" and isinstance(spec.target_config, GcpSpec)
    json.dumps(expanded(spec))


# -- the JSON Schema ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(json_schema())


def schema_errors(validator: jsonschema.Draft7Validator, doc: dict[str, Any]) -> list[str]:
    return [e.message for e in validator.iter_errors(doc)]


def test_schema_accepts_gcp_specs(validator: jsonschema.Draft7Validator) -> None:
    assert schema_errors(validator, gcp_doc()) == []
    full = gcp_doc(nodes=4, gpus=4, zones=["us-central1-a"], machine_types=["n1-standard-16"],
                   accelerator={"type": "nvidia-tesla-t4"}, ssh_user="trainer",
                   provisioning="spot", placement="compact", boot_disk_gb=200,
                   network="default", subnetwork="projects/p-1234/regions/us-central1/"
                                                 "subnetworks/s",
                   labels={"team": "ml", "cost_center": ""})
    assert schema_errors(validator, full) == []
    assert schema_errors(validator, gcp_doc(project=DELETE)) == []


@pytest.mark.parametrize(("key", "value"), [
    ("project", "123"),
    ("region", "us-east-1"),
    ("zones", ["us-central1"]),
    ("zones", []),
    ("machine_types", []),
    ("machine_types", ["g5.xlarge"]),
    ("machine_types", ["n2-standard-4", "n2-standard-4"]),
    ("accelerator", "nvidia-l4"),
    ("accelerator", {"type": "nvidia-l4", "count": 1}),
    ("accelerator", {}),
    ("image", "ubuntu-os-cloud/ubuntu-2204-lts"),
    ("image", "Ubuntu 22.04"),
    ("ssh_user", "root"),
    ("ssh_user", "Ubuntu"),
    ("provisioning", "preemptible"),
    ("placement", "cluster"),
    ("boot_disk_gb", 9),
    ("network", "Default"),
    ("subnetwork", "projects/x/subnetworks/s"),
    ("ssh_cidrs", []),
    ("ssh_cidrs", ["anyone"]),
    ("labels", {"Team": "ml"}),
    ("labels", {"team": "ML"}),
    ("labels", {"composer-run-id": "x"}),
    ("labels", {"goog-x": "x"}),
    ("labels", {"n": 5}),
    ("machine_type", ["n2-standard-4"]),
])
def test_schema_rejects_bad_gcp_values(
    validator: jsonschema.Draft7Validator, key: str, value: Any
) -> None:
    assert schema_errors(validator, gcp_doc(**{key: value})), (key, value)


def test_schema_ties_the_gcp_section_to_its_target(
    validator: jsonschema.Draft7Validator
) -> None:
    no_section = gcp_doc()
    del no_section["gcp"]
    assert schema_errors(validator, no_section)
    other_target = gcp_doc()
    other_target["cluster"]["target"] = "local"
    assert schema_errors(validator, other_target)
    assert schema_errors(validator, gcp_doc(nodes=1001))
    assert schema_errors(validator, gcp_doc(nodes=1000)) == []
    for missing in ("region", "machine_types", "image", "ssh_cidrs"):
        assert schema_errors(validator, gcp_doc(**{missing: DELETE})), missing


def test_placement_defaults_to_none_where_a_type_takes_no_compact_policy(job_dir: Path) -> None:
    """N1 (the only series with attached GPUs) and E2 take no compact policy: the default
    for several nodes of them is "none", and asking for compact is refused offline."""
    doc = gcp_doc(nodes=2, gpus=1, machine_types=["n1-standard-8"],
                  accelerator={"type": "nvidia-tesla-t4"})
    assert parse(job_dir, doc).target_config.placement == "none"
    doc = gcp_doc(nodes=2, machine_types=["n2-standard-4"])
    assert parse(job_dir, doc).target_config.placement == "compact"
    said = only_problem(job_dir, gcp_doc(nodes=2, machine_types=["e2-standard-4"],
                                         placement="compact"))
    assert said.startswith('gcp.placement: compact placement is not offered for '
                           '"e2-standard-4" (E2 series): set gcp.placement = "none"'), said


def test_a_reproduction_checks_the_recorded_spec_with_the_project_the_run_used(
        job_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A spec without gcp.project took GOOGLE_CLOUD_PROJECT's; reproducing it elsewhere
    (another value, or none) must not move the run to another project."""
    from types import SimpleNamespace

    from composer.reproduce import recorded_spec

    doc = gcp_doc(project=DELETE)
    text = toml_dumps(doc)
    recorded = SimpleNamespace(text=text, lock={"target": {
        "name": "gcp", "resolved": {"project": "project-of-the-run"}}})
    monkeypatch.setenv(PROJECT_ENV, "another-project")
    job = job_dir / "job.toml"
    assert recorded_spec(recorded, job).target_config.project == "project-of-the-run"  # type: ignore[arg-type]
    assert os.environ[PROJECT_ENV] == "another-project"  # put back
    monkeypatch.delenv(PROJECT_ENV)
    assert recorded_spec(recorded, job).target_config.project == "project-of-the-run"  # type: ignore[arg-type]
    assert PROJECT_ENV not in os.environ


@pytest.mark.parametrize(("gcp", "gpus", "expected"), [
    ({"ssh_user": "daemon"}, 0, 'gcp.ssh_user: "daemon" is a system account or group'),
    ({"ssh_user": "sudo"}, 0, 'gcp.ssh_user: "sudo" is a system account or group'),
    ({"ssh_user": "systemd-network"}, 0, 'gcp.ssh_user: "systemd-network" is a system'),
    ({"ssh_cidrs": ["2001:db8::/32"]}, 0,
     "gcp.ssh_cidrs: holds only IPv6 blocks, and the nodes' external addresses are IPv4"),
    ({"machine_types": ["n1-standard-8"], "accelerator": {"type": "nvidia-tesla-t4"},
      "placement": "none"}, 3,
     "cluster.gpus_per_node: is 3; an N1 machine type takes 1, 2, 4 or 8 attached GPUs"),
])
def test_what_compute_engine_would_refuse_after_apply_is_refused_offline(
        job_dir: Path, gcp: dict[str, Any], gpus: int, expected: str) -> None:
    said = only_problem(job_dir, gcp_doc(gpus=gpus, **gcp))
    assert said.startswith(expected), said
